"""Source classifier: the network by name, bundles that round-trip and refuse to load wrong weights, the
SourcePrediction contract, the routing table, and the input's high-pass channel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.types import IMAGE_TYPES, Page, SourcePrediction
from source_classifier.data import prepare_input
from source_classifier.infer import SourceClassifier, load_bundle, save_bundle
from source_classifier.model import create_model
from source_classifier.routing import GENERAL, ROUTES, RouteSettings, check_table, route, settings_for, stage0_options

KWARGS = {"timm_name": "tinynet_e", "in_chans": 4, "num_classes": len(IMAGE_TYPES), "drop_rate": 0.0}
INPUT_HW = (64, 80)


def _config(**over) -> dict:
    cfg = {"model_name": "timm_classifier", "model_kwargs": dict(KWARGS), "class_names": list(IMAGE_TYPES),
           "input_hw": list(INPUT_HW), "low_confidence_threshold": 0.6, "inference": {"precision": "fp32"}}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("timm_classifier", **KWARGS).eval()
    return model, save_bundle(model, _config(), tmp_path_factory.mktemp("bundle"))


def _page(seed: int = 0) -> Page:
    rng = np.random.default_rng(seed)
    return Page("p", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), fs_hz=500.0)


def test_model_by_name_has_nine_outputs():
    model = create_model("timm_classifier", **KWARGS).eval()
    with torch.inference_mode():
        out = model(torch.zeros(2, 4, *INPUT_HW))
    assert out.shape == (2, len(IMAGE_TYPES))
    with pytest.raises(ValueError, match="EfficientNet"):
        create_model("timm_classifier", timm_name="resnet50")
    with pytest.raises(KeyError):
        create_model("no_such_model")


def test_bundle_round_trips_predictions_exactly(bundle):
    model, path = bundle
    page = _page()
    direct = SourceClassifier(model, _config())(page)
    loaded = SourceClassifier.from_bundle(path)(page)
    assert loaded.image_type == direct.image_type
    assert np.array_equal(loaded.probabilities, direct.probabilities)
    assert loaded.threshold == 0.6 and loaded.image_id == "p"
    assert abs(loaded.probabilities.sum() - 1) < 1e-9


def test_mirrored_views_give_the_normalised_geometric_mean_of_the_views(bundle):
    model, _ = bundle
    page = _page(3)

    def probs(views):
        return SourceClassifier(model, _config(inference={"precision": "fp32", "views": views})).probabilities(
            page.image_rgb)

    views = ["identity", "flip_x", "flip_y", "flip_xy"]
    singles = [probs([v]) for v in views]
    assert not np.allclose(singles[0], singles[1])  # the stand-in network is not mirror-symmetric
    assert not np.allclose(singles[3], singles[1]) and not np.allclose(singles[3], singles[2])  # flip_xy: both axes
    geo = np.exp(np.mean(np.log(singles), axis=0))
    assert np.allclose(probs(views), geo / geo.sum(), atol=1e-6)
    assert np.array_equal(probs(["identity"]), SourceClassifier(model, _config()).probabilities(page.image_rgb))
    for bad in ([], ["flip_z"], ["identity", "identity"]):
        with pytest.raises(ValueError, match="views"):
            SourceClassifier(model, _config(inference={"views": bad}))


def test_bundle_refuses_missing_altered_or_mismatched_weights(bundle, tmp_path):
    _, path = bundle
    cfg = json.loads((path / "config.json").read_text())
    weights = (path / "model.safetensors").read_bytes()

    def write(folder, config, blob):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        if blob is not None:
            (folder / "model.safetensors").write_bytes(blob)
        return folder

    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_bundle(write(tmp_path / "missing", cfg, None))
    altered = bytearray(weights)
    altered[-1] ^= 1
    with pytest.raises(ValueError, match="is not the file"):
        load_bundle(write(tmp_path / "altered", cfg, bytes(altered)))
    other = dict(cfg, model_kwargs=dict(cfg["model_kwargs"], timm_name="tinynet_d"))
    with pytest.raises(ValueError, match="does not fit"):
        load_bundle(write(tmp_path / "other_net", other, weights))
    with pytest.raises(ValueError, match="class names"):
        load_bundle(write(tmp_path / "classes", dict(cfg, class_names=list(reversed(IMAGE_TYPES))), weights))


def test_source_prediction_checks():
    p = np.full(len(IMAGE_TYPES), 0.02)
    p[3] = 1 - p.sum() + 0.02
    pred = SourcePrediction("a", "0005", p, threshold=0.6)
    assert pred.confidence == pytest.approx(p[3]) and not pred.low_confidence
    assert SourcePrediction("a", "0005", p, threshold=0.9).low_confidence
    bad = [p[:-1], p * 2, np.where(np.arange(9) == 0, -0.1, p + 0.1 / 8), np.where(np.arange(9) == 0, np.nan, p)]
    for q in bad:
        with pytest.raises(ValueError, match="probabilities"):
            SourcePrediction("a", "0005", q)
    with pytest.raises(ValueError, match="most probable"):
        SourcePrediction("a", "0001", p)
    with pytest.raises(ValueError, match="threshold"):
        SourcePrediction("a", "0005", p, threshold=1.5)
    with pytest.raises(ValueError, match="image_id"):
        SourcePrediction("", "0005", p)


def test_source_prediction_saves_and_loads(tmp_path):
    p = np.full(len(IMAGE_TYPES), 1 / len(IMAGE_TYPES))
    pred = SourcePrediction("a", "0005", p, threshold=0.6)
    back = SourcePrediction.load(pred.save(tmp_path / "pred"))
    assert back.image_type == "0005" and back.low_confidence and np.array_equal(back.probabilities, p)


def test_routing_table_covers_every_type_and_general():
    check_table()
    assert set(ROUTES) == {*IMAGE_TYPES, GENERAL}
    for t in ("0005", "0006", "0009", "0010"):  # photos need the homography
        assert settings_for(t).rectifier == "keypoints" and settings_for(t).find_page
    assert settings_for("0006").descreen and settings_for("0004").binarised
    p = np.full(len(IMAGE_TYPES), 0.01)
    p[2] = 1 - 0.08
    assert route(SourcePrediction("a", "0004", p, threshold=0.6)).route == "0004"
    assert route(SourcePrediction("a", "0004", p, threshold=0.95)).route == GENERAL


def _probabilities(**named: float) -> np.ndarray:
    """Probabilities with the named types' values (keys like t0009) and the rest shared evenly."""
    p = np.zeros(len(IMAGE_TYPES))
    for key, v in named.items():
        p[IMAGE_TYPES.index(key[1:])] = v
    rest = [i for i, t in enumerate(IMAGE_TYPES) if f"t{t}" not in named]
    p[rest] = (1 - p.sum()) / len(rest)
    return p


def test_low_confidence_within_a_family_keeps_its_rectifier():
    """Torn between a stained and a damaged print photo: the keypoint rectifier with both types' settings."""
    pooled = route(SourcePrediction("a", "0009", _probabilities(t0009=0.45, t0010=0.4), threshold=0.6))
    assert pooled.route == "0009+0010" and pooled.rectifier == "keypoints"
    assert pooled.paper_normalise and pooled.despeckle and pooled.find_page
    scan = route(SourcePrediction("a", "0003", _probabilities(t0003=0.5, t0011=0.3), threshold=0.6))
    assert scan.route == "0003+0011" and scan.rectifier == "grid" and scan.despeckle and not scan.find_page
    # a colour scan or a photo: rectifiers differ, so the general settings
    torn = route(SourcePrediction("a", "0003", _probabilities(t0003=0.5, t0005=0.3), threshold=0.6))
    assert torn.route == GENERAL
    with pytest.raises(ValueError, match="route must be"):
        RouteSettings(route="0003+0099", **ROUTES["0003"])


def test_mold_scans_and_photos_are_routed_to_their_stage1_networks():
    """Black-and-white scans with mold name the mold stage-1 network, photos the photo network, the rest and the
    general route the general one; pooled with a type that names another network (unsure) they get the general
    one, sure they get their own; an unknown network is refused."""
    assert settings_for("0012").stage1 == "mold"
    assert {settings_for(t).stage1 for t in ("0005", "0006", "0009", "0010")} == {"photo"}
    assert {settings_for(t).stage1 for t in ("0001", "0003", "0004", "0011", GENERAL)} == {"general"}
    photos = route(SourcePrediction("a", "0009", _probabilities(t0009=0.45, t0010=0.4), threshold=0.6))
    assert photos.route == "0009+0010" and photos.stage1 == "photo"
    unsure = route(SourcePrediction("a", "0012", _probabilities(t0012=0.5, t0004=0.3), threshold=0.6))
    assert unsure.route == "0004+0012" and unsure.stage1 == "general"
    sure = route(SourcePrediction("a", "0012", _probabilities(t0012=0.7, t0004=0.2), threshold=0.6))
    assert sure.route == "0012" and sure.stage1 == "mold"
    with pytest.raises(ValueError, match="stage1"):
        RouteSettings(**{**ROUTES["0003"], "route": "0003", "stage1": "screen"})


def test_input_keeps_fine_texture():
    """The high-pass channel tells a noisy page from a clean one after a 9x downscale, where RGB cannot."""
    rng = np.random.default_rng(1)
    clean = np.full((1700, 2200, 3), 250, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 2.0, clean.shape[:2])[..., None], 0, 255).astype(np.uint8)
    a, b = prepare_input(clean), prepare_input(noisy)
    assert a.shape == b.shape == (192, 240, 4) and a.dtype == np.uint8
    assert abs(float(a[..., :3].mean()) - float(b[..., :3].mean())) < 1.0
    assert a[..., 3].mean() == 0 and b[..., 3].mean() > 10


def test_committed_bundle_loads_and_names_a_type():
    clf = SourceClassifier.from_bundle("weights/source_classifier", num_threads=1)
    assert clf.input_hw == tuple(clf.config["input_hw"]) and 0 < clf.threshold < 1
    pred = clf(_page(3))
    assert pred.image_type in IMAGE_TYPES and pred.threshold == clf.threshold


def test_only_a_photo_route_that_says_so_takes_the_sheet_as_flat():
    assert not settings_for("0006").sheet_may_bend  # a screen: flat glass
    assert all(settings_for(t).sheet_may_bend for t in ("0001", "0003", "0004", "0005", "0009", "0010", "0011", "0012"))


def test_only_photos_of_prints_are_photographed_prints():
    assert [t for t in ROUTES if settings_for(t).photographed_print] == ["0005", "0009", "0010"]
    # what stage 0 is told: without a route every sheet may bend and no sure grid is corrected
    assert stage0_options(None) == {"dewarp": True, "print_photo": False, "photo": False}
    assert stage0_options(settings_for("0006")) == {"dewarp": False, "print_photo": False, "photo": True}
    assert stage0_options(settings_for("0009")) == {"dewarp": True, "print_photo": True, "photo": True}
    # only a photo's route (and the unsure one, which assumes least) says the page may lie anywhere in the frame
    photos = [t for t in ROUTES if stage0_options(settings_for(t))["photo"]]
    assert photos == ["0005", "0006", "0009", "0010", "general"]
