"""The layout found on a rectified sheet: its rows, each row's panels, the calibration pulses, and the known
layout (:data:`common.layouts.LAYOUTS`) they fit best.

Everything is read from the page's ink without the grid, at half the sheet's resolution (1 px = 2 sheet px; each
the darkest of its 2 x 2 block, so a 1 px trace keeps its darkness). Ink is darkness against the local paper (the
rule of :mod:`stage1_segment.anchors`, as a share of the light on the page: a shadow dims ink and paper alike)
above half the page's darkest ink, and above a grid that fills more than
5 % of the page; a page no layout fits is read again at :data:`FAINT_INK_LEVEL` of it (a thin navy trace under big
black letters). Straight runs that repeat one grid pitch away, and frame lines longer than any row, are grid.

* Rows: the y where ink piles up across the chart (a trace sits on its isoelectric line most of the time):
  peaks of the per-y fraction of columns holding ink, at least :data:`MIN_PITCH_PX` apart and
  :data:`EDGE_PX` inside the sheet, that hold at least :data:`MIN_ROW_S` of trace, not stacked like lines of
  text, not a ruled line (a time axis drawn under each row: :data:`RULED_SHARE`), and at least half as long as
  the longest row (a line of text under the chart). Any count.
* A row's territory reaches half way to its neighbours (at most :data:`REACH_MV` beyond the outer rows); a
  column "holds the row" when the territory has ink there, so a trace is one continuous run whatever its
  amplitude, and a panel ends where that run ends or breaks (a gap between panels).
* Calibration pulses: a 0.2 s wide box standing on the row's baseline (its top, its two sides and an empty
  inside, read from running sums of the ink), near either end of the row, 10 mm tall (or 5 or 20: a chart
  printed at that gain, :attr:`FoundLayout.mm_per_mv`).
* Gaps: where a row's runs of ink are as many as a known layout's panels there, the steps between their starts
  (and ends) beyond that layout's panel lengths are the blank paper between panels; their median, from 1 to
  MAX_GAP_MM mm, adds that layout's gap variant (:func:`common.layouts.with_gap`) to the candidates.
* The prior: every known layout with as many rows is fitted (and the gap variants the rows show). A layout
  places each row's panels at fixed chart times from one origin x0 shared by all rows; x0 comes from the rows'
  right ends (a row's left end can carry a pulse's flat lead-out, which is not the trace), or, where the rows
  are a few per cent longer or shorter than the layout's 10 s at the sheet's 25 mm/s, from their common start
  and end, which then also set the scale. Its fit is the share of rows whose measured extent agrees with it,
  times how well the page's panel boundaries agree: at every 2.5 s chart time where some layout puts a boundary
  (a gap variant: at its own panel starts), the page shows one when a separator bar stands there
  (:func:`stage2_signal.separators.find_bars`), the row's ink breaks there, or a lead name's ink stands just
  after it (more ink above or below the baseline than at the same place in the row's other quarters); and,
  in rows whose ink breaks into one run per panel, how many of its panels end where the runs do. The
  best fit is the layout found; its confidence is its fit, lowered when a second layout fits almost as well.
  Without a fitting layout the panels are the measured runs of ink.

Lead names: given a reader (``find_layout``'s ``names``), the panels' printed names are read; they choose between
layouts of one geometry (:func:`name_panels`), and a top row they show to be the header's text is dropped
(:func:`named`). Without one a found layout names its panels by the prior (a Cabrera page is then found as its
standard-order layout; ``pipeline digitize --layout 3x4+II/cabrera`` reads it).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from itertools import permutations
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from common.geometry import CANONICAL, GAINS_MM_PER_MV, PULSE_WIDTH_S
from common.layouts import (
    CABRERA_BASES,
    LAYOUTS,
    MAX_GAP_MM,
    Layout,
    Placement,
    base_name,
    gap_mm_of,
    get_layout,
    layout_name,
    rhythm_leads,
    with_gap,
)
from stage1_segment.anchors import INK_WINDOW_PX, LINE_GAP_PX, LINE_RUN_PX
from stage1_segment.lead_names import NAMES, LeadNameReader
from stage1_segment.lead_names import NONE as NAME_NONE
from stage2_signal.separators import find_bars

_REDUCE = 2  # the ink mask is at half the sheet's resolution (1 px there = 2 sheet px)
PX_PER_S = CANONICAL.px_per_s  # sheet px per s of chart (25 mm/s)
PX_PER_MV = CANONICAL.px_per_mv  # sheet px per mV (10 mm/mV)
PAGE_LINE_PX = 2050.0  # sheet px: a flat run of ink this long (more than a 10 s row and its pulse) is a frame line
VLINE_RUN_PX = 400.0  # sheet px (5 mV): an upright run of ink this long is a grid line, not a QRS stroke
UPRIGHT_BRIDGE_PX = 7  # half-resolution px: a removed upright grid line this wide or less is bridged where ink meets it
LIGHT_SCALE_PX = 500.0  # sheet px: shade is what darkens the paper over this far (a mold colony is up to 400 px)
MAX_SHADOW_GAIN_INV = 0.4  # light under this share of the page's typical paper is not taken for shade: ink's
# darkness is raised at most 1 / 0.4 times (a scan's dark border or a photo's background would raise their noise)
INK_LEVEL = 0.5  # ink is at least this fraction of the page's darkest 0.2 % (anchors.py's rule) ...
SPECK_PX = 3  # px at half resolution: pieces of ink this small are specks
DOT_PX = 6  # px at half resolution (1.5 mm): no letter (but an i's dot) nor a trace is this small ...
BLOT_PX = 5  # ... and none holds a square this wide (1.3 mm); a mold spot or a stain may do either
SPECKLED_SHARE = 0.01  # a sheet with more of its ink in specks is speckled (clean renders <= 0.001; dithered
# black-and-white scans up to 0.17, crumpled ECG-Image-Kit pages up to 0.23)
GRID_MARGIN = 8.0  # darkness levels above the page's 95th percentile (a dense grid darker than half the ink fills it)
GRID_CAP = 0.8  # ... unless that is above this fraction of the ink's darkness (thick traces, 12 rows, fill 5 %)
INK_FLOOR = 24.0  # grey levels: no darker than this is no ink ...
DIM_FLOOR = 16.0  # ... but on a dim page, read where nothing else found a layout
FAINT_INK_LEVEL = 0.3  # second try, for pages where nothing fits: a thin navy or grey trace under big black letters,
# its page full of trace (a 12x1 page's rows overlap), keeps a third of their darkness and is above any guard
TEXT_LEVEL = 0.25  # text is ink at least this fraction of the traces' darkness ...
GLYPH_MAX_PX = 60.0  # sheet px: ... in pieces no wider or taller than this (a letter; "aVR" is three)
MIN_PITCH_PX = 60.0  # sheet px (7.6 mm): rows closer than this are one row (12x1 pages print them >= 76 px apart)
SPLIT_FRACTION = 0.55  # see _find_row_peaks
SIDE_BY_SIDE = 0.4  # see _side_by_side
EDGE_PX = 60.0  # sheet px: no row's baseline lies this close to the sheet's top or bottom (a scan's dark border)
ROW_STRENGTH = 0.4  # a row's ink profile peak is at least this fraction of the page's strongest (a shadow's or
# a grid's weak peaks between the rows would cut their territories short) ...
WEAK_ROW_STRENGTH = 0.15  # ... or this, read again where nothing fits (a thin wandering trace piles up less)
MIN_PROFILE = 0.08  # ... and at least this fraction of the columns
MIN_ROW_S = 1.5  # s of chart: a row holds at least this much trace ...
MAX_STACKED = 0.5  # ... in columns that mostly hold one piece of ink (lines of text stack two or more) ...
ROW_SHARE = 0.5  # ... and at least this fraction of the longest row's trace
FAINT_ROW_SHARE = 0.3  # a row dropped with at least this fraction of it may be a row half lost to faint ink
RULED_SHARE = 0.75  # ... and not a ruled line (a time axis under each row): on at most this share of its columns is
# its ink only the 3 px band at its baseline (time axes 0.78-0.98; trace rows of every page source <= 0.55)
EVEN_MARGIN = 0.05  # ... unless the peaks' spacing is this much more even (coefficient of variation) with them
REACH_MV = 1.2  # mV: the outer rows' territories reach this far beyond their baselines
GAP_CLOSE_PX = 6  # sheet px: breaks in a row's ink this short are bridged (a scanned trace's dropouts)
GAP_MIN_PX = 8.0  # sheet px (1 mm): a break at least this long between runs of ink is a gap between panels
MIN_RUN_S = 0.5  # s: runs shorter than this are not a panel's trace (labels, stray marks) ...
JOIN_S = 0.3  # ... unless they lie within this of the row's trace
MIN_PIECE_PX = 40.0  # sheet px (5 mm): and are at least this long (a scan's border, a dot, are shorter) or touch it
PULSE_MIN_SCORE = 0.7  # a pulse's top, sides and empty inside each score at least this (fraction of 1)
PULSE_HEIGHTS_MV = tuple(g / CANONICAL.mm_per_mv for g in GAINS_MM_PER_MV)  # tried in this order (1, 0.5, 2 mV
# at the sheet's gain): a pulse drawn at gain 5 or 20 mm/mV is still a pulse (a 1 mV pulse's upper half is not taken
# for a 0.5 mV one)
PULSE_BEYOND = 8  # reduced px (2 mm): see _pulse_beyond
MIN_GAIN_PULSES = 2  # pulses that must agree on another gain than 10 mm/mV (on 3 of the real images one box 5 mm
# tall was found among rows whose other pulses were not: a lone pulse is no proof)
PULSE_FOOT_MV = 0.6  # mV: see _measure_row
LEAD_FLAT_PX = 0.3 * PX_PER_MV  # sheet px: a pulse's lead-in or lead-out is a flat line, its ink no taller than this
PULSE_NEAR_S = 0.7  # s: a pulse lies within this of a row's end (inside or beyond it)
END_TOL_PX = 2 * CANONICAL.px_per_mm  # sheet px: a row's right end agrees with a layout within 2 mm
EDGE_CUT_PX = 2 * _REDUCE  # sheet px: a row's ink ending this close to the sheet's right edge runs on to it
START_TOL_PX = 0.15 * PX_PER_S  # sheet px: its left end at most 0.15 s late ...
EARLY_TOL_PX = 0.45 * PX_PER_S  # ... or 0.45 s early (a pulse with its lead-in and -out, not found where the page
# cuts it, runs into the row)
SCALE_TOL = 0.08  # a chart drawn up to 8 % off the sheet's 25 mm/s still fits a layout ...
SCALED_WEIGHT = 0.8  # ... counting this much
BOUNDARY_TIMES_S = (2.5, 5.0, 7.5)  # chart times where the known layouts put panel boundaries in a 10 s row
CONTROL_OFFSET_S = 1.25  # label ink is compared with the same window this far from any boundary
LABEL_WINDOW_S = 0.25  # a lead name stands within this after its panel's start ...
LABEL_BAND_MV = (0.3, 1.6)  # ... and this far above or below the baseline
LABEL_RATIO = 2.5  # with this much more text there than the row's control windows hold
LABEL_MIN_PX = 4.0  # and at least this many text px (half resolution)
BAR_HALF_BAND_MV = 0.25  # separator bars cross the baseline by at least 0.3 mV (both our page sources)
BAR_SEARCH_PX = 6.0  # sheet px: a bar is looked for this far either side of the layout's boundary
BOUNDARY_WEIGHT = 0.5  # a layout whose every boundary the page contradicts keeps this much less than its extent fit
MARGIN_FLOOR = 0.5  # confidence scales with the fit's lead over the runner-up, down to this factor
RETRY_BELOW = 0.75  # a page no layout fits this well is read again (see find_layout) ...
MISSING_ROW_GAP = 1.8  # a gap between rows this many times their median gap is a row missed (pages whose row
# pitches follow the signal print them within 0.6-1.6 of their mean)
RETRY_MARGIN = 0.1  # ... and a reading of the faint ink taken where it is this much surer (any surer where the
# first reading lost a row): a clean page whose chart is 7 % narrower than the grid says fits 3x4+II at 0.40 and
# its faint ink, the grid's lines piled with the traces, 3x4 at 0.44 (real image ecg00045); the weak peaks of the
# ink as it is compete freely (a 12x1 page's strong peaks fit 3x4+II at 0.67, its twelve rows 12x1 at 0.69)
NAME_TIE = 0.05  # layouts whose fit is within this of the best one fit the page's geometry equally: names decide
NAME_AGREE = 0.75  # another tied layout is taken when its leads' mean probability in the names read, over the
# panels where it prints other names than the best fit, is this ...
NAME_SWITCH = 0.3  # ... and this much above the best fit's there (a misread name or two never changes a layout)
NAME_CONTRADICTED = 0.25  # a layout whose geometry fits worse is taken only where the best fit's own names there
# are read at most this probable (a 6x2 page whose boundaries read like 3x4+II,V1,V5's, its names plainly 6x2's)
MAX_STRIPS_ORDERED = 4  # rhythm strips whose every order is a candidate (4! = 24 orders; the known layouts have 3)
NAME_CONFIDENT = 0.9  # a name read with at least this probability is its panel's lead
HEADER_NONE = 0.8  # a top row whose every panel reads as no name at least this surely may be the header's text


@dataclass(frozen=True)
class FoundRow:
    """One row of trace: its baseline, its panels' x extents and its calibration pulse, in sheet px."""

    y_px: float
    panels: tuple[tuple[float, float], ...]  # (x_start, x_end) per panel, left to right
    leads: tuple[str, ...] | None  # the panels' lead names from the matched layout, None without one
    pulse: tuple[float, float, float, float] | None  # x0, y0, x1, y1 box of the pulse's box shape
    pulse_outside: bool  # the pulse is clear of the trace (a gap between them) rather than running into it
    runs: tuple[tuple[float, float], ...]  # the row's measured runs of ink (x_start, x_end), pulse excluded
    names: tuple[tuple[str, float], ...] | None = None  # per panel the name read and its probability (a reader's)


@dataclass(frozen=True)
class FoundLayout:
    """What :func:`find_layout` read from a sheet; ``layout_name`` is None when no known layout fits."""

    layout_name: str | None
    confidence: float
    rows: tuple[FoundRow, ...]
    fits: dict  # known layout name -> its fit in [0, 1] (0 for another row count)
    x0_px: float | None  # chart time 0 of the matched layout (every row's first panel start)
    px_per_s: float | None  # sheet px per s of chart the layout was placed with (the sheet's 25 mm/s, or measured)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def pulses(self) -> tuple:
        return tuple(r.pulse for r in self.rows)

    @property
    def mm_per_mv(self) -> float:
        """The chart's gain its calibration pulses show (a 1 mV pulse is as many mm tall): the sheet's 10 mm/mV
        unless at least MIN_GAIN_PULSES pulses stand at one other of the heights looked for, and none at 10 mm (a
        page printing rows at two gains keeps 10: it is read by one)."""
        gains = {_pulse_gain_mm_per_mv(p) for p in self.pulses if p is not None}
        if len(gains) == 1 and sum(p is not None for p in self.pulses) >= MIN_GAIN_PULSES:
            return gains.pop()
        return CANONICAL.mm_per_mv

    def as_layout(self) -> tuple[Layout, Placement] | None:
        """The matched known layout and where its rows sit on this sheet (at ``px_per_s`` px per s of chart,
        the sheet's own 25 mm/s unless the rows showed another); None without a match."""
        if self.layout_name is None or self.x0_px is None:
            return None
        return get_layout(self.layout_name), Placement(self.x0_px, tuple(r.y_px for r in self.rows))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FoundLayout:
        def tup(v):
            return None if v is None else tuple(tuple(x) if isinstance(x, list) else x for x in v)

        def names(v):
            return None if v is None else tuple((str(n), float(c)) for n, c in v)

        rows = tuple(FoundRow(float(r["y_px"]), tuple(tuple(p) for p in r["panels"]), tup(r["leads"]),
                              tup(r["pulse"]), bool(r["pulse_outside"]), tuple(tuple(p) for p in r["runs"]),
                              names(r.get("names")))
                     for r in data["rows"])
        return cls(data["layout_name"], float(data["confidence"]), rows,
                   {str(k): float(v) for k, v in data["fits"].items()}, data["x0_px"], data["px_per_s"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FoundLayout:
        return cls.from_dict(json.loads(Path(path).read_text()))


# --- ink ------------------------------------------------------------------------------------------------
def _uint8_percentiles(a: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """``np.percentile(a, q)`` (linear interpolation) for each q of a uint8 array, from its histogram."""
    cum = np.cumsum(np.bincount(a.ravel(), minlength=256))
    out = []
    for q in qs:
        pos = q / 100.0 * (cum[-1] - 1)
        lo = int(math.floor(pos))
        v_lo = int(np.searchsorted(cum, lo, side="right"))  # the value at 0-based rank lo of the sorted array
        v_hi = int(np.searchsorted(cum, min(lo + 1, cum[-1] - 1), side="right"))
        out.append(v_lo + (pos - lo) * (v_hi - v_lo))
    return tuple(out)


def _light(paper: np.ndarray, typical: float) -> np.ndarray:
    """uint8 light falling on the page (the paper's brightness over LIGHT_SCALE_PX: a closing at 1/8 resolution, so
    that a mold colony, a stain or a dark grid patch is not taken for shade), at least MAX_SHADOW_GAIN_INV of its
    typical brightness."""
    h, w = paper.shape
    small = cv2.resize(paper, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    k = max(3, int(round(LIGHT_SCALE_PX / (8 * _REDUCE))) | 1)
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    light = cv2.resize(cv2.blur(small, (3, 3)), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.maximum(light, np.uint8(min(255, round(MAX_SHADOW_GAIN_INV * typical))))


def ink_masks(sheet_rgb: np.ndarray, faint_ink: bool = False, smooth: bool = True,
              dim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H/2, W/2) uint8 0/1 masks: the trace-dark ink of the sheet without its grid (see the module doc), and
    text: fainter ink too (a scan greys thin letters), in pieces no bigger than a printed character (the
    traces' pieces are bigger). ``faint_ink``: the second try's lower threshold (FAINT_INK_LEVEL); ``dim`` with it:
    the last try's, lower still (DIM_FLOOR). ``smooth``: a speckled sheet (more than SPECKLED_SHARE of its ink in
    specks) is read 3 x 3 box-blurred instead."""
    h, w = sheet_rgb.shape[:2]
    # the brightest channel, at half resolution the darkest of each 2 x 2 block: a 1 px navy or grey trace keeps
    # its darkness (averaging would halve it, below that of big black letters beside it)
    r, g, b = cv2.split(np.ascontiguousarray(sheet_rgb))
    bright = cv2.erode(cv2.max(cv2.max(r, g), b), np.ones((_REDUCE, _REDUCE), np.uint8), anchor=(0, 0))
    bright = np.ascontiguousarray(bright[: h - h % _REDUCE : _REDUCE, : w - w % _REDUCE : _REDUCE])
    window = max(3, int(round(INK_WINDOW_PX / _REDUCE)) | 1)
    paper = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((window, window), np.uint8))
    # darkness as a share of the light falling there, on the page's typical paper level: light multiplies ink and
    # paper alike, so a trace under a shadow is as dark as one in the light (an absolute difference lost the
    # shadowed half of a photo's rows)
    typical = float(np.median(paper[::4, ::4]))
    dark = cv2.divide(cv2.subtract(paper, bright), _light(paper, typical), scale=typical)
    # over every pixel (a histogram: np.percentile's values, in half the time it took over a quarter of them): the
    # 99.8th percentile of every 2nd pixel of a thin blurred trace read 63 on a sheet, 77 on it turned half a turn
    p95, level = _uint8_percentiles(dark, (95.0, 99.8))
    if faint_ink:
        threshold = max(FAINT_INK_LEVEL * level, INK_FLOOR)
        if dim:  # a blurred photo of a screen: its trace 15-25 grey levels dark, above the grid's margin
            threshold = max(FAINT_INK_LEVEL * level, DIM_FLOOR, p95 + GRID_MARGIN)
    else:
        grid_floor = p95 + GRID_MARGIN
        if grid_floor > GRID_CAP * level:  # not a dark grid: the page is that full of ink (thick traces, 12 rows)
            grid_floor = INK_LEVEL * level
        threshold = max(INK_LEVEL * level, grid_floor, INK_FLOOR)
    ink = (dark >= threshold).astype(np.uint8)
    # specks (a dotted grid's dots, scan noise) are not ink: a trace or a letter is bigger
    _, lab, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    speck = stats[:, cv2.CC_STAT_AREA] <= SPECK_PX
    speck[0] = False
    areas = stats[1:, cv2.CC_STAT_AREA]
    if smooth and areas[speck[1:]].sum() > SPECKLED_SHARE * areas.sum():
        # a dithered black-and-white scan (its paper's dots are ink at the darkest of 2 x 2 blocks) or a crumpled
        # page's grain: blurred, a dot's darkness spreads thin while a trace's stroke keeps most of its own
        return ink_masks(cv2.blur(sheet_rgb, (3, 3)), faint_ink, smooth=False, dim=dim)
    ink[speck[lab]] = 0
    # grid lines as dark as the traces: straight runs longer than any QRS stroke (upright) or anchors.py's
    # LINE_RUN_PX (flat), that have their like one grid pitch away (a flat lead is one long flat line alone; a
    # 12x1 page's pulses stand above each other like one long upright line, with the pulses' other sides 5 mm
    # away on one side only, so upright lines need their like on both sides)
    # and a frame or border line: a flat line longer than any row of chart
    # (both found before either is taken out: flat lines taken out first cut a dithered upright line into dashes
    # too short to be a line)
    flat = _grid_lines(ink, LINE_RUN_PX, axis=1, both_sides=False, frame_px=PAGE_LINE_PX)
    upright = _grid_lines(ink, VLINE_RUN_PX, axis=0, both_sides=True)
    ink &= 1 - flat
    ink &= 1 - upright
    # a trace crossing an upright line lost the line's width (2-5 px at half resolution, more than a gap the rows
    # bridge): put back what joins ink on both sides within the removed line
    joined = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, UPRIGHT_BRIDGE_PX), np.uint8))
    ink |= joined & upright
    faint = (dark >= max(TEXT_LEVEL * level, p95 + GRID_MARGIN, 12.0)).astype(np.uint8)
    _, lab, stats, _ = cv2.connectedComponentsWithStats(faint, connectivity=8)
    size = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) * _REDUCE
    small = size <= GLYPH_MAX_PX
    small[0] = False
    return ink, small[lab].astype(np.uint8)


def _grid_lines(ink: np.ndarray, run_px: float, axis: int, both_sides: bool, frame_px: float | None = None):
    """uint8 mask (widened by a px) of the runs of ink along ``axis`` (1: rows, flat lines; 0: upright) at least
    ``run_px`` sheet px long, breaks of up to LINE_GAP_PX bridged, with another such run one grid pitch (1 or 5
    mm) away on one side (on both with ``both_sides``), and of those at least ``frame_px`` long."""
    bridge, run = LINE_GAP_PX // _REDUCE + 1, int(round(run_px / _REDUCE))
    along = (1, bridge) if axis == 1 else (bridge, 1)
    joined = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones(along, np.uint8))
    lines = cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((1, run) if axis == 1 else (run, 1), np.uint8))
    if not lines.any():
        return lines
    lines_t = lines if axis == 0 else lines.T  # pitch offsets run along the last axis
    near = cv2.dilate(lines_t, np.ones((1, 3), np.uint8))
    grid = np.zeros_like(lines_t)
    for mm in (CANONICAL.small_box_mm, CANONICAL.big_box_mm):
        p = int(round(mm * CANONICAL.px_per_mm / _REDUCE))
        left, right = np.zeros_like(lines_t), np.zeros_like(lines_t)
        left[:, p:], right[:, :-p] = near[:, :-p], near[:, p:]
        grid |= lines_t & ((left & right) if both_sides else (left | right))
    grid = np.ascontiguousarray(grid if axis == 0 else grid.T)
    if frame_px is not None:
        _, lab, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
        long = stats[:, cv2.CC_STAT_WIDTH if axis == 1 else cv2.CC_STAT_HEIGHT] * _REDUCE >= frame_px
        long[0] = False
        grid |= long[lab].astype(np.uint8)
    return cv2.dilate(grid, np.ones((1, 3) if axis == 0 else (3, 1), np.uint8))


def _row_profile(ink: np.ndarray) -> np.ndarray:
    """Per reduced y, the fraction of columns with ink within 3 px (6 sheet px), lightly smoothed."""
    near = maximum_filter1d(ink, size=7, axis=0)
    return gaussian_filter1d(near.mean(axis=1, dtype=np.float64), 1.0)


def _runs(mask: np.ndarray) -> np.ndarray:
    """(n, 2) [start, end) of the runs of True in a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1)


def _close_gaps(mask: np.ndarray, gap: int) -> np.ndarray:
    """``mask`` with False runs of at most ``gap`` between True runs filled."""
    out = mask.copy()
    runs = _runs(mask)
    for (_, e), (s, _) in zip(runs[:-1], runs[1:], strict=True):
        if s - e <= gap:
            out[e:s] = True
    return out


# --- rows -----------------------------------------------------------------------------------------------
def _find_row_peaks(profile: np.ndarray, strength: float) -> list[int]:
    """Reduced y of the peaks of the ink profile at least ``strength`` of its strongest, EDGE_PX inside the
    sheet (close ones included: see :func:`_split_close`)."""
    sep = max(1, int(round(MIN_PITCH_PX / _REDUCE)))
    # local maxima over +-sep/2 (wider, a close row's flank would hide a weak row), strongest first, at least
    # sep apart (a flat-topped peak is one peak)
    is_peak = profile >= maximum_filter1d(profile, size=sep + 1)
    edge = int(round(EDGE_PX / _REDUCE))
    inside = (np.arange(profile.size) >= edge) & (np.arange(profile.size) < profile.size - edge)
    # the strongest where a row may stand: a scan's dark border at the sheet's edge piles up more ink than any row
    # and would lift the bar over a row's peak (a rhythm strip whose baseline wanders)
    top = float(profile[inside].max()) if inside.any() else 0.0
    candidates = np.flatnonzero(is_peak & inside & (profile >= max(MIN_PROFILE, strength * top)))
    peaks: list[int] = []
    for i in candidates[np.argsort(-profile[candidates], kind="stable")]:
        if all(abs(int(i) - j) >= sep for j in peaks):
            peaks.append(int(i))
    return sorted(peaks)


def _split_close(peaks: list[int], profile: np.ndarray, trace: list[bool], ink: np.ndarray) -> list[int]:
    """``peaks`` without the second peaks of wandering traces. A trace that wanders (or swings far one way) can
    pile its ink at two y; a peak much closer to its neighbour than the rows' pitch (SPLIT_FRACTION of the median
    gap) is such a second peak, unless both hold a trace side by side (:func:`_side_by_side`: rhythm strips whose
    pitch follows the signal stand 110-130 px apart where the rows' median is 230-270), and of the two the one that
    is not ``trace`` (lines of text above a row whose baseline wanders), else the weaker, is dropped."""
    peaks, trace = list(peaks), list(trace)
    near = None  # ink within 3 px, per row of the mask (made where a close pair of trace peaks asks for it)
    apart: set[tuple[int, int]] = set()
    while len(peaks) > 2:
        gaps = np.diff(peaks)
        close = [k for k in np.argsort(gaps, kind="stable") if gaps[k] < SPLIT_FRACTION * float(np.median(gaps))
                 and (peaks[k], peaks[k + 1]) not in apart]
        if not close:
            break
        k = int(close[0])
        if trace[k] and trace[k + 1]:
            near = maximum_filter1d(ink, size=7, axis=0) if near is None else near
            if _side_by_side(near, peaks[k], peaks[k + 1]):
                apart.add((peaks[k], peaks[k + 1]))
                continue
        weaker = (trace[k], profile[peaks[k]]) < (trace[k + 1], profile[peaks[k + 1]])
        drop = k if weaker else k + 1
        del peaks[drop], trace[drop]
    return peaks


def _side_by_side(near: np.ndarray, y_a: int, y_b: int) -> bool:
    """Whether two peaks (reduced y) are two traces: ink within 3 px of both on at least SIDE_BY_SIDE of the columns
    that have it within 3 px of either one (two rows' traces run side by side along the row; one wandering trace is
    near one y or the other, both only where it crosses: 0.01-0.16 on the factory's pages, two rows 0.60-0.99)."""
    a, b = near[y_a] > 0, near[y_b] > 0
    return bool((a & b).sum() >= SIDE_BY_SIDE * max(min(a.sum(), b.sum()), 1))


def _sub_px(profile: np.ndarray, peaks) -> list[float]:
    """Reduced y of each peak to a fraction of a px: the top of a parabola through it and its neighbours."""
    ys = []
    for i in peaks:
        lo, hi = profile[max(i - 1, 0)], profile[min(i + 1, profile.size - 1)]
        den = lo - 2 * profile[i] + hi
        ys.append(i + (0.5 * (lo - hi) / den if den < 0 else 0.0))
    return ys


def _territories(ys: list[float], h: int) -> list[tuple[int, int]]:
    """Reduced [top, bottom) of each row's territory: half way to its neighbours, REACH_MV beyond the outer."""
    reach = REACH_MV * PX_PER_MV / _REDUCE
    out = []
    for k, y in enumerate(ys):
        up = 0.5 * (y - ys[k - 1]) if k > 0 else reach
        dn = 0.5 * (ys[k + 1] - y) if k + 1 < len(ys) else reach
        out.append((max(0, int(round(y - min(up, reach)))), min(h, int(round(y + min(dn, reach))) + 1)))
    return out


# --- pulses ---------------------------------------------------------------------------------------------
def _pulse_gain_mm_per_mv(box: tuple[float, float, float, float]) -> float:
    """The gain (mm/mV) a found pulse's box shows: its height in mm (the pulse is 1 mV), as the nearest of
    GAINS_MM_PER_MV."""
    height_mm = (box[3] - box[1]) / CANONICAL.px_per_mm
    return min(GAINS_MM_PER_MV, key=lambda mm: abs(mm - height_mm))


def _find_pulse(ink: np.ndarray, feet: tuple[int, int], x_lo: int, x_hi: int) -> tuple[float, tuple] | None:
    """A pulse (score, (x0, y_top, x1, y_foot) reduced px) with its foot in rows ``feet`` [lo, hi) and its left
    side in columns [x_lo, x_hi): a flat top PULSE_WIDTH_S wide, one of PULSE_HEIGHTS_MV above the foot, two
    solid sides down to the foot (a grid line that survives the ink mask is dotted), nothing inside."""
    h, w = ink.shape
    pw = int(round(PULSE_WIDTH_S * PX_PER_S / _REDUCE))
    x_lo, x_hi = max(0, x_lo), min(w - pw - 1, x_hi)
    for height_mv in PULSE_HEIGHTS_MV:
        ph = int(round(height_mv * PX_PER_MV / _REDUCE))
        t_lo, t_hi = max(0, feet[0] - ph), min(h - ph - 1, feet[1] - ph)
        if t_hi <= t_lo or x_hi <= x_lo:
            continue
        # a px of slack across each stroke: up and down for the top, sideways for the (solid) sides
        region = ink[t_lo : t_hi + ph, x_lo : x_hi + pw + 1]
        d = cv2.dilate(region, np.ones((1, 3), np.uint8)).astype(np.float32)
        nt, nx = t_hi - t_lo, x_hi - x_lo
        # top: mean ink along [x, x + pw] on each candidate top row
        dv = cv2.dilate(region, np.ones((3, 1), np.uint8)).astype(np.float32)
        cx = np.concatenate([np.zeros((dv.shape[0], 1), np.float32), np.cumsum(dv, axis=1)], axis=1)
        top = (cx[:nt, pw : pw + nx] - cx[:nt, :nx]) / pw
        # sides: mean ink from the top down to 2 px above the foot, at x and at x + pw
        cy = np.concatenate([np.zeros((1, d.shape[1]), np.float32), np.cumsum(d, axis=0)], axis=0)
        side = (cy[ph - 2 : ph - 2 + nt] - cy[:nt]) / (ph - 2)
        left, right = side[:, :nx], side[:, pw : pw + nx]
        # inside: mean ink 3 px in from every side
        ii = cv2.integral(d)
        a, b = 3, ph - 3
        inside = (ii[b : b + nt, 3 + pw - 6 : 3 + pw - 6 + nx] - ii[b : b + nt, 3 : 3 + nx]
                  - ii[a : a + nt, 3 + pw - 6 : 3 + pw - 6 + nx] + ii[a : a + nt, 3 : 3 + nx]) / ((b - a) * (pw - 6))
        score = np.minimum(np.minimum(top, left), right) * (1.0 - np.clip(inside, 0.0, 1.0))
        ti, xi = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[ti, xi] >= PULSE_MIN_SCORE:
            return float(score[ti, xi]), (x_lo + int(xi), t_lo + int(ti), x_lo + int(xi) + pw, t_lo + int(ti) + ph)
    return None


# --- per row --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RowInk:
    y: float  # reduced px
    occupied: np.ndarray  # (W/2,) bool: the row's territory holds ink in that column (pulse removed)
    runs: np.ndarray  # (n, 2) reduced [start, end) of the trace's runs
    pulse: tuple | None  # reduced box
    pulse_outside: bool
    length_px: float  # sheet px of trace in the runs
    stacked: float  # fraction of the trace's columns holding two or more separate pieces of ink (lines of text)
    ruled: float  # fraction of the trace's columns whose ink is only a 3 px band at the baseline (a ruled line)

    @property
    def is_trace(self) -> bool:
        """Long enough and not stacked like text (whether it is a ruled line: :func:`_ruled_lines`)."""
        return self.length_px >= MIN_ROW_S * PX_PER_S and self.stacked <= MAX_STACKED


def _measure_row(ink: np.ndarray, y: float, band: tuple[int, int]) -> _RowInk | None:
    """The row's runs of trace and its pulse, and its baseline (``y``, or the foot of its pulse); None without
    a run of trace."""
    territory = ink[band[0] : band[1]]
    dots, blots = _spots(territory)
    # the row runs where its ink is, through blots on its line but not on into blots beyond its ends (a photo's
    # faint trace may break into dots: they count)
    occ = _close_gaps(_bridge_spots((territory & (1 - blots)).any(axis=0), blots.any(axis=0)), GAP_CLOSE_PX // _REDUCE)
    # the ink lines are drawn with (a line of text stacks over another, or over a trace; mold's dots and blots
    # stacked over a trace do not count)
    lettered = territory & (1 - dots) & (1 - blots)
    pieces = np.count_nonzero(np.diff(lettered, axis=0) == 1, axis=0) + lettered[0]
    trace = _trace_runs(occ)
    if trace.size == 0:
        return None
    near = int(round(PULSE_NEAR_S * PX_PER_S / _REDUCE))
    pw = int(round(PULSE_WIDTH_S * PX_PER_S / _REDUCE))
    # the pulse's foot lies in the middle half of the territory, within PULSE_FOOT_MV of the peak (a neighbour's
    # pulse stands at the territory's edge)
    reach = PULSE_FOOT_MV * PX_PER_MV / _REDUCE
    feet = (int(round(max(y - reach, 0.5 * (y + band[0])))), int(round(min(y + reach, 0.5 * (y + band[1])))) + 1)
    best = None
    for lo, hi in ((trace[0, 0] - near - pw, trace[0, 0] + near), (trace[-1, 1] - near, trace[-1, 1] + near)):
        found = _find_pulse(ink, feet, int(lo), int(hi))
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    pulse, outside = None, False
    if best is not None:
        pulse = best[1]
        x0, _, x1, foot = pulse
        y = float(foot)  # the pulse stands on the row's 0 mV line: a better baseline than where the ink piles up
        occ = occ.copy()
        occ[max(0, x0 - 2) : x1 + 3] = False
        # a flat lead-in before a pulse at the row's start, or lead-out after one at its end, is the pulse's
        # (on the row's side of the pulse it may be the trace's first or last beat, cut from the rest where the ink
        # mask lost a stretch of it: that rises off the line)
        runs_all = _runs(occ)
        at_start = x1 < 0.5 * (runs_all[0, 0] + runs_all[-1, 1]) if runs_all.size else True
        for s, e in runs_all:
            if (e - s) * _REDUCE >= MIN_RUN_S * PX_PER_S:
                continue
            inked_y = np.flatnonzero(lettered[:, s:e].any(axis=1))
            flat = inked_y.size == 0 or (inked_y[-1] - inked_y[0]) * _REDUCE <= LEAD_FLAT_PX
            if e <= x0 - 2 and x0 - 2 - e <= 2 and (at_start or flat):
                occ[s:e] = False
            if s >= x1 + 3 and s - x1 - 3 <= 2 and (flat or not at_start):
                occ[s:e] = False
        trace = _trace_runs(occ)
        if trace.size == 0:
            return None
        gap_px = min(abs(trace[0, 0] - (x1 + 3)), abs(x0 - 2 - trace[-1, 1])) * _REDUCE
        outside = bool(gap_px >= GAP_MIN_PX)
    inked = np.zeros(occ.size, bool)
    for a, b in trace:
        inked[a:b] = True
    inked &= pieces > 0
    stacked = float(np.mean(pieces[inked] >= 2)) if inked.any() else 1.0
    line = slice(max(int(round(y)) - 1 - band[0], 0), max(int(round(y)) + 2 - band[0], 0))
    off_line = territory.copy()
    off_line[line] = 0
    only_line = territory[line].any(axis=0) & ~off_line.any(axis=0)
    ruled = float(np.mean(only_line[inked])) if inked.any() else 0.0
    return _RowInk(y, occ, trace, pulse, outside, float((trace[:, 1] - trace[:, 0]).sum() * _REDUCE), stacked,
                   ruled)


def _spots(territory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The territory's dots (no side over DOT_PX) and blots (ink that holds a BLOT_PX square: a letter's or a
    trace's stroke is thinner), which mold and stains scatter over a page."""
    _, lab, stats, _ = cv2.connectedComponentsWithStats(territory, connectivity=8)
    dot = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) <= DOT_PX
    dot[0] = False
    dots = dot[lab].astype(np.uint8)
    blot = cv2.morphologyEx(territory & (1 - dots), cv2.MORPH_OPEN, np.ones((BLOT_PX, BLOT_PX), np.uint8))
    return dots, territory & cv2.dilate(blot, np.ones((3, 3), np.uint8))


def _bridge_spots(drawn: np.ndarray, spotted: np.ndarray) -> np.ndarray:
    """``drawn`` (columns) with its breaks filled where every column of the break holds a spot."""
    out = drawn.copy()
    runs = _runs(drawn)
    for (_, e), (s, _) in zip(runs[:-1], runs[1:], strict=True):
        if spotted[e:s].all():
            out[e:s] = True
    return out


def _trace_runs(occ: np.ndarray) -> np.ndarray:
    """Runs of the row's trace: runs of at least MIN_RUN_S, with shorter ones joined that lie within JOIN_S of
    them (MIN_PIECE_PX long) or closer than GAP_MIN_PX, then split only at gaps of at least GAP_MIN_PX."""
    runs = _runs(occ)
    if runs.size == 0:
        return runs
    long = (runs[:, 1] - runs[:, 0]) * _REDUCE >= MIN_RUN_S * PX_PER_S
    if not long.any():
        return runs[:0]
    keep = long.copy()
    join = JOIN_S * PX_PER_S / _REDUCE
    piece = (runs[:, 1] - runs[:, 0]) * _REDUCE >= MIN_PIECE_PX
    changed = True
    while changed:  # grow the trace by short runs that lie close to it
        changed = False
        for k in np.flatnonzero(~keep):
            reach = join if piece[k] else GAP_MIN_PX / _REDUCE
            near_left = k > 0 and keep[k - 1] and runs[k, 0] - runs[k - 1, 1] <= reach
            near_right = k + 1 < len(runs) and keep[k + 1] and runs[k + 1, 0] - runs[k, 1] <= reach
            if near_left or near_right:
                keep[k] = changed = True
    first, last = np.flatnonzero(keep)[[0, -1]]
    runs = runs[first : last + 1][keep[first : last + 1]]
    merged = [list(runs[0])]
    for s, e in runs[1:]:
        if (s - merged[-1][1]) * _REDUCE < GAP_MIN_PX:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return np.asarray(merged, dtype=np.int64)


# --- the prior ------------------------------------------------------------------------------------------
def _label_evidence(text: np.ndarray, y: float, xs: np.ndarray) -> np.ndarray:
    """Ink (reduced px count) in the lead-name windows just after each sheet x in ``xs``: above and below the
    baseline, LABEL_BAND_MV from it, LABEL_WINDOW_S wide."""
    h, w = text.shape
    ii = cv2.integral(text)
    width = int(round(LABEL_WINDOW_S * PX_PER_S / _REDUCE))
    lo_mv, hi_mv = (v * PX_PER_MV / _REDUCE for v in LABEL_BAND_MV)
    bands = [(y - hi_mv, y - lo_mv), (y + lo_mv, y + hi_mv)]
    out = np.zeros(xs.size)
    for top, bottom in bands:
        t, b = int(np.clip(round(top), 0, h)), int(np.clip(round(bottom), 0, h))
        x0 = np.clip(np.round(xs / _REDUCE).astype(np.int64) + 1, 0, w)
        x1 = np.clip(x0 + width, 0, w)
        out = np.maximum(out, ii[b, x1] - ii[t, x1] - ii[b, x0] + ii[t, x0])
    return out


def _boundary_evidence(sheet_rgb: np.ndarray, text: np.ndarray, row: _RowInk, x0: float,
                       px_per_s: float, with_bars: bool, times: tuple[float, ...] = BOUNDARY_TIMES_S) -> np.ndarray:
    """(len(times),) bool: whether the page shows a panel boundary at each chart time (s) of the row (separator
    bars looked for only ``with_bars``: they cost more than the rest)."""
    xs = x0 + np.asarray(times) * px_per_s
    bars = np.full(xs.size, np.nan)
    if with_bars:
        y_sheet = (row.y + 0.5) * _REDUCE - 0.5
        bars = find_bars(sheet_rgb, xs, np.full(xs.size, y_sheet), BAR_HALF_BAND_MV * PX_PER_MV, BAR_SEARCH_PX,
                         (CANONICAL.px_per_mm, CANONICAL.big_box_mm * CANONICAL.px_per_mm))
    # a break in the row's ink at the boundary (+-1 mm)
    reach = int(round(CANONICAL.px_per_mm / _REDUCE))
    idx = np.clip(np.round(xs / _REDUCE).astype(np.int64), reach, row.occupied.size - reach - 1)
    gaps = np.array([not row.occupied[i - reach : i + reach + 1].all() for i in idx])
    controls = np.concatenate([xs - CONTROL_OFFSET_S * px_per_s, xs[-1:] + CONTROL_OFFSET_S * px_per_s])
    label = _label_evidence(text, row.y, xs)
    base = float(np.median(_label_evidence(text, row.y, controls)))
    labels = label >= max(LABEL_RATIO * base, LABEL_MIN_PX)
    return np.isfinite(bars) | gaps | labels


def _gap_variants(rows: list[_RowInk]) -> dict[str, Layout]:
    """The gap variants of the base layouts with as many rows that the rows' runs of ink show (module doc): the
    steps between consecutive runs' starts (from the second run on: the first may keep a pulse's lead-out) and
    ends, less the base layout's steps between its panels' offsets, are the gap. Rows whose runs are not one
    per panel say nothing."""
    out: dict[str, Layout] = {}
    for layout in LAYOUTS.values():
        if layout.n_rows != len(rows):
            continue
        steps: list[float] = []
        for k, row in enumerate(rows):
            panels = layout.row_panels(k)
            runs = _panel_runs(row, panels)
            if runs is None:
                continue
            offsets = np.array([p.x_offset_s for p in panels]) * PX_PER_S
            steps += list(np.diff(runs[1:, 0]) - np.diff(offsets[1:])) + list(np.diff(runs[:, 1]) - np.diff(offsets))
        if not steps:
            continue
        gap_mm = float(np.median(steps)) / CANONICAL.px_per_mm
        if GAP_MIN_PX / CANONICAL.px_per_mm <= gap_mm <= MAX_GAP_MM:
            variant = with_gap(layout, gap_mm)
            out[variant.name] = variant
    return out


def _panel_runs(row: _RowInk, panels: tuple) -> np.ndarray | None:
    """The row's runs of ink (sheet px) when they are one per panel of ``panels`` (at least two), leaving out runs
    shorter than half the shortest panel (a pulse the ink of a scan no longer shows as a box); else None."""
    if len(panels) < 2:
        return None
    runs = row.runs.astype(np.float64) * _REDUCE
    runs = runs[runs[:, 1] - runs[:, 0] >= 0.5 * min(p.duration_s for p in panels) * PX_PER_S]
    return runs if len(runs) == len(panels) else None


def _boundary_times(layout: Layout) -> tuple[float, ...]:
    """Chart times (s) where boundaries are looked for: BOUNDARY_TIMES_S, or a gap variant's own panel starts."""
    starts = {round(p.x_offset_s, 9) for p in layout.panels if p.col > 0}
    if starts <= set(BOUNDARY_TIMES_S):
        return BOUNDARY_TIMES_S
    return tuple(sorted(starts))


def _fit_layouts(sheet_rgb: np.ndarray, text: np.ndarray, rows: list[_RowInk]) -> tuple[dict, dict]:
    """Per known layout (and gap variant the rows show), its fit in [0, 1] and its chart origin and scale (x0
    sheet px, px per s)."""
    fits, placements = {}, {}
    ends = np.array([r.runs[-1, 1] * _REDUCE for r in rows], dtype=np.float64)
    starts = np.array([r.runs[0, 0] * _REDUCE for r in rows], dtype=np.float64)
    evidence: dict = {}
    # bars decide between layouts of one row count (3x4+II,V1,V5 and 6x2); labels and breaks check the others
    with_bars = sum(layout.n_rows == len(rows) for layout in LAYOUTS.values()) > 1
    for name, layout in {**LAYOUTS, **_gap_variants(rows)}.items():
        fits[name] = 0.0
        if layout.n_rows != len(rows):
            continue
        seconds = np.array([layout.row_duration_s(k) for k in range(layout.n_rows)])
        x0, px_per_s, agree, weight = _place(starts, ends, seconds)
        if agree is None:
            continue
        score, count = 0.0, 0
        times = _boundary_times(layout)
        for k, row in enumerate(rows):
            key = (k, round(x0), round(px_per_s, 1), times)
            if key not in evidence:
                evidence[key] = _boundary_evidence(sheet_rgb, text, row, x0, px_per_s, with_bars, times)
            expected = np.array([any(abs(p.x_offset_s - t) < 1e-6 for p in layout.row_panels(k)) for t in times])
            score += float((evidence[key] == expected).sum())
            count += expected.size
        fits[name] = weight * float(agree.mean()) * (1.0 - BOUNDARY_WEIGHT * (1.0 - score / count))
        fits[name] *= 1.0 - BOUNDARY_WEIGHT * (1.0 - _panel_ends_agree(rows, layout, x0, px_per_s))
        placements[name] = (x0, px_per_s)
    return fits, placements


def _panel_ends_agree(rows: list[_RowInk], layout: Layout, x0: float, px_per_s: float) -> float:
    """Share of the panel ends inside rows (all but each row's last) that agree within END_TOL_PX with the layout,
    in the rows whose runs of ink are one per panel (1 where no row is: abutting panels leave no such runs). A
    page with gaps between its panels contradicts the layout without them, whose boundaries and row extents it
    otherwise fits (a 6x2 row 3 mm longer, its ink broken near the 5 s boundary)."""
    agree = []
    for k, row in enumerate(rows):
        panels = layout.row_panels(k)
        runs = _panel_runs(row, panels)
        if runs is None:
            continue
        for p, (_, end) in zip(panels[:-1], runs[:-1], strict=True):
            agree.append(abs(end - (x0 + (p.x_offset_s + p.duration_s) * px_per_s)) <= END_TOL_PX)
    return float(np.mean(agree)) if agree else 1.0


def _place(starts: np.ndarray, ends: np.ndarray, seconds: np.ndarray):
    """Chart origin x0, px per s, which rows agree, and the weight of such a placement, for rows of ``seconds``
    measured from ``starts`` to ``ends`` (sheet px); agree is None when the rows fit neither way.

    At the sheet's own scale x0 comes from the right ends (a row's left end can carry a pulse's flat lead-out);
    a row agrees when its end is within END_TOL_PX of x0 + its length and its start no later than START_TOL_PX
    and no earlier than EARLY_TOL_PX. Where fewer than half do, the chart may be drawn at another scale than the
    sheet's (a real page's grid read a few per cent off, a printer's own speed): the rows' common start and end
    then set x0 and the scale, within SCALE_TOL, and the fit counts SCALED_WEIGHT as much, unless the sheet's
    scale fits more rows than that."""
    origins = ends - seconds * PX_PER_S
    # a row whose ink runs on to the sheet's edge (mold or a stain beyond its end, a page cut by the scan) tells
    # only that the chart ends no later than the edge: its end agrees with any origin that puts the chart's end
    # at or before it
    cut = ends >= CANONICAL.width_px - EDGE_CUT_PX

    def agreeing(x0: float) -> np.ndarray:
        ended = np.where(cut, origins >= x0 - END_TOL_PX, np.abs(origins - x0) <= END_TOL_PX)
        return ended & (starts <= x0 + START_TOL_PX) & (starts >= x0 - EARLY_TOL_PX)

    # the median origin of the most rows whose ends agree with each other (within END_TOL_PX of the earliest of
    # them): a row run on by a grid line the ink kept, mold or a crease's shadow moves a median of all rows, and
    # one between two groups agreed with both (two mold scan rows run on 24-32 px put the origin 12 px late); of
    # as many, the group nearest the rows' starts (ends run on late; the starts say where the chart begins, up to a
    # pulse's lead-out: a crumpled page's single row that ended right was passed over for one run on 80 px)
    start = float(np.median(starts))
    best = None
    for lo in np.unique(origins[~cut]):
        group = (origins >= lo) & (origins <= lo + END_TOL_PX)
        group &= agreeing(float(np.median(origins[group])))
        if not group.any():
            continue
        x = float(np.median(origins[group]))
        key = (int(group.sum()), -abs(start - x))
        if best is None or key > best[0]:
            best = (key, x)
    if best is None and cut.any():
        # no row's end says where the chart ends: where the rows start says where it begins
        placed = _placed_by_starts(starts, ends, seconds, cut)
        if placed[2] is not None:
            return placed
    x0 = best[1] if best is not None else float(np.median(origins))
    agree = agreeing(x0)
    if agree.mean() >= 0.5 or np.ptp(seconds) > 0:
        return x0, PX_PER_S, agree, 1.0
    # the sheet's scale stays where the other scale fits no more rows (half the rows of a page whose grid lines
    # run the other half on)
    at_sheet_scale = (x0, PX_PER_S, agree, 1.0) if agree.any() else _placed_by_starts(starts, ends, seconds)
    x0, x1 = float(np.median(starts)), float(np.median(ends))
    px_per_s = (x1 - x0) / float(seconds[0])
    if abs(px_per_s / PX_PER_S - 1.0) > SCALE_TOL:
        return at_sheet_scale
    scaled = (np.abs(ends - x1) <= END_TOL_PX) & (np.abs(starts - x0) <= START_TOL_PX)
    if SCALED_WEIGHT * scaled.sum() < agree.sum():
        return at_sheet_scale
    return x0, px_per_s, scaled, SCALED_WEIGHT


def _placed_by_starts(starts: np.ndarray, ends: np.ndarray, seconds: np.ndarray, cut: np.ndarray | None = None):
    """:func:`_place`'s answer where no row's end agrees: the rows' common start as the origin at the sheet's scale,
    counting SCALED_WEIGHT, where at least half the rows start within START_TOL_PX of it and none ends beyond its
    length, each row where its own ink fades (a thin trace under a photo's shadow: ends 1,490-1,720 px on a page
    whose chart ends at 2,050), else no placement. Rows that end together end where their chart does: a chart
    of another length, not ink lost. ``cut``: rows whose ink runs on to the sheet's edge, which end no earlier than
    the chart (and do not count as ending together)."""
    cut = np.zeros(starts.size, bool) if cut is None else cut
    x0 = float(np.median(starts))
    chart_ends = x0 + seconds * PX_PER_S
    agree = (np.abs(starts - x0) <= START_TOL_PX) & np.where(cut, ends >= chart_ends - END_TOL_PX,
                                                             ends <= chart_ends + END_TOL_PX)
    ended_together = ~cut & (np.abs(ends - np.median(ends[~cut] if (~cut).any() else ends)) <= END_TOL_PX)
    if agree.mean() < 0.5 or ended_together.mean() >= 0.5:
        return x0, PX_PER_S, None, 0.0
    return x0, PX_PER_S, agree, SCALED_WEIGHT


# --- the finder -----------------------------------------------------------------------------------------
def find_layout(sheet_rgb: np.ndarray, names: LeadNameReader | None = None) -> FoundLayout:
    """Rows, panels, pulses and the best-fitting known layout of a canonical sheet (RGB uint8, 1700 x 2200).

    Read once from the strong peaks of the ink profile; a page that no layout fits well (RETRY_BELOW), or where
    a row between the rows found was lost, is read again from the weak peaks too (WEAK_ROW_STRENGTH: a thin
    trace's rows), with the ink as it is and at the fainter ink level (strong and weak peaks: on a dim photo the
    faint ink holds the rows, and its weak peaks add the page's shadowed top edge), and the surest reading is kept
    (a faint-ink reading only where RETRY_MARGIN surer, unless the first lost a row, which a gap of a missing row
    between the rows also says: :func:`_row_gap`), but a reading that keeps another's rows and adds rows wins over
    it where its layout fits better or fills that gap (:func:`_adds_rows_that_fit`), and one that drops rows
    fitting as well is not taken (:func:`_drops_rows`). Where still no layout fits,
    the dim ink (DIM_FLOOR: a blurred photo of a screen) is read last. ``names``: the panels' printed names are
    read too, and a header they show was taken for the top row is dropped (:func:`named`)."""
    if sheet_rgb.shape[:2] != CANONICAL.shape_hw or sheet_rgb.ndim != 3:
        raise ValueError(f"find_layout needs a canonical {CANONICAL.shape_hw} RGB sheet, got {sheet_rgb.shape}")
    ink, text = ink_masks(sheet_rgb, faint_ink=False)
    profile = _row_profile(ink)
    meter = _RowMeter(ink)
    found, lost_a_row = _read(sheet_rgb, meter, text, profile, ROW_STRENGTH)
    lost_a_row = lost_a_row or _row_gap(found) is not None
    if lost_a_row or max(found.fits.values()) < RETRY_BELOW:
        weak = _read(sheet_rgb, meter, text, profile, WEAK_ROW_STRENGTH)[0]
        if (weak.confidence > found.confidence and not _drops_rows(weak, found)) or _adds_rows_that_fit(weak, found):
            found = weak
        faint = _surest_reading(sheet_rgb, dim=False)
        if (faint.confidence > found.confidence + (0.0 if lost_a_row else RETRY_MARGIN)
                and not _drops_rows(faint, found)) or _adds_rows_that_fit(faint, found):
            found = faint
    if found.layout_name is None:
        dim = _surest_reading(sheet_rgb, dim=True)
        if dim.layout_name is not None:
            found = dim
    return found if names is None else named(found, sheet_rgb, names)


def named(found: FoundLayout, sheet_rgb: np.ndarray, names: LeadNameReader) -> FoundLayout:
    """``found`` with its panels' names read (:func:`name_panels`); where they show its top row to be the
    header's text (:func:`_header_on_top`), the layout found on the rows below it instead, named."""
    found = name_panels(found, sheet_rgb, names)
    if not _header_on_top(found):
        return found
    ys = [(r.y_px + 0.5) / _REDUCE - 0.5 for r in found.rows]
    # the rows measured again in the ink of each of find_layout's readings in turn (a photo's rows may be in the
    # faint ink's alone), without the header's (in the first row's territory it would stack over its trace)
    for faint_ink, dim in ((False, False), (True, False), (True, True)):
        ink, text = ink_masks(sheet_rgb, faint_ink=faint_ink, dim=dim)
        ink[: int(round(0.5 * (ys[0] + ys[1])))] = 0
        below = _reading(sheet_rgb, text, _rows_of_trace(_RowMeter(ink), ys[1:])[0])
        if below.layout_name is not None and below.n_rows == found.n_rows - 1:
            return name_panels(below, sheet_rgb, names)
    return found


def _header_on_top(found: FoundLayout) -> bool:
    """Whether the top row found is the header's text rather than a row of the chart: no calibration pulse, every
    panel read as no lead name (at least HEADER_NONE surely), while every other row has a panel read as a lead
    more likely than not, one of them surely (NAME_CONFIDENT). Long lines of header text stacked loosely enough
    pass for a row of trace (a factory photo whose header was read as a fifth row, its 3x4+II as 3x4+II,V1 from
    it: 11.3 -> 1.6 dB)."""
    if found.layout_name is None or found.n_rows < 3:
        return False
    top, rest = found.rows[0], found.rows[1:]
    if top.pulse is not None or not top.names or any(n != "none" or p < HEADER_NONE for n, p in top.names):
        return False
    best = [max((p for n, p in r.names if n != "none"), default=0.0) if r.names else 0.0 for r in rest]
    return min(best) > 0.5 and max(best) >= NAME_CONFIDENT


def _row_gap(found: FoundLayout) -> tuple[float, float] | None:
    """The (top, bottom) baselines of a gap between consecutive rows at least MISSING_ROW_GAP times the median gap
    (a row the peaks missed: a real 3x4 page with three strips whose wandering third row was found only by the weak
    peaks left 400 px between rows 170-240 px apart), or None."""
    ys = np.sort([r.y_px for r in found.rows])
    if ys.size < 4:
        return None
    gaps = np.diff(ys)
    k = int(np.argmax(gaps))
    return (float(ys[k]), float(ys[k + 1])) if gaps[k] >= MISSING_ROW_GAP * float(np.median(gaps)) else None


def _keeps_rows(more: FoundLayout, fewer: FoundLayout) -> bool:
    """Whether ``more`` has more rows than ``fewer`` and a row within MIN_PITCH_PX of each of ``fewer``'s."""
    if more.n_rows <= fewer.n_rows or not fewer.rows:
        return False
    ys = np.array([r.y_px for r in more.rows])
    return all(np.abs(ys - r.y_px).min() < MIN_PITCH_PX for r in fewer.rows)


def _drops_rows(fewer: FoundLayout, more: FoundLayout) -> bool:
    """Whether ``fewer`` is ``more`` less some rows that ``more`` rightly added (:func:`_adds_rows_that_fit`) or
    that fit a layout as well with the others (a page whose three rhythm strips stand 110 px apart, their pitch set
    by the signal: its six rows fit 3x4+II,V1,V5 at 0.92, less surely than the weak peaks' four rows fit 3x4+II, at
    0.92 too, since 6x2 competes with six rows)."""
    return more.layout_name is not None and _keeps_rows(more, fewer) and (
        max(fewer.fits.values()) <= max(more.fits.values()) or _adds_rows_that_fit(more, fewer))


def _adds_rows_that_fit(more: FoundLayout, fewer: FoundLayout) -> bool:
    """Whether ``more`` keeps every row of ``fewer`` (within MIN_PITCH_PX), adds rows, and its best layout fits
    better, or at least RETRY_BELOW well with a row in ``fewer``'s missing-row gap (:func:`_row_gap`). Its
    confidence may still be lower: that also weighs two layouts of its row count against each other (6x2 and
    3x4+II,V1,V5, which the bars and names settle later), while the question is whether the rows it adds are the
    page's (a 6x2 page whose flat top row only the weak peaks hold: its other five rows fit 3x4+II,V1 at 0.73, its
    six rows 6x2 at 1.0)."""
    if more.layout_name is None or not _keeps_rows(more, fewer):
        return False
    ys = np.array([r.y_px for r in more.rows])
    better, gap = max(more.fits.values()) > max(fewer.fits.values()), _row_gap(fewer)
    fills = gap is not None and bool(np.any((ys > gap[0] + MIN_PITCH_PX) & (ys < gap[1] - MIN_PITCH_PX)))
    return better or (fills and max(more.fits.values()) >= RETRY_BELOW)


def _surest_reading(sheet_rgb: np.ndarray, dim: bool) -> FoundLayout:
    """The surer of the readings of the faint ink's (``dim``: the dim ink's) strong and weak peaks."""
    ink, text = ink_masks(sheet_rgb, faint_ink=True, dim=dim)
    profile = _row_profile(ink)
    meter = _RowMeter(ink)
    return max((_read(sheet_rgb, meter, text, profile, level)[0] for level in (ROW_STRENGTH, WEAK_ROW_STRENGTH)),
               key=lambda r: r.confidence)


def _orders_of(name: str) -> list[str]:
    """``name`` and the known layouts of its geometry with another lead order: its Cabrera variant (where
    :func:`common.layouts.get_layout` knows one) and, with two or more rhythm strips, every other order of them
    (``/rhythm=``: 3x4 with strips V1, II, V5 as many printers draw them)."""
    if "/cabrera" in name or "/rhythm=" in name:
        return [name]
    base, gap = base_name(name), gap_mm_of(name)
    names = [name]
    if base in CABRERA_BASES:
        names.append(layout_name(base, cabrera_order=True, gap_mm=gap))
    own = rhythm_leads(get_layout(base))
    if 1 < len(own) <= MAX_STRIPS_ORDERED:
        names += [layout_name(base, gap_mm=gap, rhythm=order) for order in permutations(own) if order != own]
    return names


def printed_name(panel) -> str:
    """The name a panel prints: its lead, "-aVR" for an inverted aVR (Cabrera's)."""
    return "-" + panel.lead if getattr(panel, "inverted", False) else panel.lead


def name_panels(found: FoundLayout, sheet_rgb: np.ndarray, reader: LeadNameReader) -> FoundLayout:
    """``found`` with its panels' printed names read (``FoundRow.names``), and the layout they choose.

    Every known layout that fits within NAME_TIE of the best fit, and its other lead orders (:func:`_orders_of`),
    is a candidate, placed as :func:`_place` places it; its agreement is the mean probability, in the names read,
    of the names it prints where it prints other names than the best fit (all read on the side of the baseline
    where the best fit's panels show more name). A candidate replaces the best fit only when it agrees at least
    NAME_AGREE and NAME_SWITCH more than the best fit's own names there (a page whose names are unreadable keeps
    its geometry's choice). A layout whose geometry fits worse than that, but fits, may replace it too where the
    best fit's own names there are read at most NAME_CONTRADICTED. The chosen layout's panels take the names read
    at least NAME_CONFIDENT surely as their leads, and the layout's own elsewhere (:func:`_sure_leads`); a page
    without a layout keeps its measured runs, leads None."""
    if not found.rows:
        return found
    starts = np.array([r.runs[0][0] for r in found.rows])
    ends = np.array([r.runs[-1][1] for r in found.rows])
    panels: dict = {}  # candidate layout (None: the measured runs) -> per row its (x_start, x_end, lead)s
    tied: dict = {}  # candidate layout -> whether it fits within NAME_TIE of the best fit
    if found.layout_name is None:
        panels[None] = [[(a, b, None) for a, b in r.panels] for r in found.rows]
    else:
        best_fit = found.fits[found.layout_name]
        for name, fit in found.fits.items():
            if fit <= 0:
                continue
            for variant in _orders_of(name):
                tied[variant] = fit >= best_fit - NAME_TIE or name == found.layout_name
                layout = get_layout(variant)
                seconds = np.array([layout.row_duration_s(k) for k in range(layout.n_rows)])
                x0, px_per_s, agree, _ = _place(starts, ends, seconds)
                if agree is None:
                    continue
                panels[variant] = [[(x0 + p.x_offset_s * px_per_s, x0 + (p.x_offset_s + p.duration_s) * px_per_s,
                                     printed_name(p)) for p in layout.row_panels(k)] for k in range(layout.n_rows)]
    places = sorted({(k, round(a)) for rows in panels.values() for k, row in enumerate(rows) for a, _, _ in row})
    index = {place: i for i, place in enumerate(places)}
    probs = reader.probabilities(sheet_rgb, np.array([(x, found.rows[k].y_px) for k, x in places], np.float64))
    best = found.layout_name
    own = [index[(k, round(a))] for k, row in enumerate(panels[best]) for a, _, _ in row]
    side = int(np.argmax((1.0 - probs[own, :, NAME_NONE]).sum(axis=0)))
    probs = probs[:, side]

    def printed(name: str) -> set:
        return {(k, round(a), lead) for k, row in enumerate(panels[name]) for a, _, lead in row}

    def agreement(names: set) -> float:
        return float(np.mean([probs[index[(k, a)], NAMES.index(lead)] for k, a, lead in names]))

    chosen = best
    if best is not None:
        # each challenger against the best fit on the panels where the two print different names (a rhythm
        # strip order differs in two of fifteen panels: a mean over them all would drown it)
        scores = {}
        for name in panels:
            own, other = printed(name) - printed(best), printed(best) - printed(name)
            if own and other:
                scores[name] = (agreement(own), agreement(other))
        # a tied challenger needs its names read NAME_AGREE and NAME_SWITCH more than the best fit's; one whose
        # geometry fits worse needs the best fit's names contradicted too (read at most NAME_CONTRADICTED)
        for challengers in ({n: v for n, v in scores.items() if tied[n]},
                            {n: v for n, v in scores.items() if not tied[n] and v[1] <= NAME_CONTRADICTED}):
            if challengers:
                challenger = max(challengers, key=lambda n: challengers[n][0] - challengers[n][1])
                mine, theirs = challengers[challenger]
                if mine >= NAME_AGREE and mine - theirs >= NAME_SWITCH:
                    chosen = challenger
                    break
    names = [tuple((NAMES[int(p.argmax())], float(p.max())) for p in (probs[index[(k, round(a))]] for a, _, _ in row))
             for k, row in enumerate(panels[chosen])]
    leads = None if chosen is None else _sure_leads(names, panels[chosen])
    rows = []
    for k, (row, measured) in enumerate(zip(panels[chosen], found.rows, strict=True)):
        extents = measured.panels if chosen == best else tuple((a, b) for a, b, _ in row)
        rows.append(replace(measured, panels=extents, leads=None if leads is None else leads[k], names=names[k]))
    if chosen == best:
        return replace(found, rows=tuple(rows))
    layout = get_layout(chosen)
    seconds = np.array([layout.row_duration_s(k) for k in range(layout.n_rows)])
    x0, px_per_s, _, _ = _place(starts, ends, seconds)
    return replace(found, layout_name=chosen, rows=tuple(rows), x0_px=float(x0), px_per_s=float(px_per_s))


def _sure_leads(names: list[tuple], layout_rows: list[list[tuple]]) -> list[tuple[str, ...]]:
    """Per row the panels' leads: a name read at least NAME_CONFIDENT surely where it is a lead, the layout's own
    elsewhere; a sure name that another panel prints by the layout is taken only where that does not give the page
    the lead more often than the layout prints it (a V6 misread as V5 beside the V5 panel stays V6)."""
    printed = [[lead for _, _, lead in row] for row in layout_rows]
    sure = [[n if c >= NAME_CONFIDENT and n != "none" else lead for (n, c), lead in zip(row, own, strict=True)]
            for row, own in zip(names, printed, strict=True)]
    taken = Counter(n for row in sure for n in row)
    allowed = Counter(n for row in printed for n in row)
    return [tuple((n if n == lead or taken[n] <= max(allowed[n], 1) else lead).lstrip("-")  # -aVR is lead aVR, inverted
                  for n, lead in zip(row, own, strict=True)) for row, own in zip(sure, printed, strict=True)]


def _read(sheet_rgb: np.ndarray, meter: _RowMeter, text: np.ndarray, profile: np.ndarray,
          strength: float) -> tuple[FoundLayout, bool]:
    """The layout read from the profile's peaks at least ``strength`` of its strongest, and whether a row
    between the rows found was lost. Before close peaks are split (:func:`_split_close`) every peak is measured
    in its own territory: the ruled lines among them are taken out of the ink (a time axis ruled between two
    rows, its ink piled on one y, outweighs both rows' peaks), and which are trace tells what a split drops."""
    peaks, measured = _measured_peaks(meter, profile, strength)
    ruled = _ruled_lines(_sub_px(profile, peaks), measured)
    if ruled:
        meter = _RowMeter(_erase_lines(meter.ink, [measured[k] for k in ruled]))
        profile = _row_profile(meter.ink)
        peaks, measured = _measured_peaks(meter, profile, strength)
    peaks = _split_close(peaks, profile, [r is not None and r.is_trace for r in measured], meter.ink)
    rows, lost_a_row = _rows_of_trace(meter, _sub_px(profile, peaks))
    return _reading(sheet_rgb, text, rows), lost_a_row


class _RowMeter:
    """The rows of one ink mask measured (:func:`_measure_row`), each baseline and territory once: a reading
    measures its peaks, then its rows again after every drop, and a retry's weak peaks leave most territories as
    they were (half the finder's time went to measuring rows, each of them two to four times)."""

    def __init__(self, ink: np.ndarray):
        self.ink = ink
        self._measured: dict = {}

    def __call__(self, ys: list[float]) -> list[_RowInk | None]:
        out = []
        for y, band in zip(ys, _territories(ys, self.ink.shape[0]), strict=True):
            if (y, band) not in self._measured:
                self._measured[y, band] = _measure_row(self.ink, y, band)
            out.append(self._measured[y, band])
        return out


def _measured_peaks(meter: _RowMeter, profile: np.ndarray, strength: float) -> tuple[list[int], list]:
    """The profile's peaks (:func:`_find_row_peaks`) and each one's ink measured in its territory."""
    peaks = _find_row_peaks(profile, strength)
    return peaks, meter(_sub_px(profile, peaks))


def _erase_lines(ink: np.ndarray, lines: list[_RowInk]) -> np.ndarray:
    """``ink`` without the 3 px band at each of ``lines``' baselines."""
    ink = ink.copy()
    for line in lines:
        y_line = int(round(line.y))
        ink[max(y_line - 1, 0) : y_line + 2] = 0
    return ink


def _reading(sheet_rgb: np.ndarray, text: np.ndarray, rows: list[_RowInk]) -> FoundLayout:
    """The found layout of these rows: the best-fitting known layout, or none."""
    if not rows:
        return FoundLayout(None, 0.0, (), {name: 0.0 for name in LAYOUTS}, None, None)
    fits, placements = _fit_layouts(sheet_rgb, text, rows)
    ranked = sorted(fits, key=fits.get, reverse=True)
    best, second = fits[ranked[0]], fits[ranked[1]]
    if best <= 0:
        return FoundLayout(None, 0.0, tuple(_found_row(r, k, None, None, None) for k, r in enumerate(rows)), fits,
                           None, None)
    name = ranked[0]
    confidence = best * (MARGIN_FLOOR + (1 - MARGIN_FLOOR) * (best - second) / best)
    x0, px_per_s = placements[name]
    return FoundLayout(name, float(confidence),
                       tuple(_found_row(r, k, name, x0, px_per_s) for k, r in enumerate(rows)), fits, float(x0),
                       float(px_per_s))


def _spacing_spread(ys) -> float:
    """Coefficient of variation of the gaps between the sorted ``ys`` (0 with fewer than two gaps)."""
    gaps = np.diff(np.sort(np.asarray(ys, dtype=np.float64)))
    return float(np.std(gaps) / np.mean(gaps)) if gaps.size >= 2 else 0.0


def _ruled_lines(ys: list[float], measured: list[_RowInk | None]) -> list[int]:
    """Indices of the peaks that are ruled lines: their ink only the 3 px band at their baseline on RULED_SHARE
    of their columns, unless they are what keeps the rows evenly spaced. A lead flat over a whole 12x1 row reads
    like a ruled line (factory pages: 0.63-0.79), but it stands one row pitch from its neighbours; time axes ruled
    under each row space the peaks unevenly (a row and its axis closer than two rows), and taking them out evens
    the spacing."""
    flat = [k for k, r in enumerate(measured) if r is not None and r.ruled >= RULED_SHARE]
    rest = [y for k, y in enumerate(ys) if k not in flat]
    if flat and _spacing_spread(ys) + EVEN_MARGIN < _spacing_spread(rest):
        return []
    return flat


def _rows_of_trace(meter: _RowMeter, peaks: list[float]) -> tuple[list[_RowInk], bool]:
    """The peaks that are rows of trace: at least MIN_ROW_S of it, not stacked like lines of text, and at least
    ROW_SHARE as long as the longest row (a line of text under the chart is shorter). Dropping a peak widens its
    neighbours' territories, so the rest are measured again until none is dropped. Also: whether a peak between
    the rows kept was dropped (a row whose trace the ink mask lost: a faint trace). A ruled line (:func:`_ruled_lines`)
    is taken out of the ink as well as dropped: in the widened territory of the row above it, it would stack
    under that row's trace like a second line of text. A row dropped with at least FAINT_ROW_SHARE of the longest
    row's trace counts as lost too (a photo's row whose middle the ink mask lost).
    """
    ys = list(peaks)
    ruled_ys: set[float] = set()
    faint: set[float] = set()
    for _ in range(len(peaks) + 1):
        measured = meter(ys)
        ruled = _ruled_lines(ys, measured)
        if ruled:
            meter = _RowMeter(_erase_lines(meter.ink, [measured[k] for k in ruled]))
            ruled_ys.update(ys[k] for k in ruled)
        trace = [r is not None and r.is_trace and k not in ruled for k, r in enumerate(measured)]
        longest = max((r.length_px for r, t in zip(measured, trace, strict=True) if t), default=0.0)
        keep = [t and r.length_px >= ROW_SHARE * longest for r, t in zip(measured, trace, strict=True)]
        faint.update(y for y, r, t, k in zip(ys, measured, trace, keep, strict=True)
                     if t and not k and r.length_px >= FAINT_ROW_SHARE * longest)
        if all(keep):
            rows = [r for r in measured if r is not None]
            lost = set(peaks) - set(ys) - ruled_ys
            return rows, bool(rows) and (any(rows[0].y < y < rows[-1].y for y in lost) or bool(faint))
        ys = [y for y, k in zip(ys, keep, strict=True) if k]
    return [], False


def _found_row(row: _RowInk, k: int, layout_name: str | None, x0: float | None, px_per_s: float | None) -> FoundRow:
    """Sheet px; the panels are the layout's, placed at ``x0`` and ``px_per_s``, or the measured runs without
    a layout."""
    runs = tuple((float(s) * _REDUCE, float(e) * _REDUCE) for s, e in row.runs)
    pulse = None if row.pulse is None else tuple(float(v) * _REDUCE for v in row.pulse)
    y = (row.y + 0.5) * _REDUCE - 0.5
    if layout_name is None or x0 is None or px_per_s is None:
        return FoundRow(float(y), runs, None, pulse, row.pulse_outside, runs)
    panels = get_layout(layout_name).row_panels(k)
    extents = tuple((x0 + p.x_offset_s * px_per_s, x0 + (p.x_offset_s + p.duration_s) * px_per_s) for p in panels)
    return FoundRow(float(y), extents, tuple(p.lead for p in panels), pulse, row.pulse_outside, runs)
