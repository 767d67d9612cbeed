"""Fallback rectifier for upright pages: measure the printed grid, deskew, scale onto the canonical sheet.

ECG paper carries a 1 mm grid with every fifth line bold (5 mm boxes). Its pitch gives the image's px/mm,
the direction of its lines the page's rotation. All measuring is done on a Gaussian-pyramid copy whose long
side is about :data:`WORK_SIDE` px (anti-aliased: fine grid harmonics must not fold onto false periods).

1. Grid enhancement (:func:`grid_map`): darkness against a local paper level, capped so that the dark trace
   counts no more than a bold grid line (a binary scan keeps its black grid), plus colour saturation away
   from the ink.
2. Rotation-robust pitch: power spectra of row profiles in narrow vertical strips (and of column profiles in
   horizontal strips) are summed (a tilt of a few degrees only shifts each strip's profile) and resampled on
   a log-frequency axis, once sharp (flat scans) and once smoothed by 1 % (photos: perspective smears the
   peaks). A harmonic comb on the strong peaks finds the grid's fundamental; it is read as the 5 mm period
   when its 5th harmonic (the 1 mm lines) stands out (5 mm = 5 x 1 mm: method "grid"); with one line
   family only ("grid_major" / "grid_minor"), 5 mm or 1 mm is decided by the 5 mm sub-harmonics and by
   what each reading implies for the page width and the ink stroke width.
3. Exact pitch and angle per line family (horizontal / vertical lines): complex demodulation at the chosen
   harmonic, summed over tiles; phase steps between neighbouring tiles give the frequency vector (cycles
   per px along x and y), weighted plane fits of all tile phases make it sub-pixel over the whole page.
4. The two frequency vectors are the linear part of the image -> sheet map (an affine map when both
   families agree, else a similarity from the better one), scaled so that px/mm becomes canonical.
5. Translation from the gridded area, measured along the deskewed axes: its centre goes to the sheet
   centre; where the paper runs off one side of the image, its visible edge goes to the sheet's edge; where
   the grid fills the image along an axis, the image centre goes to the sheet centre (an ECG-Image-Kit
   render maps to itself).

Without a usable grid the scale comes from the 1 mV calibration pulses (10 mm tall, 5 mm wide; see
:mod:`stage0_rectify.pulse`; their stacking gives the skew), else from the assumption that the image is as
wide as US-letter landscape; the content's bounding box is centred. The confidence says which it was. A grid
read unsurely at a scale far from that of sure pulses is no usable grid (text or speckle on a page without one).

Angles: ``angle_deg`` > 0 means the page is turned clockwise as displayed (y grows downwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.ndimage import grey_closing

from common.geometry import CANONICAL, SheetGeometry
from common.sheet_map import SheetMap
from common.types import Page, Rectified
from stage0_rectify.pulse import find_pulses

LETTER_WIDTH_MM = 279.4
LETTER_HEIGHT_MM = 215.9
WORK_SIDE = 1100  # long side (px) of the downscaled working copy
FINE_WORK_SIDE = 2200  # the second look, one pyramid level finer, when the first finds one line family only: at
# 1100 px a 200 dpi page's 1 mm lines (3.9 work px apart) lie beyond the comb's reach, and where the 5 mm lines
# hardly stand out from them (ECG-Image-Kit's random and brown grids) it read 9.0 px/mm for 7.87
STRIP_PX = 16  # strip width for the rotation-robust spectra (tilt over a strip at 5 deg: 1.4 px)
MAX_ANGLE_DEG = 6.0
CONSISTENT_EXTRA_DEG = 0.5  # ECG-Image-Kit turns its augmented pages by up to 6 degrees (read as 6.0001)
LOG_STEP = 1e-3  # log-frequency grid of the spectra (0.1 %)
SMOOTH_REL = (0.002, 0.01)  # relative smoothing of the power spectra: sharp (scans), smeared (photos)
_TOOTH_CAP = 5.0  # log-power cap of one comb tooth
_TOOTH_COST = 1.0  # log-power a comb tooth must exceed to pay for itself
TINTED_PAPER_SAT = 40  # median colour saturation (0..255) above which the paper is taken for tinted
MIN_COMB_SCORE = 0.5  # below: no grid (a single clear 1 mm peak scores ~1-3)
_PEAK_FLOOR = 2.0  # comb teeth: whitened log power of at least this ...
_PEAK_RANGE = 4.0  # ... and within this of the strongest peak
MIN_TOOTH_S = 2.0  # whitened log power a line family needs at the fitted harmonic
PULSE_GUIDE_TOL = 0.04  # a grid looked for at the pulses' 1 mm frequency lies within this fraction of it
UNSURE_GRID_CONF = 0.5  # a grid read less surely than this is checked against the calibration pulses ...
SURE_PULSE_CONF = 0.5  # ... found at least this surely (three or more pulses that agree) ...
PULSE_OVERRULES = 0.25  # ... which replace it where its px/mm is this fraction or more away from theirs (a page
# without a grid whose text or speckle read as a "grid" at a quarter of the true pitch, 0.05 sure, where four
# pulses gave the scale to 0.3 %: factory scan 10008-0011)
MIN_LOCAL_COHERENCE = 0.3  # a fitted line family below this is noise, not a grid
STROKE_MM = 0.3  # typical width of a printed trace or text stroke
MIN_MARGIN_MM = 2.0  # a gridless band narrower than this at the image border is not taken for a paper edge
WIDER_PAPER_MM = 2.0  # paper at least this much wider (taller) than the sheet is read through a window over its chart
CHART_MARGIN_MM = 3.0  # ... that keeps the chart's ink this far inside the sheet's edges
CHART_INK_PERCENTILE = 0.2  # % of the ink at either end left out of the chart's extent (specks, a page number)


@dataclass(frozen=True)
class GridEstimate:
    """What the grid (or a fallback) says about an image.

    ``px_per_mm`` is the image's own resolution (geometric mean of the x and y pitch), ``image_to_sheet_h``
    maps image px onto the canonical sheet (px/mm made canonical, rotation removed, content centred).
    """

    px_per_mm: float
    px_per_mm_xy: tuple
    angle_deg: float
    image_to_sheet_h: np.ndarray
    method: str  # "grid" (1 mm and 5 mm agree), "grid_major"/"grid_minor" (one of them), "pulse", "page_width"
    confidence: float
    info: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "px_per_mm": round(float(self.px_per_mm), 5),
            "px_per_mm_xy": [round(float(v), 5) for v in self.px_per_mm_xy],
            "angle_deg": round(float(self.angle_deg), 4),
            "method": self.method,
            "confidence": round(float(self.confidence), 3),
            "image_to_sheet_h": np.round(self.image_to_sheet_h, 8).tolist(),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool, list))},
        }


# --------------------------------------------------------------------------------------------------------
# input
def as_rgb(image) -> np.ndarray:
    """Any image array (grey, RGB, RGBA; uint8/uint16/bool/float) as RGB uint8. RGBA is composited on white."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind in "fiu":
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError("image has non-finite values")
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    elif a.ndim == 3 and a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = np.clip(a[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if min(a.shape[:2]) < 16:
        raise ValueError(f"image is too small to hold an ECG: {a.shape[:2]} px")
    return np.ascontiguousarray(a)


def _downscale(rgb: np.ndarray, work_side: int = WORK_SIDE) -> tuple[np.ndarray, int]:
    """Gaussian-pyramid copy (anti-aliased, so fine grid harmonics do not fold onto false periods) whose long
    side is between 0.9 and 1.8 ``work_side`` (never below: 1 mm must stay >= ~3 px); pixel (i, j) of it is
    centred on full-res pixel (f i, f j)."""
    levels = _downscale_levels(rgb, work_side)
    small = rgb
    for _ in range(levels):
        small = cv2.pyrDown(small)
    return small, 1 << levels


def darkness(rgb: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """uint8 darkness against the local paper level, the level at which :func:`grid_map` caps it (40 % of the
    paper-to-ink contrast, at least 25 grey levels; darker is ink), and that paper level (uint8: the grey image's
    7 px dilation, blurred)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    paper = cv2.blur(cv2.dilate(grey, np.ones((7, 7), np.uint8)), (15, 15))
    lo = float(np.percentile(grey[::4, ::4], 0.5))
    return cv2.subtract(paper, grey), max(25.0, 0.4 * (float(np.median(paper[::4, ::4])) - lo)), paper


def grid_map(rgb: np.ndarray) -> np.ndarray:
    """float32 map that is large on grid lines: capped darkness against the local paper level + colour.

    The cap (40 % of the paper-to-ink contrast) keeps the trace from outweighing a bold grid line, while a
    binary scan's black grid still counts; colour saturation above the local paper's adds coloured grids, but
    not on dark ink (a tinted page, such as ECG-Image-Kit's colour-temperature shift, is saturated all over)."""
    dark, cap, paper = darkness(rgb)
    # numpy, not cv2.min(dark, scalar): OpenCV's scalar path took 7 ms on a half-res sheet, numpy 0.4 ms
    dark = np.minimum(dark, np.uint8(round(cap)))
    r, gch, b = cv2.split(rgb)
    mx = cv2.max(cv2.max(r, gch), b)
    sat = cv2.subtract(mx, cv2.min(cv2.min(r, gch), b))
    if float(np.median(sat[::4, ::4])) > TINTED_PAPER_SAT:  # the paper itself is coloured: only what is more is grid
        sat = cv2.subtract(sat, cv2.blur(cv2.erode(sat, np.ones((7, 7), np.uint8)), (15, 15)))
    sat[cv2.compare(mx, cv2.multiply(paper, 0.6), cv2.CMP_LT) > 0] = 0  # ink: navy traces are saturated, but dark
    return cv2.add(dark, sat).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# spectra and the harmonic comb
def _strip_power(g: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Summed power spectra of (row profiles in vertical strips, column profiles in horizontal strips)."""
    h, w = g.shape
    out = []
    strip = int(np.clip(min(h, w) // 12, 4, STRIP_PX))
    nx, ny = w // strip, h // strip
    for prof in (  # block means via INTER_AREA (fast); (n_strips, length) each
        cv2.resize(g[:, : nx * strip], (nx, h), interpolation=cv2.INTER_AREA).T,
        cv2.resize(g[: ny * strip], (w, ny), interpolation=cv2.INTER_AREA),
    ):
        prof = prof - prof.mean(axis=1, keepdims=True)
        prof *= np.hanning(prof.shape[1]).astype(np.float32)
        spec = np.fft.rfft(prof, n=n_fft, axis=1)
        out.append((spec.real**2 + spec.imag**2).sum(axis=0))
    return out[0], out[1]


@dataclass
class _LogSpectrum:
    """Whitened log power on a log-frequency grid (cell i is centred on f = exp(u0 + i * LOG_STEP))."""

    u0: float
    s: np.ndarray

    def at(self, freqs) -> np.ndarray:
        idx = np.rint((np.log(np.asarray(freqs, dtype=np.float64)) - self.u0) / LOG_STEP).astype(np.intp)
        inside = (idx >= 0) & (idx < self.s.size)
        return np.where(inside, self.s[np.clip(idx, 0, self.s.size - 1)], 0.0)

    def index(self, f: float) -> int:
        return int(np.rint((math.log(f) - self.u0) / LOG_STEP))


def _log_spectrum(power: np.ndarray, n_fft: int, f_lo: float, smooth_rel: float) -> _LogSpectrum:
    """Power averaged over log-frequency cells, smoothed by ``smooth_rel`` (a perspective view or a slightly
    anisotropic scan smears each harmonic by the same relative amount), in log units above a smooth floor
    (a polynomial in log f fitted to the lower part of the spectrum)."""
    edges_u = np.arange(math.log(f_lo), math.log(0.5), LOG_STEP)
    edges_bin = np.exp(edges_u) * n_fft
    cum = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])
    c_at = np.interp(edges_bin + 0.5, np.arange(cum.size), cum)
    dens = np.diff(c_at) / np.diff(edges_bin)
    sigma = smooth_rel / LOG_STEP
    half = int(3 * sigma)
    kern = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kern /= kern.sum()
    dens = np.convolve(np.pad(dens, half, mode="edge"), kern, mode="valid")
    y = np.log(dens + 1e-12 * dens.max() + 1e-30)
    x = edges_u[:-1] + LOG_STEP / 2
    keep = np.ones(x.size, bool)
    fit = np.zeros_like(y)
    for _ in range(4):
        coef = np.polyfit(x[keep], y[keep], 4)
        fit = np.polyval(coef, x)
        keep = y - fit < 0.5
        if keep.sum() < 10:
            break
    r = y - fit
    return _LogSpectrum(float(x[0]), r - np.median(r))


@dataclass
class _Comb:
    f0: float  # fundamental (cycles per work px)
    score: float
    teeth: np.ndarray  # whitened log power at k * f0, k = 1..10


def _comb_search(spec: _LogSpectrum, f_min: float, f_max: float) -> _Comb:
    """Grid fundamental f0 in [f_min, f_max]: maximise sum over teeth k f0 <= 0.45 of (S(k f0) - cost) minus
    S((k - 1/2) f0). Every candidate covers the same band, so a sub-harmonic pays for its empty teeth and a
    super-harmonic for the true teeth between its own. Only strong peaks (within e^4 of the strongest, and
    above e^2) count, so weaker periodic content (heart beats of the traces, text lines) cannot make a
    sub-harmonic of the grid look better than the grid."""
    s_raw = spec.s
    n = s_raw.size
    i_min, i_max = max(0, spec.index(f_min)), min(n - 1, spec.index(f_max))
    i_top = min(n - 1, spec.index(0.45))
    if i_max <= i_min:
        return _Comb(f_min, -np.inf, np.zeros(10))
    thr = max(_PEAK_FLOOR, float(s_raw[i_min : i_top + 1].max(initial=0.0)) - _PEAK_RANGE)
    s = np.where(s_raw >= thr, np.minimum(s_raw, _TOOTH_CAP), 0.0)
    s_pad = np.concatenate([s, np.zeros(n)])
    cand = np.arange(i_min, i_max + 1)
    score = np.zeros(cand.size)
    for k in range(1, 49):
        off = int(round(math.log(k) / LOG_STEP))
        inside = cand + off <= i_top
        if not inside.any():
            break
        tooth = s_pad[cand + off] - _TOOTH_COST
        off_h = int(round(math.log(k - 0.5) / LOG_STEP))
        half = s_pad[np.clip(cand + off_h, 0, None)] * (cand + off_h >= 0)
        score += np.where(inside, tooth - half, 0.0)
    i = int(np.argmax(score))
    f0 = math.exp(spec.u0 + cand[i] * LOG_STEP)
    return _Comb(f0, float(score[i]), spec.at(f0 * np.arange(1, 11)))


# --------------------------------------------------------------------------------------------------------
# demodulation: exact frequency vector of one line family
@dataclass
class _Family:
    k: np.ndarray  # frequency vector (cycles per work px along x, y) of the demodulated harmonic
    period_mm: float  # what one period of that harmonic is on paper
    coherence: float  # |sum of model-aligned tile phasors| / sum |tile phasors| (1 = one perfect grid)
    local_coherence: float  # the same for neighbouring tiles (a grid, even with drifting pitch)
    amplitude: float
    resid_px: float  # rms phase residual over tiles, in work px
    amp: np.ndarray  # |demodulated sums| (tiles across the lines, pixels along the lines): where the grid is
    tile: int  # tile size of ``amp`` along its first axis


def _column_sums(g: np.ndarray, freq: float, tile: int) -> np.ndarray:
    """sum over row-tiles of g[y, x] exp(-2 pi i freq y): (n_tiles, W) complex (h-lines, column resolved)."""
    h, w = g.shape
    n = h // tile
    y = np.arange(n * tile, dtype=np.float64)
    ph = -2.0 * np.pi * freq * y
    c = np.cos(ph).astype(np.float32).reshape(n, tile)
    s = np.sin(ph).astype(np.float32).reshape(n, tile)
    g3 = g[: n * tile].reshape(n, tile, w)
    re = np.einsum("atw,at->aw", g3, c)
    im = np.einsum("atw,at->aw", g3, s)
    return re + 1j * im


def _tiles(cols: np.ndarray, alpha: float, tile: int, y_tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-resolved sums -> tile phasors after removing exp(-2 pi i alpha x); tile centres (x, y)."""
    n_y, w = cols.shape
    n_x = w // tile
    x = np.arange(n_x * tile)
    z = (cols[:, : n_x * tile] * np.exp(-2j * np.pi * alpha * x)[None, :]).reshape(n_y, n_x, tile).sum(axis=2)
    xc = (np.arange(n_x) + 0.5) * tile - 0.5
    yc = (np.arange(n_y) + 0.5) * y_tile - 0.5
    return z, xc, yc


def _coherence(z: np.ndarray) -> float:
    return float(abs(z.sum()) / max(float(np.abs(z).sum()), 1e-30))


def _local_coherence(z: np.ndarray) -> float:
    """Phase agreement of neighbouring tiles: near 1 for a regular grid even when its pitch drifts across a
    photo (perspective), near 0 for noise."""
    num = abs(np.sum(z[:, 1:] * np.conj(z[:, :-1]))) + abs(np.sum(z[1:] * np.conj(z[:-1])))
    den = np.sum(np.abs(z[:, 1:]) * np.abs(z[:, :-1])) + np.sum(np.abs(z[1:]) * np.abs(z[:-1]))
    return float(num / den) if den > 0 else 0.0


def _plane_step(z: np.ndarray, xc: np.ndarray, yc: np.ndarray) -> tuple[float, float, float]:
    """Weighted plane fit of the tile phases: frequency corrections (cycles/px along x, y), rms residual (rad)."""
    w = np.abs(z).ravel()
    ref = np.sum(z)
    psi = np.angle(z * np.conj(ref) / (abs(ref) + 1e-30)).ravel()
    gx, gy = np.meshgrid(xc - xc.mean(), yc - yc.mean())
    design = np.stack([np.ones(w.size), gx.ravel(), gy.ravel()], axis=1)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], psi * sw, rcond=None)
    resid = psi - design @ coef
    rms = float(np.sqrt(np.sum(w * resid**2) / max(float(w.sum()), 1e-30)))
    return coef[1] / (2.0 * np.pi), coef[2] / (2.0 * np.pi), rms


def _coarse_k(g: np.ndarray, freq: float, alpha: float, y_tile: int) -> tuple[float, float]:
    """Frequency vector near (alpha, freq) from phase steps between neighbouring tiles (8 px wide first, so a
    tilt of 6 deg cannot wrap up to 0.4 cycles/px; a pitch off by less than 1 / (2 y_tile) cycles/px cannot)."""
    beta = float(freq)
    for _ in range(2):
        cols = _column_sums(g, beta, y_tile)
        for tile in (8, 16, 32, 64, 64):
            z, _, _ = _tiles(cols, alpha, tile, y_tile)
            if z.shape[1] < 2:
                break
            alpha += np.angle(np.sum(z[:, 1:] * np.conj(z[:, :-1]))) / (2.0 * np.pi * tile)
        z, _, _ = _tiles(cols, alpha, 32, y_tile)
        if z.shape[0] >= 2:
            beta += np.angle(np.sum(z[1:] * np.conj(z[:-1]))) / (2.0 * np.pi * y_tile)
    return alpha, beta


def _fit_family(g: np.ndarray, freq: float, period_mm: float, harmonic: int = 1, y_tile: int = 64) -> _Family:
    """Horizontal lines (a frequency near ``freq`` cycles/px along y): their exact frequency vector.

    Complex demodulation summed over tiles: first at the grid fundamental ``freq / harmonic`` (its phase steps
    between neighbouring tiles cannot wrap even when the comb's pitch is a few % off, as under perspective),
    then at ``freq`` itself; then weighted plane fits of all tile phases, kept while they make the tiles more
    coherent (they do not under strong perspective)."""
    y_tile = max(8, min(y_tile, g.shape[0] // 2))
    alpha, beta = 0.0, float(freq)
    if harmonic > 1:
        a1, b1 = _coarse_k(g, freq / harmonic, 0.0, min(y_tile, 32))
        alpha, beta = harmonic * a1, harmonic * b1
    alpha, beta = _coarse_k(g, beta, alpha, y_tile)
    cols = _column_sums(g, beta, y_tile)
    z, xc, yc = _tiles(cols, alpha, 32, y_tile)
    coh = _coherence(z)
    for _ in range(2):
        da, db, _ = _plane_step(z, xc, yc)
        cols2 = _column_sums(g, beta + db, y_tile)
        z2, _, _ = _tiles(cols2, alpha + da, 32, y_tile)
        coh2 = _coherence(z2)
        if coh2 < coh:
            break
        alpha, beta, cols, z, coh = alpha + da, beta + db, cols2, z2, coh2
    _, _, resid_rad = _plane_step(z, xc, yc)
    return _Family(np.array([alpha, beta]), period_mm, coh, _local_coherence(z), float(np.mean(np.abs(z))),
                   resid_rad / (2.0 * np.pi * math.hypot(alpha, beta)), np.abs(cols), y_tile)


def _deskewed_profile(fam: _Family, cos_t: float, sin_t: float, along_x: bool) -> tuple[np.ndarray, float]:
    """Mean grid amplitude binned along a deskewed axis (x' = x cos + y sin, or y' = -x sin + y cos), so a
    slanted paper edge is a step; bin b is centred on q0 + b (work px)."""
    n_t, n = fam.amp.shape
    across = (np.arange(n_t) + 0.5) * fam.tile - 0.5
    along = np.arange(n, dtype=np.float64)
    if along_x:  # h-lines: entries at x = along, y = across
        q = along[None, :] * cos_t + across[:, None] * sin_t
    else:  # v-lines (fitted on the transpose): entries at x = across, y = along
        q = along[None, :] * cos_t - across[:, None] * sin_t
    q0 = float(np.floor(q.min()))
    b = np.rint(q - q0).astype(np.intp).ravel()
    total = np.bincount(b, weights=fam.amp.ravel())
    count = np.bincount(b)
    return total / np.maximum(count, 1), q0


def _box_1d(profile: np.ndarray, close: int) -> tuple[float, float, bool]:
    """Extent [lo, hi] (work px) where the grid amplitude ``profile`` is above half its plateau.

    A grey closing over ``close`` px (about 1.5 mm) first fills the narrow dips where the other family's
    lines cross (there the capped grid map cannot get darker), without moving the edges."""
    n = profile.size
    p = profile.astype(np.float64)
    if 1 < close < n // 4:
        p = grey_closing(p, size=close, mode="nearest")
    plateau = float(np.percentile(p, 80))
    floor = float(p.min())
    if plateau <= 0 or floor > 0.6 * plateau:
        return 0.0, float(n - 1), True
    # half-way to a floor near zero: where the paper runs off the image mid-edge the profile never gets there
    floor = min(floor, 0.1 * plateau)
    thr = floor + 0.5 * (plateau - floor)
    above = np.flatnonzero(p > thr)
    i0, i1 = int(above[0]), int(above[-1])
    lo, hi = float(i0), float(i1)
    if i0 > 0:  # sub-pixel crossing
        a, b = p[i0 - 1], p[i0]
        lo = i0 - (b - thr) / max(b - a, 1e-12)
        lo = max(lo, i0 - 1.0)
    if i1 < n - 1:
        a, b = p[i1], p[i1 + 1]
        hi = i1 + (a - thr) / max(a - b, 1e-12)
        hi = min(hi, i1 + 1.0)
    return lo, hi, (i0 == 0 and i1 == n - 1)


# --------------------------------------------------------------------------------------------------------
# the estimate
def _similarity_h(scale: float, angle_rad: float, centre_img: np.ndarray, geometry: SheetGeometry) -> np.ndarray:
    """image -> sheet: rotate by -angle, scale, and put ``centre_img`` on the sheet centre."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    a = scale * np.array([[c, s], [-s, c]])
    return _affine_h(a, centre_img, geometry)


def _affine_h(a: np.ndarray, centre_img: np.ndarray, geometry: SheetGeometry) -> np.ndarray:
    centre_sheet = np.array([(geometry.width_px - 1) / 2.0, (geometry.height_px - 1) / 2.0])
    h = np.eye(3)
    h[:2, :2] = a
    h[:2, 2] = centre_sheet - a @ np.asarray(centre_img, dtype=np.float64)
    return h


def _dark_ink(rgb_small: np.ndarray) -> np.ndarray:
    """bool mask of the traces and text: darker than half the paper (bold grid lines of every colour stay above)."""
    grey = cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY)
    return grey < min(128.0, 0.5 * float(np.median(grey)))


def _ink_centre(rgb_small: np.ndarray, f: int) -> np.ndarray:
    """Centre (full-res px) of the bounding box of the dark content, or of the image when there is none."""
    ink = _dark_ink(rgb_small)
    h, w = ink.shape
    rows, cols = np.flatnonzero(ink.sum(axis=1) > 1), np.flatnonzero(ink.sum(axis=0) > 1)
    if rows.size < 2 or cols.size < 2:
        return np.array([(w * f - 1) / 2.0, (h * f - 1) / 2.0])
    c = np.array([(cols[0] + cols[-1]) / 2.0, (rows[0] + rows[-1]) / 2.0])
    return f * c


def estimate_grid(image, geometry: SheetGeometry = CANONICAL) -> GridEstimate:
    """Measure grid pitch and rotation of ``image`` (any array :func:`as_rgb` takes) and build the map.

    Where the working copy shows one line family only (methods "grid_major" / "grid_minor", or no grid), a copy
    one pyramid level finer is measured too. Where the two readings of px/mm disagree by over 1 %, the one whose
    lines one affine grid explains clearly better (mean coherence higher by 0.02) is taken, the fine one where the
    coarse reading puts 1 mm under 3 px of its copy (lines it could not resolve), else the one that
    makes the page's strokes and width more plausible (:func:`_reading_prior`); ``info["pitch_candidates"]``
    keeps both: a page where the pitch is in doubt says so."""
    rgb = as_rgb(image)
    pulses = _Pulses(rgb)  # found once, for both looks, and only where asked
    coarse = _estimate_grid(rgb, geometry, WORK_SIDE, pulses)
    if coarse.method == "grid" or _downscale_levels(rgb, FINE_WORK_SIDE) == _downscale_levels(rgb, WORK_SIDE):
        return coarse
    fine = _estimate_grid(rgb, geometry, FINE_WORK_SIDE, pulses)
    if not fine.method.startswith("grid") or abs(fine.px_per_mm / coarse.px_per_mm - 1) <= 0.01:
        return coarse
    candidates = {f"{coarse.method}@{WORK_SIDE}": round(coarse.px_per_mm, 3),
                  f"{fine.method}@{FINE_WORK_SIDE}": round(fine.px_per_mm, 3)}
    margin = _coherence_of(fine) - _coherence_of(coarse)
    coarse_mm_work_px = coarse.px_per_mm / (1 << _downscale_levels(rgb, WORK_SIDE))
    if coarse_mm_work_px < 3.0 or abs(margin) > 0.02:
        # the coarse copy cannot show 1 mm lines that fine: it has no say on whether its lines are 1 or 5 mm
        chosen = fine if coarse_mm_work_px < 3.0 or margin > 0 else coarse
    else:
        stroke = _stroke_px(rgb)
        plausible = {id(e): _reading_prior(e.px_per_mm, stroke, rgb.shape[1]) for e in (coarse, fine)}
        chosen = fine if plausible[id(fine)] >= plausible[id(coarse)] else coarse
    chosen.info["pitch_candidates"] = candidates
    return chosen


def _coherence_of(est: GridEstimate) -> float:
    values = [est.info[k] for k in ("coherence_h", "coherence_v") if k in est.info]
    return float(np.mean(values)) if values else 0.0


def _downscale_levels(rgb: np.ndarray, work_side: int) -> int:
    return max(0, int(math.floor(math.log2(max(rgb.shape[:2]) / (0.9 * work_side)))))


class _Pulses:
    """The image's calibration pulses (:func:`find_pulses`), found at the first asking."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.asked, self.found = rgb, False, None

    def __call__(self):
        if not self.asked:
            self.asked, self.found = True, find_pulses(self.rgb)
        return self.found


def _estimate_grid(rgb: np.ndarray, geometry: SheetGeometry, work_side: int, pulses: _Pulses) -> GridEstimate:
    full_h, full_w = rgb.shape[:2]
    small, f = _downscale(rgb, work_side)
    g = grid_map(small)
    h, w = g.shape
    n_fft = 1 << int(math.ceil(math.log2(2 * max(h, w))))
    p_rows, p_cols = _strip_power(g, n_fft)
    f_lo = 2.5 / min(h, w)
    # the comb on sharp spectra (flat scans: narrow peaks) and on smoothed ones (photos: smeared peaks)
    best = None
    for smooth_rel in SMOOTH_REL:
        s_all = _log_spectrum(p_rows + p_cols, n_fft, f_lo, smooth_rel)
        # fundamental period: at most a third of the short side, at least two teeth below 0.45 cycles/px (when
        # the bold lines are lost the fundamental is the 1 mm period; interpreted in _grid_estimate)
        comb = _comb_search(s_all, max(f_lo, 3.0 / min(h, w)), 0.225)
        if best is None or comb.score > best[1].score:
            best = (smooth_rel, comb, s_all)
    smooth_rel, comb, s_all = best
    s_h = _log_spectrum(p_rows, n_fft, f_lo, smooth_rel)
    s_v = _log_spectrum(p_cols, n_fft, f_lo, smooth_rel)
    info: dict = {"work_scale": f, "comb_score": round(comb.score, 2), "f0": comb.f0, "smooth_rel": smooth_rel}
    grid = None
    if comb.score >= MIN_COMB_SCORE:
        grid = _grid_estimate(g, comb, s_all, s_h, s_v, f, rgb, (full_h, full_w), geometry, info)
    if grid is not None and grid.confidence >= UNSURE_GRID_CONF:
        return grid
    pulse = pulses()
    if grid is not None:
        if (pulse is None or pulse.confidence < SURE_PULSE_CONF
                or abs(grid.px_per_mm / pulse.px_per_mm - 1) < PULSE_OVERRULES):
            return grid
        info = dict(info, grid_overruled={"method": grid.method, "px_per_mm": round(grid.px_per_mm, 3),
                                          "confidence": round(grid.confidence, 3)})
    ink_centre = _ink_centre(small, f)

    def anchor(ppm: float) -> np.ndarray:
        """What goes to the sheet centre: the image centre when the image, at this scale, is the size of the
        sheet (it is the whole page, as a render is: keep its margins), else the centre of the ink."""
        scale = geometry.px_per_mm / ppm
        if abs(full_w * scale / geometry.width_px - 1) < 0.03 and abs(full_h * scale / geometry.height_px - 1) < 0.03:
            return np.array([(full_w - 1) / 2.0, (full_h - 1) / 2.0])
        return ink_centre

    page_ppm = full_w / LETTER_WIDTH_MM
    whole_page = is_letter_render(full_w, full_h)
    if pulse is not None:
        info.update(pulse.info)
        info["pulse_px_per_mm"] = round(pulse.px_per_mm, 4)
        if whole_page and abs(pulse.px_per_mm / page_ppm - 1) > 0.01:
            info["pitch_disagree"] = {"pulse": round(pulse.px_per_mm, 3), "page_width": round(page_ppm, 3)}
    if pulse is not None:
        guided = _pulse_guided_grid(g, s_all, s_h, s_v, f, rgb, (full_h, full_w), geometry, pulse.px_per_mm, info)
        if guided is not None:
            return guided
    if pulse is not None and not whole_page:
        # a rendered whole Letter page knows its scale exactly; its pulses read to 0.1-1 % (ECG-Image-Kit's,
        # without a lead-in, 0.2-0.8 % on its clean pages)
        ppm = pulse.px_per_mm
        ang = pulse.angle_deg
        hmat = _similarity_h(geometry.px_per_mm / ppm, math.radians(ang), anchor(ppm), geometry)
        return GridEstimate(ppm, (ppm, ppm), ang, hmat, "pulse", pulse.confidence, info)
    ppm = page_ppm
    hmat = _similarity_h(geometry.px_per_mm / ppm, 0.0, anchor(ppm), geometry)
    return GridEstimate(ppm, (ppm, ppm), 0.0, hmat, "page_width", 0.05, info)


def _pulse_guided_grid(g, s_all, s_h, s_v, f, rgb, full_hw, geometry, pulse_ppm: float, info: dict):
    """The grid too faint or cluttered for the comb alone (noise, wrinkles, a grid a shade darker than its
    paper), looked for where the calibration pulses say its 1 mm lines are: the strongest spectral peak within
    ``PULSE_GUIDE_TOL`` of that frequency, fitted as 1 mm lines. The pulses read to 1-2 %; the grid, when it fits
    and agrees with them, to ~0.1 %."""
    f_pulse = f / pulse_ppm  # 1 mm lines, cycles per work px
    if f_pulse > 0.45:
        return None
    freqs = f_pulse * np.linspace(1 - PULSE_GUIDE_TOL, 1 + PULSE_GUIDE_TOL, 81)
    power = s_all.at(freqs)
    f1 = float(freqs[int(np.argmax(power))])
    if power.max() < MIN_TOOTH_S:
        return None
    sub = dict(info)
    comb = _Comb(f1, float("nan"), s_all.at(f1 * np.arange(1, 11)))
    grid = _grid_estimate(g, comb, s_all, s_h, s_v, f, rgb, full_hw, geometry, sub, one_mm_known=True)
    if grid is None or abs(grid.px_per_mm / pulse_ppm - 1) > PULSE_GUIDE_TOL:
        return None
    info.update(sub, pulse_guided=True, pulse_px_per_mm=round(pulse_ppm, 4))
    return replace(grid, info=info)


def is_letter_render(width_px: int, height_px: int) -> bool:
    """Whether an image is exactly a US-letter landscape page at a whole number of dpi (a render such as
    ECG-Image-Kit's 2200 x 1700 at 200 dpi, or a page scanned edge to edge): its width then gives px/mm."""
    dpi = width_px / (LETTER_WIDTH_MM / 25.4)
    return abs(dpi - round(dpi)) < 0.01 and abs(height_px - round(dpi) * LETTER_HEIGHT_MM / 25.4) < 0.51


def _stroke_px(rgb: np.ndarray) -> float | None:
    """Median width (px) of the ink strokes (traces, text; binary grids too), from the distance transform."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    paper, ink = np.percentile(grey[::3, ::3], [90, 0.5])
    if paper - ink < 40:
        return None
    mask = (grey < 0.5 * (paper + ink)).astype(np.uint8)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    vals = dist[ridge]
    return float(2.0 * np.median(vals) - 1.0) if vals.size >= 50 else None


def _reading_prior(ppm: float, stroke_px: float | None, width_px: int) -> float:
    """Log-plausibility of a px/mm reading: strokes about STROKE_MM wide, pages about 250 mm wide."""
    score = -0.5 * abs(math.log(width_px / ppm / 250.0)) / math.log(2.0)
    if stroke_px is not None:
        score -= abs(math.log(max(stroke_px, 0.5) / ppm / STROKE_MM)) / math.log(2.0)
    return score


def _grid_estimate(g, comb: _Comb, s_all, s_h, s_v, f, rgb_full, full_hw, geometry, info, one_mm_known=False):
    """``one_mm_known``: ``comb.f0`` is the 1 mm lines' frequency (read off a calibration pulse), not a guess."""
    h, w = g.shape
    f0 = comb.f0
    t = comb.teeth  # S at k f0, k = 1..10
    minor_ok = 5 * f0 <= 0.45 and t[4] > 2.0 and t[4] > 0.5 * (t[3] + t[5]) + 0.7
    if one_mm_known:
        minor_ok, one_mm = False, True
    elif not minor_ok and 2 * f0 <= 0.45 and t[0] < 1.0 and t[1] >= 3.0:
        # the fundamental itself is missing, its double is strong: the comb took a sub-harmonic (other periodic
        # content, e.g. heart beats, filled its odd teeth)
        f0 = 2.0 * f0
        t = s_all.at(f0 * np.arange(1, 11))
        minor_ok = 5 * f0 <= 0.45 and t[4] > 2.0 and t[4] > 0.5 * (t[3] + t[5]) + 0.7
        info["fundamental_doubled"] = True
    if not minor_ok and not one_mm_known:
        # one clear line family: 5 mm lines, or 1 mm lines whose bold 5 mm lines are lost (then 5 mm
        # sub-harmonics may still show). Decide by what each reading implies for the strokes and the page.
        sub = s_all.at(f0 * np.arange(1, 5) / 5.0)
        sub_ok = f0 / 5.0 >= 2.0 / min(h, w) and sub[0] > 2.0 and np.mean(sub) > 1.0
        stroke = _stroke_px(rgb_full)
        info["stroke_px"] = None if stroke is None else round(stroke, 2)
        score5 = _reading_prior(f / (5.0 * f0), stroke, full_hw[1])
        score1 = _reading_prior(f / f0, stroke, full_hw[1]) + (1.0 if sub_ok else 0.0)
        info["reading_scores"] = [round(score5, 2), round(score1, 2)]
        if score1 > score5 and sub_ok:
            f0 = f0 / 5.0
            t = s_all.at(f0 * np.arange(1, 11))
            minor_ok = True
            info["fundamental_from_subharmonics"] = True
        one_mm = score1 > score5 and not sub_ok
    if minor_ok and 25 * f0 <= 0.45 and s_all.at([25 * f0])[0] >= 2.5:
        # three levels (some papers mark every 25 mm): the finest strong level is the 1 mm one
        f0 = 5.0 * f0
        t = s_all.at(f0 * np.arange(1, 11))
        info["fundamental_from_25mm"] = True
    if minor_ok:
        period_mm, method = 5.0, "grid"
    else:
        period_mm, method = (1.0, "grid_minor") if one_mm else (5.0, "grid_major")
    # harmonic for the fine fit: the 1 mm tooth when strong, else the strongest low one
    k_cands = [k for k in range(1, 6) if k * f0 <= 0.42] or [1]
    if period_mm == 5.0 and 5 in k_cands and t[4] >= 2.5:
        k_fit = 5
    else:
        k_fit = max(k_cands, key=lambda k: t[k - 1] + 1.5 * math.log(k))
    f_fit = k_fit * f0
    tooth_h = float(s_h.at([f_fit])[0])
    tooth_v = float(s_v.at([f_fit])[0])
    info.update(k_fit=k_fit, tooth_h=round(tooth_h, 2), tooth_v=round(tooth_v, 2),
                minor_tooth=round(float(t[4]), 2), major_tooth=round(float(t[0]), 2))
    # smeared peaks (perspective): the comb's pitch may be a few % off; fit the clear fundamental first
    pre = k_fit if (info.get("smooth_rel", 0.0) > min(SMOOTH_REL) and t[0] >= 2.5) else 1
    fams = {}
    if tooth_h >= MIN_TOOTH_S:
        fams["h"] = _fit_family(g, f_fit, period_mm / k_fit, pre)
    if tooth_v >= MIN_TOOTH_S:
        fv = _fit_family(np.ascontiguousarray(g.T), f_fit, period_mm / k_fit, pre)
        fv.k = fv.k[::-1].copy()  # back to (x, y) order: lines across x
        fams["v"] = fv
    fams = {k: v for k, v in fams.items() if v.local_coherence > MIN_LOCAL_COHERENCE}
    if not fams:
        info["reject"] = "no coherent line family"
        return None
    c_mm = geometry.px_per_mm
    ppm, ang = {}, {}
    for name, fam in fams.items():
        ppm[name] = f / (fam.period_mm * float(np.hypot(*fam.k)))
        a, b = fam.k
        ang[name] = math.atan2(-a, b) if name == "h" else math.atan2(b, a)
        info[f"coherence_{name}"] = round(fam.coherence, 3)
        info[f"local_coherence_{name}"] = round(fam.local_coherence, 3)
        info[f"resid_px_{name}"] = round(fam.resid_px * f, 3)
    both = len(fams) == 2
    consistent = both and abs(ppm["h"] / ppm["v"] - 1) < 0.03 and abs(ang["h"] - ang["v"]) < math.radians(1.5)
    # both families agreeing on the 1 mm and 5 mm lines may turn a little further than one family alone
    max_angle = MAX_ANGLE_DEG + (CONSISTENT_EXTRA_DEG if consistent and method == "grid" else 0.0)
    if any(abs(math.degrees(v)) > max_angle for v in ang.values()):
        info["reject"] = "angle out of range"
        return None
    if both and not consistent:
        best = max(fams, key=lambda n: fams[n].coherence)
        info["families_disagree"] = True
        fams = {best: fams[best]}
    # linear part (work px -> sheet px), then full-res
    if len(fams) == 2:
        kv, kh = fams["v"].k, fams["h"].k
        a_work = c_mm * np.array([fams["v"].period_mm * kv, fams["h"].period_mm * kh])
    else:
        (name, fam), = fams.items()
        k = fam.k * fam.period_mm
        if name == "h":
            kh, kv = k, np.array([k[1], -k[0]])
        else:
            kv, kh = k, np.array([-k[1], k[0]])
        a_work = c_mm * np.array([kv, kh])
    a_full = a_work / f
    ppm_x = f / float(np.hypot(*(a_work[0] / c_mm)))
    ppm_y = f / float(np.hypot(*(a_work[1] / c_mm)))
    angle = float(np.mean(list(ang.values()))) if len(fams) == 2 else float(next(iter(ang.values())))
    # translation from the gridded area (the paper, on an ECG-Image-Kit page), per axis of the deskewed frame
    full_h, full_w = full_hw
    close = int(round(1.5 / (period_mm * f0))) + 1  # closing size: 1.5 mm in work px
    margin_min = MIN_MARGIN_MM / (period_mm * f0)  # thinner margins do not count (ink at the border)
    cos_t, sin_t = math.cos(angle), math.sin(angle)
    rot = np.array([[cos_t, -sin_t], [sin_t, cos_t]])  # deskewed frame -> image frame
    centre_q = rot.T @ np.array([(full_w - 1) / 2.0, (full_h - 1) / 2.0]) / f  # image centre, work px
    spans: dict = {}
    for axis, fam in ((0, fams.get("h")), (1, fams.get("v"))):
        if fam is None:
            continue
        prof, q0 = _deskewed_profile(fam, cos_t, sin_t, along_x=axis == 0)
        lo, hi, _ = _box_1d(prof, close)
        touch_lo, touch_hi = lo <= margin_min, hi >= prof.size - 1 - margin_min
        spans[axis] = (q0 + lo, q0 + hi, touch_lo, touch_hi)
        if not (touch_lo and touch_hi):
            centre_q[axis] = q0 + (lo + hi) / 2.0
    t_vec, anchors = np.zeros(2), ["image", "image"]
    sheet_size = (geometry.width_px, geometry.height_px)
    ppm_axis = (ppm_x, ppm_y)
    for axis in (0, 1):
        lo, hi, touch_lo, touch_hi = spans.get(axis, (0.0, 0.0, True, True))
        extent_mm = (hi - lo) * f / ppm_axis[axis]
        sheet_mm = sheet_size[axis] / geometry.px_per_mm
        if axis in spans and extent_mm > sheet_mm + WIDER_PAPER_MM:
            # paper wider (taller) than the sheet: the sheet is a window at the canonical px/mm; centred on the
            # paper it would cut off a chart printed off-centre, so it moves over the chart where that fits
            window_q = (sheet_size[axis] - 1) / 2.0 * ppm_axis[axis] / (geometry.px_per_mm * f)
            chart_q = _chart_window_centre(rgb_full, (h, w), rot, axis, spans[axis][:2], centre_q[axis], window_q,
                                           CHART_MARGIN_MM * ppm_axis[axis] / f)
            if chart_q is not None:
                centre_q[axis] = chart_q
                t_vec[axis] = (sheet_size[axis] - 1) / 2.0 - (a_full @ (f * rot @ centre_q))[axis]
                anchors[axis] = "chart"
                continue
        if touch_lo != touch_hi and extent_mm >= 0.8 * sheet_mm:
            # the paper runs off one side of the image: put its visible edge on the sheet's edge
            edge_q = centre_q.copy()
            edge_q[axis] = hi if touch_lo else lo
            target = sheet_size[axis] - 0.5 if touch_lo else -0.5
            t_vec[axis] = target - (a_full @ (f * rot @ edge_q))[axis]
            anchors[axis] = "hi_edge" if touch_lo else "lo_edge"
        else:
            t_vec[axis] = (sheet_size[axis] - 1) / 2.0 - (a_full @ (f * rot @ centre_q))[axis]
            anchors[axis] = "image" if (touch_lo and touch_hi) else "grid_centre"
    if spans:
        x0, x1 = spans[0][:2] if 0 in spans else (0.0, (full_w - 1) / f)
        y0, y1 = spans[1][:2] if 1 in spans else (0.0, (full_h - 1) / f)
        quad = [f * rot @ np.array(c) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        info["grid_quad_px"] = [[round(float(v), 1) for v in c] for c in quad]
    info["anchor"] = anchors
    hmat = np.eye(3)
    hmat[:2, :2] = a_full
    hmat[:2, 2] = t_vec
    # confidence: 1 mm / 5 mm agreement, both line families agreeing, and how well one affine grid explains
    # the whole image (global coherence: low under perspective, curl or a wrong pitch)
    coh = float(np.mean([fam.coherence for fam in fams.values()]))
    conf = (0.97 if method == "grid" else 0.75) * float(np.clip((coh - 0.2) / 0.6, 0.0, 1.0))
    if not consistent:
        conf *= 0.7 if info.get("families_disagree") else 0.8
    conf = float(np.clip(conf, 0.05, 0.99))
    ppm_mean = math.sqrt(ppm_x * ppm_y)
    return GridEstimate(ppm_mean, (ppm_x, ppm_y), math.degrees(angle), hmat, method, conf, info)


def _chart_window_centre(rgb_full: np.ndarray, work_hw: tuple[int, int], rot: np.ndarray, axis: int,
                         paper_q: tuple[float, float], centre_q: float, half_window_q: float,
                         margin_q: float) -> float | None:
    """Where along deskewed ``axis`` (work px) the sheet's centre goes so that the chart's ink on the paper
    (``paper_q``) lies inside the window (half as long as ``half_window_q``, ``margin_q`` inside its ends),
    moved as little as it can be from ``centre_q`` (the paper's centre), or centred where it fits only without the
    margins and the paper's centre would cut more than a margin off it, or with its left end at the window's where
    it is wider than the window along x; None where the paper's centre does as well (a scan's or a distorted
    page's paper measured a little wider than the sheet, its chart as tall as the window), or without ink."""
    ys, xs = np.nonzero(_dark_ink(cv2.resize(rgb_full, (work_hw[1], work_hw[0]), interpolation=cv2.INTER_AREA)))
    if xs.size < 50:
        return None
    q = xs * rot[0, axis] + ys * rot[1, axis]  # deskewed coordinate: (rot.T @ (x, y))[axis]
    q = q[(q >= paper_q[0]) & (q <= paper_q[1])]
    if q.size < 50:
        return None
    lo, hi = np.percentile(q, [CHART_INK_PERCENTILE, 100.0 - CHART_INK_PERCENTILE])
    blank = (lo - paper_q[0]) + (paper_q[1] - hi)  # paper the chart leaves blank (none: the ink is the paper's
    # texture, a dark grid or wrinkles)
    if axis == 0 and hi - lo > 2.0 * half_window_q and blank > margin_q:
        # a chart wider than the window keeps its left end, cut on the right: its calibration pulses (the gain)
        # and first panels' starts are there (centred, a chart with gaps between its columns on 288 mm paper lost
        # half its pulses' width, and with them its gain)
        return max(float(q.min()), lo - margin_q) + half_window_q
    room = half_window_q - margin_q
    if hi - lo <= 2.0 * room:
        return float(np.clip(centre_q, hi - room, lo + room))
    cut = max(centre_q - half_window_q - lo, hi - centre_q - half_window_q)  # how much the paper's centre cuts
    if hi - lo <= 2.0 * half_window_q and cut > margin_q:  # on the window, not with the margins: centred
        return float(0.5 * (lo + hi))
    return None


def page_image(page_or_image, image_id: str | None = None) -> tuple[np.ndarray, str]:
    """The RGB image of a :class:`~common.types.Page` or an image array, and its id (``image_id`` first)."""
    if isinstance(page_or_image, Page):
        return as_rgb(page_or_image.image_rgb), str(image_id or page_or_image.image_id)
    return as_rgb(page_or_image), str(image_id or "")


def rectify_from_grid(page_or_image, image_id: str | None = None,
                      geometry: SheetGeometry = CANONICAL) -> Rectified:
    """Rectify a :class:`~common.types.Page` or an image array onto the canonical sheet from its grid.

    ``Rectified.px_per_mm`` is the px/mm of the rectified sheet (canonical by construction); the image's
    own px/mm, the angle and the details are in :func:`estimate_grid`, which this calls.
    """
    rgb, image_id = page_image(page_or_image, image_id)
    est = estimate_grid(rgb, geometry)
    sheet_map = SheetMap(est.image_to_sheet_h, None, geometry)
    sheet = sheet_map.rectify(rgb)
    return Rectified(image_id, sheet, sheet_map, geometry.px_per_mm, est.method, est.confidence,
                     residual_grid_px(est, geometry))


def residual_grid_px(est: GridEstimate, geometry: SheetGeometry = CANONICAL) -> float | None:
    """The grid's distance from the one affine grid the estimate placed (the rms phase residual of its line
    families over the image's tiles, the worse family), in sheet px; None where no grid was read."""
    resid = [v for k, v in est.info.items() if k.startswith("resid_px_")]
    if not resid or est.method not in ("grid", "grid_major", "grid_minor"):
        return None
    return float(max(resid)) * geometry.px_per_mm / est.px_per_mm
