"""Training pool of the stage-0 keypoint network: factory pages, downscaled, with their exact sheet maps.

    python -m stage0_rectify.data --signals /work/shared/data/signals --out /work/pool/kp --pages 600 [--val] \
        [--eik-pool POOL/eik_train]

Each record window (training split of :func:`stage1_segment.data.split_records`; ``--val``: its validation
split, another seed) is rendered once by the page factory and degraded as each of :data:`POOL_TYPES`. Every
image is stored downscaled (INTER_AREA) so its long side is :data:`INPUT_SIDE` px, as ``<stem>.png``, with
``<stem>.json`` holding the map of the DOWNSCALED image onto the canonical sheet (a SheetMap dict: homography
+ the paper's curl displacement), the image type and the record. Everything a target needs (sheet corners in
the image, each pixel's sheet coordinates, the page mask) follows from that map; see :func:`targets`.
The pool is written once and read many times (rendering costs about 1 s per record, training steps less).
With ``--eik-pool`` (a set written by :mod:`synth.eik`) every plain ECG-Image-Kit drawing in it is also
degraded as each pool type (:func:`synth.eik.photographs`) and stored the same way as ``eik<k>-<type>``:
photos of pages we did not draw (thin traces, no grid, other grid colours).
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

INPUT_SIDE = 320  # long side (px) of the network's input: the page's corners to ~1/3 px of it
POOL_TYPES = ("0005", "0006", "0009", "0010", "0001", "0003")  # photos, and full-frame renders / scans (so a page
# that fills the frame is learnt as such)
TRAIN_SEED, VAL_SEED = 11, 911  # the pools' default seeds (training / validation records)
SHEET_CORNERS = CANONICAL.corners_px()  # top-left, top-right, bottom-right, bottom-left (sheet px)


def downscale(image_rgb: np.ndarray, side: int = INPUT_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The image with its long side ``side`` px (INTER_AREA) and the full -> small homography."""
    h, w = image_rgb.shape[:2]
    s = side / float(max(h, w))
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    # pixel centres: small = (full + 0.5) * size / full_size - 0.5, per axis with the rounded size
    a = np.array([[size[0] / w, 0, 0.5 * size[0] / w - 0.5], [0, size[1] / h, 0.5 * size[1] / h - 0.5], [0, 0, 1.0]])
    return small, a


def targets(sheet_map: SheetMap, canvas_hw: tuple[int, int]) -> dict:
    """What the network learns for an image (any size) whose map onto the sheet is ``sheet_map``:

    * ``corners`` (4, 2): the sheet's corners in image px (TL, TR, BR, BL in sheet terms);
    * ``uv`` (2, H, W) float32: each pixel's sheet x / (W-1) and y / (H-1) (through the curl too);
    * ``mask`` (H, W) float32: 1 where the pixel shows the sheet.
    """
    corners = sheet_map.sheet_to_image(SHEET_CORNERS)
    sx, sy = sheet_map.image_to_sheet_maps(canvas_hw)
    u = sx / np.float32(CANONICAL.width_px - 1)
    v = sy / np.float32(CANONICAL.height_px - 1)
    mask = ((u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)).astype(np.float32)
    return {"corners": corners.astype(np.float32), "uv": np.stack([u, v]).astype(np.float32), "mask": mask}


def _write_item(out: Path, stem: str, image_rgb: np.ndarray, sheet_map: SheetMap, meta: dict) -> None:
    small, a = downscale(image_rgb)
    cv2.imwrite(str(out / f"{stem}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    (out / f"{stem}.json").write_text(json.dumps({**meta, "full_hw": list(image_rgb.shape[:2]),
                                                  "sheet_map": sheet_map.then_image_transform(a).to_dict()}))


def write_pool(out: Path, records, seed: int, types=POOL_TYPES, start: int = 0) -> int:
    """Render ``records`` (index i gets page index start + i) into ``out``; skips pages already there."""
    from synth.factory import make_page

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    t0 = time.time()
    for i, record in enumerate(records):
        idx = start + i
        if (out / f"{idx:05d}.done").exists():
            continue
        page = make_page(record, idx, seed, types, layouts=["3x4+II"], record_id=record.record_id)
        for t in types:
            pim = page.images[t]
            _write_item(out, f"{idx:05d}-{t}", pim.image_rgb, pim.sheet_map,
                        {"image_type": t, "record": record.record_id})
            n += 1
        (out / f"{idx:05d}.done").write_text("")
        if i % 20 == 0:
            print(f"[{time.strftime('%H:%M:%S')}] page {idx}: {n} images, {time.time() - t0:.0f} s", flush=True)
    return n


def write_eik_pool(out: Path, eik_pool: Path, seed: int, types=POOL_TYPES) -> int:
    """Every plain drawing of the ECG-Image-Kit set ``eik_pool`` degraded as each of ``types`` into ``out``
    (``eik<k>-<type>``; a drawing already there is skipped, a distorted one is not used)."""
    from synth.eik import photographs, pool_pages

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for k, folder in enumerate(pool_pages(eik_pool)):
        done = out / f"eik{k:05d}.eikdone"
        if done.exists():
            continue
        for t, page in photographs(folder, types, (seed, k)).items():
            _write_item(out, f"eik{k:05d}-{t}", page.image_rgb, page.sheet_map,
                        {"image_type": t, "record": folder.name, "renderer": "ecg-image-kit"})
            n += 1
        done.write_text("")
    return n


def list_pool(folder: Path, types=None) -> list[Path]:
    """The pool's image files (``<stem>.png`` with its ``.json``), optionally only some image types."""
    out = []
    for p in sorted(Path(folder).glob("*.png")):
        if p.with_suffix(".json").is_file() and (types is None or p.stem.split("-")[-1] in types):
            out.append(p)
    return out


def load_pool_item(png: Path) -> tuple[np.ndarray, SheetMap, dict]:
    img = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    meta = json.loads(png.with_suffix(".json").read_text())
    return img, SheetMap.from_dict(meta["sheet_map"]), meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--signals", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pages", type=int, default=600, help="record windows to render (each as every pool type)")
    ap.add_argument("--val", action="store_true", help="validation records (and seed) instead of training ones")
    ap.add_argument("--seed", type=int, default=None, help=f"default {TRAIN_SEED} (train) / {VAL_SEED} (val)")
    ap.add_argument("--eik-pool", type=Path, help="an ECG-Image-Kit set (synth.eik) whose plain drawings are "
                    "degraded as every pool type too")
    args = ap.parse_args(argv)
    from stage1_segment.data import split_records

    train, val, _ = split_records(args.signals)
    records = val if args.val else train
    seed = args.seed if args.seed is not None else (VAL_SEED if args.val else TRAIN_SEED)
    order = np.random.default_rng(seed).permutation(len(records))
    chosen = [records[order[i % len(order)]] for i in range(args.pages)]
    n = write_pool(args.out, chosen, seed)
    if args.eik_pool is not None:
        n += write_eik_pool(args.out, args.eik_pool, seed)
    print(f"wrote {n} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
