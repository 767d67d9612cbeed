"""Stage 2 entry points: TraceMaps (+ the measured px/mm and the Page's fs and sample counts) -> Signals.

A bundle is a folder with ``config.json``::

    {
      "format": 1,
      "extract":     {...ExtractConfig fields...},
      "calibrate":   {...CalibrateConfig fields...},
      "postprocess": {...PostConfig fields...},
      "refiner":     null,
      "tuned":       {...how the settings were chosen: data, command, scores...}
    }

Every section and field is optional (defaults apply). ``refiner`` names the 1-D network that corrects the
read leads (see :mod:`stage2_signal.refine`): ``{"type": "lead_cnn", "weights": "refiner.safetensors", ...}``;
null reads the leads without it. An unknown type or a missing weights file is refused, never ignored.
``tuned`` is a record for people (it changes no reading and is not compared), kept when a bundle is saved.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.types import Page, Signals, TraceMaps
from stage2_signal.calibrate import CalibrateConfig, corrected_gap, n_record_samples, read_panels
from stage2_signal.extract import ExtractConfig, read_rows
from stage2_signal.model import REFINER_REGISTRY
from stage2_signal.postprocess import PostConfig, assemble_leads
from stage2_signal.refine import Refiner
from stage2_signal.stroke import stroke_width_px

CONFIG_FORMAT = 1


@dataclass(frozen=True)
class ExtractorConfig:
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    postprocess: PostConfig = field(default_factory=PostConfig)
    refiner: dict | None = None
    tuned: dict | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d = {"format": CONFIG_FORMAT, "extract": self.extract.to_dict(), "calibrate": self.calibrate.to_dict(),
             "postprocess": self.postprocess.to_dict(), "refiner": self.refiner}
        if self.tuned is not None:
            d["tuned"] = self.tuned
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ExtractorConfig:
        d = dict(d)
        fmt = d.pop("format", CONFIG_FORMAT)
        if fmt != CONFIG_FORMAT:
            raise ValueError(f"stage-2 config format {fmt} is not supported (expected {CONFIG_FORMAT})")
        unknown = set(d) - {"extract", "calibrate", "postprocess", "refiner", "tuned"}
        if unknown:
            raise ValueError(f"unknown stage-2 config sections {sorted(unknown)}")
        refiner = d.get("refiner")
        if refiner is not None:
            kind = refiner.get("type") if isinstance(refiner, dict) else None
            if kind not in REFINER_REGISTRY:
                raise ValueError(f"stage-2 refiner type {kind!r} is not available (known: {list(REFINER_REGISTRY)})")
        return cls(extract=ExtractConfig.from_dict(d.get("extract")),
                   calibrate=CalibrateConfig.from_dict(d.get("calibrate")),
                   postprocess=PostConfig.from_dict(d.get("postprocess")), refiner=refiner, tuned=d.get("tuned"))


@dataclass
class Extraction:
    """Everything one extraction produced, for debugging and plots."""

    signals: Signals
    confidence: dict  # lead -> (n,) 0..1 per output sample
    traces: list  # RowTrace per layout row
    readings: list  # PanelReading per panel
    info: dict  # x0 per row and how it was found, scales


def _checked_float32(maps: TraceMaps) -> TraceMaps:
    """``maps`` in float32, checked. Stage 1 hands over float16, whose numpy reductions are emulated (a map's
    range took 10 ms a row); every reading below works on the float32 copy."""
    if maps.maps.dtype != np.float32:
        maps = replace(maps, maps=maps.maps.astype(np.float32))
    m = maps.maps
    if m.size == 0 or not np.isfinite(m).all():
        raise ValueError(f"{maps.image_id}: trace maps are empty or hold non-finite values")
    for r in range(m.shape[0]):
        if float(np.ptp(m[r])) <= 0.0:
            raise ValueError(f"{maps.image_id}: trace map of row {r} is constant: it holds no trace")
    return maps


def extract(maps: TraceMaps, rectified_px_per_mm: float, fs_hz: float, samples_per_lead: dict,
            config: ExtractorConfig | None = None, refiner: Refiner | None = None,
            sheet_rgb: np.ndarray | None = None, x0_px: np.ndarray | None = None,
            mm_per_mv: float = CANONICAL.mm_per_mv) -> Extraction:
    """Read ``maps`` into leads at ``fs_hz`` with ``samples_per_lead[lead]`` samples each; ``refiner`` (a loaded
    one, see :class:`SignalExtractor`) corrects them. ``confidence`` is the reading's, before refinement.
    ``sheet_rgb``, the rectified sheet the maps were made from, lets the trace's stroke width be measured, which
    places the chart's time origin to a fraction of a px (without it the origin may be late by ~1 px).
    ``x0_px``: a known chart origin per row (sheet px), e.g. the labels', to measure what timing costs.
    ``mm_per_mv``: the chart's gain (10 mm/mV unless its calibration pulses show another)."""
    cfg = config or ExtractorConfig()
    if not (np.isfinite(rectified_px_per_mm) and rectified_px_per_mm > 0):
        raise ValueError(f"rectified px_per_mm must be positive, got {rectified_px_per_mm}")
    if not (np.isfinite(mm_per_mv) and mm_per_mv > 0):
        raise ValueError(f"the chart's gain must be positive mm/mV, got {mm_per_mv}")
    missing = [lead for lead in LEADS if lead not in samples_per_lead]
    if missing:
        raise ValueError(f"sample counts missing for leads {missing}")
    maps = _checked_float32(maps)
    layout = get_layout(maps.layout_name)
    try:
        traces = read_rows(maps, cfg.extract)
        stroke_px = None if sheet_rgb is None else stroke_width_px(sheet_rgb, traces)
        readings, info = read_panels(traces, layout, fs_hz, rectified_px_per_mm, cfg.calibrate, stroke_px,
                                     x0_px=x0_px, sheet_rgb=sheet_rgb, mm_per_mv=mm_per_mv)
        corrected = None if x0_px is not None else corrected_gap(traces, layout, fs_hz, rectified_px_per_mm,
                                                                 cfg.calibrate, info, mm_per_mv)
        if corrected is not None:  # the gap between panels as the page shows it, to 0.1 mm
            readings, info = read_panels(traces, corrected, fs_hz, rectified_px_per_mm, cfg.calibrate, stroke_px,
                                         sheet_rgb=sheet_rgb, mm_per_mv=mm_per_mv)
            info["gap_corrected_to"] = corrected.name
        leads, conf = assemble_leads(readings, n_record_samples(fs_hz), samples_per_lead, cfg.postprocess)
        if refiner is not None:
            leads = refiner(leads, conf, fs_hz)
    except ValueError as exc:
        raise ValueError(f"{maps.image_id}: stage 2 failed: {exc}") from exc
    leads = {k: np.asarray(v, dtype=np.float64) for k, v in leads.items()}
    signals = Signals(image_id=maps.image_id, fs_hz=float(fs_hz), leads_mv=leads)
    return Extraction(signals, conf, traces, readings, info)


def extract_signals(maps: TraceMaps, rectified_px_per_mm: float, page: Page,
                    config: ExtractorConfig | None = None, refiner: Refiner | None = None,
                    sheet_rgb: np.ndarray | None = None) -> Signals:
    """Plain-function API: TraceMaps -> Signals for ``page`` (its fs and per-lead sample counts)."""
    return extract_page(maps, rectified_px_per_mm, page, config, refiner, sheet_rgb).signals


def extract_page(maps: TraceMaps, rectified_px_per_mm: float, page: Page, config: ExtractorConfig | None = None,
                 refiner: Refiner | None = None, sheet_rgb: np.ndarray | None = None) -> Extraction:
    """:func:`extract` for ``page`` (its fs and per-lead sample counts)."""
    counts = {lead: page.n_samples(lead) for lead in LEADS}
    return extract(maps, rectified_px_per_mm, page.fs_hz, counts, config, refiner, sheet_rgb)


class SignalExtractor:
    """Stage 2 as a callable: ``SignalExtractor.from_bundle(path)(maps, px_per_mm, page) -> Signals``."""

    def __init__(self, config: ExtractorConfig | None = None, bundle_dir: Path | None = None):
        self.config = config or ExtractorConfig()
        self.bundle_dir = bundle_dir
        self.refiner = None
        if self.config.refiner is not None:
            if bundle_dir is None:
                raise ValueError("a stage-2 config with a refiner needs the bundle folder that holds its weights")
            self.refiner = Refiner.from_section(self.config.refiner, bundle_dir)

    @classmethod
    def from_bundle(cls, path: str | Path) -> SignalExtractor:
        path = Path(path)
        cfg_path = path / "config.json" if path.is_dir() else path
        if not cfg_path.is_file():
            raise FileNotFoundError(f"stage-2 bundle config not found: {cfg_path}")
        try:
            d = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
        return cls(ExtractorConfig.from_dict(d), cfg_path.parent)

    def save_bundle(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.refiner is not None and self.bundle_dir is not None and path.resolve() != self.bundle_dir.resolve():
            shutil.copy2(self.bundle_dir / self.config.refiner["weights"], path / self.config.refiner["weights"])
        (path / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
        return path

    def extract(self, maps: TraceMaps, rectified_px_per_mm: float, fs_hz: float,
                samples_per_lead: dict, sheet_rgb: np.ndarray | None = None,
                x0_px: np.ndarray | None = None, mm_per_mv: float = CANONICAL.mm_per_mv) -> Extraction:
        return extract(maps, rectified_px_per_mm, fs_hz, samples_per_lead, self.config, self.refiner, sheet_rgb,
                       x0_px, mm_per_mv)

    def extract_page(self, maps: TraceMaps, rectified_px_per_mm: float, page: Page,
                     sheet_rgb: np.ndarray | None = None) -> Extraction:
        return extract_page(maps, rectified_px_per_mm, page, self.config, self.refiner, sheet_rgb)

    def __call__(self, maps: TraceMaps, rectified_px_per_mm: float, page: Page,
                 sheet_rgb: np.ndarray | None = None) -> Signals:
        return self.extract_page(maps, rectified_px_per_mm, page, sheet_rgb).signals
