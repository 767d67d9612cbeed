"""The page's corners moved onto its own edges in the full-resolution photo.

The keypoint network sees the photo at 256 px, so its corner peaks are 2-35 px off on 2000 px photos (ECG-Image-Kit
pages photographed by the factory's profiles: median 6.5 px, the worst corner of each page). A page printed
without a grid has nothing else to place it by. Its edges do: paper against a table, a screen's page against its
border. Each side between two of the network's corners is searched, across a band either side of it, for the
strongest change of colour that is a step (the colours either side of it differ: a trace, a letter or a grid line
is dark with light on both sides); a line through those points (RANSAC, then least squares on its inliers) is the side,
and two sides meet at a corner. A second pass from the corners so found fits each side only near its two corners
(a curled page's edges bow, and the lines through their middles miss the corners). A corner is moved only where
both its sides were found along most of their length, in either pass. Stage 0 places a sheet so only where no grid
corrects it (:class:`stage0_rectify.infer.RoutingConfig`, ``page_edges``).
"""

from __future__ import annotations

import cv2
import numpy as np

SAMPLES = 96  # points searched along each side (half of them in the first pass, over WHOLE_SIDE)
WHOLE_SIDE = (0.08, 0.92)  # the first pass's span of each side
BAND_SHARE = 0.04  # the band searched either side of a side: this share of its length ...
MIN_BAND_PX = 16  # ... and at least this many image px
PROFILE_SIGMA_PX = 1.2  # the colour profiles across a side are smoothed this much (JPEG and sensor noise)
INLIER_PX = 1.5  # a point within this of a side's line is on it
MIN_INLIER_SHARE = (0.5, 0.6)  # a side is found where this share of its points lie on one line (first pass, second)
NEAR_CORNER_SHARE = 0.35  # the second pass fits each side on this share of its length next to the corner
RANSAC_TRIES = 150  # pairs of points tried as a side's line
STEP_GAP_PX, STEP_SPAN_PX = 3, 6  # an edge point's step: the mean colours 3-8 px either side of it ...
MIN_STEP = 8.0  # ... differ by at least this (RGB distance, 0-255 levels)


def _edge_points(image: np.ndarray, start: np.ndarray, end: np.ndarray,
                 t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the side from ``start`` to ``end`` (image px; the page on its right as the corners run clockwise), at
    positions ``t`` along it (0..1): the signed distance of the strongest colour change across it from the
    side (px, outwards positive; NaN where that change is no step) and the outward unit normal."""
    along = end - start
    length = float(np.linalg.norm(along))
    unit = along / length
    normal = np.array([unit[1], -unit[0]])
    band = int(max(MIN_BAND_PX, BAND_SHARE * length))
    s = np.arange(-band, band + 1, dtype=np.float64)
    pts = (start + t[:, None] * along)[:, None, :] + s[None, :, None] * normal
    # each profile the mean of three, a px apart along the side (sampled in one call from the uint8 photo: a float
    # copy of a whole 4 MP photo cost more than the search)
    shifts = np.array([-1.0, 0.0, 1.0])[:, None, None, None] * unit
    both = (pts[None] + shifts).reshape(-1, s.size, 2).astype(np.float32)
    sampled = cv2.remap(image, both[..., 0], both[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    profiles = sampled.reshape(3, t.size, s.size, -1).astype(np.float32).mean(0)
    profiles = cv2.GaussianBlur(profiles, (0, 0), sigmaX=PROFILE_SIGMA_PX, sigmaY=1e-3)
    change = np.sqrt(((profiles[:, 2:] - profiles[:, :-2]) ** 2).sum(-1))  # colour change at s[1:-1]
    k = np.clip(change.argmax(1), 1, change.shape[1] - 2)
    rows = np.arange(t.size)
    lo, mid, hi = change[rows, k - 1], change[rows, k], change[rows, k + 1]
    curve = lo - 2.0 * mid + hi
    vertex = np.where(curve < 0, 0.5 * (lo - hi) / np.where(curve < 0, curve, -1.0), 0.0)
    offset = s[1:-1][k] + np.clip(vertex, -0.5, 0.5)
    # an edge is a step: the colours either side of it differ (a trace, a grid line or a letter has the same light
    # paper on both sides)
    centre = k + 1  # index into the profile
    near = np.arange(STEP_GAP_PX, STEP_GAP_PX + STEP_SPAN_PX)
    inside = profiles[rows[:, None], np.clip(centre[:, None] - near, 0, s.size - 1)].mean(1)
    outside = profiles[rows[:, None], np.clip(centre[:, None] + near, 0, s.size - 1)].mean(1)
    step = np.linalg.norm(outside - inside, axis=1)
    return np.where(step >= MIN_STEP, offset, np.nan), normal


def _line(t: np.ndarray, offset: np.ndarray, min_share: float, seed: int = 0) -> tuple[float, float] | None:
    """(slope, intercept) of offset against t through most of the points (its step points, finite offsets), or None
    where no line holds ``min_share`` of them: RANSAC over RANSAC_TRIES pairs at once, then least squares."""
    steps = np.flatnonzero(np.isfinite(offset))
    if steps.size < max(2, min_share * t.size):
        return None
    pairs = np.random.default_rng(seed).choice(steps, (RANSAC_TRIES, 2))
    a, b = pairs[:, 0], pairs[:, 1]
    pairs = pairs[t[a] != t[b]]
    if not len(pairs):
        return None
    a, b = pairs[:, 0], pairs[:, 1]
    slope = (offset[b] - offset[a]) / (t[b] - t[a])
    on = np.abs(offset[None, :] - (offset[a][:, None] + slope[:, None] * (t[None, :] - t[a][:, None]))) <= INLIER_PX
    best = on[int(on.sum(1).argmax())]
    if best.mean() < min_share:
        return None
    slope, intercept = np.linalg.lstsq(np.stack([t[best], np.ones(int(best.sum()))], 1), offset[best], rcond=None)[0]
    return float(slope), float(intercept)


def _meet(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """Where the lines through the point pairs ``a`` and ``b`` cross (None: parallel)."""
    da, db = a[1] - a[0], b[1] - b[0]
    m = np.array([da, -db]).T
    if abs(np.linalg.det(m)) < 1e-9:
        return None
    return a[0] + np.linalg.solve(m, b[0] - a[0])[0] * da


def _pass(image: np.ndarray, corners: np.ndarray, near: float | None) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the four sides; ``near``: fit each side only on that share of it next to the corner (else on
    its middle, where the band does not reach the sides across the corners)."""
    t = np.linspace(0.02, 0.98, SAMPLES) if near is not None else np.linspace(*WHOLE_SIDE, SAMPLES // 2)
    sides = []
    for i in range(4):
        start, end = corners[i], corners[(i + 1) % 4]
        sides.append((start, end, t, *_edge_points(image, start, end, t)))
    out, moved = corners.copy(), np.zeros(4, bool)
    for i in range(4):
        lines = []
        for (start, end, t, offset, normal), keep in ((sides[(i - 1) % 4], lambda t: t >= 1.0 - near),
                                                       (sides[i], lambda t: t <= near)):
            mask = keep(t) if near is not None else np.ones(t.size, bool)
            fit = _line(t[mask], offset[mask], MIN_INLIER_SHARE[near is not None])
            if fit is None:
                break
            slope, intercept = fit
            lines.append((start + intercept * normal, end + (slope + intercept) * normal))
        corner = _meet(*lines) if len(lines) == 2 else None
        if corner is not None:
            out[i], moved[i] = corner, True
    return out, moved


def refine_corners(rgb: np.ndarray, corners_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The page corners TL, TR, BR, BL (image px) moved onto the page's edges (see the module doc), and per corner
    whether either pass found its two sides (a corner neither found keeps its place)."""
    image = np.ascontiguousarray(rgb)
    corners = np.asarray(corners_px, np.float64)
    first, found_first = _pass(image, corners, None)
    second, found_second = _pass(image, first, NEAR_CORNER_SHARE)
    return second, found_first | found_second
