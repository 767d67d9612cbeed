"""Command line of the ECG digitizer.

    python -m pipeline predict --data-dir DIR --out submission.parquet [--workers N] [--weights weights]
        DIR holds test.csv and test/<id>.png (the competition's test layout); output in test.csv's order.
    python -m pipeline cv --data-dir DIR [--types 0001,0003] [--out cv.csv] [--workers N]
                          [--folds 5] [--stages] [--cv-dir RUN] [--layout NAME] [--mm-per-mv G]
        DIR is a train-layout folder with ground truth; prints the metric overall, per type, fs and lead, per
        record-level fold, and with --stages what each stage loses (labelled pages); --cv-dir keeps it all;
        --layout reads every page by NAME (e.g. 3x4+II/cabrera, whose order the layout finder cannot see),
        --mm-per-mv every chart at gain G (default: the gain its calibration pulses show, else 10 mm/mV).
    python -m pipeline report --cv-dir RUN [RUN ...] --out docs/
        docs/report.md and its figures from cv runs kept with --cv-dir.
    python -m pipeline digitize IMAGE [IMAGE ...] [--fs 500] [--out DIR] [--format csv,wfdb,json] [--layout NAME]
                                [--mm-per-mv G]
        your own images, each read by the layout found on it (or NAME) at the gain its pulses show (or G): per
        image the 12 leads, each for the seconds its layout prints it (3x4+II: II for 10 s, the others 2.5 s), as
        CSV, WFDB record and/or JSON, the signals drawn over the image (<stem>-overlay.png) and plotted on ECG
        paper (<stem>-leads.png).
    python -m pipeline serve [--host 127.0.0.1] [--port 8000] [--weights DIR] [--workers N]
        the upload web page and its API (POST /api/digitize).
    python -m pipeline demo [--out DIR]
        digitize the sample pages in pipeline/samples and print their SNR against the known truth.

predict, cv and digitize show progress and end with one summary line; --quiet shows only failures and
the summary, --verbose every page's outputs, warnings and timings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common.geometry import GAINS_MM_PER_MV
from common.layouts import get_layout, known_layout_names

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEVICES = ("cpu", "cuda")  # where the stage-1 network can run


def _types(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _layout(text: str) -> str:
    try:
        return get_layout(text.strip()).name
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0])) from None


def _formats(text: str) -> list[str]:
    from pipeline.outputs import FORMATS

    chosen = _types(text.lower())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"formats are a comma-separated list of {','.join(FORMATS)}; got {text!r}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="submission for a test-layout folder")
    predict.add_argument("--data-dir", type=Path, required=True)
    predict.add_argument("--out", type=Path, required=True, help="submission file, .parquet or .csv")

    cv = commands.add_parser("cv", help="score the pipeline on a train-layout folder")
    cv.add_argument("--data-dir", type=Path, required=True)
    cv.add_argument("--types", type=_types, default=None, help="only these image types")
    cv.add_argument("--out", type=Path, default=Path("cv_images.csv"), help="per-image scores (CSV)")
    cv.add_argument("--folds", type=int, default=5, help="record-level folds to report the score over")
    cv.add_argument("--stages", action="store_true",
                    help="also each stage fed the truth of the one before it (pages with labels and maps)")
    cv.add_argument("--cv-dir", type=Path, default=None,
                    help="keep the run here (scores, stages, worst pages) for `pipeline report`")

    report = commands.add_parser("report", help="docs/report.md from cv runs kept with --cv-dir")
    report.add_argument("--cv-dir", type=Path, nargs="+", required=True)
    report.add_argument("--out", type=Path, default=Path("docs"))

    digitize = commands.add_parser("digitize", help="digitize image files")
    digitize.add_argument("images", type=Path, nargs="+")
    digitize.add_argument("--fs", type=float, default=500.0, help="output sampling rate (Hz)")
    digitize.add_argument("--out", type=Path, default=Path("digitized"))
    digitize.add_argument("--format", type=_formats, default=["csv"], dest="formats",
                          help="comma-separated: csv, wfdb (.hea/.dat, mV), json (default csv)")
    layout_help = (f"read every image by this layout: {', '.join(known_layout_names())}, or a '/gapXmm' variant "
                   "(default: the layout found on each image)")
    for sub in (cv, digitize):
        sub.add_argument("--layout", type=_layout, default=None, help=layout_help)
        sub.add_argument("--mm-per-mv", type=float, choices=GAINS_MM_PER_MV, default=None,
                         help="read every chart at this gain, mm per mV (default: the gain its calibration pulses "
                              "show, else 10)")

    serve = commands.add_parser("serve", help="the upload web page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker; more get 503")

    for sub in (predict, cv, digitize, serve):
        sub.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="folder of stage bundles")
        sub.add_argument("--workers", type=int, default=1)
        sub.add_argument("--device", choices=DEVICES, default="cpu",
                         help="where the stage-1 network runs (cuda: a GPU; every worker shares it)")
    for sub in (predict, cv, digitize):
        talk = sub.add_mutually_exclusive_group()
        talk.add_argument("--quiet", action="store_true", help="only failures and the summary line")
        talk.add_argument("--verbose", action="store_true", help="every page's outputs, warnings and timings")

    demo = commands.add_parser("demo", help="digitize the shipped sample pages")
    demo.add_argument("--out", type=Path, default=Path("demo_out"))
    demo.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="folder of stage bundles")

    args = parser.parse_args(argv)
    level = logging.WARNING if getattr(args, "quiet", False) else (
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    progress = not getattr(args, "quiet", False)
    if args.command == "demo":
        from pipeline.demo import run_demo

        return run_demo(args.out, args.weights)
    if args.command == "report":
        from pipeline.report import IMAGES_CSV, write_report

        missing = [str(d) for d in args.cv_dir if not (d / IMAGES_CSV).is_file()]
        if missing:
            parser.error(f"not a cv run folder (no {IMAGES_CSV}; make one with pipeline cv --cv-dir): {missing}")
        print(f"wrote {write_report(args.cv_dir, args.out)}")
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: this torch sees no CUDA GPU")
    if args.command == "predict":
        from pipeline.batch import predict as run_predict

        if args.out.suffix not in (".csv", ".parquet"):
            parser.error("--out must end in .csv or .parquet")
        if not (args.data_dir / "test.csv").is_file():
            parser.error(f"{args.data_dir} has no test.csv")
        path = run_predict(args.data_dir, args.out, args.weights, args.workers, progress, device=args.device)
        print(f"wrote {path}")
        return 0
    if args.command == "cv":
        from pipeline.batch import cross_validate, summarise, summary_line

        if not (args.data_dir / "train.csv").is_file():
            parser.error(f"{args.data_dir} has no train.csv")
        args.out.parent.mkdir(parents=True, exist_ok=True)  # made before the run, not found missing after it
        start = time.perf_counter()
        images, leads = cross_validate(args.data_dir, args.weights, args.workers, args.types, progress,
                                       device=args.device, layout=args.layout, mm_per_mv=args.mm_per_mv)
        from pipeline.report import fold_keys, fold_scores, record_fold

        if args.folds < 1:
            parser.error("--folds must be at least 1")
        images["source_record"] = fold_keys(args.data_dir, images["record_id"])
        images["fold"] = [record_fold(k, args.folds) for k in images["source_record"]]
        images.to_csv(args.out, index=False)
        print(summarise(images, leads))
        print("per record-level fold (every image of a record in one fold):")
        print(fold_scores(images).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        stages = None
        if args.stages:
            from pipeline.chain import Pipeline
            from pipeline.stage_losses import format_table, stage_loss_table, stage_readings

            stages = stage_readings(args.data_dir, Pipeline.from_bundles(args.weights, args.device), args.types,
                                    progress)
            print("what each stage loses (dB; each reading feeds one more stage the truth):")
            print(format_table(stage_loss_table(stages)))
        if args.cv_dir is not None:
            from pipeline.report import save_run, write_worst_pages

            command = "python -m pipeline " + " ".join(sys.argv[1:] if argv is None else argv)
            save_run(args.cv_dir, images, leads, stages,
                     {"command": command, "data_dir": str(args.data_dir), "weights": str(args.weights)})
            write_worst_pages(args.cv_dir, args.data_dir, images, args.weights)
            print(f"run kept in {args.cv_dir}")
        print(f"per-image scores: {args.out}")
        print(summary_line(len(images), int((images["error"] != "").sum()), time.perf_counter() - start))
        return 0
    if args.command == "digitize":
        from pipeline.batch import digitize_files

        failed = digitize_files(args.images, args.out, args.fs, args.weights, args.workers, args.device,
                                args.formats, progress, args.verbose, args.layout, args.mm_per_mv)
        return 1 if failed else 0
    if args.command == "serve":
        from pipeline.server import serve

        if args.queue < 0:
            parser.error("--queue must be 0 or more")
        if not args.weights.is_dir():
            parser.error(f"weights folder {args.weights} does not exist")
        serve(args.host, args.port, args.weights, args.workers, args.queue, args.device)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
