"""The drawn trace's stroke width, measured on the rectified sheet where the row readings say the trace is.

Where a trace starts and ends, its ink runs on past the first / last sample by the line's cap (about half the
stroke width), and the trace maps follow the ink. The chart's time origin, found from those ends, is
corrected by this width (:class:`~stage2_signal.calibrate.CalibrateConfig` ``stroke_inset``); a timing error
of 1 px (5 ms) costs about 1.3 dB on factory pages, because the metric only forgives whole-sample lags.

The width is the ink profile's area over its peak (a box profile of width w gives w; anti-aliasing and
scanner blur widen it) across the trace in flat, confident columns, the median over all rows.
"""

from __future__ import annotations

import cv2
import numpy as np

from stage2_signal.extract import RowTrace

HALF_WINDOW_PX = 6  # the profile across the trace: +-6 px around its reading (wider than any drawn trace)
MIN_CONTRAST = 30.0  # ink at least this much darker (0..255) than the paper beside it
MIN_COLUMNS = 50  # fewer measurable columns than this on the whole page: no width


def stroke_width_px(sheet_rgb: np.ndarray, traces: list[RowTrace], min_confidence: float = 0.8) -> float | None:
    """Median stroke width (sheet px) of the trace across flat confident columns, or None if too few."""
    darkness = 255.0 - cv2.cvtColor(np.ascontiguousarray(sheet_rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = darkness.shape
    offsets = np.arange(-HALF_WINDOW_PX, HALF_WINDOW_PX + 1)
    widths = []
    for trace in traces:
        sel = (trace.conf >= min_confidence) & ~trace.wide & np.isfinite(trace.y_peak)
        xs = np.round(trace.x[sel]).astype(np.int64)
        ys = np.round(trace.y_peak[sel]).astype(np.int64)
        inside = (xs >= 0) & (xs < w) & (ys - HALF_WINDOW_PX >= 0) & (ys + HALF_WINDOW_PX < h)
        xs, ys = xs[inside], ys[inside]
        if xs.size == 0:
            continue
        profile = darkness[ys[:, None] + offsets[None, :], xs[:, None]]
        paper = np.median(np.concatenate([profile[:, :2], profile[:, -2:]], axis=1), axis=1)
        peak = profile.max(axis=1)
        inked = peak - paper > MIN_CONTRAST
        area = np.clip(profile - paper[:, None], 0.0, None).sum(axis=1)
        widths.append((area / np.maximum(peak - paper, 1e-6))[inked])
    all_widths = np.concatenate(widths) if widths else np.empty(0)
    if all_widths.size < MIN_COLUMNS:
        return None
    return float(np.median(all_widths))
