"""Printed ECG layouts as data: which lead is drawn in which row, over which span of the record.

A layout says nothing about pixels: where its rows sit on a page is a :class:`Placement`, chosen by the
renderer (and recorded in its labels) or measured from a page. Stages ask the layout which samples of
which lead a row shows, so nothing is bound to the competition's 3x4 + II.

:data:`LAYOUTS` holds the base arrangements (what the layout finder fits and the factory draws from). Each has
variants named ``BASE[/cabrera][/rhythm=A,B,C][/gapXmm]`` (:func:`get_layout` builds them from the name,
:func:`layout_name` writes it): ``/cabrera`` prints the limb leads in Cabrera's order (aVL, I, -aVR, II, aVF, III;
-aVR is aVR printed upside down, :attr:`Panel.inverted`), ``/rhythm=V1,II,V5`` prints the base's rhythm strips in
that order (:func:`with_rhythm`: many printers put V1 first), ``/gap5mm`` leaves 5 mm of blank paper between the
panels of a row, each panel's chart time starting after its own offset (:func:`with_gap`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

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
    """One lead drawn over record time [t0_s, t1_s), starting ``x_offset_s`` after its row's origin; ``inverted``:
    printed upside down (Cabrera's -aVR), so the page shows -lead and a reading of it is multiplied by
    :attr:`sign` to give the lead."""

    lead: str
    row: int
    col: int
    t0_s: float
    t1_s: float
    x_offset_s: float
    inverted: bool = False

    def __post_init__(self) -> None:
        if self.lead not in LEADS:
            raise ValueError(f"panel lead {self.lead!r} is not one of {LEADS}")
        if not 0 <= self.t0_s < self.t1_s <= RECORD_DURATION_S:
            raise ValueError(f"panel span [{self.t0_s}, {self.t1_s}) s is outside the 10 s record")

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s

    @property
    def sign(self) -> float:
        """+1, or -1 for an inverted panel: printed mV = sign * lead mV (and the other way round)."""
        return -1.0 if self.inverted else 1.0

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
        # two strips, most often printed V1 over II (variant /rhythm=V1,II)
        _grid_layout("3x4+II,V1", _3X4_COLUMNS, rhythm=("II", "V1")),
        _grid_layout("6x2", [list(LIMB_LEADS), list(LEADS[6:])]),
        _grid_layout("12x1", [list(LEADS)]),
    )
}
COMPETITION_LAYOUT = LAYOUTS["3x4+II"]

CABRERA_ORDER: tuple[str, ...] = ("aVL", "I", "aVR", "II", "aVF", "III")  # aVR printed inverted (-aVR)
CABRERA_BASES: tuple[str, ...] = ("3x4+II", "6x2")  # the base layouts with a Cabrera variant
MAX_GAP_MM = 20.0  # a wider "gap" between panels is not a layout but a reading gone wrong
_GAP_RE = re.compile(r"gap(\d+(?:\.\d)?)mm")


def cabrera(layout: Layout) -> Layout:
    """``layout`` with its limb leads in Cabrera's order: the panel that printed the k-th limb lead (in
    :data:`LIMB_LEADS` order) prints the k-th of :data:`CABRERA_ORDER`, aVR inverted. Rhythm rows (a row of one
    full-length panel) keep their lead."""
    swap = dict(zip(LIMB_LEADS, CABRERA_ORDER, strict=True))
    panels = tuple(replace(p, lead=swap[p.lead], inverted=swap[p.lead] == "aVR")
                   if p.lead in swap and p.duration_s < RECORD_DURATION_S else p for p in layout.panels)
    return Layout(f"{layout.name}/cabrera", panels)


def rhythm_leads(layout: Layout) -> tuple[str, ...]:
    """The leads of ``layout``'s rhythm strips, top to bottom: its rows of one full-length panel, on a page that
    also has rows of several panels (12x1's rows are its panels, not strips)."""
    rows = [layout.row_panels(k) for k in range(layout.n_rows)]
    if all(len(r) == 1 for r in rows):
        return ()
    return tuple(r[0].lead for r in rows if len(r) == 1 and r[0].duration_s >= RECORD_DURATION_S)


def with_rhythm(layout: Layout, leads) -> Layout:
    """``layout`` with its rhythm strips printing ``leads`` top to bottom, a reordering of its own strips' leads."""
    leads, own = tuple(leads), rhythm_leads(layout)
    if sorted(leads) != sorted(own) or len(own) < 2:
        raise ValueError(f"layout {layout.name}: rhythm strips {own} cannot be printed as {leads}")
    strip_rows = sorted(p.row for p in layout.panels if len(layout.row_panels(p.row)) == 1
                        and p.duration_s >= RECORD_DURATION_S)
    lead_of = dict(zip(strip_rows, leads, strict=True))
    panels = tuple(replace(p, lead=lead_of[p.row]) if p.row in lead_of else p for p in layout.panels)
    return Layout(f"{layout.name}/rhythm={','.join(leads)}", panels)


def with_gap(layout: Layout, gap_mm: float, mm_per_s: float = 25.0) -> Layout:
    """``layout`` with ``gap_mm`` of blank paper (at ``mm_per_s`` of chart) before every panel but a row's first:
    the panel in column c starts c gaps later; record times do not change."""
    gap_mm = round(float(gap_mm), 1)  # names keep 0.1 mm (0.8 px at 200 dpi); the geometry follows the name
    if not 0.0 < gap_mm <= MAX_GAP_MM:
        raise ValueError(f"a gap between panels must be in (0, {MAX_GAP_MM}] mm, got {gap_mm}")
    gap_s = gap_mm / mm_per_s
    panels = tuple(replace(p, x_offset_s=p.x_offset_s + p.col * gap_s) for p in layout.panels)
    return Layout(f"{layout.name}/gap{gap_mm:g}mm", panels)


def layout_name(base: str, cabrera_order: bool = False, gap_mm: float = 0.0, rhythm: tuple[str, ...] = ()) -> str:
    """The name of ``base``'s variant (see the module doc); ``gap_mm`` is kept to 0.1 mm; ``rhythm``: its strips'
    leads in the order printed (empty: the base's order)."""
    name = base + ("/cabrera" if cabrera_order else "") + (f"/rhythm={','.join(rhythm)}" if rhythm else "")
    gap = round(float(gap_mm), 1)
    return name + (f"/gap{gap:g}mm" if gap > 0 else "")


def with_gap_name(name: str, gap_mm: float) -> str:
    """``name`` with its gap (if any) replaced by ``gap_mm`` (kept to 0.1 mm; 0: none), its other variants kept
    ("3x4+II,V1,V5/rhythm=V1,II,V5/gap3.1mm", 3 -> "3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm")."""
    parts = name.split("/")
    if len(parts) > 1 and _GAP_RE.fullmatch(parts[-1]):
        parts = parts[:-1]
    gap = round(float(gap_mm), 1)
    return "/".join(parts) + (f"/gap{gap:g}mm" if gap > 0 else "")


def base_name(name: str) -> str:
    """The base layout of a variant name ("3x4+II/gap5mm" -> "3x4+II")."""
    return name.split("/", 1)[0]


def gap_mm_of(name: str) -> float:
    """The gap between panels a layout name asks for (0 without one)."""
    match = _GAP_RE.fullmatch(name.rsplit("/", 1)[-1])
    return float(match.group(1)) if match else 0.0


def known_layout_names() -> list[str]:
    """Every base layout and its Cabrera variant (gap variants are any gap, so not listed)."""
    return list(LAYOUTS) + [f"{b}/cabrera" for b in CABRERA_BASES]


@lru_cache(maxsize=256)
def get_layout(name: str) -> Layout:
    """The layout called ``name``: a base layout of :data:`LAYOUTS` or one of its variants (module doc)."""
    base, *mods = name.split("/")
    if base not in LAYOUTS:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(known_layout_names())} (and '/gapXmm' "
                       "variants, e.g. '3x4+II/gap5mm')")
    layout = LAYOUTS[base]
    if mods and mods[0] == "cabrera":
        if base not in CABRERA_BASES:
            raise KeyError(f"layout {name!r}: only {', '.join(CABRERA_BASES)} have a Cabrera variant")
        layout, mods = cabrera(layout), mods[1:]
    if mods and mods[0].startswith("rhythm="):
        try:
            layout = with_rhythm(layout, mods[0][len("rhythm="):].split(","))
        except ValueError as exc:
            raise KeyError(f"layout {name!r}: {exc}") from None
        mods = mods[1:]
    if mods:
        match = _GAP_RE.fullmatch(mods[0])
        if len(mods) > 1 or match is None:
            raise KeyError(f"layout {name!r}: variants are '/cabrera', '/rhythm=A,B,C' then '/gapXmm' (X in mm, "
                           "at most one decimal), e.g. '3x4+II/cabrera/gap5mm'")
        try:
            layout = with_gap(layout, float(match.group(1)))
        except ValueError as exc:
            raise KeyError(f"layout {name!r}: {exc}") from None
    return layout


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

    Close to ECG-Image-Kit's defaults for 3x4 + II: the 10 s rows end near the right edge (the longest row, when
    gaps between panels make rows longer than the record).
    """
    w, h = geometry.width_px, geometry.height_px
    longest_s = max(RECORD_DURATION_S, *(layout.row_duration_s(r) for r in range(layout.n_rows)))
    chart_px = float(geometry.s_to_px(longest_s))
    x0 = w - chart_px - 0.02 * w
    top = (0.30 if layout.n_rows <= 4 else 0.10) * h
    bottom = 0.97 * h
    spacing = (bottom - top) / layout.n_rows
    return Placement(x0_px=x0, baselines_y_px=tuple(top + spacing * (i + 0.62) for i in range(layout.n_rows)))
