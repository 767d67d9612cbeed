"""End to end on a tiny synthetic set with the committed weights: predict, cv and digitize never lose a page."""

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from common.geometry import CANONICAL
from common.kaggle_io import read_test_csv, validate_submission
from common.layouts import LEADS
from common.metric import MAX_SNR
from common.sheet_map import SheetMap, apply_homography
from common.types import Page
from pipeline.__main__ import DEFAULT_WEIGHTS, main
from pipeline.chain import ImageReadError, Pipeline, read_image_rgb
from stage0_rectify.infer import quarter_turn_h
from synth.make import make_dataset
from synth.signals import simulate_record


@pytest.fixture(scope="module")
def records():
    return [simulate_record(np.random.default_rng(i), record_id=f"sim{i}") for i in range(2)]


@pytest.fixture(scope="module")
def test_layout(tmp_path_factory, records):
    out = tmp_path_factory.mktemp("test_layout")
    make_dataset(out, records, ["0001"], seed=5, layout_kind="test", fs_choices=[250], progress=False)
    return out


def test_predict_writes_a_valid_submission_and_survives_a_broken_image(test_layout, tmp_path):
    broken = sorted((test_layout / "test").glob("*.png"))[0]
    saved = broken.read_bytes()
    broken.write_bytes(b"not a png")
    try:
        out = tmp_path / "submission.parquet"
        assert main(["predict", "--data-dir", str(test_layout), "--out", str(out)]) == 0
    finally:
        broken.write_bytes(saved)
    test_df = read_test_csv(test_layout)
    assert validate_submission(out, test_df) == []
    sub = pd.read_parquet(out)
    assert len(sub) == int(test_df["number_of_rows"].sum()) and np.isfinite(sub["value"]).all()
    failures = pd.read_csv(tmp_path / "submission.failures.csv")
    assert list(failures["id"].astype(str)) == [broken.stem]
    assert "not an image: the file holds text" in failures["reason"].iloc[0]


def test_two_workers_predict_what_one_does_and_leave_the_environment_as_it_was(test_layout, tmp_path, monkeypatch):
    """Worker processes are spawned with OpenBLAS told their share of the cores; the prediction is the same as
    in one process, and this process's environment is left as it was."""
    import os

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    assert main(["predict", "--data-dir", str(test_layout), "--out", str(one)]) == 0
    assert main(["predict", "--data-dir", str(test_layout), "--out", str(two), "--workers", "2"]) == 0
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    a, b = pd.read_parquet(one), pd.read_parquet(two)
    assert list(a["id"]) == list(b["id"])
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-3)


def test_cv_scores_every_image(tmp_path, records, capsys):
    data = tmp_path / "train_layout"
    make_dataset(data, records, ["0001"], seed=6, fs_choices=[500], progress=False)
    pd.DataFrame({"image_id": ["10000-0001", "10001-0001"], "grid": ["red", "teal"],
                  "variant": ["red", "teal/header"]}).to_csv(data / "variants.csv", index=False)
    per_image = tmp_path / "cv.csv"
    assert main(["cv", "--data-dir", str(data), "--out", str(per_image)]) == 0
    scores = pd.read_csv(per_image)
    assert len(scores) == 2 and scores["snr_db"].notna().all()
    assert scores["stage0_method"].str.startswith("grid").all()  # clean renders: placed by their grid
    # the noise budget's parts are parts of the noise, which gives the score
    assert (scores["noise_uncovered"] >= 0).all() and (scores["noise_edges"] >= 0).all()
    assert (scores["noise_uncovered"] + scores["noise_edges"] <= scores["noise"] * (1 + 1e-9)).all()
    assert np.allclose(scores["snr"], np.minimum(scores["signal"] / scores["noise"], MAX_SNR))
    out = capsys.readouterr().out
    assert "overall:" in out and "noise budget" in out
    assert "per grid:" in out and "  teal:" in out and "[teal/header]" in out  # the folder's variants.csv
    assert set(scores["grid"]) == {"red", "teal"}


def test_digitize_own_images(tmp_path, test_layout, capsys):
    image = sorted((test_layout / "test").glob("*.png"))[1]
    missing = tmp_path / "nope.png"
    assert main(["digitize", str(image), str(missing), "--fs", "250", "--out", str(tmp_path / "d"), "--verbose"]) == 1
    out = capsys.readouterr().out
    assert f"{image} -> {tmp_path / 'd' / image.stem}.csv" in out and "stage1_segment" in out  # --verbose
    assert "2 pages, 1 failed" in out
    table = pd.read_csv(tmp_path / "d" / f"{image.stem}.csv")
    assert list(table.columns) == ["time_s", *LEADS] and len(table) == 2500
    # the page is drawn as 3x4+II,V1,V5 (make_dataset draws a layout per page) and read so: V1 on a 10 s strip too
    assert table["II"].notna().all() and table["V1"].notna().sum() == 2500
    assert (tmp_path / "d" / "nope.csv").is_file()  # the fallback is written too, and reported


def test_read_image_errors(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image_rgb(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError):
        Pipeline.from_bundles(tmp_path / "no_weights")
    assert (DEFAULT_WEIGHTS / "stage1_segment" / "config.json").is_file()


def _grid_sheet(px_per_mm: float) -> np.ndarray:
    """A blank canonical-size sheet printed with a pink 1 mm grid and red 5 mm lines at ``px_per_mm``."""
    from common.geometry import CANONICAL

    sheet = np.full((CANONICAL.height_px, CANONICAL.width_px, 3), 250, np.uint8)
    for axis in (0, 1):
        n = sheet.shape[axis]
        for k in range(int(n / px_per_mm) + 1):
            i = int(round(k * px_per_mm))
            if i < n:
                colour = (225, 90, 90) if k % 5 == 0 else (245, 185, 185)
                if axis == 0:
                    sheet[i] = colour
                else:
                    sheet[:, i] = colour
    return sheet


def test_a_keypoint_sheet_shows_an_ecg_by_its_rows_or_its_canonical_grid():
    from common.geometry import CANONICAL
    from pipeline.chain import shows_rows_or_grid

    # no rows of trace, but the grid at the canonical pitch: a photo's page was placed right
    assert shows_rows_or_grid(_grid_sheet(CANONICAL.px_per_mm), "3x4+II")
    # a grid 30 % too coarse (the page was stretched) or no grid at all: not shown to be an ECG
    assert not shows_rows_or_grid(_grid_sheet(1.3 * CANONICAL.px_per_mm), "3x4+II")
    assert not shows_rows_or_grid(np.full((CANONICAL.height_px, CANONICAL.width_px, 3), 250, np.uint8), "3x4+II")


def test_a_photo_left_at_the_page_width_is_refused_where_the_page_covers_little_of_it(records):
    from common.types import Rectified
    from pipeline.chain import MIN_PAGE_SHARE, NoECGFoundError, check_shows_ecg
    from synth.factory import make_page

    sheet = make_page(records[0], 0, 5, ["0001"]).sheet_rgb  # rows of trace the layout finder sees
    at_width = Rectified("p", sheet, SheetMap(np.eye(3)), CANONICAL.px_per_mm, "page_width", 0.05)
    check_shows_ecg(at_width, "3x4+II")  # the network not asked (a whole render): its rows are read
    check_shows_ecg(at_width, "3x4+II", 0.95)  # a scan edge to edge: its width is the page's
    with pytest.raises(NoECGFoundError, match="no ECG page placed in the photo"):
        check_shows_ecg(at_width, "3x4+II", MIN_PAGE_SHARE - 0.05)  # a page on a table: the width is the photo's
    for method in ("grid", "keypoints"):  # a sheet the grid or the corners placed is read
        check_shows_ecg(replace(at_width, method=method), "3x4+II", 0.3)


@pytest.mark.parametrize("code", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_a_page_fed_sideways_reads_as_it_does_upright(code):
    """The grid rectifier squares a sideways page's grid up with the rows standing; the pipeline reads it again
    turned (its sheet map still takes the image as given onto the sheet)."""
    from synth.factory import make_page

    rec = simulate_record(np.random.default_rng(6))
    image = make_page(rec, 6, 6, ["0003"], layouts=["3x4+II"], fs_choices=[500]).images["0003"].image_rgb
    pipeline = Pipeline.from_bundles(DEFAULT_WEIGHTS)
    upright = pipeline(Page("up", image, 500.0))
    turned_image = np.ascontiguousarray(cv2.rotate(image, code))
    turned = pipeline(Page("side", turned_image, 500.0))
    assert turned.rectified.method.startswith("grid") and turned.layout.name == upright.layout.name == "3x4+II"
    for lead in LEADS:
        a, b = upright.signals.leads_mv[lead], turned.signals.leads_mv[lead]
        assert np.sum((a - b) ** 2) < 0.01 * np.sum(a**2), lead
    # the map takes the sideways image onto the same sheet the upright image lands on
    turns = 1 if code == cv2.ROTATE_90_COUNTERCLOCKWISE else 3
    centre = np.array([[1100.0, 850.0]])
    expected = apply_homography(quarter_turn_h(turns, image.shape[:2]),
                                upright.rectified.sheet_map.sheet_to_image(centre))
    assert np.abs(turned.rectified.sheet_map.sheet_to_image(centre) - expected).max() < 3.0
    # without the second reading the rows stand on the sheet and nothing is read
    no_turn = Pipeline.from_bundles(DEFAULT_WEIGHTS)
    no_turn.sideways = lambda page, rectified, found: (rectified, found)
    flat = no_turn(Page("side", turned_image, 500.0))
    a, b = upright.signals.leads_mv["II"], flat.signals.leads_mv["II"]
    assert np.sum((a - b) ** 2) > 0.3 * np.sum(a**2)


def test_a_sideways_page_is_turned_the_way_its_lead_names_read(monkeypatch):
    """Of the two quarter turns, the one whose lead names read the right way up is taken before where the rows sit
    (kp5 10008-0009, a stained print held in portrait, had no pulse found either way and its rows higher on the
    upright sheet: read upside down, -1.9 dB)."""
    import pipeline.chain as chain
    from synth.factory import make_page

    rec = simulate_record(np.random.default_rng(6))
    image = make_page(rec, 6, 6, ["0003"], layouts=["3x4+II"], fs_choices=[500]).images["0003"].image_rgb
    pipeline = Pipeline.from_bundles(DEFAULT_WEIGHTS)
    upright = pipeline(Page("up", image, 500.0))
    where_rows_sit = chain.rows_centre
    monkeypatch.setattr(chain, "n_pulses", lambda found: 0)  # no pulse found either way
    monkeypatch.setattr(chain, "rows_centre", lambda found: 1.0 - where_rows_sit(found))  # the rows mislead
    turned = pipeline(Page("side", np.ascontiguousarray(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)), 500.0))
    assert turned.layout.name == "3x4+II"
    for lead in LEADS:
        a, b = upright.signals.leads_mv[lead], turned.signals.leads_mv[lead]
        assert np.sum((a - b) ** 2) < 0.01 * np.sum(a**2), lead


class _SpiedSegmenter:
    """A stage-1 reader that notes which pages it read and reads them as the wrapped one does."""

    def __init__(self, inner):
        self.inner, self.read = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, rectified, *args):
        self.read.append(rectified.image_id)
        return self.inner(rectified, *args)


class _SpiedExtractor:
    """A stage-2 reader that notes which pages' maps it read and reads them as the wrapped one does."""

    def __init__(self, inner):
        self.inner, self.read = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def extract(self, maps, *args, **kwargs):
        self.read.append(maps.image_id)
        return self.inner.extract(maps, *args, **kwargs)


def _weights_without(tmp_path, *names: str):
    """A weights folder of links to the committed bundles, all but ``names``."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for bundle in DEFAULT_WEIGHTS.iterdir():
        if bundle.is_dir() and bundle.name not in names:
            (weights / bundle.name).symlink_to(bundle.resolve())
    return weights


def _without_and_with(tmp_path, name: str, stand_in: str, *also_without: str):
    """The weights folder and the pipelines loaded from it without bundle ``name`` (nor ``also_without``) and then
    with the committed bundle ``stand_in`` linked as it."""
    weights = _weights_without(tmp_path, name, *also_without)
    without = Pipeline.from_bundles(weights)
    (weights / name).symlink_to((DEFAULT_WEIGHTS / stand_in).resolve())
    return weights, without, Pipeline.from_bundles(weights)


def _scan_and_photo():
    """A factory page as a colour scan (0003) and as a phone photo of a print (0005), 500 Hz."""
    from synth.factory import make_page

    rec = simulate_record(np.random.default_rng(8))
    images = make_page(rec, 8, 8, ["0003", "0005"], layouts=["3x4+II"], fs_choices=[500]).images
    return images["0003"].image_rgb, images["0005"].image_rgb


class _NamingClassifier:
    """A source classifier that names every page ``image_type``, surely."""

    def __init__(self, image_type: str):
        self.image_type = image_type

    def __call__(self, page):
        from common.types import IMAGE_TYPES, SourcePrediction

        p = np.full(len(IMAGE_TYPES), 0.01)
        p[IMAGE_TYPES.index(self.image_type)] = 1.0 - 0.01 * (len(IMAGE_TYPES) - 1)
        return SourcePrediction(page.image_id, self.image_type, p, threshold=0.6)


def test_sheets_the_keypoint_route_placed_are_read_by_the_photo_network(tmp_path):
    """With a photo bundle in the weights folder, a phone photo (placed by the keypoint route) is read by it and a
    scan (placed by its grid) by the stage-1 bundle; without the folder the stage-1 bundle reads both."""
    from pipeline.chain import PHOTO_BUNDLE, PHOTO_STAGE2_BUNDLE

    # (the photo stage-2 bundle reads the photo network's maps: it goes with it)
    _, without, loaded = _without_and_with(tmp_path, PHOTO_BUNDLE, "stage1_segment", PHOTO_STAGE2_BUNDLE)
    assert without.photos is None
    assert loaded.photos is not None and loaded.photos is not loaded.segmenter

    scan_rgb, photo_rgb = _scan_and_photo()
    photos, segmenter = _SpiedSegmenter(loaded.photos), _SpiedSegmenter(loaded.segmenter)
    spied = replace(loaded, photos=photos, segmenter=segmenter)
    scan = spied(Page("scan", scan_rgb, 500.0))
    photo = spied(Page("photo", photo_rgb, 500.0))
    assert scan.rectified.method != "keypoints" and photo.rectified.method == "keypoints"
    assert photos.read == ["photo"] and segmenter.read == ["scan"]


def test_the_photo_networks_maps_are_read_by_the_photo_stage_2_bundle(tmp_path):
    """With a photo stage-2 bundle in the weights folder, the maps the photo network made of a phone photo (placed
    by the keypoint route) are read by it and a scan's by the stage-2 bundle, as are the photo network's maps of a
    sheet its grid placed; without the folder the stage-2 bundle reads every page; the bundle without the photo
    network it serves is refused."""
    from pipeline.chain import PHOTO_BUNDLE, PHOTO_STAGE2_BUNDLE

    weights, without, loaded = _without_and_with(tmp_path, PHOTO_STAGE2_BUNDLE, "stage2_signal")
    assert without.photo_extractor is None
    assert loaded.photo_extractor is not None and loaded.photo_extractor is not loaded.extractor

    scan_rgb, photo_rgb = _scan_and_photo()
    photo_reader, reader = _SpiedExtractor(loaded.photo_extractor), _SpiedExtractor(loaded.extractor)
    spied = replace(loaded, photo_extractor=photo_reader, extractor=reader)
    for name, rgb in (("scan", scan_rgb), ("photo", photo_rgb)):
        spied(Page(name, rgb, 500.0))
    assert photo_reader.read == ["photo"] and reader.read == ["scan"]
    # the photo network's maps of a sheet its grid placed (a page the classifier named a photo) are read plainly
    scan = Page("scan", scan_rgb, 500.0)
    placed_by_grid = loaded.rectify(scan)
    assert placed_by_grid.method != "keypoints"
    assert loaded.stage2_for(loaded.photos, placed_by_grid) is loaded.extractor
    assert loaded.stage2_for(loaded.segmenter, replace(placed_by_grid, method="keypoints")) is loaded.extractor
    assert loaded.stage2_for(loaded.photos, replace(placed_by_grid, method="keypoints")) is loaded.photo_extractor

    (weights / PHOTO_BUNDLE).unlink()
    with pytest.raises(FileNotFoundError, match="photo network"):
        Pipeline.from_bundles(weights)


def test_the_mold_networks_maps_are_read_by_the_mold_stage_2_bundle(tmp_path):
    """With a mold stage-2 bundle in the weights folder, the mold network's maps are read by it and the general
    network's by the stage-2 bundle; the bundle without the mold network it serves is refused."""
    from pipeline.chain import MOLD_BUNDLE, MOLD_STAGE2_BUNDLE

    weights, without, loaded = _without_and_with(tmp_path, MOLD_STAGE2_BUNDLE, "stage2_signal")
    assert without.mold_extractor is None
    assert loaded.mold_extractor is not None and loaded.mold_extractor is not loaded.extractor
    scan_rgb, _ = _scan_and_photo()
    rectified = loaded.rectify(Page("scan", scan_rgb, 500.0))
    assert loaded.stage2_for(loaded.molds, rectified) is loaded.mold_extractor
    assert loaded.stage2_for(loaded.segmenter, rectified) is loaded.extractor
    (weights / MOLD_BUNDLE).unlink()
    with pytest.raises(FileNotFoundError, match="mold network"):
        Pipeline.from_bundles(weights)


def test_scans_the_classifier_names_mold_are_read_by_the_mold_network(tmp_path):
    """With a mold bundle in the weights folder, a black-and-white scan with mold is read by it (the source
    classifier names the page 0012) and a clean scan or a colour one with mold by the stage-1 bundle; a page the
    classifier names a photo by the photo bundle; a mold bundle without the classifier is refused."""
    from pipeline.chain import CLASSIFIER_BUNDLE, MOLD_BUNDLE, MOLD_STAGE2_BUNDLE
    from synth.factory import make_page

    # (the mold stage-2 bundle reads the mold network's maps: it goes with it)
    weights, without, loaded = _without_and_with(tmp_path, MOLD_BUNDLE, "stage1_segment", MOLD_STAGE2_BUNDLE)
    assert without.molds is None
    assert loaded.molds is not None and loaded.molds is not loaded.segmenter and loaded.classifier is not None

    rec = simulate_record(np.random.default_rng(8))
    images = make_page(rec, 8, 8, ["0003", "0011", "0012"], layouts=["3x4+II"], fs_choices=[500]).images
    molds, segmenter = _SpiedSegmenter(loaded.molds), _SpiedSegmenter(loaded.segmenter)
    spied = replace(loaded, molds=molds, segmenter=segmenter)
    for image_type in ("0003", "0011", "0012"):
        result = spied(Page(image_type, images[image_type].image_rgb, 500.0))
        assert result.rectified.method != "keypoints" and "source_classifier" in result.timings_s
    assert molds.read == ["0012"] and segmenter.read == ["0003", "0011"]
    # a page another route placed that the classifier names a photo (a flat photo whose grid placed it) is read by
    # the photo network
    scan = Page("0003", images["0003"].image_rgb, 500.0)
    rectified = loaded.rectify(scan)
    assert rectified.method != "keypoints"
    assert loaded.stage1_for(scan, rectified, {}) is loaded.segmenter
    named_photo = replace(loaded, classifier=_NamingClassifier("0009"))
    assert named_photo.stage1_for(scan, rectified, {}) is loaded.photos

    (weights / CLASSIFIER_BUNDLE).unlink()
    with pytest.raises(FileNotFoundError, match="source classifier"):
        Pipeline.from_bundles(weights)
    with pytest.raises(ValueError, match="source classifier"):
        replace(loaded, classifier=None)


def test_the_classifier_is_asked_once_and_its_route_says_how_stage_0_may_correct_the_sheet():
    """The route of the page's type reaches stage 0 (a screen, 0006, lies flat: no local correction) and stage 1
    (which network), from one call of the classifier; only a photo's route may take a sheet as flat."""
    pipeline = Pipeline.from_bundles(DEFAULT_WEIGHTS)
    asked, dewarps = [], []

    class Counting(_NamingClassifier):
        def __call__(self, page):
            asked.append(page.image_id)
            return super().__call__(page)

    real = pipeline.rectifier.rectify
    print_photos = []

    def spy(page, dewarp=True, print_photo=False, photo=False):
        dewarps.append(dewarp)
        print_photos.append(print_photo)
        return real(page, dewarp=dewarp, print_photo=print_photo, photo=photo)

    pipeline.rectifier.rectify = spy
    from synth.factory import make_page

    rec = simulate_record(np.random.default_rng(6))
    page = Page("p", make_page(rec, 6, 6, ["0003"], layouts=["3x4+II"], fs_choices=[500]).images["0003"].image_rgb,
                500.0)
    # a scan's route (flat too in the table) says nothing of a page stage 0 must place as a photo: real phone
    # photos are named 0003
    # and a photographed print's route has its grid corrected however surely it is read; a screen's or a scan's not
    for image_type, flat, print_photo in (("0006", True, False), ("0005", False, True), ("0003", False, False)):
        replace(pipeline, classifier=Counting(image_type))(page)
        assert dewarps[-1] is (not flat) and print_photos[-1] is print_photo
    assert asked == ["p", "p", "p"] and "source_classifier" in pipeline(page).timings_s
