"""Debug pictures of stage 2 (OpenCV only): the read traces over the maps, and read vs true signals."""

from __future__ import annotations

import cv2
import numpy as np

from common.layouts import LEADS
from common.metric import lead_powers
from common.types import TraceMaps

_RED, _GREEN, _BLUE, _YELLOW, _BLACK = (0, 0, 255), (0, 160, 0), (255, 80, 0), (0, 200, 255), (0, 0, 0)


def _to_map_xy(x, y, maps: TraceMaps) -> np.ndarray:
    """Sheet px -> map pixel coordinates as OpenCV fixed-point (4 fractional bits) int32 points."""
    mx = (np.asarray(x) + 0.5) * maps.scale_x - 0.5
    my = (np.asarray(y) + 0.5) * maps.scale_y - 0.5
    return np.round(np.stack([mx, my], axis=1) * 16).astype(np.int32)


def _polyline(img, pts: np.ndarray, colour, thickness: int = 1) -> None:
    if len(pts) >= 2:
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, thickness, cv2.LINE_AA, 4)


def row_overlays(maps: TraceMaps, extraction, labels=None, margin_px: float = 40.0) -> np.ndarray:
    """One band per layout row: the map (darker = more mass), the read polyline
    (red), the true centre line (green, if ``labels``), the chart origin (blue) and panel starts (yellow)."""
    from stage2_signal.calibrate import panel_x_px, sheet_geometry

    bands = []
    geom = sheet_geometry(extraction.info["px_per_mm"], extraction.info["mm_per_mv"])
    for row in range(len(extraction.traces)):
        trace = extraction.traces[row]
        xv, yv = trace.vertices()
        if xv.size == 0:
            continue
        y_lo, y_hi = float(np.min(yv)) - margin_px, float(np.max(yv)) + margin_px
        r0 = max(0, int(np.floor((y_lo + 0.5) * maps.scale_y)))
        r1 = min(maps.maps.shape[1], int(np.ceil((y_hi + 0.5) * maps.scale_y)) + 1)
        m = maps.maps[row, r0:r1].astype(np.float32)
        if m.min() < 0 or m.max() > 1:  # logits
            m = np.exp(m - m.max(axis=0, keepdims=True))
            m = m / m.sum(axis=0, keepdims=True)
        m = np.clip(m / max(float(np.percentile(m, 99.9)), 1e-12), 0.0, 1.0)
        img = cv2.cvtColor((255 * (1 - m)).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        shift_y = r0 / maps.scale_y

        def pts(x, y, _s=shift_y):
            return _to_map_xy(x, np.asarray(y) - _s, maps)

        x0 = extraction.info["x0_px"][row]
        h = img.shape[0]
        for rd in extraction.readings:
            if rd.panel.row == row:
                xs = float(panel_x_px(rd.panel, rd.panel.t0_s, x0, geom, extraction.info["time_scale"]))
                cv2.line(img, (int(round((xs + 0.5) * maps.scale_x - 0.5)), 0),
                         (int(round((xs + 0.5) * maps.scale_x - 0.5)), h - 1),
                         _BLUE if rd.panel.col == 0 else _YELLOW, 1)
        if labels is not None:
            from synth.labels import sub_column_x

            ry = labels.row_y_px[row].astype(np.float64)
            xs = sub_column_x(ry.size // labels.x_upsample, labels.x_upsample)
            ok = np.isfinite(ry)
            # break the line where the row has no trace (between panels)
            breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
            for seg in np.split(np.arange(ry.size), breaks):
                if ok[seg[0]]:
                    _polyline(img, pts(xs[seg], ry[seg]), _GREEN)
        _polyline(img, pts(xv, yv), _RED)
        cv2.putText(img, f"row {row}  x0 {x0:.2f} ({extraction.info['x0_how'][row]})", (5, 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, _BLACK, 1, cv2.LINE_AA)
        bands.append(img)
        bands.append(np.full((4, img.shape[1], 3), 128, np.uint8))
    if not bands:
        raise ValueError("no row holds a trace to draw")
    width = max(b.shape[1] for b in bands)
    bands = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands]
    return np.concatenate(bands, axis=0)


def signal_plot(pred: dict, fs_hz: float, truth: dict | None = None, width: int = 1600,
                strip_h: int = 110) -> np.ndarray:
    """Each lead as a strip: prediction (red) over truth (green, offset-aligned to the prediction)."""
    img = np.full((strip_h * len(LEADS), width, 3), 255, np.uint8)
    for k, lead in enumerate(LEADS):
        p = np.asarray(pred[lead], dtype=np.float64)
        series = [(p, _RED)]
        label = lead
        if truth is not None and lead in truth:
            y = np.asarray(truth[lead], dtype=np.float64)
            if y.size == p.size:
                s, n, lag, off = lead_powers(y, p, fs_hz)
                label += f"  {10 * np.log10(s / max(n, 1e-30)):.1f} dB  lag {lag}"
                series.insert(0, (y + off, _GREEN))
        lo = min(float(v.min()) for v, _ in series)
        hi = max(float(v.max()) for v, _ in series)
        span = max(hi - lo, 1e-6)
        top = k * strip_h
        for v, colour in series:
            xs = np.linspace(0, width - 1, v.size)
            ys = top + 8 + (hi - v) / span * (strip_h - 16)
            _polyline(img, np.round(np.stack([xs, ys], axis=1) * 16).astype(np.int32), colour)
        cv2.putText(img, label, (5, top + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _BLACK, 1, cv2.LINE_AA)
        cv2.line(img, (0, top + strip_h - 1), (width - 1, top + strip_h - 1), (200, 200, 200), 1)
    return img
