"""The factory's arrangements (gaps between panels, the pulse outside the row, rows spaced by their amplitudes,
Cabrera's order) and how they are read back: labels, the layout finder, stage 2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout, layout_name, with_gap, with_gap_name
from stage1_segment.layout_finder import find_layout
from stage2_signal.infer import extract
from stage2_signal.oracle import oracle_maps
from synth.factory import make_page
from synth.labels import sub_column_x
from synth.make import arrangement_of, parse_layouts
from synth.render import Arrangements, RenderStyle, render_page, sample_style, style_placement
from synth.signals import simulate_record

MM = CANONICAL.px_per_mm


def _page(layout: str, seed: int = 1, fs: int = 500, arrangements: Arrangements | None = None):
    record = simulate_record(np.random.default_rng(seed), fs_hz=500.0, record_id=f"sim{seed}")
    return make_page(record, seed, 11, ["0001"], layouts=[layout], fs_choices=[fs], arrangements=arrangements)


def test_variant_names_build_and_bad_ones_fail_clearly():
    gap = get_layout("3x4+II/gap5mm")
    assert gap.name == layout_name("3x4+II", gap_mm=5.0) == "3x4+II/gap5mm"
    # column c starts c gaps (5 mm at 25 mm/s = 0.2 s) after its record time; record times do not change
    assert [p.x_offset_s for p in gap.row_panels(0)] == pytest.approx([0.0, 2.7, 5.4, 8.1])
    assert [p.t0_s for p in gap.row_panels(0)] == [0.0, 2.5, 5.0, 7.5]
    assert gap.row_duration_s(3) == 10.0 and gap.row_duration_s(0) == pytest.approx(10.6)
    cab = get_layout("6x2/cabrera")
    assert [(p.lead, p.inverted) for p in cab.row_panels(2)] == [("aVR", True), ("V3", False)]
    assert [p.lead for p in cab.panels if p.col == 0] == ["aVL", "I", "aVR", "II", "aVF", "III"]
    assert get_layout("3x4+II/cabrera").row_panels(3)[0].lead == "II"  # the rhythm strip keeps its lead
    for bad in ("3x4/cabrera", "3x4+II/gap25mm", "3x4+II/gap5mm/cabrera", "3x4+II/gapXmm", "5x5"):
        with pytest.raises(KeyError):
            get_layout(bad)
    with pytest.raises(ValueError):
        with_gap(get_layout("6x2"), 0.0)
    assert parse_layouts("3x4+II,V1,V5/gap3mm;6x2/cabrera") == ["3x4+II,V1,V5/gap3mm", "6x2/cabrera"]


def test_arrangements_leave_default_pages_alone_and_force_what_they_are_asked():
    for seed in range(20):
        plain = sample_style(np.random.default_rng(seed))
        assert sample_style(np.random.default_rng(seed), arrangements=Arrangements()) == plain
    forced = Arrangements(gaps=1.0, outside_pulse=1.0, signal_rows=1.0, cabrera=1.0)
    for seed in range(20):
        style = sample_style(np.random.default_rng(seed), "6x2", arrangements=forced)
        assert style.layout_name.startswith("6x2/cabrera/gap")
        assert style.pulse_style == "outside" and style.row_pitch == "signal" and style.calibration_pulse
        # the longest row and the pulse (0.2 s and its lead-in and -out, 2-4 mm before the row) stay on the sheet
        x0 = style_placement(style).x0_px
        assert x0 - style.pulse_gap_mm * MM - CANONICAL.s_to_px(0.3) > 0
        assert x0 + CANONICAL.s_to_px(get_layout(style.layout_name).row_duration_s(0)) < CANONICAL.width_px
    with pytest.raises(ValueError):
        Arrangements(gaps=1.5)
    with pytest.raises(ValueError):
        RenderStyle(layout_name="3x4+II/gap99mm")


def test_half_gain_pages_draw_the_chart_and_its_pulses_half_as_tall():
    plain, half = _page("3x4+II", 2), _page("3x4+II", 2, arrangements=Arrangements(half_gain=1.0))
    assert plain.labels.style["mm_per_mv"] == 10.0 and half.labels.style["mm_per_mv"] == 5.0
    assert arrangement_of(half.labels) == "5mm-per-mV" and arrangement_of(plain.labels) == "plain"
    # every trace's excursion from its baseline halves; the baselines and the record do not move
    for row, base in enumerate(plain.labels.baselines_y_px):
        np.testing.assert_allclose(half.labels.row_y_px[row] - base, 0.5 * (plain.labels.row_y_px[row] - base),
                                   atol=1e-3)
    np.testing.assert_array_equal(half.labels.signals_mv, plain.labels.signals_mv)
    pad = 2 * (plain.labels.style["trace_width_px"] / 2 + 1)  # a pulse's box holds its stroke
    heights = [box[3] - box[1] - pad for box in (plain.labels.pulse_boxes_px[0], half.labels.pulse_boxes_px[0])]
    assert heights == pytest.approx([CANONICAL.px_per_mv, 0.5 * CANONICAL.px_per_mv], abs=0.01)
    with pytest.raises(ValueError, match="mm_per_mv"):
        RenderStyle(mm_per_mv=7.0)


def test_gap_labels_put_each_panel_where_its_offset_says():
    labels = _page("3x4+II/gap6mm").labels
    layout, placement = labels.layout, labels.placement
    xs = sub_column_x(CANONICAL.width_px, labels.x_upsample)
    row = 1
    for panel in layout.row_panels(row):
        i0, i1 = panel.sample_range(labels.fs_hz, labels.signals_mv.shape[1])
        x_start = float(placement.panel_x_px(panel, panel.t0_s))
        assert x_start == pytest.approx(labels.x0_px + CANONICAL.s_to_px(panel.t0_s + panel.col * 6.0 / 25.0))
        # the labelled centre line starts there and runs through the panel's samples for its first 0.1 s ...
        x = placement.panel_x_px(panel, np.arange(i0, i1) / labels.fs_hz)
        y = CANONICAL.mv_to_y(labels.signals_mv[LEADS.index(panel.lead), i0:i1], placement.baselines_y_px[row])
        near = (xs >= x_start) & (xs <= x_start + CANONICAL.s_to_px(0.1))
        np.testing.assert_allclose(labels.row_y_px[row, near], np.interp(xs[near], x, y), atol=0.01)
        # ... and the 6 mm before it (one before the first panel: its pulse) hold no trace
        if panel.col > 0:
            gap = (xs > x_start - 6 * MM + 1) & (xs < x_start - 1)
            assert np.isnan(labels.row_y_px[row, gap]).all()


def test_cabrera_page_reads_back_avr_with_its_sign():
    labels = _page("3x4+II/cabrera").labels
    panel = next(p for p in labels.layout.panels if p.lead == "aVR")
    assert panel.inverted
    # the page prints -aVR: its centre line lies above the baseline where aVR is negative
    i0, i1 = panel.sample_range(labels.fs_hz, labels.signals_mv.shape[1])
    avr = labels.signals_mv[LEADS.index("aVR"), i0:i1].astype(np.float64)
    x = labels.placement.panel_x_px(panel, np.arange(i0, i1) / labels.fs_hz)
    xs = sub_column_x(CANONICAL.width_px, labels.x_upsample)
    y = np.interp(x, xs, np.nan_to_num(labels.row_y_px[panel.row], nan=0.0))
    printed = CANONICAL.y_to_mv(y[5:-5], labels.baselines_y_px[panel.row])
    assert np.corrcoef(printed, avr[5:-5])[0, 1] < -0.99
    # stage 2, reading by the Cabrera layout, gives aVR itself (no Einthoven projection to hide a sign error)
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    ex = extract(oracle_maps(labels, scale_x=0.5, scale_y=0.5), CANONICAL.px_per_mm, labels.fs_hz,
                 {lead: v.size for lead, v in truth.items()})
    assert ex.readings[[r.panel.lead for r in ex.readings].index("aVR")].panel.inverted
    read = ex.signals.leads_mv["aVR"]
    assert np.corrcoef(read, truth["aVR"])[0, 1] > 0.98


def test_finder_finds_gap_panels_within_a_millimetre():
    for layout, seed in (("3x4+II/gap4.5mm", 2), ("6x2/gap7mm", 3)):
        page = _page(layout, seed, arrangements=Arrangements(outside_pulse=1.0))
        sheet = page.images["0001"].sheet_map.rectify(page.images["0001"].image_rgb)
        found = find_layout(sheet)
        truth = page.labels.layout
        assert found.layout_name is not None and found.layout_name.split("/")[0] == layout.split("/")[0]
        assert found.n_rows == truth.n_rows
        for k, row in enumerate(found.rows):
            ends = [(float(page.labels.placement.panel_x_px(p, p.t0_s)), float(page.labels.placement.panel_x_px(
                p, p.t1_s))) for p in truth.row_panels(k)]
            np.testing.assert_allclose(np.ravel(row.panels), np.ravel(ends), atol=MM)
            assert row.pulse is not None and row.pulse_outside


def test_stage2_corrects_a_gap_found_a_tenth_of_a_millimetre_off():
    labels = _page("3x4+II/gap3mm", 4).labels
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    counts = {lead: v.size for lead, v in truth.items()}
    off = replace(maps, layout_name="3x4+II/gap3.1mm")  # as the finder may name it
    ex = extract(off, CANONICAL.px_per_mm, labels.fs_hz, counts)
    assert ex.info.get("gap_corrected_to") == "3x4+II/gap3mm"
    right = extract(maps, CANONICAL.px_per_mm, labels.fs_hz, counts)
    assert "gap_corrected_to" not in right.info
    for lead in ("V4", "V6"):
        np.testing.assert_allclose(ex.signals.leads_mv[lead], right.signals.leads_mv[lead], atol=0.02)


def test_signal_rows_follow_the_amplitudes():
    arr = Arrangements(signal_rows=1.0)
    page = _page("3x4+II", 5, arrangements=arr)
    assert page.labels.style["row_pitch"] == "signal"
    even = _page("3x4+II", 5).labels.baselines_y_px
    got = page.labels.baselines_y_px
    assert got[0] == pytest.approx(even[0]) and got[-1] == pytest.approx(even[-1])
    assert not np.allclose(np.diff(got), np.diff(got)[0], atol=1.0)


def test_time_marks_are_drawn_under_each_panel_and_left_out_of_the_traces():
    """Ticks every second of a panel (an axis line too, for "axis"), time_marks_mm below the baseline, in ink
    the labels do not count as trace."""
    forced = Arrangements(time_marks=1.0)
    styles = [sample_style(np.random.default_rng(s), "3x4+II", arrangements=forced) for s in range(12)]
    assert {s.time_marks for s in styles} == {"ticks", "axis"}
    assert all(5.0 < s.time_marks_mm < 25.0 for s in styles)
    signals = simulate_record(np.random.default_rng(3), fs_hz=500.0, record_id="m").leads_mv[:, :5000]
    plain = render_page(signals, 500.0, "m", RenderStyle())
    for kind in ("ticks", "axis"):
        page = render_page(signals, 500.0, "m", RenderStyle(time_marks=kind, time_marks_mm=12.0))
        np.testing.assert_array_equal(page.labels.row_masks, plain.labels.row_masks)
        added = (page.sheet_rgb.astype(int) != plain.sheet_rgb.astype(int)).any(axis=2)
        panel = page.labels.layout.row_panels(1)[1]
        y = int(round(page.labels.baselines_y_px[1] + 12.0 * MM))
        placement = page.labels.placement
        x0, x1 = (int(round(float(placement.panel_x_px(panel, t)))) for t in (panel.t0_s, panel.t1_s))
        line = added[y - 1 : y + 2, x0 + 5 : x1 - 5].any(axis=0).mean()
        assert line > 0.95 if kind == "axis" else line < 0.1
        ticks = added[y - 8 : y - 4, x0 - 2 : x1 - 4].any(axis=0)  # not the next panel's first tick
        assert np.count_nonzero(np.diff(ticks.astype(int)) == 1) == 3  # at 0, 1 and 2 s of the 2.5 s panel
    with pytest.raises(ValueError):
        RenderStyle(time_marks="grid")


def test_a_corrected_gap_keeps_the_order_of_the_rhythm_strips():
    """The other renderer's 3x4 with three strips prints them V1, II, V5; a gap corrected by a tenth of a mm kept
    only the base layout's name, and the strips were read in its own order, II over V1 (oarr_mixed 50010: II and
    V1 at 2 and -4 dB)."""
    assert with_gap_name("3x4+II,V1,V5/rhythm=V1,II,V5/gap3.1mm", 3.0) == "3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm"
    assert with_gap_name("6x2/cabrera", 2.5) == "6x2/cabrera/gap2.5mm" and with_gap_name("3x4/gap2mm", 0) == "3x4"
    labels = _page("3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm", 4).labels
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    counts = {lead: v.size for lead, v in truth.items()}
    off = replace(maps, layout_name="3x4+II,V1,V5/rhythm=V1,II,V5/gap3.1mm")
    ex = extract(off, CANONICAL.px_per_mm, labels.fs_hz, counts)
    assert ex.info.get("gap_corrected_to") == "3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm"
    for lead in ("V1", "II"):
        assert np.corrcoef(ex.signals.leads_mv[lead], truth[lead])[0, 1] > 0.98, lead
