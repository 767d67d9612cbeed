"""Time axes ruled under the rows: found on the sheet, erased before stage 1, and nothing else taken for one."""

from __future__ import annotations

import numpy as np
import pytest

from common.geometry import CANONICAL
from stage1_segment.ruled_lines import RULED_MIN_S, erase_ruled_lines, find_ruled_lines, without_ruled_lines
from synth.render import RenderStyle, render_page
from synth.signals import simulate_record

MM = CANONICAL.px_per_mm


@pytest.fixture(scope="module")
def signals():
    return simulate_record(np.random.default_rng(5), fs_hz=500.0, record_id="r").leads_mv[:, :5000]


def _sheet(signals, **style):
    return render_page(signals, 500.0, "r", RenderStyle(**style))


def test_an_axis_under_each_row_is_found_and_erased(signals):
    page = _sheet(signals, time_marks="axis", time_marks_mm=12.0)
    plain = _sheet(signals).sheet_rgb
    lines = find_ruled_lines(page.sheet_rgb)
    labels = page.labels
    axes_y = [b + 12.0 * MM for b in labels.baselines_y_px]
    # one line per row (a row's panels' axes meet end to end), where it is drawn, across the row
    assert len(lines) == len(axes_y)
    for line, y in zip(lines, axes_y, strict=True):
        assert line.y0_px - 1 <= y <= line.y1_px + 1
        assert line.x0_px <= labels.x0_px + 10 and line.x1_px >= labels.x0_px + CANONICAL.s_to_px(9.9)
    erased = erase_ruled_lines(page.sheet_rgb, lines)
    assert not np.shares_memory(erased, page.sheet_rgb)
    # the axis' rows are back to what the page holds without it (the grid, a crossing stroke), to a few levels
    for y in axes_y:
        band = slice(int(round(y)) - 1, int(round(y)) + 2)
        cols = slice(int(labels.x0_px) + 20, int(labels.x0_px + CANONICAL.s_to_px(9.8)))
        before = np.abs(page.sheet_rgb[band, cols].astype(int) - plain[band, cols]).mean()
        after = np.abs(erased[band, cols].astype(int) - plain[band, cols]).mean()
        assert before > 40 and after < 0.2 * before
    # away from the axes nothing changes
    far = np.ones(CANONICAL.height_px, bool)
    for y in axes_y:
        far[int(y) - 12 : int(y) + 13] = False
    np.testing.assert_array_equal(erased[far], page.sheet_rgb[far])
    # what the pipeline reads: the erased sheet, or the sheet itself where it has no axis
    np.testing.assert_array_equal(without_ruled_lines(page.sheet_rgb), erased)
    assert without_ruled_lines(plain) is plain


@pytest.mark.parametrize("style", [{}, {"time_marks": "ticks"}, {"layout_name": "12x1"}, {"layout_name": "6x2"}])
def test_pages_without_an_axis_have_none(signals, style):
    """Traces (12x1's crowded rows too), separator bars, pulses, ticks and a dark grid are no ruled lines."""
    assert find_ruled_lines(_sheet(signals, **style).sheet_rgb) == []
    assert find_ruled_lines(_sheet(signals, grid="custom", grid_rgb=((150, 150, 150), (40, 40, 40)),
                                   **style).sheet_rgb) == []


def test_flat_leads_are_trace_and_the_sheet_border_is_no_axis(signals):
    flat = signals.copy()
    flat[:, 1000 : 1000 + int(0.5 * RULED_MIN_S * 500)] = 0.0  # every lead flat for half RULED_MIN_S
    assert find_ruled_lines(_sheet(flat).sheet_rgb) == []
    # ... and for longer: as long and straight as an axis, but the row's trace goes on at its height
    flat[:, 1000 : 1000 + int(1.3 * RULED_MIN_S * 500)] = 0.0
    for layout in ("3x4", "3x4+II", "12x1"):
        assert find_ruled_lines(_sheet(flat, layout_name=layout).sheet_rgb) == []
    sheet = _sheet(signals).sheet_rgb.copy()
    sheet[:3] = 0
    sheet[-3:] = 0  # a scan's dark border
    assert find_ruled_lines(sheet) == []


def test_a_bold_grid_line_the_ink_mask_kept_is_no_axis(signals):
    """A scan's bold 5 mm line whose neighbours, as dark, are broken into dashes (so the ink mask keeps the bold
    line alone: no straight run one pitch away) is a grid line; with its neighbours gone it is a ruled line."""
    page = _sheet(signals)
    sheet = page.sheet_rgb.copy()
    pitch = 5 * MM
    y0 = page.labels.baselines_y_px[1] + 2 * pitch
    for k in (-1, 0, 1):
        y = int(round(y0 + k * pitch))
        if k == 0:
            sheet[y : y + 2, 300:1900] = 30
        else:
            for x in range(300, 1900, 36):
                sheet[y : y + 2, x : x + 24] = 30
    assert find_ruled_lines(sheet) == []
    for k in (-1, 1):
        y = int(round(y0 + k * pitch))
        sheet[y : y + 2, 300:1900] = page.sheet_rgb[y : y + 2, 300:1900]
    (line,) = find_ruled_lines(sheet)
    assert line.y0_px <= y0 + 1 <= line.y1_px + 1 and line.x0_px <= 302 and line.x1_px >= 1897


def test_a_low_lead_flat_but_for_small_qrs_blips_is_no_axis(signals):
    """Leads at a tenth of their amplitude (aVL and III often look so): flat stretches under the rule's length,
    joined only by small QRS blips wider than the breaks an axis' crossing strokes make."""
    assert find_ruled_lines(_sheet(signals * 0.1).sheet_rgb) == []
