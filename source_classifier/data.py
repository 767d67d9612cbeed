"""Training pages for the source classifier: one sheet rendered by the factory, degraded as each of the nine
image types, each reduced to the network's input.

    python -m source_classifier.data --signals DIR --out /work/pool/cls/train --split train --pages N [--seed S]
                                     [--eik-pool DIR ...] [--eik-share 0.2]

writes ``page_<index>.npz`` shards (``x``: (9, H, W, 4) uint8 inputs, ``y``: the type indices) that
``source_classifier.train --pool`` reads, while it is still being written. The pool holds only downscaled
inputs (about 3 MB a page); it is a cache, never committed.

The input (:func:`prepare_input`) is the whole image squashed to ``input_hw`` (INTER_AREA) plus a fourth
channel that keeps what the downscale averages away: the mean absolute high-pass of the full-resolution grey
image over each input pixel (paper noise, JPEG blocks, binarisation speckle, scanner or lens blur of the
lines, screen moire). A clean render has none on its paper and razor-sharp lines; a scan or photo has
noise everywhere.

Records are split by path (every 10th record path of each source goes to validation), so validation pages
come from records the network never trains on; a share of pages use the built-in simulated source (its own
seeds per split). With ``--eik-pool`` a share of sheets are ECG-Image-Kit drawings (the competition's
renders) instead of our renderer's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.layouts import LAYOUTS
from common.sheet_map import SheetMap
from common.types import IMAGE_TYPES
from synth.degrade import degrade
from synth.factory import make_page, page_rng
from synth.signals import Record, list_record_paths, read_record, simulate_record, windows

DEFAULT_INPUT_HW = (192, 240)  # (h, w) px: a 2200 px wide page shrinks about 9x
N_CHANNELS = 4  # R, G, B, high-pass energy
HIGHPASS_SIGMA_PX = 1.0  # full-resolution blur the high-pass is taken against (image px)
HIGHPASS_GAIN = 16.0  # grey levels of mean |high-pass| -> channel value (x16: noise of std 1 reads ~13)
SIM_SHARE = 0.2  # share of pages drawn from the simulated source
EIK_SHARE = 0.2  # share of sheets taken from ECG-Image-Kit pools when some are given
VAL_EVERY = 10  # every 10th record path of each source goes to validation
_SIM_SEED = {"train": 1, "val": 2}  # simulated records of the two splits come from different seeds


def prepare_input(image_rgb: np.ndarray, input_hw: tuple[int, int] = DEFAULT_INPUT_HW) -> np.ndarray:
    """(H, W, 4) uint8 network input from an RGB uint8 image of any size: the image squashed to ``input_hw``
    and its high-pass energy (see the module doc). Same code in training and inference."""
    h, w = int(input_hw[0]), int(input_hw[1])
    img = np.ascontiguousarray(image_rgb)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    hp = cv2.absdiff(grey, cv2.GaussianBlur(grey, (0, 0), HIGHPASS_SIGMA_PX))
    # area averages in float, so a mean |high-pass| under one grey level is not rounded away
    energy = cv2.resize(hp.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    tex = np.clip(energy * HIGHPASS_GAIN, 0, 255).astype(np.uint8)
    return np.concatenate([small, tex[..., None]], axis=2)


# ------------------------------------------------------------------------------------------------ records


def _source_adc_gain(folder: str) -> float | None:
    """LUDB's header gains are wrong (each lead scaled to 1 mV): 1000 ADC units per mV; the others: headers."""
    return 1000.0 if folder.lower() == "ludb" else None


def split_records(root: Path, val_every: int = VAL_EVERY) -> tuple[list[Record], list[Record], dict]:
    """10 s windows of every record under ``root``/<source>, split by record path: every ``val_every``-th path
    of each source (sorted, starting with the first) goes to validation."""
    root = Path(root)
    train: list[Record] = []
    val: list[Record] = []
    desc: dict = {}
    for src in sorted(p.name for p in root.iterdir() if p.is_dir()):
        paths = list_record_paths(root / src)
        n_tr = n_va = 0
        for i, path in enumerate(paths):
            try:
                rec = read_record(path, adc_gain=_source_adc_gain(src))
            except Exception as exc:  # noqa: BLE001 - an unreadable file is skipped, as synth.make does
                print(f"skipping {path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                continue
            wins = windows(rec)
            (val if i % val_every == 0 else train).extend(wins)
            n_tr += 0 if i % val_every == 0 else len(wins)
            n_va += len(wins) if i % val_every == 0 else 0
        desc[src] = {"paths": len(paths), "train_windows": n_tr, "val_windows": n_va}
    if not train or not val:
        raise SystemExit(f"no readable 12-lead records of 10 s or more under {root} for both splits")
    return train, val, desc


def eik_sheets(folders: Sequence[Path]) -> list[Path]:
    """Plain ECG-Image-Kit drawings (canonical size, identity map) in written pools: usable as clean sheets."""
    out = []
    for folder in folders:
        train = Path(folder) / "train"
        if not train.is_dir():
            continue
        for p in sorted(train.iterdir()):
            png, mp = p / f"{p.name}-0001.png", p / f"{p.name}-0001.map.json"
            if png.is_file() and mp.is_file():
                sm = SheetMap.from_dict(json.loads(mp.read_text()))
                if sm.displacement_px is None and np.allclose(sm.image_to_sheet_h, np.eye(3)):
                    out.append(png)
    return out


# ------------------------------------------------------------------------------------------------ pages


@dataclass(frozen=True)
class PageSource:
    """Where page ``index`` of a split comes from: real windows, the simulated source, ECG-Image-Kit sheets."""

    records: list
    split: str
    seed: int
    eik: list
    eik_share: float = EIK_SHARE
    sim_share: float = SIM_SHARE

    def sheet(self, index: int) -> np.ndarray:
        """The clean canonical sheet (1700, 2200, 3) uint8 of page ``index``."""
        rng = page_rng(self.seed, index, 101)
        if self.eik and rng.random() < self.eik_share:
            path = self.eik[int(rng.integers(len(self.eik)))]
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None and img.shape[:2] == CANONICAL.shape_hw:
                return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if rng.random() < self.sim_share:
            record = simulate_record(np.random.default_rng([_SIM_SEED[self.split], self.seed, index]),
                                     record_id=f"sim{index}")
        else:
            record = self.records[int(rng.integers(len(self.records)))]
        page = make_page(record, index, self.seed, [], layouts=list(LAYOUTS), eik_look=0.3)
        return page.sheet_rgb

    def inputs(self, index: int, input_hw: tuple[int, int] = DEFAULT_INPUT_HW,
               image_types: Sequence[str] = IMAGE_TYPES) -> tuple[np.ndarray, np.ndarray]:
        """Page ``index`` degraded as each of ``image_types``: (len(types), h, w, 4) uint8 inputs, type indices."""
        sheet = self.sheet(index)
        xs = []
        for t in image_types:
            img = degrade(sheet, t, page_rng(self.seed, index, 1 + IMAGE_TYPES.index(t))).image_rgb
            xs.append(prepare_input(img, input_hw))
        return np.stack(xs), np.array([IMAGE_TYPES.index(t) for t in image_types], np.int64)


def write_pool(source: PageSource, out: Path, start: int, n_pages: int, input_hw: tuple[int, int]) -> None:
    """Write pages ``start .. start + n_pages - 1`` as shards (atomically: a reader never sees half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for k, index in enumerate(range(start, start + n_pages)):
        path = out / f"page_{index:06d}.npz"
        if path.is_file():
            continue
        try:
            x, y = source.inputs(index, input_hw)
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop the pool
            print(f"page {index} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        tmp = out / f"page_{index:06d}.tmp.npz"
        np.savez(tmp, x=x, y=y)
        tmp.replace(path)
        if (k + 1) % 25 == 0:
            print(f"{k + 1}/{n_pages} pages, {(time.time() - t0) / (k + 1):.2f} s/page", flush=True)


POOL_DESCRIPTION = "pool.json"


def write_description(folder: Path, desc: dict) -> None:
    """What a pool was rendered from (``pool.json``): training copies it into the bundle's config."""
    (Path(folder) / POOL_DESCRIPTION).write_text(json.dumps(desc, indent=1))


def read_description(folder: Path) -> dict:
    path = Path(folder) / POOL_DESCRIPTION
    return json.loads(path.read_text()) if path.is_file() else {"folder": str(folder), "description": "missing"}


def pool_shards(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("page_*.npz") if not p.name.endswith(".tmp.npz"))


def load_shards(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Stack shards into (N, h, w, 4) uint8 inputs and (N,) type indices."""
    xs, ys = [], []
    for p in paths:
        with np.load(p) as z:
            xs.append(z["x"])
            ys.append(z["y"])
    if not xs:
        raise ValueError("no pool shards to load")
    return np.concatenate(xs), np.concatenate(ys)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m source_classifier.data", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=Path, required=True, help="folder of record sources (cpsc2018, ludb, ...)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", choices=["train", "val"], required=True)
    ap.add_argument("--pages", type=int, required=True)
    ap.add_argument("--start", type=int, default=0, help="first page index (several writers: disjoint ranges)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input-hw", type=int, nargs=2, default=list(DEFAULT_INPUT_HW))
    ap.add_argument("--eik-pool", type=Path, action="append", default=[],
                    help="ECG-Image-Kit pool folder (synth.eik output) whose plain drawings serve as sheets")
    ap.add_argument("--eik-share", type=float, default=EIK_SHARE)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    train, val, desc = split_records(args.signals)
    print(json.dumps(desc), flush=True)
    eik = eik_sheets(args.eik_pool)
    print(f"{len(eik)} plain ECG-Image-Kit sheets", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_description(args.out, {"command": "python -m source_classifier.data " + " ".join(sys.argv[1:]),
                                 "split": args.split, "seed": args.seed, "input_hw": list(args.input_hw),
                                 "sources": desc, "eik_sheets": len(eik), "eik_share": args.eik_share if eik else 0.0,
                                 "sim_share": SIM_SHARE})
    source = PageSource(train if args.split == "train" else val, args.split, args.seed, eik, args.eik_share)
    write_pool(source, args.out, args.start, args.pages, tuple(args.input_hw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
