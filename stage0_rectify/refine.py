"""Fine correction of a rectified sheet from its own grid: a smooth displacement field (curl, folds, and what
the keypoint homography left of scale, rotation and perspective).

On a sheet that is nearly rectified, the 5 mm lines of each family run almost straight at almost their
canonical pitch P. Demodulating the grid map at 1/P across the lines (exp(-2 pi i y / P) for the horizontal
lines, x for the vertical ones) and low-passing gives a phasor whose phase is -2 pi (y0 + e) / P, with e the
local displacement of the lines from where a perfect map puts them. The phase is read at the nodes of a
coarse grid over the sheet, unwrapped from the strongest node outwards (quality-guided: a node joins through
its strongest unwrapped neighbour), turned into e in sheet px, its amplitude-weighted mean removed (the grid
only knows displacement up to a whole period, so the page's placement stays the keypoints'), and smoothed by
a robust cubic surface per axis (moire from a screen or an unwrapping slip moves a minority of nodes). The
correction is d = -e on the :class:`~common.sheet_map.SheetMap`'s displacement grid: sheet = H(u) + d(H(u)).

On 16 factory photos (/tmp/eval_kp, 4 held-out records x 0005/0006/0009/0010), starting from the homography of
the TRUE corners, the 95th percentile of the grid-point error fell on 7 pages (0005: 10.4 -> 5.5, 5.1 -> 4.0 px)
and rose on 6 (four 0006 pages, whose true map is an exact homography: 0 -> 0.6-6.7 px, and two folded 0010
pages: a fold is not smooth); from corners off by 4 px (sd, image px) it fell on 10 and rose on 4. End to end
(``pipeline cv`` on the 24 photos of that set) the correction is worth 0005 7.81 -> 12.54 dB, 0009 5.10 -> 7.42,
0010 4.61 -> 7.81 and 0006 9.03 -> 8.95 (screens: moire disturbs the phase).
"""

from __future__ import annotations

import heapq
import math

import cv2
import numpy as np

from common.geometry import CANONICAL, SheetGeometry
from stage0_rectify.grid import grid_map

WORK_SCALE = 0.25  # the sheet is read at a quarter of its resolution (5 mm = 9.8 px: enough for the fundamental)
NODES_HW = (15, 19)  # displacement grid nodes (rows, columns), corner to corner: ~120 sheet px apart
BLUR_SHEET_PX = 45.0  # Gaussian sigma of the demodulation low-pass (sheet px): about one 5 mm box
MIN_REL_AMP = 0.25  # a node whose phasor is below this share of the strong nodes' (90th pct) is not read
MIN_READ_SHARE = 0.5  # both families must be read at this share of the nodes, else no correction
MAX_DISP_PX = 40.0  # larger corrections are not believed (sheet px)
POLY_DEGREE = 3  # the correction is a cubic surface per axis (curl and perspective residue are smooth)
HUBER_PX = 2.0  # residuals beyond this (sheet px) are down-weighted in the fit


def _phasor_field(g: np.ndarray, along_x: bool, period: float, sigma: float) -> np.ndarray:
    """Low-passed g * exp(-2 pi i t / period), t = x (along_x) or y, as a complex (H, W) field."""
    h, w = g.shape
    t = np.arange(w if along_x else h, dtype=np.float64) * (2 * math.pi / period)
    c, s = np.cos(t).astype(np.float32), (-np.sin(t)).astype(np.float32)
    if along_x:
        re, im = g * c[None, :], g * s[None, :]
    else:
        re, im = g * c[:, None], g * s[:, None]
    re = cv2.GaussianBlur(re, (0, 0), sigma)
    im = cv2.GaussianBlur(im, (0, 0), sigma)
    return re + 1j * im


def _unwrap_quality(phase: np.ndarray, amp: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Quality-guided 2-D phase unwrapping over the nodes marked ``ok`` (others stay NaN)."""
    out = np.full(phase.shape, np.nan)
    if not ok.any():
        return out
    start = np.unravel_index(int(np.argmax(np.where(ok, amp, -1))), amp.shape)
    out[start] = phase[start]
    heap: list = []

    def push_neighbours(i: int, j: int) -> None:
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < phase.shape[0] and 0 <= b < phase.shape[1] and ok[a, b] and np.isnan(out[a, b]):
                heapq.heappush(heap, (-amp[a, b], a, b, i, j))

    push_neighbours(*start)
    while heap:
        _, a, b, i, j = heapq.heappop(heap)
        if not np.isnan(out[a, b]):
            continue
        out[a, b] = out[i, j] + (phase[a, b] - phase[i, j] + math.pi) % (2 * math.pi) - math.pi
        push_neighbours(a, b)
    return out


def _poly_terms(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    return np.stack([x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)], -1)


def _robust_poly(values: np.ndarray, weight: np.ndarray, degree: int = POLY_DEGREE) -> np.ndarray:
    """A smooth surface through ``values`` on the node grid: a polynomial of ``degree`` in x, y, fitted by
    weighted least squares with Huber re-weighting (an unwrapping slip or moire patch is a minority of nodes)."""
    gh, gw = values.shape
    y, x = np.mgrid[0:gh, 0:gw]
    a = _poly_terms(x.ravel() / (gw - 1) * 2 - 1, y.ravel() / (gh - 1) * 2 - 1, degree)
    v = values.ravel()
    w0 = np.where(np.isfinite(v), weight.ravel(), 0.0)
    v = np.nan_to_num(v)
    w = w0.copy()
    coef = np.zeros(a.shape[1])
    for _ in range(6):
        sw = np.sqrt(w)
        coef = np.linalg.lstsq(a * sw[:, None], v * sw, rcond=None)[0]
        r = np.abs(a @ coef - v)
        w = w0 * np.minimum(1.0, HUBER_PX / np.maximum(r, 1e-9))
    return (a @ coef).reshape(gh, gw)


def grid_displacement(sheet_rgb: np.ndarray, geometry: SheetGeometry = CANONICAL,
                      nodes_hw: tuple[int, int] = NODES_HW) -> tuple[np.ndarray | None, dict]:
    """The displacement grid (gh, gw, 2) (sheet px, d = -e; see the module doc) of a nearly rectified sheet,
    or None when its grid is too weak or the answer implausible; and details."""
    small = cv2.resize(sheet_rgb, None, fx=WORK_SCALE, fy=WORK_SCALE, interpolation=cv2.INTER_AREA)
    g = grid_map(small)
    g = g - cv2.blur(g, (31, 31))
    period = geometry.big_box_mm * geometry.px_per_mm * WORK_SCALE
    sigma = BLUR_SHEET_PX * WORK_SCALE
    gh, gw = nodes_hw
    nx = (np.linspace(0, geometry.width_px - 1, gw) + 0.5) * WORK_SCALE - 0.5
    ny = (np.linspace(0, geometry.height_px - 1, gh) + 0.5) * WORK_SCALE - 0.5
    mx, my = np.meshgrid(nx.astype(np.float32), ny.astype(np.float32))
    disp = np.zeros((gh, gw, 2), np.float32)
    info: dict = {}
    for axis, along_x in ((0, True), (1, False)):  # d_x from the vertical lines, d_y from the horizontal ones
        field = _phasor_field(g, along_x, period, sigma)
        re = cv2.remap(field.real.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        im = cv2.remap(field.imag.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        amp = np.hypot(re, im).astype(np.float64)
        ok = amp >= MIN_REL_AMP * max(float(np.percentile(amp, 90)), 1e-9)
        info[f"read_share_{'xy'[axis]}"] = round(float(ok.mean()), 3)
        if ok.mean() < MIN_READ_SHARE:
            info["reject"] = f"grid too weak along {'xy'[axis]}"
            return None, info
        phase = _unwrap_quality(np.arctan2(im, re).astype(np.float64), amp, ok)
        e = -phase * period / (2 * math.pi) / WORK_SCALE  # sheet px, up to a constant
        w = np.where(ok, amp, 0.0)
        e = e - float(np.nansum(e * w) / w.sum())
        disp[..., axis] = -_robust_poly(e, w)
        # what the smooth correction leaves: the lines' rms distance from it over the nodes read (sheet px)
        left = np.where(ok, np.nan_to_num(e + disp[..., axis]), 0.0)
        info[f"residual_px_{'xy'[axis]}"] = round(float(np.sqrt(np.sum(w * left**2) / w.sum())), 3)
    peak = float(np.abs(disp).max())
    info["max_disp_px"] = round(peak, 1)
    if peak > MAX_DISP_PX:
        info["reject"] = "implausibly large correction"
        return None, info
    return disp, info
