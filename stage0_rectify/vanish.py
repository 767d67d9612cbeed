"""A photo's perspective undone from its straight lines (two vanishing points), for the pages the keypoint
network and the grid rectifier both place badly.

A sheet's grid lines, the trace rows' baselines, the page's and a screen's edges run in two directions; in a
photo each family of them meets at a vanishing point. The line through both points (the horizon) sent back to
infinity and the two families turned onto the image axes give a fronto-parallel view of the page: a rectangle
again, of unknown scale and position, which :class:`stage0_rectify.infer.KeypointRectifier` reads as it reads
any photo. Segments come from OpenCV's line segment detector on a downscaled grey copy; each family's point is
a RANSAC intersection of two segments, refined on its inliers by least squares. The lines leave the view's aspect
open (how much of it is foreshortening); where the view shows a grid, :func:`grid_aspect` reads it from the grid's
squares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stage0_rectify.grid import grid_map

WORK_SIDE_MAX_PX = 1600  # the segments are found on a copy whose long side is at most this (pyramid halvings)
MIN_SEGMENT_SHARE = 0.02  # of the work copy's long side: shorter segments (text, trace wiggles) are left out
FAMILY_HALF_WIDTH_DEG = 12.0  # a family: the segments within this angle of a peak of the length-weighted
# angle histogram (perspective fans a family out by a few degrees across a photo)
MIN_FAMILY_SEPARATION_DEG = 30.0  # the second family's peak at least this far from the first's
MIN_FAMILY_SEGMENTS = 5  # fewer segments in either family: no view
INLIER_DEG = 0.7  # a segment meets a vanishing point where the line from its middle to the point is this close to it
RANSAC_ITERATIONS = 400
MIN_INLIER_LENGTH_SHARE = 0.15  # of a family's segment length, agreeing on one point
MAX_AREA_RATIO = 16.0  # the view's local area scale at the image's corners within this factor of its centre's
# (a horizon near or across the photo: segments of clutter, not of a page)
MIN_CHANGE_PX = 8.0  # a view moving no corner of the photo this far (work px) is the photo itself: nothing to undo
MAX_VIEW_SIDE_RATIO = 1.5  # the view's canvas at most this many times the photo's long side (downscaled if more)
GRID_PERIOD_PX = (3.0, 80.0)  # the grid's pitch searched in the view (1 mm to 5 mm lines, px)
MAX_ASPECT_CHANGE = 0.25  # the pitch across y within this share of the pitch across x: the same lines
MIN_PEAK_TO_MEDIAN = 8.0  # a pitch: its spectral peak this many times the spectrum's median power
MIN_ASPECT_CHANGE = 0.005  # a smaller stretch is left undone
GRID_REGION_PERIOD_PX = 8  # grid_region reads the 5 mm lines at about this many px a period ...
GRID_REGION_SHARE = 0.15  # ... and takes for grid what shows them at this share of the view's strongest (99th pct)
ROTATION_FAMILY_DEG = 10.0  # content_rotation_h: segments within this of the x or the y axis ...
MIN_ROTATION_SEGMENTS = 10  # ... at least this many of each ...
ROTATION_AGREE_DEG = 0.15  # ... turned alike within this ...
MIN_ROTATION_DEG = 0.2  # ... by at least this (less is left as drawn)


@dataclass(frozen=True)
class LineView:
    """The fronto-parallel view: ``image_to_view_h`` maps photo px to view px; the view is ``view_hw`` px."""

    image_to_view_h: np.ndarray
    view_hw: tuple[int, int]
    info: dict

    def stretched_y(self, factor: float) -> LineView:
        """The same view stretched ``factor`` times along y (its aspect, which the lines leave open)."""
        stretch = np.diag([1.0, float(factor), 1.0])
        hw = (int(math.ceil(self.view_hw[0] * factor)), self.view_hw[1])
        return LineView(stretch @ self.image_to_view_h, hw, dict(self.info, line_view_aspect=round(float(factor), 4)))

    def warp(self, rgb: np.ndarray) -> np.ndarray:
        """The photo seen through the view; beyond the photo grey, as the keypoint network's letterbox pads."""
        h, w = self.view_hw
        return cv2.warpPerspective(rgb, self.image_to_view_h, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(127, 127, 127))


def _work_grey(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """The grey work copy the segments are found on (pyramid halvings to a long side of at most
    WORK_SIDE_MAX_PX), and how many image px one of its px spans."""
    small, factor = rgb, 1
    while max(small.shape[:2]) > WORK_SIDE_MAX_PX:
        small, factor = cv2.pyrDown(small), factor * 2
    return (cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small), factor


def _segments(grey: np.ndarray) -> np.ndarray:
    """(N, 4) float64 segments x1, y1, x2, y2 found by OpenCV's line segment detector."""
    found = cv2.createLineSegmentDetector().detect(grey)[0]
    return np.zeros((0, 4)) if found is None else found[:, 0, :].astype(np.float64)


def _families(seg: np.ndarray, min_len: float) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The two main direction families (segments, lengths), the one nearer horizontal first; None without two."""
    d = seg[:, 2:] - seg[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    keep = length >= min_len
    seg, d, length = seg[keep], d[keep], length[keep]
    if len(seg) < 2 * MIN_FAMILY_SEGMENTS:
        return None
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180.0
    hist = np.bincount(ang.astype(int) % 180, weights=length, minlength=180)
    hist = np.convolve(np.r_[hist[-2:], hist, hist[:2]], np.ones(5) / 5.0, "valid")  # circular 5-degree box
    peaks = [int(np.argmax(hist))]
    away = np.abs((np.arange(180) - peaks[0] + 90) % 180 - 90) >= MIN_FAMILY_SEPARATION_DEG
    peaks.append(int(np.argmax(np.where(away, hist, -1.0))))
    fams = []
    for peak in peaks:
        member = np.abs((ang - peak + 90) % 180 - 90) < FAMILY_HALF_WIDTH_DEG
        if member.sum() < MIN_FAMILY_SEGMENTS:
            return None
        fams.append((seg[member], length[member]))
    tilt = [min(p % 180, 180 - p % 180) for p in peaks]  # the angle from horizontal
    return fams if tilt[0] <= tilt[1] else fams[::-1]


def _vanishing_point(seg: np.ndarray, length: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A family's vanishing point (homogeneous, unit norm) and the share of its length that meets it."""
    ends_a = np.c_[seg[:, :2], np.ones(len(seg))]
    ends_b = np.c_[seg[:, 2:], np.ones(len(seg))]
    lines = np.cross(ends_a, ends_b)
    lines /= np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    mid = 0.5 * (seg[:, :2] + seg[:, 2:])
    along = (seg[:, 2:] - seg[:, :2]) / length[:, None]
    cos_tol = math.cos(math.radians(INLIER_DEG))

    def meets(v: np.ndarray) -> np.ndarray:
        to_v = v[:2] - v[2] * mid  # towards the point from each middle (a direction where the point is at infinity)
        norm = np.maximum(np.linalg.norm(to_v, axis=1), 1e-12)
        return np.abs(np.sum(to_v * along, axis=1)) / norm >= cos_tol

    weights = length / length.sum()
    best, best_len = None, -1.0
    for _ in range(RANSAC_ITERATIONS):
        i, j = rng.choice(len(seg), 2, replace=False, p=weights)
        v = np.cross(lines[i], lines[j])
        if np.linalg.norm(v) < 1e-12:
            continue
        met = float(length[meets(v)].sum())
        if met > best_len:
            best, best_len = v / np.linalg.norm(v), met
    if best is None:
        return np.array([1.0, 0.0, 0.0]), 0.0
    inl = meets(best)
    for _ in range(3):  # least squares on the inliers: the point closest to all their lines, weighted by length
        if inl.sum() < 2:
            break
        v = np.linalg.svd(lines[inl] * length[inl, None])[2][-1]
        best, inl = v, meets(v)
    return best, float(length[inl].sum() / length.sum())


def _local_area(h: np.ndarray, x: float, y: float) -> float:
    """|det| of the homography's Jacobian at (x, y): how much it scales area there."""
    p = h @ np.array([x, y, 1.0])
    jac = (h[:2, :2] * p[2] - np.outer(p[:2], h[2, :2])) / p[2] ** 2
    return abs(float(np.linalg.det(jac)))


def _rectifying_h(v_h: np.ndarray, v_v: np.ndarray, hw: tuple[int, int]) -> np.ndarray | None:
    """The homography sending the horizon back to infinity and the families along x and y, scaled 1:1 and
    fixed at the image's centre; None where the horizon runs through the middle of the image."""
    h, w = hw
    side = float(max(h, w))
    norm = np.array([[1 / side, 0, -0.5 * w / side], [0, 1 / side, -0.5 * h / side], [0, 0, 1.0]])
    a, b = norm @ v_h, norm @ v_v
    horizon = np.cross(a, b)
    if abs(horizon[2]) < 1e-9 * np.linalg.norm(horizon):
        return None
    horizon = horizon / horizon[2]
    proj = np.array([[1.0, 0, 0], [0, 1.0, 0], [horizon[0], horizon[1], 1.0]])
    d_h, d_v = (proj @ a)[:2], (proj @ b)[:2]  # both at infinity now: directions
    d_h, d_v = d_h / np.linalg.norm(d_h), d_v / np.linalg.norm(d_v)
    d_h = d_h if d_h[0] >= 0 else -d_h
    d_v = d_v if d_v[1] >= 0 else -d_v
    basis = np.c_[d_h, d_v]
    if abs(np.linalg.det(basis)) < 0.2:  # the families nearly parallel once the view is undone
        return None
    turn = np.eye(3)
    turn[:2, :2] = np.linalg.inv(basis)
    m = turn @ proj @ norm
    c = m @ np.array([0.5 * w, 0.5 * h, 1.0])
    scale = 1.0 / math.sqrt(_local_area(m, 0.5 * w, 0.5 * h))
    fix = np.array([[scale, 0, 0.5 * w - scale * c[0] / c[2]], [0, scale, 0.5 * h - scale * c[1] / c[2]], [0, 0, 1]])
    return fix @ m


def line_view(rgb: np.ndarray, seed: int = 0) -> LineView | None:
    """The photo's fronto-parallel view from its two line families, or None (no two families meeting at
    points, a horizon across the photo, or a photo already seen from the front)."""
    grey, factor = _work_grey(rgb)
    fams = _families(_segments(grey), MIN_SEGMENT_SHARE * max(grey.shape))
    if fams is None:
        return None
    rng = np.random.default_rng(seed)
    (v_h, share_h), (v_v, share_v) = (_vanishing_point(s, ln, rng) for s, ln in fams)
    info = {"line_segments": [len(fams[0][0]), len(fams[1][0])],
            "line_inlier_share": [round(share_h, 3), round(share_v, 3)]}
    if min(share_h, share_v) < MIN_INLIER_LENGTH_SHARE:
        return None
    m = _rectifying_h(v_h, v_v, grey.shape[:2])
    if m is None:
        return None
    gh, gw = grey.shape[:2]
    corners = np.array([[0, 0], [gw - 1, 0], [gw - 1, gh - 1], [0, gh - 1]], np.float64)
    centre_area = _local_area(m, 0.5 * gw, 0.5 * gh)
    areas = [_local_area(m, x, y) / centre_area for x, y in corners]
    if max(areas) > MAX_AREA_RATIO or min(areas) < 1.0 / MAX_AREA_RATIO:
        return None
    moved = np.c_[corners, np.ones(4)] @ m.T
    if np.any(moved[:, 2] * (m[2] @ [0.5 * gw, 0.5 * gh, 1.0]) <= 0):  # a corner beyond the horizon
        return None
    moved = moved[:, :2] / moved[:, 2:]
    if np.max(np.linalg.norm(moved - corners, axis=1)) < MIN_CHANGE_PX:
        return None
    # onto a canvas holding the photo's corners (clipped to a photo's size beyond each side), full resolution
    to_full = np.diag([factor, factor, 1.0])
    h = to_full @ m @ np.linalg.inv(to_full)
    full_h, full_w = rgb.shape[:2]
    moved = moved * factor
    lo = np.maximum(moved.min(0), [-full_w, -full_h])
    hi = np.minimum(moved.max(0), [2.0 * full_w, 2.0 * full_h])
    scale = min(1.0, MAX_VIEW_SIDE_RATIO * max(full_h, full_w) / float(max(hi - lo)))
    place = np.array([[scale, 0, -scale * lo[0]], [0, scale, -scale * lo[1]], [0, 0, 1.0]])
    view_hw = (int(math.ceil(scale * (hi[1] - lo[1]))), int(math.ceil(scale * (hi[0] - lo[0]))))
    info["line_view_scale"] = round(scale, 3)
    return LineView(place @ h, view_hw, info)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def content_rotation_h(rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
    """For a whole page whose content is turned in its frame (ECG-Image-Kit's rotated renders: the page turned a few
    degrees inside a canvas of the same size, its corners cut and the wedges filled), the 3x3 map from the image
    to the image turned upright about its centre, and the angle (degrees); None where the page's near-flat and
    near-upright lines do not agree on one turn of at least MIN_ROTATION_DEG. Each family's angle is the
    length-weighted median of its segments' (within ROTATION_FAMILY_DEG of the axis); a turned page turns both
    alike (eikB's renders turned 2-4 deg with ten or more segments in each family: within 0.07 deg), a wrinkled
    or sheared one not."""
    grey, _ = _work_grey(rgb)
    seg = _segments(grey)
    d = seg[:, 2:] - seg[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    keep = length >= MIN_SEGMENT_SHARE * max(grey.shape)
    d, length = d[keep], length[keep]
    ang = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) + 90.0) % 180.0 - 90.0  # from the x axis, (-90, 90]
    flat = np.abs(ang) < ROTATION_FAMILY_DEG
    upright = np.abs(np.abs(ang) - 90.0) < ROTATION_FAMILY_DEG
    if flat.sum() < MIN_ROTATION_SEGMENTS or upright.sum() < MIN_ROTATION_SEGMENTS:
        return None
    a_flat = _weighted_median(ang[flat], length[flat])
    a_up = _weighted_median(ang[upright] - np.sign(ang[upright]) * 90.0, length[upright])
    if abs(a_flat - a_up) > ROTATION_AGREE_DEG or abs(a_flat + a_up) / 2.0 < MIN_ROTATION_DEG:
        return None
    angle = (a_flat + a_up) / 2.0
    full_h, full_w = rgb.shape[:2]
    # y grows downwards: OpenCV's angle (counter-clockwise as displayed) turns lines at +angle back to flat
    m = cv2.getRotationMatrix2D(((full_w - 1) / 2.0, (full_h - 1) / 2.0), angle, 1.0)
    return np.vstack([m, [0.0, 0.0, 1.0]]), angle


def _pitch_px(profile: np.ndarray, near_px: float | None = None) -> tuple[float, float] | None:
    """The strongest period of a projection profile (px, sub-bin by a parabola through the peak) and its power
    over the spectrum's median; ``near_px``: only periods within MAX_ASPECT_CHANGE of it."""
    prof = profile - cv2.GaussianBlur(profile[None], (0, 0), 8.0)[0]  # the lines, not the page's shading
    power = np.abs(np.fft.rfft(prof * np.hanning(prof.size))) ** 2
    freq = np.fft.rfftfreq(prof.size)
    lo, hi = (1.0 / GRID_PERIOD_PX[1], 1.0 / GRID_PERIOD_PX[0]) if near_px is None else (
        1.0 / (near_px * (1 + MAX_ASPECT_CHANGE)), 1.0 / (near_px * (1 - MAX_ASPECT_CHANGE)))
    band = np.nonzero((freq >= lo) & (freq <= hi))[0]
    band = band[(band > 0) & (band < freq.size - 1)]
    if band.size == 0:
        return None
    k = int(band[np.argmax(power[band])])
    a, b, c = np.log(power[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return 1.0 / (freq[k] + shift * freq[1]), float(power[k] / (np.median(power[1:]) + 1e-12))


def grid_region(view_rgb: np.ndarray, px_per_mm: float, big_box_mm: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) view px of the largest region where both line families of a grid of ``px_per_mm`` show (their
    ``big_box_mm`` fundamental demodulated over two periods, at least GRID_REGION_SHARE of its 99th percentile),
    widened by a big box each way and clipped to the view; None where nothing shows. A view holds the page and its
    background: the page's place is where its grid is, not the bounding box of every dark pixel (a table's or
    curtain's texture)."""
    period = big_box_mm * px_per_mm
    f = max(1, int(period // GRID_REGION_PERIOD_PX))
    small = cv2.resize(view_rgb, (max(1, view_rgb.shape[1] // f), max(1, view_rgb.shape[0] // f)),
                       interpolation=cv2.INTER_AREA)
    g = grid_map(small)
    g = g - cv2.blur(g, (15, 15))
    p = period / f
    amps = []
    for axis in (1, 0):
        phase = 2 * np.pi * np.arange(g.shape[axis], dtype=np.float32) / p
        shape = (1, -1) if axis == 1 else (-1, 1)
        parts = [cv2.GaussianBlur(g * wave(phase).reshape(shape), (0, 0), 2 * p) for wave in (np.cos, np.sin)]
        amps.append(np.hypot(*parts))
    amp = np.minimum(*amps)
    strong = float(np.percentile(amp, 99))
    if strong <= 1e-3:  # no line of that pitch anywhere
        return None
    mask = (amp >= GRID_REGION_SHARE * strong).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) * f for v in stats[k, :4])
    pad = int(math.ceil(period))
    hh, ww = view_rgb.shape[:2]
    return max(0, x - pad), max(0, y - pad), min(ww, x + w + pad), min(hh, y + h + pad)


def grid_aspect(view_rgb: np.ndarray) -> float | None:
    """How much to stretch a fronto-parallel view along y for its grid's squares to be square: the grid's pitch
    across x over its pitch across y (projection profiles of :func:`stage0_rectify.grid.grid_map`); None where
    either pitch is not clear or the stretch is negligible."""
    g = grid_map(view_rgb)
    across_x = _pitch_px(g.mean(axis=0))
    if across_x is None or across_x[1] < MIN_PEAK_TO_MEDIAN:
        return None
    across_y = _pitch_px(g.mean(axis=1), near_px=across_x[0])
    if across_y is None or across_y[1] < MIN_PEAK_TO_MEDIAN:
        return None
    aspect = across_x[0] / across_y[0]
    return aspect if abs(aspect - 1.0) >= MIN_ASPECT_CHANGE else None
