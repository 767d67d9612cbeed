"""Run stage 2 on saved TraceMaps.

    python -m stage2_signal.run --maps DIR_OR_STEM --out DIR [--bundle DIR] [--fs HZ] [--px-per-mm V]
                                [--rectified DIR] [--truth LABELS_STEM_OR_DIR] [--viz]

Writes ``<out>/<image id>.signals.{npz,json}`` (a :class:`~common.types.Signals`) and
``<out>/<image id>.stage2.json`` (time origin per row, scales, and the SNR when truth is given); with
``--viz`` also ``<image id>.rows.png`` (the read traces over the maps) and ``<image id>.signals.png``.

``--rectified`` is a folder of stage 0's saved Rectified contracts (``python -m stage0_rectify.run
--contracts``), looked up by image id: with one, the trace's stroke width is measured on its sheet and its
px_per_mm is used, as the pipeline does; without, the trace ends are taken as the maps show them.

``--truth`` is a synth labels stem (``.../<id>.labels``) or a folder holding ``<id>.labels.{npz,json}``
(looked up by image id, then by the id without a ``-<type>`` suffix). With truth, fs and the per-lead
sample counts come from the labels; otherwise from ``--fs`` (default 500) and the competition's counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.layouts import LEADS
from common.metric import image_snr, lead_powers
from common.types import Page, Rectified, TraceMaps
from stage2_signal.infer import SignalExtractor

log = logging.getLogger("stage2_signal.run")


def find_maps(path: Path) -> list[Path]:
    """TraceMaps stems: ``path`` itself if it is one, else every TraceMaps in the folder."""
    if Path(str(path) + ".json").is_file():
        return [path]
    if not path.is_dir():
        raise SystemExit(f"--maps {path} is neither a TraceMaps stem nor a folder")
    stems = []
    for meta in sorted(path.glob("*.json")):
        try:
            if json.loads(meta.read_text()).get("contract") == "TraceMaps":
                stems.append(meta.with_suffix(""))
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
    if not stems:
        raise SystemExit(f"no TraceMaps found in {path}")
    return stems


def find_labels(truth: Path | None, image_id: str):
    if truth is None:
        return None
    from synth.labels import SheetLabels

    if Path(str(truth) + ".json").is_file():
        return SheetLabels.load(truth)
    for name in (image_id, re.sub(r"-\d{4}$", "", image_id)):
        stem = truth / f"{name}.labels"
        if Path(str(stem) + ".json").is_file():
            return SheetLabels.load(stem)
    log.warning("no labels for %s under %s", image_id, truth)
    return None


def find_rectified(folder: Path | None, image_id: str) -> Rectified | None:
    if folder is None:
        return None
    stem = folder / image_id
    if Path(str(stem) + ".json").is_file():
        return Rectified.load(stem)
    log.warning("no Rectified contract for %s under %s: trace ends not corrected for the stroke", image_id, folder)
    return None


def uncapped_snr_db(truth: dict, pred: dict, fs_hz: float) -> float:
    s = n = 0.0
    for lead in truth:
        a, b, _, _ = lead_powers(truth[lead], pred[lead], fs_hz)
        s, n = s + a, n + b
    return float(10 * np.log10(s / n)) if n > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stage2_signal.run", description=__doc__.split("\n")[0])
    ap.add_argument("--maps", type=Path, required=True, help="TraceMaps stem or folder of them")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, default=None, help="stage-2 bundle folder (config.json)")
    ap.add_argument("--fs", type=float, default=None, help="sampling rate (default: labels' or 500)")
    ap.add_argument("--px-per-mm", type=float, default=CANONICAL.px_per_mm, help="measured sheet resolution")
    ap.add_argument("--rectified", type=Path, default=None, help="folder of stage 0's saved Rectified contracts")
    ap.add_argument("--truth", type=Path, default=None, help="synth labels stem or folder")
    ap.add_argument("--viz", action="store_true", help="write PNG plots")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        extractor = SignalExtractor.from_bundle(args.bundle) if args.bundle else SignalExtractor()
    except (FileNotFoundError, ValueError) as exc:  # no bundle there, or an incomplete or altered one
        ap.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for stem in find_maps(args.maps):
        maps = TraceMaps.load(stem)
        labels = find_labels(args.truth, maps.image_id)
        if labels is not None:
            fs = float(labels.fs_hz)
            truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
            counts = {lead: truth[lead].size for lead in LEADS}
        else:
            fs = float(args.fs or 500.0)
            truth = None
            page = Page(maps.image_id, np.zeros((16, 16, 3), np.uint8), fs)
            counts = {lead: page.n_samples(lead) for lead in LEADS}
        rectified = find_rectified(args.rectified, maps.image_id)
        px_per_mm = args.px_per_mm if rectified is None else rectified.px_per_mm
        try:
            ex = extractor.extract(maps, px_per_mm, fs, counts, None if rectified is None else rectified.sheet_rgb)
        except ValueError as exc:
            log.error("%s: %s", maps.image_id, exc)
            failures += 1
            continue
        ex.signals.save(args.out / f"{maps.image_id}.signals")
        summary = {"image_id": maps.image_id, "fs_hz": fs, **ex.info}
        line = f"{maps.image_id}: fs {fs:g} Hz, x0 {np.round(ex.info['x0_px'], 2).tolist()}"
        if truth is not None:
            summary["snr_db"] = 10 * float(np.log10(image_snr(truth, ex.signals.leads_mv, fs)))
            summary["snr_db_uncapped"] = uncapped_snr_db(truth, ex.signals.leads_mv, fs)
            summary["true_x0_px"] = float(labels.x0_px)
            line += f", SNR {summary['snr_db']:.2f} dB (uncapped {summary['snr_db_uncapped']:.2f})"
        (args.out / f"{maps.image_id}.stage2.json").write_text(json.dumps(summary, indent=1))
        log.info(line)
        if args.viz:
            from stage2_signal.viz import row_overlays, signal_plot

            cv2.imwrite(str(args.out / f"{maps.image_id}.rows.png"), row_overlays(maps, ex, labels))
            cv2.imwrite(str(args.out / f"{maps.image_id}.signals.png"), signal_plot(ex.signals.leads_mv, fs, truth))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
