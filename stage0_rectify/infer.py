"""Stage 0 with the keypoint network: photo -> sheet corners (dense sheet coordinates where a corner is not
found) -> homography -> warp onto the canonical sheet -> a displacement field from the grid on it
(:mod:`stage0_rectify.refine`); the grid rectifier stays the fallback.

A bundle is a folder with ``model.safetensors`` and ``config.json`` (model name + kwargs, input side, the
SHA-256 of the weights, the routing thresholds, how it was trained and its validation score). Loading is
offline and strict (:func:`common.weights.load_checked_weights`): a missing or altered file is an error that
names it, never a random network.

Routing (:meth:`KeypointRectifier.rectify`): the grid rectifier runs first, as it always did; a confident
grid reading (``grid_trust``: one affine grid explains the page, as on scans and renders) is kept as it is,
and the network is not even run. Otherwise the network's homography replaces it when the network is
confident (every corner's peak holds at least ``min_corner_conf`` of its softmax mass and the corners form a
plausible page, or, with a corner missing, enough dense correspondences are RANSAC inliers) and the two
maps disagree by more than ``agree_px`` sheet px somewhere on the page. A photo so placed badly (its grid far from
the correction read on it, or placed by neither route) is read again turned a quarter each way: the network places
a page held in portrait wrong and the same page turned right (``turn_retry_residual_px``). A photo no turn
places, or left to an unsure grid whose correction was refused or leaves the lines far, is read once more from the
front-on view its two families of straight lines make (:mod:`stage0_rectify.vanish`, ``line_view``): kept where
that reading places the page as a turn's must, or reads its grid surely. A keypoint sheet no grid corrects (a page
printed without one) is placed by the network's corners moved onto the page's edges (:mod:`stage0_rectify.page_edges`).
A photo all of that leaves at the page width may be read again from the crop of its lit region, the page or screen
in part of the frame (:meth:`KeypointRectifier.rectify_lit_region`, asked by :meth:`pipeline.chain.Pipeline.rectify`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from common.geometry import CANONICAL, SheetGeometry
from common.sheet_map import SheetMap, apply_homography
from common.types import Rectified
from common.weights import load_model_bundle, save_model_bundle
from stage0_rectify.data import SHEET_CORNERS, downscale
from stage0_rectify.grid import GridEstimate, estimate_grid, is_letter_render, page_image, residual_grid_px
from stage0_rectify.model import N_CORNERS, corner_log_probs, create_model, normalise_image
from stage0_rectify.page_edges import refine_corners
from stage0_rectify.refine import (
    FINE_BLUR_SHEET_PX,
    FINE_NODES_HW,
    grid_displacement,
    grid_maps,
    grid_pitch_correction,
    minor_displacement,
    refined_map,
)
from stage0_rectify.vanish import content_rotation_h, grid_aspect, grid_region, line_view

PAD_VALUE = 127  # letterbox fill (grey: 0 after normalisation)
PEAK_RADIUS = 3  # corner confidence: softmax mass within 3 input px (each axis) of the peak
MIN_CORNER_SEP = 1 / 16  # two page corners are at least this share of the input side apart
DENSE_STRIDE = 2  # every 2nd input px (each axis) of the page mask gives a dense correspondence
GRID_REGION_MAX_PAGES = 1.2  # a view's grid region (stage0_rectify.vanish.grid_region) centres the page only where
# it is at most this many sheets wide and tall (eikP photos: 1.06-1.10, with its pad)
# a photo whose lit page or screen covers only part of the frame is read again from that part (lit_region_box):
# the network's input side then spans the page, not the room (factory screens at 25-50 % of the frame: placed so)
LIT_REGION_SIDE = 512  # px, the longer side the bright region is found at
LIT_REGION_MARGIN = 0.04  # of the region's longer side, kept around it (the page's corners and edges)
LIT_REGION_MAX_SHARE = 0.9  # a box covering more of the image than this is the image
# sheet points whose distance between two maps says whether they agree (corners and centre of the sheet)
CHECK_POINTS = np.concatenate([SHEET_CORNERS, [[(CANONICAL.width_px - 1) / 2, (CANONICAL.height_px - 1) / 2]]])


@dataclass(frozen=True)
class RoutingConfig:
    """When the keypoint homography replaces the grid rectifier's map (see the module doc). Units: sheet px."""

    enabled: bool = True
    grid_trust: float = 0.5  # a grid reading at least this confident is kept: one affine grid explains the
    # page (the held-out factory set: scans and renders 0.6-0.97, a frontal screen photo 0.92, perspective
    # photos 0.05-0.26)
    min_corner_conf: float = 0.15  # softmax mass within PEAK_RADIUS of a corner's peak (low: this is asked only
    # where the grid reading is unsure, and there the grid's map was 170-2400 px off on every held-out photo)
    min_inliers: int = 200  # dense correspondences agreeing with the fitted homography
    ransac_px: float = 12.0  # RANSAC reprojection threshold on the sheet
    agree_px: float = 25.0  # grid and keypoint maps closer than this everywhere: keep the grid's
    refine: bool = True  # correct the map from the sheet's own grid (refine.py), its pitch per tile and its phase,
    # on the keypoint route and on a grid read unsurely
    fine_min_residual_px: float = 0.5  # a second, finer pass where the first left the lines this far (rms, sheet
    # px, the worse axis) from its correction: crumpled and soaked photos (0010, 0009: 0.6-1.4) gain 1-4 dB a page;
    # on a flat photo (0005: 0.1-0.5) the finer reading's noise costs up to 6 dB
    fine_max_residual_ratio: float = 1.5  # ... and is kept where it leaves its own lines at most this many times
    # as far as the first left them: a screen's moire makes the finer reading follow noise (factory 0006 photos:
    # 1.7-2.5 times, 2-6 dB lost a page; crumpled pages 0.3-1.5)
    max_residual_px: float = 3.0  # a correction (after the finer pass, where it runs) leaving the lines this far (rms,
    # sheet px, the worse axis) was read from no grid and is not made: a page printed without one (factory renders
    # without a grid, placed exactly: 5-8 px left by 20-38 px "corrections"; ECG-Image-Kit photos of such pages:
    # 3.2-7.9 px, 1.5-9.7 dB lost a page). Pages with a grid: 0.1-2.7 px (held-out factory and ECG-Image-Kit photos,
    # real photos; a torn print's first pass left 6.0 px, its finer pass 1.0)
    minor: bool = True  # after the finer pass (kept or refused), a last one from the 1 mm lines' phase
    # (refine.minor_displacement) where they show: held-out photos' grid points p95 1.3 -> 0.3 px (kp2 10000-0009, x)
    turn_retry_residual_px: float = 2.0  # a keypoint sheet whose grid lies this far (rms px, the worse axis) from
    # its correction, or a photo read by neither grid nor keypoints, is read again from the photo turned a quarter
    # each way: a page held in portrait, which the network places hundreds of px off (its lines 3-8 px from any
    # correction), it places right once turned (held-out factory photos placed right: 0.2-1.4 px)
    page_edges: bool = True  # a keypoint sheet on which no grid correction was made (a page printed without a grid,
    # or its correction refused) is placed by the network's corners moved onto the page's edges in the full photo
    # (stage0_rectify.page_edges; ECG-Image-Kit photos: each page's worst corner 6.5 -> 2.0 px, median). Where the grid
    # corrects the sheet the corners only seed it, and moving them moved factory photos' readings by +-2 dB a page
    sure_corner_conf: float = 0.8  # a keypoint sheet whose grid still lies turn_retry_residual_px or more from its
    # correction after the turns and the line view, where every corner holds at least this much of its softmax mass,
    # is placed by the corners alone (moved onto the page's edges): such a correction slipped a half period on
    # part of the page (kp5 10006-0009, a stained print's blots printed with a grid of their own: 19 px median off,
    # 1.6 dB; by its corners 7 px, 8.9 dB). Held-out photos placed right leave 0.2-1.4 px
    line_view: bool = True  # a photo no turn placed is read once more from the fronto-parallel view its straight
    # lines make (stage0_rectify.vanish), kept where that reading places the page as the turns' must
    min_perspective: float = 0.015  # where the pulses placed the page (no grid read), the keypoints' map replaces
    # theirs only if it shows this much perspective (opposite sides of the page this share apart in length; on
    # the pages of nine evaluation sets read by their pulses: scans 0.000-0.011, photos 0.018-0.41)
    grid_scale_tol: float = 0.08  # where the grid rectifier read the photo's pitch with its 1 mm and 5 mm lines
    # agreeing, a keypoint homography whose scale along a sheet axis differs from that pitch by more than this
    # share is rescaled to it: a photo showing only a print's grid area has no page corners, and the network
    # put them on the photo's corners (real photos: 1.1x too wide, 1.5x too tall); on the held-out factory
    # photos so read the two agree within 2.4 %


def save_bundle(model: torch.nn.Module, config: dict, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (:func:`common.weights.save_model_bundle`)."""
    return save_model_bundle(model, config, out_dir)


def load_bundle(path: str | Path) -> tuple[torch.nn.Module, dict]:
    return load_model_bundle(path, "stage-0 keypoint", ("model_name", "model_kwargs", "input_side", "weights_sha256"),
                             create_model)


def letterbox(image_rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image downscaled to long side ``side`` and centred on a ``side`` x ``side`` grey canvas; returns
    the canvas and the full-image -> canvas homography."""
    small, a = downscale(image_rgb, side)
    h, w = small.shape[:2]
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas = np.full((side, side, 3), PAD_VALUE, np.uint8)
    canvas[oy : oy + h, ox : ox + w] = small
    shift = np.array([[1.0, 0, ox], [0, 1.0, oy], [0, 0, 1.0]])
    return canvas, shift @ a


def _parabola_offset(lo: float | None, mid: float, hi: float | None) -> float:
    """Vertex of the parabola through (-1, lo), (0, mid), (1, hi), clipped to half a pixel (0 at a border)."""
    if lo is None or hi is None or not lo - 2.0 * mid + hi < 0:
        return 0.0
    return float(np.clip(0.5 * (lo - hi) / (lo - 2.0 * mid + hi), -0.5, 0.5))


def decode_corners(log_probs: np.ndarray, radius: int = PEAK_RADIUS) -> tuple[np.ndarray, np.ndarray, float]:
    """Sub-pixel corner positions, confidences and the orientation's confidence from (4, H, W) log
    spatial-softmax maps (channels TL, TR, BR, BL in sheet terms).

    Where the page's corners are and which is which are read apart: the four strongest peaks of the summed
    maps (at least :data:`MIN_CORNER_SEP` of the side apart) are the page's corners, in clockwise order as
    displayed; the channels name them by the cyclic turn of that order their probability mass agrees with
    best (a page turned by a quarter is often found corner by corner but named ambiguously, and a turn keeps
    the page a page where a swap would mirror it). Position: the peak pixel moved by the vertex of a parabola
    through the summed map's log-probabilities at the peak and its two neighbours, per axis (exact for the
    Gaussian the network is trained to output); confidence: the summed maps' probability mass within
    ``radius`` px (each axis) of the peak, at most 1; orientation confidence: the chosen turn's share of
    exp(score) over the four turns, a score being the sum of log(channel mass at its corner)."""
    n, h, w = log_probs.shape
    p = np.exp(log_probs.astype(np.float64))
    total = p.sum(0)
    log_total = np.log(np.maximum(total, 1e-300))
    sep = max(2, int(round(MIN_CORNER_SEP * max(h, w))))
    work = total.copy()
    peaks = []
    for _ in range(n):
        iy, ix = np.unravel_index(int(np.argmax(work)), work.shape)
        peaks.append((iy, ix))
        work[max(0, iy - sep) : iy + sep + 1, max(0, ix - sep) : ix + sep + 1] = -1.0
    centre = np.mean(peaks, axis=0)
    peaks.sort(key=lambda q: math.atan2(q[0] - centre[0], q[1] - centre[1]))  # clockwise as displayed (y down)

    def window(m: np.ndarray, q) -> float:
        return float(m[max(0, q[0] - radius) : q[0] + radius + 1, max(0, q[1] - radius) : q[1] + radius + 1].sum())

    mass = np.array([[window(p[i], q) for q in peaks] for i in range(n)])  # channel x peak
    scores = np.array([sum(math.log(mass[i, (i + k) % n] + 1e-9) for i in range(n)) for k in range(n)])
    k = int(np.argmax(scores))
    turn_conf = float(1.0 / np.exp(scores - scores[k]).sum())
    pts = np.zeros((n, 2))
    conf = np.zeros(n)
    for i in range(n):
        iy, ix = peaks[(i + k) % n]
        lt = log_total
        dx = _parabola_offset(lt[iy, ix - 1] if ix > 0 else None, lt[iy, ix], lt[iy, ix + 1] if ix < w - 1 else None)
        dy = _parabola_offset(lt[iy - 1, ix] if iy > 0 else None, lt[iy, ix], lt[iy + 1, ix] if iy < h - 1 else None)
        pts[i] = [ix + dx, iy + dy]
        conf[i] = min(1.0, window(total, (iy, ix)))
    return pts, conf, turn_conf


@dataclass(frozen=True)
class KeypointFit:
    """What the network says about an image, in full-resolution image px."""

    corners_px: np.ndarray  # (4, 2) sheet corners TL, TR, BR, BL in the image
    corner_conf: np.ndarray  # (4,)
    image_to_sheet_h: np.ndarray | None  # None when no homography could be fitted
    n_inliers: int
    confident: bool
    info: dict = field(default_factory=dict)


def _plausible_quad(corners_px: np.ndarray, image_hw: tuple[int, int]) -> bool:
    """The corners TL, TR, BR, BL form a convex quadrilateral turning the way a page seen from its printed side
    does (clockwise with y downwards) and cover at least 5 % of the image."""
    edges = np.roll(corners_px, -1, axis=0) - corners_px
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    x, y = corners_px[:, 0], corners_px[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return bool((cross > 0).all() and area >= 0.05 * image_hw[0] * image_hw[1])


def fit_homography(corners_px: np.ndarray, corner_conf: np.ndarray, dense_img: np.ndarray,
                   dense_sheet: np.ndarray, routing: RoutingConfig, image_hw: tuple[int, int],
                   geometry: SheetGeometry = CANONICAL) -> tuple[np.ndarray | None, int, bool]:
    """Image -> sheet homography. With all four corners confident and forming a plausible page, the homography
    through them: their sub-pixel peaks beat the regressed dense coordinates by far (0005 validation pages at
    step 861 of training: median map error 9.8 px through the corners, 76 px with the dense set in one RANSAC).
    Otherwise RANSAC over the confident corners (each counted as a tenth of the dense set) and the dense
    correspondences, trusted with ``min_inliers`` dense inliers. Returns (H or None, dense inliers of H,
    confident)."""
    good = corner_conf >= routing.min_corner_conf
    sheet_corners = geometry.corners_px()

    def dense_inliers(h: np.ndarray) -> int:
        if len(dense_img) == 0:
            return 0
        return int((np.linalg.norm(apply_homography(h, dense_img) - dense_sheet, axis=1) < routing.ransac_px).sum())

    if good.all() and _plausible_quad(corners_px, image_hw):
        h = cv2.getPerspectiveTransform(corners_px.astype(np.float32), sheet_corners.astype(np.float32))
        return h / h[2, 2], dense_inliers(h), True
    weight = max(10, len(dense_img) // 10)
    src_a = np.concatenate([dense_img, np.repeat(corners_px[good], weight, axis=0)]).astype(np.float32)
    dst_a = np.concatenate([dense_sheet, np.repeat(sheet_corners[good], weight, axis=0)]).astype(np.float32)
    if len(src_a) < 8:
        return None, 0, False
    h, _ = cv2.findHomography(src_a, dst_a, cv2.RANSAC, routing.ransac_px, maxIters=2000, confidence=0.999)
    if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
        return None, 0, False
    h = h / h[2, 2]
    n_in = dense_inliers(h)
    page = apply_homography(np.linalg.inv(h), sheet_corners)
    return h, n_in, bool(n_in >= routing.min_inliers and _plausible_quad(page, image_hw))


def rescale_to_grid(image_to_sheet_h: np.ndarray, grid_px_per_mm: float, tol: float,
                    geometry: SheetGeometry = CANONICAL) -> tuple[np.ndarray, tuple[float, float] | None]:
    """``image_to_sheet_h`` scaled about the sheet centre, per sheet axis, so that its scale at the centre gives
    the image ``grid_px_per_mm`` along both axes, where it differs by more than ``tol`` (a share) along either;
    also the factors applied (None: unchanged)."""
    centre = np.array([[(geometry.width_px - 1) / 2.0, (geometry.height_px - 1) / 2.0]])
    to_image = np.linalg.inv(image_to_sheet_h)
    at = apply_homography(to_image, centre)
    # image px per sheet px along each sheet axis at the centre, then the image px/mm the homography implies
    implied = np.array([np.linalg.norm(apply_homography(to_image, centre + step) - at)
                        for step in ([[1.0, 0.0]], [[0.0, 1.0]])]) * geometry.px_per_mm
    factors = implied / grid_px_per_mm  # sheet coordinates times this: the grid's pitch lands on the canonical one
    if np.all(np.abs(factors - 1.0) <= tol):
        return image_to_sheet_h, None
    c = centre[0]
    scale = np.array([[factors[0], 0.0, c[0] * (1 - factors[0])], [0.0, factors[1], c[1] * (1 - factors[1])],
                      [0.0, 0.0, 1.0]])
    h = scale @ image_to_sheet_h
    return h / h[2, 2], (float(factors[0]), float(factors[1]))


def fixed_point_iterations(disp: np.ndarray, geometry: SheetGeometry = CANONICAL, tol_px: float = 0.05) -> int:
    """Iterations of the inverse p = s - d(p) that bring it within ``tol_px`` sheet px: the error shrinks by the
    field's slope each time (a smooth cubic field's slope is a few hundredths: 2-3 iterations, not the 8 that
    :meth:`SheetMap.sheet_to_image_maps` takes by default for any field: the warp took 0.3-0.4 s instead of
    1.1-1.7 s on a factory photo, on the shared 2-core machine)."""
    gh, gw = disp.shape[:2]
    step = (geometry.width_px - 1) / (gw - 1), (geometry.height_px - 1) / (gh - 1)
    slope = max(float(np.abs(np.diff(disp, axis=1)).max()) / step[0],
                float(np.abs(np.diff(disp, axis=0)).max()) / step[1])
    peak = float(np.abs(disp).max())
    if peak <= tol_px:
        return 1
    if slope >= 0.5:
        return 8
    return int(np.clip(math.ceil(math.log(tol_px / peak) / math.log(max(slope, 1e-6))), 1, 8))


def _remap(rgb: np.ndarray, sheet_map: SheetMap, geometry: SheetGeometry) -> np.ndarray:
    """The image resampled onto the sheet through a map with a displacement field (white outside the image)."""
    mx, my = coarse_sheet_to_image_maps(sheet_map, fixed_point_iterations(sheet_map.displacement_px, geometry))
    return cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))


def coarse_sheet_to_image_maps(sheet_map: SheetMap, iterations: int, factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`SheetMap.sheet_to_image_maps` evaluated every ``factor`` sheet px and upsampled bilinearly: the
    map is smooth (a homography and a cubic field, or bilinear over nodes 60 px apart), so on factory photos it
    differs by a few hundredths of a px while taking a twentieth of the time."""
    g = sheet_map.geometry
    hh, ww = -(-g.height_px // factor) + 2, -(-g.width_px // factor) + 2  # one node beyond each edge
    # coarse node j sits where cv2.resize (INTER_LINEAR) takes it: output px (j + 0.5) * factor - 0.5, which is
    # sheet px (j - 0.5) * factor - 0.5 (the output is cropped by ``factor`` px on each side)
    sx = np.broadcast_to(((np.arange(ww) - 0.5) * factor - 0.5).astype(np.float32), (hh, ww))
    sy = np.broadcast_to(((np.arange(hh) - 0.5) * factor - 0.5).astype(np.float32)[:, None], (hh, ww))
    px, py = sx, sy
    for _ in range(iterations):
        dx, dy = sheet_map.displacement_maps(px, py)
        px, py = sx - dx, sy - dy
    hi = sheet_map.sheet_to_image_h.astype(np.float32)
    den = hi[2, 0] * px + hi[2, 1] * py + hi[2, 2]
    out = []
    for row in (0, 1):
        m = (hi[row, 0] * px + hi[row, 1] * py + hi[row, 2]) / den
        big = cv2.resize(m, (ww * factor, hh * factor), interpolation=cv2.INTER_LINEAR)
        out.append(big[factor : factor + g.height_px, factor : factor + g.width_px])  # a view: cv2.remap takes it
    return out[0], out[1]


QUARTER_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 3: cv2.ROTATE_90_CLOCKWISE}  # cv2.rotate's code per number of
# counter-clockwise quarter turns


def quarter_turn_h(turns: int, image_hw: tuple[int, int]) -> np.ndarray:
    """3x3 map from a (H, W) image's px to the px of the same image turned ``turns`` quarter turns
    counter-clockwise (as ``cv2.rotate``: 1 = ROTATE_90_COUNTERCLOCKWISE, 3 = ROTATE_90_CLOCKWISE)."""
    h, w = image_hw
    if turns % 4 == 1:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0], [0.0, 0.0, 1.0]])
    if turns % 4 == 3:
        return np.array([[0.0, -1.0, h - 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    raise ValueError(f"only quarter turns 1 and 3 are mapped, got {turns}")


def as_given(turned: Rectified, turns: int, image_hw: tuple[int, int]) -> Rectified:
    """A reading of an (H, W) image turned ``turns`` quarter turns (``QUARTER_TURNS``), its map made to take the
    image as given onto the same sheet."""
    h = turned.sheet_map.image_to_sheet_h @ quarter_turn_h(turns, image_hw)
    return replace(turned, sheet_map=replace(turned.sheet_map, image_to_sheet_h=h))


def lit_region_box(rgb: np.ndarray, side: int = LIT_REGION_SIDE, margin: float = LIT_REGION_MARGIN,
                   max_share: float = LIT_REGION_MAX_SHARE) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1; image px, ends exclusive) around the largest bright region of a photo (Otsu's
    threshold on the grey image at ``side`` px, gaps closed), widened by ``margin`` of its longer side: the lit
    page or screen where it covers only part of the frame. None where the box would cover more than
    ``max_share`` of the image (nothing to zoom into)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = side / max(grey.shape)
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(bright)
    if n < 2:
        return None
    x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    pad = margin * max(w, h)
    x0, y0 = int(max(0, (x - pad) / scale)), int(max(0, (y - pad) / scale))
    x1 = int(min(grey.shape[1], math.ceil((x + w + pad) / scale)))
    y1 = int(min(grey.shape[0], math.ceil((y + h + pad) / scale)))
    if (x1 - x0) * (y1 - y0) > max_share * grey.size:
        return None
    return x0, y0, x1, y1


def crop_h(x0: int, y0: int) -> np.ndarray:
    """The map from an image to its crop whose top-left corner is (x0, y0)."""
    return np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])


def as_uncropped(cropped: Rectified, x0: int, y0: int) -> Rectified:
    """A reading of an image's crop whose top-left corner is (x0, y0), its map made to take the whole image."""
    h = cropped.sheet_map.image_to_sheet_h @ crop_h(x0, y0)
    return replace(cropped, sheet_map=replace(cropped.sheet_map, image_to_sheet_h=h))


def view_perspective(image_to_sheet_h: np.ndarray, geometry: SheetGeometry = CANONICAL) -> float:
    """How far a map is from a flat view: the larger relative length difference of the sheet's opposite sides
    as the map puts them on the image (0 for a similarity or any affine map)."""
    c = apply_homography(np.linalg.inv(image_to_sheet_h), geometry.corners_px().astype(np.float64))
    side = [float(np.linalg.norm(c[(i + 1) % 4] - c[i])) for i in range(4)]  # top, right, bottom, left
    return max(abs(side[0] / side[2] - 1.0), abs(side[3] / side[1] - 1.0))


def _corners_in_perspective(info: dict, min_perspective: float) -> bool:
    """Whether the page's corners as the network found them show at least ``min_perspective`` of a view's
    perspective (:func:`view_perspective`; scans 0.000-0.011), or were not looked for."""
    corners = np.asarray(info.get("corners_px", ()), np.float32)
    if corners.shape != (4, 2):
        return True
    to_photo = cv2.getPerspectiveTransform(CANONICAL.corners_px().astype(np.float32), corners)
    if abs(np.linalg.det(to_photo)) < 1e-12:  # corners in a line or on one point: they say nothing
        return True
    return view_perspective(np.linalg.inv(to_photo)) >= min_perspective


def _corners_as_given(info: dict, image_to_view_h: np.ndarray) -> dict:
    """A reading's info with the corners the network found on a view of the photo (turned, or seen square-on)
    put where they lie on the photo as given."""
    if "corners_px" in info:
        info["corners_px"] = np.round(apply_homography(np.linalg.inv(image_to_view_h), np.asarray(
            info["corners_px"], np.float64)), 1).tolist()
    return info


def _placement_residual(rectified: Rectified) -> float:
    """How far a keypoint sheet's grid lies from its correction (px); any other sheet: infinitely far."""
    if rectified.method != "keypoints" or rectified.residual_grid_px is None:
        return math.inf
    return float(rectified.residual_grid_px)


class KeypointRectifier:
    """``KeypointRectifier.from_bundle(path).rectify(page) -> Rectified`` (method "keypoints" when the
    network's homography is taken, else the grid rectifier's result as before)."""

    def __init__(self, model: torch.nn.Module, config: dict, routing: RoutingConfig | None = None):
        self.model = model.eval()
        self.config = config
        self.side = int(config["input_side"])
        self.routing = routing or RoutingConfig(**config.get("routing", {}))
        self.last_info: dict = {}  # how the last page was routed (JSON-able)
        self.last_estimate = None  # the grid rectifier's GridEstimate of the last page

    @classmethod
    def from_bundle(cls, path: str | Path, routing: RoutingConfig | None = None) -> KeypointRectifier:
        model, cfg = load_bundle(path)
        return cls(model, cfg, routing)

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray) -> KeypointFit:
        canvas, full_to_canvas = letterbox(rgb, self.side)
        x = normalise_image(torch.from_numpy(canvas).permute(2, 0, 1)[None])
        out = self.model(x)[0].float()
        lp = corner_log_probs(out[None])[0].numpy()
        pts_c, conf, turn_conf = decode_corners(lp)
        to_full = np.linalg.inv(full_to_canvas)
        corners = apply_homography(to_full, pts_c)
        mask = torch.sigmoid(out[N_CORNERS + 2]).numpy()
        # the share of the image the network takes for the page (renders and scans 0.92-0.98; photos of a page
        # on a table or on a screen 0.2-0.7)
        (x0, y0), (x1, y1) = np.rint(apply_homography(full_to_canvas, np.array(
            [[0.0, 0.0], [rgb.shape[1], rgb.shape[0]]]))).astype(np.int64)
        page_share = float((mask[y0:y1, x0:x1] > 0.5).mean())
        uv = out[N_CORNERS : N_CORNERS + 2].numpy()
        ys, xs = np.nonzero(mask[::DENSE_STRIDE, ::DENSE_STRIDE] > 0.5)
        ys, xs = ys * DENSE_STRIDE, xs * DENSE_STRIDE
        dense_img = apply_homography(to_full, np.stack([xs, ys], 1).astype(np.float64))
        g = CANONICAL
        dense_sheet = np.stack([uv[0, ys, xs] * (g.width_px - 1), uv[1, ys, xs] * (g.height_px - 1)], 1)
        h, n_in, confident = fit_homography(corners, conf, dense_img, dense_sheet, self.routing, rgb.shape[:2])
        info = {"corners_px": np.round(corners, 1).tolist(), "corner_conf": [round(float(c), 3) for c in conf],
                "orientation_conf": round(turn_conf, 3),
                "dense": int(len(xs)), "dense_inliers": n_in, "page_share": round(page_share, 3)}
        return KeypointFit(corners, conf, h, n_in, confident, info)

    def rectify(self, page_or_image, image_id: str | None = None,
                geometry: SheetGeometry = CANONICAL, dewarp: bool = True, print_photo: bool = False,
                photo: bool = False) -> Rectified:
        """The page on the canonical sheet (see the module doc); a photo the first reading places badly (see
        ``RoutingConfig.turn_retry_residual_px``) is read again turned a quarter one way, then the other, until a
        turned reading places it; that reading is kept, its map still taking the photo as given onto the sheet.
        ``dewarp`` (the source classifier's route): whether the sheet may be curled or crumpled; where it lies flat
        (a screen) the grid's correction is its smooth surface alone, without the finer and 1 mm passes.
        ``print_photo`` (the route again): a phone photo of a paper print, whose grid is corrected even where one
        affine grid reads it surely (a soaked print so read was left 5-8 px off its lines: eikP 20007-0009, 11.1 dB,
        22.3 corrected), unless the image is a whole Letter render: ECG-Image-Kit's renders with drawn wrinkles and
        shading are named photos, and their grids, read surely, lie flat (corrected, 7 of 15 lost 2-13 dB).
        ``photo`` (the route again): the image is a photo, so a placement by the calibration pulses alone (a
        similarity centred on the ink, which on a photo is also the room's) never stands over the keypoints', however
        flat the view they show (kp5 10004-0006, a screen seen nearly square-on, -1.1 dB so, 8.7 by its corners)."""
        rgb, image_id = page_image(page_or_image, image_id)
        correct_sure_grid = print_photo and not is_letter_render(rgb.shape[1], rgb.shape[0])
        best = self._rectify_view(rgb, image_id, geometry, dewarp=dewarp, correct_sure_grid=correct_sure_grid,
                                  photo=photo)
        info, est = self.last_info, self.last_estimate
        if not photo and self._sure_pulses(est) and best.method == "keypoints" and not (
                _placement_residual(best) < self.routing.turn_retry_residual_px):
            # sure pulses, and the keypoints' sheet shows no grid where they put it: a scan without a grid (its
            # pulses place it within a px; the network 20 px off), not a photo; keep the pulses' map
            best = self._rectify_view(rgb, image_id, geometry, est, consult=False, dewarp=dewarp)
            info = dict(info, keypoints_rejected="sure pulses; the keypoint sheet showed no grid")
        elif self._misplaced(best, info):
            first_residual = _placement_residual(best)
            # the first turn that places the page is kept: had the other placed it too, the two sheets would show
            # one page, at most half a turn apart, which pipeline.upright settles
            for turn, code in QUARTER_TURNS.items():
                to_turned = quarter_turn_h(turn, rgb.shape[:2])
                # the grid reading's map turned with the photo (reading the turned photo's grid again costs 0.1-0.2 s
                # and finds the same: its method, confidence and scale are the same, its map turned)
                turned_est = replace(est, image_to_sheet_h=est.image_to_sheet_h @ np.linalg.inv(to_turned))
                turned = self._rectify_view(np.ascontiguousarray(cv2.rotate(rgb, code)), image_id, geometry,
                                            turned_est, dewarp=dewarp, photo=photo)
                if _placement_residual(turned) < self.routing.turn_retry_residual_px:
                    best = as_given(turned, turn, rgb.shape[:2])
                    info = _corners_as_given(dict(self.last_info, quarter_turns=turn, unturned_residual_px=None
                                                  if math.isinf(first_residual) else first_residual), to_turned)
                    break
            else:
                best, info = self._through_line_view(rgb, image_id, geometry, best, info, first_residual, dewarp,
                                                     photo)
        elif self._unmended_grid(best, info):
            # a crumpled photo in perspective, which no turn would mend
            best, info = self._through_line_view(rgb, image_id, geometry, best, info, math.inf, dewarp, photo)
        if self._correction_left_far(best, info):
            plain = self._rectify_view(rgb, image_id, geometry, est, dewarp=dewarp, photo=photo, correct=False)
            if plain.method == "keypoints":
                best, info = plain, dict(self.last_info, uncorrected_residual_px=_placement_residual(best))
        self.last_info, self.last_estimate = info, est
        return best

    def _correction_left_far(self, rectified: Rectified, info: dict) -> bool:
        """Whether a keypoint sheet read as given (neither turned nor seen through its lines) by sure corners
        (``sure_corner_conf``) was corrected by its grid yet left its lines ``turn_retry_residual_px`` or more from
        that correction (see ``RoutingConfig.sure_corner_conf``)."""
        conf = info.get("corner_conf")
        residual = _placement_residual(rectified)  # infinite where no correction was made: nothing to undo
        return (rectified.method == "keypoints" and conf is not None and "quarter_turns" not in info
                and not info.get("line_view") and min(conf) >= self.routing.sure_corner_conf
                and self.routing.turn_retry_residual_px <= residual < math.inf)

    def rectify_lit_region(self, page_or_image, image_id: str | None = None, geometry: SheetGeometry = CANONICAL,
                           dewarp: bool = True, print_photo: bool = False, photo: bool = False) -> Rectified | None:
        """:meth:`rectify` on the crop of the image's lit region (:func:`lit_region_box`), its map taking the
        image as given; None where the region is (nearly) the whole image. For a photo the first reading did not
        place: the network's input, a downscale of the whole frame, gave a page in a quarter of it a few px a mm."""
        rgb, image_id = page_image(page_or_image, image_id)
        box = lit_region_box(rgb)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        cropped = self.rectify(np.ascontiguousarray(rgb[y0:y1, x0:x1]), image_id, geometry, dewarp, print_photo, photo)
        self.last_info = dict(_corners_as_given(dict(self.last_info), crop_h(x0, y0)), lit_region_box=list(box))
        return as_uncropped(cropped, x0, y0)

    def _through_line_view(self, rgb: np.ndarray, image_id: str, geometry: SheetGeometry, best: Rectified,
                           info: dict, first_residual: float, dewarp: bool = True,
                           photo: bool = False) -> tuple[Rectified, dict]:
        """A photo no turn placed, read again from the view its two line families make fronto-parallel
        (:mod:`stage0_rectify.vanish`): kept where that reading places the page (the keypoints, as a turn's must,
        or a grid read surely), its map taking the photo as given (the sheet resampled from the photo itself)."""
        if not self.routing.line_view or not _corners_in_perspective(info, self.routing.min_perspective):
            return best, info  # a scan (mold scans read by their pulses: the view never kept, 0.5 s each)
        view = line_view(rgb)
        if view is None:
            return best, info
        warped = view.warp(rgb)
        aspect = grid_aspect(warped)
        if aspect is not None:  # the lines fix the view but for its aspect; the grid's squares fix that
            view = view.stretched_y(aspect)
            warped = view.warp(rgb)
        seen = self._rectify_view(warped, image_id, geometry, dewarp=dewarp, photo=photo)
        sure_grid = seen.method.startswith("grid") and seen.confidence >= self.routing.grid_trust
        if not (sure_grid or _placement_residual(seen) < self.routing.turn_retry_residual_px):
            # the network may misplace the view as it did the photo (a torn page: two corners off the paper); the
            # view's own grid, read unsurely but corrected from its lines to within a turn's bound, places it (kp2
            # 10010-0010: its grid points within 0.5 px p95 of the truth, -2.3 -> 22.0 dB). Without a correction
            # (its grid too weak to read per tile: a small screen photo's) it is not believed.
            # The page is centred on where the view's grid shows, where that region is a page's size at most: the grid
            # rectifier centres a view on the box of its dark pixels, which on a photo takes in the background (eikP
            # 20015-0010's rows placed 211 px low, its strip off the sheet); a grid over the whole view says nothing
            # of where the page is
            est = self.last_estimate
            box = grid_region(warped, est.px_per_mm, geometry.big_box_mm)
            scale = geometry.px_per_mm / est.px_per_mm  # sheet px per view px
            if box is not None and (box[2] - box[0]) * scale <= GRID_REGION_MAX_PAGES * geometry.width_px and (
                    box[3] - box[1]) * scale <= GRID_REGION_MAX_PAGES * geometry.height_px:
                centre = np.array([[(box[0] + box[2] - 1) / 2.0, (box[1] + box[3] - 1) / 2.0]])
                at = apply_homography(est.image_to_sheet_h, centre)[0]
                shift = np.eye(3)
                shift[:2, 2] = [(geometry.width_px - 1) / 2.0 - at[0], (geometry.height_px - 1) / 2.0 - at[1]]
                est = replace(est, image_to_sheet_h=shift @ est.image_to_sheet_h)
            seen = self._rectify_view(warped, image_id, geometry, est, consult=False, dewarp=dewarp)
            left = seen.residual_grid_px
            if not (seen.method.startswith("grid") and seen.sheet_map.displacement_px is not None
                    and left is not None and left < self.routing.turn_retry_residual_px):
                return best, info
        sheet_map = replace(seen.sheet_map, image_to_sheet_h=seen.sheet_map.image_to_sheet_h @ view.image_to_view_h)
        sheet = sheet_map.rectify(rgb) if sheet_map.displacement_px is None else _remap(rgb, sheet_map, geometry)
        seen = replace(seen, sheet_map=sheet_map, sheet_rgb=sheet)
        info = dict(self.last_info, **view.info, line_view=True,
                    unturned_residual_px=None if math.isinf(first_residual) else first_residual)
        return seen, _corners_as_given(info, view.image_to_view_h)

    def _unmended_grid(self, rectified: Rectified, info: dict) -> bool:
        """Whether a photo was left to a grid read unsurely (the network asked, its map not taken) whose
        correction from the sheet's own grid was refused or leaves the lines far from it."""
        if "corner_conf" not in info or not rectified.method.startswith("grid"):
            return False
        if rectified.confidence >= self.routing.grid_trust:
            return False
        left = max(info.get("residual_px_x", math.inf), info.get("residual_px_y", math.inf))
        return "reject" in info or left >= self.routing.turn_retry_residual_px

    def _sure_pulses(self, est: GridEstimate) -> bool:
        """Whether the grid reading is the calibration pulses' alone, and sure."""
        return est.method == "pulse" and est.confidence >= self.routing.grid_trust

    def _misplaced(self, rectified: Rectified, info: dict) -> bool:
        """Whether a sheet looks placed wrong: a keypoint sheet whose grid lies far from its correction (taken,
        or rejected as implausibly large: real photos placed right whose grid is read so leave 0.7-2.7 px, pages
        held in portrait 3-8 px) or shows too little grid to read, or a photo the network was asked about that
        neither the grid nor the keypoints placed."""
        if not self.routing.enabled or "corner_conf" not in info:
            return False
        if rectified.method != "keypoints":
            return rectified.method in ("page_width", "pulse")
        residual = _placement_residual(rectified)
        if math.isinf(residual) and "residual_px_x" in info and "residual_px_y" in info:
            residual = max(info["residual_px_x"], info["residual_px_y"])  # the rejected correction's reading
        return residual >= self.routing.turn_retry_residual_px

    def _rectify_view(self, rgb: np.ndarray, image_id: str, geometry: SheetGeometry,
                      est: GridEstimate | None = None, consult: bool = True, dewarp: bool = True,
                      correct_sure_grid: bool = False, photo: bool = False, correct: bool = True) -> Rectified:
        """One reading of the image as given (``est``: its grid reading when already made; ``consult``: whether
        the network may be asked; ``dewarp``, ``photo``: see :meth:`rectify`; ``correct_sure_grid``: a grid read
        surely is corrected from the sheet's lines as an unsure one is; ``correct``: whether the sheet's grid may
        correct the map at all)."""
        est = estimate_grid(rgb, geometry) if est is None else est
        info: dict = {"grid_method": est.method, "grid_confidence": round(est.confidence, 3)}
        h = est.image_to_sheet_h
        method, conf = est.method, est.confidence
        # a whole Letter render with no grid (ECG-Image-Kit's gridless pages, wrinkled or not) is the page itself:
        # its width gives the scale exactly and there is no view to undo
        whole_page = est.method == "page_width" and is_letter_render(rgb.shape[1], rgb.shape[0])
        if whole_page and self.routing.enabled:
            # ... but its content may be turned in the frame (ECG-Image-Kit's rotated renders, their grid unread
            # under shadows: eikB 20006-0001, 4 deg, read -3.8 dB as drawn)
            turned = content_rotation_h(rgb)
            if turned is not None:
                h = h @ turned[0]
                info["content_rotation_deg"] = round(turned[1], 3)
        # a map from the calibration pulses alone (no grid found) is a similarity: it cannot undo a view, however
        # sure the pulses are (a photo in perspective read by its pulses at 0.55 was 22 px off, -9.5 dB); the
        # keypoints replace them only on a page seen in perspective: a scan lies flat (scans without a grid: the
        # keypoints' view 0.000-0.011, the network 18-50 px off where the pulses, sure or not, were 5-10 px off
        # by their scale alone, which stage 2 finds again)
        sure_pulses = self._sure_pulses(est)
        unsure = est.confidence < self.routing.grid_trust or sure_pulses
        fit = None
        if self.routing.enabled and consult and unsure and not whole_page:
            fit = self.detect(rgb)
            info.update(fit.info)
            if not fit.confident and est.method == "page_width" and _plausible_quad(fit.corners_px, rgb.shape[:2]):
                # the last resort: the grid rectifier found neither grid nor pulse, so its map is only the
                # image's width, hundreds of px off on a photo; the four corner peaks, some of them weak, still
                # make a page (ECG-Image-Kit photos: 30-45 px off on 3 of 5 such pages). The pipeline keeps
                # the sheet only where it shows rows of trace or the grid (pipeline.chain.shows_rows_or_grid)
                corners_h = cv2.getPerspectiveTransform(fit.corners_px.astype(np.float32),
                                                        geometry.corners_px().astype(np.float32))
                fit = replace(fit, image_to_sheet_h=corners_h / corners_h[2, 2], confident=True)
                info["weak_corners"] = True
            if fit.confident and fit.image_to_sheet_h is not None:
                back = apply_homography(est.image_to_sheet_h, apply_homography(
                    np.linalg.inv(fit.image_to_sheet_h), CHECK_POINTS))
                disagree = float(np.linalg.norm(back - CHECK_POINTS, axis=1).max())
                info["disagree_px"] = round(disagree, 1)
                flat = not photo and est.method == "pulse" and view_perspective(
                    fit.image_to_sheet_h, geometry) < self.routing.min_perspective
                if disagree > self.routing.agree_px and not flat:
                    h, method = fit.image_to_sheet_h, "keypoints"
                    conf = float(np.clip(fit.corner_conf.min(), 0.05, 0.99))
                    if est.method == "grid":
                        h, factors = rescale_to_grid(h, est.px_per_mm, self.routing.grid_scale_tol, geometry)
                        if factors is not None:
                            info["grid_rescale"] = [round(v, 4) for v in factors]
        sheet_map = SheetMap(h, None, geometry)
        sheet = sheet_map.rectify(rgb)
        residual = residual_grid_px(est, geometry) if method != "keypoints" else None
        # a grid read unsurely (the keypoints consulted, not taken) is a photo's: one affine grid may have left its
        # perspective and curl (held-out scans and renders read their grids at 0.6-0.97; a confident reading is
        # left alone: on clean renders of another program, with 12 dense rows, the pitch check misread by 5 %; but
        # not on a photographed print, see :meth:`rectify`)
        unsure_grid = method.startswith("grid") and (conf < self.routing.grid_trust or correct_sure_grid)
        if correct and self.routing.refine and (method == "keypoints" or unsure_grid):
            # the sheet's own 5 mm pitch, read per tile, says where the view's scale is off
            maps = grid_maps(sheet)
            correction = grid_pitch_correction(sheet, geometry, maps)
            if correction is not None:
                h = correction @ h
                h = h / h[2, 2]
                sheet_map = SheetMap(h, None, geometry)
                sheet = sheet_map.rectify(rgb)
                info["grid_pitch_correction"] = np.round(correction, 6).tolist()
                maps = grid_maps(sheet)
            disp, refine_info = grid_displacement(sheet, geometry, maps=maps, local=dewarp)
            info.update(refine_info)
            unrefined_residual = residual
            if disp is not None:
                residual = max(refine_info["residual_px_x"], refine_info["residual_px_y"])
                sheet_map = SheetMap(h, disp, geometry)
                sheet = _remap(rgb, sheet_map, geometry)
                finer = dewarp and residual >= self.routing.fine_min_residual_px  # the first pass left the lines far
                if finer:
                    # creases the first pass smoothed away: read again, finer, on the sheet it made
                    fine, fine_info = grid_displacement(sheet, geometry, nodes_hw=FINE_NODES_HW,
                                                        blur_px=FINE_BLUR_SHEET_PX)
                    info.update({f"fine_{k}": v for k, v in fine_info.items()})
                    fine_residual = (max(fine_info["residual_px_x"], fine_info["residual_px_y"])
                                     if fine is not None else math.inf)
                    if fine_residual <= self.routing.fine_max_residual_ratio * residual:
                        residual = fine_residual
                        sheet_map = refined_map(sheet_map, fine, geometry)
                        sheet = _remap(rgb, sheet_map, geometry)
                    elif fine is not None:
                        info["fine_reject"] = "the finer reading fits its own lines worse"
                if residual > self.routing.max_residual_px:
                    info["reject"] = "no grid read: the lines lie far from any smooth correction"
                    residual = unrefined_residual
                    sheet_map = SheetMap(h, None, geometry)
                    sheet = sheet_map.rectify(rgb)
                elif finer and self.routing.minor:
                    # what the 5 mm passes left, read from the 1 mm lines where they show (only on a page the first
                    # pass left this far: on a flat photo the 1 mm reading's noise costs more than the little error
                    # it finds; a screen, taken as flat by its route, gets neither pass)
                    minor, minor_info = minor_displacement(sheet, geometry)
                    info.update(minor_info)
                    if minor is not None:
                        sheet_map = refined_map(sheet_map, minor, geometry)
                        sheet = _remap(rgb, sheet_map, geometry)
        if method == "keypoints" and sheet_map.displacement_px is None and self.routing.page_edges:
            # no grid corrected the sheet: the page's own edges place it, where all four corners lie on them
            on_page, on_edges = refine_corners(rgb, fit.corners_px)
            if on_edges.all() and _plausible_quad(on_page, rgb.shape[:2]):
                h = cv2.getPerspectiveTransform(on_page.astype(np.float32), geometry.corners_px().astype(np.float32))
                sheet_map = SheetMap(h / h[2, 2], None, geometry)
                sheet = sheet_map.rectify(rgb)
                info["placed_by_edges"] = True
        self.last_info, self.last_estimate = info, est
        return Rectified(image_id, sheet, sheet_map, geometry.px_per_mm, method, conf, residual)
