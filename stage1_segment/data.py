"""SynthPage -> what stage 1 trains on: the page image rectified onto the canonical sheet (through the
LABELLED sheet map; stage 0 is not ours), downscaled to the map resolution, and per-row targets.

A sample is a dict of numpy arrays (cheap to pickle between processes):

* ``image`` (Hm, Wm, 3) uint8: the rectified sheet at map scale (INTER_AREA).
* ``col_y`` (R, Wm, K) float32: per row, the trace-centre y in MAP pixels of the K label sub-columns inside
  each map column (NaN where the row has no trace). K = x_upsample / scale_x.
* ``masks`` (R, Hm, Wm) uint8: each row's trace coverage at map scale (auxiliary target).
* ``anchors_map_y`` (R,) float32: the rows' baselines in map px as the model is given them at inference:
  found on the page by :func:`stage1_segment.anchors.find_anchors` where that agrees with the label (within
  ``ANCHOR_AGREE_PX``), else the labelled baseline; plus a few px of noise either way.
* for validation also the page's labels needed to read signals back (fs, signals, placement).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.layouts import default_placement, get_layout
from stage1_segment.anchors import find_anchors
from stage1_segment.passes import (
    SPREAD_BAND,
    kept_rows_span,
    only_rows,
    row_passes,
    rows_are_close,
    spread_half_band_px,
    spread_rows,
)
from synth.factory import SynthPage
from synth.signals import Record, list_record_paths, read_record, windows


@dataclass(frozen=True)
class MapSpec:
    """Map resolution relative to the canonical sheet."""

    scale_x: float = 1.0
    scale_y: float = 0.5

    @property
    def shape_hw(self) -> tuple[int, int]:
        return int(round(CANONICAL.height_px * self.scale_y)), int(round(CANONICAL.width_px * self.scale_x))

    def sheet_to_map_y(self, y):
        return (np.asarray(y, dtype=np.float64) + 0.5) * self.scale_y - 0.5

    def map_to_sheet_y(self, y):
        return (np.asarray(y, dtype=np.float64) + 0.5) / self.scale_y - 0.5

    def map_x_sheet(self) -> np.ndarray:
        """Sheet x of each map column centre (as :meth:`TraceMaps.sheet_x`)."""
        return (np.arange(self.shape_hw[1]) + 0.5) / self.scale_x - 0.5


ANCHOR_AGREE_PX = 40.0  # a found baseline this close to the labelled one is the one the model is shown
ANCHOR_NOISE_PX = 3.0  # sd of the noise added to the anchors in training (sheet px)


def sheet_to_map_image(sheet_rgb: np.ndarray, spec: MapSpec) -> np.ndarray:
    h, w = spec.shape_hw
    if sheet_rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(sheet_rgb)
    return cv2.resize(sheet_rgb, (w, h), interpolation=cv2.INTER_AREA)


def column_targets(row_y_px: np.ndarray, x_upsample: int, spec: MapSpec) -> np.ndarray:
    """(R, W*x_upsample) sheet-px sub-column y's -> (R, Wm, K) map-px y's grouped by map column."""
    n_rows, n_sub = row_y_px.shape
    k = x_upsample / spec.scale_x
    if abs(k - round(k)) > 1e-9 or n_sub != CANONICAL.width_px * x_upsample:
        raise ValueError(f"x_upsample {x_upsample} / scale_x {spec.scale_x} must be a whole number of sub-columns")
    k = int(round(k))
    wm = spec.shape_hw[1]
    if wm * k != n_sub:
        raise ValueError(f"{n_sub} sub-columns do not split into {wm} map columns of {k}")
    y = spec.sheet_to_map_y(row_y_px).astype(np.float32)
    return y.reshape(n_rows, wm, k)


def y_affine(sample: dict, a: float, b: float, spec: MapSpec) -> dict:
    """Apply y' = a * y + b (map px) to a sample's image, masks and labels (simulates small rectification error
    in vertical scale/offset, the one that moves a trace's y)."""
    h, w = spec.shape_hw
    m = np.array([[1.0, 0.0, 0.0], [0.0, a, b]], dtype=np.float64)
    out = dict(sample)
    out["image"] = cv2.warpAffine(sample["image"], m, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    out["masks"] = np.stack([cv2.warpAffine(mk, m, (w, h), flags=cv2.INTER_LINEAR) for mk in sample["masks"]])
    out["col_y"] = (sample["col_y"] * a + b).astype(np.float32)
    out["anchors_map_y"] = (sample["anchors_map_y"] * a + b).astype(np.float32)
    return out


def training_anchors(sheet_rgb: np.ndarray, layout_name: str, baselines_y_px, rng: np.random.Generator) -> np.ndarray:
    """The anchors (sheet px) a training page shows the model: what inference would find, where it is right."""
    truth = np.asarray(baselines_y_px, dtype=np.float64)
    found = find_anchors(sheet_rgb, layout_name)
    anchors = truth.copy()
    if found.method == "ink":
        got = np.asarray(found.baselines_y_px)
        ok = np.abs(got - truth) <= ANCHOR_AGREE_PX
        anchors[ok] = got[ok]
    return anchors + rng.normal(0.0, ANCHOR_NOISE_PX, anchors.shape)


def layout_pass(sheet_rgb: np.ndarray, labels, rng: np.random.Generator, n_model: int, bundle_layout: str,
                spread_band: float | None = SPREAD_BAND) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A page of any layout as inference shows it to a network of ``n_model`` anchored rows: one of its
    :func:`~stage1_segment.passes.row_passes` at random, the other rows painted over or, rows closer than
    CLOSE_PITCH_PX, unless ``spread_band`` is None (read in place), each row's band of that many row pitches moved
    to ``bundle_layout``'s row places.
    Returns the sheet image, per channel the trace-centre y (``labels.row_y_px`` moved with its band, NaN where
    the trace is not on the image or the channel has no row) and trace mask (sheet resolution), and the
    anchors (sheet px)."""
    h = sheet_rgb.shape[0]
    truth = np.asarray(labels.baselines_y_px, dtype=np.float64)
    ys = [float(y) for y in truth + rng.normal(0.0, ANCHOR_NOISE_PX, truth.shape)]
    passes = row_passes(ys, n_model, float(h))
    anchors_y, _ = passes[int(rng.integers(len(passes)))]
    rows = [ys.index(a) if a in ys else -1 for a in anchors_y]  # the page row under each channel's anchor
    row_y = np.full((n_model, labels.row_y_px.shape[1]), np.nan, np.float32)
    masks = np.zeros((n_model, *labels.row_masks.shape[1:]), np.uint8)
    if rows_are_close(ys) and spread_band is not None:
        spread_to = default_placement(get_layout(bundle_layout)).baselines_y_px
        image, bands = spread_rows(sheet_rgb, anchors_y, spread_to,
                                   spread_half_band_px(spread_band, float(np.median(np.diff(ys))), spread_to))
        given = np.asarray(spread_to, dtype=np.float64)
    else:
        image = only_rows(sheet_rgb, anchors_y, ys) if len(ys) > n_model else sheet_rgb
        top, bottom = kept_rows_span(anchors_y, ys, h) if len(ys) > n_model else (0, h)
        bands = [(0, top, bottom)] * n_model
        given = np.asarray(anchors_y, dtype=np.float64)
    for c, (row, (shift, lo, hi)) in enumerate(zip(rows, bands, strict=True)):
        if row < 0:
            continue
        y = labels.row_y_px[row]
        row_y[c] = np.where((y >= lo - 0.5) & (y < hi - 0.5), y + shift, np.nan)
        masks[c, lo + shift:hi + shift] = labels.row_masks[row, lo:hi]
    return image, row_y, masks, given


class PageToSample:
    """Transform for :class:`synth.dataset.SynthPageDataset`: SynthPage -> sample dict (see module doc).

    ``jitter``: probability of a random vertical affine (scale 1 +- 2 %, shift +- 6 map px) applied after
    rectification. ``keep_labels`` adds what validation needs to read signals back. ``spread_band``: how a page
    of close rows is shown (see :func:`layout_pass`).
    """

    def __init__(self, spec: MapSpec | None = None, jitter: float = 0.0, keep_labels: bool = False, seed: int = 0,
                 layout: str = "3x4+II", n_model: int = 4, spread_band: float | None = SPREAD_BAND):
        self.spec = MapSpec() if spec is None else spec
        self.layout = layout  # the network's own layout; a page in another is shown as inference shows it
        self.n_model = n_model
        self.spread_band = spread_band
        self.jitter = jitter
        self.keep_labels = keep_labels
        self.rng = np.random.default_rng(seed)

    def __call__(self, page: SynthPage) -> dict:
        (image_type, pim), = page.images.items()
        sheet = pim.sheet_map.rectify(pim.image_rgb)
        labels = page.labels
        if labels.layout_name == self.layout:
            row_y, row_masks = labels.row_y_px, labels.row_masks
            anchors = training_anchors(sheet, labels.layout_name, labels.baselines_y_px, self.rng)
        else:
            sheet, row_y, row_masks, anchors = layout_pass(sheet, labels, self.rng, self.n_model, self.layout,
                                                            self.spread_band)
        masks = np.stack([cv2.resize(m, self.spec.shape_hw[::-1], interpolation=cv2.INTER_AREA) for m in row_masks])
        sample = {
            "image": sheet_to_map_image(sheet, self.spec),
            "col_y": column_targets(row_y, labels.x_upsample, self.spec),
            "masks": masks,
            "image_type": image_type,
            "anchors_map_y": self.spec.sheet_to_map_y(anchors).astype(np.float32),
        }
        if self.jitter > 0 and self.rng.random() < self.jitter:
            a = float(self.rng.uniform(0.98, 1.02))
            hm = self.spec.shape_hw[0]
            b = float(self.rng.uniform(-6, 6)) + (1 - a) * hm / 2
            sample = y_affine(sample, a, b, self.spec)
        if self.keep_labels:
            sample.update({
                "record_id": labels.record_id,
                "fs_hz": labels.fs_hz,
                "layout_name": labels.layout_name,
                "x0_px": labels.x0_px,
                "baselines_y_px": tuple(labels.baselines_y_px),
                "signals_mv": labels.signals_mv,
            })
        return sample


# ------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class RecordSource:
    folder: str
    adc_gain: float | None


def default_sources(root: Path) -> list[RecordSource]:
    """The shared signal folders; LUDB's header gains are wrong (adc_gain=1000), the others use their headers."""
    root = Path(root)
    out = []
    for sub in sorted(p.name for p in root.iterdir() if p.is_dir()):
        out.append(RecordSource(sub, 1000.0 if sub.lower() == "ludb" else None))
    return out


def split_records(root: Path, val_every: int = 10) -> tuple[list[Record], list[Record], dict]:
    """Read every record under ``root``/<source>, cut 10 s windows, split by path: every ``val_every``-th
    record path of each source (in sorted order, starting with the first) goes to validation."""
    root = Path(root)
    train, val = [], []
    desc: dict = {}
    for src in default_sources(root):
        paths = list_record_paths(root / src.folder)
        n_tr = n_va = 0
        for i, path in enumerate(paths):
            try:
                rec = read_record(path, adc_gain=src.adc_gain)
            except Exception as exc:  # noqa: BLE001 - skip unreadable files, as iter_records does
                print(f"skipping {path}: {type(exc).__name__}: {exc}", flush=True)
                continue
            wins = windows(rec)
            if i % val_every == 0:
                val += wins
                n_va += len(wins)
            else:
                train += wins
                n_tr += len(wins)
        desc[src.folder] = {"paths": len(paths), "adc_gain": src.adc_gain, "train_windows": n_tr, "val_windows": n_va}
    return train, val, desc
