"""Contact sheets of stage 0's output, to check by eye whether each image lands upright and axis-aligned.

    python -m benchmarks.stage0_sheet --images IMAGES_DIR --out DIR [--weights weights] [--glob '*']
                                      [--limit N] [--cols 3] [--rows 6]

Each image is read (:func:`pipeline.chain.read_image_rgb`) and put on the canonical 2200 x 1700 sheet by the
pipeline's stage 0 (:meth:`pipeline.chain.Pipeline.rectify` with the source classifier's route: the grid rectifier,
and the keypoint route where the grid reading is unsure and ``weights/stage0_rectify`` exists). A tile shows the
input with the sheet's outline taken back into it (red) next to the rectified sheet with the canonical grid over it:
5 mm lines (cyan) and every 25 mm (blue), from the sheet's top-left corner. A page that landed well has its printed
grid and rows of trace parallel to those lines and its printed big boxes as wide as theirs (the rectifiers fix scale
and rotation, not the grid's phase, so the lines need not sit on the printed ones). The caption names the route
("grid", "keypoints", or the grid rectifier's fallbacks "pulse" / "page_width") and its confidence, and what the
grid rectifier reads on the rectified sheet: its pitch along x and y (canonical: 7.87 px/mm) and its angle (0 deg)
where it reads a grid there with some confidence (the CSV has every reading).
``DIR`` gets ``stage0_sheet_NN.png`` (``--cols`` x ``--rows`` tiles each) and ``stage0_sheet.csv`` (one row per
image; a file the pipeline's reader refuses, such as a single-lead strip under 200 px, gets no tile, only its
row, route "refused"). The sheets show the images themselves: keep those made from licensed images out of git.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL, SheetGeometry
from common.sheet_map import apply_homography
from common.types import Page, Rectified
from pipeline.chain import Pipeline, read_image_rgb
from pipeline.image_io import ImageReadError
from stage0_rectify.grid import estimate_grid

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
SHEET_SCALE = 0.25  # thumbnail px per sheet px: a 5 mm box is ~10 thumbnail px, enough to judge alignment
SHEET_W, SHEET_H = round(CANONICAL.width_px * SHEET_SCALE), round(CANONICAL.height_px * SHEET_SCALE)
INPUT_W = SHEET_W  # the input's thumbnail fits in the same box as the sheet's
SHEET_CHECK_CONF = 0.3  # under it the grid read on the sheet is no evidence (photos at 0.05 read pitches 2-12
# px/mm and angles that do not match what the eye sees)
CAPTION_H = 20  # px of caption band over each tile
GAP_PX = 6
CYAN, BLUE, RED = (120, 220, 235), (30, 60, 230), (230, 0, 0)


def draw_canonical_grid(sheet_thumb: np.ndarray, geometry: SheetGeometry = CANONICAL) -> np.ndarray:
    """The canonical grid over a sheet thumbnail (``SHEET_SCALE`` of the sheet): 5 mm lines blended in, every
    25 mm line solid, from the sheet's top-left corner."""
    fine = sheet_thumb.copy()
    coarse = sheet_thumb.copy()
    h, w = sheet_thumb.shape[:2]
    step_px = geometry.big_box_mm * geometry.px_per_mm * SHEET_SCALE
    for axis_len, vertical in ((w, True), (h, False)):
        for k in range(int(axis_len / step_px) + 1):
            p = int(round(k * step_px))
            a, b = ((p, 0), (p, h - 1)) if vertical else ((0, p), (w - 1, p))
            cv2.line(fine, a, b, CYAN, 1)
            if k % 5 == 0:
                cv2.line(coarse, a, b, BLUE, 1)
    out = cv2.addWeighted(sheet_thumb, 0.55, fine, 0.45, 0)
    solid = (coarse != sheet_thumb).any(axis=2)
    out[solid] = coarse[solid]
    return out


def input_thumbnail(image_rgb: np.ndarray, rectified: Rectified | None) -> np.ndarray:
    """The input fitted into SHEET_W x SHEET_H (grey margins) with the sheet's outline (the homography part of
    the map: the corners of the canonical sheet taken back into the image) in red."""
    h, w = image_rgb.shape[:2]
    scale = min(INPUT_W / w, SHEET_H / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image_rgb, (tw, th), interpolation=cv2.INTER_AREA)
    canvas = np.full((SHEET_H, INPUT_W, 3), 200, np.uint8)
    oy, ox = (SHEET_H - th) // 2, (INPUT_W - tw) // 2
    canvas[oy : oy + th, ox : ox + tw] = small
    if rectified is not None:
        corners = apply_homography(rectified.sheet_map.sheet_to_image_h, rectified.sheet_map.geometry.corners_px())
        pts = np.round(corners * scale + [ox, oy]).astype(np.int32)
        if np.isfinite(corners).all() and np.abs(pts).max() < 10**5:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], True, RED, 2, cv2.LINE_AA)
    return canvas


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    band = np.full((CAPTION_H, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, CAPTION_H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, tile])


def side_by_side(left: np.ndarray, right: np.ndarray, text: str) -> np.ndarray:
    gap = np.full((SHEET_H, GAP_PX, 3), 255, np.uint8)
    return caption(np.hstack([left, gap, right]), text)


def page_tile(pipeline: Pipeline, path: Path) -> tuple[np.ndarray | None, dict]:
    """One image's tile (input | rectified sheet with the grid), or None for a file the pipeline's reader
    refuses (stage 0 never sees it: single-lead strips, tiny images), and its row of the CSV."""
    row = {"image": path.name, "route": "", "confidence": "", "grid_confidence": "", "residual_grid_px": "",
           "seconds": "", "sheet_grid": "", "sheet_grid_conf": "", "sheet_px_per_mm_x": "", "sheet_px_per_mm_y": "",
           "sheet_angle_deg": "", "error": ""}
    try:
        image = read_image_rgb(path)
    except ImageReadError as err:
        row["route"], row["error"] = "refused", str(err)
        return None, row
    start = time.perf_counter()
    try:
        page = Page(path.stem, image, 500.0)
        rectified = pipeline.rectify(page, pipeline.route_of(page, {}))  # routed as the pipeline routes it
    except Exception as err:  # noqa: BLE001 - one failing page must not stop the sheet
        row["route"], row["error"] = "failed", f"{type(err).__name__}: {err}"
        blank = np.full((SHEET_H, SHEET_W, 3), 235, np.uint8)
        text = f"{path.name}: stage 0 failed ({type(err).__name__})"
        return side_by_side(input_thumbnail(image, None), blank, text), row
    row["seconds"] = round(time.perf_counter() - start, 2)
    row["route"], row["confidence"] = rectified.method, round(rectified.confidence, 3)
    if rectified.residual_grid_px is not None:
        row["residual_grid_px"] = round(rectified.residual_grid_px, 2)
    info = pipeline.rectifier.last_info if pipeline.rectifier is not None else {}
    if "grid_confidence" in info:
        row["grid_confidence"] = info["grid_confidence"]
    # the grid read again on the sheet: a page that landed well reads the canonical pitch on both axes at 0 deg
    check = estimate_grid(rectified.sheet_rgb)
    row.update(sheet_grid=check.method, sheet_grid_conf=round(check.confidence, 3),
               sheet_px_per_mm_x=round(float(check.px_per_mm_xy[0]), 2),
               sheet_px_per_mm_y=round(float(check.px_per_mm_xy[1]), 2), sheet_angle_deg=round(check.angle_deg, 2))
    sheet = cv2.resize(rectified.sheet_rgb, (SHEET_W, SHEET_H), interpolation=cv2.INTER_AREA)
    text = f"{path.name}  {image.shape[1]}x{image.shape[0]}  route {rectified.method}  conf {rectified.confidence:.2f}"
    if row["grid_confidence"] != "" and rectified.method == "keypoints":
        text += f"  (grid {row['grid_confidence']:.2f})"
    if check.method.startswith("grid") and check.confidence >= SHEET_CHECK_CONF:
        text += (f"  | on sheet: {row['sheet_px_per_mm_x']:.2f} x {row['sheet_px_per_mm_y']:.2f} px/mm "
                 f"{row['sheet_angle_deg']:+.1f} deg")
    else:
        text += f"  | on sheet: grid not read (conf {check.confidence:.2f})"
    return side_by_side(input_thumbnail(image, rectified), draw_canonical_grid(sheet), text), row


def tile_pages(tiles: list[np.ndarray], cols: int, rows: int) -> list[np.ndarray]:
    """The tiles laid out ``cols`` x ``rows`` per picture (white padding), with a gap between tiles."""
    th, tw = tiles[0].shape[:2]
    per = cols * rows
    pictures = []
    for start in range(0, len(tiles), per):
        chunk = tiles[start : start + per]
        n_rows = -(-len(chunk) // cols)
        pic = np.full((n_rows * (th + 2 * GAP_PX), cols * (tw + 2 * GAP_PX), 3), 255, np.uint8)
        for k, tile in enumerate(chunk):
            r, c = divmod(k, cols)
            y, x = r * (th + 2 * GAP_PX) + GAP_PX, c * (tw + 2 * GAP_PX) + GAP_PX
            pic[y : y + th, x : x + tw] = tile
        pictures.append(pic)
    return pictures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stage0_sheet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of images")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs and the CSV")
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="the pipeline's weights folder")
    parser.add_argument("--glob", default="*", help="only the images whose names match this pattern")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    parser.add_argument("--cols", type=int, default=3, help="tiles per row of a PNG")
    parser.add_argument("--rows", type=int, default=6, help="rows of tiles per PNG")
    args = parser.parse_args(argv)
    if args.cols < 1 or args.rows < 1:
        parser.error("--cols and --rows must be at least 1")
    if not args.images.is_dir():
        parser.error(f"--images {args.images} is not a folder")
    paths = sorted(p for p in args.images.glob(args.glob) if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not paths:
        parser.error(f"no images in {args.images}")
    pipeline = Pipeline.from_bundles(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    tiles, rows = [], []
    for path in paths:
        tile, row = page_tile(pipeline, path)
        if tile is not None:
            tiles.append(tile)
        rows.append(row)
        print(f"{path.name}: {row['route']} {row['confidence']} {row['error']}".rstrip(), flush=True)
    if not tiles:
        raise SystemExit(f"the pipeline's reader refused every image in {args.images} (see the lines above)")
    for k, pic in enumerate(tile_pages(tiles, args.cols, args.rows), 1):
        out = args.out / f"stage0_sheet_{k:02d}.png"
        if not cv2.imwrite(str(out), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {out}")
    with open(args.out / "stage0_sheet.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        key = row["route"]
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(paths)} images -> {args.out}; routes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
