"""A second, independent ECG page renderer: how well does the digitizer do on pages it was not trained on?

    python -m benchmarks.other_renderer --signals ../shared/data/signals --out /tmp/other \
        [--n-records N] [--seed S] [--scan-fraction 0.3] [--arrangement standard|3x4|3x4+3|6x2|12x1|mixed] \
        [--extras 0.5 | --extras gap=0.5,pulse=0.5,marks=0.5,paper=0.5,place=0.5,gain=0.5]

Then score the digitizer on them: ``python -m pipeline cv --data-dir /tmp/other``.

By default the pages are the standard printout: rows I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6 with four
2.5 s panels each (column c shows seconds [2.5c, 2.5c + 2.5) of the record) and a 10 s lead II rhythm strip,
at 25 mm/s and 10 mm/mV on a 1 mm / 5 mm grid. ``--arrangement`` prints another one on every page (or, with
"mixed", one drawn per page): "3x4" (no rhythm strip), "3x4+3" (three 10 s rhythm strips V1, II, V5 in that
order, as many printers do), "6x2" (I..aVF over 0-5 s on the left, V1..V6 over 5-10 s on the right) or "12x1"
(twelve 10 s rows, 13-16 mm apart). ``--extras P`` turns on, each with probability P per page (or each its
own: ``NAME=P,...``): "gap", blank paper of 2-8 mm between the panels of a row (each panel's trace starts after
it, its time still its own); "pulse", the calibration pulse standing alone with 3-8 mm of blank paper before
the trace; "marks", per-panel time marks (ticks every second of the panel, or an axis line with them); "paper",
a wider paper (288 x 200 or 330 x 215 mm); "place", the chart centred or to the right of the page; "gain", the
chart and its pulses at 5 mm/mV (the header says so). Rows made
too long by gaps go onto the widest paper. The arrangement and
extras come from their own generator, so the standard plain page of a seed is byte for byte what it was before
they existed.

Everything else follows other conventions than our page factory's, and the code is written here from scratch
with OpenCV and numpy (nothing from synth.render, synth.degrade, synth.labels, synth.factory, common.geometry
or common.layouts: the arrangements are :data:`ARRANGEMENTS` here), so that a digitizer tuned to the factory's
quirks shows it. Per page, from a seeded generator: paper (US Letter or A4, landscape) and dpi (100-300, so
image sizes differ from the factory's 2200x1700), grid palette, line widths and minor grid (lines, dots or
none), whether the grid covers the page or a box, trace colour and width, margins, row pitch (rows may be close
enough for traces to cross), a 1 mV x 200 ms calibration pulse or none, label font and size, header text, panel
separators, and whether each row is one continuous stroke. A fraction of the pages get mild scan effects
(rotation under 1.5 deg, tint, blur, noise, JPEG) but stay flat and upright.

Output is the competition's train layout, as ``synth.make`` writes it: ``train.csv`` (id, fs, sig_len),
``train/<id>/<id>.csv`` (columns I..V6 in mV, sig_len rows, each lead NaN outside the spans the page prints,
so that ``pipeline cv`` asks each lead for as many samples as the page prints: e.g. on 6x2 pages 5 s of each),
``train/<id>/<id>-0001.png``; plus ``records.csv`` (the source window of each id), ``styles.csv`` (how each
page was drawn) and ``variants.csv`` (image_id, the digitizer's name for the nearest layout it knows, the
extras: ``pipeline cv`` scores per variant). "0001" is the competition's type for clean renders; every page uses
it so that ``pipeline cv`` reads them, although these are another renderer's pages and some carry scan effects.
The records are stage 1's validation windows (``stage1_segment.data.split_records``), never trained on."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
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
# Wider papers (chart recorders' and roll papers), only with --extras: the page is whatever the printer feeds.
WIDE_PAPERS_MM = {"288x200": (288.0, 200.0), "330x215": (330.0, 215.0)}
ALL_PAPERS_MM = {**PAPERS_MM, **WIDE_PAPERS_MM}
# The competition's CSV column order, which is also the row order of synth.signals.Record.leads_mv.
CSV_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
PANEL_ROWS = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"


@dataclass(frozen=True)
class PrintedPanel:
    """One lead printed over record time [t0_s, t1_s) in ``row``, the ``col``-th panel of its row; on paper it
    starts ``t0_s`` of chart time after the row's origin, plus ``col`` gaps where the page leaves them."""

    lead: str
    row: int
    col: int
    t0_s: float
    t1_s: float


def _columns_then_rhythm(columns: Sequence[Sequence[str]], rhythm: Sequence[str]) -> tuple[PrintedPanel, ...]:
    """Each column a list of leads top to bottom, the columns sharing the 10 s in order; then one 10 s row per
    rhythm lead."""
    span = RECORD_S / len(columns)
    panels = [PrintedPanel(lead, row, col, col * span, (col + 1) * span)
              for col, leads in enumerate(columns) for row, lead in enumerate(leads)]
    first = max(len(c) for c in columns)
    panels += [PrintedPanel(lead, first + k, 0, 0.0, RECORD_S) for k, lead in enumerate(rhythm)]
    return tuple(sorted(panels, key=lambda p: (p.row, p.col)))


_3X4_COLUMNS = tuple(zip(*PANEL_ROWS, strict=True))  # (I, II, III), (aVR, aVL, aVF), ...
# What a page prints where: the standard printout (the competition's), without its rhythm strip, with three
# rhythm strips in the order many printers use (V1, II, V5), two columns of six, one column of twelve.
ARRANGEMENTS: dict[str, tuple[PrintedPanel, ...]] = {
    "standard": _columns_then_rhythm(_3X4_COLUMNS, (RHYTHM_LEAD,)),
    "3x4": _columns_then_rhythm(_3X4_COLUMNS, ()),
    "3x4+3": _columns_then_rhythm(_3X4_COLUMNS, ("V1", "II", "V5")),
    "6x2": _columns_then_rhythm((CSV_LEADS[:6], CSV_LEADS[6:]), ()),
    "12x1": _columns_then_rhythm((CSV_LEADS,), ()),
}
# The name the digitizer gives the nearest layout it knows (for reports only; 3x4+3's strips are in another order).
DIGITIZER_NAMES = {"standard": "3x4+II", "3x4": "3x4", "3x4+3": "3x4+II,V1,V5", "6x2": "6x2", "12x1": "12x1"}


def n_rows_of(arrangement: str) -> int:
    return 1 + max(p.row for p in ARRANGEMENTS[arrangement])


@dataclass(frozen=True)
class PageExtras:
    """How a page departs from the plain printout besides its arrangement (all off: the plain page)."""

    gap_mm: float = 0.0  # blank paper between the panels of a row (each panel's trace starts after it)
    pulse_outside_mm: float | None = None  # the pulse stands alone, this much blank paper before the trace
    time_marks: str = "none"  # per panel: "none", "ticks" (every 1 s of the panel) or "axis" (a line + ticks)
    paper: str | None = None  # a wide paper of WIDE_PAPERS_MM (None: Letter or A4 as drawn)
    placement: str = "left"  # chart on the page: "left" (5-25 mm margin), "centre" or "right"
    mm_per_mv: float = MM_PER_MV  # the chart's gain (5: half gain, as printers do for tall signals)

    def summary(self) -> str:
        parts = [f"gap {self.gap_mm:.1f} mm" if self.gap_mm else "",
                 "pulse outside" if self.pulse_outside_mm is not None else "",
                 f"time {self.time_marks}" if self.time_marks != "none" else "",
                 f"paper {self.paper}" if self.paper else "", f"chart {self.placement}" if self.placement != "left"
                 else "", f"{self.mm_per_mv:g} mm/mV" if self.mm_per_mv != MM_PER_MV else ""]
        return "+".join(p for p in parts if p) or "plain"


EXTRAS = ("gap", "pulse", "marks", "paper", "place", "gain")  # the departures --extras can ask for, by name


def sample_extras(rng: np.random.Generator, shares: Mapping[str, float] | float) -> PageExtras:
    """Each departure of :data:`EXTRAS` on with its probability in ``shares`` (one number: the same for all;
    absent: 0). Every value is drawn whatever the shares, so a page's gap, say, is the same with or without
    the other departures."""
    if not isinstance(shares, Mapping):
        shares = dict.fromkeys(EXTRAS, float(shares))
    unknown = set(shares) - set(EXTRAS)
    if unknown:
        raise ValueError(f"unknown extras {sorted(unknown)}; choose from {', '.join(EXTRAS)}")
    draws = {
        "gap": (rng.random(), float(np.round(rng.uniform(2.0, 8.0), 1))),
        "pulse": (rng.random(), float(rng.uniform(3.0, 8.0))),
        "marks": (rng.random(), str(rng.choice(["ticks", "axis"]))),
        "paper": (rng.random(), str(rng.choice(list(WIDE_PAPERS_MM)))),
        "place": (rng.random(), str(rng.choice(["centre", "right"]))),
        "gain": (rng.random(), 5.0),  # drawn last: the other departures keep the values they had before it
    }
    on = {name: u < shares.get(name, 0.0) for name, (u, _) in draws.items()}
    return PageExtras(gap_mm=draws["gap"][1] if on["gap"] else 0.0,
                      pulse_outside_mm=draws["pulse"][1] if on["pulse"] else None,
                      time_marks=draws["marks"][1] if on["marks"] else "none",
                      paper=draws["paper"][1] if on["paper"] else None,
                      placement=draws["place"][1] if on["place"] else "left",
                      mm_per_mv=draws["gain"][1] if on["gain"] else MM_PER_MV)


def parse_extras(text: str) -> dict[str, float]:
    """``--extras``: one probability for every departure ("0.5"), or some of them by name
    ("gap=0.5,paper=1")."""
    text = text.strip()
    try:
        items = {name: float(text) for name in EXTRAS} if "=" not in text else {
            k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--extras {text!r}: a probability, or NAME=P pairs") from None
    unknown = set(items) - set(EXTRAS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown extras {sorted(unknown)}; choose from {', '.join(EXTRAS)}")
    if not all(0.0 <= p <= 1.0 for p in items.values()):
        raise argparse.ArgumentTypeError("--extras probabilities must be in [0, 1]")
    return items


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
    arrangement: str = "standard"  # a key of ARRANGEMENTS
    gap_mm: float = 0.0  # blank paper before every panel but a row's first
    pulse_outside_mm: float | None = None  # the pulse stands alone, this much blank paper before t = 0
    time_marks: str = "none"  # "none", "ticks" or "axis" under each panel
    placement: str = "left"  # where the chart sits across the page: "left", "centre" or "right"
    mm_per_mv: float = MM_PER_MV  # the chart's gain: traces and pulses

    @property
    def px_per_mm(self) -> float:
        return self.dpi / 25.4

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the image."""
        w_mm, h_mm = ALL_PAPERS_MM[self.paper]
        return int(round(w_mm * self.px_per_mm)), int(round(h_mm * self.px_per_mm))

    @property
    def x0_mm(self) -> float:
        """Page x of t = 0 in every row."""
        return self.grid_left_mm + self.signal_start_mm

    @property
    def baselines_mm(self) -> tuple[float, ...]:
        """Page y of 0 mV in the arrangement's rows, top to bottom (standard: three panel rows, then the rhythm
        strip)."""
        return tuple(self.first_baseline_mm + k * self.row_pitch_mm for k in range(n_rows_of(self.arrangement)))

    @property
    def panels(self) -> tuple[PrintedPanel, ...]:
        return ARRANGEMENTS[self.arrangement]

    def panel_offset_mm(self, panel: PrintedPanel) -> float:
        """Paper x of the panel's first instant from the row's t = 0: its chart time plus the gaps before it."""
        return panel.t0_s * MM_PER_S + panel.col * self.gap_mm

    def to_px(self, mm):
        """Page mm -> pixel-centre coordinates (pixel i covers [i - 0.5, i + 0.5])."""
        return np.asarray(mm, dtype=np.float64) * self.px_per_mm - 0.5

    def summary(self) -> str:
        w, h = self.size_px
        scan = "no" if self.scan is None else (f"rot {self.scan.rotation_deg:+.2f} deg, blur "
                                               f"{self.scan.blur_sigma_px:.1f} px, jpeg {self.scan.jpeg_quality}")
        extras = [f"gap {self.gap_mm:.1f} mm" if self.gap_mm else "",
                  "pulse outside" if self.pulse_outside_mm is not None else "",
                  f"time {self.time_marks}" if self.time_marks != "none" else "",
                  f"chart {self.placement}" if self.placement != "left" else "",
                  f"{self.mm_per_mv:g} mm/mV" if self.mm_per_mv != MM_PER_MV else ""]
        extra = "".join(f", {e}" for e in extras if e)
        return (f"{self.arrangement}{extra}, {self.paper} {self.dpi} dpi {w}x{h}, grid {self.grid}/{self.minor_kind}"
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


def sample_style(rng: np.random.Generator, scan_fraction: float = 0.3, dpis: Sequence[int] = DPIS,
                 arrangement: str = "standard", extras: PageExtras | None = None) -> PageStyle:
    """A random page style for ``arrangement`` with ``extras``; every other choice comes from ``rng``, in the
    same order whatever the arrangement (so the standard plain page of a seed never changes)."""
    extras = PageExtras() if extras is None else extras
    paper = str(rng.choice(list(PAPERS_MM)))
    if extras.paper is not None:
        paper = extras.paper
    paper_w, paper_h = ALL_PAPERS_MM[paper]
    n_rows = n_rows_of(arrangement)
    n_cols = max(p.col for p in ARRANGEMENTS[arrangement]) + 1
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
        if extras.pulse_outside_mm is not None:  # the pulse's stroke ends 1 mm after its fall, then blank paper
            signal_start = pulse_rise + PULSE_S * MM_PER_S + 1.0 + extras.pulse_outside_mm
    else:
        pulse_rise = None
        signal_start = float(rng.uniform(0.0, 6.0))
    block = MAJOR_EVERY * 1.0
    row_mm = RECORD_S * MM_PER_S + (n_cols - 1) * extras.gap_mm
    grid_w = block * math.ceil((signal_start + row_mm + 1.0) / block)
    if paper_w - 3.0 - grid_w < 5.0:  # rows made long by gaps: the printer feeds its widest paper
        paper = max(ALL_PAPERS_MM, key=lambda name: ALL_PAPERS_MM[name][0])
        paper_w, paper_h = ALL_PAPERS_MM[paper]
    left = float(rng.uniform(5.0, min(25.0, paper_w - 3.0 - grid_w)))
    spare = paper_w - grid_w  # left + right margins
    if extras.placement == "centre":
        left = spare / 2
    elif extras.placement == "right":  # a right margin like the left one's draw
        left = max(5.0, paper_w - grid_w - min(left, spare - 5.0))
    # Vertical: 10-40 mm of header above the grid (10-20 mm for more than six rows), 5-15 mm below; the rows
    # evenly spread at a random pitch (24 mm or more for up to four rows, as close as they must be for more)
    # with the spare height shared above and below them.
    top = float(rng.uniform(10.0, 40.0))
    if n_rows > 6:
        top = 10.0 + (top - 10.0) / 3.0
    grid_h = block * math.floor((paper_h - top - float(rng.uniform(5.0, 15.0))) / block)
    highest = grid_h / (n_rows + 0.2)
    pitch = float(rng.uniform(min(24.0, highest - 3.0), highest))
    first_baseline = top + float(rng.uniform(0.4, 0.6)) * (grid_h - (n_rows - 1) * pitch)

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
    style = PageStyle(
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
        header_lines=tuple(line.replace("10 mm/mV", f"{extras.mm_per_mv:g} mm/mV").replace(
            "10mm/mV", f"{extras.mm_per_mv:g}mm/mV") for line in _header_lines(rng)),
        header_x_mm=left + float(rng.uniform(0.0, 20.0)),
        text_rgb=(0, 0, 0) if rng.random() < 0.5 else (40, 40, 50),
        scan=scan, arrangement=arrangement, gap_mm=extras.gap_mm if n_cols > 1 else 0.0,
        pulse_outside_mm=extras.pulse_outside_mm if pulse_rise is not None else None,
        time_marks=extras.time_marks, placement=extras.placement, mm_per_mv=extras.mm_per_mv,
    )
    if n_rows > 6:  # rows this close: the labels sit in their own row, not on the one above
        style = replace(style, label_dy_mm=min(style.label_dy_mm, 0.4 * pitch))
    return style


def panel_range(panel: PrintedPanel, fs_hz: float, n_samples: int) -> tuple[int, int]:
    """Half-open sample range of the record printed in ``panel`` (the competition's rounding)."""
    return int(round(panel.t0_s * fs_hz)), min(int(round(panel.t1_s * fs_hz)), n_samples)


def printed_signals(leads_mv: np.ndarray, fs_hz: float, arrangement: str = "standard") -> np.ndarray:
    """(n, 12) table in :data:`CSV_LEADS` order: the samples ``arrangement`` prints, NaN where a lead is not
    printed."""
    n = leads_mv.shape[1]
    table = np.full((n, len(CSV_LEADS)), np.nan)
    for panel in ARRANGEMENTS[arrangement]:
        i0, i1 = panel_range(panel, fs_hz, n)
        k = CSV_LEADS.index(panel.lead)
        table[i0:i1, k] = leads_mv[k, i0:i1]
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
    paper_w, paper_h = ALL_PAPERS_MM[style.paper]
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
        return np.stack([x0 + t_mm[i0:i1], baseline - v * style.mm_per_mv], axis=1)

    baselines = style.baselines_mm
    rows = [[p for p in style.panels if p.row == r] for r in range(len(baselines))]
    for r, row in enumerate(rows):
        panels = []
        for p in row:
            line = trace(p.lead, *panel_range(p, fs_hz, n), baselines[r])
            if p.col and style.gap_mm:  # a panel's trace starts after the gaps before it, its time its own
                line[:, 0] += p.col * style.gap_mm
            panels.append(line)
        # one stroke for a row's panels where nothing separates them on paper
        joined = style.join_panels and len(panels) > 1 and not style.gap_mm
        strokes += [(np.concatenate(panels), width)] if joined else [(p, width) for p in panels]

    if style.pulse_rise_mm is not None:
        rise = style.grid_left_mm + style.pulse_rise_mm
        fall = rise + PULSE_S * MM_PER_S
        end = x0 if style.pulse_outside_mm is None else x0 - style.pulse_outside_mm
        for b in baselines:
            top = b - PULSE_MV * style.mm_per_mv
            # Standard square pulse: a short stub of baseline, up 1 mV, 200 ms flat, down, baseline to t = 0
            # (or, standing alone, to 1 mm after the fall: blank paper then up to the trace).
            stub = rise - min(1.0, style.pulse_rise_mm)
            points = [(stub, b), (rise, b), (rise, top), (fall, top), (fall, b), (end, b)]
            strokes.append((np.asarray(points), width))

    if style.separators != "none":
        half = style.separator_mm if style.separators == "ticks" else 0.4 * style.row_pitch_mm
        for r, row in enumerate(rows):
            for p in row[1:]:  # midway through the gap before the panel (at its start without gaps)
                x = x0 + p.t0_s * MM_PER_S
                if style.gap_mm:
                    x += p.col * style.gap_mm - style.gap_mm / 2
                b = baselines[r]
                strokes.append((np.asarray([(x, b - half), (x, b + half)]), min(width, 0.2)))

    if style.time_marks != "none":
        # Under each panel, 42 % of a pitch below its baseline: a tick every second of the panel's own time
        # (1.5 mm, 2.5 at its start), on a thin axis line across the panel for "axis".
        for r, row in enumerate(rows):
            y = baselines[r] + 0.42 * style.row_pitch_mm
            for p in row:
                start = x0 + style.panel_offset_mm(p)
                end = start + (p.t1_s - p.t0_s) * MM_PER_S
                if style.time_marks == "axis":
                    strokes.append((np.asarray([(start, y), (end, y)]), 0.15))
                for k in range(int(round(p.t1_s - p.t0_s)) + 1):
                    x = min(start + k * MM_PER_S, end)
                    strokes.append((np.asarray([(x, y - (2.5 if k == 0 else 1.5)), (x, y)]), 0.15))
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
    labels = [(p.lead, x0 + p.t0_s * MM_PER_S + (p.col * style.gap_mm if style.gap_mm else 0.0), baselines[p.row])
              for p in style.panels]
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


def page_arrangement(seed: int, index: int, arrangement: str = "standard",
                     extras: Mapping[str, float] | float = 0.0) -> tuple[str, PageExtras]:
    """Page ``index``'s arrangement (``arrangement``, or for "mixed" one of :data:`ARRANGEMENTS` drawn) and
    extras (see :func:`sample_extras`), from their own generator so that the rest of the page's
    style is the same whatever they are."""
    rng = np.random.default_rng([seed, index, 1])
    name = str(rng.choice(list(ARRANGEMENTS))) if arrangement == "mixed" else arrangement
    if name not in ARRANGEMENTS:
        raise ValueError(f"unknown arrangement {arrangement!r}; choose from {', '.join(ARRANGEMENTS)} or mixed")
    return name, sample_extras(rng, extras)


def write_dataset(out: Path, records: Sequence[Record], seed: int = 7, scan_fraction: float = 0.3,
                  dpis: Sequence[int] = DPIS, verbose: bool = True, arrangement: str = "standard",
                  extras: Mapping[str, float] | float = 0.0) -> list[PageInfo]:
    """Render one page per record into ``out`` in the train layout (see the module doc). Page k's fs and style
    come from ``np.random.default_rng([seed, k])``, its arrangement and extras from :func:`page_arrangement`,
    so a page does not depend on the others."""
    out = Path(out)
    pages = []
    for index, record in enumerate(records):
        rng = np.random.default_rng([seed, index])
        fs_hz = int(rng.choice(OUTPUT_FS_HZ))
        name, page_extras = page_arrangement(seed, index, arrangement, extras)
        style = sample_style(rng, scan_fraction, dpis, name, page_extras)
        leads = at_rate(record, fs_hz)
        record_id = str(FIRST_ID + index)
        folder = out / "train" / record_id
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(printed_signals(leads, fs_hz, style.arrangement), columns=list(CSV_LEADS)).to_csv(
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
    # how each page is drawn, for `pipeline cv`'s per-variant scores (the arrangement under the name the
    # digitizer gives its nearest layout; what else departs from the plain page)
    pd.DataFrame({"image_id": [f"{p.record_id}-{IMAGE_TYPE}" for p in pages],
                  "layout": [DIGITIZER_NAMES[p.style.arrangement] for p in pages],
                  "arrangement": [arrangement_of(p.style) for p in pages]}).to_csv(out / "variants.csv", index=False)
    return pages


def arrangement_of(style: PageStyle) -> str:
    """The departures from the plain page, "+"-joined (as synth.make's variants.csv): "gap", "outside-pulse",
    "time-marks", "wide-paper", "placed"; "plain" for none."""
    parts = [part for part, on in (("gap", style.gap_mm > 0), ("outside-pulse", style.pulse_outside_mm is not None),
                                   ("time-marks", style.time_marks != "none"),
                                   ("wide-paper", style.paper in WIDE_PAPERS_MM),
                                   ("placed", style.placement != "left")) if on]
    return "+".join(parts) or "plain"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.other_renderer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=Path, required=True, help="the shared signal folders (split_records)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-records", type=int, default=None, help="default: every validation window")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scan-fraction", type=float, default=0.3, help="share of pages with mild scan effects")
    parser.add_argument("--arrangement", default="standard", choices=[*ARRANGEMENTS, "mixed"],
                        help="what each page prints where (mixed: drawn per page); default: the standard printout")
    parser.add_argument("--extras", type=parse_extras, default={},
                        help="per page, the probability of each of: gap (2-8 mm between panels), pulse (standing "
                             "alone before the trace), marks (time ticks or axes under the panels), paper (wide: "
                             "288x200 or 330x215 mm), place (the chart centred or to the right); one number for "
                             "all, or NAME=P,NAME=P (default: none)")
    args = parser.parse_args(argv)
    if not args.signals.is_dir():
        parser.error(f"--signals {args.signals} is not a folder")
    if args.n_records is not None and args.n_records < 1:
        parser.error("--n-records must be at least 1")
    if not 0.0 <= args.scan_fraction <= 1.0:
        parser.error("--scan-fraction must be in [0, 1]")
    _, val, _ = split_records(args.signals)
    records = val[: args.n_records] if args.n_records else val
    write_dataset(args.out, records, args.seed, args.scan_fraction, arrangement=args.arrangement, extras=args.extras)
    print(f"wrote {len(records)} pages of another renderer to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
