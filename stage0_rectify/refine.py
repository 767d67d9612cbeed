"""Fine correction of a rectified sheet from its own grid: a displacement field (curl, folds, and what the
keypoint homography left of scale, rotation and perspective).

On a sheet that is nearly rectified, the 5 mm lines of each family run almost straight at almost their
canonical pitch P. Demodulating a grid map at 1/P across the lines (exp(-2 pi i y / P) for the horizontal
lines, x for the vertical ones) and low-passing gives a phasor whose phase is -2 pi (y0 + e) / P, with e the
local displacement of the lines from where a perfect map puts them. The grid map is whichever of four shows the
grid the most periodic: the darkness-and-colour map of the grid rectifier, or the colour saturation alone
(a coloured grid under black ink, whose QRS strokes and letters are vertical lines at no particular phase),
each as drawn or with the ink masked out (:func:`grid_maps`).
The phase is read at the nodes of a coarse grid over the sheet and turned into e in sheet px two ways:
unwrapped from the strongest node outwards (quality-guided), and taken within half a period of a fitted
surface (no unwrapping: a homography good to half a period, 19 px, needs none, and unwrapping can slip a period
across a band of weak nodes); the reading the fitted surface leaves the closer is kept. Its amplitude-weighted
mean is removed (the grid only knows displacement up to a whole period, so the page's placement stays the
keypoints'), a robust cubic surface per axis is fitted (moire from a screen moves a minority of nodes), and
what the surface leaves consistently over neighbouring reliable nodes (3x3 median, then 3x3 mean) is added
back: a fold or crease is not smooth. The correction is d = -e on the :class:`~common.sheet_map.SheetMap`'s
displacement grid: sheet = H(u) + d(H(u)).

A crumpled or soaked page moves its lines by 5-9 px within 200 px, which that first reading (nodes 120 px apart,
an 80 px low-pass) smooths away: a QRS spike 5 px out of place is a time shift that costs most of its energy. Where
the first reading leaves the lines far from its correction, :class:`~stage0_rectify.infer.KeypointRectifier`
reads the grid again on the sheet it made, finer (:data:`FINE_NODES_HW`, :data:`FINE_BLUR_SHEET_PX`), and
composes the two (:func:`refined_map`), unless the finer reading fits its own lines worse than the first did (a
screen's moire). Where that finer reading is kept, a last one from the 1 mm lines (:func:`minor_displacement`)
places each line five times as finely, within half a millimetre: a QRS stroke 1-2 px out of place still costs
most of its energy (kp2 10000-0009: grid points 1.3 px p95 after the 5 mm passes, 11.7 dB; 0.3 px and 19.5 dB
after the 1 mm pass).

Measured on the factory's held-out photos (57 keypoint sheets of /tmp/eval_kp and a second set of 12 records
x 0005/0006/0009/0010; the error of d against the true map at the nodes, as the change of x error over four
node steps, ~470 px, the stretch of a panel; median / mean, sheet px): the cubic of the darkness map alone
1.68 / 3.22, this reading 1.09 / 2.39. End to end, ``pipeline cv`` over both sets (18 pages a type): 0005
14.4 -> 16.5 dB, 0006 11.9 -> 12.0, 0009 10.9 -> 11.5, 0010 5.3 -> 7.0 (docs/experiments.md).
"""

from __future__ import annotations

import functools
import heapq
import math

import cv2
import numpy as np

from common.geometry import CANONICAL, SheetGeometry
from common.sheet_map import SheetMap
from stage0_rectify.grid import darkness, grid_map

WORK_SCALE = 0.25  # the sheet is read at a quarter of its resolution (5 mm = 9.8 px: enough for the fundamental)
NODES_HW = (15, 19)  # displacement grid nodes (rows, columns), corner to corner: ~120 sheet px apart
BLUR_SHEET_PX = 80.0  # Gaussian sigma of the demodulation low-pass (sheet px): about two 5 mm boxes
FINE_NODES_HW = (29, 37)  # the second, finer pass (:func:`refined_map`): nodes ~60 sheet px apart ...
FINE_BLUR_SHEET_PX = 40.0  # ... read through a low-pass of one 5 mm box: a crumpled page's creases move the lines
# by 5-9 px within 200 px, which the first pass's 120 px nodes and 80 px low-pass smooth away
MIN_REL_AMP = 0.25  # a node whose phasor is below this share of the strong nodes' (90th pct) is not read
MIN_READ_SHARE = 0.5  # both families must be read at this share of the nodes, else no correction
MINOR_MIN_READ_SHARE = 0.3  # the 1 mm pass corrects a family believed at this share of its nodes (the rest take
# their believed neighbours' mean): torn and crumpled photos show their 1 mm lines on 32-49 % of the sheet (kp4
# 10001-0010 7.8 -> 11.5 dB, eikP 20003-0010 7.1 -> 10.9); at 0.5 they were left uncorrected
MAX_DISP_PX = 40.0  # larger corrections are not believed (sheet px) ...
MAX_DISP_CONSISTENT_PX = 400.0  # ... unless the grid's lines lie within LARGE_DISP_RESIDUAL_PX of the correction on
LARGE_DISP_RESIDUAL_PX = 2.0  # both axes (held-out photos the keypoints placed 45-90 px off in places: 0.5-1.3 px
# left where the correction was right, 4.0-4.2 on a page where it was wrong; a crumpled print placed 116 px off
# at its worst left 1.3-1.4 px and read 16.8 dB corrected, -0.5 uncorrected; the inconsistent readings of
# 48-186 px on the factory photos left 2.3-13 px; two real photos whose keypoint sheets were 205-226 px off at
# their worst read consistently, 1.0-1.9 px, and corrected show their grid at the canonical pitch and square)
PITCH_STRIP_PX = 256  # sheet px across each strip whose profile spectrum the 5 mm pitch is read from
PITCH_SEARCH = 0.3  # the pitch is looked for within this share of the canonical one
PITCH_MIN_PROMINENCE = 40.0  # its spectral peak over the search band's median power, at least (held-out photos:
# 40-8000 where the pitch read within 0.01 of the truth, 3-38 on screens and crumpled pages it misread)
PITCH_TOL = 0.02  # a sheet whose pitch is off by more than this share anywhere is corrected first
PITCH_TILES_HW = (3, 3)  # the pitch is also read per tile: its change across the sheet is the view's perspective
PITCH_MIN_TILE_PROMINENCE = 20.0  # a tile's reading counts from here (fewer strips: lower peaks; held-out photos:
# within 0.02 of the true local scale from 20 up)
MINOR_WORK_SCALE = 0.5  # the 1 mm lines are read at half resolution (1 mm = 3.9 px: above Nyquist)
MINOR_NODE_SPACING_PX = 40.0  # the 1 mm lines' pass (:func:`minor_displacement`): nodes this far apart ...
MINOR_BLUR_SHEET_PX = 24.0  # ... read through a Gaussian low-pass of this sigma (sheet px; three 1 mm boxes)
MINOR_MIN_COHERENCE = 0.9  # a node is believed where its 3x3 neighbourhood's unit phasors average this long
MINOR_INK_DILATE_PX = 3  # ink (darker than the grid map's cap) and this box (map px) around it are not read
MINOR_FILL_NODES = 1.5  # nodes not believed take their believed neighbours' mean within this sigma (nodes)
POLY_DEGREE = 3  # the correction is a cubic surface per axis (curl and perspective residue are smooth)
HUBER_PX = 2.0  # residuals beyond this (sheet px) are down-weighted in the fit


def _edge_ramp(n: int, sigma: float) -> np.ndarray:
    """(n,) weight rising as sin^2 from 0 at the sheet's edge to 1 at ``sigma`` px inside it (one axis of the
    sheet's edge taper, which is their outer product)."""
    d = np.minimum(np.arange(n) + 0.5, n - 0.5 - np.arange(n)) / sigma
    return np.sin(0.5 * np.pi * np.clip(d, 0.0, 1.0)) ** 2


@functools.lru_cache(maxsize=16)
def _node_windows(n: int, sigma: float, nodes: tuple[float, ...],
                  period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of n px: each node's Gaussian window (sigma, cut at 4 sigma like ``cv2.GaussianBlur``)
    times the edge taper, (k, n) float32; the same times the carrier exp(-2 pi i t / period), complex64; and
    each window's sum. Nodes outside the sheet are read at its edge pixel. The same for every map, line family
    and page of a size."""
    pos = np.arange(n, dtype=np.float64)
    off = (pos[None, :] - np.clip(np.asarray(nodes), 0, n - 1)[:, None]) / sigma
    win = np.where(np.abs(off) <= 4.0, np.exp(-0.5 * off**2), 0.0) * _edge_ramp(n, sigma)[None, :]
    carrier = np.exp(-1j * pos * (2 * math.pi / period))
    out = (win.astype(np.float32), (win * carrier[None, :]).astype(np.complex64), win.sum(axis=1))
    for a in out:
        a.flags.writeable = False
    return out


def _node_phasors(g: np.ndarray, period: float, sigma: float, nx: np.ndarray, ny: np.ndarray) -> list:
    """(phase, amplitude) of the 5 mm fundamental at the nodes (columns at x = ``nx``, rows at y = ``ny``, map
    px), for the vertical then the horizontal lines: g * exp(-2 pi i t / period), t = x or y, low-passed by a
    Gaussian of ``sigma`` px, read at the nodes only. The window and the carrier are separable, so each family
    is two matrix products (a twentieth of blurring the whole map).

    Near the sheet's edges the low-pass sees only the sheet, through a taper that falls smoothly to 0 at the
    edge (normalised convolution): a mirrored border adds the grid's mirror image, and a window cut off hard
    lets the sharp lines' harmonics into the fundamental; either bent the edge nodes' reading on an
    undisplaced sheet by up to 0.7 px."""
    h, w = g.shape
    wy, wy_carrier, sum_y = _node_windows(h, float(sigma), tuple(map(float, ny)), float(period))
    wx, wx_carrier, sum_x = _node_windows(w, float(sigma), tuple(map(float, nx)), float(period))
    inside = np.outer(sum_y, sum_x)
    vertical = (wy @ g) @ wx_carrier.T / inside
    horizontal = (wy_carrier @ g) @ wx.T / inside
    return [(np.angle(f).astype(np.float64), np.abs(f).astype(np.float64)) for f in (vertical, horizontal)]


def _local_mean(g: np.ndarray, size: int) -> np.ndarray:
    """Box mean over what of the box lies on the sheet (a mirrored border would bend the edge nodes' phase)."""
    inside = cv2.blur(np.ones_like(g), (size, size), borderType=cv2.BORDER_CONSTANT)
    return cv2.blur(g, (size, size), borderType=cv2.BORDER_CONSTANT) / inside


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
        # the normal equations (10 x 10 for a cubic): a least-squares solve of the whole node system took 1-12 ms
        # a fit (LAPACK's threads waiting on a busy machine), twenty fits a photo
        aw = a * w[:, None]
        coef = np.linalg.lstsq(aw.T @ a, aw.T @ v, rcond=None)[0]
        r = np.abs(a @ coef - v)
        w = w0 * np.minimum(1.0, HUBER_PX / np.maximum(r, 1e-9))
    return (a @ coef).reshape(gh, gw)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _surface_unwrapped(phase: np.ndarray, w: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    """The displacement e (sheet px, NaN where unread) by quality-guided unwrapping, and its robust surface."""
    e = -_unwrap_quality(phase, w, w > 0) * period / (2 * math.pi)
    e = e - float(np.nansum(e * w) / w.sum())
    return e, _robust_poly(e, w)


def _surface_rewrapped(phase: np.ndarray, w: np.ndarray, period: float,
                       rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The same without unwrapping: each node's phase is taken within half a period of the surface, starting
    from the circular mean. Where the homography is good (lines within half a period, ±19 sheet px, of their
    place everywhere) no node can slip a period; unwrapping can, along a chain of weak nodes (a shadow)."""
    rel = _wrap(phase - float(np.angle(np.sum(w * np.exp(1j * phase)))))
    e = np.where(w > 0, -rel * period / (2 * math.pi), np.nan)
    surface = _robust_poly(e, w)
    for _ in range(rounds):
        e = surface + _wrap((e - surface) * (2 * math.pi / period)) * period / (2 * math.pi)
        surface = _robust_poly(e, w)
    shift = float(np.nansum(e * w) / w.sum())
    return e - shift, surface - shift


def _surface(phase: np.ndarray, w: np.ndarray, period: float, local: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The displacement read at the nodes and its smooth surface (sheet px): of the unwrapped and the rewrapped
    readings, the one whose surface leaves the nodes closer (a period slip leaves a patch a period off), plus
    (``local``) what the surface leaves consistently over neighbouring nodes (a fold, a crease: not smooth)."""
    candidates = [_surface_unwrapped(phase, w, period), _surface_rewrapped(phase, w, period)]
    misfit = [float(np.sum(w * np.minimum(np.abs(np.nan_to_num(e) - s), period / 2)) / w.sum())
              for e, s in candidates]
    e, surface = candidates[int(np.argmin(misfit))]
    if not local:
        return e, surface
    # only nodes read at least half as strongly as the typical one: a weak node's phase is mostly noise
    reliable = w >= 0.5 * float(np.median(w[w > 0]))
    left = cv2.medianBlur(np.where(reliable, np.nan_to_num(e) - surface, 0.0).astype(np.float32), 3)
    return e, surface + cv2.blur(left, (3, 3))


def colour_map(rgb: np.ndarray) -> np.ndarray:
    """float32 saturation (max - min channel): a coloured grid without the black or grey trace ink and print,
    whose QRS strokes and letters are vertical lines at no particular phase in :func:`grid_map`."""
    r, g, b = cv2.split(rgb)
    return cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)).astype(np.float32)


def grid_maps(sheet_rgb: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, map at WORK_SCALE with its local mean removed) for the darkness-and-colour map and the colour map of
    a sheet, each also with the ink masked out: what :func:`grid_pitch_correction` and :func:`grid_displacement`
    read (computed once for both; each takes the map that shows the grid best).

    Masked: pixels darker than :func:`~stage0_rectify.grid.grid_map`'s cap (and their 8 neighbours) count as the
    local mean. A QRS stroke or a lead name is a dark vertical line at no particular phase of the grid: within the
    phase reading's low-pass (80 px) the tall strokes of a chest lead pulled the nodes by up to 5 px (held-out
    photo 10009-0005: its third and fourth columns stretched 4 px). On a sheet whose grid lines reach the cap (a
    dark grid, 20 % of the sheet "ink") the mask takes the grid too, and the unmasked map reads more periodic.
    :func:`grid_pitch_correction` reads the unmasked maps only."""
    small = cv2.resize(sheet_rgb, None, fx=WORK_SCALE, fy=WORK_SCALE, interpolation=cv2.INTER_AREA)
    dark, cap, _ = darkness(small)
    ink = cv2.dilate((dark >= cap).astype(np.uint8), np.ones((3, 3), np.uint8))
    keep = (1 - ink).astype(np.float32)
    kept = _local_mean(keep, 31)
    out, masked = [], []
    for name, grid in (("grid", grid_map(small)), ("colour", colour_map(small))):
        out.append((name, grid - _local_mean(grid, 31)))
        masked.append((f"{name}-masked", (grid - _local_mean(grid * keep, 31) / np.maximum(kept, 1e-3)) * keep))
    return out + masked


def _line_pitch(g: np.ndarray, along_x: bool, period: float, strip: int) -> tuple[float, float]:
    """The pitch (px) of the lines crossing the x (``along_x``) or y axis of map ``g``, within PITCH_SEARCH of
    ``period``, from the summed power spectra of strip profiles (parabolic peak on log power), and its
    prominence (peak power over the search band's median)."""
    n = max(1, (g.shape[0] if along_x else g.shape[1]) // strip)
    if along_x:
        prof = cv2.resize(g, (g.shape[1], n), interpolation=cv2.INTER_AREA)
    else:
        prof = cv2.resize(g, (n, g.shape[0]), interpolation=cv2.INTER_AREA).T
    prof = (prof - prof.mean(axis=1, keepdims=True)) * np.hanning(prof.shape[1]).astype(np.float32)
    n_fft = 8 * 1 << int(math.ceil(math.log2(prof.shape[1])))
    spec = np.fft.rfft(prof, n=n_fft, axis=1)
    power = (spec.real**2 + spec.imag**2).sum(axis=0)
    k_lo = int(math.ceil(n_fft / (period * (1 + PITCH_SEARCH))))
    k_hi = int(n_fft / (period * (1 - PITCH_SEARCH)))
    band = power[k_lo : k_hi + 1]
    k = k_lo + int(np.argmax(band))
    a, b, c = np.log(power[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return n_fft / (k + shift), float(power[k] / max(float(np.median(band)), 1e-12))


def _perspective_scales(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d q_x / d x and d q_y / d y of q = (a x, e y) / (1 + g x + h y) at (x, y) (sheet px from the centre);
    params (a, e, g * 1e4, h * 1e4)."""
    a, e, g, h = params[0], params[1], params[2] * 1e-4, params[3] * 1e-4
    w = 1.0 + g * x + h * y
    return a * (1.0 + h * y) / w**2, e * (1.0 + g * x) / w**2


def _fit_perspective(x, y, scale_x, scale_y, use_x, use_y) -> np.ndarray:
    """(a, e, g * 1e4, h * 1e4) whose local scales match the tiles' (Gauss-Newton, Huber weights at 0.01)."""
    params = np.array([1.0, 1.0, 0.0, 0.0])

    def residual(q: np.ndarray) -> np.ndarray:
        fx, fy = _perspective_scales(q, x, y)
        return np.r_[(fx - scale_x)[use_x], (fy - scale_y)[use_y]]

    for _ in range(20):
        r = residual(params)
        jac = np.stack([(residual(params + step) - r) / 1e-6 for step in np.eye(4) * 1e-6], axis=1)
        sw = np.sqrt(np.minimum(1.0, 0.01 / np.maximum(np.abs(r), 1e-12)))
        delta = np.linalg.lstsq(jac * sw[:, None], -r * sw, rcond=None)[0]
        params = params + delta
        if np.abs(delta).max() < 1e-7:
            break
    return params


def grid_pitch_correction(sheet_rgb: np.ndarray, geometry: SheetGeometry = CANONICAL,
                          maps: list[tuple[str, np.ndarray]] | None = None) -> np.ndarray | None:
    """A homography of the sheet onto itself (3x3, sheet px; it keeps the centre) under which the 5 mm pitch read
    from the sheet's own grid is the canonical one, where that pitch is read prominently and is off by more than
    PITCH_TOL somewhere; else None. Read per tile (PITCH_TILES_HW) where enough tiles show the grid, so that the
    correction carries the view's perspective (the scale's change across the sheet); else the whole sheet's pitch
    per axis. The phase reading of :func:`grid_displacement` follows a scale error only up to a few per cent
    (beyond, the lines move more than half a period between its nodes, or the correction exceeds MAX_DISP_PX);
    keypoint homographies on screens and crumpled pages were off by 3-26 %, by up to ±13 % across one sheet.
    ``maps``: :func:`grid_maps` of the sheet, if already computed."""
    period = geometry.big_box_mm * geometry.px_per_mm * WORK_SCALE
    # the maps as drawn: the mask's holes are no grid, and their own spacing (rows of text, beats) can peak in a
    # tile's spectrum (two real photos read 2 % off their pitch with the masked maps among these)
    maps = [grid for name, grid in (maps if maps is not None else grid_maps(sheet_rgb)) if not name.endswith("-masked")]
    strip = max(8, int(PITCH_STRIP_PX * WORK_SCALE))

    def read(region: tuple[slice, slice], strip_px: int) -> tuple[float, float, float, float]:
        """(scale x, scale y, prominence x, prominence y) from the map whose weaker axis is the more prominent."""
        best = None
        for grid in maps:
            (px, prom_x), (py, prom_y) = (_line_pitch(grid[region], along_x, period, strip_px)
                                          for along_x in (True, False))
            if best is None or min(prom_x, prom_y) > min(best[2], best[3]):
                best = (period / px, period / py, prom_x, prom_y)
        return best

    whole = read((slice(None), slice(None)), strip)
    if min(whole[2], whole[3]) < PITCH_MIN_PROMINENCE:
        return None
    th, tw = PITCH_TILES_HW
    h, w = maps[0].shape
    cx, cy = (geometry.width_px - 1) / 2.0, (geometry.height_px - 1) / 2.0
    tiles = np.array([(((j + 0.5) * geometry.width_px / tw - cx), ((i + 0.5) * geometry.height_px / th - cy))
                      + read((slice(i * h // th, (i + 1) * h // th), slice(j * w // tw, (j + 1) * w // tw)),
                             max(4, strip // 4))
                      for i in range(th) for j in range(tw)])
    x, y, sx, sy, prom_x, prom_y = tiles.T
    use_x, use_y = prom_x >= PITCH_MIN_TILE_PROMINENCE, prom_y >= PITCH_MIN_TILE_PROMINENCE
    if use_x.sum() >= 4 and use_y.sum() >= 4:
        params = _fit_perspective(x, y, sx, sy, use_x, use_y)
    else:
        params = np.array([whole[0], whole[1], 0.0, 0.0])
    corners_x = np.array([-cx, cx, -cx, cx, 0.0])
    corners_y = np.array([-cy, -cy, cy, cy, 0.0])
    fx, fy = _perspective_scales(params, corners_x, corners_y)
    if max(float(np.abs(fx - 1).max()), float(np.abs(fy - 1).max())) <= PITCH_TOL:
        return None
    a, e, g, hh = params[0], params[1], params[2] * 1e-4, params[3] * 1e-4
    centred = np.array([[a, 0.0, 0.0], [0.0, e, 0.0], [g, hh, 1.0]])
    shift = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    return shift @ centred @ np.linalg.inv(shift)


def _most_periodic(maps: list[tuple[str, np.ndarray]], period: float, sigma: float, nx: np.ndarray,
                   ny: np.ndarray) -> tuple[str, list]:
    """The name and node phasors (:func:`_node_phasors`) of whichever map shows the grid the most periodic: the
    highest median node amplitude over the map's spread (the first of equals)."""
    chosen = None
    for name, grid in maps:
        phasors = _node_phasors(grid, period, sigma, nx, ny)
        periodic = sum(float(np.median(amp)) for _, amp in phasors) / (float(grid.std()) + 1e-9)
        if chosen is None or periodic > chosen[0]:
            chosen = (periodic, name, phasors)
    return chosen[1], chosen[2]


def grid_displacement(sheet_rgb: np.ndarray, geometry: SheetGeometry = CANONICAL,
                      nodes_hw: tuple[int, int] = NODES_HW,
                      maps: list[tuple[str, np.ndarray]] | None = None,
                      blur_px: float = BLUR_SHEET_PX, local: bool = True) -> tuple[np.ndarray | None, dict]:
    """The displacement grid (gh, gw, 2) (sheet px, d = -e; see the module doc) of a nearly rectified sheet,
    or None when its grid is too weak or the answer implausible; and details. ``maps``: :func:`grid_maps` of the
    sheet, if already computed; ``blur_px``: the demodulation low-pass's sigma (sheet px); ``local``: whether the
    sheet may bend between the nodes (a print), or lies flat (a screen: the smooth surface alone, without what it
    leaves at the nodes, which on flat glass is the moire's noise)."""
    period = geometry.big_box_mm * geometry.px_per_mm * WORK_SCALE
    sigma = blur_px * WORK_SCALE
    gh, gw = nodes_hw
    nx = (np.linspace(0, geometry.width_px - 1, gw) + 0.5) * WORK_SCALE - 0.5
    ny = (np.linspace(0, geometry.height_px - 1, gh) + 0.5) * WORK_SCALE - 0.5
    # the grid read from whichever map shows it the most periodic (median node amplitude over the map's spread):
    # the colour map where the grid is coloured and the ink is not, else the darkness-and-colour map; either with
    # the ink masked out where that leaves the grid
    name, phasors = _most_periodic(maps if maps is not None else grid_maps(sheet_rgb), period, sigma, nx, ny)
    disp = np.zeros((gh, gw, 2), np.float32)
    info: dict = {"grid_map": name}
    for axis, (phase, amp) in enumerate(phasors):  # d_x from the vertical lines, d_y from the horizontal ones
        ok = amp >= MIN_REL_AMP * max(float(np.percentile(amp, 90)), 1e-9)
        info[f"read_share_{'xy'[axis]}"] = round(float(ok.mean()), 3)
        if ok.mean() < MIN_READ_SHARE:
            info["reject"] = f"grid too weak along {'xy'[axis]}"
            return None, info
        w = np.where(ok, amp, 0.0)
        e, surface = _surface(phase, w, period / WORK_SCALE, local)
        disp[..., axis] = -surface
        # what the smooth correction leaves: the lines' rms distance from it over the nodes read (sheet px)
        left = np.where(ok, np.nan_to_num(e + disp[..., axis]), 0.0)
        info[f"residual_px_{'xy'[axis]}"] = round(float(np.sqrt(np.sum(w * left**2) / w.sum())), 3)
    peak = float(np.abs(disp).max())
    info["max_disp_px"] = round(peak, 1)
    consistent = max(info["residual_px_x"], info["residual_px_y"]) <= LARGE_DISP_RESIDUAL_PX
    if peak > (MAX_DISP_CONSISTENT_PX if consistent else MAX_DISP_PX):
        info["reject"] = "implausibly large correction"
        return None, info
    return disp, info


def minor_displacement(sheet_rgb: np.ndarray, geometry: SheetGeometry = CANONICAL,
                       spacing_px: float = MINOR_NODE_SPACING_PX,
                       blur_px: float = MINOR_BLUR_SHEET_PX) -> tuple[np.ndarray | None, dict]:
    """The displacement grid (gh, gw, 2) (sheet px, nodes ``spacing_px`` apart corner to corner) that the 1 mm
    lines' phase reads on a sheet the 5 mm passes have already corrected, or None where the 1 mm lines do not
    show; and details.

    The 1 mm lines (read at ``MINOR_WORK_SCALE``) place a line five times as finely as the 5 mm fundamental, but
    only within half a millimetre (3.9 px): what the coarser passes leave is mostly less (held-out photos: p95 1-4
    px). The phase is read as in :func:`grid_displacement` (map: darkness-and-colour or colour alone, whichever is
    the more periodic, each with the ink masked out), taken within half a period of the sheet's circular mean (the
    page's placement stays as it was), and believed at a node only where the line is strong (amplitude at least
    ``MIN_REL_AMP`` of the 90th percentile) and its 3x3 neighbourhood agrees (``MINOR_MIN_COHERENCE``: the mean
    unit phasor's length; where no 1 mm lines show, the phases read are noise and disagree). Nodes not believed
    take their believed neighbours' Gaussian-weighted mean (none within reach: 0). A family believed at under
    ``MINOR_MIN_READ_SHARE`` of its nodes is not corrected."""
    period = geometry.small_box_mm * geometry.px_per_mm * MINOR_WORK_SCALE  # map px
    gw = int(round((geometry.width_px - 1) / spacing_px)) + 1
    gh = int(round((geometry.height_px - 1) / spacing_px)) + 1
    nx = (np.linspace(0, geometry.width_px - 1, gw) + 0.5) * MINOR_WORK_SCALE - 0.5
    ny = (np.linspace(0, geometry.height_px - 1, gh) + 0.5) * MINOR_WORK_SCALE - 0.5
    sheet_rgb = cv2.resize(sheet_rgb, None, fx=MINOR_WORK_SCALE, fy=MINOR_WORK_SCALE, interpolation=cv2.INTER_AREA)
    size = int(round(2 * period)) | 1  # the local mean over two boxes: the lines' contrast, not the light's
    # the ink masked out (as in grid_maps): a QRS stroke is a dark vertical line at no particular phase, and moved
    # the 1 mm reading where the signal is (kp2 10008-0005: V4, V5 25.8 / 23.3 -> 18.7 / 15.9 dB unmasked)
    dark, cap, _ = darkness(sheet_rgb)
    keep = (1 - cv2.dilate((dark >= cap).astype(np.uint8), np.ones((MINOR_INK_DILATE_PX,) * 2, np.uint8)))
    keep = keep.astype(np.float32)
    kept = np.maximum(_local_mean(keep, size), 1e-3)
    masked = [(name, (grid - _local_mean(grid * keep, size) / kept) * keep)
              for name, grid in (("grid-masked", grid_map(sheet_rgb)), ("colour-masked", colour_map(sheet_rgb)))]
    name, phasors = _most_periodic(masked, period, blur_px * MINOR_WORK_SCALE, nx, ny)
    disp = np.zeros((gh, gw, 2), np.float32)
    info: dict = {"minor_map": name}
    for axis, (phase, amp) in enumerate(phasors):  # d_x from the vertical lines, d_y from the horizontal ones
        # the lines seen at t lie truly at t + e: phase = 2 pi (t + e) / period, mod the period
        unit = np.exp(1j * phase)
        strong = amp >= MIN_REL_AMP * max(float(np.percentile(amp, 90)), 1e-9)
        unit = unit * np.exp(-1j * np.angle(np.sum(np.where(strong, amp * unit, 0.0))))  # the circular mean
        coherence = np.abs(cv2.blur(unit.real, (3, 3)) + 1j * cv2.blur(unit.imag, (3, 3)))
        ok = strong & (coherence >= MINOR_MIN_COHERENCE)
        share = float(ok.mean())
        info[f"minor_read_share_{'xy'[axis]}"] = round(share, 3)
        if share < MINOR_MIN_READ_SHARE:
            continue
        e = np.angle(unit) * period / (2 * math.pi) / MINOR_WORK_SCALE  # sheet px
        w = ok.astype(np.float64)
        reach = cv2.GaussianBlur(w, (0, 0), MINOR_FILL_NODES)
        filled = cv2.GaussianBlur(e * w, (0, 0), MINOR_FILL_NODES) / np.maximum(reach, 1e-6)
        disp[..., axis] = np.where(ok, e, np.where(reach > 0.05, filled, 0.0))
        info[f"minor_rms_px_{'xy'[axis]}"] = round(float(np.sqrt(np.mean(disp[..., axis] ** 2))), 3)
    if not any(f"minor_rms_px_{a}" in info for a in "xy"):
        return None, info
    return disp, info


def refined_map(sheet_map: SheetMap, second: np.ndarray, geometry: SheetGeometry = CANONICAL) -> SheetMap:
    """``sheet_map`` followed by a displacement grid ``second`` read on the sheet it makes: one map whose
    displacement, on ``second``'s nodes, is d(p) = d1(p) + d2(p + d1(p))."""
    gh, gw = second.shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, geometry.width_px - 1, gw), np.linspace(0, geometry.height_px - 1, gh))
    nodes = np.stack([xs, ys], axis=-1)
    first = sheet_map.displacement_at(nodes)
    total = first + SheetMap(np.eye(3), second, geometry).displacement_at(nodes + first)
    return SheetMap(sheet_map.image_to_sheet_h, total.astype(np.float32), geometry)
