"""The one description of the canonical ECG sheet: size, resolution, paper speed and gain.

Every stage converts between pixels, seconds and millivolts through a :class:`SheetGeometry`; no other
module spells out 2200x1700 px, 200 dpi, 25 mm/s or 10 mm/mV. The canonical sheet is what ECG-Image-Kit
(the competition's generator) renders with its defaults: US-letter landscape at 200 dpi.

Pixel coordinates follow OpenCV: x grows to the right, y grows downwards, the centre of pixel (i, j) is
at x = j, y = i. A trace's voltage therefore grows as y shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MM_PER_INCH = 25.4
# the standard calibration pulse printed at a row's start: 1 mV high, 0.2 s wide
PULSE_HEIGHT_MV = 1.0
PULSE_WIDTH_S = 0.2
# the gains ECG machines print a chart at (mm per mV): the sheet's 10, half for tall signals, double for small ones
GAINS_MM_PER_MV = (10.0, 5.0, 20.0)


@dataclass(frozen=True)
class SheetGeometry:
    """Size and calibration of a sheet; the default instance is the canonical sheet."""

    width_px: int = 2200
    height_px: int = 1700
    dpi: float = 200.0
    mm_per_s: float = 25.0
    mm_per_mv: float = 10.0
    small_box_mm: float = 1.0
    big_box_mm: float = 5.0

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"sheet size must be positive, got {self.width_px}x{self.height_px} px")
        for name in ("dpi", "mm_per_s", "mm_per_mv", "small_box_mm", "big_box_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    # --- derived scales -------------------------------------------------------------------------
    @property
    def px_per_mm(self) -> float:
        return self.dpi / MM_PER_INCH

    @property
    def px_per_s(self) -> float:
        return self.mm_per_s * self.px_per_mm

    @property
    def px_per_mv(self) -> float:
        return self.mm_per_mv * self.px_per_mm

    @property
    def shape_hw(self) -> tuple[int, int]:
        return (self.height_px, self.width_px)

    @property
    def width_mm(self) -> float:
        return self.width_px / self.px_per_mm

    @property
    def height_mm(self) -> float:
        return self.height_px / self.px_per_mm

    # --- conversions (arrays or scalars) ----------------------------------------------------------
    def s_to_px(self, seconds):
        """Horizontal length in px of a time span in seconds."""
        return np.asarray(seconds, dtype=np.float64) * self.px_per_s

    def px_to_s(self, px):
        return np.asarray(px, dtype=np.float64) / self.px_per_s

    def mv_to_px(self, mv):
        """Vertical length in px of a voltage in mV (positive = upwards on paper)."""
        return np.asarray(mv, dtype=np.float64) * self.px_per_mv

    def px_to_mv(self, px):
        return np.asarray(px, dtype=np.float64) / self.px_per_mv

    def y_to_mv(self, y_px, baseline_y_px):
        """Voltage of a trace point at image row ``y_px`` above a 0 mV line at ``baseline_y_px``."""
        return self.px_to_mv(np.asarray(baseline_y_px, dtype=np.float64) - np.asarray(y_px, dtype=np.float64))

    def mv_to_y(self, mv, baseline_y_px):
        """Image row of a voltage ``mv`` drawn over a 0 mV line at ``baseline_y_px``."""
        return np.asarray(baseline_y_px, dtype=np.float64) - self.mv_to_px(mv)

    def with_px_per_mm(self, px_per_mm: float) -> SheetGeometry:
        """The same paper at another resolution (e.g. measured from a scan's grid pitch)."""
        if not px_per_mm > 0:
            raise ValueError(f"px_per_mm must be positive, got {px_per_mm}")
        scale = px_per_mm / self.px_per_mm
        return SheetGeometry(
            width_px=int(round(self.width_px * scale)),
            height_px=int(round(self.height_px * scale)),
            dpi=px_per_mm * MM_PER_INCH,
            mm_per_s=self.mm_per_s,
            mm_per_mv=self.mm_per_mv,
            small_box_mm=self.small_box_mm,
            big_box_mm=self.big_box_mm,
        )

    def big_box_line_x_px(self, x_px):
        """x (px) of the vertical big-box grid line nearest ``x_px``, for a grid ruled from the paper's left edge
        (which lies at x = -0.5: pixel centres are at whole x)."""
        pitch = self.big_box_mm * self.px_per_mm
        return np.round((np.asarray(x_px, dtype=np.float64) + 0.5) / pitch) * pitch - 0.5

    def corners_px(self) -> np.ndarray:
        """Page corners (4, 2) as x, y: top-left, top-right, bottom-right, bottom-left."""
        w, h = self.width_px - 1, self.height_px - 1
        return np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)


CANONICAL = SheetGeometry()
