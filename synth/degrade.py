"""Degrade a clean canonical sheet into one of the competition's nine image types, with an exact label.

Every profile first builds the final :class:`SheetMap` (scanner or camera homography, plus for photos of
paper a smooth displacement field for curl, cockling, folds and crumpling), renders the degraded geometry
from the clean sheet in one resampling through exactly that map (``cv2.remap`` with
``sheet_map.image_to_sheet_maps``, or ``cv2.warpPerspective`` with the same homography where the map is a
pure homography), and only then applies photometric effects (lighting, colour, blur, noise, thresholding,
JPEG), which move nothing (every kernel is centred). Effects that belong to the paper (print colour, paper
tone, stains, mold, ink bleeding, fold shading, tears, dirt) are painted on a copy of the sheet before the
resampling so they move with it. The returned map is therefore exact: ``sheet_map.rectify(image)`` puts
every sheet pixel back in place, and a sheet point is at ``sheet_map.sheet_to_image(point)`` in the image.
Nothing is resized or cropped after the resampling.

Everything random comes from the ``rng`` passed in, so a given generator state gives the same image.
Textures, lighting and noise fields are generated at low resolution (or as small tiles) and upscaled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.sheet_map import SheetMap

SHEET_W = CANONICAL.width_px
SHEET_H = CANONICAL.height_px
_SHEET_CORNERS = np.array([[0, 0], [SHEET_W - 1, 0], [SHEET_W - 1, SHEET_H - 1], [0, SHEET_H - 1]], np.float64)
_MAX_SLOPE = 0.25  # bound on the displacement field's slope: fixed-point inverse error <= 0.25**8 * |d|


@dataclass(frozen=True)
class Degraded:
    """A degraded page: the image (H, W, 3) uint8 RGB of any size, and the exact map of it onto the sheet."""

    image_rgb: np.ndarray
    sheet_map: SheetMap


# ---------------------------------------------------------------------------------------------------------
# small random helpers


def _smooth_noise(rng: np.random.Generator, out_hw: tuple[int, int], cells_hw: tuple[int, int]) -> np.ndarray:
    """Smooth float32 noise of size ``out_hw`` (about unit std), varying over ``cells_hw`` cells."""
    g = rng.standard_normal((max(2, int(cells_hw[0])), max(2, int(cells_hw[1])))).astype(np.float32)
    return cv2.resize(g, (int(out_hw[1]), int(out_hw[0])), interpolation=cv2.INTER_CUBIC)


def _noise_tile(rng: np.random.Generator, tile_hw: tuple[int, int], sigma: float, chroma: float,
                channels: int) -> np.ndarray:
    """A random noise tile, grey part of std ``sigma`` plus per-channel part of std ``chroma`` (float32)."""
    t = rng.standard_normal((*tile_hw, 1)).astype(np.float32) * sigma
    if chroma > 0 and channels > 1:
        t = t + rng.standard_normal((*tile_hw, channels)).astype(np.float32) * chroma
    t = np.round(np.broadcast_to(t, (*tile_hw, channels)))
    oy, ox = int(rng.integers(tile_hw[0])), int(rng.integers(tile_hw[1]))
    return np.roll(t, (oy, ox), axis=(0, 1))


def _add_noise(img: np.ndarray, rng: np.random.Generator, sigma: float, chroma: float = 0.0) -> np.ndarray:
    """Add sensor noise to a uint8 (h, w[, c]) image: grey noise of std ``sigma`` plus per-channel noise of
    std ``chroma``. Two tiles of coprime periods (~250 px) are added block by block, in place: the sum is
    aperiodic for any practical purpose and much cheaper than drawing millions of normals."""
    out = np.ascontiguousarray(img).copy()
    h, w = out.shape[:2]
    c = 1 if out.ndim == 2 else out.shape[2]
    for tile_hw, part in (((251, 257), 0.71), ((239, 263), 0.71)):
        t = _noise_tile(rng, tile_hw, sigma * part, chroma * part, c)
        pos = np.clip(t, 0, 255).astype(np.uint8)
        neg = np.clip(-t, 0, 255).astype(np.uint8)
        if c == 1:
            pos, neg = pos[..., 0], neg[..., 0]
        th, tw = tile_hw
        for y in range(0, h, th):
            for x in range(0, w, tw):
                v = out[y : y + th, x : x + tw]
                bh, bw = v.shape[:2]
                cv2.add(v, pos[:bh, :bw], dst=v)
                cv2.subtract(v, neg[:bh, :bw], dst=v)
    return out


def _jpeg(img_rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _tone_lut(gains: np.ndarray, gammas: np.ndarray, black: float = 0.0, white: float = 255.0) -> np.ndarray:
    """(256, 1, 3) uint8 LUT: per channel ``black + (white - black) * (gain * x / 255) ** gamma``."""
    x = np.arange(256, dtype=np.float64)[:, None] / 255.0
    y = np.clip(x * gains[None, :], 0, 1) ** gammas[None, :]
    y = black + (white - black) * y
    return np.clip(np.round(y), 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, lut)


def _gain_u8(gain: np.ndarray, out_hw: tuple[int, int], scale: float) -> np.ndarray:
    """Upsample a low-res (h, w[, 3]) float gain to ``out_hw`` as uint8 holding gain * scale."""
    g = np.clip(gain * scale, 0, 255).astype(np.uint8)
    g = cv2.resize(g, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
    if g.ndim == 2:
        g = cv2.merge([g, g, g])
    return g


def _multiply_gain(img: np.ndarray, gain_lr: np.ndarray, max_gain: float = 1.0) -> np.ndarray:
    """img * gain, with ``gain_lr`` a low-res float field (<= max_gain) upsampled to the image."""
    scale = 255.0 / max(max_gain, 1e-6)
    g = _gain_u8(gain_lr, img.shape[:2], scale)
    return cv2.multiply(img, g, scale=1.0 / scale)


def _limit_slope(d: np.ndarray, max_slope: float = _MAX_SLOPE) -> np.ndarray:
    """Scale a (gh, gw, 2) displacement grid so its bilinear interpolant is a contraction of rate <= max_slope
    (in the max norm), which makes the inverse fixed point converge and the warp one-to-one."""
    gh, gw = d.shape[:2]
    cx, cy = (SHEET_W - 1) / (gw - 1), (SHEET_H - 1) / (gh - 1)
    lip = 0.0
    for c in range(2):
        lip = max(lip, np.abs(np.diff(d[..., c], axis=1)).max() / cx + np.abs(np.diff(d[..., c], axis=0)).max() / cy)
    if lip > max_slope:
        d = d * (max_slope / lip)
    return d.astype(np.float32)


def _homography_jacobian_scale(h: np.ndarray, pt: np.ndarray) -> float:
    """Local linear scale (sqrt |det J|) of homography h at point pt."""
    x, y = pt
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    j = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]], [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w
    return float(np.sqrt(abs(np.linalg.det(j))))


# ---------------------------------------------------------------------------------------------------------
# rendering through the map


def _render(
    paper_rgb: np.ndarray,
    alpha: np.ndarray | None,
    sheet_map: SheetMap,
    out_hw: tuple[int, int],
    background: np.ndarray,
    sheet_to_image_h: np.ndarray,
) -> np.ndarray:
    """Render the paper (sheet-sized RGB, optional sheet-sized uint8 alpha for holes) into an image of size
    ``out_hw`` through ``sheet_map`` (one remap of premultiplied RGBA) over ``background`` (uint8 RGB)."""
    mx, my = sheet_map.image_to_sheet_maps(out_hw)
    src = cv2.cvtColor(paper_rgb, cv2.COLOR_RGB2RGBA)
    if alpha is not None:
        src = cv2.multiply(src, cv2.merge([alpha, alpha, alpha, alpha]), scale=1.0 / 255)  # premultiplied
        src[..., 3] = alpha
    # Anti-alias strong downscales: sample a pre-shrunk sheet at the same sheet positions.
    scales = [_homography_jacobian_scale(sheet_to_image_h, c) for c in _SHEET_CORNERS]
    f = min(1.0, 1.3 * float(np.median(scales)))
    if f < 0.8:
        sw, sh = round(SHEET_W * f), round(SHEET_H * f)
        src = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)
        fx, fy = sw / SHEET_W, sh / SHEET_H
        mx = mx * np.float32(fx) + np.float32(0.5 * fx - 0.5)
        my = my * np.float32(fy) + np.float32(0.5 * fy - 0.5)
    fg = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    inv = 255 - fg[..., 3]
    behind = cv2.multiply(background, cv2.merge([inv, inv, inv]), scale=1.0 / 255)
    return cv2.add(cv2.cvtColor(fg, cv2.COLOR_RGBA2RGB), behind)


# ---------------------------------------------------------------------------------------------------------
# the printed page: print colour, paper tone, stains, mold, folds, tears (all in sheet space)


def _print_lut(rng: np.random.Generator, fade: float = 0.0) -> np.ndarray:
    """Colour shift of printing: per-channel gamma, slight ink fading (LUT)."""
    gammas = rng.uniform(0.85, 1.2, 3)
    gains = 1.0 + rng.uniform(0.0, 0.03, 3)
    return _tone_lut(gains, gammas, black=rng.uniform(0, 25) + fade * 60, white=255)


def _paper_gain(rng: np.random.Generator, lr_hw: tuple[int, int], strength: float) -> np.ndarray:
    """Paper tone: slightly yellow/grey, non-uniform, optional printer banding. (h, w, 3) float32 <= 1."""
    tone = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.86, 0.99)], np.float32)
    tone *= rng.uniform(0.93, 1.0)
    var = _smooth_noise(rng, lr_hw, (rng.integers(2, 6), rng.integers(3, 8)))
    g = tone[None, None, :] * (1.0 - strength * 0.03 * (1.0 + var))[..., None]
    if rng.random() < 0.3:  # printer banding
        band = _smooth_noise(rng, (lr_hw[0], 1), (rng.integers(20, 80), 1))
        g = g * (1.0 - 0.015 * np.abs(band))[..., None]
    return np.clip(g, 0.0, 1.0)


class _Surface:
    """Paper surface in sheet space: a height field (sheet px) from which come the displacement seen by the
    camera (d ~ height * view vector) and the shading (~ slope along the light direction)."""

    LR = 8  # height field at 1/8 sheet resolution

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.hw = (SHEET_H // self.LR, SHEET_W // self.LR)
        self.height = np.zeros(self.hw, np.float32)
        self.crease = np.zeros(self.hw, np.float32)  # sharp crease lines (shading only), at 1/8 res
        self.extra_disp = np.zeros((*self.hw, 2), np.float32)
        yy, xx = np.mgrid[0 : self.hw[0], 0 : self.hw[1]].astype(np.float32)
        self.x = xx * self.LR
        self.y = yy * self.LR

    def add_curl(self, amount: float) -> None:
        """Page curl / waviness: low-order bends plus a lifted edge or corner."""
        rng = self.rng
        h = _smooth_noise(rng, self.hw, (rng.integers(2, 4), rng.integers(2, 5))) * 0.5
        u = self.x / SHEET_W - 0.5
        v = self.y / SHEET_H - 0.5
        h += rng.normal(0, 1) * u * u * 4 + rng.normal(0, 1) * v * v * 4 + rng.normal(0, 0.5) * u * v * 4
        if rng.random() < 0.5:  # one edge or corner lifted
            ang = rng.uniform(0, 2 * np.pi)
            t = np.cos(ang) * u + np.sin(ang) * v
            h += np.clip(t - rng.uniform(0.1, 0.4), 0, None) ** 2 * rng.uniform(10, 30)
        h -= h.mean()
        self.height += h * (amount / max(1e-6, float(np.abs(h).max())))

    def add_wrinkles(self, amount: float, count: int) -> None:
        """Cockling of paper that dried after soaking: soft irregular bumps, plus a few sharper wrinkles."""
        rng = self.rng
        n = _smooth_noise(rng, self.hw, (rng.integers(5, 10), rng.integers(6, 13)))
        n += 0.5 * _smooth_noise(rng, self.hw, (rng.integers(10, 18), rng.integers(12, 24)))
        mod = np.clip(_smooth_noise(rng, self.hw, (3, 4)) + 0.6, 0.1, None)
        self.height += amount * n * mod
        for _ in range(count):
            self._line_ridge(rng.uniform(0.2, 0.6) * amount, rng.uniform(4, 12), crease=0.2)

    def _line_ridge(self, amp: float, width: float, crease: float, full: bool = False) -> None:
        rng = self.rng
        cx, cy = rng.uniform(0, SHEET_W), rng.uniform(0, SHEET_H)
        ang = rng.uniform(0, np.pi)
        nx, ny = -np.sin(ang), np.cos(ang)
        dist = (self.x - cx) * nx + (self.y - cy) * ny
        along = (self.x - cx) * np.cos(ang) + (self.y - cy) * np.sin(ang)
        length = 1e9 if full else rng.uniform(150, 900)
        fade = np.clip(1.0 - np.abs(along) / length, 0, 1) ** 0.5
        self.height += amp * np.exp(-np.abs(dist) / width) * fade
        self.crease += crease * np.exp(-(dist * dist) / (2 * (self.LR * 0.7) ** 2)) * fade

    def add_fold(self, amp: float, orientation: str | None = None) -> None:
        """A fold: a tent-shaped height profile across a line (one side lit, the other shaded), a sharp
        crease line, and a small shift of one side against the other."""
        rng = self.rng
        if orientation is None:
            orientation = rng.choice(["h", "v", "any"])
        if orientation == "h":
            cx, cy, ang = SHEET_W / 2, SHEET_H * rng.uniform(0.3, 0.7), rng.normal(0, 0.03)
        elif orientation == "v":
            cx, cy, ang = SHEET_W * rng.uniform(0.3, 0.7), SHEET_H / 2, np.pi / 2 + rng.normal(0, 0.03)
        else:
            cx, cy, ang = rng.uniform(0.2, 0.8) * SHEET_W, rng.uniform(0.2, 0.8) * SHEET_H, rng.uniform(0, np.pi)
        nx, ny = -np.sin(ang), np.cos(ang)
        dist = (self.x - cx) * nx + (self.y - cy) * ny
        sign = rng.choice([-1.0, 1.0])
        self.height += sign * amp * (1.0 - np.minimum(np.abs(dist) / rng.uniform(300, 900), 1.0))
        self.crease += rng.uniform(0.5, 1.0) * np.exp(-(dist * dist) / (2 * (self.LR * 0.6) ** 2))
        shift = rng.uniform(0.5, 3.0) * np.tanh(dist / 40.0)
        self.extra_disp[..., 0] += shift * nx
        self.extra_disp[..., 1] += shift * ny

    def add_crumple(self, amount: float) -> None:
        """Crumpled paper: multi-scale random facets (ridged noise) on top of everything."""
        rng = self.rng
        h = np.zeros(self.hw, np.float32)
        for cells, w in ((4, 1.0), (9, 0.6), (18, 0.35)):
            n = _smooth_noise(rng, self.hw, (cells, int(cells * 1.3)))
            h += w * (1.0 - np.abs(n))  # ridged: sharp ridges, soft valleys
        h -= h.mean()
        self.height += amount * h / max(1e-6, float(np.abs(h).max()))
        for _ in range(rng.integers(3, 9)):
            self._line_ridge(amount * rng.uniform(0.2, 0.6), rng.uniform(5, 20), crease=rng.uniform(0.2, 0.6))

    def displacement(self, view: np.ndarray, grid_hw: tuple[int, int], max_px: float) -> np.ndarray | None:
        """Displacement grid (gh, gw, 2) in sheet px: height seen along the view vector, plus fold shifts."""
        d = self.height[..., None] * view[None, None, :].astype(np.float32) + self.extra_disp
        if not np.any(d):
            return None
        g = cv2.resize(d, (grid_hw[1], grid_hw[0]), interpolation=cv2.INTER_AREA)
        g -= g.mean(axis=(0, 1), keepdims=True)
        mag = float(np.sqrt((g**2).sum(-1)).max())
        if mag > max_px:
            g *= max_px / mag
        return _limit_slope(g)

    def shading(self, light: np.ndarray, contrast: float, crease: float) -> np.ndarray:
        """(h, w) float32 brightness factor at 1/8 sheet resolution, <= 1: surface slope along the light
        direction (normalised to std ``contrast``) and crease lines darkened by up to ``crease``."""
        gx = cv2.Sobel(self.height, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(self.height, cv2.CV_32F, 0, 1, ksize=3)
        d = gx * light[0] + gy * light[1]
        s = 1.0 + contrast * d / (float(d.std()) + 1e-6) - crease * np.clip(self.crease, 0, 1)
        s = np.clip(s, 0.5, 1.5)
        return s / max(1.0, float(s.max()))


def _stains(rng: np.random.Generator, lr_hw: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coffee rings, spills and water marks at low resolution: (gain (h, w, 3) <= 1, wet mask (h, w) in [0, 1]).
    Each has an irregular outline, a mottled faint interior and a darker tide line at its edge."""
    h, w = lr_hw
    gain = np.ones((h, w, 3), np.float32)
    wet = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n):
        style = rng.choice(["ring", "spill", "water"], p=[0.4, 0.35, 0.25])
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        if style == "ring":
            r, ex, wob = rng.uniform(0.08, 0.16) * min(h, w), rng.uniform(0.9, 1.1), rng.uniform(0.02, 0.06)
        else:
            r, ex, wob = rng.uniform(0.08, 0.35) * min(h, w), rng.uniform(0.6, 1.6), rng.uniform(0.15, 0.4)
        rr = np.sqrt(((xx - cx) / ex) ** 2 + ((yy - cy) * ex) ** 2) / r
        rr = rr + wob * _smooth_noise(rng, lr_hw, (rng.integers(4, 10), rng.integers(5, 13)))
        if not (rr < 1.0).any():
            continue
        inside = np.clip((1.0 - rr) * r, 0, None)  # ~ distance to the outline, low-res px
        mask = np.clip(inside / 1.5, 0, 1)
        width = rng.uniform(0.7, 3.0)
        rim = np.exp(-inside / width) * mask
        rim = rim * np.clip(0.7 + 0.5 * _smooth_noise(rng, lr_hw, (rng.integers(10, 30), rng.integers(10, 30))), 0, 1.5)
        mott = np.clip(1.0 + 0.4 * _smooth_noise(rng, lr_hw, (rng.integers(8, 20), rng.integers(10, 26))), 0.2, 1.8)
        if style == "water":
            col = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.83, 0.93), rng.uniform(0.7, 0.88)], np.float32)
            inner, edge = rng.uniform(0.0, 0.25), rng.uniform(0.4, 1.0)
        else:
            col = np.array([rng.uniform(0.7, 0.88), rng.uniform(0.5, 0.7), rng.uniform(0.25, 0.5)], np.float32)
            inner = rng.uniform(0.05, 0.25) if style == "ring" else rng.uniform(0.15, 0.6)
            edge = rng.uniform(0.5, 1.0)
        amt = np.clip(mask * inner * mott + rim * edge, 0, 1.0)
        gain *= 1.0 - (1.0 - col)[None, None, :] * amt[..., None]
        wet = np.maximum(wet, mask if style != "ring" else rim)
    return np.clip(gain, 0.2, 1.0), wet


def _ink_bleed(paper: np.ndarray, rng: np.random.Generator, wet_lr: np.ndarray) -> np.ndarray:
    """Spread dark ink where the paper was wet (dilate dark + blur), blended in by the wet mask."""
    if not wet_lr.any():
        return paper
    k = int(rng.integers(2, 4)) * 2 + 1
    bleed = cv2.erode(paper, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bleed = cv2.GaussianBlur(bleed, (0, 0), rng.uniform(1.0, 2.5))
    bleed = cv2.min(bleed, cv2.GaussianBlur(paper, (0, 0), 1.0))
    m = cv2.resize(wet_lr * rng.uniform(0.4, 0.9), (SHEET_W, SHEET_H), interpolation=cv2.INTER_LINEAR)
    return cv2.blendLinear(bleed, paper, m, 1.0 - m)


def _mold(paper: np.ndarray, rng: np.random.Generator, dark_only: bool) -> np.ndarray:
    """Mold colonies: clusters of irregular greenish / dark spots (noise-shaped bodies plus satellite dots),
    fuzzy halos, and a yellowish discoloration of the paper around them."""
    out = paper.copy()
    n_clusters = int(rng.integers(2, 7)) if rng.random() < 0.7 else int(rng.integers(7, 16))
    for _ in range(n_clusters):
        R = float(np.exp(rng.uniform(np.log(20), np.log(200))))
        cx = rng.uniform(-0.05, 1.05) * SHEET_W
        cy = rng.uniform(-0.05, 1.05) * SHEET_H
        x0, y0 = int(max(0, cx - 2 * R)), int(max(0, cy - 2 * R))
        x1, y1 = int(min(SHEET_W, cx + 2 * R)), int(min(SHEET_H, cy + 2 * R))
        if x1 - x0 < 16 or y1 - y0 < 16:
            continue
        hw = (y1 - y0, x1 - x0)
        q = 4
        lr = (max(4, hw[0] // q), max(4, hw[1] // q))
        yy, xx = np.mgrid[0 : lr[0], 0 : lr[1]].astype(np.float32)
        rad = np.hypot(xx * q + x0 - cx, yy * q + y0 - cy) / R
        n = _smooth_noise(rng, lr, (lr[0] / 5 + 2, lr[1] / 5 + 2)) + 0.5 * _smooth_noise(rng, lr, (lr[0] / 2 + 2,
                                                                                               lr[1] / 2 + 2))
        body_lr = np.clip((0.5 * n - rad + rng.uniform(0.2, 0.7)) * 4.0, 0, 1)
        body = cv2.resize(body_lr, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
        dots = np.zeros(hw, np.uint8)
        n_dots = int(rng.uniform(10, 60) * (R / 50) ** 1.3) + 5
        pts = rng.normal(0, R * 0.7, (n_dots, 2)) + [cx - x0, cy - y0]
        radii = np.clip(rng.lognormal(np.log(2.0), 0.6, n_dots), 0.6, 9)
        for (px, py), r in zip(pts, radii, strict=True):
            axes = (max(1, int(round(r * rng.uniform(0.6, 1.4)))), max(1, int(round(r * rng.uniform(0.6, 1.4)))))
            cv2.ellipse(dots, (int(px), int(py)), axes, float(rng.uniform(0, 180)), 0, 360,
                        int(rng.uniform(120, 255)), -1, cv2.LINE_AA)
        core = np.maximum(np.clip(body * 1.2, 0, 1) * rng.uniform(0.5, 1.0), dots.astype(np.float32) / 255.0)
        grain = np.clip(0.65 + 0.5 * _smooth_noise(rng, hw, (hw[0] / 6 + 2, hw[1] / 6 + 2)), 0.2, 1)
        core = core * grain
        small = cv2.resize(core, (lr[1], lr[0]), interpolation=cv2.INTER_AREA)
        halo = cv2.resize(cv2.GaussianBlur(small, (0, 0), rng.uniform(0.8, 2.5)), (hw[1], hw[0]))
        disc_lr = cv2.GaussianBlur(small, (0, 0), max(1.0, R / q / 2))
        alpha = np.clip(core * rng.uniform(0.7, 1.0) + halo * rng.uniform(0.2, 0.6), 0, 1)
        if dark_only or rng.random() < 0.35:
            col = np.array(rng.uniform(15, 60, 3), np.float32)  # dark grey/black colonies
            rim_col = col + rng.uniform(20, 60)
        else:
            base = [(45, 70, 40), (85, 105, 55), (60, 90, 80), (120, 130, 70), (80, 70, 45), (140, 100, 70)]
            col = np.array(base[int(rng.integers(len(base)))], np.float32) + rng.normal(0, 10, 3)
            rim_col = col * rng.uniform(1.2, 1.8)
        dense = np.clip(core * 1.5, 0, 1)
        solid = np.empty((*hw, 3), np.uint8)
        solid[:] = np.clip(col, 0, 255).astype(np.uint8)
        rim = np.empty((*hw, 3), np.uint8)
        rim[:] = np.clip(rim_col, 0, 255).astype(np.uint8)
        colour = cv2.blendLinear(solid, rim, dense, 1.0 - dense)
        stain = np.array([0.96, 0.92, 0.78], np.float32)  # yellowish discoloration around colonies
        tint = 1.0 - (1.0 - stain)[None, None, :] * np.clip(disc_lr * 3.0, 0, 1)[..., None]
        roi = cv2.multiply(out[y0:y1, x0:x1], _gain_u8(tint, hw, 255.0), scale=1.0 / 255)
        out[y0:y1, x0:x1] = cv2.blendLinear(roi, colour, 1.0 - alpha, alpha)
    return out


def _tears(rng: np.random.Generator, paper: np.ndarray, n: int) -> np.ndarray | None:
    """Torn-off pieces: (sheet-sized uint8 alpha, 0 where the paper is missing); draws white torn fibres."""
    if n <= 0:
        return None
    alpha = np.full((SHEET_H, SHEET_W), 255, np.uint8)
    for _ in range(n):
        kind = rng.choice(["corner", "bite", "slit"], p=[0.45, 0.35, 0.2])
        edge = int(rng.integers(4))
        L = SHEET_W if edge in (0, 2) else SHEET_H

        def to_xy(t: np.ndarray, depth: np.ndarray, edge: int = edge) -> np.ndarray:
            if edge == 0:
                return np.stack([t, depth], -1)
            if edge == 1:
                return np.stack([SHEET_W - 1 - depth, t], -1)
            if edge == 2:
                return np.stack([t, SHEET_H - 1 - depth], -1)
            return np.stack([depth, t], -1)

        jag = np.cumsum(rng.normal(0, 2.5, 50))
        jag -= np.linspace(jag[0], jag[-1], jag.size)
        jag += rng.normal(0, 1.2, jag.size)
        if kind == "corner":
            a, b = rng.uniform(80, 450), rng.uniform(80, 450)
            t = np.linspace(0, 1, jag.size)
            at_end = rng.random() < 0.5
            ts = L - 1 - a * (1 - t) if at_end else a * (1 - t)
            far = L + 80 if at_end else -80.0
            depth = b * t + jag
            pts = to_xy(ts, depth)
            closing = to_xy(np.array([far, far, ts[0]]), np.array([depth[-1], -80.0, -80.0]))
        else:
            c = rng.uniform(0.1, 0.9) * L
            half = rng.uniform(40, 250) if kind == "bite" else rng.uniform(6, 25)
            depth_max = rng.uniform(40, 250) if kind == "bite" else rng.uniform(100, 500)
            t = np.linspace(-1, 1, jag.size)
            ts = c + half * t
            depth = depth_max * (1 - np.abs(t) ** (1.5 if kind == "bite" else 0.8)) + jag
            pts = to_xy(ts, depth)
            closing = to_xy(np.array([ts[-1], ts[0]]), np.array([-80.0, -80.0]))
        poly = np.concatenate([pts, closing])
        poly = np.round(poly * 16).astype(np.int32)
        cv2.fillPoly(alpha, [poly], 0, cv2.LINE_AA, shift=4)
        fib = np.round(pts * 16).astype(np.int32)
        cv2.polylines(paper, [fib], False, (252, 252, 250), int(rng.integers(3, 7)), cv2.LINE_AA, shift=4)
    return alpha


def _dirt(rng: np.random.Generator, paper: np.ndarray, lr_gain: np.ndarray) -> None:
    """Smudges (low-res gain, in place) and specks (on the paper, in place)."""
    h, w = lr_gain.shape[:2]
    rough = np.clip(0.5 + _smooth_noise(rng, (h, w), (h // 6, w // 6)), 0, 1)
    for _ in range(int(rng.integers(1, 6))):
        ax, ay = int(rng.uniform(5, 60)), int(rng.uniform(5, 40))
        sig = rng.uniform(3, 12)
        r = int(max(ax, ay) + 3 * sig)
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        x0, y0, x1, y1 = max(0, cx - r), max(0, cy - r), min(w, cx + r), min(h, cy + r)
        m = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.ellipse(m, (cx - x0, cy - y0), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), sig) * rough[y0:y1, x0:x1] * rng.uniform(0.05, 0.35)
        col = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)], np.float32) * rng.uniform(0.3, 0.7)
        lr_gain[y0:y1, x0:x1] *= 1.0 - (1.0 - col)[None, None, :] * m[..., None]
    n = int(rng.integers(10, 120))
    xs = rng.uniform(0, SHEET_W, n).astype(int)
    ys = rng.uniform(0, SHEET_H, n).astype(int)
    for x, y in zip(xs, ys, strict=True):
        v = int(rng.uniform(30, 140))
        cv2.circle(paper, (int(x), int(y)), int(rng.integers(1, 4)), (v, v, v - 10), -1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------------------
# scans


def _scan_geometry(rng: np.random.Generator) -> tuple[tuple[int, int], np.ndarray]:
    """Scanner: scale (dpi), slight skew and shift. Returns (out_hw, sheet->image homography)."""
    s = float(np.clip(rng.normal(1.0, 0.05), 0.9, 1.1))
    ang = np.deg2rad(float(np.clip(rng.normal(0, 0.8), -2, 2)))
    mx, my = rng.uniform(-0.01, 0.035, 2)
    out_w, out_h = round(SHEET_W * s * (1 + mx)), round(SHEET_H * s * (1 + my))
    c, sn = np.cos(ang) * s, np.sin(ang) * s
    tx = (out_w - 1) / 2 + rng.normal(0, 0.012) * out_w
    ty = (out_h - 1) / 2 + rng.normal(0, 0.012) * out_h
    cx, cy = (SHEET_W - 1) / 2, (SHEET_H - 1) / 2
    h = np.array([[c, -sn, tx - c * cx + sn * cy], [sn, c, ty - sn * cx - c * cy], [0, 0, 1]])
    return (out_h, out_w), h


def _scan(sheet: np.ndarray, rng: np.random.Generator, bw: bool, mold: bool) -> Degraded:
    lut = _print_lut(rng)
    if not bw:  # the scanner's own tone curve, folded into the print colour LUT (one pass)
        scan_lut = _tone_lut(rng.uniform(0.98, 1.06, 3), rng.uniform(0.9, 1.15, 3), black=rng.uniform(0, 15))
        lut = np.take_along_axis(scan_lut[:, 0, :], lut[:, 0, :].astype(np.intp), axis=0)[:, None, :]
    paper = _apply_lut(sheet, lut)
    lr_hw = (SHEET_H // 8, SHEET_W // 8)
    gain = _paper_gain(rng, lr_hw, rng.uniform(0.3, 1.5))
    gain *= (1.0 - 0.03 * np.abs(_smooth_noise(rng, lr_hw, (2, 3))))[..., None]  # uneven scanner light
    paper = _multiply_gain(paper, gain)
    if mold:
        paper = _mold(paper, rng, dark_only=bw and rng.random() < 0.5)
    out_hw, s2i = _scan_geometry(rng)
    sm = SheetMap(np.linalg.inv(s2i))
    lid = float(rng.uniform(225, 255) if rng.random() < 0.9 else rng.uniform(10, 50))
    # a pure homography: warpPerspective samples the sheet at exactly sm.image_to_sheet(u) for every pixel u
    img = cv2.warpPerspective(paper, sm.image_to_sheet_h, (out_hw[1], out_hw[0]),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(lid, lid, lid))
    # edge shadow where the page edge lifts from the glass / the lid leaves a gap
    oh, ow = out_hw
    for side in rng.choice(4, size=int(rng.integers(0, 3)), replace=False):
        width = rng.uniform(10, 60)
        n = int(min(6 * width, ow if side in (0, 2) else oh))
        prof = 1.0 - rng.uniform(0.1, 0.45) * np.exp(-np.arange(n, dtype=np.float32) / width)
        if side in (2, 3):
            prof = prof[::-1]
        if side == 0:
            img[:, :n] = (img[:, :n] * prof[None, :, None]).astype(np.uint8)
        elif side == 1:
            img[:n] = (img[:n] * prof[:, None, None]).astype(np.uint8)
        elif side == 2:
            img[:, ow - n :] = (img[:, ow - n :] * prof[None, :, None]).astype(np.uint8)
        else:
            img[oh - n :] = (img[oh - n :] * prof[:, None, None]).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.45, 1.1))
    img = _add_noise(img, rng, rng.uniform(0.8, 3.0), rng.uniform(0, 1.5))
    if rng.random() < 0.3:  # dust specks on the glass
        for _ in range(int(rng.integers(2, 15))):
            v = int(rng.uniform(20, 120))
            cv2.circle(img, (int(rng.uniform(0, ow)), int(rng.uniform(0, oh))), int(rng.integers(1, 3)), (v, v, v), -1,
                       cv2.LINE_AA)
    if bw:
        img = _black_and_white(img, rng)
        if rng.random() < 0.5:
            img = _jpeg(img, int(rng.integers(60, 96)))
    else:
        img = _jpeg(img, int(rng.integers(60, 96)))
    return Degraded(img, sm)


def _black_and_white(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black-and-white scan modes: 1-bit global or adaptive threshold (with dither noise), or hard grey."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    mode = rng.choice(["global", "adaptive", "grey"], p=[0.45, 0.25, 0.3])
    if mode != "grey" and rng.random() < 0.5:  # dither-like noise near the threshold: speckled grid
        grey = _add_noise(grey, rng, rng.uniform(2, 10))
    if mode == "global":
        if rng.random() < 0.3:
            _, out = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        else:  # relative to the paper's level: keeps, speckles or drops the grid
            paper = float(np.percentile(grey[::8, ::8], 90))
            _, out = cv2.threshold(grey, paper * rng.uniform(0.5, 0.93), 255, cv2.THRESH_BINARY)
    elif mode == "adaptive":
        block = int(rng.integers(7, 30)) * 2 + 1
        method = cv2.ADAPTIVE_THRESH_GAUSSIAN_C if rng.random() < 0.5 else cv2.ADAPTIVE_THRESH_MEAN_C
        out = cv2.adaptiveThreshold(grey, 255, method, cv2.THRESH_BINARY, block, float(rng.uniform(6, 25)))
    else:
        lo, hi = rng.uniform(10, 70), rng.uniform(200, 250)
        lut = np.clip((np.arange(256) - lo) / (hi - lo), 0, 1) ** rng.uniform(0.8, 1.6)
        out = cv2.LUT(grey, (255.0 * lut).astype(np.uint8))
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


# ---------------------------------------------------------------------------------------------------------
# photos


def _phone_frame(rng: np.random.Generator, portrait_p: float = 0.25) -> tuple[int, int]:
    """(h, w) of a phone photo as it comes to us (downscaled): long side 1600-3000, 4:3 or 16:9."""
    long_side = int(1600 + 1400 * rng.beta(1.2, 2.8))
    aspect = 4 / 3 if rng.random() < 0.7 else 16 / 9
    short = int(round(long_side / aspect))
    return (long_side, short) if rng.random() < portrait_p else (short, long_side)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _camera_homography(
    rng: np.random.Generator,
    out_hw: tuple[int, int],
    plane_wh: tuple[float, float],
    tilt_max_deg: float,
    roll_sd_deg: float,
    fill: tuple[float, float],
    allow_quarter_turn: bool = True,
) -> np.ndarray:
    """Plane (0..w-1, 0..h-1) -> image homography of a pinhole camera looking at it with some tilt and roll,
    placed in the frame at a random fill fraction and position."""
    pw, ph = plane_wh
    oh, ow = out_hw
    corners = np.array([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]], np.float64)
    c3 = np.concatenate([corners - [(pw - 1) / 2, (ph - 1) / 2], np.zeros((4, 1))], axis=1)
    tilt = np.deg2rad(tilt_max_deg * rng.beta(1.6, 2.2))
    phi = rng.uniform(0, 2 * np.pi)
    roll = np.deg2rad(np.clip(rng.normal(0, roll_sd_deg), -2.5 * roll_sd_deg, 2.5 * roll_sd_deg))
    if rng.random() < 0.07:
        roll = np.deg2rad(rng.uniform(-40, 40))
    portrait = oh > ow
    if allow_quarter_turn and portrait and pw > ph and rng.random() < 0.65:
        roll += np.pi / 2 * rng.choice([-1, 1])
    elif allow_quarter_turn and rng.random() < 0.02:
        roll += np.pi
    r = _rotation(np.array([0, 0, 1.0]), roll) @ _rotation(np.array([np.cos(phi), np.sin(phi), 0]), tilt)
    p = c3 @ r.T
    dist = np.hypot(pw, ph) * rng.uniform(0.75, 1.6)
    z = p[:, 2] + dist
    uv = p[:, :2] / z[:, None] * dist
    lo, hi = uv.min(0), uv.max(0)
    size = hi - lo
    scale = rng.uniform(*fill) * min(ow / size[0], oh / size[1])
    uv = (uv - lo) * scale
    size = size * scale
    off = np.array([rng.uniform(min(0, ow - size[0]), max(0, ow - size[0])),
                    rng.uniform(min(0, oh - size[1]), max(0, oh - size[1]))])
    uv = uv + off
    return cv2.getPerspectiveTransform(corners.astype(np.float32), uv.astype(np.float32)).astype(np.float64)


def _background(rng: np.random.Generator, out_hw: tuple[int, int]) -> np.ndarray:
    """A table / desk background (wood, plain, stone, fabric; sometimes objects) at 1/6 resolution (it is out
    of focus anyway), uint8 RGB."""
    h, w = max(8, out_hw[0] // 6), max(8, out_hw[1] // 6)
    kind = rng.choice(["wood", "plain", "granite", "fabric"], p=[0.35, 0.3, 0.15, 0.2])
    if kind == "wood":
        r = rng.uniform(70, 210)
        base = np.array([r, r * rng.uniform(0.6, 0.75), r * rng.uniform(0.35, 0.55)], np.float32)
        horizontal = rng.random() < 0.5
        gh, gw = (h, w) if horizontal else (w, h)
        warp = _smooth_noise(rng, (gh, gw), (5, 3)) * rng.uniform(2, 8)
        yy = np.arange(gh, dtype=np.float32)[:, None] + warp
        lines = np.sin(yy * (2 * np.pi / rng.uniform(3, 10))) * _smooth_noise(rng, (gh, gw), (gh // 8 + 2, 3))
        t = 0.04 * lines + 0.06 * _smooth_noise(rng, (gh, gw), (gh // 4 + 2, 4)) + 0.025 * _smooth_noise(
            rng, (gh, gw), (gh // 2 + 2, gw // 30 + 2))
        if rng.random() < 0.5:  # planks
            t += -0.12 * (np.sin(yy * (2 * np.pi / rng.uniform(gh / 4, gh))) > 0.995)
        t = t if horizontal else t.T
        img = base[None, None, :] * (1 + t[..., None])
    elif kind == "plain":
        hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(25, 240)]]])
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        img = base[None, None, :] * (1 + 0.03 * _smooth_noise(rng, (h, w), (4, 5))[..., None])
    elif kind == "granite":
        base = rng.uniform(60, 200) * (1 + rng.normal(0, 0.08, 3)).astype(np.float32)
        img = base[None, None, :] * (1 + 0.06 * _smooth_noise(rng, (h, w), (h // 2, w // 2))[..., None])
        img = img * (1 + 0.03 * rng.standard_normal((h, w, 1)).astype(np.float32))
    else:
        hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(0, 160), rng.uniform(30, 220)]]])
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        per = rng.uniform(1.2, 3)
        weave = 0.05 * np.sin(xx * np.pi / per) * np.sin(yy * np.pi / per)
        img = base[None, None, :] * (1 + weave[..., None] + 0.08 * _smooth_noise(rng, (h, w), (8, 10))[..., None])
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * gx / w + np.sin(ang) * gy / h
    img = np.clip(img * (1 + rng.uniform(-0.3, 0.3) * ramp)[..., None], 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # objects on the table: a few soft-edged shapes with shading
        for _ in range(int(rng.integers(1, 4))):
            hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(20, 240)]]])
            col = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
            m = np.zeros((h, w), np.uint8)
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            if rng.random() < 0.5:
                cv2.ellipse(m, c, (int(rng.uniform(5, w / 5)), int(rng.uniform(3, h / 5))), float(rng.uniform(0, 180)),
                            0, 360, 255, -1, cv2.LINE_AA)
            else:
                box = cv2.boxPoints((c, (float(rng.uniform(5, w / 3)), float(rng.uniform(3, h / 6))),
                                     float(rng.uniform(0, 180))))
                cv2.fillPoly(m, [np.round(box * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            a = cv2.GaussianBlur(m, (0, 0), 0.7).astype(np.float32)[..., None] / 255.0
            shade = 1 + 0.25 * _smooth_noise(rng, (h, w), (3, 3))[..., None]
            img = (img * (1 - a) + np.clip(col * shade, 0, 255) * a).astype(np.uint8)
    return img


def _with_page_shadow(bg_lr: np.ndarray, quad_img: np.ndarray, out_hw: tuple[int, int],
                      rng: np.random.Generator) -> np.ndarray:
    """Upsample the low-res background to out_hw with the page's soft drop shadow on it (uint8)."""
    h, w = bg_lr.shape[:2]
    sx, sy = w / out_hw[1], h / out_hw[0]
    q = quad_img * [sx, sy] + rng.normal(0, 3, 2)
    m = np.zeros((h, w), np.float32)
    cv2.fillPoly(m, [np.round(q * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    m = cv2.GaussianBlur(m, (0, 0), rng.uniform(1.5, 6))
    bg = bg_lr.astype(np.float32) * (1 - rng.uniform(0.15, 0.5) * m)[..., None]
    return cv2.resize(np.clip(bg, 0, 255).astype(np.uint8), (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


def _lighting(rng: np.random.Generator, out_hw: tuple[int, int], shadow_p: float) -> np.ndarray:
    """Low-res (1/8) lighting gain (h, w, 3): gradient, vignette, soft cast shadow, optional hot spot."""
    h, w = max(8, out_hw[0] // 8), max(8, out_hw[1] // 8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w - 0.5, yy / h - 0.5
    ang = rng.uniform(0, 2 * np.pi)
    g = 1.0 - rng.uniform(0, 0.35) * (0.5 + np.cos(ang) * u + np.sin(ang) * v)
    g *= 1.0 - rng.uniform(0, 0.35) * (u * u + v * v) * 2
    g += 0.05 * _smooth_noise(rng, (h, w), (3, 4))
    g = np.repeat(g[..., None], 3, axis=2)
    if rng.random() < shadow_p:  # cast shadow of the phone / hand / a person, entering from an edge
        m = np.zeros((h, w), np.float32)
        side = int(rng.integers(4))
        n = int(rng.integers(3, 6))
        pts = rng.uniform(0, 1, (n, 2)) * [w, h]
        reach = rng.uniform(0.2, 0.7)
        if side == 0:
            pts[:, 0] *= reach
            pts = np.concatenate([pts, [[-5, -5], [-5, h + 5]]])
        elif side == 1:
            pts[:, 0] = w - pts[:, 0] * reach
            pts = np.concatenate([pts, [[w + 5, -5], [w + 5, h + 5]]])
        elif side == 2:
            pts[:, 1] *= reach
            pts = np.concatenate([pts, [[-5, -5], [w + 5, -5]]])
        else:
            pts[:, 1] = h - pts[:, 1] * reach
            pts = np.concatenate([pts, [[-5, h + 5], [w + 5, h + 5]]])
        hull = cv2.convexHull(pts.astype(np.float32)).astype(np.int32)
        cv2.fillPoly(m, [hull], 1.0)
        m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.01, 0.06) * max(h, w))
        depth = rng.uniform(0.15, 0.55)
        tint = np.array([1.0, 1.0, rng.uniform(1.0, 1.15)], np.float32)  # shadows are lit by bluish ambient
        g = g * (1 - depth * m[..., None] / tint[None, None, :])
    if rng.random() < 0.25:  # hot spot / glare on glossy paper
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        r = rng.uniform(0.05, 0.25) * max(h, w)
        g = g + rng.uniform(0.1, 0.35) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    return np.clip(g, 0.05, 1.5).astype(np.float32)


def _camera_finish(img: np.ndarray, rng: np.random.Generator, shadow_p: float = 0.5) -> np.ndarray:
    """Lighting, white balance/exposure, lens blur, sharpening, sensor noise, JPEG."""
    out_hw = img.shape[:2]
    img = _multiply_gain(img, _lighting(rng, out_hw, shadow_p), max_gain=1.5)
    temp = rng.normal(0, 0.06)
    gains = np.array([1 + temp, 1.0, 1 - temp]) * (1 + rng.normal(0, 0.02, 3)) * rng.uniform(0.95, 1.3)
    lut = _tone_lut(gains, rng.uniform(0.85, 1.25, 3) * rng.uniform(0.9, 1.1), black=rng.uniform(0, 20),
                    white=rng.uniform(225, 255))
    img = _apply_lut(img, lut)
    sigma = rng.uniform(0.4, 1.4) if rng.random() < 0.8 else rng.uniform(1.4, 2.2)
    if rng.random() < 0.1:  # slight motion blur
        k = int(rng.integers(1, 3)) * 2 + 1  # odd: a centred kernel moves nothing
        ker = np.zeros((k, k), np.float32)
        ker[k // 2, :] = 1.0 / k
        ker = cv2.warpAffine(ker, cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1), (k, k))
        img = cv2.filter2D(img, -1, ker / max(ker.sum(), 1e-6))
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.5:  # phone sharpening (unsharp mask: halos)
        amount = rng.uniform(0.3, 1.0)
        img = cv2.addWeighted(img, 1 + amount, cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 2.0)), -amount, 0)
    img = _add_noise(img, rng, rng.uniform(1.0, 5.0), rng.uniform(0.5, 3.0))
    return _jpeg(img, int(rng.integers(60, 96)))


def _photo_of_print(sheet: np.ndarray, rng: np.random.Generator, kind: str) -> Degraded:
    """Phone photo of a printed page: plain (0005), stained/soaked (0009) or damaged (0010)."""
    paper = _apply_lut(sheet, _print_lut(rng, fade=rng.uniform(0, 0.3) if kind == "stained" else 0.0))
    lr4 = (SHEET_H // 4, SHEET_W // 4)
    gain = _paper_gain(rng, lr4, rng.uniform(0.3, 1.5))
    surf = _Surface(rng)
    surf.add_curl(rng.uniform(5, 60))
    alpha = None
    grid = (int(rng.integers(9, 14)), int(rng.integers(12, 18)))
    contrast = rng.uniform(0.01, 0.04)
    if kind == "stained":
        sg, wet = _stains(rng, lr4, int(rng.integers(1, 5)))
        gain = gain * sg
        surf.add_wrinkles(rng.uniform(4, 15), int(rng.integers(0, 5)))
        grid = (25, 33)
        contrast = rng.uniform(0.02, 0.06)
        paper = _ink_bleed(paper, rng, wet)
    elif kind == "damaged":
        for o in rng.choice(["h", "v", "any"], size=int(rng.integers(1, 4)), p=[0.4, 0.4, 0.2]):
            surf.add_fold(rng.uniform(10, 40), o)
        if rng.random() < 0.8:
            surf.add_crumple(rng.uniform(15, 60))
        grid = (34, 44)
        contrast = rng.uniform(0.04, 0.1)
        n_tears = int(rng.integers(1, 4)) if rng.random() < 0.8 else 0
        _dirt(rng, paper, gain)
        alpha = _tears(rng, paper, n_tears)
    light = rng.normal(0, 1, 2)
    shade = surf.shading(light / np.linalg.norm(light), contrast, crease=rng.uniform(0.08, 0.25))
    gain = gain * cv2.resize(shade, (lr4[1], lr4[0]), interpolation=cv2.INTER_LINEAR)[..., None]
    paper = _multiply_gain(paper, np.clip(gain, 0, 1))

    out_hw = _phone_frame(rng)
    s2i = _camera_homography(rng, out_hw, (SHEET_W, SHEET_H), tilt_max_deg=32, roll_sd_deg=5, fill=(0.6, 0.97))
    view = rng.normal(0, 1, 2)
    view = view / np.linalg.norm(view) * rng.uniform(0.15, 0.45)
    disp = surf.displacement(view, grid, max_px=15.0 if kind == "plain" else 22.0)
    sm = SheetMap(np.linalg.inv(s2i), disp)
    quad = cv2.perspectiveTransform(_SHEET_CORNERS[None].astype(np.float32), s2i.astype(np.float32))[0]
    bg = _with_page_shadow(_background(rng, out_hw), quad, out_hw, rng)
    img = _render(paper, alpha, sm, out_hw, bg, s2i)
    return Degraded(_camera_finish(img, rng), sm)


# ---------------------------------------------------------------------------------------------------------
# photo of a laptop screen


def _subpixel_tile(rng: np.random.Generator, k: int) -> np.ndarray:
    """One screen pixel as a k x k RGB tile (uint8): R, G, B stripes with a dark black matrix."""
    tile = np.zeros((k, k, 3), np.float32)
    third = k // 3
    for c in range(3):
        tile[:, c * third : (c + 1) * third, c] = 1.0
    lo = rng.uniform(0.0, 0.25)  # light leaking between subpixels
    tile = lo + (1 - lo) * tile
    tile[:, [i * third for i in range(3)], :] *= rng.uniform(0.3, 0.8)  # gaps between subpixels
    tile[-1, :, :] *= rng.uniform(0.2, 0.7)  # row gap
    strength = rng.uniform(0.1, 0.6)
    tile = 1 - strength * (1 - tile)
    tile = tile / tile.mean(axis=(0, 1), keepdims=True)  # keep white white on average
    return np.clip(tile * 170, 0, 255).astype(np.uint8)


def _photo_of_screen(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Phone photo of the sheet shown on a laptop screen (0006)."""
    sw, sh = [(1366, 768), (1440, 900), (1536, 864), (1920, 1080), (1920, 1200), (1280, 800)][int(rng.integers(6))]
    toolbar = int(rng.uniform(0.03, 0.1) * sh) if rng.random() < 0.8 else 0
    taskbar = int(rng.uniform(0.03, 0.05) * sh) if rng.random() < 0.5 else 0
    avail_h = sh - toolbar - taskbar
    sigma = min(avail_h * rng.uniform(0.8, 1.0) / SHEET_H, sw * rng.uniform(0.8, 1.0) / SHEET_W)
    pw, ph = round(SHEET_W * sigma), round(SHEET_H * sigma)
    ox = int(rng.uniform(0, sw - pw)) if rng.random() < 0.4 else (sw - pw) // 2
    oy = toolbar + (avail_h - ph) // 2
    bez = int(rng.uniform(0.015, 0.05) * sw)
    cw, ch = sw + 2 * bez, sh + bez + int(bez * rng.uniform(1.0, 2.5))
    canvas = np.zeros((ch, cw, 3), np.uint8)
    canvas[:] = np.array(rng.uniform(8, 40, 3), np.uint8)  # bezel
    ui = rng.uniform(30, 90) if rng.random() < 0.5 else rng.uniform(190, 245)
    scr = canvas[bez : bez + sh, bez : bez + sw]
    scr[:] = np.uint8(ui)
    if toolbar:
        scr[:toolbar] = np.uint8(np.clip(ui + rng.uniform(-40, 40), 0, 255))
        for _ in range(int(rng.integers(3, 12))):  # icons / tabs
            x = int(rng.uniform(0, sw - 40))
            cv2.rectangle(scr, (x, toolbar // 4), (x + int(rng.uniform(10, 120)), toolbar * 3 // 4),
                          rng.uniform(0, 255, 3).tolist(), -1)
    if taskbar:
        scr[sh - taskbar :] = np.array(rng.uniform(10, 80, 3), np.uint8)
    scr[oy : oy + ph, ox : ox + pw] = cv2.resize(sheet, (pw, ph), interpolation=cv2.INTER_AREA)
    # sheet -> canvas affine (pixel centres): canvas = (sheet + 0.5) * pw / W - 0.5 + ox + bez
    ax, ay = pw / SHEET_W, ph / SHEET_H
    a_s2c = np.array([[ax, 0, 0.5 * ax - 0.5 + ox + bez], [0, ay, 0.5 * ay - 0.5 + oy + bez], [0, 0, 1]])

    out_hw = _phone_frame(rng, portrait_p=0.08)
    for _ in range(4):  # keep the page legible: at least ~0.3 image px per sheet px at its centre
        c2i = _camera_homography(rng, out_hw, (cw, ch), tilt_max_deg=28, roll_sd_deg=4, fill=(0.8, 1.05),
                                 allow_quarter_turn=False)
        s2i = c2i @ a_s2c
        if _homography_jacobian_scale(s2i, np.array([SHEET_W / 2, SHEET_H / 2])) >= 0.3:
            break
    sm = SheetMap(np.linalg.inv(s2i))
    # backlight colour and contrast lost to ambient light: a tone curve of the screen (applied at screen res)
    cast = np.array([rng.uniform(0.85, 1.0), rng.uniform(0.9, 1.0), rng.uniform(0.95, 1.1)])
    lut = _tone_lut(cast * rng.uniform(0.9, 1.2), rng.uniform(0.8, 1.3, 3), black=rng.uniform(5, 45),
                    white=rng.uniform(200, 255))
    canvas = cv2.cvtColor(_apply_lut(canvas, lut), cv2.COLOR_RGB2RGBA)
    # image -> canvas is a pure homography: sm maps image px u to sheet inv(a_s2c) @ i2c @ u, exactly what
    # warpPerspective samples the canvas at (premultiplied RGBA: alpha 0 outside the laptop)
    i2c = np.linalg.inv(c2i)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    fg = cv2.warpPerspective(canvas, i2c, (out_hw[1], out_hw[0]), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(0, 0, 0, 0))
    # sub-pixel structure: a periodic tile sampled at the screen position (its aliasing makes the moire)
    k = 9
    tile = _subpixel_tile(rng, k)
    c2t = np.array([[k, 0, k * (0.5 - bez)], [0, k, k * (0.5 - bez)], [0, 0, 1.0]])
    mask = cv2.warpPerspective(tile, c2t @ i2c, (out_hw[1], out_hw[0]), flags=flags, borderMode=cv2.BORDER_WRAP)
    scr_img = cv2.multiply(cv2.cvtColor(fg, cv2.COLOR_RGBA2RGB), mask, scale=1 / 170.0)
    bg_lr = (_background(rng, out_hw) * rng.uniform(0.15, 0.6)).astype(np.uint8)  # room darker than the screen
    bg = cv2.resize(bg_lr, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
    inv = 255 - fg[..., 3]
    img = cv2.add(scr_img, cv2.multiply(bg, cv2.merge([inv, inv, inv]), scale=1.0 / 255))
    # glare / reflection on the glass: a soft bright band plus haze, only over the laptop
    gl_hw = (max(8, out_hw[0] // 8), max(8, out_hw[1] // 8))
    yy, xx = np.mgrid[0 : gl_hw[0], 0 : gl_hw[1]].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    band = np.cos(ang) * xx / gl_hw[1] + np.sin(ang) * yy / gl_hw[0] - rng.uniform(0.2, 1.0)
    glare = rng.uniform(0.03, 0.3) * np.exp(-(band**2) / (2 * rng.uniform(0.08, 0.35) ** 2))
    glare += 0.08 * np.clip(_smooth_noise(rng, gl_hw, (3, 4)), 0, None)
    quad = cv2.perspectiveTransform(np.array([[[0, 0], [cw, 0], [cw, ch], [0, ch]]], np.float32),
                                    c2i.astype(np.float32))[0] / 8.0
    on_glass = np.zeros(gl_hw, np.float32)
    cv2.fillPoly(on_glass, [np.round(quad * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    img = cv2.add(img, _gain_u8((glare * on_glass).astype(np.float32), out_hw, 255.0))
    return Degraded(_camera_finish(img, rng, shadow_p=0.15), sm)


# ---------------------------------------------------------------------------------------------------------
# profiles


def _untouched(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return Degraded(sheet.copy(), SheetMap.identity())


def _colour_scan(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _scan(sheet, rng, bw=False, mold=False)


def _bw_scan(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _scan(sheet, rng, bw=True, mold=False)


def _phone_photo(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _photo_of_print(sheet, rng, "plain")


def _stained_photo(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _photo_of_print(sheet, rng, "stained")


def _damaged_photo(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _photo_of_print(sheet, rng, "damaged")


def _mold_colour_scan(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _scan(sheet, rng, bw=False, mold=True)


def _mold_bw_scan(sheet: np.ndarray, rng: np.random.Generator) -> Degraded:
    return _scan(sheet, rng, bw=True, mold=True)


PROFILES: dict[str, Callable[[np.ndarray, np.random.Generator], Degraded]] = {
    "0001": _untouched,
    "0003": _colour_scan,
    "0004": _bw_scan,
    "0005": _phone_photo,
    "0006": _photo_of_screen,
    "0009": _stained_photo,
    "0010": _damaged_photo,
    "0011": _mold_colour_scan,
    "0012": _mold_bw_scan,
}

IMAGE_TYPE_NAMES: dict[str, str] = {
    "0001": "colour render, untouched",
    "0003": "colour print scanned in colour",
    "0004": "colour print scanned black-and-white",
    "0005": "phone photo of a colour print",
    "0006": "phone photo of the ECG shown on a laptop screen",
    "0009": "phone photo of a stained or soaked print",
    "0010": "phone photo of a heavily damaged print",
    "0011": "colour scan of a print with mold",
    "0012": "black-and-white scan of a print with mold",
}


def degrade(sheet_rgb: np.ndarray, image_type: str, rng: np.random.Generator) -> Degraded:
    """Degrade a clean canonical sheet (H, W, 3) uint8 RGB into ``image_type`` (e.g. "0005")."""
    if image_type not in PROFILES:
        raise ValueError(f"unknown image type {image_type!r}; known: {', '.join(sorted(PROFILES))}")
    sheet = np.asarray(sheet_rgb)
    if sheet.shape != (SHEET_H, SHEET_W, 3) or sheet.dtype != np.uint8:
        raise ValueError(f"sheet must be ({SHEET_H}, {SHEET_W}, 3) uint8 RGB, got {sheet.shape} {sheet.dtype}")
    return PROFILES[image_type](np.ascontiguousarray(sheet), rng)
