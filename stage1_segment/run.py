"""Run stage 1 on a folder: ``python -m stage1_segment.run --images DIR --bundle weights/stage1_segment --out DIR
[--viz]``.

Inputs in DIR: saved :class:`~common.types.Rectified` contracts (``<stem>.json`` + ``<stem>.npz``, e.g. stage 0's
output), and image files (png/jpg) taken to be already on the canonical sheet (resized to 2200x1700 with a
warning when they are not that size). For each page it saves ``<id>.tracemaps.{npz,json}`` and, with
``--viz``, ``<id>.overlay.png``: the rows' trace maps coloured over the sheet (at map resolution), with the
row anchors the network was given as dashed lines. ``--views identity`` (or ``flip_x``) reads one view instead
of the bundle's, to see what each contributes; ``--precision fp32|bf16|auto`` overrides the bundle's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from common.types import Rectified, TraceMaps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
ROW_COLOURS_RGB = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
                   (240, 50, 230), (128, 128, 0)]


def iter_inputs(folder: Path):
    """(image_id, Rectified) for every Rectified contract and image file in ``folder`` (sorted)."""
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("contract") == "Rectified":
                yield Rectified.load(path.parent / path.stem)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"warning: cannot read {path}; skipped", file=sys.stderr)
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = CANONICAL.shape_hw
            if rgb.shape[:2] != (h, w):
                print(f"warning: {path.name} is {rgb.shape[1]}x{rgb.shape[0]}, not the canonical {w}x{h}; "
                      "resizing it as if it were already rectified", file=sys.stderr)
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            yield Rectified(image_id=path.stem, sheet_rgb=rgb, sheet_map=SheetMap.identity(),
                            px_per_mm=CANONICAL.px_per_mm, method="assumed-canonical", confidence=0.0)


def overlay(sheet_rgb: np.ndarray, maps: TraceMaps, gamma: float = 0.5,
            anchors_y_px: tuple[float, ...] = ()) -> np.ndarray:
    """RGB image at map resolution: the sheet lightened and greyed, each row's map in its own colour, and
    each row's anchor (the baseline the network was given, sheet px) as a dashed line in that colour.

    Each column's probabilities are scaled by that column's maximum, so weak columns still show."""
    n_rows, hm, wm = maps.maps.shape
    base = cv2.resize(sheet_rgb, (wm, hm), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = base.mean(axis=2, keepdims=True)
    out = 0.55 * 255 + 0.45 * np.repeat(grey, 3, axis=2)
    for r in range(n_rows):
        m = maps.maps[r].astype(np.float32)
        a = (m / np.maximum(m.max(axis=0, keepdims=True), 1e-6)) ** gamma
        a = np.clip(a, 0, 1)[..., None]
        colour = np.asarray(ROW_COLOURS_RGB[r % len(ROW_COLOURS_RGB)], dtype=np.float32)
        out = out * (1 - a) + colour * a
    out = np.clip(out, 0, 255).astype(np.uint8)
    for r, y in enumerate(anchors_y_px):
        ym = int(round((y + 0.5) * maps.scale_y - 0.5))
        colour = tuple(int(c) for c in ROW_COLOURS_RGB[r % len(ROW_COLOURS_RGB)])
        for x in range(0, wm, 24):
            cv2.line(out, (x, ym), (min(x + 10, wm - 1), ym), colour, 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, default=Path("weights/stage1_segment"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--viz", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--views", type=lambda v: tuple(v.split(",")), default=None,
                    help="comma-separated views (identity, flip_x); default: the bundle's")
    ap.add_argument("--precision", default=None, help="auto, fp32 or bf16; default: the bundle's")
    args = ap.parse_args(argv)

    from stage1_segment.infer import TraceSegmenter

    if not args.images.is_dir():
        ap.error(f"--images {args.images} is not a folder")
    try:
        seg = TraceSegmenter.from_bundle(args.bundle, num_threads=args.threads, views=args.views,
                                         precision=args.precision)
    except (FileNotFoundError, ValueError) as exc:  # no bundle there, an altered one, an unknown view or precision
        ap.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    times = []
    for rect in iter_inputs(args.images):
        t0 = time.perf_counter()
        maps = seg(rect)
        dt = time.perf_counter() - t0
        times.append(dt)
        maps.save(args.out / f"{rect.image_id}.tracemaps")
        if args.viz:
            anchors = seg.last_anchors.baselines_y_px if seg.last_anchors is not None else ()
            ov = overlay(rect.sheet_rgb, maps, anchors_y_px=anchors)
            cv2.imwrite(str(args.out / f"{rect.image_id}.overlay.png"), cv2.cvtColor(ov, cv2.COLOR_RGB2BGR))
        print(f"{rect.image_id}: {dt:.2f}s ({', '.join(f'{k} {v:.2f}' for k, v in seg.last_timing.items())})",
              flush=True)
    if not times:
        print(f"no Rectified contracts or images in {args.images}", file=sys.stderr)
        return 1
    print(f"{len(times)} pages, {np.mean(times):.2f}s/page mean, {np.median(times):.2f}s median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
