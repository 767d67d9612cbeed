"""The page factory's degradations: every image type gives a uint8 RGB image, is deterministic per seed, and
comes with an exact map back to the sheet (a drawn line is found where it was drawn after rectification)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from synth.degrade import IMAGE_TYPE_NAMES, PROFILES, Degraded, degrade

W, H = CANONICAL.width_px, CANONICAL.height_px
LINE_Y0 = (430.0, 850.0, 1270.0)
LINE_X = (150, 2050)


def line_y(x: np.ndarray, k: int) -> np.ndarray:
    return LINE_Y0[k] + 12.0 * np.sin(2 * np.pi * np.asarray(x, dtype=np.float64) / (500.0 + 90 * k) + k)


def make_sheet() -> np.ndarray:
    """Stand-in clean sheet: white page, pink 1 mm / 5 mm grid, three smooth black anti-aliased polylines."""
    img = np.full((H, W, 3), 255, np.uint8)
    ppm = CANONICAL.px_per_mm
    for i in range(int(W / ppm) + 1):
        x = int(round(i * ppm))
        img[:, x : x + 1] = (240, 150, 150) if i % 5 == 0 else (252, 215, 215)
    for i in range(int(H / ppm) + 1):
        y = int(round(i * ppm))
        img[y : y + 1, :] = (240, 150, 150) if i % 5 == 0 else (252, 215, 215)
    xs = np.arange(LINE_X[0], LINE_X[1] + 1, 2, dtype=np.float64)
    for k in range(len(LINE_Y0)):
        pts = np.round(np.stack([xs, line_y(xs, k)], axis=1) * 16).astype(np.int32)
        cv2.polylines(img, [pts], False, (20, 20, 20), 3, cv2.LINE_AA, shift=4)
    return img


@pytest.fixture(scope="module")
def sheet() -> np.ndarray:
    return make_sheet()


@pytest.fixture(scope="module")
def outputs(sheet) -> dict[str, Degraded]:
    before = sheet.copy()
    out = {t: degrade(sheet, t, np.random.default_rng(1234)) for t in PROFILES}
    assert np.array_equal(sheet, before), "degrade must not modify its input"
    return out


def test_profiles_and_names_cover_all_types():
    expected = {"0001", "0003", "0004", "0005", "0006", "0009", "0010", "0011", "0012"}
    assert set(PROFILES) == expected
    assert set(IMAGE_TYPE_NAMES) == expected


def test_unknown_type_raises(sheet):
    with pytest.raises(ValueError, match="0005"):
        degrade(sheet, "0002", np.random.default_rng(0))


def test_rejects_wrong_sheet():
    with pytest.raises(ValueError):
        degrade(np.zeros((100, 100, 3), np.uint8), "0003", np.random.default_rng(0))


@pytest.mark.parametrize("image_type", sorted(PROFILES))
def test_output_is_uint8_rgb(outputs, image_type):
    out = outputs[image_type]
    img = out.image_rgb
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert min(img.shape[:2]) >= 500
    assert isinstance(out.sheet_map, SheetMap)
    if image_type in ("0005", "0006", "0009", "0010"):
        assert 1600 <= max(img.shape[:2]) <= 3000


def test_untouched_is_identity(sheet, outputs):
    out = outputs["0001"]
    assert np.array_equal(out.image_rgb, sheet)
    assert np.allclose(out.sheet_map.image_to_sheet_h, np.eye(3)) and out.sheet_map.displacement_px is None


@pytest.mark.parametrize("image_type", sorted(PROFILES))
def test_deterministic_per_seed(sheet, outputs, image_type):
    again = degrade(sheet, image_type, np.random.default_rng(1234))
    first = outputs[image_type]
    assert np.array_equal(again.image_rgb, first.image_rgb)
    assert np.array_equal(again.sheet_map.image_to_sheet_h, first.sheet_map.image_to_sheet_h)
    if image_type != "0001":
        other = degrade(sheet, image_type, np.random.default_rng(99))
        assert other.image_rgb.shape != first.image_rgb.shape or not np.array_equal(other.image_rgb, first.image_rgb)


@pytest.mark.parametrize("image_type", sorted(PROFILES))
def test_map_round_trip(outputs, image_type):
    sm = outputs[image_type].sheet_map
    ppm = CANONICAL.px_per_mm
    gx, gy = np.meshgrid(np.arange(0, W, 5 * ppm), np.arange(0, H, 5 * ppm))
    grid = np.stack([gx, gy], axis=-1).reshape(-1, 2)
    xs = np.arange(LINE_X[0], LINE_X[1], 7.0)
    on_lines = np.concatenate([np.stack([xs, line_y(xs, k)], axis=1) for k in range(len(LINE_Y0))])
    pts = np.concatenate([grid, on_lines])
    back = sm.image_to_sheet(sm.sheet_to_image(pts))
    assert np.abs(back - pts).max() < 0.05


@pytest.mark.parametrize("image_type", sorted(PROFILES))
def test_render_maps_agree_with_map(outputs, image_type):
    """The per-pixel maps used for rendering equal the label map at sample pixels."""
    out = outputs[image_type]
    h, w = out.image_rgb.shape[:2]
    mx, my = out.sheet_map.image_to_sheet_maps((h, w))
    rng = np.random.default_rng(0)
    u = np.stack([rng.integers(0, w, 500), rng.integers(0, h, 500)], axis=1)
    exact = out.sheet_map.image_to_sheet(u.astype(np.float64))
    fast = np.stack([mx[u[:, 1], u[:, 0]], my[u[:, 1], u[:, 0]]], axis=1)
    assert np.abs(fast - exact).max() < 0.02


def trace_errors(rectified_rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """Per column along each drawn line: (darkness centroid row in the rectified image) - (true line y), for
    columns where something clearly darker than its surroundings is found within +-7 px (photos can be dim
    and low in contrast, so the bar is low); and the number of columns examined."""
    grey = cv2.cvtColor(rectified_rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    errs = []
    n = 0
    for k in range(len(LINE_Y0)):
        for x in range(LINE_X[0] + 30, LINE_X[1] - 30, 3):
            n += 1
            y_true = float(line_y(x, k))
            y0 = int(round(y_true)) - 7
            col = grey[y0 : y0 + 15, x]
            dark = np.median(grey[y0 - 10 : y0 + 25, x]) - col
            if dark.max() < 15:
                continue
            wgt = np.where(dark > 0.5 * dark.max(), dark, 0.0)
            errs.append(float((wgt * np.arange(y0, y0 + 15)).sum() / wgt.sum()) - y_true)
    return np.array(errs), n


@pytest.mark.parametrize("image_type", sorted(PROFILES))
def test_rectified_lines_are_in_place(outputs, image_type):
    out = outputs[image_type]
    rect = out.sheet_map.rectify(out.image_rgb)
    assert rect.shape == (H, W, 3)
    errs, n = trace_errors(rect)
    found = errs.size / n
    assert found > 0.6, f"line found in only {found:.0%} of columns"
    assert np.median(np.abs(errs)) < 0.6, np.median(np.abs(errs))
    assert np.mean(np.abs(errs) < 1.5) > 0.9, np.mean(np.abs(errs) < 1.5)


def test_line_check_detects_a_wrong_map(outputs):
    """Negative control: the same image with its map moved by 1.5 px fails the line check."""
    out = outputs["0003"]
    shifted = out.sheet_map.then_image_transform(np.array([[1.0, 0, 0], [0, 1.0, 1.5], [0, 0, 1.0]]))
    errs, _ = trace_errors(shifted.rectify(out.image_rgb))
    assert np.median(np.abs(errs)) > 1.0
