"""A second, independent ECG page renderer: how well does the digitizer do on pages it was not trained on?

    python -m benchmarks.other_renderer --signals ../shared/data/signals --out /tmp/other \
        [--n-records N] [--seed S] [--scan-fraction 0.3]

Then score the digitizer on them: ``python -m pipeline cv --data-dir /tmp/other``.

The pages are the standard printout: rows I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6 with four 2.5 s
panels each (column c shows seconds [2.5c, 2.5c + 2.5) of the record) and a 10 s lead II rhythm strip,
at 25 mm/s and 10 mm/mV on a 1 mm / 5 mm grid. Everything else follows other conventions than our page
factory's, and the code is written here from scratch with OpenCV and numpy (nothing from synth.render,
synth.degrade, synth.labels, synth.factory, common.geometry or common.layouts), so that a digitizer tuned
to the factory's quirks shows it. Per page, from a seeded generator: paper (US Letter or A4, landscape)
and dpi (100-300, so image sizes differ from the factory's 2200x1700), grid palette, line widths and
minor grid (lines, dots or none), whether the grid covers the page or a box, trace colour and width,
margins, row pitch (rows may be close enough for traces to cross), a 1 mV x 200 ms calibration pulse or
none, label font and size, header text, panel separators, and whether each row is one continuous stroke.
A fraction of the pages get mild scan effects (rotation under 1.5 deg, tint, blur, noise, JPEG) but
stay flat and upright.

Output is the competition's train layout, as ``synth.make`` writes it: ``train.csv`` (id, fs, sig_len),
``train/<id>/<id>.csv`` (columns I..V6 in mV, sig_len rows, every lead but II NaN outside its panel),
``train/<id>/<id>-0001.png``; plus ``records.csv`` (the source window of each id) and ``styles.csv`` (how
each page was drawn). "0001" is the competition's type for clean renders; every page uses it so that
``pipeline cv`` reads them, although these are another renderer's pages and some carry scan effects.
The records are stage 1's validation windows (``stage1_segment.data.split_records``), never trained on.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from stage1_segment.data import split_records
from synth.signals import Record, resample

MM_PER_S = 25.0  # paper speed
MM_PER_MV = 10.0  # gain
RECORD_S = 10.0
PANEL_S = 2.5
PULSE_MV = 1.0
PULSE_S = 0.2
MAJOR_EVERY = 5  # minor (1 mm) cells per major cell
IMAGE_TYPE = "0001"
FIRST_ID = 50_000  # apart from synth.make's 10000+ ids, so the two kinds of set are not confused

OUTPUT_FS_HZ = (100, 125, 250, 256, 500, 512, 1000, 1025)
DPIS = (100, 150, 200, 250, 300)
PAPERS_MM = {"letter": (279.4, 215.9), "a4": (297.0, 210.0)}  # landscape (width, height)
# The competition's CSV column order, which is also the row order of synth.signals.Record.leads_mv.
CSV_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
PANEL_ROWS = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"

# (minor, major) RGB. Every major colour has a mean channel >= 135, lighter than the core pixel of any
# trace (<= ~110 at the thinnest stroke), so the trace stays the darkest ink on the page as on real prints.
GRID_PALETTES = {
    "pink": ((252, 205, 210), (240, 120, 130)),
    "red": ((248, 175, 175), (235, 80, 90)),
    "orange": ((255, 215, 175), (245, 150, 70)),
    "green": ((190, 235, 195), (100, 185, 120)),
    "blue": ((190, 210, 245), (90, 140, 215)),
    "grey": ((215, 215, 215), (150, 150, 150)),
    "light black": ((200, 200, 200), (135, 135, 135)),
}
TRACE_COLOURS = {"black": (10, 10, 10), "dark blue": (25, 35, 120), "dark grey": (60, 60, 60)}
FONTS = {
    "simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "plain": cv2.FONT_HERSHEY_PLAIN,
    "duplex": cv2.FONT_HERSHEY_DUPLEX,
    "complex": cv2.FONT_HERSHEY_COMPLEX,
    "triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "complex small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
}
# A rasteriser never draws a stroke thinner than about a pixel and a half without it fading to grey; below
# that a 0.2 mm trace at 100 dpi (0.8 px) would be lighter than the grid.
MIN_TRACE_PX = 1.5
MIN_GRID_PX = 0.5  # likewise a grid line keeps at least half a pixel of ink, or 0.05 mm lines vanish at 100 dpi
SHIFT_BITS = 4  # fixed-point fraction bits for cv2 drawing at sub-pixel positions

_SURNAMES = ("MILLER", "GARCIA", "NGUYEN", "SCHMIDT", "ROSSI", "TANAKA", "OKAFOR", "LINDQVIST", "DUBOIS")
_GIVEN = ("ANNA", "JAMES", "LI", "MARIA", "TOM", "FATIMA", "PETER", "SOFIA", "KWAME")
_DEVICES = ("Cardiograph CX-12 v2.3", "ECG-1200 rev B", "HeartScribe 7", "PolyTrace 12L", "CardioLine S")


@dataclass(frozen=True)
class ScanEffects:
    rotation_deg: float  # about the page centre, counter-clockwise
    tint_rgb: tuple[float, float, float]  # per-channel factor on the whole page (aged / yellowish paper)
    blur_sigma_px: float
    noise_sd: float  # grey levels
    noise_seed: int
    jpeg_quality: int


@dataclass(frozen=True)
class PageStyle:
    """Everything that decides how one page looks. Lengths in mm from the page's top-left corner."""

    paper: str
    dpi: int
    paper_rgb: tuple[int, int, int]
    grid: str
    minor_rgb: tuple[float, float, float]
    major_rgb: tuple[float, float, float]
    minor_kind: str  # "lines", "dots" or "none"
    minor_width_mm: float  # line width, or dot diameter for dots
    major_width_mm: float
    grid_covers_page: bool  # else only the grid box [grid_left, grid_right] x [grid_top, grid_bottom]
    grid_left_mm: float
    grid_top_mm: float
    grid_right_mm: float
    grid_bottom_mm: float
    trace: str
    trace_rgb: tuple[int, int, int]
    trace_width_mm: float
    first_baseline_mm: float
    row_pitch_mm: float
    signal_start_mm: float  # t = 0 of every row, from the grid's left edge
    pulse_rise_mm: float | None  # where the calibration pulse rises, from the grid's left edge; None: no pulse
    join_panels: bool  # a row's four panels as one stroke (jumps at the lead changes) rather than four
    separators: str  # at panel boundaries: "none", "ticks" or "lines"
    separator_mm: float  # tick half-length
    font: str
    label_height_mm: float
    label_stroke_mm: float
    label_dx_mm: float  # label's left edge from the panel's first sample
    label_dy_mm: float  # label's text baseline above the row's baseline
    header_lines: tuple[str, ...]
    header_x_mm: float
    text_rgb: tuple[int, int, int]
    scan: ScanEffects | None

    @property
    def px_per_mm(self) -> float:
        return self.dpi / 25.4

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the image."""
        w_mm, h_mm = PAPERS_MM[self.paper]
        return int(round(w_mm * self.px_per_mm)), int(round(h_mm * self.px_per_mm))

    @property
    def x0_mm(self) -> float:
        """Page x of t = 0 in every row."""
        return self.grid_left_mm + self.signal_start_mm

    @property
    def baselines_mm(self) -> tuple[float, ...]:
        """Page y of 0 mV in the four rows (three panel rows, then the rhythm strip)."""
        return tuple(self.first_baseline_mm + k * self.row_pitch_mm for k in range(len(PANEL_ROWS) + 1))

    def to_px(self, mm):
        """Page mm -> pixel-centre coordinates (pixel i covers [i - 0.5, i + 0.5])."""
        return np.asarray(mm, dtype=np.float64) * self.px_per_mm - 0.5

    def summary(self) -> str:
        w, h = self.size_px
        scan = "no" if self.scan is None else (f"rot {self.scan.rotation_deg:+.2f} deg, blur "
                                               f"{self.scan.blur_sigma_px:.1f} px, jpeg {self.scan.jpeg_quality}")
        return (f"{self.paper} {self.dpi} dpi {w}x{h}, grid {self.grid}/{self.minor_kind}"
                f"{' page' if self.grid_covers_page else ' box'}, trace {self.trace} {self.trace_width_mm:.2f} mm, "
                f"pitch {self.row_pitch_mm:.1f} mm, pulse {'yes' if self.pulse_rise_mm is not None else 'no'}, "
                f"{'joined' if self.join_panels else 'split'} panels, separators {self.separators}, "
                f"font {self.font}, scan {scan}")


def _tone(rng: np.random.Generator, colour, paper_rgb, strength_range) -> tuple[float, float, float]:
    """``colour`` blended towards the paper: strength 1 keeps it, 0 gives the paper (grid contrast)."""
    s = float(rng.uniform(*strength_range))
    return tuple(float(p + s * (c - p)) for c, p in zip(colour, paper_rgb, strict=True))


def _header_lines(rng: np.random.Generator) -> list[str]:
    hr = int(rng.integers(48, 125))
    qt = int(rng.integers(340, 460))
    speed = str(rng.choice(["25 mm/s   10 mm/mV   0.05-150 Hz", "Speed: 25mm/s  Limb: 10mm/mV  Chest: 10mm/mV",
                            "25mm/s 10mm/mV 0.5-40Hz ~50Hz", "Gain 10 mm/mV  Paper 25 mm/s  F 0.05-100 Hz"]))
    lines = [
        f"{rng.choice(_SURNAMES)}, {rng.choice(_GIVEN)}   ID {int(rng.integers(10**6, 10**7))}   "
        f"{int(rng.integers(18, 95))} yrs  {rng.choice(['M', 'F'])}",
        f"{int(rng.integers(1998, 2025))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d} "
        f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}   {rng.choice(_DEVICES)}",
        f"Vent. rate {hr} BPM   PR {int(rng.integers(120, 220))} ms   QRS {int(rng.integers(70, 130))} ms   "
        f"QT/QTc {qt}/{int(qt / math.sqrt(60.0 / hr))} ms",
        speed,
    ]
    order = rng.permutation(len(lines))
    return [lines[i] for i in order]


def sample_style(rng: np.random.Generator, scan_fraction: float = 0.3, dpis: Sequence[int] = DPIS) -> PageStyle:
    """A random page style; every choice comes from ``rng``."""
    paper = str(rng.choice(list(PAPERS_MM)))
    paper_w, paper_h = PAPERS_MM[paper]
    dpi = int(rng.choice(dpis))
    paper_rgb = (255, 255, 255) if rng.random() < 0.6 else tuple(int(v) for v in rng.integers([246, 242, 232], 256))

    grid = str(rng.choice(list(GRID_PALETTES)))
    minor, major = GRID_PALETTES[grid]
    minor_kind = str(rng.choice(["lines", "dots", "none"], p=[0.65, 0.15, 0.2]))
    minor_width = float(rng.uniform(0.2, 0.35) if minor_kind == "dots" else rng.uniform(0.05, 0.15))

    # Horizontal: optional pulse (or a bare lead-in), then 10 s = 250 mm of signal; the grid box is whole
    # 5 mm blocks wide and sits between a 5-25 mm left margin and at least 3 mm on the right.
    if rng.random() < 0.6:
        pulse_rise = float(rng.uniform(1.0, 3.0))
        signal_start = pulse_rise + PULSE_S * MM_PER_S + float(rng.uniform(0.5, 3.0))
    else:
        pulse_rise = None
        signal_start = float(rng.uniform(0.0, 6.0))
    block = MAJOR_EVERY * 1.0
    grid_w = block * math.ceil((signal_start + RECORD_S * MM_PER_S + 1.0) / block)
    left = float(rng.uniform(5.0, min(25.0, paper_w - 3.0 - grid_w)))
    # Vertical: 10-40 mm of header above the grid, 5-15 mm below; four rows evenly spread at a random pitch
    # with the spare height shared above and below them.
    top = float(rng.uniform(10.0, 40.0))
    grid_h = block * math.floor((paper_h - top - float(rng.uniform(5.0, 15.0))) / block)
    pitch = float(rng.uniform(24.0, grid_h / 4.2))
    first_baseline = top + float(rng.uniform(0.4, 0.6)) * (grid_h - len(PANEL_ROWS) * pitch)

    trace = str(rng.choice(list(TRACE_COLOURS)))
    scan = None
    if rng.random() < scan_fraction:
        scan = ScanEffects(
            rotation_deg=float(rng.uniform(-1.4, 1.4)),
            tint_rgb=(1.0, float(rng.uniform(0.96, 1.0)), float(rng.uniform(0.9, 0.98))),
            blur_sigma_px=float(rng.uniform(0.3, 0.9)),
            noise_sd=float(rng.uniform(1.0, 4.0)),
            noise_seed=int(rng.integers(2**31)),
            jpeg_quality=int(rng.integers(70, 96)),
        )
    return PageStyle(
        paper=paper, dpi=dpi, paper_rgb=paper_rgb, grid=grid,
        minor_rgb=_tone(rng, minor, paper_rgb, (0.5, 1.0)), major_rgb=_tone(rng, major, paper_rgb, (0.8, 1.0)),
        minor_kind=minor_kind, minor_width_mm=minor_width, major_width_mm=float(rng.uniform(0.15, 0.4)),
        grid_covers_page=bool(rng.random() < 0.35),
        grid_left_mm=left, grid_top_mm=top, grid_right_mm=left + grid_w, grid_bottom_mm=top + grid_h,
        trace=trace, trace_rgb=TRACE_COLOURS[trace], trace_width_mm=float(rng.uniform(0.2, 0.6)),
        first_baseline_mm=first_baseline, row_pitch_mm=pitch, signal_start_mm=signal_start, pulse_rise_mm=pulse_rise,
        join_panels=bool(rng.random() < 0.3),
        separators=str(rng.choice(["none", "ticks", "lines"], p=[0.4, 0.4, 0.2])),
        separator_mm=float(rng.uniform(2.0, 5.0)),
        font=str(rng.choice(list(FONTS))), label_height_mm=float(rng.uniform(2.0, 4.5)),
        label_stroke_mm=float(rng.uniform(0.15, 0.35)), label_dx_mm=float(rng.uniform(0.5, 3.0)),
        label_dy_mm=float(rng.uniform(6.0, 12.0)),
        header_lines=tuple(_header_lines(rng)), header_x_mm=left + float(rng.uniform(0.0, 20.0)),
        text_rgb=(0, 0, 0) if rng.random() < 0.5 else (40, 40, 50),
        scan=scan,
    )


def panel_range(column: int, fs_hz: float, n_samples: int) -> tuple[int, int]:
    """Half-open sample range of the record printed in panel ``column`` (the competition's rounding)."""
    return int(round(column * PANEL_S * fs_hz)), min(int(round((column + 1) * PANEL_S * fs_hz)), n_samples)


def printed_signals(leads_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """(n, 12) table in :data:`CSV_LEADS` order: the printed samples, NaN where a lead is not printed."""
    n = leads_mv.shape[1]
    table = np.full((n, len(CSV_LEADS)), np.nan)
    for row in PANEL_ROWS:
        for column, lead in enumerate(row):
            i0, i1 = panel_range(column, fs_hz, n)
            table[i0:i1, CSV_LEADS.index(lead)] = leads_mv[CSV_LEADS.index(lead), i0:i1]
    table[:, CSV_LEADS.index(RHYTHM_LEAD)] = leads_mv[CSV_LEADS.index(RHYTHM_LEAD)]
    return table


def _line_profile(n_px: int, centres_px: np.ndarray, width_px: float) -> np.ndarray:
    """Coverage in [0, 1] of pixels 0..n_px-1 by lines ``width_px`` wide centred at ``centres_px`` (pixel-centre
    coordinates): the exact area of each pixel under the lines, i.e. box-filter anti-aliasing."""
    edges = np.arange(n_px + 1, dtype=np.float64) - 0.5
    lo = np.asarray(centres_px, dtype=np.float64)[:, None] - width_px / 2
    inked_left_of = np.clip(edges[None, :] - lo, 0.0, width_px).sum(axis=0)
    return np.clip(np.diff(inked_left_of), 0.0, 1.0).astype(np.float32)


def _grid_positions_mm(origin_mm: float, lo_mm: float, hi_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(minor, major) line positions every 1 mm from ``origin_mm`` within [lo_mm, hi_mm]."""
    k = np.arange(math.ceil(lo_mm - origin_mm - 1e-9), math.floor(hi_mm - origin_mm + 1e-9) + 1)
    major = k % MAJOR_EVERY == 0
    return origin_mm + k[~major], origin_mm + k[major]


def _grid_coverage(style: PageStyle) -> tuple[np.ndarray, np.ndarray]:
    """(minor, major) ink coverage maps (H, W) in [0, 1]."""
    w, h = style.size_px
    ppmm = style.px_per_mm
    paper_w, paper_h = PAPERS_MM[style.paper]
    if style.grid_covers_page:
        x_lo, x_hi, y_lo, y_hi = 0.0, paper_w, 0.0, paper_h
        inside_x, inside_y = np.ones(w, np.float32), np.ones(h, np.float32)
    else:
        x_lo, x_hi, y_lo, y_hi = style.grid_left_mm, style.grid_right_mm, style.grid_top_mm, style.grid_bottom_mm
        inside_x = _line_profile(w, style.to_px([(x_lo + x_hi) / 2]), (x_hi - x_lo) * ppmm)
        inside_y = _line_profile(h, style.to_px([(y_lo + y_hi) / 2]), (y_hi - y_lo) * ppmm)
    minor_x, major_x = _grid_positions_mm(style.grid_left_mm, x_lo, x_hi)
    minor_y, major_y = _grid_positions_mm(style.grid_top_mm, y_lo, y_hi)

    def lines(xs_mm, ys_mm, width_px):
        # A vertical line inks its column only inside the grid's y extent, and likewise for horizontal ones.
        vertical = _line_profile(w, style.to_px(xs_mm), width_px)[None, :] * inside_y[:, None]
        horizontal = _line_profile(h, style.to_px(ys_mm), width_px)[:, None] * inside_x[None, :]
        return 1.0 - (1.0 - vertical) * (1.0 - horizontal)

    major = lines(major_x, major_y, max(style.major_width_mm * ppmm, MIN_GRID_PX))
    minor_px = max(style.minor_width_mm * ppmm, MIN_GRID_PX)
    if style.minor_kind == "lines":
        minor = lines(minor_x, minor_y, minor_px)
    elif style.minor_kind == "dots":
        # A dot at every 1 mm crossing (also on major lines, where they vanish under the major ink).
        xs = np.concatenate([minor_x, major_x])
        ys = np.concatenate([minor_y, major_y])
        minor = _line_profile(h, style.to_px(ys), minor_px)[:, None] * _line_profile(w, style.to_px(xs), minor_px)
    else:
        minor = np.zeros((h, w), np.float32)
    return minor.astype(np.float32), major.astype(np.float32)


def _supersampling(dpi: int) -> int:
    """Trace canvas scale: finer at low dpi where anti-aliasing matters most; ~2x at 300 dpi keeps it < 40 MB."""
    return max(2, math.ceil(400 / dpi))


def _strokes(leads_mv: np.ndarray, fs_hz: float, style: PageStyle) -> list[tuple[np.ndarray, float]]:
    """Polylines in page mm, each (points (N, 2), stroke width mm): traces, calibration pulses, separators."""
    n = leads_mv.shape[1]
    t_mm = np.arange(n) / fs_hz * MM_PER_S
    x0 = style.x0_mm
    width = style.trace_width_mm
    strokes = []

    def trace(lead: str, i0: int, i1: int, baseline: float) -> np.ndarray:
        v = leads_mv[CSV_LEADS.index(lead), i0:i1].astype(np.float64)
        return np.stack([x0 + t_mm[i0:i1], baseline - v * MM_PER_MV], axis=1)

    baselines = style.baselines_mm
    for r, row in enumerate(PANEL_ROWS):
        panels = [trace(lead, *panel_range(c, fs_hz, n), baselines[r]) for c, lead in enumerate(row)]
        strokes += [(np.concatenate(panels), width)] if style.join_panels else [(p, width) for p in panels]
    strokes.append((trace(RHYTHM_LEAD, 0, n, baselines[-1]), width))

    if style.pulse_rise_mm is not None:
        rise = style.grid_left_mm + style.pulse_rise_mm
        fall = rise + PULSE_S * MM_PER_S
        for b in baselines:
            top = b - PULSE_MV * MM_PER_MV
            # Standard square pulse: a short stub of baseline, up 1 mV, 200 ms flat, down, baseline to t = 0.
            stub = rise - min(1.0, style.pulse_rise_mm)
            points = [(stub, b), (rise, b), (rise, top), (fall, top), (fall, b), (x0, b)]
            strokes.append((np.asarray(points), width))

    if style.separators != "none":
        half = style.separator_mm if style.separators == "ticks" else 0.4 * style.row_pitch_mm
        for b in baselines[: len(PANEL_ROWS)]:
            for c in range(1, len(PANEL_ROWS[0])):
                x = x0 + c * PANEL_S * MM_PER_S
                strokes.append((np.asarray([(x, b - half), (x, b + half)]), min(width, 0.2)))
    return strokes


def _trace_coverage(strokes: list[tuple[np.ndarray, float]], style: PageStyle) -> np.ndarray:
    """(H, W) ink coverage of the strokes, drawn anti-aliased on a supersampled canvas and area-averaged."""
    w, h = style.size_px
    s = _supersampling(style.dpi)
    canvas = np.zeros((h * s, w * s), np.uint8)
    for points_mm, width_mm in strokes:
        # Pixel-centre coordinates on the fine canvas: fine pixel centres sit at (i + 0.5) / s - 0.5 coarse px.
        fine = (style.to_px(points_mm) + 0.5) * s - 0.5
        fixed = np.round(fine * (1 << SHIFT_BITS)).astype(np.int32).reshape(-1, 1, 2)
        thickness = max(1, int(round(max(width_mm * style.px_per_mm, MIN_TRACE_PX) * s)))
        cv2.polylines(canvas, [fixed], False, 255, thickness=thickness, lineType=cv2.LINE_AA, shift=SHIFT_BITS)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _put_text(image: np.ndarray, text: str, left_mm: float, baseline_mm: float, height_mm: float,
              stroke_mm: float, font: str, colour, style: PageStyle) -> None:
    """Text whose capital height is ``height_mm``, its left end and baseline at the given page position."""
    thickness = max(1, int(round(stroke_mm * style.px_per_mm)))
    (_, cap_px), _ = cv2.getTextSize("H", FONTS[font], 1.0, thickness)
    scale = height_mm * style.px_per_mm / max(cap_px, 1)
    origin = (int(round(float(style.to_px(left_mm)))), int(round(float(style.to_px(baseline_mm)))))
    cv2.putText(image, text, origin, FONTS[font], scale, tuple(int(c) for c in colour), thickness, cv2.LINE_AA)


def _draw_text(image: np.ndarray, style: PageStyle) -> None:
    x0 = style.x0_mm
    baselines = style.baselines_mm
    labels = [(lead, x0 + c * PANEL_S * MM_PER_S, baselines[r])
              for r, row in enumerate(PANEL_ROWS) for c, lead in enumerate(row)]
    labels.append((RHYTHM_LEAD, x0, baselines[-1]))
    for lead, x, b in labels:
        _put_text(image, lead, x + style.label_dx_mm, b - style.label_dy_mm, style.label_height_mm,
                  style.label_stroke_mm, style.font, style.text_rgb, style)
    # Header in the top margin: as many lines as fit above the grid, 1.7 line heights apart.
    height = 2.6
    line_pitch = 1.7 * height
    for k, line in enumerate(style.header_lines):
        baseline = 4.0 + height + k * line_pitch
        if baseline > style.grid_top_mm - 1.5:
            break
        _put_text(image, line, style.header_x_mm, baseline, height, 0.2, style.font, style.text_rgb, style)


def _scan(image: np.ndarray, scan: ScanEffects) -> np.ndarray:
    """Mild flatbed-scan look: tinted, slightly rotated (scanner lid shows at the corners), blurred, noisy, JPEG."""
    h, w = image.shape[:2]
    tinted = image.astype(np.float32) * np.asarray(scan.tint_rgb, np.float32)
    rotation = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), scan.rotation_deg, 1.0)
    lid = tuple(float(v) for v in 245.0 * np.asarray(scan.tint_rgb))
    rotated = cv2.warpAffine(tinted, rotation, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=lid)
    blurred = cv2.GaussianBlur(rotated, (0, 0), scan.blur_sigma_px)
    noisy = blurred + np.random.default_rng(scan.noise_seed).normal(0.0, scan.noise_sd, blurred.shape)
    bgr = cv2.cvtColor(np.clip(np.round(noisy), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, scan.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def render_page(leads_mv: np.ndarray, fs_hz: float, style: PageStyle) -> np.ndarray:
    """The page image (H, W, 3) uint8 RGB of 10 s of 12 leads (rows in :data:`CSV_LEADS` order, mV, at fs_hz)."""
    w, h = style.size_px
    image = np.empty((h, w, 3), np.float32)
    image[:] = np.asarray(style.paper_rgb, np.float32)
    minor, major = _grid_coverage(style)
    ink = _trace_coverage(_strokes(leads_mv, fs_hz, style), style)
    for coverage, colour in ((minor, style.minor_rgb), (major, style.major_rgb), (ink, style.trace_rgb)):
        image += coverage[..., None] * (np.asarray(colour, np.float32) - image)
    page = np.clip(np.round(image), 0, 255).astype(np.uint8)
    _draw_text(page, style)
    return page if style.scan is None else _scan(page, style.scan)


def at_rate(record: Record, fs_hz: int) -> np.ndarray:
    """The record's 12 leads (mV) resampled to ``fs_hz``: exactly 10 s of samples."""
    n = int(round(RECORD_S * fs_hz))
    leads = resample(record.leads_mv, record.fs_hz, fs_hz)
    if leads.shape[1] != n:
        raise ValueError(f"record {record.record_id} is {record.duration_s:.3f} s long, not a {RECORD_S:g} s window")
    return leads


@dataclass(frozen=True)
class PageInfo:
    record_id: str
    fs_hz: int
    style: PageStyle
    image_path: Path


def write_dataset(out: Path, records: Sequence[Record], seed: int = 7, scan_fraction: float = 0.3,
                  dpis: Sequence[int] = DPIS, verbose: bool = True) -> list[PageInfo]:
    """Render one page per record into ``out`` in the train layout (see the module doc). Page k's fs and style
    come from ``np.random.default_rng([seed, k])``, so a page does not depend on the others."""
    out = Path(out)
    pages = []
    for index, record in enumerate(records):
        rng = np.random.default_rng([seed, index])
        fs_hz = int(rng.choice(OUTPUT_FS_HZ))
        style = sample_style(rng, scan_fraction, dpis)
        leads = at_rate(record, fs_hz)
        record_id = str(FIRST_ID + index)
        folder = out / "train" / record_id
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(printed_signals(leads, fs_hz), columns=list(CSV_LEADS)).to_csv(
            folder / f"{record_id}.csv", index=False, float_format="%.6f")
        image_path = folder / f"{record_id}-{IMAGE_TYPE}.png"
        if not cv2.imwrite(str(image_path), cv2.cvtColor(render_page(leads, fs_hz, style), cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {image_path}")
        pages.append(PageInfo(record_id, fs_hz, style, image_path))
        if verbose:
            print(f"{record_id} fs {fs_hz} Hz: {style.summary()}", flush=True)

    ids = [p.record_id for p in pages]
    pd.DataFrame({"id": ids, "fs": [p.fs_hz for p in pages],
                  "sig_len": [int(round(RECORD_S * p.fs_hz)) for p in pages]}).to_csv(out / "train.csv", index=False)
    pd.DataFrame({"id": ids, "source": [r.source for r in records],
                  "source_record": [r.record_id for r in records]}).to_csv(out / "records.csv", index=False)
    styles = []
    for p in pages:
        row = {k: v for k, v in asdict(p.style).items() if k not in ("header_lines", "scan")}
        row.update({"id": p.record_id, "fs": p.fs_hz, "scan": p.style.scan is not None,
                    **({f"scan_{k}": v for k, v in asdict(p.style.scan).items()} if p.style.scan else {})})
        styles.append(row)
    pd.DataFrame(styles).to_csv(out / "styles.csv", index=False)
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.other_renderer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=Path, required=True, help="the shared signal folders (split_records)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-records", type=int, default=None, help="default: every validation window")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scan-fraction", type=float, default=0.3, help="share of pages with mild scan effects")
    args = parser.parse_args(argv)
    if not args.signals.is_dir():
        parser.error(f"--signals {args.signals} is not a folder")
    if args.n_records is not None and args.n_records < 1:
        parser.error("--n-records must be at least 1")
    if not 0.0 <= args.scan_fraction <= 1.0:
        parser.error("--scan-fraction must be in [0, 1]")
    _, val, _ = split_records(args.signals)
    records = val[: args.n_records] if args.n_records else val
    write_dataset(args.out, records, args.seed, args.scan_fraction)
    print(f"wrote {len(records)} pages of another renderer to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
