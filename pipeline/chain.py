"""The digitizer as one Python API: image -> rectified sheet -> trace maps -> signals.

    pipeline = Pipeline.from_bundles("weights")
    result = pipeline(page)            # PipelineResult: signals, intermediate contracts, timings
    signals = pipeline.digitize(page)  # the same, never raising: a failed page gets a fallback

Stage 0 is the grid-based rectifier; with a keypoint bundle (``weights/stage0_rectify``) the keypoint network's
homography takes over where the grid cannot undo the view (phone photos), the grid rectifier staying the
fallback (:mod:`stage0_rectify.infer`); a keypoint-route sheet whose chart looks upside down is turned half a turn
(:mod:`pipeline.upright`).

Layout: every sheet's rows and panels are looked for (:func:`stage1_segment.layout_finder.find_layout`); a page
found to be another known layout than the competition's 3x4 + II, with at least :data:`LAYOUT_CONFIDENCE`, is
read by its own rows and panels (:func:`choose_reading`); every other page is read as 3x4 + II, as before the
finder. ``Pipeline(..., layout=NAME)`` forces a layout. With the lead-name bundle (``weights/lead_names``) the finder
also reads the panels' printed names, which choose between layouts of one geometry
(:func:`stage1_segment.layout_finder.name_panels`). With a close-rows bundle (``weights/stage1_close_rows``: stage 1
fine-tuned on 12x1 pages) a page whose rows stand closer than the competition's network ever saw is read by it;
with a photo bundle (``weights/stage1_photo``: stage 1 fine-tuned on photographed pages) a sheet the keypoint route
placed (a phone photo) is read by it; with the source classifier (``weights/source_classifier``), a sheet another
route placed is read by the stage-1 network its image type's route names (:mod:`source_classifier.routing`): the
photo bundle for a photo (placed by its grid), the mold bundle (``weights/stage1_mold``: stage 1 fine-tuned on
scans with mold) for a black-and-white scan with mold (0012). The photo network's maps are read by the photo
stage-2 bundle where the keypoint route placed the sheet (``weights/stage2_photo``: stage 2 with a 1-D refiner trained
on that network's readings of photos, :meth:`Pipeline.stage2_for`), the mold network's by the mold stage-2 bundle
(``weights/stage2_mold``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.types import Page, Rectified, Signals, TraceMaps, requested_samples
from pipeline.image_io import ImageReadError, NoECGFoundError, read_image
from pipeline.upright import MIN_ROWS, n_pulses, rows_centre, sure_names, upright
from source_classifier.infer import SourceClassifier
from source_classifier.routing import RouteSettings, route, stage0_options
from stage0_rectify.grid import estimate_grid, rectify_from_grid
from stage0_rectify.infer import QUARTER_TURNS, KeypointRectifier, as_given
from stage1_segment.anchors import SURE_INK_PASSES, find_anchors
from stage1_segment.infer import TraceSegmenter
from stage1_segment.layout_finder import NAME_CONFIDENT, FoundLayout, find_layout, printed_name
from stage1_segment.lead_names import LeadNameReader
from stage1_segment.passes import rows_are_close
from stage1_segment.ruled_lines import without_ruled_lines
from stage2_signal.infer import Extraction, SignalExtractor

log = logging.getLogger("pipeline")

STAGE_BUNDLES = {"stage1": "stage1_segment", "stage2": "stage2_signal"}
KEYPOINT_BUNDLE = "stage0_rectify"  # optional: without it stage 0 is the grid rectifier alone
NAMES_BUNDLE = "lead_names"  # optional: without it the layout finder does not read the lead names
CLOSE_ROWS_BUNDLE = "stage1_close_rows"  # optional: stage 1 for rows closer than CLOSE_PITCH_PX (12x1); without it
# the stage-1 bundle reads them too
PHOTO_BUNDLE = "stage1_photo"  # optional: stage 1 for sheets the keypoint route placed (photos); without it the
# stage-1 bundle reads them too
PHOTO_STAGE2_BUNDLE = "stage2_photo"  # optional: stage 2 with a refiner trained on the photo network's readings of
# photos, for that network's maps of sheets the keypoint route placed; needs the photo stage-1 bundle
MOLD_STAGE2_BUNDLE = "stage2_mold"  # optional: stage 2 with a refiner trained on the mold network's readings of
# scans with mold, for that network's maps; needs the mold stage-1 bundle
MOLD_BUNDLE = "stage1_mold"  # optional: stage 1 for sheets the classifier routes to it (mold scans); needs ...
CLASSIFIER_BUNDLE = "source_classifier"  # ... the source classifier, which also routes photos the grid placed


LOW_TRACE_CONFIDENCE = 0.5  # median over leads of stage 2's mean confidence: clean pages read 0.9-0.97, pages
# read into noise 0.1-0.5 (factory pages of every image type, 2026-12-04)


SHEET_GRID_CONFIDENCE = 0.3  # a keypoint sheet whose grid reads this confidently (1 mm and 5 mm lines agreeing)
SHEET_GRID_PITCH_TOL = 0.03  # at the canonical pitch within this share shows an ECG page, rows found or not
LAYOUT_CONFIDENCE = 0.35  # a found layout other than the competition's is read by its panels from this confidence
# up (factory 6x2 and 3x4+II,V1,V5 pages, which share a row count, are found at 0.45-1.0, the other layouts
# near 1.0; below it the page is read as 3x4 + II, as before the finder)
MIN_PAGE_SHARE = 0.8  # see check_shows_ecg: held-out renders and scans 0.92-0.98 (a whole Letter render, the page
# itself, is not asked); photos left at the page width 0.42-0.66, read at -8 to -10 dB
ROWS_STRAY_SHARE = 0.5  # anchors farther than this share of a row pitch from the finder's rows have lost a row
ROWS_UNEVEN_SHARE = 0.3  # the competition layout's rows are evenly spaced: found gaps this much apart are not them


@dataclass(frozen=True)
class LayoutReading:
    """The layout a page is read by: its name, its rows' baselines (sheet px; None: the segmenter finds the
    competition layout's rows itself, exactly as before the finder) and why it was chosen."""

    name: str
    baselines_y_px: tuple[float, ...] | None
    how: str  # "found" (the finder's, confident), "forced" (asked for), "default" (the competition's)
    confidence: float  # the finder's confidence in the layout it found (0 when it found none)
    mm_per_mv: float = CANONICAL.mm_per_mv  # the chart's gain, as its calibration pulses show it


def choose_reading(found: FoundLayout, sheet_rgb: np.ndarray, default_name: str, forced: str | None = None,
                   page: Page | None = None) -> LayoutReading:
    """:func:`choose_layout`'s reading at the gain the page's calibration pulses show (:attr:`FoundLayout.mm_per_mv`:
    a chart printed at 5 mm/mV read at 10 would give every lead at half its amplitude)."""
    return replace(choose_layout(found, sheet_rgb, default_name, forced, page), mm_per_mv=found.mm_per_mv)


def choose_layout(found: FoundLayout, sheet_rgb: np.ndarray, default_name: str, forced: str | None = None,
                  page: Page | None = None) -> LayoutReading:
    """The reading for a sheet whose finder result is ``found``: ``forced`` when given (on the found rows when the
    finder found that many, else on the rows :func:`find_anchors` places for it), the found layout when it is
    not ``default_name``, the finder is at least LAYOUT_CONFIDENCE sure and it prints every lead for as long
    as ``page`` asks (a page asking 10 s of II, as the competition's do, is no 3x4 or 6x2 page: of 152
    competition-layout pages two were found as 3x4, a rhythm strip lost), or else the best-fitting other layout
    of as many rows that passes both (a 3x4 page with three rhythm strips that fits 6x2 a little better, asking
    10 s of V1), else ``default_name`` read as it always was."""
    rows = tuple(r.y_px for r in found.rows)
    if forced is not None:
        if same_geometry(forced, default_name):  # read as the competition's pages are, by its own lead names
            return LayoutReading(forced, None, "forced", found.confidence)
        if len(rows) != get_layout(forced).n_rows:
            rows = find_anchors(sheet_rgb, forced).baselines_y_px
        return LayoutReading(forced, rows, "forced", found.confidence)
    if found.layout_name is None or found.layout_name == default_name or found.confidence < LAYOUT_CONFIDENCE:
        return LayoutReading(default_name, None, "default", found.confidence)
    if same_geometry(found.layout_name, default_name):  # its names in another order: read as the competition's
        return LayoutReading(found.layout_name, None, "found", found.confidence)
    if page is None or prints_what_is_asked(found.layout_name, page):
        return LayoutReading(found.layout_name, rows, "found", found.confidence)
    for name in sorted(found.fits, key=found.fits.get, reverse=True):
        if (name != found.layout_name and found.fits[name] >= LAYOUT_CONFIDENCE
                and get_layout(name).n_rows == len(rows) and prints_what_is_asked(name, page)):
            if name == default_name:
                break
            return LayoutReading(name, rows, "found", found.fits[name])
    return LayoutReading(default_name, None, "default", found.confidence)


def default_rows(found: FoundLayout, sheet_rgb: np.ndarray, layout_name: str) -> tuple[float, ...]:
    """The rows (baselines, sheet px) to read the competition layout ``layout_name`` at: those
    :func:`find_anchors` places, as always, unless the layout finder found that layout surely (at least
    LAYOUT_CONFIDENCE, as many rows) and some anchor strays from its rows by more than ROWS_STRAY_SHARE of their
    pitch: then the finder's. On 194 held-out pages so found (factory scans and photos, ECG-Image-Kit) the two
    agreed within 44 px on all but one, a photo whose anchors took the header's text for the first row and
    skipped the third (read -2.7 dB). Rows found unevenly spaced (gaps differing by more than ROWS_UNEVEN_SHARE of
    their median) are not the competition layout's: a dithered scan read smoothed found rows 365, 663 and 284 px
    apart (factory 10013-0004: -8.3 dB on them, 17.8 on the anchors), unless each stands on its own calibration
    pulse or is named surely as the layout's row (:func:`rows_named`): a printer that spaces its rows by their
    signals' heights (factory 10001-0001, rows 378, 274 and 266 px apart, each with its pulse; the anchors took the
    header for the first row: -13.0 dB)."""
    anchors = find_anchors(sheet_rgb, layout_name).baselines_y_px
    rows = tuple(r.y_px for r in found.rows)
    if (found.layout_name != layout_name or found.confidence < LAYOUT_CONFIDENCE or len(rows) != len(anchors)
            or len(rows) < 2):
        return anchors
    uneven = np.ptp(np.diff(rows)) > ROWS_UNEVEN_SHARE * float(np.median(np.diff(rows)))
    if uneven and not (all(r.pulse is not None for r in found.rows) or rows_named(found)):
        return anchors
    stray = float(np.abs(np.subtract(anchors, rows)).max())
    return rows if stray > ROWS_STRAY_SHARE * float(np.median(np.diff(rows))) else anchors


def rows_named(found: FoundLayout) -> bool:
    """Whether the lead names read on every found row confirm it as the found layout's row: at least one of its
    panels named surely (NAME_CONFIDENT) as the layout prints it there, and none surely as another lead."""
    if found.layout_name is None or not found.rows:
        return False
    layout = get_layout(found.layout_name)
    for k, row in enumerate(found.rows):
        own = [printed_name(p) for p in layout.row_panels(k)]
        if row.names is None or len(row.names) != len(own):
            return False
        sure = [(name, lead) for (name, p), lead in zip(row.names, own, strict=True) if p >= NAME_CONFIDENT
                and name != "none"]
        if not sure or any(name != lead for name, lead in sure):
            return False
    return True


def same_geometry(name: str, default_name: str) -> bool:
    """Whether ``name`` is ``default_name`` or prints its panels where it does, in another order (Cabrera's)."""
    layout, default = get_layout(name), get_layout(default_name)
    return [(p.row, p.col, p.t0_s, p.x_offset_s) for p in layout.panels] == [
        (p.row, p.col, p.t0_s, p.x_offset_s) for p in default.panels]


def prints_what_is_asked(layout_name: str, page: Page) -> bool:
    """Whether ``layout_name`` prints each lead for at least the samples ``page`` asks of it (within a sample's
    rounding)."""
    printed = printed_samples(layout_name, page.fs_hz)
    return all(printed[lead] + 1 >= int(n) for lead, n in page.samples_per_lead.items())


def printed_samples(layout_name: str, fs_hz: float) -> dict:
    """Samples per lead from its first printed instant to its last (the competition layout's: II 10 s, the
    others 2.5 s)."""
    layout = get_layout(layout_name)
    spans = {lead: [(p.t0_s, p.t1_s) for p in layout.lead_panels(lead)] for lead in LEADS}
    return {lead: int(round((max(t1 for _, t1 in s) - min(t0 for t0, _ in s)) * fs_hz)) for lead, s in spans.items()}


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file once into RGB uint8; an :class:`ImageReadError` saying why it cannot be."""
    return read_image(path).rgb


def check_shows_ecg(rectified: Rectified, layout_name: str, page_share: float | None = None) -> None:
    """Raise :class:`NoECGFoundError` when stage 0 found neither grid nor calibration pulse (it fell back to
    the page width) and no rows of trace run across the sheet: a photo, a blank page or text. Factory pages
    of real ECGs in that state are read into noise anyway (-8 to -15 dB, below the flat fallback's 0 dB).
    Also where rows show but it fell back to the page width on an image the keypoint network sees less than
    MIN_PAGE_SHARE of as page (``page_share``; None: not asked): the image's width is then no page's."""
    if rectified.method != "page_width":
        return
    if find_anchors(rectified.sheet_rgb, layout_name, passes=SURE_INK_PASSES).method == "default":
        raise NoECGFoundError("no ECG found on the page: no grid, no calibration pulse and no rows of trace "
                              "(not an ECG, or too degraded to read)")
    if page_share is not None and page_share < MIN_PAGE_SHARE:
        raise NoECGFoundError(f"no ECG page placed in the photo: rows of trace show, on a page covering about "
                              f"{page_share:.0%} of it, but neither its corners, its grid nor its calibration pulses "
                              "place it (take the photo closer, the page filling most of the frame)")


def shows_rows_or_grid(sheet_rgb: np.ndarray, layout_name: str) -> bool:
    """Whether a sheet the keypoint route made shows an ECG: rows of trace where the layout has them, or a grid
    read confidently at the canonical pitch (factory photos whose rows sit closer than the layout's, on a tinted
    page, had no rows found, yet their keypoint sheets read their grid at 0.4-0.9 confidence and 7.87-7.89
    px/mm, and the grid rectifier's reading of the photo was 200-650 px off)."""
    if find_anchors(sheet_rgb, layout_name).method != "default":
        return True
    grid = estimate_grid(sheet_rgb)
    return (grid.method == "grid" and grid.confidence >= SHEET_GRID_CONFIDENCE
            and abs(grid.px_per_mm / CANONICAL.px_per_mm - 1.0) <= SHEET_GRID_PITCH_TOL)


def fallback_signals(image_id: str, fs_hz: float, samples_per_lead: dict) -> Signals:
    """What a page that could not be digitized gets: a flat 0 mV line of the requested length in every
    lead (the metric forgives a constant offset, so this is the least-harm constant)."""
    return Signals(image_id, fs_hz, {lead: np.zeros(requested_samples(fs_hz, samples_per_lead, lead), np.float32)
                                     for lead in LEADS})


@dataclass(frozen=True)
class PipelineResult:
    signals: Signals
    rectified: Rectified | None = None
    maps: TraceMaps | None = None
    timings_s: dict = field(default_factory=dict)
    error: str | None = None
    extraction: Extraction | None = None  # stage 2's traces, panel readings and timing info, for debugging
    refused: bool = False  # the error says the input is not a readable ECG (rather than that a stage broke)
    layout: LayoutReading | None = None  # the layout the page was read by (None: it failed before)

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def warnings(self) -> list[str]:
        """What a person should know before trusting the signals."""
        if self.error is not None:
            return [f"digitizing failed ({self.error}): flat 0 mV fallback"]
        out = []
        if self.rectified is not None and self.rectified.method in ("pulse", "page_width"):
            source = "the calibration pulse" if self.rectified.method == "pulse" else "the page width"
            out.append(f"grid not found: scale taken from {source} (amplitudes and times may be off)")
        if self.extraction is not None:
            conf = float(np.median([np.mean(c) for c in self.extraction.confidence.values() if np.size(c)] or [0.0]))
            if conf < LOW_TRACE_CONFIDENCE:
                out.append(f"low confidence in the traces read (median {conf:.2f} of 1)")
        return out


@dataclass
class Pipeline:
    segmenter: TraceSegmenter
    extractor: SignalExtractor
    rectifier: KeypointRectifier | None = None  # None: the grid rectifier alone
    layout: str | None = None  # a layout name to read every page by; None: the layout found on each page
    names: LeadNameReader | None = None  # reads the panels' printed names for the layout finder; None: not read
    close_rows: TraceSegmenter | None = None  # reads pages whose rows stand closer than CLOSE_PITCH_PX; None: segmenter
    photos: TraceSegmenter | None = None  # reads sheets the keypoint route placed, and the others the classifier
    # routes to the photo network; None: segmenter
    molds: TraceSegmenter | None = None  # reads the other sheets the classifier routes to the mold network
    classifier: SourceClassifier | None = None  # names the image type of a page stage 0 placed by other than its
    # keypoints (routes it to `molds` or `photos`); None: such pages are read by segmenter
    mm_per_mv: float | None = None  # the gain to read every chart at; None: its pulses', else 10 mm/mV
    photo_extractor: SignalExtractor | None = None  # reads the photo network's maps of sheets the keypoint route
    # placed (its refiner learned that network's errors on photos); None: extractor
    mold_extractor: SignalExtractor | None = None  # reads the mold network's maps (its refiner learned that
    # network's errors on scans with mold); None: extractor

    def __post_init__(self) -> None:
        if self.layout is not None:
            get_layout(self.layout)  # an unknown name fails here, naming the known ones
        if self.mm_per_mv is not None and not (np.isfinite(self.mm_per_mv) and self.mm_per_mv > 0):
            raise ValueError(f"the gain to read charts at must be positive mm/mV, got {self.mm_per_mv}")
        if self.molds is not None and self.classifier is None:
            raise ValueError("the mold stage-1 bundle is chosen by the source classifier: give both")
        if self.photo_extractor is not None and self.photos is None:
            raise ValueError("the photo stage-2 bundle reads the photo network's maps: give the photo stage-1 bundle")
        if self.mold_extractor is not None and self.molds is None:
            raise ValueError("the mold stage-2 bundle reads the mold network's maps: give the mold stage-1 bundle")
        for name, other in (("close-rows", self.close_rows), ("photo", self.photos), ("mold", self.molds)):
            if isinstance(other, TraceSegmenter) and (
                    other.layout_name != self.segmenter.layout_name
                    or other.model.position != self.segmenter.model.position):
                raise ValueError(f"the {name} stage-1 bundle reads layout {other.layout_name!r} with position "
                                 f"{other.model.position!r}, the stage-1 bundle {self.segmenter.layout_name!r} with "
                                 f"{self.segmenter.model.position!r}: they must read pages alike")

    @classmethod
    def from_bundles(cls, weights_dir: str | Path = "weights", device: str = "cpu",
                     layout: str | None = None, mm_per_mv: float | None = None) -> Pipeline:
        """Load every stage from its bundle folder under ``weights_dir``; a missing stage-1 or stage-2 bundle is an
        error, the keypoint, lead-name, close-rows, photo and mold bundles are used when their folders are there (and
        must then be complete; the mold bundle with the source classifier's, which is loaded with either).
        ``device`` ("cpu", "cuda") runs the stage-1 network there; the rest runs on the CPU. ``layout`` and
        ``mm_per_mv``: see :class:`Pipeline`."""
        root = Path(weights_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"weights folder {root} does not exist")
        keypoints, names = root / KEYPOINT_BUNDLE, root / NAMES_BUNDLE
        close, photos, molds = root / CLOSE_ROWS_BUNDLE, root / PHOTO_BUNDLE, root / MOLD_BUNDLE
        if molds.is_dir() and not (root / CLASSIFIER_BUNDLE).is_dir():
            raise FileNotFoundError(f"{molds} is chosen by the source classifier, but {root / CLASSIFIER_BUNDLE} "
                                    "is missing")
        photo_stage2, mold_stage2 = root / PHOTO_STAGE2_BUNDLE, root / MOLD_STAGE2_BUNDLE
        for stage2, stage1, name in ((photo_stage2, photos, "photo"), (mold_stage2, molds, "mold")):
            if stage2.is_dir() and not stage1.is_dir():
                raise FileNotFoundError(f"{stage2} reads the {name} network's maps, but {stage1} is missing")
        return cls(TraceSegmenter.from_bundle(root / STAGE_BUNDLES["stage1"], device=device),
                   SignalExtractor.from_bundle(root / STAGE_BUNDLES["stage2"]),
                   KeypointRectifier.from_bundle(keypoints) if keypoints.is_dir() else None, layout,
                   LeadNameReader.from_bundle(names) if names.is_dir() else None,
                   TraceSegmenter.from_bundle(close, device=device) if close.is_dir() else None,
                   TraceSegmenter.from_bundle(photos, device=device) if photos.is_dir() else None,
                   TraceSegmenter.from_bundle(molds, device=device) if molds.is_dir() else None,
                   SourceClassifier.from_bundle(root / CLASSIFIER_BUNDLE)
                   if (root / CLASSIFIER_BUNDLE).is_dir() and (molds.is_dir() or photos.is_dir()) else None,
                   mm_per_mv,
                   SignalExtractor.from_bundle(photo_stage2) if photo_stage2.is_dir() else None,
                   SignalExtractor.from_bundle(mold_stage2) if mold_stage2.is_dir() else None)

    def route_of(self, page: Page, timings: dict) -> RouteSettings | None:
        """The settings the source classifier's route gives the page (None without a classifier); its time goes
        into ``timings``."""
        if self.classifier is None:
            return None
        start = time.perf_counter()
        settings = route(self.classifier(page))
        timings["source_classifier"] = time.perf_counter() - start
        return settings

    def rectify(self, page: Page, settings: RouteSettings | None = None) -> Rectified:
        """Stage 0 alone: the page on the canonical sheet (not yet checked for an ECG); ``settings``: its route's
        (a screen's sheet is taken as flat: ``dewarp``; a photographed print's grid is corrected however surely
        it is read: ``print_photo``). A photo placed by nothing is read again from its lit region (see below)."""
        if self.rectifier is None:
            return rectify_from_grid(page)
        options = stage0_options(settings)
        rectified = self.rectifier.rectify(page, **options)
        if rectified.method == "keypoints" and not shows_rows_or_grid(rectified.sheet_rgb, self.segmenter.layout_name):
            # the network finds "page corners" on any photo; a sheet without rows of trace or a canonical grid keeps
            # the grid rectifier's reading (and a picture that is no ECG is then refused by check_shows_ecg)
            rectified = rectify_from_grid(page)
        if rectified.method == "page_width":
            # placed by neither grid, pulses nor corners: a photo whose page or screen fills only part of the frame
            # may be placed from that part (kp2 10001-0006, a screen in a quarter of the photo, was refused)
            first_info = self.rectifier.last_info
            zoomed = self.rectifier.rectify_lit_region(page, **options)
            if (zoomed is not None and zoomed.method == "keypoints"
                    and shows_rows_or_grid(zoomed.sheet_rgb, self.segmenter.layout_name)):
                return zoomed
            self.rectifier.last_info = first_info
        return rectified

    def sideways(self, page: Page, rectified: Rectified, found: FoundLayout) -> tuple[Rectified, FoundLayout]:
        """A page fed sideways (a scan or render turned a quarter): the grid rectifier squares the grid up at any
        quarter turn, so the sheet shows the chart's rows standing up and the layout finder finds none that fit a
        known layout. The image is read again turned a quarter each way; a turn whose sheet shows at least MIN_ROWS
        rows that fit a known layout is taken, the one with more calibration pulses standing at its rows' starts
        (then more lead names read the right way up, then rows lower on the sheet) where both do (the two are half a
        turn apart). Its map still takes the image as given onto the sheet."""
        best = None
        for turn, code in QUARTER_TURNS.items():
            turned_page = replace(page, image_rgb=np.ascontiguousarray(cv2.rotate(page.image_rgb, code)))
            turned = self.rectify(turned_page)
            turned = replace(turned, sheet_rgb=without_ruled_lines(turned.sheet_rgb))
            turned_found = find_layout(turned.sheet_rgb, self.names)
            if turned_found.n_rows < MIN_ROWS or turned_found.layout_name is None:
                continue  # rows that fit no known layout are a portrait page's grid lines and traces read across
            key = (n_pulses(turned_found), sure_names(turned_found), rows_centre(turned_found))
            if best is None or key > best[0]:
                best = (key, as_given(turned, turn, page.image_rgb.shape[:2]), turned_found)
        return (rectified, found) if best is None else (best[1], best[2])

    def stage1_for(self, page: Page, rectified: Rectified, timings: dict,
                   settings: RouteSettings | None = None) -> TraceSegmenter:
        """The stage-1 network for a page: a phone photo's ink (blurred, faint, stained, screen moire) is read by
        the network trained on photos (the keypoint route placed it); another sheet by the one its image type's
        route names (``settings``, else the classifier is asked: its time goes into ``timings``)."""
        if rectified.method == "keypoints":
            return self.photos if self.photos is not None else self.segmenter
        settings = settings if settings is not None else self.route_of(page, timings)
        if settings is None:
            return self.segmenter
        chosen = {"mold": self.molds, "photo": self.photos}.get(settings.stage1)
        return chosen if chosen is not None else self.segmenter

    def stage1_network(self, page: Page, rectified: Rectified, baselines_y_px=None,
                       timings: dict | None = None, settings: RouteSettings | None = None) -> TraceSegmenter:
        """The stage-1 network that reads a page: the close-rows network where its rows (``baselines_y_px``, sheet
        px; None: the competition layout's) stand closer than the competition's, else :meth:`stage1_for`'s."""
        if baselines_y_px is not None and self.close_rows is not None and rows_are_close(baselines_y_px):
            return self.close_rows
        return self.stage1_for(page, rectified, {} if timings is None else timings, settings)

    def stage2_for(self, segmenter: TraceSegmenter, rectified: Rectified) -> SignalExtractor:
        """The stage-2 reader of the maps ``segmenter`` made of ``rectified``: those the photo network made of a
        sheet the keypoint route placed (a phone photo) by the photo stage-2 bundle, the mold network's by the mold
        stage-2 bundle, where there are such bundles. A sheet its
        grid placed that the classifier routed to the photo network is read by the plain bundle: such pages are
        mostly renders and scans (ECG-Image-Kit's shaded renders, named photos of prints), whose good readings the
        refiner learned on photos lowers (eikB 20.88 -> 20.61 dB, 8 of 19 pages)."""
        if segmenter is self.photos and rectified.method == "keypoints" and self.photo_extractor is not None:
            return self.photo_extractor
        if segmenter is self.molds and self.mold_extractor is not None:
            return self.mold_extractor
        return self.extractor

    def __call__(self, page: Page) -> PipelineResult:
        timings = {}
        settings = self.route_of(page, timings)  # once: stage 0 (flat or not) and stage 1 (which network) use it
        start = time.perf_counter()
        rectified = self.rectify(page, settings)
        check_shows_ecg(rectified, self.segmenter.layout_name,
                        None if self.rectifier is None else self.rectifier.last_info.get("page_share"))
        timings["stage0_rectify"] = time.perf_counter() - start
        start = time.perf_counter()
        # time axes ruled under the rows are painted out: stage 1 would follow them where a QRS comes near
        rectified = replace(rectified, sheet_rgb=without_ruled_lines(rectified.sheet_rgb))
        found = find_layout(rectified.sheet_rgb, self.names)
        if rectified.method != "keypoints" and (found.n_rows < MIN_ROWS or found.layout_name is None):
            # (standing rows read across can pile their ink into a few rows that fit no layout)
            rectified, found = self.sideways(page, rectified, found)
        if self.rectifier is not None and rectified.method == "keypoints":
            rectified, found, _ = upright(rectified, found, self.names,
                                          self.rectifier.last_info.get("orientation_conf", 1.0))
        reading = choose_reading(found, rectified.sheet_rgb, self.segmenter.layout_name, self.layout, page)
        if self.mm_per_mv is not None:
            reading = replace(reading, mm_per_mv=self.mm_per_mv)
        segmenter = self.stage1_network(page, rectified, reading.baselines_y_px, timings, settings)
        if reading.baselines_y_px is None:
            maps = segmenter(rectified) if segmenter.model.position != "anchors" else segmenter(
                rectified, segmenter.layout_name, default_rows(found, rectified.sheet_rgb, segmenter.layout_name))
            if reading.name != maps.layout_name:  # the competition layout's rows, its leads in another order
                maps = replace(maps, layout_name=reading.name)
        else:
            maps = segmenter(rectified, reading.name, reading.baselines_y_px)
        timings["stage1_segment"] = time.perf_counter() - start
        start = time.perf_counter()
        # a page that asks for no lengths (your own images) gets each lead as long as its layout prints it
        counts = {lead: page.n_samples(lead) for lead in LEADS} if page.samples_per_lead else printed_samples(
            reading.name, page.fs_hz)
        extraction = self.stage2_for(segmenter, rectified).extract(maps, rectified.px_per_mm, page.fs_hz, counts,
                                                        rectified.sheet_rgb, mm_per_mv=reading.mm_per_mv)
        timings["stage2_signal"] = time.perf_counter() - start
        return PipelineResult(extraction.signals, rectified, maps, timings, extraction=extraction, layout=reading)

    def digitize(self, page: Page) -> PipelineResult:
        """Like calling the pipeline, but a failure gives the fallback signals and the reason."""
        try:
            return self(page)
        except Exception as err:  # noqa: BLE001 - a batch never loses a page; the reason is kept and logged
            refused = isinstance(err, ImageReadError)
            reason = str(err) if refused else f"{type(err).__name__}: {err}"
            log.warning("page %s failed, fallback prediction used: %s", page.image_id, reason)
            return PipelineResult(fallback_signals(page.image_id, page.fs_hz, page.samples_per_lead), error=reason,
                                  refused=refused)
