"""Render a 10 s 12-lead record as a clean paper-ECG page on the canonical sheet, with exact labels.

Everything random about a page's look is a :class:`RenderStyle` drawn by :func:`sample_style`; the
renderer itself is deterministic. Traces are drawn as anti-aliased polylines at 1/16 px precision
(OpenCV's ``shift``), so the labelled sub-pixel centre line is exactly where the ink is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from common.geometry import CANONICAL, GAINS_MM_PER_MV, PULSE_HEIGHT_MV, PULSE_WIDTH_S, SheetGeometry
from common.layouts import (
    CABRERA_BASES,
    LAYOUTS,
    LEADS,
    RECORD_DURATION_S,
    Layout,
    Placement,
    base_name,
    default_placement,
    gap_mm_of,
    get_layout,
    layout_name,
)
from synth.labels import SheetLabels, sub_column_x

SUBPIXEL_BITS = 4  # cv2 drawing precision: coordinates in 1/16 px
_SUBPIXEL = 1 << SUBPIXEL_BITS
SIMPLIFY_TOLERANCE_PX = 0.1

# (minor line, major line) RGB; None = no grid. The first is the usual red/pink of ECG-Image-Kit.
GRID_PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    "pink": ((250, 190, 190), (235, 110, 110)),
    "red": ((245, 160, 160), (215, 50, 50)),
    "orange": ((252, 210, 170), (240, 150, 80)),
    "green": ((190, 230, 190), (100, 180, 110)),
    "blue": ((195, 215, 245), (110, 150, 220)),
    "grey": ((215, 215, 215), (150, 150, 150)),
    "none": None,
    "custom": None,  # the style's own grid_rgb (minor, major): e.g. dark hues where major and minor barely differ
}
TRACE_COLOURS = {"black": (0, 0, 0), "navy": (20, 30, 110), "darkgrey": (60, 60, 60), "dark": (25, 15, 10)}
HERSHEY_FONTS = {
    "simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "duplex": cv2.FONT_HERSHEY_DUPLEX,
    "complex": cv2.FONT_HERSHEY_COMPLEX,
    "triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "plain": cv2.FONT_HERSHEY_PLAIN,
    "complex_small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
}
ROW_MARGIN_PX = 230.0  # outer rows' baselines stay this far inside the sheet (room for 2.5 mV)
X0_RANGE_PX = (68.0, 213.0)  # sheet px: where the sampled placements put chart time 0 (default 188 -120..+25)
RIGHT_MARGIN_PX = 19.0  # sheet px: the longest row ends at least this far inside the sheet's right edge
PULSE_ROOM_PX = 68.0  # sheet px before x0 that a lead-in pulse takes (0.2 s box, lead-in and -out, 4 px)
SIGNAL_PITCH_PAD_MV = 0.5  # mV of paper added to each pitch a "signal" row layout sets by the rows' amplitudes
SIGNAL_PITCH_RANGE = (0.6, 1.6)  # ... each pitch within this factor of the page's mean pitch
TIME_MARKS = ("none", "ticks", "axis")  # what RenderStyle.time_marks may be


@dataclass(frozen=True)
class RenderStyle:
    layout_name: str = "3x4+II"
    grid: str = "pink"
    minor_grid: str = "lines"  # "lines", "dots" or "none"
    grid_width_px: float = 1.0  # major line width; minor lines are thinner
    paper_rgb: tuple = (255, 255, 255)
    trace_colour: str = "black"
    trace_width_px: int = 2
    font: str = "simplex"
    font_scale: float = 1.1
    label_dx_px: float = 12.0  # lead name offset from the panel start
    label_dy_mv: float = 0.9  # lead name height above the baseline
    calibration_pulse: bool = True
    separators: bool = True  # short bars at panel boundaries
    header: bool = True
    x0_shift_px: float = 0.0
    row_shift_px: float = 0.0
    row_spacing_scale: float = 1.0
    grid_origin_px: tuple = (0.0, 0.0)  # x, y of a major grid line crossing on the sheet (px)
    grid_rgb: tuple | None = None  # (minor, major) RGB for grid "custom"
    minor_width_px: float | None = None  # minor line width (default 0.55 x the major's; matplotlib draws both alike)
    grid_snap: bool = False  # grid lines centred on whole pixels (matplotlib)
    trace_grey: int | None = None  # near-black grey level (0..255) of the trace, instead of trace_colour
    separator_style: str = "short"  # "short": +-0.35 mV at the trace's width; "bold": ECG-Image-Kit's, 3x the
    # trace's width over +-0.315 mV, right at the next panel's first sample
    pulse_style: str = "lead_in"  # "lead_in": flat, pulse, flat before the row; "abut": ECG-Image-Kit's, no lead-in
    # and the falling edge on the row's first samples; "outside": the lead-in pulse left of the row with
    # ``pulse_gap_mm`` of blank paper between its lead-out and the trace
    pulse_gap_mm: float = 3.0  # mm of blank paper between an "outside" pulse and the trace
    row_pitch: str = "even"  # "even": rows evenly spaced; "signal": each pitch set by the amplitudes of the two
    # rows it separates (the outer baselines as "even" puts them)
    time_marks: str = "none"  # under each panel: "none", "ticks" (a tick every second of the panel's own time, a
    # longer one at its start) or "axis" (the ticks on a thin line across the panel), as plotting programs draw
    time_marks_mm: float = 12.0  # mm below the row's baseline
    mm_per_mv: float = 10.0  # the chart's gain: traces and calibration pulses drawn so many mm per mV (the sheet's
    # own 10 mm/mV; 5 mm/mV for tall signals, as 12x1 pages often are)

    def __post_init__(self) -> None:
        try:
            get_layout(self.layout_name)
        except KeyError as exc:
            raise ValueError(str(exc)) from None
        if self.grid not in GRID_PALETTES:
            raise ValueError(f"unknown grid palette {self.grid!r}; known: {list(GRID_PALETTES)}")
        if self.trace_colour not in TRACE_COLOURS or self.font not in HERSHEY_FONTS:
            raise ValueError(f"unknown trace colour or font: {self.trace_colour!r}, {self.font!r}")
        if not 1 <= self.trace_width_px <= 3:
            raise ValueError(f"trace width must be 1..3 px, got {self.trace_width_px}")
        if (self.grid == "custom") != (self.grid_rgb is not None):
            raise ValueError("grid 'custom' needs grid_rgb (minor, major), and only it")
        if self.separator_style not in ("short", "bold") or self.pulse_style not in ("lead_in", "abut", "outside"):
            raise ValueError(f"unknown separator / pulse style: {self.separator_style!r}, {self.pulse_style!r}")
        if self.row_pitch not in ("even", "signal"):
            raise ValueError(f"row_pitch must be 'even' or 'signal', got {self.row_pitch!r}")
        if not 0.0 < self.pulse_gap_mm <= 10.0:
            raise ValueError(f"pulse_gap_mm must be in (0, 10] mm, got {self.pulse_gap_mm}")
        if self.mm_per_mv not in GAINS_MM_PER_MV:
            raise ValueError(f"mm_per_mv must be one of {GAINS_MM_PER_MV}, got {self.mm_per_mv}")
        if self.time_marks not in TIME_MARKS or not 0.0 < self.time_marks_mm <= 30.0:
            raise ValueError(f"time_marks must be one of {TIME_MARKS} at (0, 30] mm below the baseline, got "
                             f"{self.time_marks!r} at {self.time_marks_mm} mm")


@dataclass(frozen=True)
class Arrangements:
    """How often pages take each arrangement other renderers and real pages use (shares in [0, 1], drawn
    independently; 1 forces it, as evaluation sets do): gaps of ``gap_mm`` (a range, mm) between the panels of a
    row, the calibration pulse outside the row, row pitches set by the rows' amplitudes, Cabrera's limb-lead
    order (only for layouts with a Cabrera variant, :data:`common.layouts.CABRERA_BASES`), and time marks under
    each panel (ticks or an axis, half each; :attr:`RenderStyle.time_marks`)."""

    gaps: float = 0.0
    gap_mm: tuple[float, float] = (2.0, 8.0)
    outside_pulse: float = 0.0
    signal_rows: float = 0.0
    cabrera: float = 0.0
    time_marks: float = 0.0
    half_gain: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gaps", "outside_pulse", "signal_rows", "cabrera", "time_marks", "half_gain"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Arrangements.{name} is a share in [0, 1], got {getattr(self, name)}")
        lo, hi = self.gap_mm
        if not 0.5 <= lo <= hi <= 20.0:
            raise ValueError(f"Arrangements.gap_mm must be a range within [0.5, 20] mm, got {self.gap_mm}")

    @property
    def any(self) -> bool:
        return max(self.gaps, self.outside_pulse, self.signal_rows, self.cabrera, self.time_marks, self.half_gain) > 0


def sample_style(rng: np.random.Generator, layout_name: str | None = None, eik_look: float = 0.0,
                 arrangements: Arrangements | None = None) -> RenderStyle:
    """A random page look. Weighted towards the competition's look (pink grid, 3x4 + II, black trace).

    With probability ``eik_look`` the page takes what ECG-Image-Kit draws and our looks lack (:func:`eik_look`);
    ``arrangements`` say how often it takes gaps between panels, a pulse outside the row, rows spaced by their
    amplitudes and Cabrera's order (:func:`arranged`). Both come from streams of their own, so the same seed
    keeps the rest of its page (and with the defaults every page is what it was before the options existed).
    ``layout_name`` may name a variant ("3x4+II/gap5mm"): the page is drawn in it."""
    base = None if layout_name is None else base_name(layout_name)
    style = _sample_classic(rng, base)
    if layout_name is not None and layout_name != base:
        style = replace(style, layout_name=layout_name, **_fitting_x0(rng, layout_name, style))
    if eik_look > 0:
        own = np.random.Generator(rng.bit_generator.jumped())
        if own.random() < eik_look:
            style = eik_look_of(style, own)
    if arrangements is not None and arrangements.any:
        style = arranged(style, np.random.Generator(rng.bit_generator.jumped(2)), arrangements)
    return style


def arranged(style: RenderStyle, rng: np.random.Generator, arrangements: Arrangements) -> RenderStyle:
    """``style`` with each of ``arrangements`` taken at its share (one draw each, in a fixed order). A gap is
    drawn from ``gap_mm`` but no wider than lets the longest row and the pulse fit the sheet (4-column rows
    take at most about 4.7 mm); a page that takes a gap or an outside pulse gets its chart origin drawn again
    where its rows fit."""
    take_gap, take_pulse, take_rows, take_cabrera = rng.random(4) < (
        arrangements.gaps, arrangements.outside_pulse, arrangements.signal_rows, arrangements.cabrera)
    pulse_gap_mm = float(np.round(rng.uniform(2.0, 4.0), 1))
    gap_u = float(rng.random())
    changes: dict = {}
    base = base_name(style.layout_name)
    cabrera_order = "/cabrera" in style.layout_name or (take_cabrera and base in CABRERA_BASES)
    gap = gap_mm_of(style.layout_name)
    if take_pulse:
        changes.update(pulse_style="outside", pulse_gap_mm=pulse_gap_mm, calibration_pulse=True)
    if take_gap and gap == 0.0:
        lo, hi = arrangements.gap_mm
        left = _pulse_room_px(changes.get("pulse_style", style.pulse_style), pulse_gap_mm)
        n_gaps = max(len(get_layout(base).row_panels(r)) for r in range(get_layout(base).n_rows)) - 1
        if n_gaps > 0:
            room_mm = (CANONICAL.width_px - RIGHT_MARGIN_PX - left - CANONICAL.s_to_px(RECORD_DURATION_S)) \
                / CANONICAL.px_per_mm / n_gaps
            gap = float(np.floor(10 * min(lo + gap_u * (hi - lo), room_mm)) / 10)
    if take_rows and get_layout(base).n_rows <= 6:  # 12x1's rows are already as close as the finder parts them
        changes["row_pitch"] = "signal"
    name = layout_name(base, cabrera_order, gap)
    if name != style.layout_name or take_pulse:
        changes["layout_name"] = name
        trial = replace(style, **changes)
        changes.update(_fitting_x0(rng, name, trial))
    if arrangements.time_marks > 0 and rng.random() < arrangements.time_marks:
        # under the row, 30-45 % of the way to the next one (12x1: 4-6 mm, where deep S waves cross it)
        pitch_mm = float(np.median(np.diff(default_placement(get_layout(base)).baselines_y_px))) \
            / CANONICAL.px_per_mm if get_layout(base).n_rows > 1 else 60.0
        changes.update(time_marks=str(rng.choice(["ticks", "axis"])),
                       time_marks_mm=float(np.round(rng.uniform(0.3, 0.45) * pitch_mm, 1)))
    if arrangements.half_gain > 0 and rng.random() < arrangements.half_gain:
        changes["mm_per_mv"] = 5.0
    return replace(style, **changes)


def _pulse_room_px(pulse_style: str, pulse_gap_mm: float) -> float:
    """Sheet px before chart time 0 that the row's pulse needs."""
    if pulse_style == "outside":
        return PULSE_ROOM_PX + pulse_gap_mm * CANONICAL.px_per_mm
    return PULSE_ROOM_PX


def _fitting_x0(rng: np.random.Generator, name: str, style: RenderStyle) -> dict:
    """A chart origin drawn where the layout ``name``'s longest row ends RIGHT_MARGIN_PX inside the sheet and the
    pulse stays on it (as an x0 shift from the layout's default placement)."""
    layout = get_layout(name)
    longest = float(CANONICAL.s_to_px(max(layout.row_duration_s(r) for r in range(layout.n_rows))))
    lo = max(X0_RANGE_PX[0], _pulse_room_px(style.pulse_style, style.pulse_gap_mm) if style.calibration_pulse else 0)
    hi = min(X0_RANGE_PX[1], CANONICAL.width_px - RIGHT_MARGIN_PX - longest)
    if hi < lo:
        raise ValueError(f"layout {name} with a {style.pulse_style} pulse does not fit the sheet's width")
    return {"x0_shift_px": float(lo + rng.random() * (hi - lo) - default_placement(layout).x0_px)}


def eik_look_of(style: RenderStyle, rng: np.random.Generator) -> RenderStyle:
    """``style`` with ECG-Image-Kit's marks: bold separator bars across the baseline, a pulse that abuts the
    trace, lead names below the trace, a thin near-black grey trace, and half the time its random dark grid
    whose minor lines are the major colour lightened by at most 0.2."""
    changes: dict = {"separators": True, "separator_style": "bold", "pulse_style": "abut",
                     "label_dy_mv": float(-rng.uniform(0.55, 0.75)), "label_dx_px": float(rng.uniform(0, 6)),
                     "trace_grey": int(rng.integers(0, 52)), "trace_width_px": int(rng.choice([1, 2], p=[0.3, 0.7]))}
    if rng.random() < 0.5:
        major = np.array([rng.uniform(0, 0.8), rng.uniform(0, 0.5), rng.uniform(0, 0.5)])
        offset = rng.uniform(0, 0.2)
        minor = np.array([major[0] + offset, rng.uniform(0, 0.5) + offset, rng.uniform(0, 0.5) + offset])
        width = float(rng.uniform(1.0, 1.5))  # ECG-Image-Kit: both 0.5 pt (1.4 px at 200 dpi)
        changes.update(grid="custom", minor_grid="lines", grid_width_px=width, minor_width_px=width, grid_snap=True,
                       grid_rgb=(tuple(int(v) for v in np.round(255 * minor)),
                                 tuple(int(v) for v in np.round(255 * major))))
    return replace(style, **changes)


def _sample_classic(rng: np.random.Generator, layout_name: str | None) -> RenderStyle:
    if layout_name is None:
        names = list(LAYOUTS)
        # two strips (the last) only where asked: a zero share leaves every earlier seed's draws as they were
        layout_name = str(rng.choice(names, p=[0.6, 0.1, 0.1, 0.1, 0.1, 0.0]))
    grids = [g for g in GRID_PALETTES if g != "custom"]
    grid = str(rng.choice(grids, p=[0.45, 0.15, 0.08, 0.08, 0.08, 0.08, 0.08]))
    paper_tone = int(rng.integers(238, 256))
    return RenderStyle(
        layout_name=layout_name,
        grid=grid,
        minor_grid=str(rng.choice(["lines", "dots", "none"], p=[0.75, 0.15, 0.10])),
        grid_width_px=float(rng.uniform(0.8, 2.0)),
        paper_rgb=(paper_tone, paper_tone - int(rng.integers(0, 4)), paper_tone - int(rng.integers(0, 8))),
        trace_colour=str(rng.choice(list(TRACE_COLOURS), p=[0.7, 0.1, 0.1, 0.1])),
        trace_width_px=int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])),
        font=str(rng.choice(list(HERSHEY_FONTS))),
        font_scale=float(rng.uniform(0.8, 1.5)),
        label_dx_px=float(rng.uniform(4, 30)),
        label_dy_mv=float(rng.uniform(0.5, 1.4)),
        calibration_pulse=bool(rng.random() < 0.9),
        separators=bool(rng.random() < 0.7),
        header=bool(rng.random() < 0.85),
        **_sample_placement(rng, layout_name),
        grid_origin_px=(float(rng.uniform(0, 40)), float(rng.uniform(0, 40))),
    )


def _sample_placement(rng: np.random.Generator, layout_name: str) -> dict:
    """Where the rows go. Other renderers put them elsewhere (taller headers, closer or wider rows): row pitch
    from 0.62x to 1.12x the default (about 22-40 mm), the block of rows anywhere that keeps its outer baselines
    ROW_MARGIN_PX inside the sheet, the time origin -120..+25 px. Three draws, in the place of the look's
    other draws, so that a seed keeps its grid, trace and font whatever these ranges are."""
    x0_shift_px, shift_fraction, spacing_fraction = rng.random(3)
    base = default_placement(get_layout(layout_name)).baselines_y_px
    # a tall layout (12 x 1) already fills the sheet: no wider than fits between the margins
    widest = min(1.12, (CANONICAL.height_px - 2 * ROW_MARGIN_PX) / (base[-1] - base[0]))
    spacing = 0.62 + spacing_fraction * max(0.0, widest - 0.62)
    centre, half = 0.5 * (base[0] + base[-1]), 0.5 * (base[-1] - base[0]) * spacing
    lo, hi = ROW_MARGIN_PX - (centre - half), CANONICAL.height_px - ROW_MARGIN_PX - (centre + half)
    return {
        "x0_shift_px": float(-120.0 + 145.0 * x0_shift_px),
        "row_shift_px": float(lo + shift_fraction * max(0.0, hi - lo)),
        "row_spacing_scale": float(spacing),
    }


def style_placement(style: RenderStyle, geometry: SheetGeometry = CANONICAL) -> Placement:
    """The style's shifts applied to the layout's default placement (rows evenly spaced; see
    :func:`signal_placement` for ``row_pitch`` "signal")."""
    layout = get_layout(style.layout_name)
    base = default_placement(layout, geometry)
    centre = float(np.mean(base.baselines_y_px))
    baselines = tuple(centre + (y - centre) * style.row_spacing_scale + style.row_shift_px for y in base.baselines_y_px)
    return Placement(x0_px=base.x0_px + style.x0_shift_px, baselines_y_px=baselines)


def signal_placement(placement: Placement, layout: Layout, signals_mv: np.ndarray, fs_hz: float,
                     geometry: SheetGeometry = CANONICAL) -> Placement:
    """``placement`` with its rows re-spaced as some printers space them: the outer baselines stay, and each
    pitch is the room the two rows it separates take (the upper row's lowest printed mV, the lower's highest,
    plus SIGNAL_PITCH_PAD_MV), within SIGNAL_PITCH_RANGE of the mean pitch."""
    if layout.n_rows < 3:  # two rows have one pitch: nothing to share out
        return placement
    n = signals_mv.shape[1]
    above, below = np.zeros(layout.n_rows), np.zeros(layout.n_rows)
    for row in range(layout.n_rows):
        for panel in layout.row_panels(row):
            i0, i1 = panel.sample_range(fs_hz, n)
            printed = panel.sign * signals_mv[LEADS.index(panel.lead), i0:i1]
            above[row] = max(above[row], float(printed.max()))
            below[row] = max(below[row], float(-printed.min()))
    need = below[:-1] + above[1:] + SIGNAL_PITCH_PAD_MV
    weights = np.clip(need / need.mean(), *SIGNAL_PITCH_RANGE)
    ys = placement.baselines_y_px
    pitches = weights / weights.sum() * (ys[-1] - ys[0])
    baselines = (ys[0], *(ys[0] + np.cumsum(pitches)))
    return Placement(placement.x0_px, tuple(float(y) for y in baselines))


# --- grid ---------------------------------------------------------------------------------------------
def _line_coverage(n: int, origin_px: float, pitch_px: float, width_px: float, snap: bool = False) -> np.ndarray:
    """Anti-aliased coverage (0..1) along one axis of lines every ``pitch_px`` of ``width_px``; ``snap`` centres
    each line on the nearest whole pixel, as matplotlib's Agg draws straight lines (a 1 mm pitch of 7.87 px then
    runs 8, 8, 8, 8, 7 px)."""
    pos = np.arange(n, dtype=np.float64)
    if snap:
        dist = np.abs(pos - np.round(origin_px + pitch_px * np.round((pos - origin_px) / pitch_px)))
    else:
        dist = np.abs((pos - origin_px + pitch_px / 2) % pitch_px - pitch_px / 2)
    return np.clip(width_px / 2 + 0.5 - dist, 0.0, 1.0)


_LEVELS = 16  # grid coverage is quantised to 16 levels per line family, so colours come from a LUT


def _quantise(coverage: np.ndarray) -> np.ndarray:
    return np.round(coverage * (_LEVELS - 1)).astype(np.uint8)


def _grid_levels(geometry: SheetGeometry, minor: str, width_px: float, origin: tuple,
                 minor_width_px: float | None = None, snap: bool = False) -> np.ndarray:
    """(H, W) uint8 index = minor_level * 16 + major_level of grid coverage for a grid phase ``origin``."""
    h, w = geometry.shape_hw
    minor_pitch = geometry.small_box_mm * geometry.px_per_mm
    major_pitch = geometry.big_box_mm * geometry.px_per_mm
    ox, oy = origin
    major = np.maximum(_quantise(_line_coverage(h, oy, major_pitch, width_px, snap))[:, None],
                       _quantise(_line_coverage(w, ox, major_pitch, width_px, snap))[None, :])
    if minor == "lines":
        minor_w = max(0.6, 0.55 * width_px) if minor_width_px is None else minor_width_px
        minor_map = np.maximum(_quantise(_line_coverage(h, oy, minor_pitch, minor_w, snap))[:, None],
                               _quantise(_line_coverage(w, ox, minor_pitch, minor_w, snap))[None, :])
    elif minor == "dots":
        dot_y = _line_coverage(h, oy, minor_pitch, 1.6).astype(np.float32)
        dot_x = _line_coverage(w, ox, minor_pitch, 1.6).astype(np.float32)
        minor_map = _quantise(np.multiply.outer(dot_y, dot_x))
    else:
        minor_map = np.zeros((h, w), np.uint8)
    minor_map *= _LEVELS
    minor_map += major
    return minor_map


def draw_grid(canvas: np.ndarray, style: RenderStyle, geometry: SheetGeometry = CANONICAL) -> None:
    """Fill ``canvas`` with paper and grid (blended by anti-aliased coverage through a colour LUT)."""
    palette = style.grid_rgb if style.grid == "custom" else GRID_PALETTES[style.grid]
    paper = np.asarray(style.paper_rgb, dtype=np.float64)
    if palette is None:
        h, w = canvas.shape[:2]
        cv2.rectangle(canvas, (0, 0), (w - 1, h - 1), tuple(int(v) for v in paper), -1)  # fast fill
        return
    minor_rgb, major_rgb = (np.asarray(c, dtype=np.float64) for c in palette)
    a = np.arange(_LEVELS, dtype=np.float64) / (_LEVELS - 1)
    with_minor = paper + a[:, None] * (minor_rgb - paper)  # (minor level, rgb)
    lut = with_minor[:, None, :] + a[None, :, None] * (major_rgb - with_minor[:, None, :])
    lut = np.clip(np.round(lut), 0, 255).astype(np.uint8).reshape(_LEVELS * _LEVELS, 1, 3)
    index = _grid_levels(geometry, style.minor_grid, style.grid_width_px, style.grid_origin_px, style.minor_width_px,
                         style.grid_snap)
    # cv2.LUT maps channel c of a 3-channel index through channel c of the table: ~10x faster than np.take.
    cv2.LUT(cv2.merge([index, index, index]), lut, dst=canvas)


# --- traces -------------------------------------------------------------------------------------------
def _fixed(points_xy: np.ndarray) -> np.ndarray:
    """Float px -> OpenCV fixed-point int32 coordinates."""
    return np.round(points_xy * _SUBPIXEL).astype(np.int32)


def _polyline(img: np.ndarray, points_xy: np.ndarray, colour, width_px: int) -> None:
    cv2.polylines(img, [_fixed(points_xy)], False, colour, int(width_px), cv2.LINE_AA, SUBPIXEL_BITS)


def _composite_ink(canvas: np.ndarray, masks: np.ndarray, ink_rgb) -> None:
    """Lay the traces drawn in the per-row masks onto the page (one thick AA polyline pass, not two):
    page <- page * (1 - c) + ink * c with c the traces' coverage, in saturating uint8 OpenCV arithmetic."""
    coverage = masks[0].copy()
    for mask in masks[1:]:
        cv2.max(coverage, mask, dst=coverage)
    cov3 = cv2.merge([coverage, coverage, coverage])
    kept = cv2.multiply(canvas, cv2.bitwise_not(cov3), scale=1 / 255)
    cv2.add(kept, cv2.multiply(cov3, (*ink_rgb, 0), scale=1 / 255), dst=canvas)


def _simplified(points_xy: np.ndarray) -> np.ndarray:
    """Drop samples that lie within 0.1 px of the line through their neighbours (Douglas-Peucker).

    At 1000 Hz samples are 0.2 px apart and most add nothing to the drawing but time; the drawn line
    stays within :data:`SIMPLIFY_TOLERANCE_PX` of the exact polyline the labels describe.
    """
    fixed = _fixed(points_xy).reshape(-1, 1, 2)
    return cv2.approxPolyDP(fixed, SIMPLIFY_TOLERANCE_PX * _SUBPIXEL, False).reshape(-1, 2)


def panel_points(values_mv: np.ndarray, fs_hz: float, panel, placement: Placement, baseline_y: float,
                 geometry: SheetGeometry = CANONICAL) -> np.ndarray:
    """Sheet (x, y) of every sample a panel prints."""
    i0, i1 = panel.sample_range(fs_hz, values_mv.shape[0])
    t = np.arange(i0, i1) / fs_hz
    x = placement.panel_x_px(panel, t, geometry)
    y = geometry.mv_to_y(panel.sign * values_mv[i0:i1], baseline_y)  # an inverted panel prints -lead
    return np.stack([x, y], axis=1)


def _row_centre_line(layout: Layout, row: int, signals_mv: np.ndarray, fs_hz: float, placement: Placement,
                     x_sub: np.ndarray, geometry: SheetGeometry) -> np.ndarray:
    """Exact trace y at sub-column centres ``x_sub`` (the polyline is linear between samples)."""
    y = np.full(x_sub.shape, np.nan, dtype=np.float64)
    for panel in layout.row_panels(row):
        pts = panel_points(signals_mv[LEADS.index(panel.lead)], fs_hz, panel, placement,
                           placement.baselines_y_px[row], geometry)
        inside = (x_sub >= pts[0, 0]) & (x_sub <= pts[-1, 0])
        y[inside] = np.interp(x_sub[inside], pts[:, 0], pts[:, 1])
    return y


def _calibration_pulse(x_end: float, baseline_y: float, geometry: SheetGeometry) -> np.ndarray:
    """Pulse polyline ending at ``x_end``: flat, up 1 mV, 0.2 s across, down, flat."""
    w = float(geometry.s_to_px(PULSE_WIDTH_S))
    lead_in = 0.25 * w
    top = float(geometry.mv_to_y(PULSE_HEIGHT_MV, baseline_y))
    x_start = x_end - 2 * lead_in - w
    xs = [x_start, x_start + lead_in, x_start + lead_in, x_start + lead_in + w, x_start + lead_in + w, x_end]
    ys = [baseline_y, baseline_y, top, top, baseline_y, baseline_y]
    return np.stack([xs, ys], axis=1)


def _abutting_pulse(x0: float, fs_hz: float, baseline_y: float, geometry: SheetGeometry) -> np.ndarray:
    """ECG-Image-Kit's pulse: up one sample after 0.2 s before the row's origin, 1 mV, down one sample after it."""
    step = float(geometry.s_to_px(1.0 / fs_hz))
    start = x0 - float(geometry.s_to_px(PULSE_WIDTH_S))
    top = float(geometry.mv_to_y(PULSE_HEIGHT_MV, baseline_y))
    xs = [start, start + step, start + 2 * step, x0 + step, x0 + 2 * step]
    ys = [baseline_y, baseline_y, top, top, baseline_y]
    return np.stack([xs, ys], axis=1)


# --- text ---------------------------------------------------------------------------------------------
def _time_marks(canvas: np.ndarray, panel, placement: Placement, baseline_y: float, style: RenderStyle, colour,
                geometry: SheetGeometry) -> None:
    """Under a panel, ``style.time_marks_mm`` below its baseline: a 1.5 mm tick every second of the panel's own
    time (2.5 mm at its start), on a line across the panel for "axis"."""
    y = baseline_y + style.time_marks_mm * geometry.px_per_mm
    x0, x1 = (float(placement.panel_x_px(panel, t, geometry)) for t in (panel.t0_s, panel.t1_s))
    if style.time_marks == "axis":
        _polyline(canvas, np.array([[x0, y], [x1, y]]), colour, 1)
    for k in range(int(np.floor(panel.t1_s - panel.t0_s + 1e-9)) + 1):
        x = float(placement.panel_x_px(panel, panel.t0_s + k, geometry))
        tick = (2.5 if k == 0 else 1.5) * geometry.px_per_mm
        _polyline(canvas, np.array([[x, y - tick], [x, y]]), colour, 1)


def _put_text(canvas: np.ndarray, text: str, org_xy, style: RenderStyle, scale: float, colour) -> np.ndarray:
    """Draw ``text`` with its baseline-left at ``org_xy``; returns its box x0, y0, x1, y1 (px)."""
    font = HERSHEY_FONTS[style.font]
    thickness = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    x, y = int(round(org_xy[0])), int(round(org_xy[1]))
    cv2.putText(canvas, text, (x, y), font, scale, colour, thickness, cv2.LINE_AA)
    return np.array([x, y - th, x + tw, y + base], dtype=np.float32)


def _header_lines(rng: np.random.Generator, record_id: str, fs_hz: float) -> list[str]:
    hr = int(rng.integers(48, 130))
    return [
        f"ID: {record_id}    {int(rng.integers(1, 28)):02d}-{int(rng.integers(1, 13)):02d}-"
        f"{int(rng.integers(1990, 2025))} {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}",
        f"Vent. rate {hr} BPM   PR interval {int(rng.integers(110, 220))} ms   QRS duration "
        f"{int(rng.integers(70, 140))} ms",
        f"QT/QTc {int(rng.integers(320, 460))}/{int(rng.integers(380, 480))} ms   "
        f"P-R-T axes {int(rng.integers(-30, 90))} {int(rng.integers(-30, 90))} {int(rng.integers(-30, 90))}",
        str(rng.choice(["Sinus rhythm", "Normal ECG", "Sinus bradycardia", "Borderline ECG",
                        "Sinus tachycardia", "Unconfirmed report"])),
    ]


# --- page ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderedPage:
    sheet_rgb: np.ndarray
    labels: SheetLabels


def render_page(signals_mv: np.ndarray, fs_hz: float, record_id: str, style: RenderStyle,
                rng: np.random.Generator | None = None, x_upsample: int = 4,
                geometry: SheetGeometry = CANONICAL) -> RenderedPage:
    """Draw a 10 s record (12, round(10 fs)) in mV, leads in :data:`LEADS` order, in ``style``.

    ``rng`` only chooses header text; the same inputs always give the same page.
    """
    n_samples = int(round(RECORD_DURATION_S * fs_hz))
    signals_mv = np.asarray(signals_mv, dtype=np.float64)
    if signals_mv.shape != (len(LEADS), n_samples) or not np.isfinite(signals_mv).all():
        raise ValueError(f"render_page needs finite signals of shape (12, {n_samples}), got {signals_mv.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    paper = geometry
    geometry = replace(geometry, mm_per_mv=style.mm_per_mv)  # the chart's gain: traces, pulses and bars
    layout = get_layout(style.layout_name)
    placement = style_placement(style, geometry)
    if style.row_pitch == "signal":
        placement = signal_placement(placement, layout, signals_mv, fs_hz, geometry)
    h, w = geometry.shape_hw

    canvas = np.empty((h, w, 3), dtype=np.uint8)
    draw_grid(canvas, style, geometry)
    ink = TRACE_COLOURS[style.trace_colour] if style.trace_grey is None else (style.trace_grey,) * 3
    text_colour = (0, 0, 0)

    x_sub = sub_column_x(w, x_upsample)
    row_y = np.full((layout.n_rows, x_sub.size), np.nan, dtype=np.float32)
    masks = np.zeros((layout.n_rows, h, w), dtype=np.uint8)
    pulse_boxes = np.full((layout.n_rows, 4), np.nan, dtype=np.float32)
    printed = np.zeros_like(signals_mv, dtype=bool)
    panel_leads, label_boxes, panel_corners = [], [], []
    row_half_height = 0.5 * float(np.median(np.diff(placement.baselines_y_px))) if layout.n_rows > 1 else 150.0
    label_scale = style.font_scale

    for row in range(layout.n_rows):
        base_y = placement.baselines_y_px[row]
        for panel in layout.row_panels(row):
            lead_idx = LEADS.index(panel.lead)
            pts = panel_points(signals_mv[lead_idx], fs_hz, panel, placement, base_y, geometry)
            cv2.polylines(masks[row], [_simplified(pts)], False, 255, style.trace_width_px, cv2.LINE_AA,
                          SUBPIXEL_BITS)
            i0, i1 = panel.sample_range(fs_hz, n_samples)
            printed[lead_idx, i0:i1] = True
            x_start = float(placement.panel_x_px(panel, panel.t0_s, geometry))
            x_end = float(placement.panel_x_px(panel, panel.t1_s, geometry))
            panel_corners += [(x_start, base_y - row_half_height), (x_start, base_y + row_half_height),
                              (x_end, base_y - row_half_height), (x_end, base_y + row_half_height)]
            label_y = float(paper.mv_to_y(style.label_dy_mv, base_y))  # names stand as far off at any gain
            panel_leads.append(panel.lead)
            name = ("-" if panel.inverted else "") + panel.lead  # Cabrera's -aVR
            label_boxes.append(_put_text(canvas, name, (x_start + style.label_dx_px, label_y), style,
                                         label_scale, text_colour))
            if style.time_marks != "none":
                _time_marks(canvas, panel, placement, base_y, style, text_colour, geometry)
            if style.separators and panel.col > 0:
                bold = style.separator_style == "bold"
                bar = float(geometry.mv_to_px(0.315 if bold else 0.35))
                sep = np.array([[x_start, base_y - bar], [x_start, base_y + bar]])
                _polyline(canvas, sep, ink, 3 * style.trace_width_px if bold else style.trace_width_px)
        row_y[row] = _row_centre_line(layout, row, signals_mv, fs_hz, placement, x_sub, geometry)
        if style.calibration_pulse:
            if style.pulse_style == "abut":  # 0.2 s wide, its falling edge one sample into the row
                pulse = _abutting_pulse(placement.x0_px, fs_hz, base_y, geometry)
            elif style.pulse_style == "outside":
                pulse = _calibration_pulse(placement.x0_px - style.pulse_gap_mm * geometry.px_per_mm, base_y,
                                           geometry)
            else:
                pulse = _calibration_pulse(placement.x0_px - 4.0, base_y, geometry)
            _polyline(canvas, pulse, ink, style.trace_width_px)
            half = style.trace_width_px / 2 + 1
            pulse_boxes[row] = (pulse[:, 0].min() - half, pulse[:, 1].min() - half,
                                pulse[:, 0].max() + half, pulse[:, 1].max() + half)

    _composite_ink(canvas, masks, ink)
    if style.header:
        line_h = 34.0 * style.font_scale
        top = float(rng.uniform(30, 80))
        for k, line in enumerate(_header_lines(rng, record_id, fs_hz)):
            _put_text(canvas, line, (float(rng.uniform(40, 120)), top + k * line_h), style,
                      0.75 * style.font_scale, text_colour)
        speed = f"{geometry.mm_per_s:g}mm/s   {geometry.mm_per_mv:g}mm/mV   0.05-150 Hz"
        _put_text(canvas, speed, (float(rng.uniform(40, 600)), h - float(rng.uniform(12, 30))), style,
                  0.7 * style.font_scale, text_colour)

    keypoints, kinds = _keypoints(style, placement, layout, panel_corners, geometry)
    labels = SheetLabels(
        record_id=str(record_id),
        fs_hz=float(fs_hz),
        layout_name=layout.name,
        x0_px=float(placement.x0_px),
        baselines_y_px=tuple(float(b) for b in placement.baselines_y_px),
        trace_width_px=float(style.trace_width_px),
        x_upsample=int(x_upsample),
        signals_mv=np.where(printed, signals_mv, np.nan).astype(np.float32),
        row_y_px=row_y,
        row_masks=masks,
        panel_leads=tuple(panel_leads),
        label_boxes_px=np.asarray(label_boxes, dtype=np.float32).reshape(-1, 4),
        pulse_boxes_px=pulse_boxes,
        keypoints_px=keypoints,
        keypoint_kinds=kinds,
        style=asdict(style),
    )
    return RenderedPage(canvas, labels)


def _keypoints(style: RenderStyle, placement: Placement, layout: Layout, panel_corners: list,
               geometry: SheetGeometry) -> tuple[np.ndarray, tuple]:
    """Big-box grid intersections (when a grid is printed), panel corners and page corners."""
    pts, kinds = [], []
    if style.grid != "none":
        pitch = geometry.big_box_mm * geometry.px_per_mm
        ox, oy = style.grid_origin_px
        xs = ox + pitch * np.arange(int(np.ceil(-ox / pitch)), int((geometry.width_px - 1 - ox) / pitch) + 1)
        ys = oy + pitch * np.arange(int(np.ceil(-oy / pitch)), int((geometry.height_px - 1 - oy) / pitch) + 1)
        gx, gy = np.meshgrid(xs, ys)
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
        pts.append(grid)
        kinds += ["grid"] * len(grid)
    pts.append(np.asarray(panel_corners, dtype=np.float64))
    kinds += ["panel"] * len(panel_corners)
    pts.append(geometry.corners_px())
    kinds += ["page"] * 4
    return np.concatenate(pts).astype(np.float32), tuple(kinds)
