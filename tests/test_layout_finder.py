"""The layout found on a sheet: rows, panel extents, pulses and the known layout they fit."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import Layout, Placement, get_layout
from stage1_segment.layout_finder import FoundLayout, FoundRow, find_layout
from synth.factory import make_page
from synth.render import Arrangements
from synth.signals import simulate_record

MM = CANONICAL.px_per_mm


def _factory_sheet(layout_name: str, seed: int, image_type: str, arrangements: Arrangements | None = None):
    rec = simulate_record(np.random.default_rng(seed))
    page = make_page(rec, seed, seed, [image_type], layouts=[layout_name], fs_choices=[500],
                     arrangements=arrangements)
    image = page.images[image_type]
    return image.sheet_map.rectify(image.image_rgb), page.labels


@pytest.mark.parametrize(
    ("layout_name", "seed", "image_type"),
    [("3x4+II", 0, "0001"), ("6x2", 1, "0003"), ("12x1", 2, "0001"), ("3x4+II,V1,V5", 3, "0001"),
     ("3x4+II,V1", 5, "0003")],
)
def test_factory_pages_are_found(layout_name, seed, image_type):
    sheet, labels = _factory_sheet(layout_name, seed, image_type)
    found = find_layout(sheet)
    layout = get_layout(layout_name)
    assert found.layout_name == layout_name
    assert found.confidence > 0.3
    assert found.n_rows == layout.n_rows
    # rows sit on the 0 mV lines the page was drawn with
    np.testing.assert_allclose([r.y_px for r in found.rows], labels.baselines_y_px, atol=1.5 * MM)
    for k, row in enumerate(found.rows):
        panels = layout.row_panels(k)
        truth = [(float(labels.placement.panel_x_px(p, p.t0_s)), float(labels.placement.panel_x_px(p, p.t1_s)))
                 for p in panels]
        assert row.leads == tuple(p.lead for p in panels)
        # every panel's start and end within 1 mm
        np.testing.assert_allclose(np.ravel(row.panels), np.ravel(truth), atol=MM)
        box = labels.pulse_boxes_px[k]
        if np.isfinite(box).all():
            assert row.pulse is not None
            assert abs(0.5 * (row.pulse[0] + row.pulse[2]) - 0.5 * (box[0] + box[2])) <= MM
        else:
            assert row.pulse is None


@pytest.mark.parametrize(("layout_name", "seed"), [("3x4+II", 4), ("12x1", 6)])
def test_the_pulses_give_the_charts_gain(layout_name, seed):
    """A chart printed at 5 mm/mV (pulses 5 mm tall) is found so; the same record at the sheet's 10 mm/mV keeps
    10. Read at 10, the half-gain chart would give every lead at half its amplitude."""
    half, labels = _factory_sheet(layout_name, seed, "0001", Arrangements(half_gain=1.0))
    assert labels.style["mm_per_mv"] == 5.0
    found = find_layout(half)
    assert found.layout_name == layout_name and all(r.pulse is not None for r in found.rows)
    assert found.mm_per_mv == 5.0
    full, labels = _factory_sheet(layout_name, seed, "0001")
    assert labels.style["mm_per_mv"] == 10.0 and find_layout(full).mm_per_mv == 10.0


def test_pulses_of_two_heights_keep_the_sheets_gain():
    rows = tuple(FoundRow(500.0 + 250 * k, ((100.0, 2000.0),), None, None, False, ((100.0, 2000.0),))
                 for k in range(3))

    def pulsed(heights_mm):
        return FoundLayout(None, 0.0, tuple(dataclasses.replace(r, pulse=None if h is None else (
            40.0, r.y_px - h * MM, 40.0 + CANONICAL.s_to_px(0.2), r.y_px)) for r, h in zip(rows, heights_mm,
                                                                                          strict=True)),
            {}, None, None)

    assert pulsed((5.0, 5.0, None)).mm_per_mv == 5.0
    assert pulsed((20.0, 20.0, 20.0)).mm_per_mv == 20.0
    assert pulsed((5.0, 10.0, 5.0)).mm_per_mv == 10.0  # rows at two gains: read by the sheet's
    assert pulsed((5.0, None, None)).mm_per_mv == 10.0  # a lone pulse is no proof
    assert pulsed((None, None, None)).mm_per_mv == 10.0


@pytest.mark.parametrize("grid", [False, True])
def test_a_page_without_traces_has_no_layout(grid):
    sheet = np.full((*CANONICAL.shape_hw, 3), 250, np.uint8)
    if grid:  # a pink grid, with its 5 mm lines darker
        sheet[:, ::8] = (240, 170, 180)
        sheet[::8] = (240, 170, 180)
        sheet[:, ::39] = (220, 90, 110)
        sheet[::39] = (220, 90, 110)
    found = find_layout(sheet)
    assert found.layout_name is None
    assert found.confidence == 0.0
    assert found.rows == ()
    assert found.as_layout() is None


def _wavy_rows(sheet: np.ndarray, rows: list[float], x_start: int, x_end: int) -> None:
    """3 px black traces with QRS-like spikes, isoelectric at each y of ``rows``, from x_start to x_end."""
    x = np.arange(x_start, x_end)
    for y in rows:
        trace = y + 3 * np.sin(x / 40.0) - 60 * ((x % 160) < 6)
        for dy in (-1, 0, 1):
            sheet[np.round(trace).astype(int) + dy, x] = 10


def test_rows_of_no_known_layout_keep_their_measured_extents():
    """Five rows of 8 s: no known layout has five rows; the panels are the runs of ink as drawn."""
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    rows = [300.0, 520.0, 740.0, 960.0, 1180.0]
    _wavy_rows(sheet, rows, 300, 1875)
    found = find_layout(sheet)
    assert found.layout_name is None
    assert found.confidence == 0.0
    np.testing.assert_allclose([r.y_px for r in found.rows], rows, atol=3.0)
    for row in found.rows:
        assert row.leads is None
        assert len(row.panels) == 1
        np.testing.assert_allclose(row.panels[0], (300, 1875), atol=4.0)
    assert FoundLayout.from_dict(found.to_dict()) == found


def test_found_layout_json_round_trip(tmp_path):
    sheet, labels = _factory_sheet("3x4+II", 0, "0001")
    found = find_layout(sheet)
    loaded = FoundLayout.load(found.save(tmp_path / "page.layout.json"))
    assert loaded == found
    layout, placement = loaded.as_layout()
    assert isinstance(layout, Layout) and layout.name == "3x4+II"
    assert isinstance(placement, Placement)
    assert abs(placement.x0_px - labels.x0_px) <= MM


def test_a_lead_flat_over_its_whole_12x1_row_is_a_row():
    """aVL = I - II / 2 is flat when I is half of II: its row's ink stays on its baseline like a ruled line's,
    but it stands one row pitch from its neighbours, so it is no time axis."""
    from common.layouts import LEADS
    from synth.signals import Record

    rec = simulate_record(np.random.default_rng(3))
    leads = rec.leads_mv.copy()
    leads[LEADS.index("I")] = 0.5 * leads[LEADS.index("II")]
    rec = Record(rec.record_id, rec.fs_hz, leads, rec.source)
    page = make_page(rec, 3, 3, ["0001"], layouts=["12x1"], fs_choices=[500])
    image = page.images["0001"]
    found = find_layout(image.sheet_map.rectify(image.image_rgb))
    assert found.layout_name == "12x1" and found.n_rows == 12
    np.testing.assert_allclose([r.y_px for r in found.rows], page.labels.baselines_y_px, atol=1.5 * MM)


@pytest.mark.parametrize("layout_name", ["3x4+II", "6x2"])
def test_time_axes_ruled_under_the_rows_are_not_rows(layout_name, monkeypatch):
    """Some programs rule a time axis (a straight line with a tick every second) under each row: it piles up ink
    like a row of trace, and is no row. (Ruled closer than MIN_PITCH_PX to the row, it would merge with it.)"""
    import cv2

    import stage1_segment.layout_finder as finder

    sheet, labels = _factory_sheet(layout_name, 5, "0001")
    sheet = sheet.copy()
    x_start, x_end = int(labels.x0_px), int(labels.x0_px + CANONICAL.s_to_px(10.0))
    for y in labels.baselines_y_px:
        axis_y = int(round(y + 10.0 * MM))
        cv2.line(sheet, (x_start, axis_y), (x_end, axis_y), (20, 20, 20), 2)
        for second in range(11):
            x = int(round(x_start + CANONICAL.s_to_px(second)))
            cv2.line(sheet, (x, axis_y), (x, axis_y - int(MM)), (20, 20, 20), 2)
    found = find_layout(sheet)
    assert found.layout_name == layout_name
    np.testing.assert_allclose([r.y_px for r in found.rows], labels.baselines_y_px, atol=1.5 * MM)
    # the rule is what tells them apart: without it the axes are read as rows
    monkeypatch.setattr(finder, "RULED_SHARE", 1.01)
    assert find_layout(sheet).layout_name != layout_name


def test_a_dithered_black_and_white_scan_is_read_smoothed(monkeypatch):
    """A black-and-white page whose paper is dithered into dots (6 % of its pixels black): at the darkest of
    each 2 x 2 block the dots are ink everywhere; read 3 x 3 box-blurred, the rows stand out again."""
    import stage1_segment.layout_finder as finder

    sheet, labels = _factory_sheet("3x4+II", 1, "0001")
    dots = np.random.default_rng(1).random(sheet.shape[:2]) < 0.06
    black = (sheet.min(axis=2) < 128) | dots
    scan = np.repeat(np.where(black, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    found = find_layout(scan)
    assert found.layout_name == "3x4+II"
    np.testing.assert_allclose([r.y_px for r in found.rows], labels.baselines_y_px, atol=1.5 * MM)
    # read as it is, the dots bury the rows
    monkeypatch.setattr(finder, "SPECKLED_SHARE", 1.01)
    assert find_layout(scan).layout_name is None


def test_a_time_axis_ruled_between_two_rows_is_no_row():
    """A dark axis ruled midway between two rows piles more ink on one y than either row: before close peaks are
    split it is known as a ruled line and taken out, so the two rows beside it stay."""
    import cv2

    sheet, labels = _factory_sheet("6x2", 1, "0001")
    sheet = sheet.copy()
    x_start, x_end = int(labels.x0_px), int(labels.x0_px + CANONICAL.s_to_px(10.0))
    axis_y = int(round(0.5 * (labels.baselines_y_px[3] + labels.baselines_y_px[4])))
    cv2.line(sheet, (x_start, axis_y), (x_end, axis_y), (20, 20, 20), 3)
    found = find_layout(sheet)
    assert found.layout_name == "6x2"
    np.testing.assert_allclose([r.y_px for r in found.rows], labels.baselines_y_px, atol=1.5 * MM)


def test_a_close_pair_of_peaks_drops_the_one_that_is_not_trace():
    """Lines of text close above a row whose baseline wanders pile up more ink than the row: of the pair, the
    peak that is not trace goes, whatever its strength; between two peaks of one wandering trace the weaker goes."""
    from stage1_segment.layout_finder import _split_close

    profile = np.zeros(800)
    peaks = [60, 125, 250, 375, 500]
    profile[peaks] = [0.9, 0.3, 0.8, 0.8, 0.8]
    ink = np.zeros((800, 1100), np.uint8)
    ink[[250, 375, 500]] = 1
    ink[60, :550] = ink[125, 550:] = 1  # one trace: at one y, then at the other
    assert _split_close(peaks, profile, [False, True, True, True, True], ink) == [125, 250, 375, 500]
    assert _split_close(peaks, profile, [True] * 5, ink) == [60, 250, 375, 500]


def test_two_traces_side_by_side_closer_than_the_pitch_stay_two_rows():
    """Rhythm strips whose pitch follows the signal may stand half the rows' pitch apart: two peaks of trace whose
    ink runs side by side along the row are two rows, not one trace's two peaks."""
    from stage1_segment.layout_finder import _split_close

    profile = np.zeros(800)
    peaks = [125, 250, 375, 430, 600]
    profile[peaks] = 0.8
    ink = np.zeros((800, 1100), np.uint8)
    ink[peaks] = 1
    assert _split_close(peaks, profile, [True] * 5, ink) == peaks
    ink[375, 550:] = ink[430, :550] = 0  # the same peaks made by one trace that steps down half way
    assert _split_close(peaks, profile, [True] * 5, ink) == [125, 250, 375, 600]


def test_rows_run_on_by_a_grid_line_leave_the_others_placed():
    """Two of four rows of 10 s whose ink runs on 60 px past their end (a grid line on their baseline the ink
    kept): the chart's origin is where the other two rows put it, at the sheet's scale."""
    from stage1_segment.layout_finder import PX_PER_S, _place

    x0 = 100.0
    starts = np.full(4, x0)
    ends = x0 + 10.0 * PX_PER_S + np.array([0.0, 60.0, 0.0, 60.0])
    placed_x0, px_per_s, agree, weight = _place(starts, ends, np.full(4, 10.0))
    assert abs(placed_x0 - x0) < 1.0 and px_per_s == PX_PER_S and weight == 1.0
    assert agree.tolist() == [True, False, True, False]


def test_rows_run_on_by_mold_do_not_pull_the_origin_between_two_groups():
    """Two of four rows run on 24 and 32 px past their end (mold at the sheet's right edge): the median of all four
    origins lies within 2 mm of both groups, but the origin is the two rows' that end together."""
    from stage1_segment.layout_finder import PX_PER_S, _place

    x0 = 199.5
    starts = np.full(4, x0 - 11.5)  # the pulse's lead-out
    ends = x0 + 10.0 * PX_PER_S + np.array([24.0, 32.0, 0.0, 0.0])
    placed_x0, px_per_s, agree, weight = _place(starts, ends, np.full(4, 10.0))
    assert abs(placed_x0 - x0) < 1.0 and px_per_s == PX_PER_S
    assert agree[2:].all()


def test_rows_run_on_to_the_sheets_edge_are_placed_by_their_starts():
    """A mold scan (eval12 10009-0012): three of four rows run on through mold to the sheet's right edge, 75 px past
    the chart's end, and the fourth loses its last 0.6 s under mold. The three ends agree with each other, but an
    edge is where the ink stops being seen, not where the chart ends: the rows' common start places the chart."""
    from stage1_segment.layout_finder import PX_PER_S, _place

    x0 = 156.0
    edge = float(CANONICAL.width_px)
    starts = x0 + np.array([18.0, 18.0, -8.0, -8.0])
    ends = np.array([edge, x0 + 9.4 * PX_PER_S, edge, edge])
    placed_x0, px_per_s, agree, _ = _place(starts, ends, np.full(4, 10.0))
    assert abs(placed_x0 - x0) <= CANONICAL.px_per_mm and px_per_s == PX_PER_S
    assert agree[[0, 2, 3]].all()
    # rows that end before the edge keep placing the chart by their ends, as before
    ends = np.array([edge - 40.0, x0 + 10.0 * PX_PER_S, edge - 40.0, edge - 40.0])
    placed_x0, _, _, _ = _place(starts, ends, np.full(4, 10.0))
    assert abs(placed_x0 - (edge - 40.0 - 10.0 * PX_PER_S)) < 1.0


def test_of_as_many_agreeing_rows_the_origin_nearest_the_rows_starts_wins():
    """A crumpled page whose crease shadows run three rows' ink on or cut it short, each by its own amount: one row
    ends right and one ends 80 px late, each alone; the four rows start together just after their pulses, so the
    origin is the one that agrees with the starts."""
    from stage1_segment.layout_finder import PX_PER_S, _place

    x0 = 119.5
    starts = x0 + np.array([6.5, 4.5, 4.5, -1.5])
    for late_first in (False, True):  # whichever of the two rows comes first
        ends = x0 + 10.0 * PX_PER_S + (np.array([80.0, -38.0, 0.0, 112.0]) if late_first
                                       else np.array([-38.0, 0.0, 80.0, 112.0]))
        placed_x0, px_per_s, _, _ = _place(starts, ends, np.full(4, 10.0))
        assert abs(placed_x0 - x0) < 1.0 and px_per_s == PX_PER_S


def test_rows_whose_ink_fades_before_their_ends_are_placed_by_their_starts():
    """A thin trace under a photo's shadow: the four rows start together but their ink is lost 330-560 px before
    their ends, each by its own amount, so no row's end places the chart; their common start does, at the sheet's
    scale, counting as a scaled placement. Rows starting apart, or ink beyond the chart's end, place nothing."""
    from stage1_segment.layout_finder import PX_PER_S, SCALED_WEIGHT, _place

    x0 = 152.0
    starts = x0 + np.array([0.0, 4.0, 4.0, 8.0])
    ends = x0 + np.array([1490.0, 1720.0, 1644.0, 1582.0]) - 76.0
    placed_x0, px_per_s, agree, weight = _place(starts, ends, np.full(4, 10.0))
    assert abs(placed_x0 - (x0 + 4.0)) < 1.0 and px_per_s == PX_PER_S
    assert agree.all() and weight == SCALED_WEIGHT
    assert _place(x0 + np.array([0.0, 120.0, 250.0, 400.0]), ends, np.full(4, 10.0))[2] is None
    # ink 185-200 px beyond the chart's end (9 % more than 10 s: no other scale either), short of the sheet's edge
    early = 20.0
    beyond = early + 10.0 * PX_PER_S + np.array([185.0, 185.0, 190.0, 200.0])
    assert beyond.max() < CANONICAL.width_px - 4
    assert _place(early + np.array([0.0, 4.0, 4.0, 8.0]), beyond, np.full(4, 10.0))[2] is None


def test_a_trace_crossing_dark_upright_grid_lines_stays_one_run():
    """Upright grid lines as dark and thick as the trace are taken out of the ink; where the trace crosses one,
    the line's width is put back, so a row is not cut into panels at every line."""
    from stage1_segment.layout_finder import _measure_row, _territories, ink_masks

    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    pitch = 5.0 * MM
    for x in np.arange(40.0, CANONICAL.shape_hw[1] - 40.0, pitch):
        sheet[100:1600, int(round(x)) : int(round(x)) + 4] = 10
    rows = [500.0, 900.0]
    x = np.arange(300, 1875)
    for y in rows:  # 3 px traces wandering 3 px about their baselines
        trace = np.round(y + 3 * np.sin(x / 40.0)).astype(int)
        for dy in (-1, 0, 1):
            sheet[trace + dy, x] = 10
    ink, _ = ink_masks(sheet)
    ys = [y / 2 for y in rows]
    for y, band in zip(ys, _territories(ys, ink.shape[0]), strict=True):
        row = _measure_row(ink, y, band)
        assert row is not None and len(row.runs) == 1


def test_a_row_half_lost_to_faint_ink_is_read_again_at_the_faint_level(monkeypatch):
    """The middle of the rhythm strip printed grey (a photo's dim stretch): at the trace's ink level the strip holds
    under half the longest row's trace and is dropped, and the three rows left fit 3x4 well; the row is lost all
    the same, so the page is read again at the faint level too and found as drawn. (The three rows of this page fit
    3x4 at 0.72, those of the photo this was found on, /tmp/eval 10016-0005, at 0.83: the retry's threshold is set
    under 0.72 so that the fit alone does not ask for it.)"""
    import stage1_segment.layout_finder as finder

    monkeypatch.setattr(finder, "RETRY_BELOW", 0.7)
    sheet, labels = _factory_sheet("3x4+II", 0, "0001")
    sheet = sheet.copy()
    y = int(round(labels.baselines_y_px[3]))
    half = int(round(0.5 * (labels.baselines_y_px[3] - labels.baselines_y_px[2])))
    x_start = int(labels.x0_px)
    x_lo, x_hi = x_start + int(CANONICAL.s_to_px(3.0)), x_start + int(CANONICAL.s_to_px(8.5))
    band = sheet[y - half : y + half, x_lo:x_hi]
    band[band.max(axis=2) < 128] = 150
    found = find_layout(sheet)
    assert found.layout_name == "3x4+II" and found.n_rows == 4
    monkeypatch.setattr(finder, "FAINT_ROW_SHARE", 1.01)
    assert find_layout(sheet).n_rows != 4


def test_a_scans_dark_border_does_not_raise_the_bar_for_a_rows_peak():
    """Ink profile: a dark border at the sheet's top edge (1.0, where no row may stand), three rows at 0.5 and a
    rhythm strip whose baseline wanders at 0.3. A row's peak is measured against the strongest where rows stand:
    against the border, the strip (under 0.4 of it) would be dropped."""
    from stage1_segment.layout_finder import _REDUCE, EDGE_PX, ROW_STRENGTH, _find_row_peaks

    profile = np.zeros(CANONICAL.shape_hw[0] // _REDUCE)
    profile[int(EDGE_PX / _REDUCE) // 2] = 1.0
    rows = [200, 330, 460, 590]
    profile[rows] = [0.5, 0.5, 0.5, 0.3]
    assert 0.3 < ROW_STRENGTH * 1.0
    assert _find_row_peaks(profile, ROW_STRENGTH) == rows


def test_mold_spots_over_a_row_neither_stack_on_it_nor_lengthen_it():
    """Mold scatters dots and blots: a line of dots 5 mm over the bottom row, on two thirds of its columns, would
    stack over its trace like a second line of text (the row dropped), and a blot on its line past its end would
    lengthen it. Both are left out: the four rows are found with their own extents. A blot on the trace is
    bridged: the row stays one run."""
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    rows = [400.0, 650.0, 900.0, 1150.0]
    x_start, x_end = 300, 1875
    _wavy_rows(sheet, rows, x_start, x_end)
    y_dots = int(rows[-1] - 5 * MM)
    for x in range(x_start, x_end - 8, 12):  # 8 px dots 4 px apart
        sheet[y_dots - 4 : y_dots + 4, x : x + 8] = 10
    y = int(rows[-1])
    for x in (900, x_end + 4):  # 14 px blots (a wider one is paper to the ink mask): on the trace, past its end
        sheet[y - 7 : y + 7, x : x + 14] = 10
    found = find_layout(sheet)
    np.testing.assert_allclose([r.y_px for r in found.rows], rows, atol=3.0)
    for row in found.rows:
        assert len(row.panels) == 1
        np.testing.assert_allclose(row.panels[0], (x_start, x_end), atol=MM)


def test_a_first_beat_cut_from_its_row_after_the_pulse_is_not_taken_for_the_pulses_lead_out():
    """A pulse at the row's start, then the trace, whose ink the mask lost 90 px on (a grid line crossing it): the
    short run between is not flat like a lead-out (a QRS rises off the line), so the row starts at the pulse."""
    from stage1_segment.layout_finder import _REDUCE, PX_PER_MV, _measure_row, _territories, ink_masks

    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    rows = [500.0, 900.0]
    x_trace = 262
    _wavy_rows(sheet, rows, x_trace, 1875)
    top = int(round(PX_PER_MV))
    for y in map(int, rows):  # lead-in, the 1 mV box 0.2 s wide, lead-out into the trace
        sheet[y - 1 : y + 2, 200:212] = 10
        sheet[y - top : y + 2, 210:213] = 10
        sheet[y - top - 1 : y - top + 2, 210:252] = 10
        sheet[y - top : y + 2, 249:252] = 10
        sheet[y - 1 : y + 2, 249:x_trace] = 10
        sheet[y - 60 : y + 2, 318:321] = 10  # the first beat's QRS stroke
        sheet[y - 80 : y + 80, x_trace + 90 : x_trace + 98] = 255  # the stretch the mask lost
    ink, _ = ink_masks(sheet)
    ys = [y / _REDUCE for y in rows]
    for y, band in zip(ys, _territories(ys, ink.shape[0]), strict=True):
        row = _measure_row(ink, y, band)
        assert row is not None and row.pulse is not None
        assert row.runs[0][0] * _REDUCE <= x_trace + 4


@pytest.mark.parametrize(("first_lost_a_row", "faint_confidence", "taken"),
                         [(False, 0.44, "3x4+II"), (False, 0.55, "3x4"), (True, 0.44, "3x4")])
def test_a_retry_replaces_the_first_reading_only_where_surer_by_a_margin(monkeypatch, first_lost_a_row,
                                                                          faint_confidence, taken):
    """The first reading (3x4+II at 0.40, under RETRY_BELOW) is read again; a faint-ink reading of 3x4 replaces it
    where it is RETRY_MARGIN surer, or surer at all where the first reading lost a row."""
    import stage1_segment.layout_finder as finder

    def reading(name, confidence):
        return FoundLayout(name, confidence, (), {name: confidence}, 0.0, 196.85)

    first = (reading("3x4+II", 0.40), first_lost_a_row)
    retries = iter([(reading("3x4+II", 0.1), False), (reading("3x4", faint_confidence), False),
                    (reading("3x4", 0.1), False)])
    monkeypatch.setattr(finder, "ink_masks", lambda sheet, **kwargs: (None, None))
    monkeypatch.setattr(finder, "_row_profile", lambda ink: None)
    calls = iter([first])
    monkeypatch.setattr(finder, "_read", lambda *args: next(calls, None) or next(retries))
    found = find_layout(np.zeros((*CANONICAL.shape_hw, 3), np.uint8))
    assert found.layout_name == taken


def test_a_dim_page_is_read_at_the_dim_ink_level_where_nothing_else_fits():
    """A blurred photo of a screen: the traces only 18 grey levels darker than the paper, under the ink floor of
    the first readings. Where none of them finds a layout, the dim ink is read, and the page is found."""
    from stage1_segment.layout_finder import DIM_FLOOR, INK_FLOOR

    sheet, labels = _factory_sheet("3x4+II", 0, "0001")
    paper = 230.0
    dim = np.clip(paper - (255.0 - sheet.max(axis=2, keepdims=True)) * 18.0 / 225.0, 0, 255)
    dim = np.repeat(dim, 3, axis=2).astype(np.uint8)
    assert DIM_FLOOR < 18 < INK_FLOOR
    found = find_layout(dim)
    assert found.layout_name == "3x4+II" and found.n_rows == 4
    np.testing.assert_allclose([r.y_px for r in found.rows], labels.baselines_y_px, atol=1.5 * MM)


def _reading(name: str, fit: float, confidence: float, ys) -> FoundLayout:
    """A finder's reading of rows at ``ys`` (sheet px) that fits ``name`` (only) at ``fit``."""
    rows = tuple(FoundRow(float(y), (), None, None, False, ()) for y in ys)
    return FoundLayout(name, confidence, rows, {name: fit}, 0.0, 196.85)


def _found_from_readings(monkeypatch, first, lost_a_row: bool, retry: FoundLayout, others: FoundLayout) -> str:
    """The layout ``find_layout`` chooses where the first reading is ``first``, the weak peaks' retry ``retry`` and
    every faint and dim reading ``others``."""
    import stage1_segment.layout_finder as finder

    readings = iter([(first, lost_a_row), (retry, False)] + [(others, False)] * 4)
    monkeypatch.setattr(finder, "ink_masks", lambda sheet, **kwargs: (None, None))
    monkeypatch.setattr(finder, "_row_profile", lambda ink: None)
    monkeypatch.setattr(finder, "_read", lambda *args: next(readings))
    return find_layout(np.zeros((*CANONICAL.shape_hw, 3), np.uint8)).layout_name


@pytest.mark.parametrize(("weak_ys", "weak_fit", "taken"),
                         [((130, 300, 470, 640, 810, 980), 1.0, "6x2"),  # adds the top row, fits better
                          ((130, 300, 470, 640, 810, 980), 0.7, "3x4+II,V1"),  # adds it, fits worse
                          ((130, 220, 390, 560, 730, 900), 1.0, "3x4+II,V1")])  # moves the rows: not the same rows
def test_a_retry_that_adds_rows_is_taken_where_its_layout_fits_better(monkeypatch, weak_ys, weak_fit, taken):
    """A 6x2 page whose flat top row only the weak peaks hold: its other five rows fit 3x4+II,V1 at 0.73 (surer
    than the six rows, whose 6x2 ties with 3x4+II,V1,V5 in geometry), its six rows 6x2 at 1.0. The reading
    that keeps the first's rows and adds one is taken where its layout fits better, and the faint ink's five rows
    do not take it back."""
    five = _reading("3x4+II,V1", 0.73, 0.733, (300, 470, 640, 810, 980))
    assert _found_from_readings(monkeypatch, five, False, _reading("6x2", weak_fit, 0.625, weak_ys), five) == taken


@pytest.mark.parametrize(("weak_fit", "taken"), [(0.76, "3x4+II,V1,V5"), (0.6, "3x4+II,V1")])
def test_a_row_missed_in_a_wide_gap_is_taken_from_the_retry_that_finds_it(monkeypatch, weak_fit, taken):
    """A real 3x4 page with three strips whose wandering third row only the weak peaks hold: its five other rows,
    with a gap twice their pitch where the third row is, fit 3x4+II,V1 at 0.9 (no retry for the fit alone). The gap
    asks for a retry, and the six rows that fill it are taken where their layout fits at least RETRY_BELOW."""
    five = _reading("3x4+II,V1", 0.9, 0.9, (361, 533, 933, 1173, 1311))
    six = _reading("3x4+II,V1,V5", weak_fit, weak_fit, (361, 533, 785, 933, 1173, 1311))
    assert _found_from_readings(monkeypatch, five, False, six, five) == taken


@pytest.mark.parametrize(("weak_fit", "taken"), [(0.92, "3x4+II,V1,V5"), (0.95, "3x4+II")])
def test_a_retry_that_drops_rows_fitting_as_well_is_not_taken(monkeypatch, weak_fit, taken):
    """A 3x4 page with three strips 110 px apart (their pitch set by the signal): its six rows fit 3x4+II,V1,V5 at
    0.92 but only at confidence 0.72 (6x2 competes with six rows), the weak peaks' four of them 3x4+II at 0.92 and
    confidence 0.92. The rows dropped fit a layout as well with the others: the six rows stay, unless the four fit
    better."""
    four = (410, 614, 770, 928)
    six = _reading("3x4+II,V1,V5", 0.92, 0.722, (*four, 1122, 1234))
    weak = _reading("3x4+II", weak_fit, 0.917, four)
    assert _found_from_readings(monkeypatch, six, True, weak, weak) == taken


def test_a_top_row_of_nameless_text_over_named_rows_is_the_header():
    """The header's long lines can pass for a row of trace; the lead names tell: a top row without a pulse whose
    every panel reads as no name, over rows each reading a lead's name more likely than not (one surely), is the
    header. A top row with a pulse, or a page whose rows are all nameless, keeps its top row."""
    from stage1_segment.layout_finder import FoundRow, _header_on_top

    def row(y, names, pulse=False):
        return FoundRow(y, ((100.0, 2000.0),), None, (46.0, y - 78.0, 86.0, y) if pulse else None, False,
                        ((100.0, 2000.0),), tuple(names))

    header = row(104.0, [("none", 0.92), ("none", 0.93), ("none", 0.87), ("none", 0.95)])
    chart = [row(471.0, [("I", 1.0), ("aVR", 0.98), ("V1", 0.99), ("V4", 0.99)]),
             row(762.0, [("II", 0.94), ("aVL", 0.99), ("V2", 1.0), ("V5", 0.97)]),
             row(1051.0, [("III", 0.96)]), row(1341.0, [("II", 0.71)])]

    def page(rows):
        return FoundLayout("3x4+II,V1", 0.36, tuple(rows), {}, 100.0, CANONICAL.px_per_s)

    assert _header_on_top(page([header, *chart]))
    assert not _header_on_top(page([dataclasses.replace(header, pulse=(46.0, 26.0, 86.0, 104.0)), *chart]))
    assert not _header_on_top(page([header, *chart[:3], row(1341.0, [("none", 0.9)])]))  # a row named by none
    assert not _header_on_top(page([row(104.0, [("I", 0.6)] + [("none", 0.9)] * 3), *chart]))  # a name on top
    assert not _header_on_top(page(chart))  # the chart's own top row is named


def test_ink_under_a_shadow_is_ink_as_in_the_light():
    """A photo's shadow dims the left half of the page to 40 %: its traces there are as dark against their paper as
    the others, in proportion, and stay ink at the trace's level (darkness measured as a difference, the shadowed
    half fell under half the page's darkest ink and none of it was ink; a real photo lost the shadowed half of every
    row and no layout fitted them)."""
    from stage1_segment.layout_finder import ink_masks

    sheet, _ = _factory_sheet("3x4+II", 0, "0001")
    half = CANONICAL.width_px // 2
    shaded = sheet.copy()
    shaded[:, :half] = (shaded[:, :half] * 0.4).astype(np.uint8)
    lit = ink_masks(sheet)[0][:, : half // 2].astype(bool)
    dimmed = ink_masks(shaded)[0][:, : half // 2].astype(bool)
    assert lit.sum() > 5000
    assert (lit & dimmed).sum() >= 0.95 * lit.sum()
    assert (dimmed & ~lit).sum() <= 0.02 * lit.sum()


def test_the_ink_of_a_sheet_turned_half_a_turn_is_the_same_ink_turned():
    """The ink level is read from every pixel: a thin, blurred trace's darkest 0.2 % read from every second pixel
    depended on which pixels were taken, and the same sheet turned half a turn showed half its ink."""
    from stage1_segment.layout_finder import ink_masks

    sheet, _ = _factory_sheet("3x4+II", 0, "0001")
    blurred = cv2.GaussianBlur(sheet, (0, 0), 1.5)
    turned = np.ascontiguousarray(blurred[::-1, ::-1])
    for faint in (False, True):
        ink, _ = ink_masks(blurred, faint_ink=faint)
        ink_turned, _ = ink_masks(turned, faint_ink=faint)
        np.testing.assert_array_equal(ink, ink_turned[::-1, ::-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uint8_percentiles_are_numpys(seed):
    from stage1_segment.layout_finder import _uint8_percentiles

    rng = np.random.default_rng(seed)
    a = (rng.gamma(1.0 + seed, 6.0, (317, 211))).clip(0, 255).astype(np.uint8)
    qs = (0.5, 50.0, 95.0, 99.8, 100.0)
    np.testing.assert_allclose(_uint8_percentiles(a, qs), np.percentile(a, qs), atol=1e-9)
