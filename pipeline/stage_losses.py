"""How many dB each stage loses: the pipeline scored with each stage fed the truth of the stage before it.

On a train-layout folder whose pages carry their labels (the factory's and ``synth.eik``'s: the sheet's labels
``<id>.labels.*`` and each image's exact map ``<id>-<type>.map.json``), every image is read four ways:

1. ``pipeline``: as shipped;
2. ``true_sheet``: rectified by its labelled map instead of stage 0, then stages 1 (by the network the pipeline
   chose for the page: a keypoint sheet's is the photo network) and 2;
3. ``true_maps``: stage 2 on the ideal trace maps drawn from the labels (``stage2_signal.oracle``, the ink of
   the trace alone) over the true sheet;
4. ``true_maps_origin``: the same with the chart's time origin given (the labels' x0).

The differences are the losses of rectification (2 - 1), segmentation (3 - 2), timing (4 - 3); what stays
below the metric's cap in 4 is the rest of the reading (sub-pixel extraction, calibration, fusion). The
refiner, when the bundle has one, runs in every reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from common.geometry import CANONICAL
from common.metric import image_snr, snr_db_from_linear
from common.sheet_map import SheetMap
from common.types import Page, Rectified
from pipeline.batch import train_jobs
from pipeline.chain import Pipeline, read_image_rgb
from stage2_signal.oracle import oracle_maps
from synth.labels import SheetLabels

READINGS = ("pipeline", "true_sheet", "true_maps", "true_maps_origin")
LOSSES = {"rectification": ("true_sheet", "pipeline"), "segmentation": ("true_maps", "true_sheet"),
          "timing": ("true_maps_origin", "true_maps")}


def _labels_of(data_dir: Path, image_id: str) -> tuple[SheetLabels, SheetMap]:
    record_id = image_id.rsplit("-", 1)[0]
    folder = data_dir / "train" / record_id
    labels_path = folder / f"{record_id}.labels"
    map_path = folder / f"{image_id}.map.json"
    if not map_path.is_file():
        raise FileNotFoundError(f"{image_id}: no {map_path.name} (the per-stage table needs labelled pages)")
    return SheetLabels.load(labels_path), SheetMap.from_dict(json.loads(map_path.read_text()))


def stage_readings(data_dir: Path, pipeline: Pipeline, types: Sequence[str] | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Per image: the linear SNR of each of :data:`READINGS` (NaN where that reading failed)."""
    jobs, truth = train_jobs(data_dir, types)
    rows = []
    for job in tqdm(jobs, disable=not progress, desc="stage losses"):
        labels, sheet_map = _labels_of(data_dir, job.image_id)
        image = read_image_rgb(job.path)
        page = Page(job.image_id, image, job.fs_hz, job.samples_per_lead)
        row = {"image_id": job.image_id, "type": job.image_id.rsplit("-", 1)[1], "fs": job.fs_hz}

        def score(leads_mv, name, row=row, job=job):
            row[name] = image_snr(truth[job.image_id], leads_mv, job.fs_hz)

        result = pipeline.digitize(page)
        score(result.signals.leads_mv, "pipeline")
        sheet = Rectified(job.image_id, sheet_map.rectify(image), sheet_map, CANONICAL.px_per_mm, "labels", 1.0)
        # the true sheet is read by the network the pipeline read the page with (a photo's by the photo network),
        # so that the rectification's loss is not the networks' difference; a page it refused, by the general one
        seg = pipeline.segmenter if result.rectified is None else pipeline.stage1_network(
            page, result.rectified, labels.baselines_y_px)
        extractor = pipeline.extractor if result.rectified is None else pipeline.stage2_for(seg, result.rectified)
        gain = labels.chart_geometry.mm_per_mv  # the chart's, as drawn
        try:
            # the page's own layout on its labelled rows (the pipeline reads other layouts so too)
            maps = seg(sheet) if labels.layout_name == seg.layout_name else seg(
                sheet, labels.layout_name, tuple(float(y) for y in labels.baselines_y_px))
            score(extractor.extract(maps, sheet.px_per_mm, job.fs_hz, job.samples_per_lead, sheet.sheet_rgb,
                                    mm_per_mv=gain).signals.leads_mv, "true_sheet")
        except ValueError:
            row["true_sheet"] = np.nan
        ideal = oracle_maps(labels, scale_x=seg.spec.scale_x, scale_y=seg.spec.scale_y, image_id=job.image_id)
        for name, x0 in (("true_maps", None), ("true_maps_origin", np.full(labels.layout.n_rows, labels.x0_px))):
            try:
                # (the exact maps by the plain reading: a refiner learned the errors of a network's maps)
                ex = pipeline.extractor.extract(ideal, sheet.px_per_mm, job.fs_hz, job.samples_per_lead,
                                                sheet.sheet_rgb, x0_px=x0, mm_per_mv=gain)
                score(ex.signals.leads_mv, name)
            except ValueError:
                row[name] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def stage_loss_table(readings: pd.DataFrame, by: str = "type") -> pd.DataFrame:
    """Per group (and "all"): each reading's score (dB, the metric's mean over images) and each stage's loss."""
    groups = [("all", readings)] + [(str(k), g) for k, g in readings.groupby(by)]
    out = []
    for name, g in groups:
        row = {by: name, "images": len(g)}
        for reading in READINGS:
            row[reading] = snr_db_from_linear(g[reading].fillna(0.0))
        for loss, (better, worse) in LOSSES.items():
            row[f"loss_{loss}"] = row[better] - row[worse]
        out.append(row)
    return pd.DataFrame(out)


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.2f}")
