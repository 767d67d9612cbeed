"""Scale from the 1 mV calibration pulses when a page has no usable grid.

Each row of a printed ECG starts with a rectangular pulse: up 1 mV (10 mm at 10 mm/mV), 0.2 s across (5 mm at
25 mm/s), down. On a binary ink mask the pulse is a pair of vertical strokes of equal height h, a distance
about h/2 apart, with tops and bottoms level (the falling edge may run on above the top as a separator bar),
joined by ink along the top and empty in between. Their height (stroke ink extent minus the line width) and their
spacing give px/mm; several pulses stacked at the start of the rows give the page's skew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

PULSE_HEIGHT_MM = 10.0
PULSE_WIDTH_MM = 5.0


@dataclass(frozen=True)
class PulseEstimate:
    px_per_mm: float
    angle_deg: float
    confidence: float
    n_pulses: int
    boxes: list = field(default_factory=list)  # (x0, y0, x1, y1) per pulse, image px

    @property
    def info(self) -> dict:
        return {"pulse_count": self.n_pulses, "pulse_boxes": [[round(float(v), 1) for v in b] for b in self.boxes],
                "pulse_angle_deg": round(self.angle_deg, 3)}


def _ink_mask(grey: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Binary ink mask (half-way between paper and ink levels) and those levels."""
    sub = grey[::4, ::4]
    paper = float(np.percentile(sub, 90))
    ink = float(np.percentile(sub, 0.3))
    if paper - ink < 40:
        return np.zeros_like(grey, dtype=np.uint8), paper, ink
    thr = 0.5 * (paper + ink)
    return (grey < thr).astype(np.uint8), paper, ink


def _extent(dark: np.ndarray, axis: int) -> float:
    """Sub-pixel length of a dark bar along ``axis``: integrated darkness / plateau darkness."""
    prof = dark.sum(axis=1 - axis)
    peak = float(np.percentile(prof, 75)) if prof.size >= 4 else float(prof.max())
    return float(prof.sum() / peak) if peak > 0 else 0.0


def _centroid_row(darkness: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> float | None:
    """Darkness-weighted mean row of a window (None when it holds no clear ink)."""
    r0, c0 = max(0, r0), max(0, c0)
    r1, c1 = min(darkness.shape[0], r1), min(darkness.shape[1], c1)
    if r1 - r0 < 2 or c1 - c0 < 1:
        return None
    prof = darkness[r0:r1, c0:c1].sum(axis=1)
    prof = prof - min(prof[0], prof[-1])  # paper texture / grid under the bar
    prof = np.clip(prof, 0, None)
    tot = prof.sum()
    if tot <= 0 or prof.max() < 0.3 * (c1 - c0) * darkness.max():
        return None
    return r0 + float((prof * np.arange(prof.size)).sum() / tot)


def find_pulses(rgb: np.ndarray, min_height_px: float | None = None) -> PulseEstimate | None:
    """Find calibration pulses in an RGB image; None when there is no convincing one."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h_img, w_img = grey.shape
    ink, paper, ink_level = _ink_mask(grey)
    if not ink.any():
        return None
    l_min = int(max(8, min_height_px or h_img / 40.0))
    vert = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((l_min, 1), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(vert, connectivity=8)
    if n <= 2:
        return None
    x, y, w, h = (stats[1:, i].astype(np.float64) for i in range(4))
    keep = (w <= np.maximum(3, h / 5.0)) & (h <= h_img / 3.0)
    x, y, w, h = x[keep], y[keep], w[keep], h[keep]
    if x.size < 2 or x.size > 4000:
        return None
    order = np.argsort(x)
    x, y, w, h = x[order], y[order], w[order], h[order]
    darkness = np.clip(paper - grey.astype(np.float32), 0, None)
    pulses = []
    for i in range(x.size):
        for j in range(i + 1, x.size):
            ys, hs = [y[i], y[j]], [h[i], h[j]]
            if y[j] < y[i] - 0.12 * h[i] and abs(y[i] + h[i] - y[j] - h[j]) <= 0.12 * h[i]:
                # the falling edge under a separator bar that runs on above the pulse (ECG-Image-Kit draws one at
                # the start of some rows): the bar's part from the pulse's top down is the edge
                ys[1], hs[1] = y[i], y[j] + h[j] - y[i]
            dx = (x[j] + w[j] / 2) - (x[i] + w[i] / 2)
            hm = 0.5 * (hs[0] + hs[1])
            if dx > 0.7 * hm:
                break
            if dx < 0.3 * hm or abs(hs[0] - hs[1]) > 0.12 * hm:
                continue
            if abs(ys[0] - ys[1]) > 0.12 * hm or abs(ys[0] + hs[0] - ys[1] - hs[1]) > 0.12 * hm:
                continue
            top = int(round(min(ys)))
            t = int(max(w[i], w[j], 2))
            x0, x1 = int(x[i] + w[i]), int(x[j])
            if x1 - x0 < 3:
                continue
            top_band = ink[max(0, top - 1) : top + t + 1, x0:x1]
            if top_band.size == 0 or top_band.max(axis=0).mean() < 0.85:
                continue  # no ink along the top
            y_in0, y_in1 = top + t + 2, int(min(ys[0] + hs[0], ys[1] + hs[1])) - t - 2
            if y_in1 - y_in0 < 3:
                continue
            if ink[y_in0:y_in1, x0 + 1 : x1 - 1].mean() > 0.05:
                continue  # not empty inside
            # sub-pixel: centre line of the top bar and of the baseline next to the strokes (10 mm apart)
            widths = []
            for k, yk, hk in ((i, ys[0], hs[0]), (j, ys[1], hs[1])):
                rows = slice(int(yk + hk / 4), int(yk + 3 * hk / 4))
                patch = darkness[rows, max(0, int(x[k]) - 2) : int(x[k] + w[k]) + 2]
                widths.append(_extent(patch, 1))
            stroke = float(np.mean(widths))
            pad = int(math.ceil(stroke)) + 3
            top_y = _centroid_row(darkness, top - pad, top + t + pad, x0 + 1, x1 - 1)
            bottom = int(round(max(ys[0] + hs[0], ys[1] + hs[1])))
            base_rows = (bottom - t - pad, bottom + pad)
            lead = int(max(4, 0.1 * hm))
            base_l = _centroid_row(darkness, *base_rows, int(x[i]) - lead, int(x[i]) - 1)
            base_r = _centroid_row(darkness, *base_rows, int(x[j] + w[j]) + 1, int(x[j] + w[j]) + lead)
            if base_l is not None:  # a lead-in: the pulse stands on the baseline drawn before it (and after it)
                base_y = float(np.mean([b for b in (base_l, base_r) if b is not None]))
            else:
                # no lead-in (ECG-Image-Kit's pulse abuts the trace, whose first value is anywhere): the foot of
                # the rising stroke is the baseline, its ink ending half a stroke below the line's centre
                c0, c1 = max(0, int(x[i]) - 1), int(x[i] + w[i]) + 1
                mid = int(y[i] + h[i] / 2)
                below = darkness[mid : min(darkness.shape[0], int(y[i] + h[i]) + pad), c0:c1]
                base_y = mid - 0.5 + _extent(below, 0) - 0.5 * stroke
            if top_y is None:
                top_y = top - 0.5 + stroke / 2
            height = base_y - top_y
            cx = [(x[k] + w[k] / 2) for k in (i, j)]
            pulses.append((height, dx, float(np.mean(cx)), top + hm / 2, (x[i], top, x[j] + w[j], top + hm)))
    if not pulses:
        return None
    heights = np.array([p[0] for p in pulses])
    seps = np.array([p[1] for p in pulses])
    ppm_h = heights / PULSE_HEIGHT_MM
    ppm_s = seps / PULSE_WIDTH_MM
    ok = np.abs(ppm_s / ppm_h - 1.0) < 0.15  # 10 mm tall and 5 mm wide: the two must agree
    if not ok.any():
        return None
    med = float(np.median(ppm_h[ok]))
    ok &= np.abs(ppm_h / med - 1.0) < 0.05
    if not ok.any():
        return None  # two pulses that disagree by more than 10 %: neither is convincing
    sel = [p for p, o in zip(pulses, ok, strict=True) if o]
    ppm = float(np.median(0.8 * ppm_h[ok] + 0.2 * ppm_s[ok]))
    # skew from pulses stacked in one column (rows start at the same x)
    angle = 0.0
    if len(sel) >= 2:
        cx = np.array([p[2] for p in sel])
        cy = np.array([p[3] for p in sel])
        col = np.abs(cx - np.median(cx)) < 3 * PULSE_WIDTH_MM * ppm
        if col.sum() >= 2 and np.ptp(cy[col]) > 20 * ppm:
            slope = np.polyfit(cy[col], cx[col], 1)[0]
            if abs(slope) < math.tan(math.radians(6)):
                angle = -math.degrees(math.atan(slope))
    spread = float(np.std(ppm_h[ok]) / ppm) if len(sel) > 1 else 0.05
    conf = min(0.6, 0.25 + 0.1 * len(sel)) * (1.0 if spread < 0.02 else 0.6)
    return PulseEstimate(ppm, angle, conf, len(sel), [p[4] for p in sel])
