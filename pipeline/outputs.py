"""What a digitized page is written as, for the command line and the web page alike.

    csv   time_s, then the 12 leads as columns on one 10 s time base at fs (NaN where a lead was not printed)
    wfdb  a WFDB record (<name>.hea + <name>.dat, format 16, units mV, 1 µV per ADC unit) of the 12 leads' table
    json  {"image_id", "fs_hz", "layout": {"name", "how", "finder_confidence", "mm_per_mv"}, "leads": {lead: [mV, ...]},
          "spans_s": {lead: [first s, end s]}, "warnings", "timings_s"}: each lead's printed samples and which
          seconds of the record they are
    overlay.png  the input image with the signals drawn back onto it through the inverse of stage 0's map
    leads.png    the 12 leads plotted on ECG paper (25 mm/s, 10 mm/mV)
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.geometry import CANONICAL
from common.layouts import COMPETITION_LAYOUT, LEADS, Layout, get_layout
from stage2_signal.calibrate import panel_x_px, sheet_geometry

FORMATS = ("csv", "wfdb", "json")  # data formats; the two pictures are written alongside
WFDB_UV_PER_UNIT = 1.0  # ADC resolution of the written record: 1 µV (1000 units per mV)
WFDB_FORMAT_16_MAX = 32767  # format 16 holds -32767..32767 (-32768 marks a missing sample)
PICTURE_MAX_SIDE_PX = 2400  # overlays of larger inputs are scaled down to this (a screen's worth)


@dataclass(frozen=True)
class Digitized:
    """One page's result as written: the leads at ``fs_hz`` and what to tell the reader."""

    image_id: str
    fs_hz: float
    leads_mv: dict  # lead -> samples asked for (the competition's: II 10 s, the others 2.5 s)
    warnings: tuple[str, ...] = ()
    timings_s: dict | None = None
    layout: Layout = COMPETITION_LAYOUT
    layout_how: str = "default"  # why the page was read by ``layout``: found on it, forced, or the default
    layout_confidence: float = 0.0  # the layout finder's confidence in what it found
    mm_per_mv: float = CANONICAL.mm_per_mv  # the chart's gain it was read at (its calibration pulses')


def digitized_page(image_id: str, fs_hz: float, leads_mv: dict, warnings: tuple[str, ...], timings_s: dict,
                   reading) -> Digitized:
    """A page's :class:`Digitized` from the pipeline's :class:`pipeline.chain.LayoutReading` (None where the page
    failed before a layout was chosen: its fallback has the competition layout's lengths)."""
    if reading is None:
        return Digitized(image_id, fs_hz, leads_mv, warnings, timings_s)
    return Digitized(image_id, fs_hz, leads_mv, warnings, timings_s, get_layout(reading.name), reading.how,
                     reading.confidence, reading.mm_per_mv)


def lead_start_index(layout: Layout, lead: str, fs_hz: float) -> int:
    """Record sample at which a lead's array starts: the start of the first panel that prints it."""
    return int(round(min(p.t0_s for p in layout.lead_panels(lead)) * fs_hz))


def lead_spans_s(result: Digitized) -> dict:
    """Per lead, the seconds of the record its samples cover: [start, end)."""
    spans = {}
    for lead in LEADS:
        start = lead_start_index(result.layout, lead, result.fs_hz)
        spans[lead] = (start / result.fs_hz, (start + np.asarray(result.leads_mv[lead]).size) / result.fs_hz)
    return spans


def leads_table(result: Digitized) -> pd.DataFrame:
    """The leads as columns on one record time base; NaN where a lead was not printed."""
    spans = {lead: (lead_start_index(result.layout, lead, result.fs_hz), np.asarray(v, np.float64))
             for lead, v in result.leads_mv.items()}
    n = max(i0 + v.size for i0, v in spans.values())
    table = np.full((n, len(LEADS)), np.nan)
    for k, lead in enumerate(LEADS):
        i0, values = spans[lead]
        table[i0:i0 + values.size, k] = values
    return pd.DataFrame(table, columns=list(LEADS))


def csv_text(result: Digitized) -> str:
    """The leads' table with the record time of each row first: a lead's span is where it is not NaN."""
    table = leads_table(result)
    table.insert(0, "time_s", np.arange(len(table)) / result.fs_hz)
    return table.to_csv(index=False, float_format="%.5f")


def result_json(result: Digitized) -> dict:
    return {"image_id": result.image_id, "fs_hz": result.fs_hz,
            "layout": {"name": result.layout.name, "how": result.layout_how,
                       "finder_confidence": round(float(result.layout_confidence), 3),
                       "mm_per_mv": float(result.mm_per_mv)},
            "leads": {lead: [round(float(x), 5) for x in result.leads_mv[lead]] for lead in LEADS},
            "spans_s": {lead: [round(t0, 6), round(t1, 6)] for lead, (t0, t1) in lead_spans_s(result).items()},
            "warnings": list(result.warnings),
            "timings_s": {k: round(float(v), 3) for k, v in (result.timings_s or {}).items()}}


def record_name(image_id: str) -> str:
    """A WFDB record name (letters, digits, '-', '_') for an image id."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", image_id).strip("_") or "record"


def write_wfdb(result: Digitized, out_dir: Path) -> list[Path]:
    """``<record>.hea`` + ``<record>.dat`` in ``out_dir``, readable by ``wfdb.rdrecord``."""
    import wfdb

    table = leads_table(result).to_numpy(np.float64)
    peak = float(np.nanmax(np.abs(table))) if np.isfinite(table).any() else 0.0
    # 1 µV per unit unless a lead would overflow format 16 (|x| > 32.767 mV: no real ECG; keep it, coarser)
    gain = min(1000.0 / WFDB_UV_PER_UNIT, WFDB_FORMAT_16_MAX / peak) if peak > 0 else 1000.0 / WFDB_UV_PER_UNIT
    name = record_name(result.image_id)
    comments = [f"digitized from image {result.image_id}"] + [f"warning: {w}" for w in result.warnings]
    out_dir.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=result.fs_hz, units=["mV"] * len(LEADS), sig_name=list(LEADS), p_signal=table,
                fmt=["16"] * len(LEADS), adc_gain=[gain] * len(LEADS), baseline=[0] * len(LEADS),
                comments=comments, write_dir=str(out_dir))
    return [out_dir / f"{name}.hea", out_dir / f"{name}.dat"]


def wfdb_zip(result: Digitized) -> bytes:
    """The WFDB record as a zip (for a download)."""
    with tempfile.TemporaryDirectory(prefix="ecg-wfdb-") as tmp:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in write_wfdb(result, Path(tmp)):
                archive.write(path, path.name)
    return buffer.getvalue()


def signal_polylines(result: Digitized, rectified, extraction) -> list[np.ndarray]:
    """Each printed panel's signal as an (n, 2) polyline in input-image px: placed on the sheet as stage 2 read
    it (its row's time origin and time scale, the panel's baseline, px per mV) and mapped back through the
    inverse of stage 0's map. The signals' constant offset is free (the metric ignores it), so each panel's is
    matched to what was read there."""
    info = extraction.info
    geom = sheet_geometry(info["px_per_mm"], info["mm_per_mv"])
    layout = result.layout
    lines = []
    for reading in extraction.readings:
        panel = reading.panel
        values = np.asarray(result.leads_mv[panel.lead], np.float64)
        start = lead_start_index(layout, panel.lead, result.fs_hz)
        lo, hi = max(reading.i0, start), min(reading.i1, start + values.size)
        if hi - lo < 2:
            continue
        mv = values[lo - start:hi - start]
        offset = float(np.median(mv - reading.mv[lo - reading.i0:hi - reading.i0]))
        t = np.arange(lo, hi) / result.fs_hz
        x = panel_x_px(panel, t, info["x0_px"][panel.row], geom, info.get("time_scale", 1.0))
        y = geom.mv_to_y(panel.sign * (mv - offset), reading.baseline_y_px)  # drawn as printed (-aVR upside down)
        lines.append(rectified.sheet_map.sheet_to_image(np.stack([x, y], axis=1)))
    return lines


def overlay_png(image_rgb: np.ndarray, polylines: list[np.ndarray]) -> bytes:
    """The input image, faded, with the signals drawn over it in blue (PNG bytes)."""
    scale = min(1.0, PICTURE_MAX_SIDE_PX / max(image_rgb.shape[:2]))
    picture = image_rgb if scale == 1.0 else cv2.resize(image_rgb, None, fx=scale, fy=scale,
                                                        interpolation=cv2.INTER_AREA)
    picture = (0.55 * picture + 0.45 * 255).astype(np.uint8)  # faded, so the drawn signal stands out
    thickness = max(1, int(round(max(picture.shape[:2]) / 1100)))
    shift = 4  # cv2 draws at 1/16 px
    for line in polylines:
        # a point the sheet map cannot take back into the image (beyond a warped page's edge) is NaN: the line
        # breaks there instead of running to a garbage point
        finite = np.isfinite(line).all(axis=1)
        for piece in np.split(line, np.flatnonzero(~finite)):
            piece = piece[np.isfinite(piece).all(axis=1)]
            if len(piece) < 2:
                continue
            pts = np.round((piece + 0.5) * scale * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
            cv2.polylines(picture, [pts.reshape(-1, 1, 2)], False, (20, 60, 220), thickness, cv2.LINE_AA, shift)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the overlay picture")
    return encoded.tobytes()


def leads_png(result: Digitized) -> bytes:
    """The leads in the layout they were printed in, on ECG paper: 25 mm/s, 10 mm/mV (PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    layout = result.layout
    row_mv = 3.0  # mV between row baselines
    width_s = max(layout.row_duration_s(r) for r in range(layout.n_rows))
    top, bottom = 1.5, -(layout.n_rows - 1) * row_mv - 1.5
    fig = Figure(figsize=(width_s * 1.25, (top - bottom) * 0.5), dpi=100)  # 1 s = 1.25 in, 1 mV = 0.5 in
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    for step, colour, width in ((0.04, "#f6c8c8", 0.4), (0.2, "#e88f8f", 0.8)):  # 1 mm and 5 mm lines
        for x in np.arange(0.0, width_s + 1e-9, step):
            ax.axvline(x, color=colour, lw=width, zorder=0)
        for y in np.arange(np.floor(bottom / (step * 2.5)) * step * 2.5, top + 1e-9, step * 2.5):
            ax.axhline(y, color=colour, lw=width, zorder=0)
    for panel in layout.panels:
        values = np.asarray(result.leads_mv[panel.lead], np.float64)
        start = lead_start_index(layout, panel.lead, result.fs_hz)
        i0, i1 = panel.sample_range(result.fs_hz, start + values.size)
        if i1 - i0 < 2 or i0 < start:
            continue
        mv = values[i0 - start:i1 - start]
        x = panel.x_offset_s + (np.arange(i0, i1) / result.fs_hz - panel.t0_s)
        base = -panel.row * row_mv
        ax.plot(x, base + panel.sign * (mv - np.median(mv)), color="black", lw=0.9, zorder=2)
        ax.text(panel.x_offset_s + 0.05, base + 1.0, ("-" if panel.inverted else "") + panel.lead, fontsize=11,
                zorder=3)
    ax.set_xlim(0.0, width_s)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_outputs(result: Digitized, out_dir: Path, formats: tuple[str, ...], image_rgb: np.ndarray | None = None,
                  polylines: list[np.ndarray] | None = None) -> list[Path]:
    """Write ``formats`` for one page under ``out_dir``, and the pictures where there is something to look at
    (the input image and the signals' polylines: not for a page that failed); the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / result.image_id
    written = []
    if "csv" in formats:
        written.append(_write(Path(f"{stem}.csv"), csv_text(result).encode()))
    if "json" in formats:
        written.append(_write(Path(f"{stem}.json"), json.dumps(result_json(result)).encode()))
    if "wfdb" in formats:
        written += write_wfdb(result, out_dir)
    if image_rgb is not None and polylines:
        written.append(_write(Path(f"{stem}-leads.png"), leads_png(result)))
        written.append(_write(Path(f"{stem}-overlay.png"), overlay_png(image_rgb, polylines)))
    return written


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
