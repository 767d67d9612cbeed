"""Panel separators: the short vertical bars many renderers draw across a row's baseline where one lead's panel
gives way to the next (both of our page factories draw them on most pages; pages without them keep the
timing from the trace ends).

A separator stands at the next panel's first sample, a known time after the chart origin, and it is a straight
vertical stroke: its centre column is found to a few hundredths of a pixel, where a trace's end is only found to
about a pixel (its ink runs on past the last sample by a cap that depends on the stroke and the signal's slope).
So where the bars are there, they time the rows (see :func:`stage2_signal.calibrate.read_panels`).

A bar is told from what else is vertical near a panel boundary by five things: it is as dark as the trace ink,
it covers the whole band around the baseline (a trace crossing the band covers its stroke width of it, unless it
runs steeply there: a QRS), it is upright (a QRS stroke leans: its centre moves across the band), it is not in
every row of the sheet (a grid line is: its darkness is the column's background, removed before looking), and it stands
alone: a grid line that survives that (a photo's grid, not quite upright after rectification, moves across
columns down the sheet) has its like one grid pitch away on both sides.
"""

from __future__ import annotations

import cv2
import numpy as np

INK_PERCENTILE = 99.5  # the trace ink's darkness: this percentile of the band around a boundary
BACKGROUND_PERCENTILE = 25.0  # a column's own background (paper or grid line), over the sheet's height
MIN_COVER = 0.7  # a bar column is ink-dark over at least this fraction of the band
INK_LEVEL = 0.5  # "ink-dark": at least this fraction of the ink's darkness above the column's background
MIN_CLEAR = 0.25  # the bar's centre is read in the band's rows with clear paper beside it: at least this many
INK_WINDOW_PX = 40  # the ink level is read over +-40 px around the boundary (the trace passes there)
STRAIGHT_STD_PX = 0.25  # a bar's centres in the band's rows scatter by less than this (a QRS stroke's lean:
# ~0.3 px per px it drifts across the band; drawn bars measured 0.03-0.15 px on real and factory pages)
GRID_LIKE = 0.5  # a bar with columns this covered (relative to it) one grid pitch away on both sides is grid


def _grid_like(cover: np.ndarray, at: int, pitches: list[int]) -> bool:
    """Whether the columns one grid pitch either side of column ``at`` are covered like it (within a px)."""
    return any(min(cover[at - p - 1 : at - p + 2].max(), cover[at + p - 1 : at + p + 2].max()) >= GRID_LIKE * cover[at]
               for p in pitches)


def find_bars(sheet_rgb: np.ndarray, expected_x: np.ndarray, baseline_y: np.ndarray, half_band_px: float,
              search_px: float, grid_pitches_px: tuple[float, ...] = (), with_width: bool = False):
    """Sheet x (sub-pixel centre) of the separator bar nearest each expected boundary, NaN where none is seen;
    with ``with_width`` also each bar's width (px: the columns it darkens over at least half its band).

    ``expected_x`` / ``baseline_y`` (sheet px): where each boundary is thought to be and its row's 0 mV line;
    a bar is looked for within ``search_px`` of it and must cover the band ``baseline_y +- half_band_px``.
    ``grid_pitches_px``: the sheet's grid spacings (1 and 5 mm); a bar with its like at one of them on both
    sides is a grid line.
    """
    expected_x = np.asarray(expected_x, dtype=np.float64)
    baseline_y = np.asarray(baseline_y, dtype=np.float64)
    out = np.full(expected_x.shape, np.nan)
    widths = np.full(expected_x.shape, np.nan)
    if expected_x.size == 0:
        return (out, widths) if with_width else out
    h, w = sheet_rgb.shape[:2]
    half_band, search = int(round(half_band_px)), int(round(search_px))
    pitches = [int(round(p)) for p in grid_pitches_px]
    side = max(INK_WINDOW_PX, max(pitches, default=0) + 2)
    reach = search + side
    for k, (xe, yb) in enumerate(zip(expected_x, baseline_y, strict=True)):
        if not (np.isfinite(xe) and np.isfinite(yb)):
            continue
        xi, yi = int(round(xe)), int(round(yb))
        if xi - reach < 0 or xi + reach >= w or yi - half_band < 0 or yi + half_band >= h:
            continue
        # only the window's columns are turned grey (a few per cent of the sheet)
        gray = cv2.cvtColor(np.ascontiguousarray(sheet_rgb[:, xi - reach : xi + reach + 1]), cv2.COLOR_RGB2GRAY)
        dark = 255.0 - gray.astype(np.float32)
        # darkness above each column's own background: a grid line's columns are dark all the way down
        excess = dark[yi - half_band : yi + half_band + 1] - np.percentile(dark, BACKGROUND_PERCENTILE, axis=0)
        ink = float(np.percentile(excess, INK_PERCENTILE))
        if ink <= 0:
            continue
        cover_all = (excess >= INK_LEVEL * ink).mean(axis=0)
        win = excess[:, side : side + 2 * search + 1]
        cover = cover_all[side : side + 2 * search + 1]
        peak = next((int(j) for j in np.argsort(-cover, kind="stable")
                     if cover[j] >= MIN_COVER and not _grid_like(cover_all, side + int(j), pitches)), None)
        if peak is None:
            continue
        lo, hi = peak, peak
        while lo > 0 and cover[lo - 1] >= 0.5 * MIN_COVER:
            lo -= 1
        while hi < cover.size - 1 and cover[hi + 1] >= 0.5 * MIN_COVER:
            hi += 1
        # the bar's centre in each row of the band (its darkness' centre of mass across the bar's columns), the
        # median over the rows where the paper beside the bar is clear: where a trace runs into the bar (the
        # panels' own ends meet there) its ink would pull the centre aside
        a, b = max(lo - 1, 0), min(hi + 2, cover.size)
        if a < 2 or b + 2 > cover.size:
            continue
        beside = np.concatenate([win[:, a - 2 : a], win[:, b : b + 2]], axis=1).max(axis=1)
        mass = np.clip(win[:, a:b], 0.0, None)
        total = mass.sum(axis=1)
        clear = (beside < INK_LEVEL * ink) & (total > 0)
        if clear.mean() < MIN_CLEAR:
            continue
        centres = (mass[clear] * np.arange(a, b)).sum(axis=1) / total[clear]
        if np.std(centres) > STRAIGHT_STD_PX:
            continue
        out[k] = xi - search + float(np.median(centres))
        widths[k] = float(hi - lo + 1)
    return (out, widths) if with_width else out


CRISP_MIDDLE = (0.3, 0.8)  # a column this fraction of a bar's darkness is an anti-aliased edge
CRISP_MAX_PARTIAL = 1  # a snapped bar of a width that is not a whole number of px has one such column
CRISP_MIN_FULL = 4  # and at least this many full ones (ECG-Image-Kit's bars: 5-6 px; thinner bars are too few
# columns to tell snapped from anti-aliased)


def bar_is_crisp(sheet_rgb: np.ndarray, centre_x: float, width_px: float, baseline_y: float,
                 half_band_px: float) -> bool:
    """Whether the bar at ``centre_x`` (width ``width_px``, across the band ``baseline_y +- half_band_px``) was
    drawn snapped to the pixel lattice: every column across it and one either side is either about as dark as its
    darkest or about clear, none part-dark like the edge of a line drawn anti-aliased where it falls (matplotlib,
    so ECG-Image-Kit, snaps its bars; a resampled scan or photo blurs every edge)."""
    h, w = sheet_rgb.shape[:2]
    lo = int(np.floor(centre_x - 0.5 * width_px)) - 1
    hi = int(np.ceil(centre_x + 0.5 * width_px)) + 1
    ya, yb = int(round(baseline_y - half_band_px)), int(round(baseline_y + half_band_px)) + 1
    if lo < 0 or hi >= w or ya < 0 or yb > h:
        return False
    dark = 255.0 - cv2.cvtColor(np.ascontiguousarray(sheet_rgb[:, lo:hi + 1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    profile = np.median(dark[ya:yb], axis=0) - np.percentile(dark, BACKGROUND_PERCENTILE, axis=0)
    top = float(profile.max())
    if top <= 0:
        return False
    rel = profile / top
    partial = int(((rel > CRISP_MIDDLE[0]) & (rel < CRISP_MIDDLE[1])).sum())
    return partial <= CRISP_MAX_PARTIAL and int((rel >= CRISP_MIDDLE[1]).sum()) >= CRISP_MIN_FULL
