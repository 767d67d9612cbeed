"""Accuracy and speed of the grid rectifier on factory pages, against their labelled sheet maps.

    python -m stage0_rectify.evaluate [--pages 12] [--seed 7] [--types 0001,0003,0004,0011,0012]
    python -m stage0_rectify.evaluate --data-dir /tmp/eval --bundle weights/stage0_rectify [--types ...]

With ``--data-dir`` (a train-layout folder written by ``synth.make`` / ``benchmarks.make_eval_set``, with its
labels) and ``--bundle`` (a keypoint bundle): per image type, the grid-point error of the grid rectifier alone
and of the keypoint route (:class:`stage0_rectify.infer.KeypointRectifier`, as the pipeline runs it, with the
route of the source classifier beside the bundle where there is one): every
labelled 5 mm grid intersection is taken into the image by the true map and back onto the sheet by the
estimated one; median and 95th percentile of those distances over all the type's pages (sheet px), which
route each page took, and the seconds per page (both routes on one thread).

Per image type: how often each method was used, |px/mm error| (%, grid methods; against the labelled map's
scale at the sheet centre), the map error (px on the sheet, worst of the four corners and the centre: where
the estimated map puts sheet points taken to the image by the true map), and the CPU time of estimate +
resample on one core. Pages come from ``synth.factory.make_page`` on simulated records, so the run needs no
data on disk (about 1-2 s per page to render).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.sheet_map import SheetMap, apply_homography
from stage0_rectify.grid import estimate_grid
from synth.factory import make_page
from synth.signals import simulate_record

W, H = CANONICAL.width_px, CANONICAL.height_px
POINTS = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1], [(W - 1) / 2, (H - 1) / 2]], float)


def _true_ppm(sheet_map: SheetMap) -> float:
    """Image px per mm at the sheet centre (local scale of the sheet -> image map)."""
    c, e = POINTS[4], 50.0
    p = sheet_map.sheet_to_image(np.array([c - [e, 0], c + [e, 0], c - [0, e], c + [0, e]]))
    return CANONICAL.px_per_mm * float(np.sqrt(np.linalg.norm(p[1] - p[0]) * np.linalg.norm(p[3] - p[2]))) / (2 * e)


def grid_point_errors(image_to_sheet: SheetMap, true_map: SheetMap, grid_points: np.ndarray,
                      unshifted: bool = False) -> np.ndarray:
    """Sheet-px distances between labelled sheet points and where the estimated map puts their true image
    positions; ``unshifted``: after taking away their mean offset (a shift of the whole sheet costs nothing
    downstream: stage 2 reads the rows and the chart's origin from the page)."""
    offsets = image_to_sheet.image_to_sheet(true_map.sheet_to_image(grid_points)) - grid_points
    if unshifted:
        offsets = offsets - offsets.mean(axis=0)
    return np.linalg.norm(offsets, axis=1)


def evaluate_folder(data_dir: Path, bundle: Path, types: list[str]) -> int:
    import json

    import torch

    from common.types import Page
    from pipeline.chain import read_image_rgb
    from source_classifier.infer import SourceClassifier
    from source_classifier.routing import route, stage0_options
    from stage0_rectify.grid import rectify_from_grid
    from stage0_rectify.infer import KeypointRectifier
    from synth.labels import SheetLabels

    torch.set_num_threads(1)
    rect = KeypointRectifier.from_bundle(bundle)
    # the source classifier beside the keypoint bundle routes each page as the pipeline does (a screen is taken
    # as flat, a photographed print's sure grid corrected: ``stage0_options``); without it every page may bend
    classifier_dir = Path(bundle).parent / "source_classifier"
    classifier = SourceClassifier.from_bundle(classifier_dir) if classifier_dir.is_dir() else None
    rows: dict[str, list] = {t: [] for t in types}
    for folder in sorted(p for p in (data_dir / "train").iterdir() if p.is_dir()):
        labels = SheetLabels.load(folder / f"{folder.name}.labels")
        pts = labels.keypoints_px[np.array(labels.keypoint_kinds) == "grid"].astype(np.float64)
        for t in types:
            png = folder / f"{folder.name}-{t}.png"
            if not png.is_file() or len(pts) == 0:
                continue
            true_map = SheetMap.from_dict(json.loads((folder / f"{folder.name}-{t}.map.json").read_text()))
            rgb = read_image_rgb(png)
            t0 = time.perf_counter()
            grid = rectify_from_grid(rgb)
            t1 = time.perf_counter()
            settings = None if classifier is None else route(classifier(Page(png.stem, rgb, labels.fs_hz)))
            kp = rect.rectify(rgb, **stage0_options(settings))
            t2 = time.perf_counter()
            rows[t].append((grid_point_errors(grid.sheet_map, true_map, pts),
                            grid_point_errors(kp.sheet_map, true_map, pts), kp.method, t1 - t0, t2 - t1,
                            grid_point_errors(kp.sheet_map, true_map, pts, unshifted=True)))
    print("type | pages | grid route: median / p95 px | with keypoints: median / p95 px | the same without each "
          "page's mean shift | keypoint route taken | s per page grid / with keypoints")
    for t, r in rows.items():
        if not r:
            continue
        g, k, u = (np.concatenate([x[i] for x in r]) for i in (0, 1, 5))
        n_kp = sum(x[2] == "keypoints" for x in r)
        print(f"{t} | {len(r)} | {np.median(g):.1f} / {np.percentile(g, 95):.1f} | {np.median(k):.1f} / "
              f"{np.percentile(k, 95):.1f} | {np.median(u):.1f} / {np.percentile(u, 95):.1f} | {n_kp}/{len(r)} | "
              f"{np.mean([x[3] for x in r]):.2f} / {np.mean([x[4] for x in r]):.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--types", default="0001,0003,0004,0011,0012")
    ap.add_argument("--data-dir", type=Path, default=None, help="a labelled train-layout folder")
    ap.add_argument("--bundle", type=Path, default=None, help="keypoint bundle (with --data-dir)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    if args.data_dir is not None:
        if args.bundle is None:
            ap.error("--data-dir needs --bundle")
        return evaluate_folder(args.data_dir, args.bundle, args.types.split(","))
    types = args.types.split(",")
    rows: dict[str, list] = {t: [] for t in types}
    for i in range(args.pages):
        page = make_page(simulate_record(np.random.default_rng(1000 * args.seed + i)), i, args.seed, types)
        for t in types:
            img = page.images[t]
            c0 = time.process_time()
            est = estimate_grid(img.image_rgb)
            SheetMap(est.image_to_sheet_h).rectify(img.image_rgb)
            cpu = time.process_time() - c0
            err = apply_homography(est.image_to_sheet_h, img.sheet_map.sheet_to_image(POINTS)) - POINTS
            ppm_err = 100.0 * (est.px_per_mm / _true_ppm(img.sheet_map) - 1.0)
            map_err = float(np.linalg.norm(err, axis=1).max())
            rows[t].append((page.labels.style["grid"], est.method, ppm_err, map_err, cpu))
    for t, r in rows.items():
        methods: dict[str, int] = {}
        for x in r:
            methods[x[1]] = methods.get(x[1], 0) + 1
        g = [x for x in r if x[1].startswith("grid")]
        line = f"{t}: " + ", ".join(f"{k} {v}" for k, v in sorted(methods.items()))
        if g:
            pe = np.abs([x[2] for x in g])
            me = np.array([x[3] for x in g])
            line += (f" | grid: |px/mm err| % median {np.median(pe):.3f} max {pe.max():.3f}"
                     f" | map err px median {np.median(me):.1f} p90 {np.percentile(me, 90):.1f} max {me.max():.1f}")
        other = [x for x in r if not x[1].startswith("grid")]
        if other:
            line += " | fallbacks |px/mm err| %: " + " ".join(f"{x[1]}:{x[2]:+.2f}" for x in other)
        cpu = np.array([x[4] for x in r])
        line += f" | cpu s median {np.median(cpu):.3f} max {cpu.max():.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
