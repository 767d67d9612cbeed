"""The network's page corners moved onto the page's own edges in the full photo (stage0_rectify.page_edges)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.geometry import CANONICAL
from stage0_rectify.page_edges import refine_corners
from synth.render import RenderStyle, render_page
from synth.signals import simulate_record

CORNERS_IMG = np.array([[260.0, 190.0], [1390.0, 120.0], [1480.0, 1050.0], [170.0, 1000.0]])  # TL, TR, BR, BL


@pytest.fixture(scope="module")
def gridless_sheet() -> np.ndarray:
    rec = simulate_record(np.random.default_rng(2))
    return render_page(rec.leads_mv, rec.fs_hz, "e", RenderStyle(grid="none", minor_grid="none")).sheet_rgb


def _photo(sheet: np.ndarray, table=(60, 50, 40)) -> np.ndarray:
    """The sheet in perspective on a table, 1600 x 1200, JPEG-compressed."""
    s2i = cv2.getPerspectiveTransform(CANONICAL.corners_px().astype(np.float32), CORNERS_IMG.astype(np.float32))
    img = cv2.warpPerspective(sheet, s2i, (1600, 1200), flags=cv2.INTER_AREA, borderValue=table)
    _, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("table", [(60, 50, 40), (205, 200, 190)])
def test_corners_a_network_placed_15_px_off_land_on_the_page_corners(gridless_sheet, table):
    """A page printed without a grid has nothing but its edges to place it by; on a dark or a light table the
    corners come back within a px and a half."""
    img = _photo(gridless_sheet, table)
    off = np.array([[12.0, -9.0], [-15.0, 6.0], [10.0, 11.0], [-8.0, -13.0]])
    corners, found = refine_corners(img, CORNERS_IMG + off)
    assert found.all()
    assert np.linalg.norm(corners - CORNERS_IMG, axis=1).max() < 1.5, corners - CORNERS_IMG


def test_corners_are_not_moved_where_the_picture_shows_no_edge(gridless_sheet):
    """All paper (a scan cropped inside the page): the traces and letters are lines, not edges, and no corner
    moves."""
    crop = np.ascontiguousarray(gridless_sheet[20:-30, 10:-40])
    h, w = crop.shape[:2]
    guess = np.array([[40.0, 30.0], [w - 60.0, 50.0], [w - 40.0, h - 35.0], [45.0, h - 50.0]])
    corners, found = refine_corners(crop, guess)
    assert not found.any() and np.array_equal(corners, guess)
