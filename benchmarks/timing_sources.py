"""How stage 2 timed each page's rows, on any folder of images (no truth needed): from the trace ends, or from
the panel separators (how many bars, and whether they re-scaled time), with crops of the boundaries to check
by eye that the bars used are the ones the image draws.

    python -m benchmarks.timing_sources ../shared/data/real_images [--fs 500] [--viz /tmp/bars] [--weights weights]

Prints one line per image and a count per way. With ``--viz``, ``<dir>/<image>.png`` holds, for each image timed
by separators, a 4x crop around every panel boundary with the boundary where stage 2 put it (red).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from common.types import Page
from pipeline.chain import Pipeline, read_image_rgb
from stage2_signal.calibrate import panel_x_px, sheet_geometry

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CROP_HALF_PX = (30, 40)  # x, y: sheet px around a boundary
ZOOM = 4


def boundary_crops(sheet_rgb: np.ndarray, extraction) -> np.ndarray | None:
    """The boundaries side by side, each with the time stage 2 gives it as a red line (RGB)."""
    info = extraction.info
    geom = sheet_geometry(info["px_per_mm"])
    hx, hy = CROP_HALF_PX
    tiles = []
    for rd in extraction.readings:
        if rd.panel.col == 0 or not np.isfinite(rd.baseline_y_px):
            continue
        xb = float(panel_x_px(rd.panel, rd.panel.t0_s, info["x0_px"][rd.panel.row], geom, info["time_scale"]))
        xi, yi = int(round(xb)), int(round(rd.baseline_y_px))
        if xi - hx < 0 or yi - hy < 0 or xi + hx > sheet_rgb.shape[1] or yi + hy > sheet_rgb.shape[0]:
            continue
        tile = cv2.resize(sheet_rgb[yi - hy : yi + hy, xi - hx : xi + hx], None, fx=ZOOM, fy=ZOOM,
                          interpolation=cv2.INTER_NEAREST)
        cx = int(round((xb - (xi - hx) + 0.5) * ZOOM))
        cv2.line(tile, (cx, 0), (cx, tile.shape[0] - 1), (255, 0, 0), 1)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1) if tiles else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="a folder of images")
    parser.add_argument("--fs", type=float, default=500.0)
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--viz", type=Path, default=None)
    args = parser.parse_args()
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images in {args.images}")
    if args.viz:
        args.viz.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline.from_bundles(args.weights)
    ways: Counter = Counter()
    for path in paths:
        try:
            result = pipeline(Page(path.stem, read_image_rgb(path), args.fs))
        except ValueError as exc:
            print(f"{path.name}: failed ({exc})")
            ways["failed"] += 1
            continue
        extraction = result.extraction
        info = extraction.info
        how = "separators" if info["separator_bars"] else "trace ends"
        ways[how] += 1
        print(f"{path.name}: {how}, bars {info['separator_bars']}, time scale {info['time_scale']:.5f}, "
              f"x0 {np.round(info['x0_px'], 1).tolist()} px", flush=True)
        if args.viz and info["separator_bars"]:
            crops = boundary_crops(result.rectified.sheet_rgb, extraction)
            if crops is not None:
                cv2.imwrite(str(args.viz / f"{path.stem}.png"), cv2.cvtColor(crops, cv2.COLOR_RGB2BGR))
    print(", ".join(f"{n} {way}" for way, n in ways.most_common()))


if __name__ == "__main__":
    main()
