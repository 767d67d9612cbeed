"""Refiner training data: the errors the pipeline really makes, collected by running it on factory pages.

    python -m stage2_signal.data --signals ../shared/data/signals --weights weights --out runs/refiner/train.npz \
        --pages 400 --split train [--types 0001,0003,0004,...] [--seed 21] [--workers 2]
    python -m stage2_signal.data --pool /work/pool/eik_train2 --weights weights --out runs/refiner/eik_train.npz \
        --pages 150 [--workers 2]

With ``--pool``, the pages are a train-layout folder's labelled images (``synth.eik``'s pages of ECG-Image-Kit,
rendered from stage 1's training or validation records as that folder was made), the first ``--pages`` of them.

With ``--chain photo``, each page is read by the whole pipeline of ``--weights`` (:class:`pipeline.chain.Pipeline`:
the source classifier, the keypoint route, the photo network) without a photo stage-2 bundle, and kept where the
photo network read it: the readings a refiner for that network's maps (``weights/stage2_photo``) learns from (the
pages it skips, read by another network or refused, are counted as unreadable). ``--chain mold`` keeps the pages
the mold network read (``weights/stage2_mold``).
    python -m stage2_signal.data --signals ../shared/data/signals --weights weights --chain photo \
        --types 0005,0006,0009,0010 --out runs/refiner_photo/train.npz --pages 240 --split train --seed 31

Each page is rendered from a record window of the chosen split, degraded as one image type, and read by the
pipeline without a refiner (stage 0 grid rectification, the stage-1 bundle, stage-2 reading). Per lead the
reading, its confidence and the truth are stored at the refiner's rate (``REFINE_FS_HZ``), flattened, with
their offsets, lead, page and fs. Pages whose reading fails are counted and skipped.

Both splits come from stage 1's training records (:func:`refiner_records`): every ``REFINER_VAL_EVERY``-th record
(by id) validates the refiner, the rest train it; stage 1's validation records stay unseen by both stages, so
``benchmarks.make_eval_set`` remains a held-out test of the whole chain.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common.layouts import LEADS
from common.types import Page
from stage0_rectify.grid import rectify_from_grid
from stage1_segment.data import split_records
from stage1_segment.infer import TraceSegmenter
from stage2_signal.infer import ExtractorConfig, extract
from stage2_signal.model import REFINE_FS_HZ
from stage2_signal.refine import resample_linear
from synth.factory import make_page
from synth.labels import SheetLabels
from synth.make import parse_types

DEFAULT_TYPES = ("0001", "0003", "0004", "0006", "0009", "0010", "0011", "0012")
REFINER_VAL_EVERY = 8
_WORKER: dict = {}


def refiner_records(signals_dir: Path, split: str) -> list:
    """The record windows of a refiner split: stage 1's training windows, split by record id (every
    ``REFINER_VAL_EVERY``-th id in sorted order validates)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    stage1_train, _, _ = split_records(Path(signals_dir))
    ids = sorted({w.record_id for w in stage1_train})
    val_ids = set(ids[::REFINER_VAL_EVERY])
    return [w for w in stage1_train if (w.record_id in val_ids) == (split == "val")]


def reading_config(stage2_bundle: Path) -> ExtractorConfig:
    """A stage-2 bundle's reading settings without its refiner: the refiner learns the reading's errors."""
    return replace(ExtractorConfig.from_dict(json.loads((Path(stage2_bundle) / "config.json").read_text())),
                   refiner=None)


def _init_worker(weights_dir: str, signals_dir: str | None, split: str, chain: str | None = None) -> None:
    torch.set_num_threads(1)
    _WORKER.update(segmenter=TraceSegmenter.from_bundle(Path(weights_dir) / "stage1_segment"),
                   config=reading_config(Path(weights_dir) / "stage2_signal"),
                   records=refiner_records(Path(signals_dir), split) if signals_dir else None, pipeline=None,
                   chain=chain)
    if chain is not None:
        from pipeline.chain import Pipeline  # (the chain reads with every stage; stage 2 is imported by it)

        _WORKER["pipeline"] = Pipeline.from_bundles(weights_dir)


CHAIN_NETWORKS = {"photo": "photos", "mold": "molds"}  # --chain: the pipeline's stage-1 network whose pages are kept


def read_by_chain(pipeline, page_image: np.ndarray, labels, image_id: str, network: str = "photo") -> dict | None:
    """The whole pipeline's reading of one factory page next to its truth, per lead at REFINE_FS_HZ, where the
    ``network`` stage-1 network ("photo" or "mold") read it (None otherwise, or if the page cannot be read); read
    without the networks' stage-2 bundles: the readings their refiners correct."""
    pipeline = replace(pipeline, photo_extractor=None, mold_extractor=None)
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    counts = {lead: v.size for lead, v in truth.items()}
    page = Page(image_id, page_image, float(labels.fs_hz), counts)
    result = pipeline.digitize(page)
    if result.failed or result.extraction is None or pipeline.stage1_network(
            page, result.rectified, result.layout.baselines_y_px) is not getattr(pipeline, CHAIN_NETWORKS[network]):
        return None
    return _per_lead(truth, result.signals.leads_mv, result.extraction.confidence, float(labels.fs_hz))


def _per_lead(truth: dict, leads_mv: dict, confidence: dict, fs: float) -> dict:
    out = {"x": [], "c": [], "y": [], "lead": []}
    for i, lead in enumerate(LEADS):
        y = resample_linear(truth[lead], fs, REFINE_FS_HZ)
        out["y"].append(y.astype(np.float32))
        out["x"].append(resample_linear(leads_mv[lead], fs, REFINE_FS_HZ, y.size).astype(np.float32))
        out["c"].append(resample_linear(confidence[lead], fs, REFINE_FS_HZ, y.size).astype(np.float32))
        out["lead"].append(i)
    return out


def read_page(segmenter: TraceSegmenter, config: ExtractorConfig, page_image: np.ndarray, labels,
              image_id: str) -> dict | None:
    """The pipeline's reading of one factory page next to its truth, per lead at REFINE_FS_HZ (None if the
    page cannot be read)."""
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    counts = {lead: v.size for lead, v in truth.items()}
    page = Page(image_id, page_image, float(labels.fs_hz), counts)
    try:
        rectified = rectify_from_grid(page)
        ex = extract(segmenter(rectified), rectified.px_per_mm, page.fs_hz, counts, config,
                     sheet_rgb=rectified.sheet_rgb)
    except ValueError:
        return None
    return _per_lead(truth, ex.signals.leads_mv, ex.confidence, float(labels.fs_hz))


def _collect_one(task: tuple) -> tuple[int, str, float, dict | None]:
    index, seed, image_type = task
    records = _WORKER["records"]
    record = records[index % len(records)]
    synth_page = make_page(record, index, seed, [image_type], layouts=["3x4+II"])
    image, image_id = synth_page.images[image_type].image_rgb, f"{record.record_id}_{index}"
    if _WORKER["pipeline"] is not None:
        return index, image_type, float(synth_page.labels.fs_hz), read_by_chain(
            _WORKER["pipeline"], image, synth_page.labels, image_id, _WORKER["chain"])
    got = read_page(_WORKER["segmenter"], _WORKER["config"], image, synth_page.labels, image_id)
    return index, image_type, float(synth_page.labels.fs_hz), got


def pool_pages(pool: Path, pages: int) -> list[tuple[str, str, str]]:
    """(image path, labels path, image id) of the first ``pages`` labelled images of a train-layout folder."""
    found = []
    for image in sorted(Path(pool).glob("train/*/*-*.png")):
        labels = image.parent / f"{image.parent.name}.labels"
        if labels.with_suffix(".labels.json").is_file():
            found.append((str(image), str(labels), image.stem))
        if len(found) == pages:
            break
    if not found:
        raise FileNotFoundError(f"no labelled images under {Path(pool) / 'train'}")
    return found


def _collect_pool_one(task: tuple) -> tuple[int, str, float, dict | None]:
    index, (image_path, labels_path, image_id) = task
    labels = SheetLabels.load(Path(labels_path))
    with Image.open(image_path) as im:
        image = np.asarray(im.convert("RGB"))
    got = read_page(_WORKER["segmenter"], _WORKER["config"], image, labels, image_id)
    return index, image_id.rsplit("-", 1)[1], float(labels.fs_hz), got


def collect(signals_dir: Path | None, weights_dir: Path, out: Path, pages: int, split: str, types: list[str],
            seed: int, workers: int, pool: Path | None = None, chain: str | None = None) -> dict:
    if pool is not None:
        tasks, work = list(enumerate(pool_pages(pool, pages))), _collect_pool_one
        pages, split = len(tasks), f"pool:{pool}"
    else:
        tasks, work = [(i, seed, types[i % len(types)]) for i in range(pages)], _collect_one
    rows = {"x": [], "c": [], "y": [], "lead": [], "page": [], "fs_hz": [], "image_type": []}
    failed = 0
    start = time.time()
    ctx = get_context("spawn")
    signals = None if signals_dir is None else str(signals_dir)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(weights_dir), signals, split, chain)) as procs:
        for done, (index, image_type, fs, got) in enumerate(procs.imap_unordered(work, tasks), 1):
            if got is None:
                failed += 1
            else:
                for k in ("x", "c", "y", "lead"):
                    rows[k].extend(got[k])
                rows["page"].extend([index] * len(LEADS))
                rows["fs_hz"].extend([fs] * len(LEADS))
                rows["image_type"].extend([image_type] * len(LEADS))
            if done % 20 == 0 or done == pages:
                print(f"[{time.strftime('%H:%M:%S')}] {done}/{pages} pages, {failed} unreadable, "
                      f"{time.time() - start:.0f}s", flush=True)
    lengths = np.array([v.size for v in rows["x"]], np.int64)
    np.savez_compressed(out, x=np.concatenate(rows["x"]), c=np.concatenate(rows["c"]),
                        y=np.concatenate(rows["y"]), lengths=lengths, lead=np.array(rows["lead"], np.int64),
                        page=np.array(rows["page"], np.int64), fs_hz=np.array(rows["fs_hz"]),
                        image_type=np.array(rows["image_type"]), split=split, seed=seed)
    return {"pages": pages, "unreadable": failed, "leads": int(lengths.size), "split": split, "seed": seed,
            "types": types, "chain": chain}


def load_leads(path: Path) -> dict:
    """A collected file as lists of per-lead arrays plus the per-lead metadata."""
    d = np.load(path)
    cuts = np.cumsum(d["lengths"])[:-1]
    return {"x": np.split(d["x"], cuts), "c": np.split(d["c"], cuts), "y": np.split(d["y"], cuts),
            "lead": d["lead"], "page": d["page"], "fs_hz": d["fs_hz"], "image_type": d["image_type"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--signals", type=Path, help="render factory pages from these records")
    source.add_argument("--pool", type=Path, help="read a train-layout folder's labelled pages instead")
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--types", type=parse_types, default=list(DEFAULT_TYPES))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chain", choices=tuple(CHAIN_NETWORKS), default=None,
                        help="read each page by the whole pipeline, keeping those this stage-1 network read")
    args = parser.parse_args(argv)
    if args.pages < 1:
        parser.error("--pages must be at least 1")
    if args.chain is not None and args.pool is not None:
        parser.error("--chain reads factory pages (--signals)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(collect(args.signals, args.weights, args.out, args.pages, args.split, args.types, args.seed, args.workers,
                  args.pool, args.chain))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
