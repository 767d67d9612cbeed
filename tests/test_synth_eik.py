"""ECG-Image-Kit pages -> our labels, on a committed page the generator drew (tests/data/eik: its JSON, the
values it was given, and a grey crop of its image: the start of all four rows)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.layouts import COMPETITION_LAYOUT, LEADS
from common.sheet_map import SheetMap, apply_homography
from synth import eik
from synth.labels import sub_column_x
from synth.render import RenderStyle, render_page
from synth.signals import simulate_record

DATA = Path(__file__).parent / "data" / "eik"


@pytest.fixture(scope="module")
def page() -> dict:
    with gzip.open(DATA / "page.json.gz", "rt") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def signals() -> np.ndarray:
    with np.load(DATA / "signals.npz") as npz:
        return npz["signals_mv"]


@pytest.fixture(scope="module")
def labels(page, signals):
    return eik.labels_from_eik(page, signals, "sim5")


def test_rows_and_samples_follow_the_competition_layout(labels, signals):
    assert labels.layout_name == COMPETITION_LAYOUT.name
    assert np.all(np.diff(labels.baselines_y_px) > 200)  # four rows, top to bottom
    fs = labels.fs_hz
    for lead in LEADS:
        expected = sum(p.sample_range(fs, signals.shape[1])[1] - p.sample_range(fs, signals.shape[1])[0]
                       for p in COMPETITION_LAYOUT.lead_panels(lead)) if lead != "II" else signals.shape[1]
        assert labels.lead_signal(lead).size == expected
    np.testing.assert_array_equal(labels.lead_signal("II"), signals[1])
    assert np.isfinite(labels.label_boxes_px).all() and np.isfinite(labels.pulse_boxes_px).all()


def test_row_centres_are_the_plotted_positions(labels, page):
    """Each plotted sample's position (less matplotlib's half-pixel) lies on the labelled centre line."""
    x_sub = sub_column_x(2200, labels.x_upsample)
    for entry in page["leads"]:
        yx = np.asarray(entry["plotted_pixels"]) - 0.5
        rhythm = entry["end_sample"] - entry["start_sample"] > 1000
        row = next(r for r, b in enumerate(labels.baselines_y_px)
                   if abs(np.median(yx[:, 0]) - b) < 150 and rhythm == (r == 3))
        y = np.interp(yx[1:-1, 1], x_sub, labels.row_y_px[row])
        # where the trace runs at under 1 px per sample (sub-columns are 0.25 px apart, samples 0.8 px)
        gentle = np.maximum(np.abs(np.diff(yx[:-1, 0])), np.abs(np.diff(yx[1:, 0]))) < 1.0
        assert gentle.sum() > 0.2 * gentle.size
        assert np.abs(y - yx[1:-1, 0])[gentle].max() < 0.15


def test_time_origin_and_scale(labels):
    """Panel starts sit at x0 + panel time, x0 after the generator's 0.4 s margin and 0.2 s pulse."""
    assert labels.x0_px == pytest.approx(0.6 * 200 / 25.4 * 25 - 0.5, abs=0.02)


def test_labels_sit_on_the_ink(labels):
    """Where a row runs flat, the darkest pixel of each column of the generator's image is the labelled centre."""
    crop = cv2.imread(str(DATA / "page_crop.png"), cv2.IMREAD_GRAYSCALE)
    offset = json.loads((DATA / "crop.json").read_text())
    x_sub = sub_column_x(2200, labels.x_upsample)
    errors = []
    for row in range(4):
        centre = np.interp(np.arange(2200), x_sub, labels.row_y_px[row])
        for x in range(140, 600):
            slope = abs(centre[x + 1] - centre[x - 1])
            if not np.isfinite(centre[x - 1 : x + 2]).all() or slope > 0.2:
                continue
            y = int(round(centre[x])) - offset["y0"]
            column = crop[y - 6 : y + 7, x - offset["x0"]].astype(np.float64)
            ink = np.clip(80.0 - column, 0, None)  # the trace is near-black; this page's grid is grey 102+
            assert ink.sum() > 0, f"no ink at row {row}, x {x}"
            errors.append((ink * np.arange(y - 6, y + 7)).sum() / ink.sum() + offset["y0"] - centre[x])
    errors = np.abs(errors)
    assert errors.size > 200
    assert np.median(errors) < 0.1 and np.percentile(errors, 95) < 0.35


def test_a_page_that_does_not_follow_its_values_is_refused(page, signals):
    with pytest.raises(eik.EikError, match="stray"):
        eik.labels_from_eik(page, signals * 1.05, "sim5")
    with pytest.raises(eik.EikError, match="canonical"):
        eik.labels_from_eik({**page, "resolution": 100}, signals, "sim5")
    with pytest.raises(eik.EikError, match="plain drawing"):
        eik.labels_from_eik({**page, "augment": True}, signals, "sim5")


def test_options_map_onto_the_generator_flags():
    options = eik.EikOptions(fs_hz=500, grid="bw", standard_colour=5, header=True, pulse=False, augment=True,
                             rotate_deg=4, noise=10, wrinkles=True, seed=3)
    plain, distorted = eik.generator_argv(options, False), eik.generator_argv(options, True)
    assert plain[plain.index("--random_bw") + 1] == "1" and plain[plain.index("--calibration_pulse") + 1] == "0"
    assert "--print_header" in plain and "--augment" not in plain and "--wrinkles" not in plain
    assert distorted[: len(plain)] == plain and "--augment" in distorted and "--wrinkles" in distorted
    assert options.variant == "bw/header/nopulse/augment/wrinkles"
    rng = np.random.default_rng(0)
    drawn = [eik.sample_options(rng, augmented=0.5) for _ in range(200)]
    assert {o.grid for o in drawn} == {"standard", "random", "bw", "none"}
    assert 0.3 < np.mean([o.distorted for o in drawn]) < 0.7


def test_register_recovers_a_rotation_and_crop_zoom():
    """A page turned by 3 degrees and zoomed 1.5 % about its centre (the generator's augmentation): the
    points' rotation starts it, ECC finds the zoom the JSON does not record."""
    record = simulate_record(np.random.default_rng(2), fs_hz=250.0)
    rendered = render_page(record.leads_mv, 250.0, "r", RenderStyle(grid="red", trace_width_px=2))
    sheet = rendered.sheet_rgb
    h, w = sheet.shape[:2]
    centre = ((w - 1) / 2, (h - 1) / 2)
    rotation = np.vstack([cv2.getRotationMatrix2D(centre, 3.0, 1.0), [0, 0, 1]])
    zoom = np.vstack([cv2.getRotationMatrix2D(centre, 0.0, 1.015), [0, 0, 1]])
    truth = zoom @ rotation  # sheet -> image
    image = cv2.warpPerspective(sheet, truth, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    x_sub = sub_column_x(w, rendered.labels.x_upsample)
    leads = []
    for row_y in rendered.labels.row_y_px:
        ok = np.isfinite(row_y)
        pts = np.stack([x_sub[ok], row_y[ok]], axis=1)[::8]
        leads.append(pts)

    def as_json(points):  # the generator's [y, x] display coordinates
        return {"leads": [{"plotted_pixels": (p[:, ::-1] + 0.5).tolist()} for p in points]}

    found = eik.register(image, sheet, as_json([apply_homography(rotation, p) for p in leads]), as_json(leads))
    corners = np.array([[100, 100], [2100, 100], [2100, 1600], [100, 1600]], dtype=np.float64)
    err = found.image_to_sheet(apply_homography(truth, corners)) - corners
    assert np.abs(err).max() < 0.5
    assert isinstance(found, SheetMap)


def test_generator_dir_says_what_is_missing(tmp_path):
    with pytest.raises(eik.EikError, match="not an ECG-Image-Kit checkout"):
        eik.generator_dir(tmp_path)


def _written_set(root: Path) -> None:
    """A written set of two drawings: 20000 plain, 20001 turned by the generator."""
    from synth.make import write_image

    record = simulate_record(np.random.default_rng(3), fs_hz=250.0)
    rendered = render_page(record.leads_mv, 250.0, "r", RenderStyle(grid="red", trace_width_px=2))
    turned = np.array([[1.0, 0.02, 0.0], [-0.02, 1.0, 40.0], [0.0, 0.0, 1.0]])
    for rid, sheet_map in (("20000", SheetMap.identity()), ("20001", SheetMap(turned))):
        folder = root / "train" / rid
        folder.mkdir(parents=True)
        rendered.labels.save(folder / f"{rid}.labels")
        write_image(folder / f"{rid}-{eik.IMAGE_TYPE}.png", rendered.sheet_rgb)
        (folder / f"{rid}-{eik.IMAGE_TYPE}.map.json").write_text(json.dumps(sheet_map.to_dict()))


def test_plain_drawings_are_photographed_and_distorted_ones_left(tmp_path):
    """``photograph_dataset`` adds each requested image type beside a plain drawing, with the exact map of what
    the degradation did; a drawing the generator rotated is left as it is."""
    _written_set(tmp_path)

    assert eik.photograph_dataset(tmp_path, ["0005"], seed=1) == ["20000"]
    photo = cv2.imread(str(tmp_path / "train" / "20000" / "20000-0005.png"))
    photo_map = SheetMap.from_dict(json.loads((tmp_path / "train" / "20000" / "20000-0005.map.json").read_text()))
    assert photo is not None and not np.allclose(photo_map.image_to_sheet_h, np.eye(3))
    # the sheet's centre is seen in the photo, where the map says
    centre = photo_map.sheet_to_image(np.array([[1099.5, 849.5]]))[0]
    assert 0 <= centre[0] < photo.shape[1] and 0 <= centre[1] < photo.shape[0]
    assert not list((tmp_path / "train" / "20001").glob("*-0005.*"))


def test_keypoint_pool_takes_photographs_of_the_plain_drawings(tmp_path):
    """``stage0_rectify.data.write_eik_pool``: each plain drawing degraded as each type, stored at the pool's side
    with the map of the stored (downscaled) image; the turned drawing is left out, and a rerun writes nothing."""
    from stage0_rectify.data import INPUT_SIDE, list_pool, load_pool_item, write_eik_pool

    _written_set(tmp_path / "eik")
    out = tmp_path / "kp"
    assert write_eik_pool(out, tmp_path / "eik", seed=3, types=("0005", "0001")) == 2
    items = {p.stem: load_pool_item(p) for p in list_pool(out)}
    assert sorted(items) == ["eik00000-0001", "eik00000-0005"]
    for img, _, meta in items.values():
        assert max(img.shape[:2]) == INPUT_SIDE and meta["record"] == "20000"
    # the plain render fills its image: the sheet's corners are the small image's corners
    img, sheet_map, _ = items["eik00000-0001"]
    corners = sheet_map.sheet_to_image(np.array([[-0.5, -0.5], [2199.5, 1699.5]]))
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [img.shape[1] - 0.5, img.shape[0] - 0.5]], atol=0.05)
    assert write_eik_pool(out, tmp_path / "eik", seed=3, types=("0005", "0001")) == 0


def test_a_pool_drawing_is_degraded_only_as_the_types_asked(tmp_path):
    """``load_pool_page(types=...)``: a plain drawing is degraded as one of the named types (a network for photos
    sees the other generator's pages photographed, never scanned); without ``types``, as any of the eight."""
    _written_set(tmp_path)
    plain = tmp_path / "train" / "20000"
    for seed in range(6):
        page = eik.load_pool_page(plain, np.random.default_rng(seed), degrade_share=1.0, types=("0005", "0010"))
        assert set(page.images) <= {"0005", "0010"} and len(page.images) == 1
    seen = {next(iter(eik.load_pool_page(plain, np.random.default_rng(s), degrade_share=1.0).images))
            for s in range(12)}
    assert len(seen - {"0005", "0010"}) > 0
    # a drawing the generator distorted is used as drawn
    assert set(eik.load_pool_page(tmp_path / "train" / "20001", np.random.default_rng(0), degrade_share=1.0,
                                  types=("0005",)).images) == {eik.IMAGE_TYPE}
