"""How well stage 2 finds the chart's time origin x0, and what its error costs, on labelled factory pages.

    python -m benchmarks.time_origin --data-dir /tmp/eval [--types 0001,0003] [--weights weights]

``--data-dir`` is a train-layout folder written by ``synth.make`` or ``benchmarks.make_eval_set`` (it keeps
each record's labels and each image's exact map onto the sheet). For every page the pipeline's stages 0 and 1
run once; stage 2 then places x0 four ways: from the trace ends as the maps show them, with the ends
corrected by the stroke width measured on the sheet, then re-timed by the panel separators where the sheet
shows them (what the pipeline does; ``separators`` counts the pages they timed), and at the true origin (the
labels' x0 carried through the exact map and the rectifier's map). Printed per image type: the x0 error
(sheet px; + is late) and the metric over the pages for each way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from common.layouts import LEADS, get_layout
from common.metric import image_snr, snr_db_from_linear
from common.sheet_map import SheetMap
from common.types import Page
from pipeline.batch import train_jobs
from pipeline.chain import Pipeline, read_image_rgb
from stage2_signal import calibrate
from stage2_signal.extract import read_rows
from stage2_signal.postprocess import assemble_leads
from stage2_signal.stroke import stroke_width_px
from synth.make import parse_types

WAYS = ("maps", "stroke", "separators", "true")


def true_x0(job_path: Path, rectified) -> np.ndarray:
    """The labels' x0 at each row's baseline, in the rectified sheet's coordinates."""
    record_dir = job_path.parent
    labels = json.loads(next(record_dir.glob("*.labels.json")).read_text())
    exact = SheetMap.from_dict(json.loads(job_path.with_name(job_path.stem + ".map.json").read_text()))
    pts = np.array([[labels["x0_px"], y] for y in labels["baselines_y_px"]])
    return rectified.sheet_map.image_to_sheet(exact.sheet_to_image(pts))[:, 0]


def page_rows(pipeline: Pipeline, job, truth: dict) -> dict:
    page = Page(job.image_id, read_image_rgb(job.path), job.fs_hz, job.samples_per_lead)
    result = pipeline(page)
    cfg = pipeline.extractor.config
    traces = read_rows(result.maps, cfg.extract)
    layout = get_layout(result.maps.layout_name)
    stroke = stroke_width_px(result.rectified.sheet_rgb, traces)
    x0_true = true_x0(job.path, result.rectified)
    row = {"image_id": job.image_id, "type": job.image_id.rsplit("-", 1)[1], "stroke_px": stroke}
    for way in WAYS:
        given = x0_true if way == "true" else None
        stroke_used = stroke if way in ("stroke", "separators") else None
        sheet = result.rectified.sheet_rgb if way == "separators" else None
        readings, info = calibrate.read_panels(traces, layout, job.fs_hz, result.rectified.px_per_mm,
                                               cfg.calibrate, stroke_used, given, sheet)
        if way == "separators":
            row["bars"] = info["separator_bars"]
        leads, _ = assemble_leads(readings, calibrate.n_record_samples(job.fs_hz), job.samples_per_lead,
                                  cfg.postprocess)
        row[f"err_{way}"] = float(np.mean(np.asarray(info["x0_px"]) - x0_true))
        row[f"snr_{way}"] = image_snr(truth, leads, job.fs_hz)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--types", type=parse_types, default=["0001", "0003"])
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    args = parser.parse_args()
    jobs, truth = train_jobs(args.data_dir, args.types)
    pipeline = Pipeline.from_bundles(args.weights)
    if pipeline.extractor.refiner is not None:
        pipeline = dataclasses.replace(pipeline, extractor=type(pipeline.extractor)(
            dataclasses.replace(pipeline.extractor.config, refiner=None)))
    rows = []
    for job in jobs:
        try:
            rows.append(page_rows(pipeline, job, {lead: truth[job.image_id][lead] for lead in LEADS}))
        except ValueError as exc:
            print(f"{job.image_id}: skipped ({exc})")
    df = pd.DataFrame(rows)
    for name, part in [*df.groupby("type"), ("all", df)]:
        errs = "  ".join(f"{way} {part[f'err_{way}'].median():+.2f} (|e| {part[f'err_{way}'].abs().median():.2f})"
                         for way in WAYS[:3])
        snrs = "  ".join(f"{way} {snr_db_from_linear(part[f'snr_{way}']):.2f}" for way in WAYS)
        timed = int((part["bars"] > 0).sum())
        print(f"{name} ({len(part)} pages, {timed} timed by separators): x0 error median {errs} px | SNR dB: {snrs}")


if __name__ == "__main__":
    main()
