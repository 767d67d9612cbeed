"""How a network trained on the competition's four rows reads a page with any number of rows: in passes of four
anchored rows (:func:`row_passes`), the other rows painted over (:func:`only_rows`), rows printed closer than
the network ever saw moved one competition row pitch apart (:func:`spread_rows`). Inference
(:mod:`stage1_segment.infer`) and training (:mod:`stage1_segment.data`) prepare a page the same way."""

from __future__ import annotations

import numpy as np

CLOSE_PITCH_PX = 160.0  # sheet px: rows closer than this (12x1: ~100 px; the competition's 3x4 + II ~280, 6x2 ~220)
# are read spread apart (spread_rows); read in place, the network takes a neighbour's trace for the row's
SPREAD_BAND = 0.8  # each row spread apart keeps the ink within this many row pitches of its baseline, for a network
# trained without close rows: a wider band brings the neighbours' traces back (12x1 factory page: 4.5 dB at 0.8,
# 0.8 dB at 1.0), a narrower one cuts the row's own QRS tips (3.7 dB at 0.6; a 6x2 page of 154 px pitch: 6.8 dB at
# 0.8, 5.7 at 0.6, 4.9 read in place). A bundle trained on close rows names its own (``inference.spread_band``):
# the band caps what any reading can reach (12x1 pages' exact maps cut at 0.8 / 1.0 / 1.2 / 1.5 pitches: 15.5 /
# 19.2 / 22.0 / 23.6 dB, uncut 24.7)


def rows_are_close(baselines_y_px) -> bool:
    """Whether a page's rows (baselines, sheet px, top to bottom) stand closer than CLOSE_PITCH_PX: read spread
    apart (:func:`spread_rows`), and by the close-rows network where there is one (:mod:`pipeline.chain`)."""
    ys = np.asarray(baselines_y_px, dtype=np.float64)
    return ys.size > 1 and float(np.median(np.diff(ys))) < CLOSE_PITCH_PX


def row_passes(baselines_y_px, n_model: int, sheet_h_px: float) -> list[tuple[tuple[float, ...], list[int]]]:
    """How a network trained on ``n_model`` rows (the competition's: three rows of panels, the rhythm strip
    below them) reads a page's rows: per pass the anchors it is given and the page row each output channel
    stands for (-1: a reading dropped). Its last channel learnt the page's bottom row (read rows above the
    bottom in it were 1-3 px worse on 6x2 pages), so it reads only the page's last row; the other rows go
    through the first ``n_model - 1`` channels in consecutive runs (the last run moved up to end next to the
    page's last row, reading some rows twice), the last channel then anchored on the row below the run. A page
    with fewer rows gets made-up rows one row pitch apart below its last, whose readings are dropped."""
    ys = [float(y) for y in baselines_y_px]
    if not ys:
        raise ValueError("no rows to read")
    if len(ys) < n_model:
        pitch = float(np.median(np.diff(ys))) if len(ys) > 1 else sheet_h_px / (n_model + 1)
        extra = [min(ys[-1] + pitch * (k + 1), sheet_h_px - 1.0) for k in range(n_model - len(ys))]
        return [(tuple(ys + extra), list(range(len(ys))) + [-1] * len(extra))]
    run, last = n_model - 1, len(ys) - 1
    starts = list(range(0, last - run + 1, run))
    if starts[-1] + run < last:
        starts.append(last - run)
    return [(tuple(ys[s:s + n_model]), list(range(s, s + run)) + [last if s + run == last else -1])
            for s in starts]


MAX_SPREAD_BAND = 3.0  # row pitches: a band wider than this shows a 12x1 page's whole neighbourhood, no row


def checked_spread_band(band: float) -> float:
    """``band`` (row pitches) where it is one a close row can be read in, else ValueError."""
    if not 0.0 < band <= MAX_SPREAD_BAND:
        raise ValueError(f"spread_band must be row pitches in (0, {MAX_SPREAD_BAND:g}], got {band}")
    return float(band)


def spread_half_band_px(band: float, pitch_px: float, targets_y_px) -> float:
    """The half band (sheet px) :func:`spread_rows` cuts around each row of ``pitch_px`` for a band of ``band`` row
    pitches, at most half the spacing of the places ``targets_y_px`` the rows are moved to (bands never overlap
    there)."""
    slot = float(np.min(np.diff(np.asarray(targets_y_px, dtype=np.float64)))) if len(targets_y_px) > 1 else np.inf
    return min(band * pitch_px, 0.5 * slot)


def spread_rows(sheet_rgb: np.ndarray, rows_y_px, targets_y_px, half_band_px: float
                ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A sheet with each of ``rows_y_px``'s bands (``half_band_px`` either side of the row's baseline) moved to
    the matching ``targets_y_px`` on the page's paper colour, and per row (shift, band top, band bottom) in
    sheet px (shifts even, so whole map px at half resolution). Rows printed closer than the network ever saw
    are read like the competition's, one row pitch apart."""
    h = sheet_rgb.shape[0]
    half = int(round(half_band_px))
    canvas = np.empty_like(sheet_rgb)
    canvas[:] = np.median(sheet_rgb.reshape(-1, sheet_rgb.shape[2]), axis=0).astype(sheet_rgb.dtype)
    shifts = []
    for y, target in zip(rows_y_px, targets_y_px, strict=True):
        shift = 2 * int(round((target - y) / 2))
        lo, hi = max(int(round(y)) - half, 0, -shift), min(int(round(y)) + half, h, h - shift)
        canvas[lo + shift:hi + shift] = sheet_rgb[lo:hi]
        shifts.append((shift, lo, hi))
    return canvas, shifts


def kept_rows_span(rows_y_px, page_rows_y_px, sheet_h_px: int) -> tuple[int, int]:
    """The sheet rows [top, bottom) :func:`only_rows` keeps: from half a row pitch above the first of ``rows_y_px``
    (the page's top when no page row is above it) to half a pitch below the last."""
    ys = [float(y) for y in page_rows_y_px]
    first, last = float(rows_y_px[0]), float(rows_y_px[-1])
    above = [y for y in ys if y < first]
    below = [y for y in ys if y > last]
    top = max(int(round(0.5 * (above[-1] + first))), 0) if above else 0
    bottom = min(int(round(0.5 * (last + below[0]))), sheet_h_px) if below else sheet_h_px
    return top, bottom


def only_rows(sheet_rgb: np.ndarray, rows_y_px, page_rows_y_px) -> np.ndarray:
    """The sheet with the page's rows above and below ``rows_y_px`` painted over in its paper colour, from half a
    row pitch beyond the first and last of them (:func:`kept_rows_span`): the network saw no trace above its top
    row or below its bottom row in training."""
    top, bottom = kept_rows_span(rows_y_px, page_rows_y_px, sheet_rgb.shape[0])
    out = sheet_rgb.copy()
    paper = np.median(sheet_rgb.reshape(-1, sheet_rgb.shape[2]), axis=0).astype(sheet_rgb.dtype)
    out[:top] = paper
    out[bottom:] = paper
    return out
