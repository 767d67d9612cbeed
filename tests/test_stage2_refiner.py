"""Stage-2 refiner: the network's contract, its loss against the metric, bundle loading, a training run that
learns a systematic reading error, and the collection of real readings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.layouts import LEADS
from common.metric import image_snr
from stage2_signal.data import read_page, reading_config
from stage2_signal.infer import ExtractorConfig, SignalExtractor
from stage2_signal.model import INPUT_CHANNELS, REFINE_FS_HZ, create_refiner, snr_loss
from stage2_signal.refine import Refiner, resample_linear
from stage2_signal.train import main as train_main

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
TINY = {"channels": 8, "kernel": 5, "dilations": [1, 2, 4]}


def _leads(fs: float, rng: np.random.Generator) -> dict:
    t = np.arange(int(2.5 * fs)) / fs
    out = {lead: np.sin(2 * np.pi * (1 + i % 3) * t) + 0.1 * rng.standard_normal(t.size)
           for i, lead in enumerate(LEADS)}
    out["II"] = np.sin(2 * np.pi * 1.3 * np.arange(int(10 * fs)) / fs)
    return out


def test_refiner_shapes_and_padding():
    model = create_refiner("lead_cnn", **TINY)
    with torch.no_grad():
        model.head.weight.fill_(0.1)  # a non-zero output, to see the mask act
    x = torch.randn(3, INPUT_CHANNELS, 200)
    x[:, 2] = 1.0
    x[1, 2, 150:] = 0.0
    out = model(x)
    assert out.shape == (3, 200)
    assert torch.all(out[1, 150:] == 0) and torch.any(out[1, :150] != 0)
    with pytest.raises(ValueError, match="refiner input"):
        model(torch.randn(3, 2, 200))


@pytest.mark.parametrize("fs", [100.0, 500.0, 1025.0])
def test_untrained_refiner_is_the_identity_at_any_fs(fs):
    leads = _leads(fs, np.random.default_rng(0))
    conf = {lead: np.ones_like(v) for lead, v in leads.items()}
    section = {"fs_hz": REFINE_FS_HZ}
    out = Refiner(create_refiner("lead_cnn", **TINY), section)(leads, conf, fs)
    for lead in LEADS:
        assert out[lead].shape == leads[lead].shape
        np.testing.assert_allclose(out[lead], leads[lead], atol=1e-12)


class _OffsetAndGain(torch.nn.Module):
    """Stands in for a trained refiner: a correction of 0.5 mV plus a tenth of the lead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.1 * x[:, 0]


def test_the_refiner_keeps_the_baseline_stage_2_read():
    """The loss forgives a lead's constant offset, so a network's correction may carry one: it is taken out, the
    rest of the correction kept."""
    fs = REFINE_FS_HZ
    leads = _leads(fs, np.random.default_rng(1))
    conf = {lead: np.ones_like(v) for lead, v in leads.items()}
    out = Refiner(_OffsetAndGain(), {"fs_hz": REFINE_FS_HZ})(leads, conf, fs)
    for lead in LEADS:
        delta = out[lead] - leads[lead]
        assert abs(delta.mean()) < 1e-6
        np.testing.assert_allclose(delta, 0.1 * (leads[lead] - leads[lead].mean()), atol=1e-5)


def test_resample_round_trip_keeps_smooth_signals():
    t = np.arange(1025) / 1025.0
    x = np.sin(2 * np.pi * 3 * t)
    back = resample_linear(resample_linear(x, 1025.0, 250.0), 250.0, 1025.0, x.size)
    assert np.abs(back - x)[:-5].max() < 0.01


def test_snr_loss_is_the_metrics_snr_without_lag():
    rng = np.random.default_rng(1)
    truth = {lead: rng.standard_normal(500) for lead in LEADS[:3]}
    pred = {lead: v + 0.2 * rng.standard_normal(500) + 3.0 for lead, v in truth.items()}  # offsets are forgiven
    ref_db = 10 * np.log10(image_snr(truth, pred, 200.0))
    y = torch.tensor(np.stack(list(truth.values())), dtype=torch.float64)
    p = torch.tensor(np.stack(list(pred.values())), dtype=torch.float64)
    loss = snr_loss(p, y, torch.ones_like(y), torch.zeros(3, dtype=torch.long))
    assert -10 * float(loss) == pytest.approx(ref_db, abs=0.3)  # the metric may also find a small lag


def test_metric_weighting_follows_the_mean_linear_snr():
    """Weighted by linear SNR, the loss's gradient is the metric's: a page above the cap gets none, and a clean
    page pulls harder than a noisy one, where the per-page weighting treats them alike."""
    rng = np.random.default_rng(2)
    y = torch.tensor(rng.standard_normal((3, 400)))
    noise_sd = torch.tensor([0.01, 0.07, 0.5])[:, None]  # page SNRs ~ 10^4 (capped), 200, 4
    pages = torch.arange(3)

    def grads(weighting: str) -> np.ndarray:
        p = (y + noise_sd * torch.tensor(rng.standard_normal((3, 400)))).requires_grad_(True)
        snr_loss(p, y, torch.ones_like(y), pages, weighting).backward()
        return p.grad.norm(dim=1).numpy()

    g_metric, g_pages = grads("metric"), grads("pages")
    assert g_metric[0] == 0.0 and g_pages[0] > 0.0
    assert g_metric[1] > 5 * g_metric[2]  # the 200-SNR page dominates the 4-SNR one
    assert g_pages[2] > g_pages[1] / 20  # per page, noise is relative: no page dominates that much
    with pytest.raises(ValueError, match="weighting"):
        snr_loss(y, y, torch.ones_like(y), pages, "linear")


def _fake_readings(path: Path, pages: int, gain: float, seed: int) -> None:
    """Readings that are the truth times ``gain`` (a systematic error a refiner can undo)."""
    rng = np.random.default_rng(seed)
    x, c, y, lengths, lead, page = [], [], [], [], [], []
    for p in range(pages):
        for i in range(len(LEADS)):
            n = int((10 if LEADS[i] == "II" else 2.5) * REFINE_FS_HZ)
            t = np.arange(n) / REFINE_FS_HZ
            truth = np.sin(2 * np.pi * rng.uniform(0.8, 2.0) * t + rng.uniform(0, 6)) * rng.uniform(0.3, 1.5)
            x.append((gain * truth).astype(np.float32))
            y.append(truth.astype(np.float32))
            c.append(np.ones(n, np.float32))
            lengths.append(n)
            lead.append(i)
            page.append(p)
    np.savez_compressed(path, x=np.concatenate(x), c=np.concatenate(c), y=np.concatenate(y),
                        lengths=np.array(lengths), lead=np.array(lead), page=np.array(page),
                        fs_hz=np.full(len(lead), 500.0), image_type=np.array(["0001"] * len(lead)))


def test_training_undoes_a_systematic_gain_and_writes_a_loadable_bundle(tmp_path):
    _fake_readings(tmp_path / "train.npz", 12, 0.7, 0)
    _fake_readings(tmp_path / "val.npz", 4, 0.7, 1)
    out = tmp_path / "bundle"
    rc = train_main(["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
                     "--base", str(WEIGHTS / "stage2_signal"), "--out", str(out), "--max-steps", "60",
                     "--eval-every", "30", "--lr", "1e-2", "--pages-per-batch", "4", "--threads", "1",
                     "--model", json.dumps({"name": "lead_cnn", "kwargs": TINY})])
    assert rc == 0
    trained = json.loads((out / "config.json").read_text())["refiner"]["trained"]
    for score in ("pages", "metric"):  # every page read at gain 0.7: 10.5 dB either way
        assert trained["val_readings_db"][score] == pytest.approx(10 * np.log10(1 / 0.09), abs=0.1)
        assert trained["val_refined_db"][score] >= trained["val_readings_db"][score] + 3.0
    extractor = SignalExtractor.from_bundle(out)
    assert extractor.refiner is not None
    # the loaded refiner raises a 0.7-gain lead towards the truth
    rng = np.random.default_rng(5)
    truth = _leads(500.0, rng)
    read = {lead: 0.7 * v for lead, v in truth.items()}
    refined = extractor.refiner(read, {lead: np.ones_like(v) for lead, v in read.items()}, 500.0)
    assert image_snr(truth, refined, 500.0) > 2 * image_snr(truth, read, 500.0)


def test_bundle_loading_is_strict(tmp_path):
    section = Refiner.save(create_refiner("lead_cnn", **TINY), "lead_cnn", TINY, REFINE_FS_HZ, tmp_path, {})
    cfg = ExtractorConfig(refiner=section)
    SignalExtractor(cfg, tmp_path).save_bundle(tmp_path)
    assert SignalExtractor.from_bundle(tmp_path).refiner is not None
    copy = tmp_path / "copy"
    SignalExtractor.from_bundle(tmp_path).save_bundle(copy)  # the weights travel with the config
    assert SignalExtractor.from_bundle(copy).refiner is not None
    with open(tmp_path / section["weights"], "ab") as f:
        f.write(b"0")
    with pytest.raises(ValueError, match="is not the file"):
        SignalExtractor.from_bundle(tmp_path)
    (copy / section["weights"]).unlink()
    with pytest.raises(FileNotFoundError, match="are missing"):
        SignalExtractor.from_bundle(copy)
    bad = json.loads((tmp_path / "config.json").read_text())
    bad["refiner"]["type"] = "transformer"
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="not available"):
        SignalExtractor.from_bundle(tmp_path)
    with pytest.raises(ValueError, match="needs the bundle folder"):
        SignalExtractor(cfg)


def test_readings_are_collected_next_to_their_truth():
    from stage1_segment.infer import TraceSegmenter
    from synth.factory import make_page
    from synth.signals import simulate_record

    page = make_page(simulate_record(np.random.default_rng(3)), 3, 3, ["0001"], layouts=["3x4+II"], fs_choices=[500])
    got = read_page(TraceSegmenter.from_bundle(WEIGHTS / "stage1_segment"), reading_config(WEIGHTS / "stage2_signal"),
                    page.images["0001"].image_rgb, page.labels, "p3")
    assert got is not None and got["lead"] == list(range(len(LEADS)))
    for x, c, y in zip(got["x"], got["c"], got["y"], strict=True):
        assert x.shape == c.shape == y.shape and np.isfinite(x).all()
    assert got["y"][LEADS.index("II")].size == int(10 * REFINE_FS_HZ)
    assert got["y"][0].size == int(2.5 * REFINE_FS_HZ)


def test_the_chains_readings_are_kept_where_the_photo_network_read_the_page():
    """``--chain photo``: the whole pipeline reads each page; a phone photo (read by the photo network) gives its
    leads next to their truth, a scan (read by the general network) nothing."""
    from pipeline.chain import Pipeline
    from stage2_signal.data import read_by_chain
    from synth.factory import make_page
    from synth.signals import simulate_record

    page = make_page(simulate_record(np.random.default_rng(8)), 8, 8, ["0003", "0005"], layouts=["3x4+II"],
                     fs_choices=[500])
    pipeline = Pipeline.from_bundles(WEIGHTS)
    photo = read_by_chain(pipeline, page.images["0005"].image_rgb, page.labels, "photo")
    assert photo is not None and photo["lead"] == list(range(len(LEADS)))
    for x, c, y in zip(photo["x"], photo["c"], photo["y"], strict=True):
        assert x.shape == c.shape == y.shape and np.isfinite(x).all()
    assert read_by_chain(pipeline, page.images["0003"].image_rgb, page.labels, "scan") is None


def test_a_bundle_copy_without_config_fails_loudly(tmp_path):
    shutil.copytree(WEIGHTS / "stage2_signal", tmp_path / "s2")
    (tmp_path / "s2" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config not found"):
        SignalExtractor.from_bundle(tmp_path / "s2")


def test_readings_are_collected_from_a_labelled_pool(tmp_path):
    """``--pool``: a train-layout folder's labelled pages (ECG-Image-Kit's, as synth.eik writes them) are read
    like the factory's; a folder without labelled pages is an error that says where it looked."""
    import cv2

    from stage2_signal.data import collect, load_leads, pool_pages
    from synth.factory import make_page
    from synth.signals import simulate_record

    page = make_page(simulate_record(np.random.default_rng(4)), 4, 4, ["0001"], layouts=["3x4+II"], fs_choices=[500])
    folder = tmp_path / "pool" / "train" / "30000"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "30000-0001.png"), cv2.cvtColor(page.images["0001"].image_rgb, cv2.COLOR_RGB2BGR))
    page.labels.save(folder / "30000.labels")
    (tmp_path / "pool" / "train" / "30001").mkdir()
    (tmp_path / "pool" / "train" / "30001" / "30001-0001.png").write_bytes(b"")  # no labels: not a page of the pool
    assert [p[2] for p in pool_pages(tmp_path / "pool", 10)] == ["30000-0001"]
    with pytest.raises(FileNotFoundError, match="no labelled images"):
        pool_pages(tmp_path / "empty", 10)
    summary = collect(None, WEIGHTS, tmp_path / "pool.npz", 10, "train", [], 0, 1, pool=tmp_path / "pool")
    assert summary["pages"] == 1 and summary["unreadable"] == 0
    leads = load_leads(tmp_path / "pool.npz")
    assert list(leads["lead"]) == list(range(len(LEADS))) and set(leads["image_type"]) == {"0001"}
