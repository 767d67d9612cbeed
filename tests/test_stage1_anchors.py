"""Row anchors found on the page: where our renderer and other placements put the rows."""

from __future__ import annotations

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import default_placement, get_layout
from stage1_segment.anchors import SURE_INK_PASSES, find_anchors, ink_weights
from synth.factory import make_page
from synth.signals import simulate_record


@pytest.mark.parametrize(
    ("seed", "image_type"),
    # 2, 13, 32 and 44: a broken grey grid, heavy shadows, a dashed black grid line (each once took a row)
    [(0, "0001"), (1, "0003"), (2, "0004"), (3, "0001"), (4, "0011"), (13, "0010"), (32, "0012"), (44, "0004")],
)
def test_anchors_are_the_rows_baselines(seed, image_type):
    rec = simulate_record(np.random.default_rng(seed))
    page = make_page(rec, seed, seed, [image_type], layouts=["3x4+II"], fs_choices=[500])
    pim = page.images[image_type]
    sheet = pim.sheet_map.rectify(pim.image_rgb)
    found = find_anchors(sheet, "3x4+II")
    assert found.method == "ink"
    # the ink piles up at the isoelectric level, within a few px of the 0 mV line the page was drawn with
    np.testing.assert_allclose(found.baselines_y_px, page.labels.baselines_y_px, atol=10.0)


def test_a_page_without_rows_falls_back_to_the_default_placement():
    blank = np.full((*CANONICAL.shape_hw, 3), 250, np.uint8)
    found = find_anchors(blank, "3x4+II")
    assert found.method == "default"
    assert found.baselines_y_px == default_placement(get_layout("3x4+II")).baselines_y_px


def _draw_traces(sheet: np.ndarray, rows: list[float], value: int) -> None:
    """Wavy 3 px traces with QRS-like spikes, isoelectric at each y of ``rows`` (a flat line would be a grid line)."""
    x = np.arange(150, 2150)
    for y in rows:
        trace = y + 3 * np.sin(x / 40.0) - 60 * ((x % 160) < 6)
        for dy in (-1, 0, 1):
            sheet[np.round(trace).astype(int) + dy, x] = value


def test_rows_moved_up_are_followed():
    """Traces drawn anywhere on a pink grid are found where they are."""
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    sheet[:, ::8] = (240, 160, 170)  # grid lines: saturated, not ink
    sheet[::8] = (240, 160, 170)
    rows = [300.0, 520.0, 740.0, 960.0]
    _draw_traces(sheet, rows, value=10)
    found = find_anchors(sheet, "3x4+II")
    assert found.method == "ink"
    np.testing.assert_allclose(found.baselines_y_px, rows, atol=2.0)


def test_ink_weights_ignore_coloured_grid_and_paper():
    sheet = np.full((100, 200, 3), 255, np.uint8)
    sheet[::5] = (250, 120, 120)  # red grid lines
    sheet[40:42] = 0  # a black trace
    w = ink_weights(sheet, (100, 200), 97.5, 99.7)
    assert w[40:42].min() == 1.0
    assert w[np.r_[0:40, 42:100]].max() == 0.0


def test_dark_grid_header_and_paper_edge_do_not_take_a_row():
    """A black-and-white scan's grid as dark as the traces, a long header line and the dark band beyond a
    photo's paper edge all pile up ink at one y too; the evenly spaced trace rows still win."""
    rng = np.random.default_rng(0)
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    sheet[:, ::40] = 0  # major grid lines, black
    sheet[::40] = 0
    sheet[:30] = 0  # beyond the paper's edge
    sheet[120:124, 100:1500] = 0  # a header line of text
    rows = [500.0, 760.0, 1020.0, 1280.0]
    _draw_traces(sheet, rows, value=0)
    sheet[rng.random(sheet.shape[:2]) < 0.002] = 0  # speckle
    found = find_anchors(sheet, "3x4+II")
    assert found.method == "ink"
    np.testing.assert_allclose(found.baselines_y_px, rows, atol=4.0)


def test_faint_traces_under_a_black_header_are_found():
    """A dim photo of a print: grey traces (darkness ~110 against the paper) under bold black header text (~230);
    at half the header's darkness the traces are too faint to count, at the faint-ink share they are rows."""
    sheet = np.full((*CANONICAL.shape_hw, 3), 235, np.uint8)
    sheet[100:180, 150:900] = 5  # header block, far darker than any trace
    rows = [755.0, 935.0, 1113.0, 1293.0]  # closer than the layout's default pitch
    _draw_traces(sheet, rows, value=125)
    found = find_anchors(sheet, "3x4+II")
    assert found.method == "ink"
    np.testing.assert_allclose(found.baselines_y_px, rows, atol=3.0)


def test_traces_barely_darker_than_the_paper_are_found_but_are_no_proof_of_a_page():
    """A blurred photo of a thin-lined render: traces 18 grey levels darker than the paper, under the sure ink
    levels' floor. The faint level finds the rows; the sure levels alone (what a page nothing else placed must
    show) do not."""
    sheet = np.full((*CANONICAL.shape_hw, 3), 230, np.uint8)
    rows = [600.0, 800.0, 1000.0, 1200.0]
    _draw_traces(sheet, rows, value=212)
    found = find_anchors(sheet, "3x4+II")
    assert found.method == "ink"
    np.testing.assert_allclose(found.baselines_y_px, rows, atol=3.0)
    assert find_anchors(sheet, "3x4+II", passes=SURE_INK_PASSES).method == "default"
