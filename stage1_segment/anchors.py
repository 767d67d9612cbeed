"""Row anchors: the y of each layout row's 0 mV line on the canonical sheet, found from the page's ink.

Stage 1 conditions its row maps on these anchors instead of on absolute sheet position, so a renderer that
places its rows elsewhere (other margins, header heights, row pitches) is read as well as our own.

A trace spends most of its time near its isoelectric line, so across the chart width the ink of a row piles
up at one y. Ink is what is darker than the grid: the darkness of the brightest channel (max(R, G, B) below the local
paper's) is near 0 for a coloured grid line (its own channel stays bright) and high for black or dark-blue traces; the
threshold is set relative to the page's darkest ink, so grey grids are excluded as long as they are lighter
than the traces; grid lines as dark as the traces are removed as straight horizontal runs longer than any
flat stretch of trace. Per sheet row, the fraction of columns that hold ink within a few pixels gives a profile
whose strong, evenly spaced peaks are the rows' baselines. Grid lines that are dark but broken (a scanned grey
grid) survive both tests; on the canonical sheet they repeat every 5 mm, so what the profile holds at the same
place in the neighbouring 5 mm periods (their median) is taken away.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from common.geometry import CANONICAL
from common.layouts import default_placement, get_layout

_REDUCE = 2  # the profile is computed at half the sheet's resolution (1 px there = 2 sheet px)
PITCH_TOLERANCE = 0.25  # a set of rows whose gaps stray this fraction from their median scores 1/e as much
MAX_ROW_SETS = 5000  # above this many candidate sets (many-row layouts), rows are picked greedily by strength
LINE_RUN_PX = 300.0  # sheet px (38 mm, 1.5 s of paper): a straight horizontal run of ink this long is a grid line
LINE_GAP_PX = 8  # sheet px: breaks this short in a scanned grid line are bridged before its run is measured
INK_WINDOW_PX = 18.0  # sheet px: wider than a trace's stroke (QRS strokes included), narrower than a shadow
GRID_PERIODS = 6  # the grid's share of the profile is the median over this many 5 mm periods above and below
INK_SHARE = 0.5  # ink is at least this share as dark as the page's darkest 0.2 % (the traces' core) ...
FAINT_INK_SHARE = 0.3  # ... or, where that finds too few rows, this share: on a dim photo of a print, bold header
# text or the paper's edge is far darker than the thin grey traces (a factory 0005 photo: rows found only so)
INK_FLOOR = 24.0  # darkness (grey levels against the local paper) below which nothing is ink ...
FAINT_INK_FLOOR = 12.0  # ... or, where both shares find too few rows, this: a blurred photo of a thin-lined render
# or of a screen shows its traces 12-24 levels darker than the paper (keypoint sheets of ECG-Image-Kit photos and
# of factory screen photos placed within a few px had no rows found, and were refused)
INK_PASSES = ((INK_SHARE, INK_FLOOR), (FAINT_INK_SHARE, INK_FLOOR), (FAINT_INK_SHARE, FAINT_INK_FLOOR))  # in turn
SURE_INK_PASSES = INK_PASSES[:2]  # the passes that say, alone, that a page shows rows of trace (not the faint one:
# on a page no grid or keypoints placed, it finds "rows" in a photo's noise)


@dataclass(frozen=True)
class Anchors:
    """Baselines (sheet px, top to bottom) and how they were found."""

    baselines_y_px: tuple[float, ...]
    method: str  # "ink" (found on the page) or "default" (the layout's default placement)
    coverage: tuple[float, ...]  # fraction of the chart's columns with ink at each baseline (ink only)


def ink_darkness(sheet_rgb: np.ndarray) -> np.ndarray:
    """255 - max(R, G, B) as uint8: high for dark ink, near 0 for white paper and saturated grid colours."""
    return 255 - sheet_rgb.max(axis=2)


def ink_weights(sheet_rgb: np.ndarray, shape_hw: tuple[int, int], lo_pct: float, hi_pct: float) -> np.ndarray:
    """(H, W) float32 in [0, 1] at ``shape_hw``: 0 up to the page's ``lo_pct`` percentile of darkness (paper,
    grid), rising linearly to 1 at its ``hi_pct`` percentile (the traces' core)."""
    h, w = shape_hw
    dark = cv2.resize(ink_darkness(sheet_rgb), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    lo, hi = np.percentile(dark, [lo_pct, hi_pct])
    return np.clip((dark - lo) / max(float(hi - lo), 1.0), 0.0, 1.0)


def ink_levels(sheet_rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The darkness against the local paper at half resolution, and its 95th and 99.8th percentiles."""
    h, w = sheet_rgb.shape[:2]
    small = cv2.resize(sheet_rgb, (w // _REDUCE, h // _REDUCE), interpolation=cv2.INTER_AREA)
    # darkness against the local paper (a closing of the brightness over INK_WINDOW_PX): shadows, stains and
    # uneven lighting are darker than white paper but not than their own surroundings
    bright = small.max(axis=2)
    window = max(3, int(round(INK_WINDOW_PX / _REDUCE)) | 1)
    paper = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((window, window), np.uint8))
    dark = (paper.astype(np.float32) - bright.astype(np.float32))
    p95, p998 = np.percentile(dark, [95.0, 99.8])  # one partition for both (the costliest step)
    return dark, float(p95), float(p998)


def baseline_profile(sheet_rgb: np.ndarray, band_px: float = 6.0, ink_share: float = INK_SHARE,
                     levels: tuple[np.ndarray, float, float] | None = None, floor: float = INK_FLOOR) -> np.ndarray:
    """Per reduced row, the fraction of columns with ink within ``band_px`` sheet px (the profile above); ink is
    at least ``ink_share`` as dark as the page's darkest 0.2 % and ``floor`` grey levels darker than the local
    paper. ``levels``: :func:`ink_levels` of the sheet, if already computed."""
    dark, p95, p998 = levels if levels is not None else ink_levels(sheet_rgb)
    # ink = at least ink_share as dark as the page's darkest 0.2 % (the traces), and darker than 95 % of the page
    threshold = max(ink_share * p998, p95, floor)
    ink = (dark >= threshold).view(np.uint8)
    # a grid printed as dark as the traces (black-and-white scans) is ink too: drop straight horizontal runs
    # longer than any flat stretch of a trace (LINE_RUN_PX), after closing the short breaks of a scanned line
    run = max(3, int(round(LINE_RUN_PX / _REDUCE)))
    joined = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, LINE_GAP_PX // _REDUCE + 1), np.uint8))
    lines = cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    ink = ink & (1 - lines)
    reach = max(1, int(round(band_px / _REDUCE)))
    near = maximum_filter1d(ink, size=2 * reach + 1, axis=0)
    profile = gaussian_filter1d(near.mean(axis=1, dtype=np.float64), 1.0)
    return np.maximum(profile - _periodic_part(profile, CANONICAL.big_box_mm * CANONICAL.px_per_mm / _REDUCE), 0.0)


def _periodic_part(profile: np.ndarray, period: float) -> np.ndarray:
    """Per row, the median of the profile one to GRID_PERIODS ``period``s (rows, fractional) above and below:
    a grid repeats there, the ink of a trace row (at most one other row among them) does not."""
    idx = np.arange(profile.size, dtype=np.float64)
    steps = np.concatenate([-np.arange(GRID_PERIODS, 0, -1), np.arange(1, GRID_PERIODS + 1)]) * period
    at = idx[:, None] + steps[None, :]
    vals = np.interp(at, idx, profile)
    vals[(at < 0) | (at > profile.size - 1)] = np.nan
    return np.nan_to_num(np.nanmedian(vals, axis=1))


def _pick_rows(peaks: np.ndarray, strength: np.ndarray, n: int, sep: int) -> list[int]:
    """The ``n`` peaks, at least ``sep`` apart, that are strong and evenly spaced: rows of a chart are printed at
    one pitch, while the strongest stray peaks (a header line, the shadow at a photo's paper edge) are not."""
    order = peaks[np.argsort(-strength[peaks], kind="stable")][: 2 * n + 2]
    if n == 1 or len(order) < n or comb(len(order), n) > MAX_ROW_SETS:
        chosen: list[int] = []
        for i in order:
            if all(abs(int(i) - j) >= sep for j in chosen):
                chosen.append(int(i))
            if len(chosen) == n:
                break
        return sorted(chosen)
    best, best_score = [], -1.0
    for cand in combinations(sorted(int(i) for i in order), n):
        gaps = np.diff(cand)
        if gaps.min() < sep:
            continue
        pitch = float(np.median(gaps))
        irregularity = float(np.abs(gaps - pitch).max()) / pitch
        score = float(strength[list(cand)].sum()) * float(np.exp(-irregularity / PITCH_TOLERANCE))
        if score > best_score:
            best, best_score = list(cand), score
    return best


def find_anchors(sheet_rgb: np.ndarray, layout_name: str, min_pitch_px: float = 120.0,
                 min_coverage: float = 0.1, edge_px: float = 80.0, passes: tuple = INK_PASSES) -> Anchors:
    """Baselines of ``layout_name``'s rows on a canonical-sheet image; the layout's default placement when the
    page does not show that many separate rows of ink (``min_coverage`` of the columns, ``min_pitch_px`` apart,
    not within ``edge_px`` of the sheet's top or bottom, where a photo's paper edge leaves a dark band) at any of
    the ink levels ``passes`` ((ink share, floor) tried in turn)."""
    if sheet_rgb.shape[:2] != CANONICAL.shape_hw or sheet_rgb.ndim != 3:
        raise ValueError(f"find_anchors needs a canonical {CANONICAL.shape_hw} RGB sheet, got {sheet_rgb.shape}")
    layout = get_layout(layout_name)
    n = layout.n_rows
    sep = max(1, int(round(min_pitch_px / _REDUCE)))
    edge = int(round(edge_px / _REDUCE))
    levels = ink_levels(sheet_rgb)
    for ink_share, floor in passes:
        profile = baseline_profile(sheet_rgb, ink_share=ink_share, levels=levels, floor=floor)
        idx = np.arange(profile.size)
        is_peak = (profile >= maximum_filter1d(profile, size=2 * sep + 1)) & (profile >= min_coverage)
        peaks = np.flatnonzero(is_peak & (idx >= edge) & (idx < profile.size - edge))
        chosen = _pick_rows(peaks, profile, n, sep)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        base = default_placement(layout).baselines_y_px
        return Anchors(tuple(float(b) for b in base), "default", ())
    # sub-row peak position from a parabola through the peak and its neighbours
    ys, cov = [], []
    for i in chosen:
        lo, hi = profile[max(i - 1, 0)], profile[min(i + 1, profile.size - 1)]
        den = lo - 2 * profile[i] + hi
        off = 0.5 * (lo - hi) / den if den < 0 else 0.0
        ys.append((i + off + 0.5) * _REDUCE - 0.5)
        cov.append(float(profile[i]))
    return Anchors(tuple(ys), "ink", tuple(cov))
