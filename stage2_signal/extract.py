"""Per-row trace reading from a TraceMaps row map: sub-pixel y per map column, its vertical extent, and a
fine polyline of the trace in sheet pixels.

For each map column (a distribution of the row's trace y):

* the peak row, and the soft-argmax (centre of mass) over a window of ``window_px`` around it, so
  distant clutter in the same column does not pull it (``y_peak``);
* the *support*: the contiguous run of rows around the peak whose mass is at least ``level`` x the
  peak's; its mass fraction of the column (beyond the share a flat column would give a support that
  tall) is the column's confidence (capped by the column's
  *presence*, its mass above background relative to the typical column, for maps that are not
  normalised per column); presence also locates where the trace starts and ends to a fraction of a column;
* the extent from the support's second moment, corrected for the map's own blur: a stroke spreads
  uniformly over its span (as ink does), so a stroke of height H has variance H^2 / 12 + s^2, where s^2
  is the typical (flat) column's variance. A column whose extent exceeds ``wide_px`` holds a stroke (QRS
  up- and down-strokes share columns at high fs, or at coarse map resolution).

:meth:`RowTrace.vertices` then turns the columns into a polyline: a narrow column gives one vertex at its
``y_peak``; a wide one gives its extent's ends, ordered by continuity with the neighbouring columns
(rising, falling, or a peak / trough in between, whose x is placed from the neighbours' levels).
Low-confidence columns are skipped, so the polyline bridges them linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri as ndtr_inv

from common.types import TraceMaps
from stage2_signal.settings import Settings

MAP_INPUTS = ("auto", "prob", "logits")


@dataclass(frozen=True)
class ExtractConfig(Settings):
    """Parameters of the per-column reading (lengths in sheet px)."""

    SECTION = "extract"

    input: str = "auto"  # "prob" (non-negative masses), "logits" (softmax over y per column) or "auto"
    window_px: float = 4.0  # half-width of the soft-argmax window around each column's peak
    level: float = 0.07  # support = contiguous rows with mass >= level x the column's peak; low, because along
    # a steep narrow spike the network's maps hold only 0.1-0.3 x the peak mass and a higher level cuts the tip off
    # (0.25 -> 0.07: held-out 19.40 -> 19.82 dB, other renderer 21.99 -> 22.26 dB)
    gap_px: float = 2.0  # gaps in the support up to this long are closed
    max_support_px: float = 600.0  # a column whose support is taller is not a trace (diffuse)
    min_confidence: float = 0.3  # columns below this are bridged by interpolation
    use_extent: bool = True  # read strokes' vertical extent (else one y per column: y_peak)
    wide_px: float = 1.0  # corrected extent above which a column is treated as a stroke
    sigma_px: float | None = None  # sd of a flat trace's support as read here; None = from the map's typical column
    extremes: str = "moments"  # a peak's / trough's level from the support's "moments" or its "edges"

    def __post_init__(self) -> None:
        if self.input not in MAP_INPUTS:
            raise ValueError(f"ExtractConfig.input must be one of {MAP_INPUTS}, got {self.input!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"ExtractConfig.level must be in (0, 1), got {self.level}")
        if self.extremes not in ("edges", "moments"):
            raise ValueError(f"ExtractConfig.extremes must be 'edges' or 'moments', got {self.extremes!r}")
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"ExtractConfig.min_confidence must be in [0, 1), got {self.min_confidence}")
        for name in ("window_px", "gap_px", "max_support_px", "wide_px"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ExtractConfig.{name} must be >= 0, got {getattr(self, name)}")



# --- per-column statistics ---------------------------------------------------------------------------
def _as_masses(m: np.ndarray, mode: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if not np.isfinite(m).all():
        raise ValueError("trace map holds non-finite values")
    if mode == "auto":
        mode = "logits" if (m.min() < 0.0 or m.max() > 1.0) else "prob"
    if mode == "logits":
        m = m - m.max(axis=0, keepdims=True)
        np.exp(m, out=m)
        m /= m.sum(axis=0, keepdims=True)
    elif m.min() < 0.0:
        raise ValueError("trace map declared as probabilities holds negative values")
    return m


@dataclass
class RowTrace:
    """Per map column of one row: sheet x, the reading and its confidence (all sheet px, shape (W,))."""

    x: np.ndarray  # column centres
    col_width: float  # sheet px per map column
    y_peak: np.ndarray  # soft-argmax around the peak
    y_mid: np.ndarray  # centre of the (corrected) extent
    top: np.ndarray  # corrected extent, top <= bottom (y grows downwards)
    bottom: np.ndarray
    wide: np.ndarray  # bool: column holds a stroke
    conf: np.ndarray  # 0..1
    sigma: float  # the map's blur, as used for the extent correction
    top_edge: np.ndarray  # extent from the support's edges (used for peaks and troughs)
    bottom_edge: np.ndarray
    presence: np.ndarray  # trace mass relative to the typical column (~ the fraction of the column covered)
    cfg: ExtractConfig  # how to turn the columns into a polyline

    def vertices(self, x_lo: float = -np.inf, x_hi: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Polyline (x, y) through the confident columns with centres in [x_lo, x_hi] (see module doc)."""
        min_confidence, use_extent, extremes = self.cfg.min_confidence, self.cfg.use_extent, self.cfg.extremes
        idx = np.flatnonzero((self.conf >= min_confidence) & (self.conf > 0) & (self.x >= x_lo) & (self.x <= x_hi))
        if idx.size == 0:
            return np.empty(0), np.empty(0)
        x, yp = self.x[idx], self.y_peak[idx]
        if not use_extent:
            return x, yp
        wide = self.wide[idx]
        t, b, mid = self.top[idx], self.bottom[idx], self.y_mid[idx]
        rep = np.where(wide, mid, yp)
        # at the ends the missing neighbour mirrors the present one: the stroke goes on in its direction
        yl = np.concatenate([2 * rep[:1] - rep[1:2], rep[:-1]]) if rep.size > 1 else rep
        yr = np.concatenate([rep[1:], 2 * rep[-1:] - rep[-2:-1]]) if rep.size > 1 else rep
        peak = wide & (yl >= mid) & (yr >= mid)
        trough = wide & (yl <= mid) & (yr <= mid) & ~peak
        rising = wide & ~peak & ~trough & (yl > yr)
        falling = wide & ~peak & ~trough & ~rising
        if extremes == "edges":
            te, be = self.top_edge[idx], self.bottom_edge[idx]
        else:
            te, be = t, b
        first = np.select([peak, trough, rising, falling], [te, be, b, t], yp)
        last = np.select([peak, trough, rising, falling], [te, be, t, b], yp)
        h = 0.49 * self.col_width
        x1 = np.where(rising | falling, x - h, x)
        x2 = np.where(rising | falling, x + h, x)
        # a peak's (trough's) x: equal slopes on both sides, from the levels the neighbours reach
        e_l = np.concatenate([last[:1], last[:-1]])
        e_r = np.concatenate([first[1:], first[-1:]])
        ext = peak | trough
        d_l = np.abs(e_l - first)
        d_r = np.abs(e_r - first)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(d_l + d_r > 0, d_l / (d_l + d_r), 0.5)
        xa = x - h + 2 * h * frac
        x1 = np.where(ext, xa, x1)
        x2 = np.where(ext, xa, x2)
        two = rising | falling
        xs = np.empty(idx.size + int(two.sum()))
        ys = np.empty_like(xs)
        pos = np.arange(idx.size) + np.concatenate([[0], np.cumsum(two)[:-1]])
        xs[pos], ys[pos] = x1, first
        xs[pos[two] + 1], ys[pos[two] + 1] = x2[two], last[two]
        return xs, ys

    def sample(self, x_query: np.ndarray, x_lo: float = -np.inf, x_hi: float = np.inf,
               extrapolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Trace y and confidence at sheet x ``x_query`` from the columns in [x_lo, x_hi]."""
        xv, yv = self.vertices(x_lo, x_hi)
        if xv.size == 0:
            raise ValueError(f"no confident trace columns in sheet x [{x_lo:.1f}, {x_hi:.1f}]")
        x_query = np.asarray(x_query, dtype=np.float64)
        y = np.interp(x_query, xv, yv)
        if extrapolate and xv.size >= 2:
            # continue the end segments' slope for up to one column beyond the outermost vertices
            for end, nxt, side in ((0, 1, x_query < xv[0]), (-1, -2, x_query > xv[-1])):
                if side.any() and xv[end] != xv[nxt]:
                    slope = (yv[end] - yv[nxt]) / (xv[end] - xv[nxt])
                    dx = np.clip(x_query[side] - xv[end], -self.col_width, self.col_width)
                    y[side] = yv[end] + slope * dx
        c = np.interp(x_query, self.x, self.conf)
        return y, c


def _shift_or(a: np.ndarray, g: int, combine) -> np.ndarray:
    out = a.copy()
    for s in range(1, g + 1):
        combine(out[s:], a[:-s], out=out[s:])
        combine(out[:-s], a[s:], out=out[:-s])
    return out


def _close_rows(mask: np.ndarray, g: int) -> np.ndarray:
    """Binary closing along axis 0 (fills runs of up to 2g False rows between True rows)."""
    dil = _shift_or(mask, g, np.logical_or)
    # erosion with the outside counted as True, so runs touching the border are not eaten
    out = dil.copy()
    for s in range(1, g + 1):
        np.logical_and(out[s:], dil[:-s], out=out[s:])
        np.logical_and(out[:-s], dil[s:], out=out[:-s])
    return out | mask


def read_row(m: np.ndarray, sheet_x: np.ndarray, sheet_y: np.ndarray, cfg: ExtractConfig,
             masses: bool = False) -> RowTrace:
    """Read one row map (Hm, Wm) whose pixel centres are at ``sheet_y`` x ``sheet_x`` (sheet px)."""
    p = m if masses else _as_masses(m, cfg.input)
    hm, wm = p.shape
    if hm < 3 or wm < 2:
        raise ValueError(f"trace map {p.shape} is too small")
    dy = float(sheet_y[1] - sheet_y[0])
    col_width = float(sheet_x[1] - sheet_x[0])
    cols = np.arange(wm)
    rows = np.arange(hm)
    total = p.sum(axis=0, dtype=np.float64)
    k = np.argmax(p, axis=0)
    peak = p[k, cols].astype(np.float64)

    # soft-argmax in a window around the peak
    w = max(1, int(np.ceil(cfg.window_px / dy)))
    win = np.clip(k[None, :] + np.arange(-w, w + 1)[:, None], 0, hm - 1)
    inside = (k[None, :] + np.arange(-w, w + 1)[:, None] >= 0) & (k[None, :] + np.arange(-w, w + 1)[:, None] < hm)
    pw = np.where(inside, p[win, cols[None, :]], 0.0).astype(np.float64)
    wmass = pw.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        y_peak = (pw * sheet_y[win]).sum(axis=0) / wmass

    # support: contiguous run around the peak above level x peak (small gaps closed)
    above = p >= (cfg.level * peak)[None, :]
    g = int(np.ceil(cfg.gap_px / dy))
    if g > 0:
        above = _close_rows(above, g)
    r = rows[:, None]
    top_i = np.where(~above & (r < k[None, :]), r, -1).max(axis=0) + 1
    bot_i = np.where(~above & (r > k[None, :]), r, hm).min(axis=0) - 1
    run = (r >= top_i[None, :]) & (r <= bot_i[None, :])
    smass = np.where(run, p, 0.0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, smass / total, 0.0)
    # mass fraction beyond what a flat (trace-less) column would put in a support that tall
    share = (bot_i - top_i + 1) / hm
    frac = np.clip((frac - share) / np.maximum(1.0 - share, 1e-6), 0.0, 1.0)

    # sub-row edges where the profile crosses level x peak
    thr = cfg.level * peak

    def edge(i_in, i_out):
        inb = (i_out >= 0) & (i_out < hm)
        v_in = p[np.clip(i_in, 0, hm - 1), cols].astype(np.float64)
        v_out = np.where(inb, p[np.clip(i_out, 0, hm - 1), cols], 0.0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip((v_in - thr) / np.maximum(v_in - v_out, 1e-30), 0.0, 1.0)
        y_in = sheet_y[0] + i_in * dy
        return y_in + t * dy * np.sign(i_out - i_in)

    y_top_raw = edge(top_i, top_i - 1)
    y_bot_raw = edge(bot_i, bot_i + 1)
    support_px = (bot_i - top_i + 1) * dy

    # presence: the column's mass above its background (its median), relative to the typical trace
    # column; the fraction of the column's width that the trace covers, where the trace starts or ends
    bg = np.median(p, axis=0)
    above_bg = np.maximum(p - bg[None, :], 0.0).sum(axis=0, dtype=np.float64)
    peaky = (frac > 0.5) & (above_bg > 0)
    presence = np.zeros(wm)
    if peaky.any():
        presence = above_bg / float(np.median(above_bg[peaky]))
    conf = np.minimum(frac, np.clip(presence, 0.0, 1.0))
    conf[support_px > cfg.max_support_px] = 0.0
    conf[~np.isfinite(y_peak)] = 0.0

    # extent from the support's second moment: a uniform stroke of height H blurred by the map's own
    # spread s has variance H^2 / 12 + s^2; s^2 is the typical (flat) column's variance
    with np.errstate(invalid="ignore", divide="ignore"):
        y_mass = np.where(run, p * sheet_y[:, None], 0.0).sum(axis=0) / smass
        var = np.where(run, p * (sheet_y[:, None] - y_mass[None, :]) ** 2, 0.0).sum(axis=0) / smass
    var = np.where(np.isfinite(var), var, 0.0)
    y_mass = np.where(np.isfinite(y_mass), y_mass, y_peak)
    good = conf >= max(cfg.min_confidence, 0.5)
    if cfg.sigma_px is not None:
        var0 = float(cfg.sigma_px) ** 2
    elif good.any():
        var0 = float(np.median(var[good]))
    else:
        var0 = 1.0
    sigma = float(np.sqrt(max(var0, 1e-6)))
    half = 0.5 * np.sqrt(12.0 * np.maximum(var - var0, 0.0))
    wide = (2.0 * half > cfg.wide_px) & (conf > 0)
    y_peak = np.where(np.isfinite(y_peak), y_peak, y_mass)
    mid = y_mass
    top = np.minimum(mid - half, y_peak)
    bottom = np.maximum(mid + half, y_peak)
    # the support's edges, moved in by where a blurred edge crosses ``level`` (from the typical column's
    # half-width at that level, a Gaussian's sqrt(2 ln(1/level)) sigma)
    half_raw = 0.5 * (y_bot_raw - y_top_raw)
    hw = float(np.median(half_raw[good])) if good.any() else 0.0
    corr = hw * float(ndtr_inv(1.0 - cfg.level)) / np.sqrt(2.0 * np.log(1.0 / cfg.level))
    top_edge = np.minimum(y_top_raw + corr, y_peak)
    bottom_edge = np.maximum(y_bot_raw - corr, y_peak)
    return RowTrace(x=np.asarray(sheet_x, dtype=np.float64), col_width=col_width, y_peak=y_peak,
                    y_mid=np.where(wide, mid, y_peak), top=np.where(wide, top, y_peak),
                    bottom=np.where(wide, bottom, y_peak), wide=wide, conf=conf, sigma=sigma,
                    top_edge=np.where(wide, top_edge, y_peak), bottom_edge=np.where(wide, bottom_edge, y_peak),
                    presence=presence, cfg=cfg)


def read_rows(maps: TraceMaps, cfg: ExtractConfig | None = None) -> list[RowTrace]:
    """Read every row of ``maps``; raises ValueError when a map is empty or not a trace map."""
    cfg = cfg or ExtractConfig()
    sx, sy = maps.sheet_x(), maps.sheet_y()
    out = []
    for r in range(maps.maps.shape[0]):
        m = maps.maps[r]
        if not np.isfinite(m).all():
            raise ValueError(f"{maps.image_id}: trace map of row {r} holds non-finite values")
        trace = read_row(m, sx, sy, cfg)
        out.append(trace)
    return out
