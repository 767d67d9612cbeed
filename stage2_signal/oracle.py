"""Ideal TraceMaps built from a synthetic page's labels: test input for stage 2, a target for stage 1.

Two kinds of map, both per layout row and per map column a distribution of the trace's y:

* ``"centre"``: a Gaussian (``sigma_px`` sheet px) around the exact trace centre y at the map column's
  centre x (from ``labels.row_y_px``). This is the "one y per column" ideal: it carries no information
  about a stroke's vertical extent inside the column, so at high fs the QRS peaks are lost.
* ``"ink"``: the trace polyline rebuilt from the labels' samples (exact vertices), cut at map column
  edges; each piece spreads its arc length uniformly over the y-interval it spans in that column, then
  the whole is blurred by a Gaussian of ``sigma_px``. A steep stroke thus covers its full vertical extent,
  as a segmentation of the ink would; on flat parts it equals ``"centre"``.

Map values are the mass of each map pixel (integrated over its y-extent, not sampled at its centre).
A column that the row's trace covers only partly (the row's ends) holds that fraction of mass; with
``normalize=True`` the rest is spread uniformly over the column (so every column sums to 1, like the
output of a per-column softmax), otherwise it is left at 0 (like a per-pixel sigmoid).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from common.geometry import CANONICAL
from common.layouts import LEADS
from common.types import TraceMaps

ORACLE_MODES = ("ink", "centre")
_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _psi(z: np.ndarray) -> np.ndarray:
    """Antiderivative of the standard normal CDF: z * Phi(z) + phi(z)."""
    return z * ndtr(z) + np.exp(-0.5 * z * z) / _SQRT_2PI


def _box_gauss_mass(edges_lo: np.ndarray, edges_hi: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    sigma: float) -> np.ndarray:
    """Mass in [edges_lo, edges_hi] of a unit-mass uniform density on [lo, hi] blurred by N(0, sigma)."""
    width = np.maximum(hi - lo, 1e-3 * sigma)
    lo = 0.5 * (lo + hi - width)
    hi = lo + width

    def cdf(e):
        return sigma / width * (_psi((e - lo) / sigma) - _psi((e - hi) / sigma))

    return cdf(edges_hi) - cdf(edges_lo)


def _row_polylines(labels, row: int) -> list[np.ndarray]:
    """Exact (x, y) vertices of every panel of ``row`` (sheet px), one array per panel."""
    layout, placement, fs = labels.layout, labels.placement, float(labels.fs_hz)
    n = labels.signals_mv.shape[1]
    out = []
    for panel in layout.row_panels(row):
        i0, i1 = panel.sample_range(fs, n)
        t = np.arange(i0, i1) / fs
        x = placement.panel_x_px(panel, t)
        y = labels.chart_geometry.mv_to_y(panel.sign * labels.signals_mv[LEADS.index(panel.lead), i0:i1].astype(
            np.float64), placement.baselines_y_px[row])
        # a renderer that did not draw a sample (ECG-Image-Kit's labels are NaN there: at 1025 Hz the sample on
        # a lead change belongs to neither panel) leaves no vertex
        drawn = np.isfinite(y)
        if drawn.sum() >= 2:
            out.append(np.stack([x[drawn], y[drawn]], axis=1))
    return out


def _ink_pieces(poly: np.ndarray, scale_x: float, n_cols: int) -> tuple[np.ndarray, ...]:
    """The polyline cut at map column edges: column index, y-interval, and arc-length weight per piece."""
    x, y = poly[:, 0], poly[:, 1]
    edges = (np.arange(n_cols + 1)) / scale_x - 0.5  # sheet x of map column edges
    inner = edges[(edges > x[0]) & (edges < x[-1])]
    xs = np.union1d(x, inner)
    ys = np.interp(xs, x, y)
    xm = 0.5 * (xs[1:] + xs[:-1])
    col = np.floor((xm + 0.5) * scale_x).astype(np.int64)
    lo, hi = np.minimum(ys[1:], ys[:-1]), np.maximum(ys[1:], ys[:-1])
    dx = np.diff(xs)
    arc = np.hypot(dx, hi - lo)
    keep = (col >= 0) & (col < n_cols) & (dx > 0)
    return col[keep], lo[keep], hi[keep], arc[keep], dx[keep]


def _scatter(map_: np.ndarray, col: np.ndarray, lo: np.ndarray, hi: np.ndarray, weight: np.ndarray,
             scale_y: float, sigma: float) -> None:
    """Add, for each piece, ``weight`` x (uniform on [lo, hi] blurred by sigma) into map column ``col``."""
    n_rows = map_.shape[0]
    # map row k spans sheet y in [k / scale_y - 0.5, (k + 1) / scale_y - 0.5]
    k0 = np.clip(np.floor((lo - 5 * sigma + 0.5) * scale_y).astype(np.int64), 0, n_rows - 1)
    k1 = np.clip(np.floor((hi + 5 * sigma + 0.5) * scale_y).astype(np.int64), 0, n_rows - 1)
    counts = k1 - k0 + 1
    piece = np.repeat(np.arange(col.size), counts)
    offset = np.arange(piece.size) - np.repeat(np.cumsum(counts) - counts, counts)
    k = k0[piece] + offset
    e_lo = k / scale_y - 0.5
    mass = _box_gauss_mass(e_lo, e_lo + 1.0 / scale_y, lo[piece], hi[piece], sigma) * weight[piece]
    np.add.at(map_, (k, col[piece]), mass)


def _pulse_polyline(labels, row: int) -> np.ndarray | None:
    """The row's calibration pulse as drawn by the renderer, or None when the row has none."""
    if not np.isfinite(labels.pulse_boxes_px[row]).all():
        return None
    from synth.render import _calibration_pulse  # the renderer's own pulse shape

    return _calibration_pulse(labels.x0_px - 4.0, labels.baselines_y_px[row], labels.chart_geometry)


def oracle_row_map(labels, row: int, scale_x: float = 0.5, scale_y: float = 0.5, sigma_px: float = 1.5,
                   mode: str = "ink", normalize: bool = True, include_pulse: bool = False) -> np.ndarray:
    """One row's ideal map, float32 (round(H * scale_y), round(W * scale_x)).

    ``include_pulse`` (ink mode) also draws the row's calibration pulse, as a segmentation that does not
    tell the pulse from the trace would.
    """
    if mode not in ORACLE_MODES:
        raise ValueError(f"oracle mode must be one of {ORACLE_MODES}, got {mode!r}")
    h, w = CANONICAL.shape_hw
    n_rows, n_cols = int(round(h * scale_y)), int(round(w * scale_x))
    out = np.zeros((n_rows, n_cols), dtype=np.float64)
    cover = np.zeros(n_cols)
    col_w = 1.0 / scale_x
    if mode == "ink":
        polys = _row_polylines(labels, row)
        pulse = _pulse_polyline(labels, row) if include_pulse else None
        if pulse is not None:
            polys.append(pulse)
        for poly in polys:
            if poly.shape[0] < 2:
                continue
            col, lo, hi, arc, dx = _ink_pieces(poly, scale_x, n_cols)
            np.add.at(cover, col, dx / col_w)
            total = np.bincount(col, weights=arc, minlength=n_cols)
            # each column's ink mass = the fraction of the column the trace spans, shared by arc length
            weight = arc / np.maximum(total[col], 1e-12) * np.minimum(cover[col], 1.0)
            _scatter(out, col, lo, hi, weight, scale_y, sigma_px)
        # the same column may get pieces from two panels; re-normalise to its coverage
        mass = out.sum(axis=0)
        cover = np.minimum(cover, 1.0)
        out *= np.where(mass > 0, cover / np.maximum(mass, 1e-12), 0.0)[None, :]
    else:
        from synth.labels import sub_column_x  # labels.row_y_px is defined on synth's sub-columns

        row_y = labels.row_y_px[row].astype(np.float64)
        x_sub = sub_column_x(w, labels.x_upsample)
        finite = np.isfinite(row_y)
        if finite.sum() >= 2:
            xc = (np.arange(n_cols) + 0.5) / scale_x - 0.5
            # fraction of each map column's footprint covered by finite sub-columns
            csum = np.concatenate([[0.0], np.cumsum(finite)])
            a = np.clip(np.round((xc - 0.5 * col_w + 0.5) * labels.x_upsample - 0.5).astype(np.int64), 0, x_sub.size)
            b = np.clip(np.round((xc + 0.5 * col_w + 0.5) * labels.x_upsample - 0.5).astype(np.int64), 0, x_sub.size)
            cover = (csum[b] - csum[a]) / np.maximum(b - a, 1)
            yc = np.interp(xc, x_sub[finite], row_y[finite])
            col = np.flatnonzero(cover > 0)
            _scatter(out, col, yc[col], yc[col], cover[col], scale_y, sigma_px)
            mass = out.sum(axis=0)
            out *= np.where(mass > 0, cover / np.maximum(mass, 1e-12), 0.0)[None, :]
    if normalize:
        out += (1.0 - np.minimum(cover, 1.0))[None, :] / n_rows
    return out.astype(np.float32)


def oracle_maps(labels, scale_x: float = 0.5, scale_y: float = 0.5, sigma_px: float = 1.5, mode: str = "ink",
                normalize: bool = True, image_id: str | None = None, include_pulse: bool = False) -> TraceMaps:
    """Ideal :class:`TraceMaps` of a page from its :class:`~synth.labels.SheetLabels` (see the module doc)."""
    maps = np.stack([oracle_row_map(labels, r, scale_x, scale_y, sigma_px, mode, normalize, include_pulse)
                     for r in range(labels.layout.n_rows)])
    return TraceMaps(image_id=str(image_id if image_id is not None else labels.record_id),
                     layout_name=labels.layout_name, maps=maps, scale_x=float(scale_x), scale_y=float(scale_y))
