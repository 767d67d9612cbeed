"""A sheet the keypoint route put upside down is turned back; upright sheets, and the grid routes', are kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from common.types import Rectified
from pipeline.upright import MIN_SURE_NAMES, half_turned_rows, sure_names, turned_half, upright
from stage1_segment.layout_finder import find_layout
from stage1_segment.lead_names import LeadNameReader
from synth.factory import make_page
from synth.signals import simulate_record


def _sheet(seed: int) -> np.ndarray:
    """A factory 3x4+II page on the sheet by its exact map (seed 6: rows in the sheet's lower half, pulses, a
    header; seed 1: rows in the upper half under a header, pulses)."""
    rec = simulate_record(np.random.default_rng(seed))
    image = make_page(rec, seed, seed, ["0001"], layouts=["3x4+II"], fs_choices=[500]).images["0001"]
    return image.sheet_map.rectify(image.image_rgb)


def _rectified(sheet: np.ndarray, method: str = "keypoints", sheet_map: SheetMap | None = None) -> Rectified:
    return Rectified("page", sheet, sheet_map or SheetMap.identity(), CANONICAL.px_per_mm, method, 0.5)


def _upside_down(sheet: np.ndarray, method: str = "keypoints") -> Rectified:
    """The page's own sheet (its map the identity) put on the sheet half a turn round."""
    return _rectified(np.ascontiguousarray(sheet[::-1, ::-1]), method, SheetMap.identity().turned_half())


@pytest.fixture(scope="module")
def low_chart() -> np.ndarray:
    return _sheet(6)


@pytest.mark.parametrize("orientation_conf", [0.6, 1.0])
def test_a_half_turned_sheet_is_turned_back(low_chart, orientation_conf):
    # unsure of the turn: the header below the rows turns it; sure: the pulses it shows turned do
    upside_down = _upside_down(low_chart)
    rectified, found, turned = upright(upside_down, find_layout(upside_down.sheet_rgb), None, orientation_conf)
    assert turned
    np.testing.assert_array_equal(rectified.sheet_rgb, low_chart)
    # the map turned twice is the map it was
    np.testing.assert_allclose(rectified.sheet_map.image_to_sheet_h, np.eye(3), atol=1e-12)
    assert found.layout_name == find_layout(low_chart).layout_name == "3x4+II"
    assert np.mean([r.y_px for r in found.rows]) > 0.5 * CANONICAL.height_px


@pytest.mark.parametrize("seed", [6, 1])
def test_an_upright_sheet_is_kept(seed):
    # seed 1's chart sits in the sheet's upper half: its header above the rows and its pulses keep it
    sheet = _sheet(seed)
    rectified = _rectified(sheet)
    out, _, turned = upright(rectified, find_layout(sheet), None, 0.6)
    assert not turned and out is rectified


def test_the_grid_routes_are_not_turned(low_chart):
    upside_down = _upside_down(low_chart, method="grid")
    assert not upright(upside_down, find_layout(upside_down.sheet_rgb), None, 0.6)[2]


def test_a_turned_map_puts_every_point_half_a_turn_round():
    rng = np.random.default_rng(3)
    h = np.array([[0.9, 0.05, 30.0], [-0.04, 1.1, -20.0], [1e-5, -2e-5, 1.0]])
    sheet_map = SheetMap(h, rng.normal(0.0, 3.0, (9, 11, 2)))
    points = rng.uniform([0, 0], [1500, 1200], (50, 2))
    w, hh = CANONICAL.width_px, CANONICAL.height_px
    expected = np.array([w - 1.0, hh - 1.0]) - sheet_map.image_to_sheet(points)
    np.testing.assert_allclose(sheet_map.turned_half().image_to_sheet(points), expected, atol=1e-3)
    # and the sheet it resamples is the sheet turned
    image = rng.integers(0, 255, (1300, 1700, 3), dtype=np.uint8)
    rectified = _rectified(sheet_map.rectify(image), sheet_map=sheet_map)
    again = turned_half(rectified)
    np.testing.assert_array_equal(again.sheet_rgb, rectified.sheet_rgb[::-1, ::-1])
    resampled = again.sheet_map.rectify(image).astype(int)
    assert np.abs(resampled - again.sheet_rgb.astype(int)).mean() < 1.0


def test_a_page_the_network_was_unsure_of_turns_where_its_lead_names_read_half_a_turn_round():
    # seed 1's chart sits in the sheet's upper half: upside down it sits in the lower half, where the rows' place
    # keeps it; its names, unreadable upside down, turn it
    names = LeadNameReader.from_bundle()
    sheet = _sheet(1)
    upside_down = _upside_down(sheet)
    found = find_layout(upside_down.sheet_rgb, names)
    assert not upright(upside_down, find_layout(upside_down.sheet_rgb), None, 0.6)[2]
    rectified, found_up, turned = upright(upside_down, found, names, 0.6)
    assert turned and found_up.layout_name == "3x4+II"
    np.testing.assert_array_equal(rectified.sheet_rgb, sheet)
    assert sure_names(found_up) >= MIN_SURE_NAMES + sure_names(found)
    # a network sure of the turn is not second-guessed by the names; an upright page's names keep it
    assert not upright(upside_down, found, names, 1.0)[2]
    upright_sheet = _rectified(sheet)
    assert not upright(upright_sheet, find_layout(sheet, names), names, 0.6)[2]


@pytest.mark.parametrize("finder_reads_the_turned_sheet", [True, False])
def test_a_half_turned_sheet_whose_turned_rows_the_finder_misses_is_turned_back(low_chart, monkeypatch,
                                                                               finder_reads_the_turned_sheet):
    # a faint, broken trace can fit a layout one way round and not the other: where the finder reads no rows on the
    # turned sheet, the rows found stand there half a turn round (in its lower half, under the header)
    import pipeline.upright as up

    upside_down = _upside_down(low_chart)
    found = find_layout(upside_down.sheet_rgb)
    if not finder_reads_the_turned_sheet:
        monkeypatch.setattr(up, "find_layout", lambda sheet: dataclasses.replace(found, layout_name=None, rows=()))
    # unsure of the turn, with no pulse found either way round: the header below the rows turns it
    no_pulses = dataclasses.replace(found, rows=tuple(dataclasses.replace(r, pulse=None) for r in found.rows))
    rectified, _, turned = up.upright(upside_down, no_pulses, None, 0.6)
    assert turned
    np.testing.assert_array_equal(rectified.sheet_rgb, low_chart)
    if not finder_reads_the_turned_sheet:  # (read, the turned sheet's pulses would turn it)
        # sure of the turn, the header alone does not turn it
        assert not up.upright(upside_down, no_pulses, None, 1.0)[2]


def test_half_turned_rows_stand_where_the_turned_sheet_shows_them(low_chart):
    found = find_layout(low_chart)
    turned = half_turned_rows(found)
    assert turned.n_rows == found.n_rows and turned.layout_name is None
    np.testing.assert_allclose([r.y_px for r in turned.rows],
                               [CANONICAL.height_px - 1 - r.y_px for r in reversed(found.rows)])
