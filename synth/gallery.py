"""One contact sheet per image type, to compare with real images of the same kind.

    python -m synth.gallery --out DIR [--signals DIR [--adc-gain G]] [--per-type 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from common.types import IMAGE_TYPES
from synth.degrade import IMAGE_TYPE_NAMES
from synth.factory import make_page
from synth.make import collect_windows, write_image

TILE_W_PX = 800


def contact_sheet(images: Sequence[np.ndarray], columns: int = 3, tile_w: int = TILE_W_PX) -> np.ndarray:
    """Tiles of equal width, each row as high as its tallest tile, on a grey background."""
    tiles = [cv2.resize(im, (tile_w, int(round(im.shape[0] * tile_w / im.shape[1]))), interpolation=cv2.INTER_AREA)
             for im in images]
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    pad = 8
    sheet_rows = []
    for row in rows:
        h = max(t.shape[0] for t in row)
        canvas = np.full((h + pad, columns * (tile_w + pad), 3), 96, np.uint8)
        for k, t in enumerate(row):
            canvas[: t.shape[0], k * (tile_w + pad): k * (tile_w + pad) + tile_w] = t
        sheet_rows.append(canvas)
    return np.concatenate(sheet_rows, axis=0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.gallery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--signals", type=Path, help="real records to draw; simulated ones when absent")
    parser.add_argument("--adc-gain", type=float, default=None, help="as for synth.make")
    parser.add_argument("--per-type", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = collect_windows(args.signals, args.per_type, args.seed, args.adc_gain)
    args.out.mkdir(parents=True, exist_ok=True)
    pages = [make_page(r, i, args.seed, IMAGE_TYPES) for i, r in enumerate(records)]
    for image_type in IMAGE_TYPES:
        sheet = contact_sheet([p.images[image_type].image_rgb for p in pages])
        path = args.out / f"gallery-{image_type}.png"
        write_image(path, sheet)
        print(f"{image_type} ({IMAGE_TYPE_NAMES[image_type]}): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
