"""From row traces in sheet pixels to panels in mV at the record's sample times.

* Scales come from the measured ``px_per_mm`` through :class:`~common.geometry.SheetGeometry`
  (``CANONICAL.with_px_per_mm``): px per s for time, px per mV for voltage.
* Time origin: a row's trace starts at the chart origin ``x0`` and ends at the layout-known distance
  after it, so each row gives two estimates (its confident trace's start, and its end minus the row's
  length). A row whose two agree uses their mean; otherwise (a trace that starts late or ends early, clutter
  at one end) the one that agrees with the other rows' consensus, else the consensus itself (where no row agrees
  with itself, the median of the largest group of the rows' likelier estimates). Short pieces of
  ink alone beyond a gap at a row's end (a scan's dark border), nor ink beyond a gap that runs on to the sheet's
  edge (a photo's background where the page ends short of the sheet), count as its end. The ends are moved
  in by a fraction of the stroke width measured on the sheet (ink runs past the first and last sample), and
  rows that agree share one origin: a timing error of 1 px costs ~1.3 dB (``benchmarks.time_origin``).
  Where the sheet shows panel separators (:mod:`stage2_signal.separators`), they re-time the rows: each
  bar stands at a known time and is found to ~0.05 px, against ~1 px for a trace's end. At 250 Hz a sample
  is 0.8 px wide and the metric forgives only whole-sample lags, so tenths of a pixel matter there.
  Bars that move from row to row by a fixed amount per px down the sheet (a sheet turned a tenth of a degree
  off) time each row by its own. Where no bar stands where the sheet's 25 mm/s expects it, the chart may be
  drawn at another speed on the sheet (a scan without a grid is scaled by its calibration pulses, 1-4 % off):
  the speeds the bars and the rows' lengths suggest are tried, and one that enough bars confirm is taken
  (:func:`rescaled_chart`).
* Bars drawn snapped to the pixel lattice (matplotlib, so ECG-Image-Kit, snaps axis-aligned lines: every bar
  centre of a page then shares one sub-pixel phase) place the origin only to +-0.5 px. Where the samples are
  wide enough to show (>= ``vertex_phase_min_step_px``), the origin then moves by at most half a sample to
  where the readings' total variation peaks: a trace drawn as a polyline through the samples has its corners
  at the sample times, and a reading between them cuts the corners. A whole-sample error is left (the metric
  forgives it; the bars keep the origin within half a sample).
* ECG-Image-Kit starts its rows a whole number of 0.2 s from the paper's left edge, where its grid starts: on a
  big-box line. Where a page's bars are crisp (:func:`crisp_bars`: drawn snapped at the sheet's own resolution,
  as matplotlib draws them; a resampled scan or another renderer's anti-aliased bars are not) and the bars'
  origin lies within ``grid_origin_tol_px`` of such a line, the origin is put on the line (held-out
  ECG-Image-Kit pages: 22.06 -> 22.75 dB, the score with the labels' origin; no factory or other-renderer page
  qualified). The trace's corners are then not consulted.
* Baseline (0 mV line): the mode of the trace's y histogram over each panel (or row): the isoelectric
  level. The metric removes one constant per lead, so this matters little for the score, but it makes the
  output absolute and keeps the two copies of a lead comparable.
* Each panel is sampled at its lead's sample times ``i / fs`` for the samples it prints, reading the
  row's polyline (see :mod:`stage2_signal.extract`) from that panel's columns only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from common.geometry import CANONICAL, PULSE_HEIGHT_MV, SheetGeometry
from common.layouts import MAX_GAP_MM, RECORD_DURATION_S, Layout, Panel, gap_mm_of, get_layout, with_gap_name
from stage2_signal.extract import RowTrace
from stage2_signal.separators import bar_is_crisp, find_bars
from stage2_signal.settings import Settings

BASELINE_MODES = ("panel", "row")
SHEET_EDGE_PX = 6.0  # sheet px: a trace span ending this close to the sheet's right edge was cut by it (spans end
# 1-3 px inside it, by the stroke's caps and the maps' columns)


@dataclass(frozen=True)
class CalibrateConfig(Settings):
    SECTION = "calibrate"

    baseline: str = "panel"  # 0 mV line per "panel" or per "row"
    edge_level: float = 0.5  # confidence at which a row's trace starts / ends
    min_run_px: float = 8.0  # a start (end) must be followed (preceded) by this much confident trace
    search_margin: float = 0.15  # fraction of the row length searched beyond the best-fitting window
    shared_x0_tol_px: float = 8.0  # rows whose origins agree within this share their mean (layouts start every
    # row at one origin; one shared value keeps the rows, and so the copies fused across them, in step)
    stroke_inset: float = 0.3  # a trace's ends, as the maps see them, lie this fraction of the measured stroke
    # width (stage2_signal.stroke) beyond its first / last sample (line caps; fitted on factory pages)
    stray_gap_px: float = 24.0  # a short piece of confident ink alone at a row's end, beyond a gap longer than
    stray_piece_px: float = 60.0  # this, and shorter than this, is not the trace (a scan's dark border, a label)
    edge_trace_share: float = 0.2  # ... nor is a piece beyond such a gap running on to the sheet's edge, unless it
    # is this share of the row's length (a photo's background: 60 px; a panel of a four-column row: 0.23 of it)
    x0_tol_px: float = 3.0  # start and end estimates of x0 agree within this
    separators: bool = True  # re-time the rows from the panel separators where the sheet shows them
    bar_band_mv: float = 0.18  # a separator covers at least +-this much around its row's 0 mV line
    bar_search_px: float = 10.0  # and stands within this of where the trace ends put the panel boundary
    bar_tol_px: float = 0.3  # bars that agree within this with the line most of them lie on are used
    bar_min_count: int = 3  # and there must be at least this many of them (and half of those found)
    bar_drift_px: float = 1.0  # bars drifting apart by more than this over 10 s also re-scale time
    bar_min_count_drift: int = 6  # if at least this many agree (a slope from three bars is too easily chance)
    chart_scale_min: float = 0.003  # where no bars agree at the sheet's 25 mm/s, chart speeds this far (a fraction)
    chart_scale_max: float = 0.06  # to this far from it are tried (rescaled_chart; a scan without a grid, scaled
    # by its calibration pulses, is 1-4 % off)
    bar_guard: bool = True  # samples closer than half a found separator's width plus bar_guard_px (sheet px) to it
    # hold the value of the nearest sample beyond: the bar's ink hides the trace there and the maps follow the
    # bar (ECG-Image-Kit draws bars 3x the trace's width across the baseline at every lead change)
    bar_guard_px: float = 0.0
    bar_guard_conf: float = 0.1  # and their confidence is scaled by this (a second copy of the lead is preferred)
    pulse_guard: bool = True  # a calibration pulse whose falling edge stands on a row's first sample (ECG-Image-Kit
    # draws it abutting the trace) is guarded like a separator bar: the maps follow its edge down to 0 mV
    pulse_band_lo_mv: float = 0.2  # the edge covers the span from this to pulse_band_hi_mv below the pulse's top
    pulse_band_hi_mv: float = 0.8  # (the pulse is 1 mV high)
    pulse_top_tol_mv: float = 0.5  # the top is looked for this far around 1 mV above the trace's baseline
    pulse_search_px: float = 4.0  # and stands within this of the row's first sample (a pulse with a foot of its
    # own ends a millimetre or more before it, where no sample is read)
    pulse_cover: float = 0.9  # the edge's column is ink-dark over at least this fraction of the band
    pulse_top_s: float = 0.15  # and the pulse's top runs left from it at 1 mV for at least this long
    pulse_guard_px: float = 0.5  # samples up to the edge's centre plus this are hidden by it (its ink's right half)
    grid_origin_tol_px: float = 0.6  # with crisp bars (below), a row origin this close to a big-box grid line is put on
    # it (0: never): ECG-Image-Kit starts its rows a whole number of 0.2 s from the paper's edge, where its grid
    # starts, and its bars give the origin only to +-0.5 px, while a tenth of a px costs dB at 250-500 Hz
    crisp_bar_share: float = 0.75  # and at least this share of its bars are crisp (drawn snapped, not resampled)
    vertex_phase: bool = True  # with snapped bars (above), take the sub-sample phase from the trace's corners
    vertex_phase_min_step_px: float = 0.5  # only where a sample is at least this wide (sheet px): denser
    # corners blur under the stroke and the peak is noise (500+ Hz pages lost up to 0.4 dB)
    vertex_phase_steps: int = 12  # phases tried across one sample
    snapped_bar_spread_px: float = 0.12  # bars count as snapped when their centres' sub-pixel phases all lie
    # within this span (ECG-Image-Kit's clean pages: 0-0.08 px; bars drawn where they fall, by the factory and
    # the other renderer: 0.19 px and more, since their spacing is not a whole number of px)
    hist_bin_px: float = 0.25
    hist_sigma_px: float = 1.0
    panel_margin_cols: float = 0.0  # a panel reads the columns whose footprint overhangs its ends by at most
    # this many column widths (beyond half the gap between panels); the next panel's trace may share the others
    row_end_margin_cols: float = 1.0  # the row's first and last panel also read this many more columns outwards
    panel_gap_reach: float = 0.45  # with blank paper between panels, each panel's own ends are looked for this
    # fraction of the narrowest gap beyond where the layout puts them (see corrected_gap)
    smooth_px: float = 0.3  # Gaussian smoothing of each panel's reading along time, sigma in sheet px: the
    # column readings jitter by a fraction of a pixel, while an ECG drawn at 25 mm/s holds nothing that narrow

    def __post_init__(self) -> None:
        if self.baseline not in BASELINE_MODES:
            raise ValueError(f"CalibrateConfig.baseline must be one of {BASELINE_MODES}, got {self.baseline!r}")
        if not 0 < self.edge_level < 1:
            raise ValueError(f"CalibrateConfig.edge_level must be in (0, 1), got {self.edge_level}")
        if self.smooth_px < 0:
            raise ValueError(f"CalibrateConfig.smooth_px must be >= 0, got {self.smooth_px}")
        if self.vertex_phase_steps < 2:
            raise ValueError(f"CalibrateConfig.vertex_phase_steps must be >= 2, got {self.vertex_phase_steps}")
        if not 0 <= self.pulse_band_lo_mv < self.pulse_band_hi_mv:
            raise ValueError("CalibrateConfig needs 0 <= pulse_band_lo_mv < pulse_band_hi_mv, got "
                             f"{self.pulse_band_lo_mv}, {self.pulse_band_hi_mv}")



MIN_INK_CONTRAST = 0.25  # ink is told from a background (paper, grid line) darker than it by this share of its darkness


def sheet_geometry(px_per_mm: float, mm_per_mv: float = CANONICAL.mm_per_mv) -> SheetGeometry:
    """The canonical paper's speed at the measured resolution, at the chart's gain (``mm_per_mv``: the
    calibration pulses' height per mV, 10 unless a page shows another)."""
    return replace(CANONICAL.with_px_per_mm(float(px_per_mm)), mm_per_mv=float(mm_per_mv))


@dataclass(frozen=True)
class PanelReading:
    """One panel read off the sheet: ``mv`` and ``conf`` at record samples ``i0 .. i1 - 1``."""

    panel: Panel
    i0: int
    i1: int
    mv: np.ndarray
    conf: np.ndarray
    baseline_y_px: float


def n_record_samples(fs_hz: float) -> int:
    return int(round(RECORD_DURATION_S * fs_hz))


def panel_x_px(panel: Panel, t_s, x0_px, geom: SheetGeometry, time_scale: float = 1.0):
    """Sheet x of record time ``t_s`` (s) drawn in ``panel``, its row's chart origin at ``x0_px``; ``time_scale``
    stretches the time axis (sheet px per s over the geometry's)."""
    return x0_px + time_scale * geom.s_to_px(panel.x_offset_s + np.asarray(t_s, dtype=np.float64) - panel.t0_s)


def row_extent_offsets(layout: Layout, row: int, fs_hz: float, geom: SheetGeometry) -> tuple[float, float]:
    """Sheet x of the row's first and last drawn sample, relative to the chart origin x0."""
    n = n_record_samples(fs_hz)
    first, last = np.inf, -np.inf
    for panel in layout.row_panels(row):
        i0, i1 = panel.sample_range(fs_hz, n)
        if i1 <= i0:
            continue
        first = min(first, float(panel_x_px(panel, i0 / fs_hz, 0.0, geom)))
        last = max(last, float(panel_x_px(panel, (i1 - 1) / fs_hz, 0.0, geom)))
    return first, last


def _drop_stray_ends(on: np.ndarray, lo: int, hi: int, max_gap: int, min_piece: int,
                     min_kept: int, min_edge_trace: int | None = None) -> tuple[int, int]:
    """Columns [lo, hi] narrowed past short pieces of ``on`` columns (under ``min_piece``) that sit alone at
    either end, beyond a gap of more than ``max_gap`` columns, and past such pieces running on to the sheet's
    edge (under ``min_edge_trace`` columns; any length where None), as long as the rest spans ``min_kept``
    columns (a row broken into short pieces everywhere is left whole)."""
    idx = np.flatnonzero(on[lo : hi + 1]) + lo
    if idx.size == 0:
        return lo, hi
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [idx.size - 1]])
    a, b = 0, first.size - 1
    # a piece running on to the sheet's edge is no trace either (a dark background or border where the photo's
    # page ends short of the sheet), unless it is as long as a panel: a chart wider than the sheet, its first
    # panel cut by the sheet's edge and parted from the next by a gap between columns
    edge_limit = on.size if min_edge_trace is None else min_edge_trace

    def short(k: int) -> bool:
        return idx[last[k]] - idx[first[k]] + 1 < min_piece

    def edge(k: int, at: int) -> bool:
        return idx[at] in (0, on.size - 1) and idx[last[k]] - idx[first[k]] + 1 < edge_limit

    while a < b and (short(a) or edge(a, first[a])):
        a += 1
    while b > a and (short(b) or edge(b, last[b])):
        b -= 1
    if idx[last[b]] - idx[first[a]] + 1 < min_kept:
        return lo, hi
    return int(idx[first[a]]), int(idx[last[b]])


def trace_span(trace: RowTrace, length_px: float, cfg: CalibrateConfig,
               inset_px: float = 0.0) -> tuple[float, float] | None:
    """Sheet x where the row's confident trace starts and ends (None when the row holds no trace), each moved
    in by ``inset_px`` (the ink's run past the first and last sample).

    The row's extent is looked for near the window of ``length_px`` holding the most confidence, so
    confident clutter far from the trace does not move it.
    """
    c = np.asarray(trace.conf, dtype=np.float64)
    x = trace.x
    confident = c[c >= trace.cfg.min_confidence]
    if confident.size == 0:
        return None
    # a trace column is one at least edge_level as confident as the row's typical one
    on = c >= cfg.edge_level * min(1.0, 2.0 * float(np.median(confident)))
    if not on.any():
        return None
    cw = trace.col_width
    n_win = max(1, int(round(length_px / cw)))
    csum = np.concatenate([[0.0], np.cumsum(on)])
    if n_win < c.size:
        sums = csum[n_win:] - csum[:-n_win]
        best = np.flatnonzero(sums >= sums.max() - 0.5)
        a = int(round(0.5 * (best[0] + best[-1])))
    else:
        a = 0
    margin = int(round(cfg.search_margin * n_win))
    lo, hi = max(0, a - margin), min(c.size - 1, a + n_win + margin)
    lo, hi = _drop_stray_ends(on, lo, hi, max(1, int(round(cfg.stray_gap_px / cw))),
                              max(1, int(round(cfg.stray_piece_px / cw))), n_win // 2,
                              max(1, int(round(cfg.edge_trace_share * n_win))))
    run = max(1, int(round(cfg.min_run_px / cw)))
    # fraction of confident columns in the run of ``run`` columns starting (ending) at each column
    frac_fwd = (csum[np.minimum(np.arange(c.size) + run, c.size)] - csum[np.arange(c.size)]) / run
    frac_bwd = (csum[np.arange(c.size) + 1] - csum[np.maximum(np.arange(c.size) + 1 - run, 0)]) / run
    starts = np.flatnonzero(on[lo : hi + 1] & (frac_fwd[lo : hi + 1] >= 0.8)) + lo
    ends = np.flatnonzero(on[lo : hi + 1] & (frac_bwd[lo : hi + 1] >= 0.8)) + lo
    if starts.size == 0 or ends.size == 0:
        return None
    i_s, i_e = int(starts[0]), int(ends[-1])
    if i_e - i_s < 4:
        return None
    # sub-column ends: the columns around each end hold the covered fraction of their width (presence),
    # so the covered length of the three columns around it places the end
    cover = np.clip(trace.presence, 0.0, 1.0)
    a, b = max(i_s - 1, 0), i_s + 1
    x_start = x[b] + 0.5 * cw - cw * float(cover[a : b + 1].sum())
    a, b = i_e - 1, min(i_e + 1, c.size - 1)
    x_end = x[a] - 0.5 * cw + cw * float(cover[a : b + 1].sum())
    return x_start + inset_px, x_end - inset_px


def _largest_group_median(values: np.ndarray, tol: float, others: np.ndarray | None = None) -> float:
    """Median of the values within ``tol`` of the value that has the most such neighbours, where one value has
    more than any other group. Two rows whose ink runs on to the page's edge (a stain, a dark border) put half the
    picks 130-150 px late on a photo of a stained print, and the median of all fell between the two groups.
    Where groups tie, the one nearest the median of ``others`` (the rows' estimates not picked, e.g. their
    starts) is taken: two of four rows of a moldy scan ran on into mold, and the median of all put the origin
    35 px late. Without ``others``, the median of all."""
    near = np.abs(values[:, None] - values[None, :]) <= tol
    support = near.sum(axis=1)
    groups = sorted({tuple(np.flatnonzero(near[i])) for i in np.flatnonzero(support == support.max())})
    if len(groups) == 1:
        return float(np.median(values[list(groups[0])]))
    if others is None or others.size == 0:
        return float(np.median(values))
    medians = np.array([np.median(values[list(g)]) for g in groups])
    gap = np.abs(medians - float(np.median(others)))
    if np.sum(gap <= gap.min() + tol) > 1:  # the other estimates do not tell the groups apart
        return float(np.median(values))
    return float(medians[int(np.argmin(gap))])


def row_spans(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry, cfg: CalibrateConfig,
              stroke_px: float | None = None) -> list[tuple[float, float, tuple[float, float] | None]]:
    """Per row: its first and last drawn sample's x relative to the chart origin (the layout's), and where its
    confident trace starts and ends on the sheet (:func:`trace_span`, moved in by the stroke's caps; None without
    a trace)."""
    inset = 0.0 if stroke_px is None else cfg.stroke_inset * float(stroke_px)
    out = []
    for row in range(layout.n_rows):
        first, last = row_extent_offsets(layout, row, fs_hz, geom)
        out.append((first, last, trace_span(traces[row], last - first, cfg, inset)))
    return out


def estimate_x0(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry,
                cfg: CalibrateConfig, stroke_px: float | None = None) -> tuple[np.ndarray, list[str]]:
    """Chart origin x0 (sheet px) of every row, and how each was decided ("both", "start", "end", "consensus");
    ``stroke_px``, the measured stroke width, corrects the trace ends for the ink's caps."""
    n_rows = layout.n_rows
    spans = row_spans(traces, layout, fs_hz, geom, cfg, stroke_px)
    cand = [None if span is None else (span[0] - first, span[1] - last) for first, last, span in spans]
    # a trace running on to the sheet's right edge was cut there: its end is the sheet's, not the chart's
    cut = [span is not None and span[1] >= geom.width_px - 1 - SHEET_EDGE_PX for _, _, span in spans]
    own = np.full(n_rows, np.nan)
    for row, cd in enumerate(cand):
        if cd is not None and abs(cd[0] - cd[1]) <= cfg.x0_tol_px:
            own[row] = 0.5 * (cd[0] + cd[1])
    if np.isfinite(own).any():
        consensus = float(np.median(own[np.isfinite(own)]))
    else:
        # no row agrees with itself. A trace longer than the layout says has extra ink before it (a
        # calibration pulse, a lead name): trust its end; a shorter one lost a part: trust its start. A trace cut by
        # the sheet's edge tells no end: shorter than the layout, its start is trusted; longer, it tells nothing
        # where another row does (a stain running from two rows' ends on to the edge timed the page by the edge,
        # 46 px late, and their starts lay in another stain: kp4 10003-0009, -2.6 dB)
        told = [(cd, edge) for cd, edge in zip(cand, cut, strict=True)
                if cd is not None and not (edge and cd[0] <= cd[1])]
        told = told or [(cd, False) for cd in cand if cd is not None]
        picks = [cd[1] if cd[0] < cd[1] else cd[0] for cd, _ in told]
        if not picks:
            raise ValueError("no row of the trace maps holds a trace: cannot find the chart's time origin")
        others = [cd[0] if cd[0] < cd[1] else cd[1] for cd, edge in told if not edge]
        consensus = _largest_group_median(np.asarray(picks, np.float64), cfg.shared_x0_tol_px,
                                          np.asarray(others, np.float64))
    x0 = np.empty(n_rows)
    how = []
    for row, cd in enumerate(cand):
        tol = max(cfg.x0_tol_px, 2.0 * traces[row].col_width)
        if np.isfinite(own[row]):
            x0[row], decided = own[row], "both"
        elif cd is None:
            x0[row], decided = consensus, "consensus"
        else:
            k = int(np.argmin([abs(cd[0] - consensus), abs(cd[1] - consensus)]))
            if abs(cd[k] - consensus) <= tol:
                x0[row], decided = cd[k], ("start", "end")[k]
            else:
                x0[row], decided = consensus, "consensus"
        how.append(decided)
    close = np.abs(x0 - np.median(x0)) <= cfg.shared_x0_tol_px
    x0[close] = float(np.mean(x0[close]))
    return x0, how


def isoelectric_y(y: np.ndarray, cfg: CalibrateConfig) -> float:
    """Mode of a trace's y values (sheet px), refined as the mean of the values near it."""
    y = np.asarray(y, dtype=np.float64)
    y = y[np.isfinite(y)]
    if y.size == 0:
        raise ValueError("no trace values to find a baseline from")
    lo, hi = float(y.min()), float(y.max())
    if hi - lo < cfg.hist_bin_px:
        return float(np.mean(y))
    n_bins = int(np.ceil((hi - lo) / cfg.hist_bin_px)) + 1
    hist = np.bincount(((y - lo) / cfg.hist_bin_px).astype(np.int64), minlength=n_bins).astype(np.float64)
    hist = gaussian_filter1d(hist, cfg.hist_sigma_px / cfg.hist_bin_px, mode="constant")
    mode = lo + (int(np.argmax(hist)) + 0.5) * cfg.hist_bin_px
    near = np.abs(y - mode) <= 2.0 * cfg.hist_sigma_px
    return float(np.mean(y[near])) if near.any() else mode


def _guard_bars(mv: np.ndarray, conf: np.ndarray, xs: np.ndarray, bars: list, cfg: CalibrateConfig) -> None:
    """In place: samples under a separator bar ((centre, width) in sheet px) hold the nearest value beyond it."""
    for centre, width in bars:
        hidden = np.abs(xs - centre) <= 0.5 * width + cfg.bar_guard_px
        if not hidden.any() or hidden.all():
            continue
        seen = np.flatnonzero(~hidden)
        idx = np.flatnonzero(hidden)
        right = np.clip(np.searchsorted(seen, idx), 0, seen.size - 1)
        left = np.clip(right - 1, 0, seen.size - 1)
        nearest = np.where(np.abs(seen[left] - idx) <= np.abs(seen[right] - idx), seen[left], seen[right])
        mv[idx] = mv[nearest]
        conf[idx] *= cfg.bar_guard_conf


def _sliced(trace: RowTrace, keep: np.ndarray) -> RowTrace:
    """The columns ``keep`` (a contiguous bool mask) of ``trace``."""
    arrays = {f.name: getattr(trace, f.name)[keep] for f in fields(trace)
              if isinstance(getattr(trace, f.name), np.ndarray)}
    return replace(trace, **arrays)


def panel_offsets(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry, cfg: CalibrateConfig,
                  x0: np.ndarray, time_scale: float = 1.0, stroke_px: float | None = None) -> dict:
    """(row, col) -> sheet px by which each panel's own trace lies from where the layout puts it (row origin
    ``x0``), for the panels of rows of several: the mean of its trace's start and end offsets where they agree
    within x0_tol_px, else the end nearer the layout's less the typical half-difference of the agreeing panels
    (the ends as the maps see them lie a fraction of a px beyond the first and last sample; a row's first start
    often carries its pulse's lead-out). Ends are looked for within panel_gap_reach of the narrowest gap between
    panels (empty without gaps: abutting panels have no ends of their own)."""
    n = n_record_samples(fs_hz)
    inset = 0.0 if stroke_px is None else cfg.stroke_inset * float(stroke_px)
    rows = [r for r in range(layout.n_rows) if len(layout.row_panels(r)) > 1]
    gaps = [(b.x_offset_s - a.x_offset_s - a.duration_s) * geom.px_per_s * time_scale
            for r in rows for a, b in zip(layout.row_panels(r)[:-1], layout.row_panels(r)[1:], strict=True)]
    if not gaps or min(gaps) <= 0.0:
        return {}
    reach = cfg.panel_gap_reach * min(gaps)
    measured: list[tuple[int, int, float, float]] = []  # (row, col, start offset, end offset) per panel
    for row in rows:
        trace = traces[row]
        for panel in layout.row_panels(row):
            i0, i1 = panel.sample_range(fs_hz, n)
            if i1 - i0 < 2:
                continue
            first, last = (float(v) for v in panel_x_px(panel, np.array([i0, i1 - 1]) / fs_hz, x0[row], geom,
                                                        time_scale))
            keep = (trace.x >= first - reach) & (trace.x <= last + reach)
            if keep.sum() < 8:
                continue
            span = trace_span(_sliced(trace, keep), last - first, cfg, inset)
            if span is not None:
                measured.append((row, panel.col, span[0] - first, span[1] - last))
    agree = [(d1 - d0) / 2 for *_, d0, d1 in measured if abs(d0 - d1) <= cfg.x0_tol_px]
    half = float(np.median(agree)) if agree else 0.0
    return {(row, col): 0.5 * (d0 + d1) if abs(d0 - d1) <= cfg.x0_tol_px else min(d0 + half, d1 - half, key=abs)
            for row, col, d0, d1 in measured}


def corrected_gap(traces: list[RowTrace], layout: Layout, fs_hz: float, px_per_mm: float, cfg: CalibrateConfig,
                  info: dict, mm_per_mv: float = CANONICAL.mm_per_mv) -> Layout | None:
    """The layout's gap variant one or more 0.1 mm steps wider or narrower, when the panels as read (``info``:
    :func:`read_panels`' diagnostics) drift from it by at least half a step per column (the slope over the
    columns of the panels' own offsets, :func:`panel_offsets`, medians over the rows); None when the gap fits.
    A found gap is known to 0.1 mm (0.8 px a gap: 2.4 px by a 3x4 row's last panel), and the rows' origins,
    fitted to rows of the wrong length, are off too; each panel's own ends are too noisy (+-0.5 px) to time it
    by, while the slope over a page's columns came within 0.2 px of the truth on the factory pages looked at."""
    gap_mm = gap_mm_of(layout.name)
    if gap_mm <= 0:
        return None
    geom = sheet_geometry(px_per_mm, mm_per_mv)
    # at the sheet's own time scale: separators at the wrong gap's places are read as a stretched time axis
    offsets = panel_offsets(traces, layout, fs_hz, geom, cfg, np.asarray(info["x0_px"]), 1.0, info["stroke_px"])
    cols = sorted({col for _, col in offsets})
    if len(cols) < 2:
        return None
    medians = [float(np.median([v for (_, c), v in offsets.items() if c == col])) for col in cols]
    slope = float(np.polyfit(cols, medians, 1)[0])  # px per column
    step_px = 0.1 * geom.px_per_mm
    steps = int(round(slope / step_px))
    new_gap = round(gap_mm + 0.1 * steps, 1)
    if steps == 0 or not 0.0 < new_gap <= MAX_GAP_MM:
        return None
    return get_layout(with_gap_name(layout.name, new_gap))  # its Cabrera order and rhythm strips' kept


def _read_at(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry, cfg: CalibrateConfig,
             x0: np.ndarray, time_scale: float = 1.0, bars: dict | None = None,
             ) -> tuple[list[PanelReading], list[str]]:
    """Every panel read at its samples, the chart origin of row r at ``x0[r]``; ``time_scale`` stretches the
    time axis (sheet px per s over the geometry's). ``bars``: (row, col) of a panel that starts at a lead change
    -> (centre, width) of the separator bar found there, whose samples are guarded (:func:`_guard_bars`). Also
    the panels that could not be read, and why."""
    n = n_record_samples(fs_hz)
    readings = []
    unread: list[str] = []
    row_baselines = {}
    for row in range(layout.n_rows):
        trace = traces[row]
        # column centres at most this far beyond a panel's first / last sample belong to it
        margin = 0.5 * time_scale * geom.px_per_s / fs_hz + (cfg.panel_margin_cols - 0.5) * trace.col_width
        conf_ok = (trace.conf >= trace.cfg.min_confidence) & (trace.conf > 0) & ~trace.wide
        if cfg.baseline == "row":
            first, last = row_extent_offsets(layout, row, fs_hz, geom)
            sel = conf_ok & (trace.x >= x0[row] + first) & (trace.x <= x0[row] + last)
            if not sel.any():
                raise ValueError(f"row {row} of the trace maps holds no confident trace")
            row_baselines[row] = isoelectric_y(trace.y_peak[sel], cfg)
        panels = layout.row_panels(row)
        for k, panel in enumerate(panels):
            i0, i1 = panel.sample_range(fs_hz, n)
            if i1 <= i0:
                continue
            t = np.arange(i0, i1) / fs_hz
            xs = panel_x_px(panel, t, x0[row], geom, time_scale)
            # a row's outer ends have no neighbouring panel whose ink could be read instead
            outer = cfg.row_end_margin_cols * trace.col_width
            x_lo = float(xs[0]) - (margin + outer if k == 0 else margin)
            x_hi = float(xs[-1]) + (margin + outer if k == len(panels) - 1 else margin)
            try:
                y, c = trace.sample(xs, x_lo, x_hi)
                if cfg.smooth_px > 0:
                    y = gaussian_filter1d(y, cfg.smooth_px * fs_hz / geom.px_per_s, mode="nearest")
            except ValueError as exc:
                # One unreadable panel (a tear, a stain, a weak map) must not cost the page: the lead reads
                # as a flat line with zero confidence, which fusion and the Einthoven projection fill in
                # from the other leads where they can.
                unread.append(f"panel {panel.lead} (row {row}, column {panel.col}): {exc}")
                readings.append(PanelReading(panel, i0, i1, np.zeros(i1 - i0), np.zeros(i1 - i0), float("nan")))
                continue
            if cfg.baseline == "row":
                base = row_baselines[row]
            else:
                sel = conf_ok & (trace.x >= x_lo) & (trace.x <= x_hi)
                base = isoelectric_y(trace.y_peak[sel] if sel.sum() >= 8 else y, cfg)
            mv = panel.sign * geom.y_to_mv(y, base)  # an inverted panel (Cabrera's -aVR) prints -lead
            conf = np.clip(c, 0.0, 1.0)
            if bars:
                near = [bars[key] for key in ((row, panel.col), (row, panels[k + 1].col if k + 1 < len(panels) else -1))
                        if key in bars]
                if near:
                    mv, conf = np.array(mv, dtype=np.float64), np.array(conf, dtype=np.float64)
                    _guard_bars(mv, conf, xs, near, cfg)
            readings.append(PanelReading(panel, i0, i1, mv, conf, base))
    if len(unread) == len(readings):
        raise ValueError("no panel holds a confident trace: " + "; ".join(unread[:3]))
    return readings, unread


def boundary_bars(sheet_rgb: np.ndarray, readings: list[PanelReading], x0: np.ndarray, geom: SheetGeometry,
                  cfg: CalibrateConfig, search_px: float | None = None) -> dict:
    """(row, col) of each panel that starts at a lead change -> (centre, width) in sheet px of the separator
    bar found there (:func:`stage2_signal.separators.find_bars`, within ``search_px``, by default
    ``bar_search_px``, of where ``x0`` puts it; boundaries without one are left out)."""
    bounds = [rd for rd in readings if rd.panel.col > 0 and np.isfinite(rd.baseline_y_px)]
    if not bounds:
        return {}
    expected = np.array([x0[rd.panel.row] + float(panel_x_px(rd.panel, rd.panel.t0_s, 0.0, geom)) for rd in bounds])
    found, widths = find_bars(sheet_rgb, expected, [rd.baseline_y_px for rd in bounds],
                              geom.mv_to_px(cfg.bar_band_mv), cfg.bar_search_px if search_px is None else search_px,
                              (geom.small_box_mm * geom.px_per_mm, geom.big_box_mm * geom.px_per_mm), with_width=True)
    return {(rd.panel.row, rd.panel.col): (float(x), float(wd))
            for rd, x, wd in zip(bounds, found, widths, strict=True) if np.isfinite(x)}


def top_ink_rows(inked: np.ndarray, y: int) -> np.ndarray:
    """Per column, whether rows ``y`` or ``y + 1`` of ``inked`` (an anti-aliased horizontal stroke) are inked."""
    return inked[y] | inked[min(y + 1, inked.shape[0] - 1)]


def pulse_edges(sheet_rgb: np.ndarray, readings: list[PanelReading], x0: np.ndarray, geom: SheetGeometry,
                cfg: CalibrateConfig) -> dict:
    """(row, 0) of each row whose calibration pulse falls onto its first samples -> (centre, width) in sheet px of
    the span its falling edge hides: from before the row's start to the edge's centre plus ``pulse_guard_px``.

    The pulse is found by its top, a horizontal stroke 1 mV above its foot that runs left from the row's start for
    at least ``pulse_top_s`` (looked for within ``pulse_top_tol_mv`` of 1 mV above the trace's baseline, which
    need not be the pulse's foot), and then by its falling edge, a column within ``pulse_search_px`` of the row's
    start that is ink-dark over ``pulse_cover`` of the span from ``pulse_band_lo_mv`` to ``pulse_band_hi_mv`` below
    the top. Ink is measured above the background of its column and of its row over the whole sheet, so grid
    lines do not count; a steep QRS, a lead name or a pulse that ends before the row has no such top.
    """
    h, w = sheet_rgb.shape[:2]
    search = int(np.ceil(cfg.pulse_search_px))
    top_px = int(np.ceil(geom.s_to_px(cfg.pulse_top_s)))
    out = {}
    for rd in readings:
        if rd.panel.col != 0 or not np.isfinite(rd.baseline_y_px):
            continue
        row = rd.panel.row
        start = x0[row] + float(panel_x_px(rd.panel, rd.panel.t0_s, 0.0, geom))
        xs = int(np.floor(start)) - search  # first column searched for the edge
        xa, xb = xs - top_px, int(np.ceil(start)) + search + 1
        ya = int(round(rd.baseline_y_px - geom.mv_to_px(PULSE_HEIGHT_MV + cfg.pulse_top_tol_mv)))
        yb = int(round(rd.baseline_y_px - geom.mv_to_px(PULSE_HEIGHT_MV - cfg.pulse_top_tol_mv - cfg.pulse_band_hi_mv)))
        if xa < 0 or xb > w or ya < 0 or yb >= h:
            continue
        dark = 255.0 - cv2.cvtColor(np.ascontiguousarray(sheet_rgb[:, xa:xb]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        col_bg = np.percentile(dark, 25.0, axis=0)
        rows_dark = 255.0 - cv2.cvtColor(np.ascontiguousarray(sheet_rgb[ya:yb]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        row_bg = np.percentile(rows_dark, 25.0, axis=1)
        ink = float(np.percentile(dark[ya:yb], 99.5))
        # ink-dark: halfway from the background (a grid line's darkness where one passes) to the ink, where the
        # ink stands clearly above that background
        bg = np.maximum(col_bg[None, :], row_bg[:, None])
        inked = (dark[ya:yb] >= 0.5 * (bg + ink)) & (ink - bg >= MIN_INK_CONTRAST * ink)
        # the top: the row (or pair of rows, anti-aliased) inked in nearly every usable column left of the start
        free = ink - col_bg[:top_px] >= MIN_INK_CONTRAST * ink
        if free.sum() < 0.5 * top_px:
            continue
        top_ink = inked[:, : top_px][:, free]
        top_share = (top_ink[1:] | top_ink[:-1]).mean(axis=1)
        y_top = int(np.argmax(top_share))
        if top_share[y_top] < cfg.pulse_cover:
            continue
        # the edge: a column next to the start inked (above its column's background only: the band crosses
        # horizontal grid lines, which every column shares) over the band below the top
        b0 = y_top + int(round(geom.mv_to_px(cfg.pulse_band_lo_mv)))
        b1 = y_top + int(round(geom.mv_to_px(cfg.pulse_band_hi_mv)))
        if b1 >= inked.shape[0]:
            continue
        band_bg = col_bg[None, top_px:]
        band = dark[ya + b0 : ya + b1 + 1, top_px:]
        edge = ((band >= 0.5 * (band_bg + ink)) & (ink - band_bg >= MIN_INK_CONTRAST * ink)).mean(axis=0)
        edge = edge >= cfg.pulse_cover
        if not edge.any():
            continue
        band = band - band_bg
        # the covered columns nearest the start's left, and their darkness' centre of mass
        covered = np.flatnonzero(edge)
        run_end = covered[0]
        while run_end + 1 < edge.size and edge[run_end + 1]:
            run_end += 1
        lo, hi = max(covered[0] - 1, 0), min(run_end + 2, edge.size)
        # the top reaches the edge (a pulse with a foot of its own ends before a QRS that starts the row)
        reach = slice(max(top_px + covered[0] - int(round(geom.px_per_mm)), 0), top_px + covered[0])
        usable = ink - col_bg[reach] >= MIN_INK_CONTRAST * ink
        if not usable.any() or top_ink_rows(inked, y_top)[reach][usable].mean() < cfg.pulse_cover:
            continue
        mass = np.clip(band[:, lo:hi], 0.0, None).sum(axis=0)
        if mass.sum() <= 0:  # inked only relative to a darker background: no centre to take
            continue
        centre = xs + float((mass * np.arange(lo, hi)).sum() / mass.sum())
        left, right = start - search, centre + cfg.pulse_guard_px
        if right > start:
            out[(row, 0)] = (0.5 * (left + right), right - left)
    return out


def separator_timing(bars: dict, readings: list[PanelReading], x0: np.ndarray, geom: SheetGeometry,
                     cfg: CalibrateConfig) -> tuple[np.ndarray, float, int] | None:
    """Correction of the rows' chart origins from the panel separators found (:func:`boundary_bars`):
    ``(shift_px per row, time_scale, bars_used)``, or None when too few bars agree to trust them.

    Each bar found gives its row's origin error at its time. The bars that agree (within ``bar_tol_px``) with the
    line most of them lie on give the shift: their mean error, or the line's value at the origin when they run
    apart along the row by more than ``bar_drift_px`` over 10 s (a page scaled by its calibration pulses alone
    may be off by 0.1-0.3 % in time), and then the line's slope re-scales time as well. Where no line holds
    enough of them, the errors may still lie on a plane: a line along the rows that also moves by a fixed
    amount per px down the sheet (a scan turned a tenth of a degree more than its pulses said: the origin moves
    ~1 px from row to row); its bars then give each row its own shift (:func:`_sheared_timing`).
    """
    bounds = [rd for rd in readings if rd.panel.col > 0 and (rd.panel.row, rd.panel.col) in bars]
    rel = np.array([float(panel_x_px(rd.panel, rd.panel.t0_s, 0.0, geom)) for rd in bounds])
    expected = np.array([x0[rd.panel.row] for rd in bounds]) + rel
    found = np.array([bars[(rd.panel.row, rd.panel.col)][0] for rd in bounds])
    err = found - expected
    n_rows = len(x0)
    if err.size < cfg.bar_min_count:
        return None
    # the line (origin error + drift per px along the row) that the most bars agree with, trying a level line
    # through each bar and the line through each pair at different times (9 bars: 45 candidates)
    lines = [(0.0, float(e)) for e in err]
    for i in range(err.size):
        for j in range(i + 1, err.size):
            if rel[j] != rel[i]:
                slope = (err[j] - err[i]) / (rel[j] - rel[i])
                lines.append((float(slope), float(err[i] - slope * rel[i])))
    agree = [int((np.abs(err - (b + m * rel)) <= cfg.bar_tol_px).sum()) for m, b in lines]
    best = max(range(len(lines)), key=lambda k: (agree[k], -abs(lines[k][0])))
    m, b = lines[best]
    inlier = np.abs(err - (b + m * rel)) <= cfg.bar_tol_px
    if inlier.sum() < max(cfg.bar_min_count, 0.5 * err.size):
        row_y = np.full(n_rows, np.nan)
        for row in range(n_rows):
            ys = [rd.baseline_y_px for rd in readings if rd.panel.row == row and np.isfinite(rd.baseline_y_px)]
            row_y[row] = np.median(ys) if ys else np.nan
        return _sheared_timing(err, rel, np.array([rd.panel.row for rd in bounds]), row_y, geom, cfg)
    err, rel = err[inlier], rel[inlier]
    shift, slope = float(np.mean(err)), 0.0
    if np.ptp(rel) > 0:
        slope, intercept = np.polyfit(rel, err, 1)
        if abs(slope) * geom.s_to_px(RECORD_DURATION_S) > cfg.bar_drift_px and err.size >= cfg.bar_min_count_drift:
            shift = float(intercept)
        else:
            slope = 0.0
    return np.full(n_rows, shift), 1.0 + float(slope), int(err.size)


def _sheared_timing(err: np.ndarray, rel: np.ndarray, rows: np.ndarray, row_y: np.ndarray, geom: SheetGeometry,
                    cfg: CalibrateConfig) -> tuple[np.ndarray, float, int] | None:
    """The bars' origin errors ``err`` fitted as ``a + slope * rel + shear * y`` (``rel``: each bar's place along
    its row, sheet px; y: the baseline ``row_y`` of its row ``rows``), dropping the worst bar until the rest agree
    within ``bar_tol_px``; None unless at least ``bar_min_count_drift`` bars at two or more times, in two or more
    rows, and half of those found, agree. Returns each row's shift, the time scale and the bars used."""
    keep = np.ones(err.size, dtype=bool)
    need = max(cfg.bar_min_count_drift, 0.5 * err.size)
    y = row_y[rows]
    if not np.isfinite(y).all():
        return None
    design = np.stack([np.ones_like(rel), rel, y - y.mean()], axis=1)
    while keep.sum() >= need:
        coef, *_ = np.linalg.lstsq(design[keep], err[keep], rcond=None)
        resid = np.abs(err - design @ coef)
        worst = int(np.argmax(np.where(keep, resid, -1.0)))
        if resid[worst] <= cfg.bar_tol_px:
            break
        keep[worst] = False
    else:
        return None
    if len(set(rel[keep].round(3))) < 2 or len(set(rows[keep])) < 2:
        return None
    a, slope, shear = (float(v) for v in coef)
    if abs(slope) * geom.s_to_px(RECORD_DURATION_S) <= cfg.bar_drift_px:
        slope = 0.0
    # a row without a baseline (nothing read there) takes the plane at the bars' mean height
    return a + shear * np.nan_to_num(row_y - y.mean()), 1.0 + slope, int(keep.sum())


def rescaled_chart(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry, cfg: CalibrateConfig,
                   stroke_px: float | None, sheet_rgb: np.ndarray, readings: list[PanelReading], x0: np.ndarray):
    """The chart read at another speed than the sheet's 25 mm/s where separator bars confirm it:
    ``(chart_scale, geometry, x0, readings, bars, timing)``, or None.

    A sheet scaled by its calibration pulses alone (a scan without a grid) is 1-4 % off, which puts the bars
    beyond ``bar_search_px`` of where the sheet's speed expects them, so none is found and the rows drift by up
    to a QRS width by their ends. The speeds tried: those two bars of one row show, looked for in windows as wide
    as ``chart_scale_max`` allows (an origin's error cancels between them), and each row's trace length against
    the layout's (a row cut short, or with a pulse abutting it, is off). A speed is taken where at least
    ``bar_min_count_drift`` bars at two or more boundary times agree with it (:func:`separator_timing`; three
    bars agreed by chance on two photos), the one with the most such bars."""
    reach = cfg.bar_search_px + cfg.chart_scale_max * float(geom.s_to_px(RECORD_DURATION_S))
    wide = boundary_bars(sheet_rgb, readings, x0, geom, cfg, search_px=reach)
    found = {}
    for rd in readings:
        if (rd.panel.row, rd.panel.col) in wide:
            rel = float(panel_x_px(rd.panel, rd.panel.t0_s, 0.0, geom))
            found.setdefault(rd.panel.row, []).append((rel, wide[(rd.panel.row, rd.panel.col)][0]))
    speeds = [(xj - xi) / (rj - ri) for row in found.values() for i, (ri, xi) in enumerate(row)
              for rj, xj in row[i + 1 :] if rj != ri]
    speeds += [(span[1] - span[0]) / (last - first)
               for first, last, span in row_spans(traces, layout, fs_hz, geom, cfg, stroke_px)
               if span is not None and last > first]
    best = None
    for scale in sorted({float(v) for v in np.round(speeds, 3)}):
        if not cfg.chart_scale_min <= abs(scale - 1.0) <= cfg.chart_scale_max:
            continue
        scaled = replace(geom, mm_per_s=geom.mm_per_s * scale)
        x0_s, _ = estimate_x0(traces, layout, fs_hz, scaled, cfg, stroke_px)
        readings_s, _ = _read_at(traces, layout, fs_hz, scaled, cfg, x0_s)
        bars = boundary_bars(sheet_rgb, readings_s, x0_s, scaled, cfg)
        timing = separator_timing(bars, readings_s, x0_s, scaled, cfg)
        times = {rd.panel.x_offset_s for rd in readings_s if (rd.panel.row, rd.panel.col) in bars}
        if (timing is not None and timing[2] >= cfg.bar_min_count_drift and len(times) >= 2
                and (best is None or timing[2] > best[5][2])):
            best = (scale, scaled, x0_s, readings_s, bars, timing)
    return best


def bars_snapped(bars: dict, cfg: CalibrateConfig) -> bool:
    """Whether the separator bars found were drawn snapped to the pixel lattice: at least ``bar_min_count`` of
    them, their centres all at one sub-pixel phase (within ``snapped_bar_spread_px``)."""
    centres = np.array([centre for (_, col), (centre, _) in bars.items() if col > 0])
    if centres.size < cfg.bar_min_count:
        return False
    phase = np.angle(np.exp(2j * np.pi * centres).mean()) / (2 * np.pi)
    offsets = (centres - phase + 0.5) % 1.0 - 0.5  # each centre's sub-pixel offset from the common phase
    return bool(np.ptp(offsets) <= cfg.snapped_bar_spread_px)


def crisp_bars(sheet_rgb: np.ndarray, bars: dict, readings: list[PanelReading], geom: SheetGeometry,
               cfg: CalibrateConfig) -> bool:
    """Whether at least ``bar_min_count`` of the separator bars found, and ``crisp_bar_share`` of them, are drawn
    snapped to the pixel lattice (:func:`stage2_signal.separators.bar_is_crisp`): a page rendered at the sheet's
    own resolution by matplotlib (ECG-Image-Kit), not resampled."""
    base = {(rd.panel.row, rd.panel.col): rd.baseline_y_px for rd in readings}
    crisp = [bar_is_crisp(sheet_rgb, centre, width, base[key], geom.mv_to_px(cfg.bar_band_mv))
             for key, (centre, width) in bars.items() if key[1] > 0 and key in base]
    return len(crisp) >= cfg.bar_min_count and float(np.mean(crisp)) >= cfg.crisp_bar_share


def vertex_phase_shift(traces: list[RowTrace], layout: Layout, fs_hz: float, geom: SheetGeometry,
                       cfg: CalibrateConfig, x0: np.ndarray, time_scale: float, guarded: dict) -> float:
    """Shift of the chart origin (sheet px, within +-half a sample) at which the panels' readings have the
    largest total variation: where the samples sit on the drawn polyline's corners."""
    step_px = geom.px_per_s * time_scale / fs_hz
    shifts = (np.arange(cfg.vertex_phase_steps) / cfg.vertex_phase_steps - 0.5) * step_px
    variation = []
    for shift in shifts:
        readings, _ = _read_at(traces, layout, fs_hz, geom, cfg, x0 + shift, time_scale, guarded)
        variation.append(sum(float(np.nansum(np.abs(np.diff(rd.mv)))) for rd in readings))
    return float(shifts[int(np.argmax(variation))])


def read_panels(traces: list[RowTrace], layout: Layout, fs_hz: float, px_per_mm: float,
                cfg: CalibrateConfig | None = None, stroke_px: float | None = None,
                x0_px: np.ndarray | None = None, sheet_rgb: np.ndarray | None = None,
                mm_per_mv: float = CANONICAL.mm_per_mv) -> tuple[list[PanelReading], dict]:
    """Every panel of ``layout`` read in mV at its samples; plus diagnostics (x0 per row, baselines...).
    ``stroke_px``: the trace's measured stroke width (None: the trace ends are taken as the maps show them).
    ``x0_px``: a known chart origin per row (e.g. from labels, to study the rest of the reading) instead of
    the estimate. ``sheet_rgb``: the rectified sheet, whose panel separators (where drawn) re-time the rows.
    ``mm_per_mv``: the chart's gain (its calibration pulses' height per mV)."""
    cfg = cfg or CalibrateConfig()
    if len(traces) != layout.n_rows:
        raise ValueError(f"layout {layout.name} has {layout.n_rows} rows, got {len(traces)} row traces")
    geom = sheet_geometry(px_per_mm, mm_per_mv)
    if x0_px is None:
        x0, how = estimate_x0(traces, layout, fs_hz, geom, cfg, stroke_px)
    else:
        x0, how = np.asarray(x0_px, dtype=np.float64), ["given"] * layout.n_rows
        if x0.shape != (layout.n_rows,):
            raise ValueError(f"x0_px needs one origin per row ({layout.n_rows}), got shape {x0.shape}")
    readings, unread = _read_at(traces, layout, fs_hz, geom, cfg, x0)
    time_scale, n_bars, bars = 1.0, 0, {}
    if sheet_rgb is not None and (cfg.separators or cfg.bar_guard):
        bars = boundary_bars(sheet_rgb, readings, x0, geom, cfg)
    chart_scale, sheet_geom = 1.0, geom
    if x0_px is None and cfg.separators:
        timing = separator_timing(bars, readings, x0, geom, cfg)
        if timing is None and sheet_rgb is not None:
            rescaled = rescaled_chart(traces, layout, fs_hz, geom, cfg, stroke_px, sheet_rgb, readings, x0)
            if rescaled is not None:
                chart_scale, geom, x0, readings, bars, timing = rescaled
        if timing is not None:
            shift, time_scale, n_bars = timing
            x0 = x0 + shift
            how = ["separators"] * layout.n_rows
    guarded = bars if cfg.bar_guard else {}
    if sheet_rgb is not None and cfg.pulse_guard:
        guarded = {**guarded, **pulse_edges(sheet_rgb, readings, x0, geom, cfg)}
    phase_px = 0.0
    on_grid = np.zeros(layout.n_rows, dtype=bool)
    snapped = bool(x0_px is None and n_bars and bars_snapped(bars, cfg))
    if (x0_px is None and cfg.grid_origin_tol_px > 0 and n_bars
            and (snapped or crisp_bars(sheet_rgb, bars, readings, geom, cfg))):
        line = geom.big_box_line_x_px(x0)
        on_grid = np.abs(line - x0) <= cfg.grid_origin_tol_px
        x0 = np.where(on_grid, line, x0)
    if (cfg.vertex_phase and snapped and not on_grid.any()
            and geom.px_per_s * time_scale / fs_hz >= cfg.vertex_phase_min_step_px):
        phase_px = vertex_phase_shift(traces, layout, fs_hz, geom, cfg, x0, time_scale, guarded)
        x0 = x0 + phase_px
    if n_bars or guarded:
        readings, unread = _read_at(traces, layout, fs_hz, geom, cfg, x0, time_scale, guarded)
    info = {"x0_px": x0.tolist(), "x0_how": how, "time_scale": chart_scale * time_scale, "separator_bars": n_bars,
            "guarded_bars": sum(key[1] > 0 for key in guarded), "guarded_pulses": sum(key[1] == 0 for key in guarded),
            "vertex_phase_px": phase_px, "origin_on_grid": on_grid.tolist(), "stroke_px": stroke_px,
            "px_per_mm": sheet_geom.px_per_mm, "px_per_s": sheet_geom.px_per_s, "px_per_mv": sheet_geom.px_per_mv,
            "mm_per_mv": sheet_geom.mm_per_mv, "unread_panels": unread}
    return readings, info
