"""A contact sheet of the layouts found on images, to check by eye.

    python -m benchmarks.layout_sheet IMAGES_DIR --out sheet.png [--glob 'ecg0*'] [--limit N] [--cols 6]
                                      [--json-dir DIR] [--names weights/lead_names | --no-names]

Each image is read (:func:`pipeline.chain.read_image_rgb`; a file it refuses, such as a single-lead strip under
200 px, gets a tile saying so), put on the canonical sheet by stage 0
(:func:`stage0_rectify.grid.rectify_from_grid`) and read by :func:`stage1_segment.layout_finder.find_layout`; its
thumbnail shows the rectified sheet with each row's
baseline (blue), each panel's extent (green box, magenta where the panels are the measured runs of ink because no
known layout fits), the calibration pulses (red) and, on top, the layout found, its confidence and the row count.
Each panel is labelled with its lead: the name read from the page (:mod:`stage1_segment.lead_names`, unless
``--no-names``) with its probability in per cent, dark green where it agrees with the layout's lead, orange where
it does not, grey where it was read below NAME_CONFIDENT (the layout's lead is kept there).
``--json-dir`` also keeps each page's :class:`~stage1_segment.layout_finder.FoundLayout` as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from pipeline.chain import read_image_rgb
from stage0_rectify.grid import rectify_from_grid
from stage1_segment.layout_finder import NAME_CONFIDENT, FoundLayout, find_layout
from stage1_segment.lead_names import LeadNameReader
from stage1_segment.ruled_lines import without_ruled_lines

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
THUMB_W, THUMB_H = 440, 340  # px per thumbnail (the 2200 x 1700 sheet at 1/5)
BLUE, GREEN, MAGENTA, RED = (40, 90, 255), (0, 170, 0), (200, 0, 200), (230, 0, 0)
DARK_GREEN, ORANGE, GREY = (0, 110, 0), (255, 120, 0), (120, 120, 120)


def draw_found(sheet_rgb: np.ndarray, found: FoundLayout) -> np.ndarray:
    """A copy of the sheet with the found rows, panels and pulses drawn over it (sheet px, 3 px lines)."""
    out = sheet_rgb.copy()
    ys = [r.y_px for r in found.rows]
    pitch = float(np.median(np.diff(ys))) if len(ys) > 1 else 200.0
    half = 0.4 * pitch
    for row in found.rows:
        y = int(round(row.y_px))
        colour = GREEN if row.leads is not None else MAGENTA
        for k, (x_start, x_end) in enumerate(row.panels):
            x0, x1 = int(round(x_start)), int(round(x_end))
            cv2.rectangle(out, (x0, int(y - half)), (x1, int(y + half)), colour, 4)
            cv2.line(out, (x0, y), (x1, y), BLUE, 3)
            if row.names is not None:
                name, p = row.names[k]
                sure = p >= NAME_CONFIDENT
                agrees = row.leads is not None and name.lstrip("-") == row.leads[k]
                text_colour = (DARK_GREEN if agrees else ORANGE) if sure else GREY
                cv2.putText(out, f"{name} {100 * p:.0f}", (x0 + 8, int(y - half) + 44), cv2.FONT_HERSHEY_SIMPLEX,
                            1.6, text_colour, 5)
            elif row.leads is not None:
                cv2.putText(out, row.leads[k], (x0 + 8, int(y - half) + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.4, colour, 3)
        if row.pulse is not None:
            px0, py0, px1, py1 = (int(round(v)) for v in row.pulse)
            cv2.rectangle(out, (px0 - 4, py0 - 4), (px1 + 4, py1 + 4), RED, 4)
    return out


def thumbnail(image: np.ndarray, caption: str) -> np.ndarray:
    thumb = cv2.resize(image, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
    cv2.rectangle(thumb, (0, 0), (THUMB_W, 18), (255, 255, 255), -1)
    cv2.putText(thumb, caption, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(thumb, (0, 0), (THUMB_W - 1, THUMB_H - 1), (128, 128, 128), 1)
    return thumb


def page_thumbnail(path: Path, json_dir: Path | None,
                   names: LeadNameReader | None = None) -> tuple[np.ndarray, FoundLayout | None]:
    try:
        rectified = rectify_from_grid(read_image_rgb(path), path.stem)
    except Exception as err:  # a page stage 0 cannot read still gets its tile, with the reason
        blank = np.full((THUMB_H, THUMB_W, 3), 235, np.uint8)
        return thumbnail(blank, f"{path.name}: not read ({type(err).__name__})"), None
    found = find_layout(without_ruled_lines(rectified.sheet_rgb), names)
    if json_dir is not None:
        found.save(json_dir / f"{path.stem}.layout.json")
    name = found.layout_name or "no layout"
    caption = f"{path.stem}  {name}  conf {found.confidence:.2f}  {found.n_rows} rows"
    return thumbnail(draw_found(rectified.sheet_rgb, found), caption), found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.layout_sheet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path, help="folder of images")
    parser.add_argument("--out", type=Path, required=True, help="contact sheet PNG")
    parser.add_argument("--glob", default="*", help="only the images whose names match this pattern")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--json-dir", type=Path, default=None, help="keep each page's found layout as JSON")
    parser.add_argument("--names", type=Path, default=Path("weights/lead_names"), help="lead-name bundle")
    parser.add_argument("--no-names", action="store_true", help="do not read the lead names")
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.images.glob(args.glob) if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not paths:
        parser.error(f"no images in {args.images}")
    if args.json_dir is not None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
    names = None if args.no_names else LeadNameReader.from_bundle(args.names)
    tiles, counts = [], {}
    for path in paths:
        tile, found = page_thumbnail(path, args.json_dir, names)
        tiles.append(tile)
        key = "not read" if found is None else (found.layout_name or "no layout")
        counts[key] = counts.get(key, 0) + 1
    while len(tiles) % args.cols:
        tiles.append(np.full((THUMB_H, THUMB_W, 3), 255, np.uint8))
    grid = np.vstack([np.hstack(tiles[i : i + args.cols]) for i in range(0, len(tiles), args.cols)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {args.out}")
    print(f"{len(paths)} images -> {args.out}; found: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
