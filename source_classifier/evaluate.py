"""How well the source classifier names the image type.

    python -m source_classifier.evaluate --signals DIR --n-per-type N [--seed 2] [--bundle weights/source_classifier]
    python -m source_classifier.evaluate --images DIR [DIR ...]

With ``--signals``: renders N FRESH factory pages from the validation records (every 10th record path of each
source, which training never sees; seed 2, while training's validation pool uses seed 1 and training seed 0),
degrades each page as all nine types, and prints the accuracy, the per-type accuracy, the share routed as
low-confidence, how often the route taken has the true type's rectifier (and every setting it needs), the 9x9
confusion matrix (rows: true type, columns: predicted) and the time per image.
With ``--images``: unlabelled pictures; prints how many are predicted as each type and how many are
low-confidence (a sanity check on real images).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np

from common.types import IMAGE_TYPES, Page, SourcePrediction
from synth.degrade import degrade
from synth.factory import page_rng


def confusion_table(cm: np.ndarray) -> str:
    """The confusion matrix as text: rows true type, columns predicted type."""
    lines = ["true\\pred " + " ".join(f"{t:>5}" for t in IMAGE_TYPES)]
    for i, t in enumerate(IMAGE_TYPES):
        lines.append(f"{t:>9} " + " ".join(f"{int(v):>5}" for v in cm[i]))
    return "\n".join(lines)


def evaluate_synthetic(clf, signals: Path, n_per_type: int, seed: int, eik_pools: list[Path]) -> dict:
    from source_classifier.data import PageSource, eik_sheets, split_records
    from source_classifier.routing import RouteSettings, route, settings_for

    _, val_recs, _ = split_records(signals)
    source = PageSource(val_recs, "val", seed, eik_sheets(eik_pools))
    k = len(IMAGE_TYPES)
    cm = np.zeros((k, k), np.int64)
    low = same_rectifier = covered = 0
    times = []
    for index in range(n_per_type):
        sheet = source.sheet(index)
        for ti, t in enumerate(IMAGE_TYPES):
            img = degrade(sheet, t, page_rng(seed, index, 1 + ti)).image_rgb
            t0 = time.perf_counter()
            pred: SourcePrediction = clf(Page(f"{index}-{t}", img, fs_hz=500.0))
            times.append(time.perf_counter() - t0)
            cm[ti, IMAGE_TYPES.index(pred.image_type)] += 1
            low += int(pred.low_confidence)
            got, want = route(pred), settings_for(t)
            same_rectifier += int(got.rectifier == want.rectifier)
            covered += int(got.rectifier == want.rectifier and all(
                getattr(got, f.name) or not getattr(want, f.name) for f in fields(RouteSettings)
                if f.name not in ("route", "rectifier")))
        if (index + 1) % 10 == 0:
            print(f"{index + 1}/{n_per_type} pages: accuracy so far {np.trace(cm) / cm.sum():.4f}", flush=True)
    n = cm.sum()
    return {"cm": cm, "accuracy": float(np.trace(cm) / n), "low_confidence": low / n,
            "same_rectifier": same_rectifier / n, "covered": covered / n,
            "ms_per_image": 1000 * float(np.mean(times))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m source_classifier.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--signals", type=Path, help="folder of record sources (validation records are used)")
    src.add_argument("--images", type=Path, nargs="+", help="folders / files of unlabelled images")
    ap.add_argument("--n-per-type", type=int, default=40, help="fresh pages, each degraded as all nine types")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--eik-pool", type=Path, action="append", default=[],
                    help="ECG-Image-Kit pools whose plain drawings serve as a share of the sheets (validation ones)")
    ap.add_argument("--bundle", type=Path, default=Path("weights/source_classifier"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from source_classifier.infer import SourceClassifier

    clf = SourceClassifier.from_bundle(args.bundle, num_threads=args.threads)
    if args.signals is not None:
        res = evaluate_synthetic(clf, args.signals, args.n_per_type, args.seed, args.eik_pool)
        cm = res["cm"]
        print(f"accuracy {res['accuracy']:.4f} on {int(cm.sum())} images ({args.n_per_type} per type, seed "
              f"{args.seed}, validation records); low-confidence {100 * res['low_confidence']:.1f} %; "
              f"{res['ms_per_image']:.0f} ms/image on {args.threads} threads")
        print(f"routed with the true type's rectifier {100 * res['same_rectifier']:.1f} %, with it and every "
              f"setting the type needs {100 * res['covered']:.1f} % (a low-confidence page gets its likely types' "
              "pooled settings, or the general ones)")
        print("per type: " + ", ".join(f"{t} {cm[i, i] / max(1, cm[i].sum()):.3f}" for i, t in enumerate(IMAGE_TYPES)))
        print(confusion_table(cm))
        return 0

    from pipeline.image_io import ImageReadError, read_image
    from source_classifier.run import iter_images

    counts: Counter = Counter()
    low, n, unreadable = 0, 0, 0
    for path in iter_images(args.images):
        try:
            rgb = read_image(path).rgb
        except ImageReadError as exc:
            print(f"{path.name}: cannot read: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        pred = clf(Page(path.stem, rgb, fs_hz=500.0))
        counts[pred.image_type] += 1
        low += int(pred.low_confidence)
        n += 1
    print(f"{n} images ({unreadable} unreadable); low-confidence {low}")
    for t in IMAGE_TYPES:
        print(f"{t} {counts[t]:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
