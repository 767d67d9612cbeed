import numpy as np
import pytest

from common.geometry import CANONICAL, SheetGeometry
from common.layouts import LAYOUTS, LEADS, canonical_lead_name, default_placement, get_layout
from common.sheet_map import SheetMap, apply_homography


def test_canonical_sheet_scales():
    assert CANONICAL.shape_hw == (1700, 2200)
    assert CANONICAL.px_per_mm == pytest.approx(200 / 25.4)
    assert CANONICAL.px_per_s == pytest.approx(25 * 200 / 25.4)  # 196.85 px/s
    assert CANONICAL.px_per_mv == pytest.approx(10 * 200 / 25.4)  # 78.74 px/mV
    assert CANONICAL.width_mm == pytest.approx(279.4)  # US letter landscape


def test_conversions_round_trip():
    g = CANONICAL
    assert g.px_to_s(g.s_to_px(2.5)) == pytest.approx(2.5)
    assert g.px_to_mv(g.mv_to_px(-1.3)) == pytest.approx(-1.3)
    y = g.mv_to_y(1.0, baseline_y_px=800.0)
    assert y == pytest.approx(800.0 - g.px_per_mv)  # positive voltage is drawn upwards
    assert g.y_to_mv(y, 800.0) == pytest.approx(1.0)


def test_other_resolution_keeps_paper_size():
    g = CANONICAL.with_px_per_mm(300 / 25.4)
    assert g.dpi == pytest.approx(300)
    assert g.width_mm == pytest.approx(CANONICAL.width_mm, rel=1e-3)
    with pytest.raises(ValueError):
        SheetGeometry(dpi=0)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layouts_print_every_lead(name):
    layout = get_layout(name)
    for lead in LEADS:
        assert layout.printed_mask(lead, 500, 5000).any()
    placement = default_placement(layout)
    assert len(placement.baselines_y_px) == layout.n_rows
    assert all(0 < y < CANONICAL.height_px for y in placement.baselines_y_px)
    x0, x1 = placement.row_x_span_px(layout, 0)
    assert 0 < x0 < x1 < CANONICAL.width_px


def test_competition_layout_counts():
    layout = get_layout("3x4+II")
    assert layout.n_rows == 4
    assert [p.lead for p in layout.row_panels(0)] == ["I", "aVR", "V1", "V4"]
    assert layout.printed_mask("II", 1000, 10000).sum() == 10000
    assert layout.printed_mask("V4", 1025, 10250).sum() == 2562  # round(7.5*1025) .. 10250
    assert layout.printed_mask("I", 256, 2560).sum() == 640


def test_lead_names_any_case():
    assert canonical_lead_name("avr") == "aVR"
    assert canonical_lead_name("V1") == "V1"
    assert canonical_lead_name("MLII") == "II"
    with pytest.raises(KeyError):
        canonical_lead_name("vx")


def test_sheet_map_inverse_with_displacement():
    h = np.array([[0.9, 0.05, 40.0], [-0.03, 1.1, -25.0], [1e-5, -2e-5, 1.0]])
    rng = np.random.default_rng(0)
    disp = rng.normal(0, 4.0, size=(5, 6, 2)).astype(np.float32)
    m = SheetMap(h, disp)
    sheet_pts = rng.uniform([0, 0], [2199, 1699], size=(200, 2))
    back = m.image_to_sheet(m.sheet_to_image(sheet_pts))
    assert np.abs(back - sheet_pts).max() < 0.01
    plain = SheetMap(h)
    assert np.allclose(plain.image_to_sheet(sheet_pts), apply_homography(plain.image_to_sheet_h, sheet_pts))
    assert SheetMap.from_dict(m.to_dict()).to_dict() == m.to_dict()
    with pytest.raises(ValueError):
        SheetMap(np.zeros((3, 3)))


def test_rhythm_strips_in_another_order():
    from common.layouts import get_layout, rhythm_leads

    layout = get_layout("3x4+II,V1,V5/rhythm=V1,II,V5")
    assert rhythm_leads(layout) == ("V1", "II", "V5")
    assert rhythm_leads(get_layout("3x4+II,V1,V5")) == ("II", "V1", "V5")
    # 12x1's rows are its panels, not rhythm strips (their 12! orders would be no candidates to read)
    assert rhythm_leads(get_layout("12x1")) == () and rhythm_leads(get_layout("6x2")) == ()
    # the panels keep their places; only the strips' leads move
    base = get_layout("3x4+II,V1,V5")
    assert [(p.row, p.col, p.t0_s) for p in layout.panels] == [(p.row, p.col, p.t0_s) for p in base.panels]
    assert get_layout("3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm").name == "3x4+II,V1,V5/rhythm=V1,II,V5/gap3mm"
    for bad in ("3x4+II,V1,V5/rhythm=V1,II,V6", "3x4+II/rhythm=II", "3x4+II,V1,V5/gap3mm/rhythm=V1,II,V5"):
        with pytest.raises(KeyError):
            get_layout(bad)
