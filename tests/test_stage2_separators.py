"""Panel separators found on the sheet, and the rows timed by them."""

import dataclasses

import cv2
import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from stage2_signal.calibrate import CalibrateConfig, read_panels
from stage2_signal.extract import read_rows
from stage2_signal.oracle import oracle_maps
from stage2_signal.separators import find_bars
from synth.render import render_page, sample_style
from synth.signals import prepare, simulate_record

H, W = CANONICAL.shape_hw
BASE_Y = 500.0
SHIFT = 8  # fixed-point bits for sub-pixel drawing


def _sheet_with_grid() -> np.ndarray:
    """Paper with dark grey vertical grid lines every 1 mm (darker every 5 mm) and a wavy trace along BASE_Y."""
    sheet = np.full((H, W, 3), 245, np.uint8)
    for k, x in enumerate(np.arange(3.0, W - 1, CANONICAL.px_per_mm)):
        grey = 120 if k % 5 == 0 else 190
        sheet[:, int(round(x))] = grey
    xs = np.arange(0, W, 2.0)
    ys = BASE_Y + 6.0 * np.sin(xs / 37.0)
    pts = np.round(np.stack([xs, ys], axis=1) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(sheet, [pts], False, (20, 20, 20), 3, cv2.LINE_AA, SHIFT)
    return sheet


def _bar(sheet: np.ndarray, x: float, half_px: float, width: int = 2) -> None:
    pts = np.round(np.array([[x, BASE_Y - half_px], [x, BASE_Y + half_px]]) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(sheet, [pts], False, (20, 20, 20), width, cv2.LINE_AA, SHIFT)


@pytest.mark.parametrize("x_bar", [600.0, 600.3, 600.5, 600.77])
def test_a_bar_is_found_to_a_tenth_of_a_pixel_among_grid_lines(x_bar):
    sheet = _sheet_with_grid()
    _bar(sheet, x_bar, half_px=25.0)
    found = find_bars(sheet, np.array([x_bar + 4.0]), np.array([BASE_Y]), half_band_px=14.0, search_px=10.0)
    assert found[0] == pytest.approx(x_bar, abs=0.1)


def test_grid_lines_and_the_trace_alone_are_no_bar():
    sheet = _sheet_with_grid()
    expected = np.arange(300.0, 2000.0, 97.3)  # boundaries at every phase against the grid
    found = find_bars(sheet, expected, np.full(expected.size, BASE_Y), half_band_px=14.0, search_px=10.0)
    assert np.isnan(found).all(), found[np.isfinite(found)]


def test_a_leaning_stroke_is_no_bar():
    """A steep QRS stroke crossing the band (3 px across its height of 60 px) is ink-dark all across the band,
    but its centre moves along the band's rows: not a separator."""
    sheet = _sheet_with_grid()
    pts = np.round(np.array([[600.0, BASE_Y - 30.0], [603.0, BASE_Y + 30.0]]) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(sheet, [pts], False, (20, 20, 20), 3, cv2.LINE_AA, SHIFT)
    _bar(sheet, 1200.0, half_px=30.0, width=3)
    found = find_bars(sheet, np.array([601.5, 1200.0]), np.full(2, BASE_Y), half_band_px=14.0, search_px=10.0)
    assert np.isnan(found[0]) and found[1] == pytest.approx(1200.0, abs=0.1)


def test_a_bar_beyond_the_search_window_or_too_short_is_not_taken():
    sheet = _sheet_with_grid()
    _bar(sheet, 640.0, half_px=25.0)
    _bar(sheet, 1200.0, half_px=6.0)  # a tick shorter than the band (a label's stroke, a spike's foot)
    found = find_bars(sheet, np.array([600.0, 1200.0]), np.full(2, BASE_Y), half_band_px=14.0, search_px=10.0)
    assert np.isnan(found).all()


def _page(separators: bool, fs_hz: float = 500.0, seed: int = 5):
    """A clean 3x4+II page with calibration pulses (so the rows are timed by their ends alone)."""
    rng = np.random.default_rng(seed)
    record = simulate_record(rng, fs_hz=500.0, record_id="sep")
    style = dataclasses.replace(sample_style(rng, "3x4+II"), separators=separators, calibration_pulse=True,
                                trace_width_px=3)
    signals = prepare(record, fs_hz).leads_mv
    page = render_page(signals, fs_hz, "sep", style, np.random.default_rng(0))
    maps = oracle_maps(page.labels, scale_x=1.0, scale_y=0.5, include_pulse=True)
    return page, read_rows(maps), get_layout(page.labels.layout_name)


def test_separators_time_the_rows():
    page, traces, layout = _page(separators=True)
    labels = page.labels
    _, ends = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, CalibrateConfig())
    _, bars = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, CalibrateConfig(),
                          sheet_rgb=page.sheet_rgb)
    assert set(ends["x0_how"]) != {"separators"}
    assert set(bars["x0_how"]) == {"separators"} and 6 <= bars["separator_bars"] <= 9
    assert np.abs(np.asarray(bars["x0_px"]) - labels.x0_px).max() < 0.15
    assert bars["time_scale"] == 1.0
    # switched off in the settings, the sheet is not looked at
    _, off = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, CalibrateConfig(separators=False),
                         sheet_rgb=page.sheet_rgb)
    assert off["x0_px"] == ends["x0_px"]


def test_without_separators_the_ends_keep_timing_the_rows():
    page, traces, layout = _page(separators=False)
    labels = page.labels
    _, ends = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm)
    _, info = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, sheet_rgb=page.sheet_rgb)
    assert info["x0_px"] == ends["x0_px"] and info["separator_bars"] == 0


def test_separators_correct_a_time_scale_that_is_off():
    """px/mm measured 0.25 % too high (a page without a grid, scaled by its pulses): the ends alone put the
    origin ~5 px off; the bars, which drift along the row by the same fraction, give both back."""
    page, traces, layout = _page(separators=True, fs_hz=250.0)
    labels = page.labels
    ppmm = CANONICAL.px_per_mm * 1.0025
    _, ends = read_panels(traces, layout, labels.fs_hz, ppmm)
    readings, bars = read_panels(traces, layout, labels.fs_hz, ppmm, sheet_rgb=page.sheet_rgb)
    assert np.abs(np.asarray(ends["x0_px"]) - labels.x0_px).max() > 2.0
    assert np.abs(np.asarray(bars["x0_px"]) - labels.x0_px).max() < 0.3
    assert bars["time_scale"] == pytest.approx(1 / 1.0025, abs=2e-4)
    # the samples are read where the renderer drew them: lead V6 (row 2, last panel) sits ~1,900 px along
    v6 = next(r for r in readings if r.panel.lead == "V6")
    drawn = labels.signals_mv[LEADS.index("V6"), v6.i0 : v6.i1].astype(np.float64)
    err = (v6.mv - np.mean(v6.mv)) - (drawn - np.mean(drawn))
    assert np.sqrt(np.mean(err**2)) < 0.15 * np.std(drawn)


@pytest.mark.parametrize("off", [1.025, 0.965])
def test_a_chart_scale_off_by_percents_is_read_at_the_scale_the_bars_confirm(off):
    """px/mm 2.5 % too high or 3.5 % too low (a scan without a grid, scaled by its calibration pulses): the bars stand
    12-70 px from where the sheet's 25 mm/s puts them, beyond the search, so none is found there; the rows' own
    lengths give the speed to look at, and the bars found there time the rows."""
    page, traces, layout = _page(separators=True, fs_hz=250.0)
    labels = page.labels
    ppmm = CANONICAL.px_per_mm * off
    readings, info = read_panels(traces, layout, labels.fs_hz, ppmm, sheet_rgb=page.sheet_rgb)
    assert set(info["x0_how"]) == {"separators"} and info["separator_bars"] >= 6
    assert info["time_scale"] == pytest.approx(1 / off, abs=3e-4)
    assert np.abs(np.asarray(info["x0_px"]) - labels.x0_px).max() < 0.5
    v6 = next(r for r in readings if r.panel.lead == "V6")
    drawn = labels.signals_mv[LEADS.index("V6"), v6.i0 : v6.i1].astype(np.float64)
    err = (v6.mv - np.mean(v6.mv)) - (drawn - np.mean(drawn))
    assert np.sqrt(np.mean(err**2)) < 0.15 * np.std(drawn)
    # switched off (no speed but the sheet's is tried), the bars are not found and the ends time the rows
    _, fixed = read_panels(traces, layout, labels.fs_hz, ppmm, CalibrateConfig(chart_scale_max=0.0),
                           sheet_rgb=page.sheet_rgb)
    assert fixed["separator_bars"] == 0 and fixed["time_scale"] == 1.0


def test_bars_that_move_from_row_to_row_time_each_row():
    """A sheet sheared a fifth of a degree (a scan turned more than its pulses said): each row's bars stand ~0.8 px
    further right than the row above's, so no one line holds half of them; a line along the rows that moves by a
    fixed amount per px down the sheet holds them all, and times each row by its own bars."""
    page, traces, layout = _page(separators=True)
    labels = page.labels
    shear, centre_y = 0.004, H / 2  # px along x per px down the sheet
    sheared = cv2.warpAffine(page.sheet_rgb, np.array([[1.0, shear, -shear * centre_y], [0.0, 1.0, 0.0]]), (W, H),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    _, info = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, sheet_rgb=sheared)
    assert set(info["x0_how"]) == {"separators"} and info["separator_bars"] >= 8
    moved = labels.x0_px + shear * (np.asarray(labels.baselines_y_px) - centre_y)
    assert np.ptp(moved) > 2.0  # the rows' origins ~0.8 px apart from row to row
    assert np.abs(np.asarray(info["x0_px"]) - moved).max() < 0.3
    assert info["time_scale"] == 1.0


def test_dark_grid_lines_that_lean_are_no_bars():
    """A photo's grid, not quite upright after rectification: dark major lines every 5 mm that lean by 3 px over
    the sheet's height, so no column is dark all the way down; the lines are not taken for bars."""
    sheet = np.full((H, W, 3), 200, np.uint8)
    big = 5 * CANONICAL.px_per_mm
    for x in np.arange(5.0, W - 10, big):
        pts = np.round(np.array([[x, 0.0], [x + 3.0, H - 1.0]]) * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(sheet, [pts], False, (30, 30, 30), 2, cv2.LINE_AA, SHIFT)
    xs = np.arange(0, W, 2.0)
    pts = np.round(np.stack([xs, BASE_Y + 6.0 * np.sin(xs / 37.0)], axis=1) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(sheet, [pts], False, (20, 20, 20), 3, cv2.LINE_AA, SHIFT)
    expected = np.arange(300.0, 2000.0, 97.3)
    pitches = (CANONICAL.px_per_mm, big)
    found = find_bars(sheet, expected, np.full(expected.size, BASE_Y), 14.0, 10.0, pitches)
    assert np.isnan(found).all(), found[np.isfinite(found)]
    # a real bar between those lines is still found
    _bar(sheet, 1001.3, half_px=25.0)
    found = find_bars(sheet, np.array([1000.0]), np.array([BASE_Y]), 14.0, 10.0, pitches)
    assert found[0] == pytest.approx(1001.3, abs=0.15)
    # and without the grid pitches the leaning lines would pass for bars
    unguarded = find_bars(sheet, expected, np.full(expected.size, BASE_Y), 14.0, 10.0)
    assert np.isfinite(unguarded).sum() >= 5


def test_samples_under_a_bar_hold_the_nearest_value_beyond_it():
    """The trace under a bar is hidden by the bar's ink (the maps follow the bar): those samples take the value of
    the nearest sample beyond the bar, at a lowered confidence; the others are left alone."""
    from stage2_signal.calibrate import _guard_bars

    xs = np.arange(100.0, 120.0)  # one sample per px, a bar 6 px wide centred at 101
    mv = np.linspace(0.0, 1.9, xs.size)
    mv[:5] = -0.5  # the maps ran down the bar
    conf = np.ones(xs.size)
    cfg = CalibrateConfig(bar_guard=True, bar_guard_px=1.0)
    _guard_bars(mv, conf, xs, [(101.0, 6.0)], cfg)
    hidden = np.abs(xs - 101.0) <= 4.0
    assert np.allclose(mv[hidden], mv[np.flatnonzero(~hidden)[0]])
    assert np.allclose(conf[hidden], cfg.bar_guard_conf) and np.allclose(conf[~hidden], 1.0)
    assert np.allclose(mv[~hidden], np.linspace(0.0, 1.9, xs.size)[~hidden])


def test_bold_bars_are_found_and_guarded_on_a_page():
    """ECG-Image-Kit's bars (3x the trace's width, +-0.315 mV) at all nine lead changes of a 3x4 + II page."""
    from synth.render import eik_look_of

    rng = np.random.default_rng(5)
    record = simulate_record(rng, fs_hz=500.0, record_id="sep")
    style = eik_look_of(dataclasses.replace(sample_style(rng, "3x4+II"), trace_width_px=2), np.random.default_rng(2))
    page = render_page(prepare(record, 500.0).leads_mv, 500.0, "sep", style, np.random.default_rng(0))
    traces = read_rows(oracle_maps(page.labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    layout = get_layout(page.labels.layout_name)
    cfg = CalibrateConfig(bar_guard=True)
    _, info = read_panels(traces, layout, 500.0, CANONICAL.px_per_mm, cfg, sheet_rgb=page.sheet_rgb)
    assert info["guarded_bars"] == 9
    _, off = read_panels(traces, layout, 500.0, CANONICAL.px_per_mm, CalibrateConfig(bar_guard=False),
                         sheet_rgb=page.sheet_rgb)
    assert off["guarded_bars"] == 0


def _pulse_page(fs_hz: float, pulse_style: str, pulse: bool = True):
    from synth.render import eik_look_of

    rng = np.random.default_rng(11)
    record = simulate_record(rng, fs_hz=fs_hz, record_id="pulse")
    style = eik_look_of(sample_style(rng, "3x4+II"), np.random.default_rng(4))
    style = dataclasses.replace(style, calibration_pulse=pulse, pulse_style=pulse_style, trace_width_px=2)
    return render_page(prepare(record, fs_hz).leads_mv, fs_hz, "pulse", style, np.random.default_rng(0))


@pytest.mark.parametrize("fs_hz", [250.0, 500.0])
def test_a_pulse_falling_onto_the_rows_first_samples_is_guarded(fs_hz):
    """ECG-Image-Kit's pulse falls back to 0 mV one to two samples into the row (maps that follow its edge read the
    row's first samples on it): each row's guarded span ends at the drawn edge's centre, and only with the guard on."""
    from stage2_signal.calibrate import pulse_edges, sheet_geometry

    page = _pulse_page(fs_hz, "abut")
    traces = read_rows(oracle_maps(page.labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    layout = get_layout(page.labels.layout_name)
    x0 = np.full(layout.n_rows, page.labels.x0_px)
    for on in (False, True):
        _, info = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, CalibrateConfig(pulse_guard=on),
                              x0_px=x0, sheet_rgb=page.sheet_rgb)
        assert info["guarded_pulses"] == (layout.n_rows if on else 0)
    readings, _ = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, CalibrateConfig(), x0_px=x0)
    spans = pulse_edges(page.sheet_rgb, readings, x0, sheet_geometry(CANONICAL.px_per_mm), CalibrateConfig())
    edge_x = page.labels.x0_px + 1.5 * CANONICAL.s_to_px(1.0 / fs_hz)  # from one sample in at the top to two
    assert sorted(spans) == [(row, 0) for row in range(layout.n_rows)]
    for centre, width in spans.values():
        assert centre + 0.5 * width - CalibrateConfig().pulse_guard_px == pytest.approx(edge_x, abs=0.75)


@pytest.mark.parametrize(("pulse_style", "pulse"), [("lead_in", True), ("abut", False)])
def test_a_pulse_with_a_foot_of_its_own_or_none_is_not_guarded(pulse_style, pulse):
    page = _pulse_page(500.0, pulse_style, pulse)
    traces = read_rows(oracle_maps(page.labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    layout = get_layout(page.labels.layout_name)
    _, info = read_panels(traces, layout, 500.0, CANONICAL.px_per_mm, CalibrateConfig(pulse_guard=True),
                          sheet_rgb=page.sheet_rgb)
    assert info["guarded_pulses"] == 0


def _snapped(centres: list) -> dict:
    return {(k // 3, 1 + k % 3): (float(c), 6.0) for k, c in enumerate(centres)}


def test_bars_on_one_pixel_phase_count_as_snapped():
    from stage2_signal.calibrate import bars_snapped

    cfg = CalibrateConfig()
    spacing = 2.5 * 25 * CANONICAL.px_per_mm  # 2.5 s at 25 mm/s: not a whole number of px
    drawn = [609.74 + k * spacing for k in range(3)] * 3  # where they fall: phases 0.74, 0.86, 0.99
    assert not bars_snapped(_snapped(drawn), cfg)
    assert bars_snapped(_snapped([np.floor(x + 0.5) + 0.5 for x in drawn]), cfg)  # matplotlib's rounding
    assert bars_snapped(_snapped([100.98, 600.02, 1100.0]), cfg)  # one phase across the integer
    assert not bars_snapped(_snapped([100.5, 600.5]), cfg)  # too few to tell


@pytest.mark.parametrize(("fs_hz", "offset_px"), [(250.0, 0.3), (250.0, -0.35), (256.0, 0.2)])
def test_the_trace_corners_give_the_sub_sample_phase(fs_hz, offset_px):
    """Read with the origin off by a fraction of a sample, the readings' total variation peaks where the samples
    sit on the polyline's corners: the shift found brings the origin back to within a tenth of a px (modulo one
    sample, which the metric forgives)."""
    from stage2_signal.calibrate import vertex_phase_shift

    page, traces, layout = _page(separators=False, fs_hz=fs_hz)
    x0 = np.full(layout.n_rows, page.labels.x0_px + offset_px)
    shift = vertex_phase_shift(traces, layout, fs_hz, CANONICAL, CalibrateConfig(), x0, 1.0, {})
    step_px = CANONICAL.px_per_s / fs_hz
    err = (offset_px + shift + 0.5 * step_px) % step_px - 0.5 * step_px
    assert abs(shift) <= 0.5 * step_px and abs(err) < 0.1, (shift, err)


@pytest.mark.parametrize("fs_hz", [250.0, 500.0])
def test_snapped_bars_leave_the_sub_sample_phase_to_the_trace_corners(fs_hz):
    """Bars drawn with their edges on the pixel lattice (ECG-Image-Kit's) are off by up to half a px, half a
    sample at 250 Hz; there the trace's corners place the origin. At 500 Hz a sample is 0.39 px wide, its
    corners blur under the stroke, and the bars' timing stands."""
    page, traces, layout = _page(separators=False, fs_hz=fs_hz)
    labels = page.labels
    sheet = page.sheet_rgb.copy()
    sheet[sheet.min(axis=2) > 100] = 255  # no grid: a grid line beside a bar moves its centre by up to 0.2 px
    half_px = CANONICAL.mv_to_px(0.4)
    for p in layout.panels:
        if p.col > 0:  # 5 px wide, edges on the pixel lattice: centred on the whole px below the boundary
            left = int(np.floor(labels.x0_px + CANONICAL.s_to_px(p.x_offset_s))) - 2
            y = int(round(labels.baselines_y_px[p.row]))
            sheet[int(y - half_px): int(y + half_px), left: left + 5] = 0
    step_px = CANONICAL.px_per_s / fs_hz

    def read(cfg):
        _, info = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, cfg, sheet_rgb=sheet)
        assert info["x0_how"] == ["separators"] * layout.n_rows
        err = np.asarray(info["x0_px"]) - labels.x0_px
        return np.abs((err + 0.5 * step_px) % step_px - 0.5 * step_px).max(), info["vertex_phase_px"]

    bars_alone, _ = read(CalibrateConfig(vertex_phase=False))
    phase_err, shift = read(CalibrateConfig())
    if fs_hz == 250.0:
        assert bars_alone > 0.15 and phase_err < 0.1 and shift != 0.0, (bars_alone, phase_err, shift)
    else:
        assert shift == 0.0 and phase_err == bars_alone


def test_big_box_lines_are_ruled_from_the_paper_edge():
    pitch = CANONICAL.big_box_mm * CANONICAL.px_per_mm
    assert CANONICAL.big_box_line_x_px(117.3) == pytest.approx(3 * pitch - 0.5)  # ECG-Image-Kit's origin, pulse
    np.testing.assert_allclose(CANONICAL.big_box_line_x_px([78.0, 10.0]), [2 * pitch - 0.5, -0.5])


def test_bars_snapped_to_the_lattice_are_crisp_anti_aliased_ones_not():
    from stage2_signal.separators import bar_is_crisp

    sheet = np.full((H, W, 3), 245, np.uint8)
    sheet[int(BASE_Y) - 30: int(BASE_Y) + 30, 600:606] = 20  # six whole columns
    assert bar_is_crisp(sheet, 602.5, 6.0, BASE_Y, 14.0)
    for x in (1000.3, 1400.5, 1800.77):
        _bar(sheet, x, half_px=30.0, width=2)
        assert not bar_is_crisp(sheet, x, 3.0, BASE_Y, 14.0)


def _grid_origin_page(fs_hz: float, origin_off_grid_px: float):
    """A 3x4 + II page whose chart origin lies ``origin_off_grid_px`` right of a big-box line."""
    from common.layouts import default_placement

    rng = np.random.default_rng(5)
    record = simulate_record(rng, fs_hz=500.0, record_id="grid")
    base_x0 = default_placement(get_layout("3x4+II")).x0_px
    line = float(CANONICAL.big_box_line_x_px(base_x0 + 30.0))
    style = dataclasses.replace(sample_style(rng, "3x4+II"), separators=False, calibration_pulse=True,
                                trace_width_px=3, x0_shift_px=line + origin_off_grid_px - base_x0)
    page = render_page(prepare(record, fs_hz).leads_mv, fs_hz, "grid", style, np.random.default_rng(0))
    traces = read_rows(oracle_maps(page.labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    sheet = page.sheet_rgb.copy()
    sheet[sheet.min(axis=2) > 100] = 255
    return page, traces, get_layout(page.labels.layout_name), sheet


@pytest.mark.parametrize("fs_hz", [250.0, 500.0])
def test_crisp_bars_put_an_origin_near_a_big_box_line_on_it(fs_hz):
    """ECG-Image-Kit's rows start on a big-box line and its bars, snapped, give the origin only to +-0.5 px: with
    crisp bars the origin goes onto the line; with anti-aliased bars (drawn where they fall) it stays theirs."""
    page, traces, layout, sheet = _grid_origin_page(fs_hz, 0.0)
    labels = page.labels
    half_px = CANONICAL.mv_to_px(0.4)
    snapped = sheet.copy()
    for p in layout.panels:
        if p.col > 0:
            x = labels.x0_px + CANONICAL.s_to_px(p.x_offset_s)
            y = int(round(labels.baselines_y_px[p.row]))
            left = int(np.floor(x)) - 2  # 6 whole columns centred on the boundary's pixel's right edge (as
            snapped[int(y - half_px): int(y + half_px), left: left + 6] = 0  # ECG-Image-Kit's): off by <= 0.5 px
    cfg = CalibrateConfig(grid_origin_tol_px=0.6)
    _, info = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, cfg, sheet_rgb=snapped)
    assert info["x0_how"] == ["separators"] * layout.n_rows and all(info["origin_on_grid"])
    np.testing.assert_allclose(info["x0_px"], labels.x0_px, atol=1e-6)
    _, off = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, CalibrateConfig(grid_origin_tol_px=0.0),
                         sheet_rgb=snapped)
    assert not any(off["origin_on_grid"])  # 0: off

    page, traces, layout, sheet = _grid_origin_page(fs_hz, 0.3)  # another renderer's origin, near a line
    labels = page.labels
    for p in layout.panels:
        if p.col > 0:
            y = labels.baselines_y_px[p.row]
            x = labels.x0_px + CANONICAL.s_to_px(p.x_offset_s)
            pts = np.round(np.array([[x, y - half_px], [x, y + half_px]]) * (1 << SHIFT)).astype(np.int32)
            cv2.polylines(sheet, [pts], False, (20, 20, 20), 2, cv2.LINE_AA, SHIFT)
    _, info = read_panels(traces, layout, fs_hz, CANONICAL.px_per_mm, cfg, sheet_rgb=sheet)
    assert info["x0_how"] == ["separators"] * layout.n_rows and not any(info["origin_on_grid"])
    assert np.abs(np.asarray(info["x0_px"]) - labels.x0_px).max() < 0.15
