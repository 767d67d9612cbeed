"""Stage 1 (row trace U-Net): model, loss, data targets and bundles - small and CPU only."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from common.types import Rectified, TraceMaps
from common.weights import CONFIG_FILE, WEIGHTS_FILE
from stage1_segment.data import MapSpec, PageToSample, column_targets
from stage1_segment.infer import TraceSegmenter, bf16_native, save_bundle
from stage1_segment.model import (
    ANCHOR_CLIP,
    ANCHOR_SCALE_PX,
    anchor_channels,
    coord_channels,
    create_model,
    dense_targets,
    normalise_image,
    soft_argmax_y,
    split_logits,
    trace_loss,
)
from tests.test_fusion import randomise_batch_norms

TINY = {"n_rows": 4, "encoder_name": "tu-mobilenetv4_conv_small", "encoder_depth": 3,
        "decoder_channels": [16, 8, 8], "coord_x": True, "mask_head": True}
SCALE = 1 / 16  # maps of 106 x 138 px for the bundle tests


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("unet_rows", **TINY)


def tiny_config() -> dict:
    return {"model_name": "unet_rows", "model_kwargs": TINY, "scale_x": SCALE, "scale_y": SCALE, "layout": "3x4+II"}


def test_model_output_shape_and_column_softmax():
    model = tiny_model().eval()
    x = normalise_image(torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8))
    with torch.no_grad():
        out = model(x, coord_channels(2, 50, 70, torch.tensor([0, 30]), 200))
    assert out.shape == (2, 8, 50, 70)  # not a multiple of the stride: padded inside, cropped back
    y_logits, m_logits = split_logits(out, 4)
    assert y_logits.shape == m_logits.shape == (2, 4, 50, 70)
    p = torch.softmax(y_logits, dim=2)
    torch.testing.assert_close(p.sum(2), torch.ones(2, 4, 70))


def test_unknown_model_name_is_an_error():
    with pytest.raises(KeyError, match="unknown stage-1 model"):
        create_model("nope")


def test_coord_channels_follow_the_crop_offset():
    full = coord_channels(1, 4, 20, 0, 20)
    crop = coord_channels(2, 4, 5, torch.tensor([0, 7]), 20)
    torch.testing.assert_close(crop[1], full[0, :, :, 7:12])
    torch.testing.assert_close(crop[0], full[0, :, :, :5])


def test_targets_are_distributions_centred_on_the_labels():
    col = torch.full((1, 2, 6, 4), float("nan"))
    col[0, 0, :3] = torch.tensor([10.2, 10.4, 10.6, 10.8])  # a trace in the first three columns
    col[0, 1, 2] = torch.tensor([3.0, 8.0, 13.0, 18.0])  # a steep stroke inside one column
    t, valid = dense_targets(col, 24, sigma=0.75)
    assert valid[0, 0].tolist() == [True, True, True, False, False, False]
    assert valid[0, 1].tolist() == [False, False, True, False, False, False]
    torch.testing.assert_close(t.sum(2)[valid], torch.ones(int(valid.sum())))
    ys = torch.arange(24, dtype=torch.float32)
    mean = (t[0, 0, :, 0] * ys).sum()
    assert abs(float(mean) - 10.5) < 0.05
    stroke = t[0, 1, :, 2]  # the stroke's mass spreads evenly over its four sub-column centres
    torch.testing.assert_close(stroke[[3, 8, 13, 18]], torch.full((4,), float(stroke[3])))
    assert float(stroke[3]) > 0.1 and float(stroke[5:7].sum()) < 0.02


def test_column_targets_group_sub_columns():
    spec = MapSpec(1.0, 0.5)
    row_y = np.full((4, CANONICAL.width_px * 4), np.nan, dtype=np.float32)
    row_y[1, 400:800] = 700.0
    col = column_targets(row_y, 4, spec)
    assert col.shape == (4, 2200, 4)
    np.testing.assert_allclose(col[1, 100:200], (700.0 + 0.5) * 0.5 - 0.5)
    assert np.isnan(col[0]).all() and np.isnan(col[1, :100]).all()
    with pytest.raises(ValueError):
        column_targets(row_y, 4, MapSpec(3.0, 0.5))


def test_page_to_sample_matches_the_drawn_trace():
    from synth.factory import make_page
    from synth.signals import simulate_record

    rec = simulate_record(np.random.default_rng(3))
    page = make_page(rec, 0, 0, ["0001"], layouts=["3x4+II"], fs_choices=[500])
    spec = MapSpec(1.0, 0.5)
    s = PageToSample(spec, keep_labels=True)(page)
    assert s["image"].shape == (850, 2200, 3) and s["masks"].shape == (4, 850, 2200)
    assert s["col_y"].shape == (4, 2200, 4)
    # the anchors shown to the model are the rows' baselines (found on the page or labelled, plus noise)
    np.testing.assert_allclose(spec.map_to_sheet_y(s["anchors_map_y"]), s["baselines_y_px"], atol=15.0)
    # the labelled centre line lies on the row's mask
    for r in range(4):
        cols = np.flatnonzero(np.isfinite(s["col_y"][r]).all(-1))[::50]
        yi = np.round(np.nanmean(s["col_y"][r, cols], -1)).astype(int)
        assert (s["masks"][r, yi, cols] > 0).mean() > 0.9


def _synthetic_batch(h: int = 64, w: int = 96, seed: int = 0):
    """Two rows of sine-like traces drawn on white, and their labels."""
    rng = np.random.default_rng(seed)
    imgs, cols = [], []
    for _ in range(2):
        img = np.full((h, w, 3), 255, np.uint8)
        col = np.full((4, w, 2), np.nan, np.float32)
        xs = np.arange(w * 2) / 2 - 0.25
        for r, base in enumerate((12, 26, 40, 54)):
            y = base + 3 * np.sin(xs / rng.uniform(4, 9) + rng.uniform(0, 6))
            pts = np.stack([xs, y], 1)
            cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, (0, 0, 0), 1, cv2.LINE_AA, 4)
            col[r] = y.reshape(w, 2)
        imgs.append(img)
        cols.append(col)
    x = normalise_image(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2))
    return x, coord_channels(2, h, w, 0, w), torch.from_numpy(np.stack(cols))


def test_loss_decreases_when_overfitting_one_batch():
    model = tiny_model(1)
    x, c, col = _synthetic_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss, _ = trace_loss(model(x, c), col, None, 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def _rectified(seed: int = 0) -> Rectified:
    rng = np.random.default_rng(seed)
    sheet = rng.integers(0, 256, (*CANONICAL.shape_hw, 3), dtype=np.uint8)
    return Rectified("p1", sheet, SheetMap.identity(), CANONICAL.px_per_mm, "test", 1.0)


def test_bundle_round_trip_gives_identical_maps(tmp_path):
    model = tiny_model(2).eval()
    randomise_batch_norms(model)
    save_bundle(model, tiny_config(), tmp_path)
    seg = TraceSegmenter.from_bundle(tmp_path)
    rect = _rectified()
    maps = seg(rect)
    assert isinstance(maps, TraceMaps)
    assert maps.maps.shape == (4, round(1700 * SCALE), round(2200 * SCALE))
    np.testing.assert_allclose(maps.maps.astype(np.float32).sum(1), 1.0, atol=2e-2)
    # from_bundle folds the batch norms into the convolutions: the same maps, to float rounding
    direct = TraceSegmenter(model, seg.config, precision="fp32").probabilities(rect.sheet_rgb)
    fused = TraceSegmenter.from_bundle(tmp_path, precision="fp32").probabilities(rect.sheet_rgb)
    np.testing.assert_allclose(fused, direct, rtol=1e-4, atol=1e-6)
    again = TraceSegmenter.from_bundle(tmp_path)(rect)
    np.testing.assert_array_equal(again.maps, maps.maps)
    # the soft-argmax of a column is a y inside the map
    y = soft_argmax_y(torch.log(torch.from_numpy(maps.maps.astype(np.float32)) + 1e-9)[None])
    assert float(y.min()) >= 0 and float(y.max()) <= maps.maps.shape[1] - 1


@pytest.mark.parametrize("missing", [WEIGHTS_FILE, CONFIG_FILE])
def test_from_bundle_names_a_missing_file(tmp_path, missing):
    save_bundle(tiny_model(), tiny_config(), tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        TraceSegmenter.from_bundle(tmp_path)


def test_from_bundle_rejects_a_mismatched_config(tmp_path):
    save_bundle(tiny_model(), tiny_config(), tmp_path)
    cfg_path = tmp_path / CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    cfg["model_kwargs"]["decoder_channels"] = [24, 8, 8]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not fit"):
        TraceSegmenter.from_bundle(tmp_path)


def test_from_bundle_rejects_other_weights(tmp_path):
    save_bundle(tiny_model(0), tiny_config(), tmp_path / "a")
    save_bundle(tiny_model(1), tiny_config(), tmp_path / "b")
    (tmp_path / "b" / WEIGHTS_FILE).replace(tmp_path / "a" / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="is not the file"):
        TraceSegmenter.from_bundle(tmp_path / "a")


class _FixedOutput(torch.nn.Module):
    """Stands in for the network: a sharp y-peak in every column, and a mask head that sees ink only in
    the left half of the map."""

    position = "sheet"

    def position_channels(self, *args, **kwargs):
        return None

    def forward(self, image, coords):
        b, _, h, w = image.shape
        y = torch.full((b, 4, h, w), -20.0)
        y[:, :, h // 2, :] = 20.0
        mask = torch.full((b, 4, h, w), -20.0)
        mask[:, :, h // 2, : w // 2] = 20.0
        return torch.cat([y, mask], dim=1)


def test_columns_without_ink_are_flattened():
    seg = TraceSegmenter(_FixedOutput(), tiny_config(), views=("identity",))  # the stand-in is not mirror-symmetric
    p = seg.probabilities(_rectified().sheet_rgb)
    h, w = p.shape[1:]
    assert np.allclose(p[:, h // 2, : w // 2], 1.0, atol=1e-4)  # ink: the peak is kept
    np.testing.assert_allclose(p[:, :, w // 2 + 1 :], 1.0 / h, rtol=1e-3)  # no ink: uniform over y


ANCHORED = {**TINY, "coord_x": False, "position": "anchors"}


def test_anchor_channels_measure_distance_from_each_row():
    anchors = torch.tensor([[10.0, 30.0, 50.0, 70.0]])
    ch = anchor_channels(anchors, 80, 5, scale_y=0.5)
    assert ch.shape == (1, 4, 80, 5)
    assert float(ch[0, 1, 30, 0]) == 0.0
    assert float(ch[0, 1, 40, 3]) == pytest.approx(10 / (0.5 * ANCHOR_SCALE_PX))
    assert float(ch[0, 0, 0, 0]) < 0 < float(ch[0, 0, 79, 0]) <= ANCHOR_CLIP


def test_anchored_model_needs_anchors_and_ignores_crop_position():
    torch.manual_seed(0)
    model = create_model("unet_rows", **ANCHORED).eval()
    x = normalise_image(torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8))
    with pytest.raises(ValueError, match="anchors"):
        model.position_channels(1, 64, 64, 0, 200)
    anchors = np.array([[10.0, 25.0, 40.0, 55.0]])
    with torch.no_grad():
        a = model(x, model.position_channels(1, 64, 64, 0, 200, anchors, 0.5))
        b = model(x, model.position_channels(1, 64, 64, 120, 200, anchors, 0.5))
        moved = model(x, model.position_channels(1, 64, 64, 0, 200, anchors + 8, 0.5))
    assert a.shape == (1, 8, 64, 64)
    torch.testing.assert_close(a, b)  # only where the rows are matters, not where the crop is
    assert not torch.allclose(a, moved)


def test_transplant_keeps_shared_weights_and_remaps_the_input_channels():
    from stage1_segment.train import transplant

    src = tiny_model(3)
    dst = transplant(src, create_model("unet_rows", **ANCHORED))
    s_state, d_state = src.state_dict(), dst.state_dict()
    stem = [k for k in d_state if d_state[k].ndim == 4 and d_state[k].shape != s_state[k].shape]
    assert len(stem) == 1
    torch.testing.assert_close(d_state[stem[0]][:, :3], s_state[stem[0]][:, :3])
    assert float(d_state[stem[0]][:, 3:].abs().sum()) == 0.0
    same = [k for k in d_state if k not in stem]
    assert all(torch.equal(d_state[k], s_state[k]) for k in same)


class _BroadOutput(torch.nn.Module):
    """Stands in for the network: every row a Gaussian (sd 3 map px) over y around map row ``centre``; ink
    everywhere."""

    position = "sheet"

    def __init__(self, centre: int):
        super().__init__()
        self.centre = centre

    def position_channels(self, *args, **kwargs):
        return None

    def forward(self, image, coords):
        b, _, h, w = image.shape
        y = torch.arange(h, dtype=torch.float32)
        logits = -0.5 * ((y - self.centre) / 3.0) ** 2
        return torch.cat([logits[None, None, :, None].expand(b, 4, h, w), torch.full((b, 4, h, w), 20.0)], dim=1)


def test_ink_guidance_moves_the_mass_onto_the_drawn_line():
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    hm = round(1700 * SCALE)
    line_map_y = 50
    y0 = int(round((line_map_y + 0.5) / SCALE - 0.5))
    sheet[y0 - 8 : y0 + 8] = 20  # a dark band exactly covering map row 50
    cfg = tiny_config()
    plain = TraceSegmenter(_BroadOutput(47), cfg).probabilities(sheet)
    guided_cfg = {**cfg, "inference": {"ink_guidance": {"eps": 0.01}, "views": ["identity"]}}
    guided = TraceSegmenter(_BroadOutput(47), guided_cfg).probabilities(sheet)
    ys = np.arange(hm)
    mean_plain = (plain[0] * ys[:, None]).sum(0)
    mean_guided = (guided[0] * ys[:, None]).sum(0)
    assert np.allclose(mean_plain, 47, atol=0.5)
    assert np.all(np.abs(mean_guided - line_map_y) < 1.0)
    np.testing.assert_allclose(guided.sum(1), 1.0, rtol=1e-4)


class _DarkestRow(torch.nn.Module):
    """Stands in for the network: each column's y-logits are the image's darkness there (so the peak is on the
    drawn line wherever the line is), ink everywhere."""

    position = "sheet"

    def position_channels(self, *args, **kwargs):
        return None

    def forward(self, image, coords):
        b, _, h, w = image.shape
        y = (-40.0 * image.mean(1, keepdim=True)).expand(b, 4, h, w)
        return torch.cat([y, torch.full((b, 4, h, w), 20.0)], dim=1)


def _slanted_line_sheet() -> np.ndarray:
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    x = np.arange(CANONICAL.width_px)
    y = (200 + 0.5 * x).astype(int)
    for dy in range(-10, 11):
        sheet[y + dy, x] = 0
    return sheet


def test_mirrored_view_is_put_back_in_place():
    sheet = _slanted_line_sheet()
    plain = TraceSegmenter(_DarkestRow(), tiny_config(), views=("identity",)).probabilities(sheet)
    mirrored = TraceSegmenter(_DarkestRow(), tiny_config(), views=("flip_x",)).probabilities(sheet)
    both = TraceSegmenter(_DarkestRow(), tiny_config()).probabilities(sheet)  # the default reads both
    peak = plain[0].argmax(0)
    assert np.ptp(peak) > 20  # the line crosses many map rows: a misplaced view would not match
    np.testing.assert_array_equal(mirrored[0].argmax(0), peak)
    np.testing.assert_allclose(both, 0.5 * (plain + mirrored), atol=1e-6)
    np.testing.assert_allclose(both.sum(1), 1.0, atol=1e-5)


def test_views_and_precision_are_checked_and_bf16_stays_close():
    with pytest.raises(ValueError, match="views"):
        TraceSegmenter(tiny_model(), tiny_config(), views=("flip_y",))
    with pytest.raises(ValueError, match="views"):
        TraceSegmenter(tiny_model(), tiny_config(), views=())
    with pytest.raises(ValueError, match="precision"):
        TraceSegmenter(tiny_model(), {**tiny_config(), "inference": {"precision": "fp8"}})
    auto = TraceSegmenter(tiny_model(), tiny_config())  # a bundle that says nothing: "auto"
    assert auto.bf16 == bf16_native(torch.device("cpu"))
    assert not TraceSegmenter(tiny_model(), {**tiny_config(), "inference": {"precision": "fp32"}}).bf16
    sheet = _rectified().sheet_rgb
    fp32 = TraceSegmenter(tiny_model(4).eval(), tiny_config(), precision="fp32").probabilities(sheet)
    bf16 = TraceSegmenter(tiny_model(4).eval(), tiny_config(), precision="bf16").probabilities(sheet)
    assert not np.array_equal(fp32, bf16)  # autocast really ran
    np.testing.assert_allclose(bf16, fp32, atol=0.05)


def test_auto_precision_wants_native_bf16(monkeypatch):
    import stage1_segment.infer as infer

    monkeypatch.setattr(infer, "cpu_flags", lambda: {"avx2", "fma"})  # an AVX2-only CPU emulates bf16: slow
    assert not infer.bf16_native(torch.device("cpu"))
    assert not TraceSegmenter(tiny_model(), tiny_config(), precision="auto").bf16
    monkeypatch.setattr(infer, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert infer.bf16_native(torch.device("cpu")) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_run_writes_maps_and_overlays_and_takes_a_view(tmp_path):
    from stage1_segment.run import main as run_main

    save_bundle(tiny_model(5), tiny_config(), tmp_path / "bundle")
    pages = tmp_path / "pages"
    pages.mkdir()
    cv2.imwrite(str(pages / "p1.png"), _slanted_line_sheet())
    out = tmp_path / "out"
    assert run_main(["--images", str(pages), "--bundle", str(tmp_path / "bundle"), "--out", str(out), "--viz",
                     "--views", "flip_x", "--precision", "fp32", "--threads", "1"]) == 0
    assert (out / "p1.tracemaps.npz").is_file() and (out / "p1.overlay.png").is_file()
    with pytest.raises(SystemExit):
        run_main(["--images", str(pages), "--bundle", str(tmp_path / "bundle"), "--out", str(out),
                  "--views", "flip_y"])


def test_a_bundle_is_chosen_by_the_pages_it_is_for():
    """``train.selection_score``: the read-back SNR or the mean column error for a general network; a photo network
    by its image types' pages alone, a close-rows network by its layout's."""
    from stage1_segment.train import selection_score

    res = {"val_snr_db": 20.0, "val_mae_px": 0.5,
           "val_mae_px_by_type": {"0001": 0.2, "0005": 1.0, "0006": 2.0, "layout 12x1": 0.9}}
    assert selection_score(res, "snr") == -20.0 and selection_score(res, "mae") == 0.5
    assert selection_score(res, "mae", select_types=("0005", "0006")) == 1.5
    assert selection_score(res, "snr", select_layout="12x1") == 0.9
