"""Contracts passed between stages: Page -> SourcePrediction -> Rectified -> TraceMaps -> Signals.

Each is a frozen dataclass that checks shapes, dtypes and units when it is made, and saves itself as a
pair ``<stem>.npz`` (arrays) + ``<stem>.json`` (everything else), so one stage can be run and inspected
alone on another stage's saved output.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.sheet_map import SheetMap

IMAGE_TYPES: tuple[str, ...] = ("0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012")
SUPPORTED_FS_HZ: tuple[int, ...] = (250, 256, 500, 512, 1000, 1025)


def _check_image(name: str, image: np.ndarray, shape_hw: tuple[int, int] | None = None) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = getattr(image, "shape", None), getattr(image, "dtype", type(image))
        raise ValueError(f"{name} must be an RGB uint8 array (H, W, 3), got {got}")
    if shape_hw is not None and image.shape[:2] != tuple(shape_hw):
        raise ValueError(f"{name} must be {shape_hw[0]}x{shape_hw[1]} px, got {image.shape[:2]}")
    if min(image.shape[:2]) < 16:
        raise ValueError(f"{name} is too small to hold an ECG: {image.shape[:2]} px")


def _check_fs(fs_hz: float) -> None:
    if not (np.isfinite(fs_hz) and 50 <= fs_hz <= 5000):
        raise ValueError(f"fs_hz must be a sampling rate in Hz (50..5000), got {fs_hz}")


def _with_suffix(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix, keeping dots inside the stem ("10001.labels" -> "10001.labels.npz")."""
    return stem.parent / (stem.name + suffix)


class Contract:
    """Save/load for frozen dataclasses; ndarray fields go to npz, dict-of-ndarray fields too."""

    _FORMAT: ClassVar[int] = 1

    def save(self, stem: str | Path) -> Path:
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"contract": type(self).__name__, "format": self._FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
                for key, arr in value.items():
                    arrays[f"{f.name}/{key}"] = arr
                meta[f.name] = {"__arrays__": list(value)}
            elif isinstance(value, SheetMap):
                meta[f.name] = {"__sheet_map__": value.to_dict()}
            else:
                meta[f.name] = value
        np.savez_compressed(_with_suffix(stem, ".npz"), **arrays)
        _with_suffix(stem, ".json").write_text(json.dumps(meta, indent=1))
        return stem

    @classmethod
    def load(cls, stem: str | Path):
        stem = Path(stem)
        meta_path, npz_path = _with_suffix(stem, ".json"), _with_suffix(stem, ".npz")
        for p in (meta_path, npz_path):
            if not p.is_file():
                raise FileNotFoundError(f"cannot load {cls.__name__}: {p} is missing")
        meta = json.loads(meta_path.read_text())
        if meta.get("contract") != cls.__name__:
            raise ValueError(f"{meta_path} holds a {meta.get('contract')}, not a {cls.__name__}")
        kwargs: dict[str, Any] = {}
        with np.load(npz_path) as npz:
            for f in dataclasses.fields(cls):
                if f.name in npz.files:
                    kwargs[f.name] = npz[f.name]
                elif isinstance(meta.get(f.name), dict) and "__arrays__" in meta[f.name]:
                    kwargs[f.name] = {k: npz[f"{f.name}/{k}"] for k in meta[f.name]["__arrays__"]}
                elif isinstance(meta.get(f.name), dict) and "__sheet_map__" in meta[f.name]:
                    kwargs[f.name] = SheetMap.from_dict(meta[f.name]["__sheet_map__"])
                elif f.name in meta:
                    value = meta[f.name]
                    kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)


@dataclass(frozen=True)
class Page(Contract):
    """One input image and what the caller asks for: ``fs_hz`` and samples per lead."""

    image_id: str
    image_rgb: np.ndarray
    fs_hz: float
    samples_per_lead: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_image("Page.image_rgb", self.image_rgb)
        _check_fs(self.fs_hz)
        bad = {k: v for k, v in self.samples_per_lead.items() if k not in LEADS or int(v) <= 0}
        if bad:
            raise ValueError(f"Page.samples_per_lead has unknown leads or non-positive counts: {bad}")

    def n_samples(self, lead: str) -> int:
        return requested_samples(self.fs_hz, self.samples_per_lead, lead)


def requested_samples(fs_hz: float, samples_per_lead: dict, lead: str) -> int:
    """Samples asked for ``lead``; by default the competition's (10 s for II, 2.5 s otherwise)."""
    if lead in samples_per_lead:
        return int(samples_per_lead[lead])
    return int(round(fs_hz * (10.0 if lead == "II" else 2.5)))


@dataclass(frozen=True)
class SourcePrediction(Contract):
    """What the source classifier says the page is: a probability per image type (``IMAGE_TYPES`` order), the
    top type, and the classifier's ``threshold``: a top probability under it marks the prediction
    low-confidence (routing then uses the most general settings)."""

    image_id: str
    image_type: str
    probabilities: np.ndarray
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.image_id, str) or not self.image_id:
            raise ValueError(f"SourcePrediction.image_id must be a non-empty string, got {self.image_id!r}")
        if self.image_type not in IMAGE_TYPES:
            raise ValueError(f"image_type must be one of {IMAGE_TYPES}, got {self.image_type!r}")
        p = np.asarray(self.probabilities, dtype=np.float64)
        if (p.shape != (len(IMAGE_TYPES),) or not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()
                or abs(float(p.sum()) - 1) > 1e-3):
            raise ValueError(f"probabilities must be {len(IMAGE_TYPES)} finite values in [0, 1] summing to 1, got {p}")
        if p[IMAGE_TYPES.index(self.image_type)] < p.max():
            raise ValueError(f"image_type {self.image_type} is not the most probable type "
                             f"({IMAGE_TYPES[int(p.argmax())]}: {p.max():.3f})")
        if not (np.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ValueError(f"SourcePrediction.threshold must be a probability in [0, 1], got {self.threshold}")
        object.__setattr__(self, "probabilities", p)
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def confidence(self) -> float:
        """The top type's probability."""
        return float(self.probabilities.max())

    @property
    def low_confidence(self) -> bool:
        return self.confidence < self.threshold

    def probability(self, image_type: str) -> float:
        return float(self.probabilities[IMAGE_TYPES.index(image_type)])


@dataclass(frozen=True)
class Rectified(Contract):
    """The page resampled onto the canonical sheet, and the map that did it."""

    image_id: str
    sheet_rgb: np.ndarray
    sheet_map: SheetMap
    px_per_mm: float
    method: str
    confidence: float
    residual_grid_px: float | None = None  # rms distance (sheet px) of the page's grid lines from the straight,
    # evenly spaced lines the map makes of them, where stage 0 could measure it (None: no grid was read)

    def __post_init__(self) -> None:
        _check_image("Rectified.sheet_rgb", self.sheet_rgb, CANONICAL.shape_hw)
        residual = self.residual_grid_px
        if residual is not None and not (np.isfinite(residual) and residual >= 0):
            raise ValueError(f"Rectified.residual_grid_px must be a non-negative number, got {self.residual_grid_px}")
        if not (0.5 * CANONICAL.px_per_mm <= self.px_per_mm <= 2.0 * CANONICAL.px_per_mm):
            raise ValueError(f"Rectified.px_per_mm {self.px_per_mm} is implausible for the canonical sheet")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Rectified.confidence must be in [0, 1], got {self.confidence}")


@dataclass(frozen=True)
class TraceMaps(Contract):
    """Per layout row, a probability map of that row's trace over the whole canonical sheet.

    ``maps`` is (n_rows, round(H * scale_y), round(W * scale_x)) for the canonical H x W sheet: map pixel
    (i, j) is centred on sheet x = (j + 0.5) / scale_x - 0.5, y = (i + 0.5) / scale_y - 0.5, so a map may
    be coarser than the sheet in y (soft-argmax recovers sub-pixel y) and finer in x (2-4x resolves QRS
    strokes that share a sheet column).
    """

    image_id: str
    layout_name: str
    maps: np.ndarray
    scale_x: float = 1.0
    scale_y: float = 1.0

    def __post_init__(self) -> None:
        layout = get_layout(self.layout_name)
        m = self.maps
        h, w = CANONICAL.shape_hw
        expected = (layout.n_rows, int(round(h * self.scale_y)), int(round(w * self.scale_x)))
        if not isinstance(m, np.ndarray) or m.dtype not in (np.float16, np.float32) or m.shape != expected:
            raise ValueError(f"TraceMaps.maps must be float16/32 {expected}, got {getattr(m, 'shape', None)}")

    def sheet_x(self) -> np.ndarray:
        """Sheet x (px) of each map column centre."""
        return (np.arange(self.maps.shape[2]) + 0.5) / self.scale_x - 0.5

    def sheet_y(self) -> np.ndarray:
        """Sheet y (px) of each map row centre."""
        return (np.arange(self.maps.shape[1]) + 0.5) / self.scale_y - 0.5


@dataclass(frozen=True)
class Signals(Contract):
    """The digitized leads in mV at ``fs_hz``; each lead holds the samples the caller asked for."""

    image_id: str
    fs_hz: float
    leads_mv: dict

    def __post_init__(self) -> None:
        _check_fs(self.fs_hz)
        if set(self.leads_mv) != set(LEADS):
            raise ValueError(f"Signals.leads_mv must hold exactly {LEADS}, got {sorted(self.leads_mv)}")
        for lead, values in self.leads_mv.items():
            if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind != "f":
                raise ValueError(f"Signals lead {lead} must be a 1-D float array")
            if not np.isfinite(values).all():
                raise ValueError(f"Signals lead {lead} of {self.image_id} has non-finite values")
