"""Printed ECG layouts as data: which lead is drawn in which row, over which span of the record.

A layout says nothing about pixels: where its rows sit on a page is a :class:`Placement`, chosen by the
renderer (and recorded in its labels) or measured from a page. Stages ask the layout which samples of
which lead a row shows, so nothing is bound to the competition's 3x4 + II.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.geometry import CANONICAL, SheetGeometry

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS: tuple[str, ...] = LEADS[:6]
RECORD_DURATION_S = 10.0


def canonical_lead_name(name: str) -> str:
    """Map any spelling ("avr", "AVR", "v1", "MLII") onto the name in :data:`LEADS`."""
    key = name.strip().upper().replace(" ", "")
    aliases = {lead.upper(): lead for lead in LEADS}
    aliases["MLII"] = "II"
    if key not in aliases:
        raise KeyError(f"unknown lead name {name!r}; expected one of {', '.join(LEADS)}")
    return aliases[key]


@dataclass(frozen=True)
class Panel:
    """One lead drawn over record time [t0_s, t1_s), starting ``x_offset_s`` after its row's origin."""

    lead: str
    row: int
    col: int
    t0_s: float
    t1_s: float
    x_offset_s: float

    def __post_init__(self) -> None:
        if self.lead not in LEADS:
            raise ValueError(f"panel lead {self.lead!r} is not one of {LEADS}")
        if not 0 <= self.t0_s < self.t1_s <= RECORD_DURATION_S:
            raise ValueError(f"panel span [{self.t0_s}, {self.t1_s}) s is outside the 10 s record")

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s

    def sample_range(self, fs_hz: float, n_samples: int) -> tuple[int, int]:
        """Half-open index range [i0, i1) of the record samples this panel prints."""
        i0 = int(round(self.t0_s * fs_hz))
        i1 = min(int(round(self.t1_s * fs_hz)), n_samples)
        return i0, i1


@dataclass(frozen=True)
class Layout:
    name: str
    panels: tuple[Panel, ...]

    def __post_init__(self) -> None:
        rows = sorted({p.row for p in self.panels})
        if rows != list(range(len(rows))):
            raise ValueError(f"layout {self.name}: rows must be numbered 0..n-1, got {rows}")
        missing = set(LEADS) - {p.lead for p in self.panels}
        if missing:
            raise ValueError(f"layout {self.name}: leads never printed: {sorted(missing)}")

    @property
    def n_rows(self) -> int:
        return 1 + max(p.row for p in self.panels)

    def row_panels(self, row: int) -> tuple[Panel, ...]:
        return tuple(sorted((p for p in self.panels if p.row == row), key=lambda p: p.col))

    def row_duration_s(self, row: int) -> float:
        """Paper length of a row in seconds of chart time."""
        return max(p.x_offset_s + p.duration_s for p in self.row_panels(row))

    def lead_panels(self, lead: str) -> tuple[Panel, ...]:
        return tuple(p for p in self.panels if p.lead == lead)

    def printed_mask(self, lead: str, fs_hz: float, n_samples: int) -> np.ndarray:
        """Boolean (n_samples,): which samples of ``lead`` appear somewhere on the page."""
        mask = np.zeros(n_samples, dtype=bool)
        for panel in self.lead_panels(lead):
            i0, i1 = panel.sample_range(fs_hz, n_samples)
            mask[i0:i1] = True
        return mask


def _grid_layout(name: str, columns: list[list[str]], rhythm: tuple[str, ...] = ()) -> Layout:
    """Leads in ``columns`` (each a list of leads from top to bottom), the columns sharing the 10 s
    sequentially, then one full-length row per rhythm lead."""
    n_cols = len(columns)
    span = RECORD_DURATION_S / n_cols
    panels = []
    for col, leads in enumerate(columns):
        for row, lead in enumerate(leads):
            t0 = col * span
            panels.append(Panel(lead, row, col, t0, t0 + span, x_offset_s=t0))
    first_rhythm_row = max(len(c) for c in columns)
    for k, lead in enumerate(rhythm):
        panels.append(Panel(lead, first_rhythm_row + k, 0, 0.0, RECORD_DURATION_S, x_offset_s=0.0))
    return Layout(name, tuple(panels))


_3X4_COLUMNS = [["I", "II", "III"], ["aVR", "aVL", "aVF"], ["V1", "V2", "V3"], ["V4", "V5", "V6"]]

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        _grid_layout("3x4+II", _3X4_COLUMNS, rhythm=("II",)),
        _grid_layout("3x4", _3X4_COLUMNS),
        _grid_layout("3x4+II,V1,V5", _3X4_COLUMNS, rhythm=("II", "V1", "V5")),
        _grid_layout("6x2", [list(LIMB_LEADS), list(LEADS[6:])]),
        _grid_layout("12x1", [list(LEADS)]),
    )
}
COMPETITION_LAYOUT = LAYOUTS["3x4+II"]


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None


@dataclass(frozen=True)
class Placement:
    """Where a layout's rows sit on a sheet, in that sheet's pixels.

    ``x0_px`` is the x of chart time 0 (the start of every row's first panel); ``baselines_y_px`` the
    y of each row's 0 mV line.
    """

    x0_px: float
    baselines_y_px: tuple[float, ...]

    def panel_x_px(self, panel: Panel, t_s, geometry: SheetGeometry = CANONICAL):
        """Paper x of record time ``t_s`` (s) inside ``panel``."""
        return self.x0_px + geometry.s_to_px(panel.x_offset_s + (np.asarray(t_s) - panel.t0_s))

    def row_x_span_px(self, layout: Layout, row: int, geometry: SheetGeometry = CANONICAL) -> tuple[float, float]:
        return self.x0_px, self.x0_px + float(geometry.s_to_px(layout.row_duration_s(row)))


def default_placement(layout: Layout, geometry: SheetGeometry = CANONICAL) -> Placement:
    """Rows spread evenly below a header band, chart time 0 after room for a calibration pulse.

    Close to ECG-Image-Kit's defaults for 3x4 + II: the 10 s rows end near the right edge.
    """
    w, h = geometry.width_px, geometry.height_px
    chart_px = float(geometry.s_to_px(RECORD_DURATION_S))
    x0 = w - chart_px - 0.02 * w
    top = (0.30 if layout.n_rows <= 4 else 0.10) * h
    bottom = 0.97 * h
    spacing = (bottom - top) / layout.n_rows
    return Placement(x0_px=x0, baselines_y_px=tuple(top + spacing * (i + 0.62) for i in range(layout.n_rows)))
