"""Exact labels of a rendered page, in canonical-sheet pixels, and the map that ties an image to them.

The page factory renders once on the canonical sheet; every image type of that page is the same sheet
seen through a different :class:`~common.sheet_map.SheetMap`. So the labels split in two:
:class:`SheetLabels` (what was drawn where on the sheet; shared by all image types of a record) and the
per-image sheet map, from which image-space keypoints follow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from common.geometry import CANONICAL, SheetGeometry
from common.layouts import LEADS, Placement, get_layout
from common.sheet_map import SheetMap
from common.types import Contract


def sub_column_x(width_px: int, x_upsample: int) -> np.ndarray:
    """Sheet x of the centres of the ``width_px * x_upsample`` sub-columns (pixel j's centre is x = j)."""
    j = np.arange(width_px * x_upsample, dtype=np.float64)
    return (j + 0.5) / x_upsample - 0.5


@dataclass(frozen=True)
class SheetLabels(Contract):
    """What the renderer drew on the canonical sheet.

    signals_mv: (12, n_samples) float32, the plotted values per lead in :data:`LEADS` order at ``fs_hz``,
        NaN where the lead is not printed (the competition's train CSV).
    row_y_px: (n_rows, width_px * x_upsample) float32, per layout row the exact y of the trace centre at
        each sub-column centre (see :func:`sub_column_x`); NaN where the row has no trace.
    row_masks: (n_rows, height_px, width_px) uint8 anti-aliased coverage (0..255) of each row's trace
        alone, so traces crossing into a neighbouring row stay separable.
    label_boxes_px: (n_panels, 4) x0, y0, x1, y1 of each panel's lead name, in ``panel_leads`` order.
    pulse_boxes_px: (n_rows, 4) boxes of the calibration pulses, NaN for rows printed without one.
    keypoints_px: (n_keypoints, 2) sheet x, y; ``keypoint_kinds`` names each ("grid", "panel", "page").
    """

    record_id: str
    fs_hz: float
    layout_name: str
    x0_px: float
    baselines_y_px: tuple
    trace_width_px: float
    x_upsample: int
    signals_mv: np.ndarray
    row_y_px: np.ndarray
    row_masks: np.ndarray
    panel_leads: tuple
    label_boxes_px: np.ndarray
    pulse_boxes_px: np.ndarray
    keypoints_px: np.ndarray
    keypoint_kinds: tuple
    style: dict

    def __post_init__(self) -> None:
        layout = get_layout(self.layout_name)
        h, w = CANONICAL.shape_hw
        n_rows = layout.n_rows
        checks = {
            "signals_mv": (self.signals_mv, (len(LEADS), int(round(10 * self.fs_hz))), np.float32),
            "row_y_px": (self.row_y_px, (n_rows, w * self.x_upsample), np.float32),
            "row_masks": (self.row_masks, (n_rows, h, w), np.uint8),
            "label_boxes_px": (self.label_boxes_px, (len(self.panel_leads), 4), np.float32),
            "pulse_boxes_px": (self.pulse_boxes_px, (n_rows, 4), np.float32),
            "keypoints_px": (self.keypoints_px, (len(self.keypoint_kinds), 2), np.float32),
        }
        for name, (arr, shape, dtype) in checks.items():
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                got = (getattr(arr, "shape", None), getattr(arr, "dtype", None))
                raise ValueError(f"SheetLabels.{name} must be {np.dtype(dtype).name} {shape}, got {got}")
        if len(self.baselines_y_px) != n_rows:
            raise ValueError(f"SheetLabels needs {n_rows} baselines for {self.layout_name}")

    @property
    def placement(self) -> Placement:
        return Placement(self.x0_px, tuple(self.baselines_y_px))

    @property
    def layout(self):
        return get_layout(self.layout_name)

    @property
    def chart_geometry(self) -> SheetGeometry:
        """The sheet at the gain the chart was drawn at (``style["mm_per_mv"]``; pages written before it was a
        style, and ECG-Image-Kit's, are at 10 mm/mV)."""
        return replace(CANONICAL, mm_per_mv=float(self.style.get("mm_per_mv", CANONICAL.mm_per_mv)))

    def lead_signal(self, lead: str) -> np.ndarray:
        """The printed samples of ``lead`` (NaN-free), as the competition's solution holds them."""
        values = self.signals_mv[LEADS.index(lead)]
        return values[np.isfinite(values)]

    def image_keypoints(self, sheet_map: SheetMap) -> np.ndarray:
        """Keypoints in the pixels of an image whose map to the sheet is ``sheet_map``."""
        return sheet_map.sheet_to_image(self.keypoints_px.astype(np.float64)).astype(np.float32)
