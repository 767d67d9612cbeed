"""Accuracy and speed of the grid rectifier on factory pages, against their labelled sheet maps.

    python -m stage0_rectify.evaluate [--pages 12] [--seed 7] [--types 0001,0003,0004,0011,0012]

Per image type: how often each method was used, |px/mm error| (%, grid methods; against the labelled map's
scale at the sheet centre), the map error (px on the sheet, worst of the four corners and the centre: where
the estimated map puts sheet points taken to the image by the true map), and the CPU time of estimate +
resample on one core. Pages come from ``synth.factory.make_page`` on simulated records, so the run needs no
data on disk (about 1-2 s per page to render).
"""

from __future__ import annotations

import argparse
import time

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--types", default="0001,0003,0004,0011,0012")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
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
