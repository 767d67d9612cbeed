"""Stage-2 settings scored on cached stage 0 + 1 outputs: tune reading settings in seconds, not minutes.

    python -m benchmarks.stage2_sweep --data-dir /tmp/eik_eval --cache /tmp/cache_eik \
        [--set calibrate.bar_guard_px=0,4,6] [--set extract.level=0.07] [--types 0001] [--weights weights]

``--data-dir`` is a train-layout folder (``synth.make``, ``synth.eik``, ``benchmarks.make_eval_set``). The first
run digitizes every image once and keeps each image's rectified sheet and trace maps under ``--cache`` (a folder
per data set; delete it after changing stage 0 or 1). Every combination of the ``--set`` values (dotted
``section.field`` of the stage-2 bundle's config, with the bundle's refiner if it has one) is then read from the
cache and scored with the competition
metric; printed per combination: the score over all images and per image type (and per variant where the folder
has a ``variants.csv``).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from common.layouts import LEADS
from common.metric import image_snr, snr_db_from_linear
from common.types import Page, Rectified, TraceMaps
from pipeline.batch import train_jobs
from pipeline.chain import Pipeline, read_image_rgb
from stage2_signal.infer import ExtractorConfig, SignalExtractor, extract


def cached_outputs(pipeline: Pipeline, jobs, cache: Path) -> dict:
    """image id -> (Rectified, TraceMaps), computed once per image and kept under ``cache``; None for a page the
    shipped pipeline could not read (e.g. no ECG found), which then scores as the flat fallback."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for job in tqdm(jobs, desc="stage 0+1 (cached)"):
        stem = cache / job.image_id
        refused = stem.with_name(stem.name + ".refused.txt")
        if not (stem.with_name(stem.name + ".maps.npz")).is_file() and not refused.is_file():
            page = Page(job.image_id, read_image_rgb(job.path), job.fs_hz, job.samples_per_lead)
            result = pipeline.digitize(page)
            if result.maps is None:
                refused.write_text(result.error or "refused")
            else:
                result.rectified.save(stem.with_name(stem.name + ".rect"))
                result.maps.save(stem.with_name(stem.name + ".maps"))
        out[job.image_id] = None if refused.is_file() else (Rectified.load(stem.with_name(stem.name + ".rect")),
                                                            TraceMaps.load(stem.with_name(stem.name + ".maps")))
    return out


def with_overrides(base: dict, overrides: dict) -> ExtractorConfig:
    d = json.loads(json.dumps(base))
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        d.setdefault(section, {})[name] = value
    return ExtractorConfig.from_dict(d)


def score(config: ExtractorConfig, jobs, truth: dict, outputs: dict, refiner=None) -> pd.DataFrame:
    rows = []
    for job in jobs:
        try:
            if outputs[job.image_id] is None:
                raise ValueError("the shipped pipeline could not read it")
            rectified, maps = outputs[job.image_id]
            ex = extract(maps, rectified.px_per_mm, job.fs_hz, job.samples_per_lead, config, refiner,
                         sheet_rgb=rectified.sheet_rgb)
            pred = ex.signals.leads_mv
        except ValueError:
            pred = {lead: np.zeros(len(truth[job.image_id][lead])) for lead in LEADS}
        snr = image_snr({lead: truth[job.image_id][lead] for lead in LEADS}, pred, job.fs_hz)
        rows.append({"image_id": job.image_id, "type": job.image_id.rsplit("-", 1)[1], "snr": snr})
    return pd.DataFrame(rows)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--types", type=lambda s: s.split(","), default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=V1,V2",
                        help="values to try for one stage-2 setting (JSON values, comma-separated)")
    args = parser.parse_args(argv)
    grid = {}
    for item in args.set:
        key, _, values = item.partition("=")
        if "." not in key or not values:
            parser.error(f"--set takes SECTION.FIELD=V1,V2, got {item!r}")
        grid[key] = [_value(v) for v in values.split(",")]
    jobs, truth = train_jobs(args.data_dir, args.types)
    if not jobs:
        parser.error(f"no images under {args.data_dir / 'train'}")
    pipeline = Pipeline.from_bundles(args.weights)
    outputs = cached_outputs(pipeline, jobs, args.cache)
    base = pipeline.extractor.config.to_dict()
    variants_path = args.data_dir / "variants.csv"
    variants = pd.read_csv(variants_path) if variants_path.is_file() else None
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        overrides = dict(zip(keys, combo, strict=True))
        config = with_overrides(base, overrides)
        # the same checks as a bundle; a bundle's refiner (its weights beside its config) reads every setting
        SignalExtractor(config, args.weights / "stage2_signal")
        images = score(config, jobs, truth, outputs, pipeline.extractor.refiner)
        parts = [f"all {snr_db_from_linear(images['snr']):.2f}"]
        parts += [f"{t} {snr_db_from_linear(g['snr']):.2f}" for t, g in images.groupby("type")]
        if variants is not None and "grid" in variants:
            merged = images.merge(variants, on="image_id")
            parts += [f"{g} {snr_db_from_linear(v['snr']):.2f}" for g, v in merged.groupby("grid")]
        print(f"{overrides or 'bundle'}: " + ", ".join(parts) + f" dB ({len(images)} images)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
