import numpy as np
import pytest

from common.geometry import CANONICAL
from common.layouts import LEADS
from common.sheet_map import SheetMap
from common.types import IMAGE_TYPES, Page, Rectified, Signals, SourcePrediction, TraceMaps


def _sheet():
    return np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)


def test_page_checks_and_round_trip(tmp_path):
    page = Page("62", np.zeros((300, 400, 3), np.uint8), fs_hz=500.0)
    assert page.n_samples("II") == 5000 and page.n_samples("V1") == 1250
    page.save(tmp_path / "page")
    loaded = Page.load(tmp_path / "page")
    assert loaded.image_id == "62" and np.array_equal(loaded.image_rgb, page.image_rgb)
    with pytest.raises(ValueError, match="RGB uint8"):
        Page("x", np.zeros((300, 400), np.uint8), 500.0)
    with pytest.raises(ValueError, match="fs_hz"):
        Page("x", np.zeros((300, 400, 3), np.uint8), float("nan"))


def test_source_prediction():
    p = np.full(len(IMAGE_TYPES), 1 / len(IMAGE_TYPES))
    assert SourcePrediction("1", "0005", p).image_type == "0005"
    with pytest.raises(ValueError):
        SourcePrediction("1", "0002", p)


def test_rectified_round_trip(tmp_path):
    r = Rectified("7", _sheet(), SheetMap(np.diag([2.0, 2.0, 1.0])), CANONICAL.px_per_mm, "identity", 0.9)
    r.save(tmp_path / "r")
    back = Rectified.load(tmp_path / "r")
    assert np.allclose(back.sheet_map.image_to_sheet_h, r.sheet_map.image_to_sheet_h)
    assert back.residual_grid_px is None
    Rectified("8", _sheet(), SheetMap.identity(), CANONICAL.px_per_mm, "grid", 0.9, 0.4).save(tmp_path / "g")
    assert Rectified.load(tmp_path / "g").residual_grid_px == pytest.approx(0.4)
    with pytest.raises(ValueError):
        Rectified("7", np.zeros((100, 100, 3), np.uint8), SheetMap.identity(), 7.87, "x", 0.5)
    with pytest.raises(ValueError, match="residual_grid_px"):
        Rectified("7", _sheet(), SheetMap.identity(), CANONICAL.px_per_mm, "grid", 0.9, -1.0)


def test_trace_maps_shape():
    h, w = CANONICAL.shape_hw
    TraceMaps("1", "3x4+II", np.zeros((4, h, w), np.float16))
    maps = TraceMaps("1", "6x2", np.zeros((6, h // 2, w * 2), np.float16), scale_x=2.0, scale_y=0.5)
    assert maps.sheet_x()[:2] == pytest.approx([-0.25, 0.25])
    assert maps.sheet_y()[0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        TraceMaps("1", "3x4+II", np.zeros((3, h, w), np.float16))


def test_signals_round_trip(tmp_path):
    leads = {lead: np.linspace(0, 1, 10).astype(np.float32) for lead in LEADS}
    s = Signals("9", 250.0, leads)
    s.save(tmp_path / "s")
    back = Signals.load(tmp_path / "s")
    assert all(np.array_equal(back.leads_mv[k], leads[k]) for k in LEADS)
    bad = dict(leads, V6=np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        Signals("9", 250.0, bad)
    with pytest.raises(FileNotFoundError):
        Signals.load(tmp_path / "missing")
