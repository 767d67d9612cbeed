"""stage0_rectify.vanish: a photo's perspective undone from its two line families."""

import cv2
import numpy as np

from common.sheet_map import apply_homography
from stage0_rectify.vanish import content_rotation_h, grid_region, line_view

PAGE_HW = (850, 1100)
PHOTO_HW = (1100, 1400)


def _grid_page() -> np.ndarray:
    """A light page ruled every 20 px, bolder every 100 px, as an ECG sheet's grid."""
    h, w = PAGE_HW
    page = np.full((h, w, 3), 245, np.uint8)
    for k in range(0, w, 20):
        cv2.line(page, (k, 0), (k, h - 1), (200, 120, 120) if k % 100 else (170, 60, 60), 1 if k % 100 else 2)
    for k in range(0, h, 20):
        cv2.line(page, (0, k), (w - 1, k), (200, 120, 120) if k % 100 else (170, 60, 60), 1 if k % 100 else 2)
    return page


def _photo(page_to_photo: np.ndarray) -> np.ndarray:
    h, w = PHOTO_HW
    return cv2.warpPerspective(_grid_page(), page_to_photo, (w, h), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 45, 50))


def _page_in_photo(corners_in_photo) -> np.ndarray:
    h, w = PAGE_HW
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    return cv2.getPerspectiveTransform(src, np.float32(corners_in_photo)).astype(np.float64)


def test_a_page_seen_in_perspective_is_seen_from_the_front_through_its_lines():
    # a page held tilted: its far side shorter, both families converging, turned a few degrees
    page_to_photo = _page_in_photo([[260, 170], [1130, 230], [1230, 930], [150, 860]])
    view = line_view(_photo(page_to_photo))
    assert view is not None
    page_to_view = view.image_to_view_h @ page_to_photo
    h, w = PAGE_HW
    xs = np.linspace(0, w - 1, 12)
    ys = np.linspace(0, h - 1, 9)
    for y in ys:  # each row of the page is level in the view
        row = apply_homography(page_to_view, np.stack([xs, np.full_like(xs, y)], 1))
        assert np.ptp(row[:, 1]) < 2.5, (y, row[:, 1])
    for x in xs:  # each column upright
        col = apply_homography(page_to_view, np.stack([np.full_like(ys, x), ys], 1))
        assert np.ptp(col[:, 0]) < 2.5, (x, col[:, 0])
    # and the page's sides in the view keep its proportions (a rectangle, not a trapezoid)
    c = apply_homography(page_to_view, np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64))
    top, bottom = c[1, 0] - c[0, 0], c[2, 0] - c[3, 0]
    left, right = c[3, 1] - c[0, 1], c[2, 1] - c[1, 1]
    assert abs(top / bottom - 1) < 0.01 and abs(left / right - 1) < 0.01, c
    # the perspective photo itself is not: its far side is 20 % shorter
    assert view.view_hw[0] > 0 and view.view_hw[1] > 0 and view.warp(_photo(page_to_photo)).shape[:2] == view.view_hw


def test_a_page_seen_from_the_front_or_no_lines_give_no_view():
    square_on = _page_in_photo([[150, 120], [1249, 120], [1249, 969], [150, 969]])
    assert line_view(_photo(square_on)) is None
    noise = np.random.default_rng(0).integers(0, 255, (*PHOTO_HW, 3), dtype=np.uint8)
    assert line_view(cv2.GaussianBlur(noise, (0, 0), 3)) is None


def test_a_page_turned_in_its_frame_is_turned_back_upright():
    """A whole page whose content is turned 3.5 deg inside a frame of the same size (ECG-Image-Kit's rotated
    renders): its lines' turn is read and undone; a page drawn straight, or a grid sheared rather than turned,
    is left as drawn."""
    page = _grid_page()
    h, w = PAGE_HW
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    turned = cv2.warpAffine(page, cv2.getRotationMatrix2D(centre, -3.5, 1.0), (w, h), borderValue=(0, 0, 0))
    found = content_rotation_h(turned)
    assert found is not None and abs(found[1] - 3.5) < 0.1
    upright = cv2.warpPerspective(turned, found[0], (w, h), borderValue=(0, 0, 0))
    assert content_rotation_h(upright) is None
    # the grid's lines back on the axes: the 100 px line at x = 500 upright again within a px over the page
    dark = upright[150:700, 480:520].min(axis=2) < 120
    cols = [480 + int(np.median(np.flatnonzero(r))) for r in dark if r.any()]
    assert np.ptp(cols) <= 1
    assert content_rotation_h(page) is None
    sheared = cv2.warpAffine(page, np.float32([[1, 0.06, 0], [0, 1, 0]]), (w, h), borderValue=(0, 0, 0))
    assert content_rotation_h(sheared) is None


def test_the_grid_region_of_a_view_is_the_page_not_its_background():
    # the page (grid every 20 px: 4 px/mm) off-centre in a wide view, beside a dark striped "curtain" that fills the
    # rest: the box of every dark pixel is the whole view, the grid's region is the page
    view = np.zeros((1400, 2400, 3), np.uint8)
    view[:, :, 0] = 150
    view[:, :, 1] = np.where((np.arange(2400) // 37) % 2 == 0, 60, 110)[None, :].astype(np.uint8)
    view[:, :, 2] = 40
    y0, x0 = 450, 1200
    view[y0 : y0 + PAGE_HW[0], x0 : x0 + PAGE_HW[1]] = _grid_page()
    box = grid_region(view, px_per_mm=4.0, big_box_mm=5.0)
    assert box is not None
    bx0, by0, bx1, by1 = box
    reach = 4 * 20.0  # px: the big box grid_region adds each way, and its low-pass's reach beyond the lines
    assert abs(bx0 - x0) <= reach and abs(by0 - y0) <= reach
    assert abs(bx1 - (x0 + PAGE_HW[1])) <= reach and abs(by1 - (y0 + PAGE_HW[0])) <= reach
    assert grid_region(np.full((600, 800, 3), 200, np.uint8), px_per_mm=4.0, big_box_mm=5.0) is None  # no grid anywhere

