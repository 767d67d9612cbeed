"""Stage 0's grid refinement (stage0_rectify.refine): the displacement it reads from a sheet's own grid.

The sheets are drawn here with a known displacement t of their grid lines (a line that a perfect map puts at
x = k P is drawn at x = k P + t_x), so the correction must come out as d = -t, up to the mean the grid cannot
know."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from stage0_rectify import refine
from stage0_rectify.infer import RoutingConfig, _remap
from stage0_rectify.refine import (
    NODES_HW,
    _surface,
    _surface_unwrapped,
    grid_displacement,
    grid_pitch_correction,
)

G = CANONICAL
PERIOD = G.big_box_mm * G.px_per_mm  # 5 mm in sheet px


def _nodes() -> tuple[np.ndarray, np.ndarray]:
    gh, gw = NODES_HW
    return np.meshgrid(np.linspace(0, G.width_px - 1, gw), np.linspace(0, G.height_px - 1, gh))


def _draw_sheet(tx, ty, strokes: int = 0, seed: int = 0) -> np.ndarray:
    """A pink grid (5 mm bold, 1 mm thin) displaced by (tx, ty)(x, y) sheet px, with ``strokes`` black vertical
    strokes 2 px wide and 80-240 px tall at random places (QRS complexes, letters)."""
    y, x = np.mgrid[0 : G.height_px, 0 : G.width_px].astype(np.float32)
    u, v = x - tx(x, y), y - ty(x, y)

    def near_line(c: np.ndarray, period: float, half_width: float) -> np.ndarray:
        return np.abs((c + period / 2) % period - period / 2) < half_width

    img = np.full((G.height_px, G.width_px, 3), 250, np.uint8)
    img[near_line(u, PERIOD / 5, 0.6) | near_line(v, PERIOD / 5, 0.6)] = (244, 200, 200)
    img[near_line(u, PERIOD, 1.3) | near_line(v, PERIOD, 1.3)] = (232, 120, 120)
    rng = np.random.default_rng(seed)
    for _ in range(strokes):
        x0, y0 = int(rng.integers(0, G.width_px - 2)), int(rng.integers(0, G.height_px - 240))
        h = int(rng.integers(80, 240))
        img[y0 : y0 + h, x0 : x0 + 2] = 20
    return img


def _error_px(disp: np.ndarray, tx, ty) -> tuple[float, float]:
    """rms over the nodes of (d + t), each axis with its mean removed (sheet px)."""
    x, y = _nodes()
    out = []
    for axis, t in ((0, tx(x, y)), (1, ty(x, y))):
        err = disp[..., axis] + t
        out.append(float(np.sqrt(np.mean((err - err.mean()) ** 2))))
    return out[0], out[1]


def _bow_x(x, y):
    return 3.0 * ((x / G.width_px) * 2 - 1) ** 2  # a bow of 3 px along the rows (a curled page)


def _wave_y(x, y):
    return 2.0 * np.sin(np.pi * y / G.height_px) * (0.5 + x / G.width_px)


def test_smooth_displacement_is_read_back():
    disp, info = grid_displacement(_draw_sheet(_bow_x, _wave_y))
    assert disp is not None, info
    ex, ey = _error_px(disp, _bow_x, _wave_y)
    assert ex < 0.3 and ey < 0.3, (ex, ey, info)


def test_undisplaced_sheet_needs_no_correction():
    disp, info = grid_displacement(_draw_sheet(lambda x, y: 0 * x, lambda x, y: 0 * y))
    assert disp is not None, info
    left = disp - disp.mean(axis=(0, 1))
    # 0.12 px rms, 0.44 at most (the last column: the sharp lines' harmonics leak where the window is one-sided)
    assert float(np.sqrt(np.mean(left**2))) < 0.2 and float(np.abs(left).max()) < 0.5


def test_black_strokes_on_a_coloured_grid_do_not_bend_the_correction(monkeypatch):
    """QRS strokes and letters are vertical dark lines at no particular phase: the colour map leaves them out."""
    sheet = _draw_sheet(_bow_x, _wave_y, strokes=400, seed=3)
    disp, info = grid_displacement(sheet)
    assert disp is not None and info["grid_map"] == "colour", info
    ex, _ = _error_px(disp, _bow_x, _wave_y)
    # the darkness map alone is bent by them
    monkeypatch.setattr(refine, "colour_map", lambda rgb: np.zeros(rgb.shape[:2], np.float32))
    disp_dark, info_dark = grid_displacement(sheet)
    ex_dark, _ = _error_px(disp_dark, _bow_x, _wave_y)
    assert info_dark["grid_map"] == "grid"
    assert ex < 0.3 and ex < 0.5 * ex_dark, (ex, ex_dark)


def test_trace_ink_on_a_grey_grid_is_masked_out():
    """A grid without colour (a grey print, a screen): the darkness map is all there is, and ink strokes as wide as
    a trace (4 px) would bend it; with the ink masked out they do not."""
    sheet = _draw_sheet(_bow_x, _wave_y)
    grey = sheet.min(axis=2, keepdims=True)  # the grid's darkness without its colour
    sheet = np.repeat(np.where(grey < 250, 255 - (255 - grey) // 2, 250), 3, axis=2).astype(np.uint8)
    rng = np.random.default_rng(5)
    for _ in range(300):
        x0, y0 = int(rng.integers(0, G.width_px - 4)), int(rng.integers(0, G.height_px - 240))
        sheet[y0 : y0 + int(rng.integers(80, 240)), x0 : x0 + 4] = 30
    disp, info = grid_displacement(sheet)
    assert disp is not None and info["grid_map"].endswith("-masked"), info
    ex, ey = _error_px(disp, _bow_x, _wave_y)
    unmasked = refine.grid_maps(sheet)[:2]  # the darkness and colour maps as read before the mask
    disp_raw, info_raw = grid_displacement(sheet, maps=unmasked)
    ex_raw, ey_raw = _error_px(disp_raw, _bow_x, _wave_y)
    assert ex < 0.3 and ey < 0.3, (ex, ey, info)
    assert ex < 0.5 * ex_raw, (ex, ex_raw, info_raw)


def test_a_crease_is_followed_beyond_the_smooth_surface():
    """A crease shifts the lines by 4 px over ~100 px: no cubic follows it; the local remainder does, in part."""

    def crease_x(x, y):
        return 2.0 * np.tanh((x - 0.62 * G.width_px) / 50.0)

    flat = lambda x, y: 0 * y  # noqa: E731
    disp, info = grid_displacement(_draw_sheet(crease_x, flat))
    assert disp is not None, info
    ex, _ = _error_px(disp, crease_x, flat)
    x, y = _nodes()
    t = crease_x(x, y)
    surface_only = np.sqrt(np.mean(((t - t.mean()) - _cubic_fit(t)) ** 2))
    assert ex < 0.75 * surface_only, (ex, surface_only)


def _cubic_fit(values: np.ndarray) -> np.ndarray:
    return refine._robust_poly(values - values.mean(), np.ones_like(values))


def test_a_line_of_unreadable_nodes_cannot_slip_half_the_sheet_by_a_period():
    """Quality-guided unwrapping must cross a column of weak, noisy nodes (a shadow, a fold's dark line) and can
    slip a whole 5 mm period there; a homography good to half a period needs no unwrapping."""
    x, y = _nodes()
    true_e = 12.0 * np.sin(x / G.width_px * np.pi) * np.cos(y / G.height_px * 2)  # sheet px, within ±P/2 of 0
    rng = np.random.default_rng(3)
    phase = -2 * math.pi * true_e / PERIOD + 0.05 * rng.standard_normal(true_e.shape)
    phase = (phase + math.pi) % (2 * math.pi) - math.pi
    weight = np.ones_like(true_e)
    band = slice(NODES_HW[1] // 2 - 1, NODES_HW[1] // 2 + 2)  # three columns, weak and noisy but taken
    phase[:, band] = rng.uniform(-math.pi, math.pi, (NODES_HW[0], 3))
    weight[:, band] = 0.3
    keep = np.ones_like(true_e, bool)
    keep[:, band] = False

    def worst(surface: np.ndarray) -> float:
        err = (surface - true_e)[keep]
        return float(np.abs(err - err.mean()).max())

    _, unwrapped = _surface_unwrapped(phase, weight, PERIOD)
    _, chosen = _surface(phase, weight, PERIOD)
    assert worst(unwrapped) > 5.0  # the test's premise: unwrapping slips here
    assert worst(chosen) < 2.0, worst(chosen)


@pytest.mark.parametrize("blank", [np.full((G.height_px, G.width_px, 3), 250, np.uint8)])
def test_a_sheet_without_grid_is_not_corrected(blank):
    disp, info = grid_displacement(blank)
    assert disp is None and "reject" in info


def _perspective(a: float, e: float, g: float, h: float) -> np.ndarray:
    """Sheet to sheet homography (a x, e y) / (1 + g x + h y) about the sheet's centre."""
    shift = np.array([[1.0, 0.0, (G.width_px - 1) / 2], [0.0, 1.0, (G.height_px - 1) / 2], [0.0, 0.0, 1.0]])
    return shift @ np.array([[a, 0.0, 0.0], [0.0, e, 0.0], [g, h, 1.0]]) @ np.linalg.inv(shift)


def _apply(hom: np.ndarray, x, y):
    w = hom[2, 0] * x + hom[2, 1] * y + hom[2, 2]
    return (hom[0, 0] * x + hom[0, 1] * y + hom[0, 2]) / w, (hom[1, 0] * x + hom[1, 1] * y + hom[1, 2]) / w


@pytest.mark.parametrize("truth", [(1 / 0.96, 1 / 0.96, 0.0, 0.0), (1 / 1.06, 1 / 1.06, 0.0, 0.0),
                                   (1.03, 0.98, 3e-5, -2e-5)])
def test_a_grid_drawn_at_the_wrong_scale_or_in_perspective_is_corrected(truth):
    """A sheet whose grid lines lie where ``correction`` maps the canonical ones from asks for that correction (the
    phase reading alone cannot follow a scale error of several per cent)."""
    correction = _perspective(*truth)
    sheet = _draw_sheet(lambda x, y: x - _apply(correction, x, y)[0], lambda x, y: y - _apply(correction, x, y)[1])
    found = grid_pitch_correction(sheet)
    assert found is not None
    x, y = _nodes()
    for axis in (0, 1):
        err = _apply(found, x, y)[axis] - _apply(correction, x, y)[axis]
        assert float(np.abs(err).max()) < 1.5, (axis, float(np.abs(err).max()))  # sheet px (0.3-0.7 read)


def test_a_sheet_at_the_canonical_pitch_or_without_grid_is_not_corrected():
    assert grid_pitch_correction(_draw_sheet(_bow_x, _wave_y)) is None
    assert grid_pitch_correction(np.full((G.height_px, G.width_px, 3), 250, np.uint8)) is None


def test_a_large_smooth_displacement_is_taken_where_the_lines_follow_it():
    """A 75 px bow (a keypoint homography far off at the page's ends) needs more than MAX_DISP_PX, but the grid lies
    on the correction within LARGE_DISP_RESIDUAL_PX: it is believed."""

    def big_bow(x, y):
        return 25.0 * _bow_x(x, y)

    flat = lambda x, y: 0 * y  # noqa: E731
    disp, info = grid_displacement(_draw_sheet(big_bow, flat))
    assert disp is not None, info
    assert info["max_disp_px"] > refine.MAX_DISP_PX
    ex, ey = _error_px(disp, big_bow, flat)
    x, y = _nodes()
    bow_rms = float(np.std(big_bow(x, y)))  # 22 px; the correction leaves 2.6 (its edges are read faintly)
    assert ex < 0.15 * bow_rms and ey < 0.5, (ex, ey, bow_rms)


def test_the_fine_pass_follows_creases_the_first_smooths_away():
    """Waves of 4 px every 500 px (a crumpled page): the first pass's 120 px nodes and 80 px low-pass keep little
    of them, and leave the lines far enough from its correction to ask for the second pass; that finer pass, on
    the sheet the first made and composed with it, follows them."""

    def waves_x(x, y):
        return 4.0 * np.sin(2 * np.pi * x / 500.0)

    def waves_y(x, y):
        return 2.8 * np.sin(2 * np.pi * y / 435.0 + 1.0)

    image = _draw_sheet(waves_x, waves_y)
    first, info = grid_displacement(image)
    assert first is not None, info
    assert max(info["residual_px_x"], info["residual_px_y"]) >= RoutingConfig().fine_min_residual_px, info
    first_map = SheetMap(np.eye(3), first, G)
    fine, fine_info = grid_displacement(_remap(image, first_map, G), nodes_hw=refine.FINE_NODES_HW,
                                        blur_px=refine.FINE_BLUR_SHEET_PX)
    assert fine is not None, fine_info
    both = refine.refined_map(first_map, fine, G)
    gh, gw = refine.FINE_NODES_HW
    x, y = np.meshgrid(np.linspace(0, G.width_px - 1, gw), np.linspace(0, G.height_px - 1, gh))
    inner = (x > 150) & (x < G.width_px - 150) & (y > 150) & (y < G.height_px - 150)
    nodes = np.stack([x, y], axis=-1)

    def rms(m: SheetMap) -> tuple[float, float]:
        d = m.displacement_at(nodes)
        out = []
        for axis, t in ((0, waves_x(x, y)), (1, waves_y(x, y))):
            err = (d[..., axis] + t)[inner]
            out.append(float(np.sqrt(np.mean((err - err.mean()) ** 2))))
        return out[0], out[1]

    ex1, ey1 = rms(first_map)
    ex2, ey2 = rms(both)
    assert ex2 < 0.5 * ex1 and ey2 < 0.6 * ey1, (ex1, ey1, ex2, ey2)
    assert ex2 < 1.2 and ey2 < 1.2, (ex2, ey2)


def test_refined_map_composes_the_two_displacements():
    """d(p) = d1(p) + d2(p + d1(p)): with d1 a shift along x and d2 a ramp in x, d2 is read where d1 moved p."""
    d1 = np.zeros((3, 3, 2), np.float32)
    d1[..., 0] = 10.0
    ramp = np.zeros((3, 3, 2), np.float32)
    ramp[..., 1] = np.linspace(0, G.width_px - 1.0, 3)[None, :]  # d2_y(s) = s_x
    both = refine.refined_map(SheetMap(np.eye(3), d1, G), ramp, G)
    assert both.displacement_px.shape == (3, 3, 2)
    centre = [(G.width_px - 1) / 2, (G.height_px - 1) / 2]
    np.testing.assert_allclose(both.displacement_at(np.array([[0.0, 0.0], centre])),
                               [[10.0, 10.0], [10.0, centre[0] + 10.0]], atol=0.01)


def _minor_error_px(disp: np.ndarray, tx, ty) -> tuple[float, float]:
    """rms of (d + t) over the 1 mm pass's nodes away from the sheet's edge, each axis with its mean removed."""
    gh, gw = disp.shape[:2]
    x, y = np.meshgrid(np.linspace(0, G.width_px - 1, gw), np.linspace(0, G.height_px - 1, gh))
    inner = (slice(2, -2), slice(2, -2))
    out = []
    for axis, t in ((0, tx(x, y)), (1, ty(x, y))):
        err = (disp[..., axis] + t)[inner]
        out.append(float(np.sqrt(np.mean((err - err.mean()) ** 2))))
    return out[0], out[1]


def _ripple_x(x, y):
    return 1.2 * np.sin(2 * np.pi * x / 500.0)  # a soaked page's ripple: 1.2 px within 125 px, under half a 1 mm box


def _ripple_y(x, y):
    return 0.8 * np.cos(2 * np.pi * y / 420.0)


def test_the_1mm_lines_read_what_the_5mm_passes_leave():
    """Sub-pixel ripples a 5 mm reading smooths away are read from the 1 mm lines, ink strokes and all."""
    sheet = _draw_sheet(_ripple_x, _ripple_y, strokes=300, seed=4)
    disp, info = refine.minor_displacement(sheet)
    assert disp is not None, info
    ex, ey = _minor_error_px(disp, _ripple_x, _ripple_y)
    x, y = np.meshgrid(np.arange(100, 2100, 50.0), np.arange(100, 1600, 50.0))
    left = float(np.std(_ripple_x(x, y)))  # what uncorrected leaves: 0.85 px rms
    assert ex < 0.25 and ey < 0.25, (ex, ey, info)
    assert ex < 0.3 * left


def test_a_grid_without_1mm_lines_gets_no_1mm_correction():
    """A bold 5 mm grid alone on noisy paper: its lines are as dark as ink and masked out, and the paper's noise
    gives the 1 mm reading phases that do not agree node to node: nothing is believed, nothing moved."""
    y, x = np.mgrid[0 : G.height_px, 0 : G.width_px].astype(np.float32)
    bold = ((np.abs((x + PERIOD / 2) % PERIOD - PERIOD / 2) < 1.3)
            | (np.abs((y + PERIOD / 2) % PERIOD - PERIOD / 2) < 1.3))
    sheet = np.full((G.height_px, G.width_px, 3), 250, np.uint8)
    sheet[bold] = (232, 120, 120)
    rng = np.random.default_rng(2)
    sheet = np.clip(sheet + rng.normal(0, 6, sheet.shape), 0, 255).astype(np.uint8)  # paper and sensor noise
    disp, info = refine.minor_displacement(sheet)
    assert disp is None, info


def test_a_flat_sheet_is_corrected_by_the_smooth_surface_alone():
    """On a page that lies flat (a screen) the correction is the robust cubic alone: what it leaves at the nodes
    is not added back (on flat glass it is the moire's noise), so a crease is not followed either."""

    def crease_x(x, y):
        return 2.0 * np.tanh((x - 0.62 * G.width_px) / 50.0)

    flat = lambda x, y: 0 * y  # noqa: E731
    sheet = _draw_sheet(crease_x, flat)
    bent, _ = grid_displacement(sheet)
    smooth, info = grid_displacement(sheet, local=False)
    assert smooth is not None, info
    # the flat reading is a cubic surface over the nodes: a cubic fit leaves nothing of it
    left = smooth[..., 0] - smooth[..., 0].mean() - _cubic_fit(smooth[..., 0])
    assert float(np.abs(left).max()) < 0.05
    assert _error_px(bent, crease_x, flat)[0] < _error_px(smooth, crease_x, flat)[0]


def test_the_1mm_lines_correct_a_page_where_they_show_on_only_part_of_it():
    """A torn or stained photo shows its 1 mm lines on a third to a half of the sheet: where they show, the ripple
    they carry is read (the other nodes take their neighbours' mean), not left for want of the rest."""
    sheet = _draw_sheet(_ripple_x, _ripple_y, strokes=100, seed=5)
    lined = int(0.4 * G.width_px)
    sheet[:, lined:] = 250  # the rest of the page shows no grid (torn off, or under a stain)
    disp, info = refine.minor_displacement(sheet)
    assert info["minor_read_share_x"] < 0.5, info  # the x family read on under half its nodes
    assert disp is not None, info
    gh, gw = disp.shape[:2]
    x, y = np.meshgrid(np.linspace(0, G.width_px - 1, gw), np.linspace(0, G.height_px - 1, gh))
    inner = (x > 60) & (x < lined - 60) & (y > 60) & (y < G.height_px - 60)
    err = (disp[..., 0] + _ripple_x(x, y))[inner]
    left = float(np.std(_ripple_x(x, y)[inner]))  # what uncorrected leaves
    assert float(np.sqrt(np.mean((err - err.mean()) ** 2))) < 0.3 * left, info
