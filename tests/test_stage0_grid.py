"""Stage 0 grid rectifier on factory pages (no data on disk): pitch, rotation and placement against the labelled
sheet maps, re-rendered scales and skews, scans, gridless pages, and the folder CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from common.geometry import CANONICAL
from common.sheet_map import SheetMap, apply_homography
from common.types import Page, Rectified
from stage0_rectify.grid import as_rgb, estimate_grid, rectify_from_grid
from stage0_rectify.run import main as run_main
from synth.factory import make_page
from synth.render import RenderStyle, render_page
from synth.signals import enforce_einthoven, prepare, simulate_record

W, H = CANONICAL.width_px, CANONICAL.height_px
PPM = CANONICAL.px_per_mm
SHEET_PTS = np.array([[0, 0], [W - 1, 0], [W - 1, H - 1], [0, H - 1], [W / 2, H / 2], [300, 1200]], float)
SCAN_TYPES = ("0003", "0004", "0011", "0012")


def _page(index: int, types=("0001",)):
    return make_page(simulate_record(np.random.default_rng(index)), index, 7, types)


@pytest.fixture(scope="module")
def pages():
    """Factory pages with a grid (seed 7: index 0 blue, 1 pink, 3 pink), all scan types for index 1."""
    return {0: _page(0), 1: _page(1, ("0001", *SCAN_TYPES)), 3: _page(3)}


def _true_ppm(sheet_map: SheetMap) -> float:
    return PPM / np.sqrt(abs(np.linalg.det(sheet_map.image_to_sheet_h[:2, :2])))


def _sheet_error(est_h: np.ndarray, true_map: SheetMap) -> np.ndarray:
    """Where the estimate puts each sheet point (taken to the image by the true map), minus the point."""
    img_pts = true_map.sheet_to_image(SHEET_PTS)
    return apply_homography(est_h, img_pts) - SHEET_PTS


@pytest.mark.parametrize("index", [0, 1, 3])
def test_renders_map_to_identity(pages, index):
    img = pages[index].images["0001"]
    est = estimate_grid(img.image_rgb)
    assert est.method == "grid" and est.confidence > 0.9
    assert est.px_per_mm == pytest.approx(PPM, rel=0.005)
    assert abs(est.angle_deg) < 0.05
    err = np.linalg.norm(_sheet_error(est.image_to_sheet_h, img.sheet_map), axis=1)
    assert err.max() < 1.0, err


def test_rectify_from_grid_contract(pages):
    img = pages[1].images["0001"]
    rec = rectify_from_grid(Page("p1", img.image_rgb, 500.0))
    assert isinstance(rec, Rectified) and rec.image_id == "p1" and rec.method == "grid"
    assert rec.sheet_rgb.shape == (H, W, 3) and rec.px_per_mm == pytest.approx(PPM)
    # the render maps to itself: the rectified sheet is the image
    diff = np.abs(rec.sheet_rgb.astype(np.int16) - img.image_rgb.astype(np.int16))
    assert np.percentile(diff, 99.9) <= 2
    # one affine grid explains a render: its lines stray from it by a fraction of a px
    assert rec.residual_grid_px is not None and rec.residual_grid_px < 0.5


def test_a_bent_page_has_a_larger_residual_grid_error(pages):
    """A page whose right half is sheared down (a fold) leaves its grid further from any one affine grid."""
    img = pages[1].images["0001"].image_rgb
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bent = cv2.remap(img, xs, ys - 6.0 * np.clip((xs - w / 2) / (w / 2), 0, 1) ** 2, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    flat, folded = rectify_from_grid(img), rectify_from_grid(bent)
    assert folded.residual_grid_px is not None and folded.residual_grid_px > 2 * flat.residual_grid_px


def _warp(sheet: np.ndarray, scale: float, angle_deg: float, pad: int):
    """Sheet -> image: rotate by angle (clockwise as displayed for > 0) and scale about the sheet centre, put on
    a white canvas with ``pad`` px margins around the rotated page. Returns image and sheet -> image 2x3."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = SHEET_PTS[:4] @ rot.T
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    m = np.hstack([rot, (pad - lo)[:, None]])
    size = (int(np.ceil(hi[0] - lo[0])) + 2 * pad, int(np.ceil(hi[1] - lo[1])) + 2 * pad)
    img = cv2.warpAffine(sheet, m, size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
    return img, m


@pytest.mark.parametrize("scale,angle", [(0.7, 0.0), (1.3, 0.0), (1.0, 3.0), (1.0, -3.0), (0.7, -3.0), (1.3, 3.0),
                                         (0.85, 5.0), (1.15, -5.0)])
def test_rescaled_and_rotated_pages(pages, scale, angle):
    page = pages[1]
    img, m = _warp(page.sheet_rgb, scale, angle, pad=60)
    est = estimate_grid(img)
    assert est.method == "grid"
    assert est.px_per_mm == pytest.approx(PPM * scale, rel=0.01)
    assert est.angle_deg == pytest.approx(angle, abs=0.1)
    true_map = SheetMap(np.linalg.inv(np.vstack([m, [0, 0, 1]])))
    assert np.abs(_sheet_error(est.image_to_sheet_h, true_map)).max() < 2.0
    # the rectified sheet has its ink (traces, labels) where the original sheet has it, and the traces are there
    sheet = SheetMap(est.image_to_sheet_h).rectify(img)
    orig_ink = page.sheet_rgb.min(axis=2) < 100
    dist = cv2.distanceTransform((~orig_ink).astype(np.uint8), cv2.DIST_L2, 3)
    ink = sheet.min(axis=2) < 100
    assert ink.sum() > 5000
    assert np.percentile(dist[ink], 99.5) <= 2.0
    trace = page.labels.row_masks.max(axis=0) > 128
    assert (sheet.min(axis=2) < 170)[trace].mean() > 0.9  # thin traces fade when shrunk and enlarged again


@pytest.mark.parametrize("image_type", SCAN_TYPES)
def test_scans(pages, image_type):
    img = pages[1].images[image_type]
    est = estimate_grid(img.image_rgb)
    assert est.px_per_mm == pytest.approx(_true_ppm(img.sheet_map), rel=0.015)
    err = _sheet_error(est.image_to_sheet_h, img.sheet_map)
    resid = err - err.mean(axis=0)  # scale and rotation: the page placement itself is only roughly known
    assert np.abs(resid).max() < (3.0 if est.method.startswith("grid") else 25.0)
    assert np.abs(err).max() < 60.0


def _gridless_page(pulse: bool) -> np.ndarray:
    rec = simulate_record(np.random.default_rng(5))
    sig = enforce_einthoven(prepare(rec, 500).leads_mv)
    style = RenderStyle(grid="none", calibration_pulse=pulse, paper_rgb=(250, 250, 248))
    return render_page(sig, 500, "g", style, np.random.default_rng(0)).sheet_rgb


def test_gridless_page_uses_the_pulse():
    """A page that is not a whole Letter render (here trimmed by 40 px) takes its scale from the pulses."""
    est = estimate_grid(_gridless_page(pulse=True)[20:-20, 20:-20])
    assert est.method == "pulse" and est.confidence <= 0.6
    assert rectify_from_grid(_gridless_page(pulse=True)[20:-20, 20:-20]).residual_grid_px is None  # no grid read
    assert est.px_per_mm == pytest.approx(PPM, rel=0.01)


@pytest.mark.parametrize("grid_ppm,grid_conf,kept", [(PPM / 4, 0.05, False), (PPM * 1.05, 0.05, True),
                                                      (PPM / 4, 0.7, True)])
def test_sure_pulses_overrule_an_unsure_grid_far_from_their_scale(monkeypatch, grid_ppm, grid_conf, kept):
    """A gridless scan's text or speckle read as a weak "grid" a quarter of the true pitch (factory scan
    10008-0011: 0.05 sure, 2.17 px/mm where four pulses said 8.60): sure pulses replace it; a weak grid near
    their scale, or a sure one, stays (the comb's reading is stubbed here: it finds nothing on a clean page)."""
    import stage0_rectify.grid as grid_module

    def fake_grid(g, comb, s_all, s_h, s_v, f, rgb, full_hw, geometry, info, one_mm_known=False):
        return grid_module.GridEstimate(grid_ppm, (grid_ppm, grid_ppm), 0.0, np.eye(3), "grid_minor", grid_conf,
                                        dict(info))

    monkeypatch.setattr(grid_module, "_grid_estimate", fake_grid)
    monkeypatch.setattr(grid_module, "MIN_COMB_SCORE", -np.inf)  # the stub is asked on any page
    est = estimate_grid(_gridless_page(pulse=True)[20:-20, 20:-20])
    if kept:
        assert est.method == "grid_minor" and est.px_per_mm == grid_ppm
    else:
        assert est.method == "pulse" and est.px_per_mm == pytest.approx(PPM, rel=0.01)
        assert est.info["grid_overruled"]["px_per_mm"] == pytest.approx(grid_ppm, abs=1e-3)


def test_a_whole_letter_render_is_scaled_by_its_width_rather_than_its_pulses():
    est = estimate_grid(_gridless_page(pulse=True))
    assert est.method == "page_width" and est.px_per_mm == pytest.approx(W / 279.4)
    assert est.info["pulse_px_per_mm"] == pytest.approx(PPM, rel=0.01)  # found, and reported


def _abutting_pulse_image(trace_start_mm: float, ppm: float = 6.5, bar_mm: float = 0.0) -> np.ndarray:
    """ECG-Image-Kit's pulse: a foot of two samples, up 10 mm, 5 mm across, down to 0 mV, and the trace
    starting right there at its own first value (``trace_start_mm`` above the baseline), drawn at ``ppm``;
    ``bar_mm``: a separator bar over the falling edge, from 1 mm below the baseline up to this far above it."""
    img = np.full((240, 520, 3), 250, np.uint8)
    x0, base = 60.0, 160.0
    step = 25 * ppm / 500  # one sample at 500 Hz
    pulse = [(x0, base), (x0 + 2 * step, base), (x0 + 3 * step, base - 10 * ppm),
             (x0 + 5 * ppm, base - 10 * ppm), (x0 + 5 * ppm + step, base)]
    t = np.arange(0.0, 2.0, 1 / 500)
    trace = np.stack([x0 + 5 * ppm + step + 25 * ppm * t,
                      base - ppm * (trace_start_mm + 3.0 * np.sin(2 * np.pi * 1.3 * t))], axis=1)
    for pts in (np.array(pulse), trace):
        cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, (20, 20, 20), 2, cv2.LINE_AA, 4)
    if bar_mm:
        bar = np.array([(x0 + 5 * ppm + step, base + ppm), (x0 + 5 * ppm + step, base - bar_mm * ppm)])
        cv2.polylines(img, [np.round(bar * 16).astype(np.int32)], False, (20, 20, 20), 3, cv2.LINE_AA, 4)
    return img


@pytest.mark.parametrize("trace_start_mm", [4.0, -3.0])
def test_a_pulse_without_lead_in_is_measured_from_its_own_foot(trace_start_mm):
    """The trace after the pulse starts anywhere (it used to be taken for the baseline: 4 mm above it read the
    pulse 40 % short, then several % off once averaged): the rising stroke's foot is the baseline."""
    from stage0_rectify.pulse import find_pulses

    est = find_pulses(_abutting_pulse_image(trace_start_mm))
    assert est is not None and est.px_per_mm == pytest.approx(6.5, rel=0.01), est


def test_a_pulse_whose_falling_edge_carries_a_separator_bar_is_found():
    """ECG-Image-Kit draws a separator bar at the start of some rows, over the pulse's falling edge and 3-5 mm
    above its top: the two strokes then differ in height; the bar's part below the top is the edge."""
    from stage0_rectify.pulse import find_pulses

    img = np.pad(_abutting_pulse_image(4.0, bar_mm=14.0), ((120, 120), (0, 0), (0, 0)), constant_values=250)
    est = find_pulses(img)  # (on a page: a stroke over a third of the image's height is no pulse's)
    assert est is not None and est.n_pulses == 1 and est.px_per_mm == pytest.approx(6.5, rel=0.015), est


def test_a_grid_too_faint_for_the_comb_is_found_where_the_pulses_point():
    """A 1 mm grid the comb alone does not trust (here: it trusts nothing) is fitted at the frequency the
    calibration pulses give, to a fraction of their own precision; without pulses there is nothing to guide it."""
    import stage0_rectify.grid as grid_module

    ppm = 6.5
    img = _abutting_pulse_image(0.0, ppm)
    for x in np.arange(3.0, img.shape[1], ppm):
        img[:, int(round(x))] = np.minimum(img[:, int(round(x))], 215)
    for y in np.arange(5.0, img.shape[0], ppm):
        img[int(round(y)), :] = np.minimum(img[int(round(y)), :], 215)
    noise = np.random.default_rng(0).normal(0.0, 12.0, img.shape[:2])[..., None]
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    assert estimate_grid(img).method.startswith("grid")  # the comb itself sees this grid
    original = grid_module.MIN_COMB_SCORE
    grid_module.MIN_COMB_SCORE = np.inf
    try:
        est = estimate_grid(img)
        assert est.method == "grid_minor" and est.info.get("pulse_guided"), est.info
        assert est.px_per_mm == pytest.approx(ppm, rel=0.002)
        blank = img.copy()
        blank[80:200, 30:110] = 250  # no pulse: no guide
        assert estimate_grid(blank).method == "page_width"
    finally:
        grid_module.MIN_COMB_SCORE = original


def test_gridless_page_without_pulse_falls_back_to_page_width():
    img = _gridless_page(pulse=False)
    est = estimate_grid(img)
    assert est.method == "page_width" and est.confidence <= 0.1
    assert est.px_per_mm == pytest.approx(W / 279.4)
    rec = rectify_from_grid(img, image_id="g")
    assert rec.sheet_rgb.shape == (H, W, 3)


@pytest.mark.parametrize("kind", ["white", "noise", "tiny_text"])
def test_degenerate_images_do_not_crash(kind):
    rng = np.random.default_rng(0)
    if kind == "white":
        img = np.full((400, 600, 3), 255, np.uint8)
    elif kind == "noise":
        img = rng.integers(0, 256, (500, 700, 3), dtype=np.uint8)
    else:
        img = np.full((60, 200, 3), 255, np.uint8)
        cv2.putText(img, "ECG", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    est = estimate_grid(img)
    assert np.isfinite(est.image_to_sheet_h).all() and 0.0 <= est.confidence <= 1.0
    assert est.method in ("page_width", "pulse") and est.confidence <= 0.6


def test_as_rgb_conversions():
    grey = np.full((40, 50), 100, np.uint8)
    assert as_rgb(grey).shape == (40, 50, 3)
    rgba = np.zeros((40, 50, 4), np.uint8)  # fully transparent black -> white paper
    assert (as_rgb(rgba) == 255).all()
    assert as_rgb(np.full((40, 50, 3), 1.0)).max() == 255
    assert as_rgb(np.ones((40, 50), np.uint16) * 65535).min() == 255
    with pytest.raises(ValueError):
        as_rgb(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        as_rgb(np.zeros((40, 50, 2), np.uint8))


def test_cli_reports_bad_files_and_goes_on(tmp_path, pages):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    small = cv2.resize(pages[0].images["0001"].image_rgb, (1100, 850), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(src / "a_good.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    (src / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (src / "c_empty.jpg").write_bytes(b"")
    cv2.imwrite(str(src / "d_tiny.bmp"), np.zeros((5, 5, 3), np.uint8))
    cv2.imwrite(str(src / "e_grey16.png"), (cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257))
    (src / "notes.txt").write_text("not an image")
    assert run_main(["--images", str(src), "--out", str(out), "--viz"]) == 0
    recs = {r["file"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(recs) == {"a_good.png", "b_corrupt.png", "c_empty.jpg", "d_tiny.bmp", "e_grey16.png"}
    good = recs["a_good.png"]
    assert good["ok"] and good["method"] == "grid" and good["px_per_mm"] == pytest.approx(PPM / 2, rel=0.01)
    assert (out / "a_good.png").is_file() and (out / "viz" / "a_good.jpg").is_file()
    assert recs["e_grey16.png"]["ok"] and recs["e_grey16.png"]["px_per_mm"] == pytest.approx(PPM / 2, rel=0.01)
    for bad in ("b_corrupt.png", "c_empty.jpg", "d_tiny.bmp"):
        assert not recs[bad]["ok"] and recs[bad]["error"]


def test_dark_same_coloured_grids_give_the_pitch():
    """ECG-Image-Kit's random grid colours: dark hues, minor lines the major colour lightened by at most 0.2, so
    the 5 mm lines hardly stand out. The pitch must still be 1 mm = 7.87 px (it once read 9.0)."""
    from common.geometry import CANONICAL
    from stage0_rectify.grid import estimate_grid
    from synth.render import eik_look_of, render_page, sample_style

    record = simulate_record(np.random.default_rng(2), fs_hz=500.0)
    checked = 0
    for seed in range(40):
        style = eik_look_of(sample_style(np.random.default_rng(seed), "3x4+II"), np.random.default_rng(seed))
        if style.grid != "custom":
            continue
        minor, major = (np.asarray(c, float) for c in style.grid_rgb)
        if np.abs(minor - major).max() > 60:
            continue  # keep the hard ones: majors barely darker than minors
        est = estimate_grid(render_page(record.leads_mv, 500.0, "r", style).sheet_rgb)
        assert est.method.startswith("grid")
        assert abs(est.px_per_mm / CANONICAL.px_per_mm - 1) < 0.002, (seed, est.method, est.px_per_mm, est.info)
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_a_gridless_letter_render_is_scaled_by_its_width():
    import dataclasses

    """A 2200 x 1700 render is a Letter page at 200 dpi: its width gives the scale; a pulse that disagrees is
    reported."""
    from common.geometry import CANONICAL
    from stage0_rectify.grid import estimate_grid
    from synth.render import eik_look_of, render_page, sample_style

    record = simulate_record(np.random.default_rng(5), fs_hz=250.0)
    style = dataclasses.replace(eik_look_of(sample_style(np.random.default_rng(1), "3x4+II"), np.random.default_rng(1)),
                                grid="none", grid_rgb=None, calibration_pulse=True)
    est = estimate_grid(render_page(record.leads_mv, 250.0, "r", style).sheet_rgb)
    assert est.method == "page_width" and est.px_per_mm == pytest.approx(CANONICAL.px_per_mm)
    if "pitch_disagree" in est.info:
        assert abs(est.info["pulse_px_per_mm"] / CANONICAL.px_per_mm - 1) > 0.01


def test_a_tinted_page_keeps_its_grid():
    """ECG-Image-Kit's colour-temperature shift tints the whole page (here warm, on its black-and-white grid):
    colour saturation is then everywhere, and only what stands above the paper's own counts as grid."""
    from common.geometry import CANONICAL

    record = simulate_record(np.random.default_rng(3), fs_hz=500.0)
    style = RenderStyle(grid="custom", grid_rgb=((191, 191, 191), (102, 102, 102)), grid_width_px=1.4,
                        minor_width_px=1.4, grid_snap=True, trace_width_px=2, trace_grey=20)
    sheet = render_page(record.leads_mv, 500.0, "r", style).sheet_rgb.astype(np.float64)
    tinted = np.clip(sheet * np.array([0.96, 0.64, 0.34]), 0, 255).astype(np.uint8)
    est = estimate_grid(tinted)
    assert est.method.startswith("grid"), est.info
    assert abs(est.px_per_mm / CANONICAL.px_per_mm - 1) < 0.002


def _wide_paper(sheet_rgb: np.ndarray, paper_mm: float, chart_left_mm: float, stretch: float = 1.0) -> np.ndarray:
    """A ``paper_mm`` wide page at the canonical px/mm, gridded edge to edge, with the ink of ``sheet_rgb`` (its
    traces and labels, ``stretch`` times as wide) printed ``chart_left_mm`` further right than on the sheet."""
    if stretch != 1.0:
        sheet_rgb = cv2.resize(sheet_rgb, None, fx=stretch, fy=1.0, interpolation=cv2.INTER_NEAREST)
    w = int(round(paper_mm * PPM))
    img = np.full((H, w, 3), 255, np.uint8)
    for k in range(int(paper_mm) + 1):
        x = int(round(k * PPM))
        img[:, x : x + (2 if k % 5 == 0 else 1)] = (240, 120, 130) if k % 5 == 0 else (250, 205, 205)
    for k in range(int(H / PPM) + 1):
        y = int(round(k * PPM))
        img[y : y + (2 if k % 5 == 0 else 1)] = (240, 120, 130) if k % 5 == 0 else (250, 205, 205)
    ink = sheet_rgb.min(axis=2) < 100
    ys, xs = np.nonzero(ink)
    img[ys, xs + int(round(chart_left_mm * PPM))] = sheet_rgb[ys, xs]
    return img


@pytest.mark.parametrize("chart_left_mm", [0.0, 50.0])
def test_a_chart_on_wider_paper_stays_on_the_sheet(pages, chart_left_mm):
    """330 mm paper with the chart near its left or right edge: the sheet (279 mm at the canonical px/mm) is a
    window over the chart, not the paper's centre, which would cut 25 mm off each side of it."""
    sheet = pages[1].sheet_rgb
    img = _wide_paper(sheet, 330.0, chart_left_mm)
    est = estimate_grid(img)
    assert est.method == "grid" and est.px_per_mm == pytest.approx(PPM, rel=0.005)
    assert est.info["anchor"][0] == "chart"
    out = SheetMap(est.image_to_sheet_h).rectify(img)
    x_in = np.flatnonzero((img.min(axis=2) < 100).any(axis=0))
    x_out = np.flatnonzero((out.min(axis=2) < 110).any(axis=0))  # a sub-px shift greys 1 px strokes
    assert x_out[0] > 0 and x_out[-1] < W - 1  # nothing runs off either edge
    assert x_out[-1] - x_out[0] >= x_in[-1] - x_in[0] - 2


def test_a_chart_wider_than_the_window_less_its_margins_is_kept_on_it(pages):
    """A chart 277 mm wide (the window is 279.4 mm, 273 mm inside its margins) on 330 mm paper, printed 40 mm
    from the paper's left edge: moved onto the window, not left where the paper's centre cuts its right end."""
    img = _wide_paper(pages[1].sheet_rgb, 330.0, 40.0, stretch=1.07)
    est = estimate_grid(img)
    assert est.info["anchor"][0] == "chart"
    out = SheetMap(est.image_to_sheet_h).rectify(img)
    x_in = np.flatnonzero((img.min(axis=2) < 100).any(axis=0))
    x_out = np.flatnonzero((out.min(axis=2) < 110).any(axis=0))
    assert x_out[-1] - x_out[0] >= x_in[-1] - x_in[0] - 10  # a few px of its outermost ink at most


def test_a_chart_wider_than_the_window_keeps_its_left_end(pages):
    """A chart 10 % wider than the window (a row with gaps between its panels on 330 mm paper): its left end, where
    the calibration pulses and the first panels start, stays on the sheet; the right end is what is cut."""
    img = _wide_paper(pages[1].sheet_rgb, 330.0, 10.0, stretch=1.2)
    x_in = np.flatnonzero((img.min(axis=2) < 100).any(axis=0))
    assert (x_in[-1] - x_in[0]) / PPM > 1.05 * W / PPM
    est = estimate_grid(img)
    assert est.info["anchor"][0] == "chart"
    left = apply_homography(est.image_to_sheet_h, np.array([[x_in[0], H / 2.0]]))[0, 0]
    right = apply_homography(est.image_to_sheet_h, np.array([[x_in[-1], H / 2.0]]))[0, 0]
    assert 0.0 <= left < 0.5 * PPM and right > W, (left, right)
