"""Write a synthetic dataset in the competition's layout, with exact labels beside every image.

    python -m synth.make --signals DIR --n-records N --types 0001,0003 --out DIR [--seed S] [--workers W]
                         [--layout train|test] [--layouts '3x4+II,V1,V5;6x2'] [--simulated]
                         [--gaps SHARE] [--gap-mm LO,HI] [--outside-pulse SHARE] [--signal-rows SHARE]
                         [--cabrera SHARE] [--time-marks SHARE] [--half-gain SHARE]

train layout: train.csv (id, fs, sig_len), train/<id>/<id>.csv (mV, NaN where not printed),
    train/<id>/<id>-<type>.png, variants.csv (image id, the base layout it is drawn in, its arrangement),
    and labels: train/<id>/<id>.labels.{npz,json} (the sheet's labels) and
    train/<id>/<id>-<type>.map.json (the image's exact map onto the canonical sheet).
test layout: test.csv (id, lead, fs, number_of_rows), test/<image id>.png with image id "<id>-<type>",
    solution.csv (id, value, fs) for scoring, and the same labels under labels/.
Both: records.csv says which source record and window each id came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from common.layouts import LEADS, base_name, get_layout, known_layout_names
from common.types import IMAGE_TYPES, SUPPORTED_FS_HZ
from synth.factory import SynthPage, make_page
from synth.labels import SheetLabels
from synth.render import Arrangements
from synth.signals import Record, iter_records, simulate_record, windows

log = logging.getLogger("synth.make")


def collect_windows(signals_dir: Path | None, n_records: int, seed: int,
                    adc_gain: float | None = None) -> list[Record]:
    """``n_records`` 10 s windows: from real records under ``signals_dir`` (a seeded random choice
    among all windows), or simulated ones when ``signals_dir`` is None. ``adc_gain`` (ADC units per mV)
    overrides WFDB header gains that are known to be wrong."""
    if signals_dir is None:
        return [simulate_record(np.random.default_rng([seed, i]), record_id=f"sim{i}") for i in range(n_records)]
    all_windows = [w for record in iter_records(signals_dir, adc_gain=adc_gain) for w in windows(record)]
    if not all_windows:
        raise SystemExit(f"no readable 12-lead records of 10 s or more under {signals_dir}")
    order = np.random.default_rng(seed).permutation(len(all_windows))
    if n_records > len(all_windows):
        log.warning("only %d windows under %s; %d asked, records repeat in other styles",
                    len(all_windows), signals_dir, n_records)
    return [all_windows[order[i % len(order)]] for i in range(n_records)]


def write_image(path: Path, image_rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def signals_frame(labels: SheetLabels) -> pd.DataFrame:
    """The competition's per-record CSV: mV per lead, NaN where the page does not print the sample."""
    return pd.DataFrame(labels.signals_mv.T, columns=list(LEADS))


def _write_labels(page: SynthPage, folder: Path, stem: str) -> None:
    page.labels.save(folder / f"{stem}.labels")
    for image_type, image in page.images.items():
        (folder / f"{stem}-{image_type}.map.json").write_text(json.dumps(image.sheet_map.to_dict()))


def _write_train(page: SynthPage, out: Path, record_id: str) -> None:
    folder = out / "train" / record_id
    folder.mkdir(parents=True, exist_ok=True)
    signals_frame(page.labels).to_csv(folder / f"{record_id}.csv", index=False, float_format="%.6f")
    for image_type, image in page.images.items():
        write_image(folder / f"{record_id}-{image_type}.png", image.image_rgb)
    _write_labels(page, folder, record_id)


def _write_test(page: SynthPage, out: Path, record_id: str) -> pd.DataFrame:
    """Writes the images and labels; returns this record's solution rows."""
    (out / "test").mkdir(parents=True, exist_ok=True)
    labels_dir = out / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    for image_type, image in page.images.items():
        write_image(out / "test" / f"{record_id}-{image_type}.png", image.image_rgb)
    _write_labels(page, labels_dir, record_id)
    parts = []
    for image_type in page.images:
        for lead in LEADS:
            values = page.labels.lead_signal(lead)
            ids = np.char.add(f"{record_id}-{image_type}_", np.char.add(np.arange(values.size).astype(str), f"_{lead}"))
            parts.append(pd.DataFrame({"id": ids, "value": values, "fs": page.labels.fs_hz}))
    return pd.concat(parts, ignore_index=True)


def arrangement_of(labels: SheetLabels) -> str:
    """How a page is arranged besides its base layout, for reports: "+"-joined of "gap" (between panels),
    "cabrera", "outside-pulse", "signal-rows", "time-ticks", "time-axis" or "5mm-per-mV" (another gain than
    10 mm/mV); "plain" for none."""
    style, name = labels.style, labels.layout_name
    marks = style.get("time_marks", "none")
    parts = [part for part, on in (("gap", "/gap" in name), ("cabrera", "/cabrera" in name),
                                   ("outside-pulse", style.get("pulse_style") == "outside"),
                                   ("signal-rows", style.get("row_pitch") == "signal"),
                                   (f"time-{marks}", marks != "none"),
                                   (f"{style.get('mm_per_mv', 10.0):g}mm-per-mV", style.get("mm_per_mv", 10.0) != 10.0))
             if on]
    return "+".join(parts) or "plain"


def _job(args) -> tuple[str, float, dict, pd.DataFrame | None, str, str]:
    record, index, record_id, seed, types, layouts, fs_choices, out, layout_kind, eik_look, arrangements = args
    page = make_page(record, index, seed, types, layouts, fs_choices, record_id=record_id, eik_look=eik_look,
                     arrangements=arrangements)
    counts = {lead: int(page.labels.lead_signal(lead).size) for lead in LEADS}
    solution = _write_test(page, out, record_id) if layout_kind == "test" else None
    if layout_kind == "train":
        _write_train(page, out, record_id)
    return (record_id, page.labels.fs_hz, counts, solution, base_name(page.labels.layout_name),
            arrangement_of(page.labels))


def map_jobs(fn, jobs: Sequence, workers: int = 1, progress: bool = True, desc: str = "pages") -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` spawned processes when more than one, with a progress bar."""
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            return list(tqdm(pool.imap(fn, jobs), total=len(jobs), disable=not progress, desc=desc))
    return [fn(j) for j in tqdm(jobs, disable=not progress, desc=desc)]


def make_dataset(out: Path, records: Sequence[Record], image_types: Sequence[str], seed: int = 0,
                 workers: int = 1, layout_kind: str = "train", layouts: Sequence[str] | None = None,
                 fs_choices: Sequence[int] = SUPPORTED_FS_HZ, progress: bool = True, eik_look: float = 0.0,
                 arrangements: Arrangements | None = None) -> Path:
    if layout_kind not in ("train", "test"):
        raise ValueError(f"layout_kind must be 'train' or 'test', got {layout_kind!r}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(r, i, str(10_000 + i), seed, tuple(image_types), layouts, tuple(fs_choices), out, layout_kind, eik_look,
             arrangements) for i, r in enumerate(records)]
    results = map_jobs(_job, jobs, workers, progress, "pages")

    pd.DataFrame({"id": [r[0] for r in results], "source": [rec.source for rec in records],
                  "source_record": [rec.record_id for rec in records]}).to_csv(out / "records.csv", index=False)
    if layout_kind == "train":
        pd.DataFrame({"id": [r[0] for r in results], "fs": [int(r[1]) for r in results],
                      "sig_len": [int(round(10 * r[1])) for r in results]}).to_csv(out / "train.csv", index=False)
        # which layout each page is drawn in, for `pipeline cv`'s per-layout scores (and its arrangement, where
        # any page has one: sets made without arrangements keep their old variants.csv)
        variants = pd.DataFrame([{"image_id": f"{r[0]}-{t}", "layout": r[4], "arrangement": r[5]}
                                 for r in results for t in image_types])
        if (variants["arrangement"] == "plain").all():
            variants = variants.drop(columns="arrangement")
        variants.to_csv(out / "variants.csv", index=False)
    else:
        rows = [(f"{rid}-{t}", lead, int(fs), counts[lead])
                for rid, fs, counts, *_ in results for t in image_types for lead in LEADS]
        pd.DataFrame(rows, columns=["id", "lead", "fs", "number_of_rows"]).to_csv(out / "test.csv", index=False)
        pd.concat([r[3] for r in results], ignore_index=True).to_csv(out / "solution.csv", index=False,
                                                                      float_format="%.6f")
    return out


def parse_types(text: str) -> list[str]:
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in IMAGE_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(f"unknown image types {unknown}; choose from {','.join(IMAGE_TYPES)}")
    return types


def _is_layout(name: str) -> bool:
    try:
        get_layout(name)
    except KeyError:
        return False
    return True


def parse_layouts(text: str) -> list[str]:
    """Layout names from ``;``-separated groups (``"3x4+II,V1,V5;6x2"``); inside a group commas separate names too,
    the longest known name winning ("3x4+II,V1,V5" is one layout, "3x4+II,6x2" two), so the old comma lists
    still read. Variants read too ("3x4+II/cabrera;6x2/gap5mm")."""
    names: list[str] = []
    for group in text.split(";"):
        tokens = [t.strip() for t in group.split(",")]
        while tokens:
            for n in range(len(tokens), 0, -1):
                name = ",".join(tokens[:n])
                if _is_layout(name):
                    break
            else:
                if tokens[0]:
                    raise argparse.ArgumentTypeError(f"unknown layout {tokens[0]!r} in {text!r}; choose from "
                                                     f"{'; '.join(known_layout_names())} or their '/gapXmm' "
                                                     "variants (separate several with ';')")
                n, name = 1, ""
            if name:
                names.append(name)
            tokens = tokens[n:]
    if not names:
        raise argparse.ArgumentTypeError(f"no layout named in {text!r}; choose from {'; '.join(known_layout_names())}")
    return names


def parse_gap_range(text: str) -> tuple[float, float]:
    """``"2,8"`` -> (2.0, 8.0) mm."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gap-mm takes LO,HI in mm (e.g. 2,8), got {text!r}") from None
    return lo, hi


def add_arrangement_args(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`synth.render.Arrangements` (shares of pages; 1 forces one on every page)."""
    parser.add_argument("--gaps", type=float, default=0.0,
                        help="share of pages with blank paper between the panels of a row (--gap-mm wide)")
    parser.add_argument("--gap-mm", type=parse_gap_range, default=(2.0, 8.0),
                        help="LO,HI: the gaps' widths in mm, drawn uniformly, capped to fit the sheet (default 2,8)")
    parser.add_argument("--outside-pulse", type=float, default=0.0,
                        help="share of pages whose calibration pulse stands left of the row, 2-4 mm clear of it")
    parser.add_argument("--signal-rows", type=float, default=0.0,
                        help="share of pages whose row pitches follow the rows' amplitudes")
    parser.add_argument("--cabrera", type=float, default=0.0,
                        help="share of 3x4+II and 6x2 pages with their limb leads in Cabrera's order (-aVR)")
    parser.add_argument("--time-marks", type=float, default=0.0,
                        help="share of pages with time ticks, or an axis with them, under each panel (half each)")
    parser.add_argument("--half-gain", type=float, default=0.0,
                        help="share of pages whose chart (traces, pulses) is drawn at 5 mm/mV instead of 10")


def arrangements_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Arrangements | None:
    try:
        arrangements = Arrangements(args.gaps, args.gap_mm, args.outside_pulse, args.signal_rows, args.cabrera,
                                    args.time_marks, args.half_gain)
    except ValueError as exc:
        parser.error(str(exc))
    return arrangements if arrangements.any else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.make", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--signals", type=Path, help="folder of WFDB / CPSC .mat records (searched recursively)")
    source.add_argument("--simulated", action="store_true", help="use the built-in simulated 12-lead source")
    parser.add_argument("--n-records", type=int, required=True)
    parser.add_argument("--types", type=parse_types, default=list(IMAGE_TYPES), help="comma-separated image types")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--layout", choices=["train", "test"], default="train", help="dataset layout to write")
    parser.add_argument("--layouts", type=parse_layouts, default=["3x4+II"],
                        help="page layouts to draw from, separated by ';' (e.g. '3x4+II,V1,V5;6x2;3x4+II/gap5mm')")
    add_arrangement_args(parser)
    parser.add_argument("--eik-look", type=float, default=0.0,
                        help="share of pages drawn with ECG-Image-Kit's marks (bold bars across the baseline, a pulse "
                             "abutting the trace, names below it, grey traces, dark same-coloured grids)")
    parser.add_argument("--adc-gain", type=float, default=None,
                        help="ADC units per mV for every WFDB signal, overriding header gains (the LUDB copy in "
                             "../shared/data/signals needs 1000: its header gains scale each lead to 1 mV)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.n_records < 1:
        parser.error("--n-records must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.signals is not None and not args.signals.is_dir():
        parser.error(f"--signals {args.signals} is not a folder")
    layouts = args.layouts
    records = collect_windows(None if args.simulated else args.signals, args.n_records, args.seed, args.adc_gain)
    out = make_dataset(args.out, records, args.types, args.seed, args.workers, args.layout, layouts,
                       eik_look=args.eik_look, arrangements=arrangements_from(args, parser))
    print(f"wrote {len(records)} records x {len(args.types)} types in {args.layout} layout to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
