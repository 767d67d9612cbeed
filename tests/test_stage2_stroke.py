"""Stroke width measured on the sheet, and its use for the chart's time origin."""

import json

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import get_layout
from stage2_signal.calibrate import CalibrateConfig, estimate_x0, sheet_geometry
from stage2_signal.extract import ExtractConfig, read_row, read_rows
from stage2_signal.oracle import oracle_maps
from stage2_signal.stroke import stroke_width_px
from tests.test_stage2_extract import clean_500, labels_for  # noqa: F401 - clean_500 is a fixture

H, W = CANONICAL.shape_hw


def _wavy_trace(width_px: int):
    """A sheet with one dark slowly wavy trace exactly ``width_px`` px tall in every column, and that row's
    reading from a map peaked on it."""
    sheet = np.full((H, W, 3), 250, np.uint8)
    xs = np.arange(100, 2000)
    top = np.round(400 + 20 * np.sin(xs / 200)).astype(np.int64)
    rows = top[:, None] + np.arange(width_px)[None, :]
    sheet[rows, xs[:, None]] = 20
    centre = top + 0.5 * (width_px - 1)
    sheet_y = np.arange(0, H, 2, dtype=np.float64) + 0.5
    sheet_x = np.arange(W, dtype=np.float64)
    y_at = np.interp(sheet_x, xs, centre, left=-1e6, right=-1e6)
    m = np.exp(-0.5 * ((sheet_y[:, None] - y_at[None, :]) / 1.5) ** 2) + 1e-6
    m /= m.sum(axis=0, keepdims=True)
    return sheet, read_row(m.astype(np.float32), sheet_x, sheet_y, ExtractConfig())


@pytest.mark.parametrize("width_px", [1, 2, 3, 5])
def test_stroke_width_is_the_drawn_width(width_px):
    sheet, trace = _wavy_trace(width_px)
    assert stroke_width_px(sheet, [trace]) == pytest.approx(width_px, abs=0.25)


def test_stroke_width_needs_ink():
    sheet, trace = _wavy_trace(3)
    assert stroke_width_px(np.full_like(sheet, 250), [trace]) is None


@pytest.mark.parametrize("stroke_px", [2.0, 6.0])
def test_measured_stroke_moves_an_end_decided_origin_back_by_the_cap(stroke_px):
    labels = labels_for(500, index=2)  # printed with calibration pulses: every row's origin comes from its end
    traces = read_rows(oracle_maps(labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    cfg = CalibrateConfig()
    geom = sheet_geometry(CANONICAL.px_per_mm)
    layout = get_layout(labels.layout_name)
    plain, how = estimate_x0(traces, layout, labels.fs_hz, geom, cfg)
    inset, how_inset = estimate_x0(traces, layout, labels.fs_hz, geom, cfg, stroke_px)
    assert set(how) == set(how_inset) == {"end"}
    np.testing.assert_allclose(inset, plain - cfg.stroke_inset * stroke_px, atol=1e-9)


def test_stage2_cli_measures_the_stroke_on_saved_rectified_sheets(tmp_path):
    from common.sheet_map import SheetMap
    from common.types import Rectified
    from stage2_signal.run import main
    from synth.factory import make_page
    from synth.signals import simulate_record

    page = make_page(simulate_record(np.random.default_rng(4), fs_hz=500.0, record_id="sim4"), 4, 11, [],
                     layouts=["3x4+II"], fs_choices=[500])
    labels = page.labels
    Rectified("sim4-0001", page.sheet_rgb, SheetMap.identity(), CANONICAL.px_per_mm, "exact", 1.0).save(
        tmp_path / "rect" / "sim4-0001")
    oracle_maps(labels, scale_x=1.0, scale_y=0.5, image_id="sim4-0001").save(tmp_path / "maps" / "sim4-0001")
    args = ["--maps", str(tmp_path / "maps"), "--fs", "500"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "with"), "--rectified", str(tmp_path / "rect")]) == 0
    plain = json.loads((tmp_path / "plain" / "sim4-0001.stage2.json").read_text())
    measured = json.loads((tmp_path / "with" / "sim4-0001.stage2.json").read_text())
    assert plain["stroke_px"] is None
    # the drawn line (anti-aliased, thickness trace_width_px in OpenCV terms) measures wider than its nominal width
    assert labels.trace_width_px <= measured["stroke_px"] <= 3 * labels.trace_width_px + 1


def test_read_panels_takes_a_given_origin(clean_500):  # noqa: F811
    from stage2_signal.calibrate import read_panels

    labels, maps, _, _ = clean_500
    traces = read_rows(maps)
    layout = get_layout(labels.layout_name)
    given = np.full(layout.n_rows, labels.x0_px + 7.0)
    _, info = read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, x0_px=given)
    assert info["x0_px"] == given.tolist() and set(info["x0_how"]) == {"given"}
    with pytest.raises(ValueError, match="one origin per row"):
        read_panels(traces, layout, labels.fs_hz, CANONICAL.px_per_mm, x0_px=given[:2])


def _origins_with_rows_run_on(stops_px: dict) -> tuple[np.ndarray, list, np.ndarray, list]:
    """Origins of a page printed with pulses (every row's start and end disagree: the end is taken), clean and with
    ink running on from the ends of the rows in ``stops_px`` (row -> sheet x where the run stops):
    ``(x0_clean, how_clean, x0_smeared, how_smeared)``."""
    from dataclasses import replace

    labels = labels_for(500, index=2)
    traces = read_rows(oracle_maps(labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    cfg = CalibrateConfig()
    geom = sheet_geometry(CANONICAL.px_per_mm)
    layout = get_layout(labels.layout_name)
    smeared = list(traces)
    for row, stop_px in stops_px.items():
        t = traces[row]
        run_on = (t.x > t.x[t.conf >= t.cfg.min_confidence].max()) & (t.x < stop_px)
        smeared[row] = replace(t, conf=np.where(run_on, float(np.median(t.conf[t.conf > 0])), t.conf),
                               presence=np.where(run_on, 1.0, t.presence))
    return (*estimate_x0(traces, layout, labels.fs_hz, geom, cfg),
            *estimate_x0(smeared, layout, labels.fs_hz, geom, cfg))


def test_origin_follows_the_rows_that_agree_when_two_rows_run_on_to_the_page_edge():
    """Ink running on from two rows' ends to the sheet's edge (a stain, a dark border) must not drag the shared
    origin halfway to their ends."""
    clean, how_clean, x0, how = _origins_with_rows_run_on({1: W, 3: W - 40})  # a stained photo: to 2195 / 2174 px
    assert set(how_clean) == {"end"}
    assert how[0] == how[2] == "end", how
    np.testing.assert_allclose(x0, clean, atol=0.5)


def test_origin_follows_the_rows_starts_when_half_the_rows_run_on_alike():
    """Two of four rows run on to the sheet's edge alike (mold at a scan's right edge): the rows' end picks form two
    groups of two. The starts (pulse and trace, a pulse's width early) side with the true group; the median of all
    four picks lay between the groups, 35 px late on a 0012 scan."""
    clean, _, x0, how = _origins_with_rows_run_on({2: W + 1, 3: W + 1})
    assert how[0] == how[1] == "end", how
    np.testing.assert_allclose(x0, clean, atol=0.5)


def test_rows_cut_by_the_sheet_edge_do_not_time_the_page():
    """Two rows run on to the sheet's edge alike (a stain from the chart's end on) and a third runs on past its end
    by a little more than the rows' shared tolerance: the two cut rows' "ends" agreed with each other alone and
    timed the page 46 px late (kp4 10003-0009, -2.6 dB). A trace cut by the sheet's edge does not tell its end."""
    chart_end_px = labels_for(500, index=2).x0_px + CANONICAL.s_to_px(10.0)
    clean, _, x0, how = _origins_with_rows_run_on({1: W + 1, 3: W + 1, 2: chart_end_px + 14.0})
    assert how[0] == "end", how
    np.testing.assert_allclose(x0, clean, atol=0.5)


def test_dark_background_at_the_sheet_edge_is_not_the_rows_end():
    """A photo's page ending short of the sheet leaves dark background at the sheet's edge, which stage 1 may read
    as ink: beyond a gap, a piece running on to the edge is dropped unless it is as long as a panel; a trace
    running on to the edge without a gap (a chart wider than the sheet) is kept."""
    from stage2_signal.calibrate import _drop_stray_ends

    on = np.zeros(W, bool)
    on[80:2040] = True
    background = on.copy()
    background[2140:] = True  # 60 px: longer than a stray piece
    assert _drop_stray_ends(background, 0, W - 1, 24, 60, 1000) == (80, 2039)
    cut = on.copy()
    cut[2040:] = True
    assert _drop_stray_ends(cut, 0, W - 1, 24, 60, 1000) == (80, W - 1)
    # beyond a gap, a piece as long as a panel is trace: a chart wider than the sheet, its first panel cut by
    # the sheet's edge and parted from the next by a gap between columns
    assert _drop_stray_ends(background, 0, W - 1, 24, 60, 1000, 400) == (80, 2039)
    wide = np.zeros(W, bool)
    wide[0:540] = True
    wide[600:2150] = True
    assert _drop_stray_ends(wide, 0, W - 1, 24, 60, 1000, 400) == (0, 2149)
    assert _drop_stray_ends(wide, 0, W - 1, 24, 60, 1000) == (600, 2149)
