"""Stage 2 (TraceMaps -> Signals) on ideal maps built from synth labels.

Thresholds sit just under what was measured on these exact pages (simulated record, rng 1, page index
1, seed 11); see the stage-2 report for the tables over more records.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import stage2_signal
from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.metric import MAX_SNR, image_snr, lead_powers
from common.types import Page, Signals, TraceMaps
from stage2_signal.calibrate import CalibrateConfig, PanelReading
from stage2_signal.extract import ExtractConfig
from stage2_signal.infer import ExtractorConfig, SignalExtractor, extract, extract_signals
from stage2_signal.oracle import oracle_maps
from stage2_signal.postprocess import EINTHOVEN_BASIS, PostConfig, einthoven_project, fuse_lead
from synth.factory import make_page
from synth.render import Arrangements
from synth.signals import simulate_record

_PAGES: dict = {}


def labels_for(fs: int, layout: str = "3x4+II", index: int = 1):
    key = (fs, layout, index)
    if key not in _PAGES:
        record = simulate_record(np.random.default_rng(index), fs_hz=500.0, record_id=f"sim{index}")
        _PAGES[key] = make_page(record, index, 11, [], layouts=[layout], fs_choices=[fs]).labels
    return _PAGES[key]


def truth_of(labels) -> dict:
    return {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}


def run(labels, maps, config=None):
    truth = truth_of(labels)
    counts = {lead: v.size for lead, v in truth.items()}
    ex = extract(maps, CANONICAL.px_per_mm, labels.fs_hz, counts, config)
    return ex, truth


def snr_db(truth, pred, fs) -> float:
    return 10 * np.log10(image_snr(truth, pred, fs))


def uncapped_db(truth, pred, fs) -> float:
    s = n = 0.0
    for lead in truth:
        a, b, _, _ = lead_powers(truth[lead], pred[lead], fs)
        s, n = s + a, n + b
    return 10 * np.log10(s / n)


CAP_DB = 10 * np.log10(MAX_SNR)

# (fs, scale_x) -> uncapped dB just under the measured value (ink oracle, scale_y 0.5, sigma 1.5 px), read
# without the smoothing along time (CalibrateConfig.smooth_px): that is tuned to a network's errors and costs
# about 1 dB on perfect maps; these floors are the reading's own ceiling
UNSMOOTHED = ExtractorConfig(calibrate=CalibrateConfig(smooth_px=0.0))
MEASURED_FLOOR = {
    (250, 0.5): 23.0, (500, 0.5): 23.0, (1000, 0.5): 23.0,  # measured 23.8, 23.7, 23.7
    (250, 2.0): 34.5, (500, 2.0): 32.5, (1000, 2.0): 33.5,  # measured 35.2, 33.2, 34.4
}


@pytest.mark.parametrize("fs,scale_x", sorted(MEASURED_FLOOR))
def test_oracle_maps_read_back(fs, scale_x):
    labels = labels_for(fs)
    maps = oracle_maps(labels, scale_x=scale_x, scale_y=0.5)
    ex, truth = run(labels, maps, UNSMOOTHED)
    got = uncapped_db(truth, ex.signals.leads_mv, fs)
    assert got >= MEASURED_FLOOR[(fs, scale_x)], f"{got:.2f} dB at fs {fs}, scale_x {scale_x}"
    assert snr_db(truth, ex.signals.leads_mv, fs) >= min(MEASURED_FLOOR[(fs, scale_x)], CAP_DB - 0.01)
    # the chart origin is found to a small fraction of a pixel on ideal maps
    assert np.abs(np.array(ex.info["x0_px"]) - labels.x0_px).max() < 0.02
    for lead in LEADS:
        assert ex.signals.leads_mv[lead].shape == truth[lead].shape


def test_stroke_extent_recovers_qrs_at_1000_hz():
    """At 1000 Hz a half-resolution column holds ~10 samples: one y per column loses the QRS peaks."""
    labels = labels_for(1000)
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    ex_on, truth = run(labels, maps)
    ex_off, _ = run(labels, maps, ExtractorConfig(extract=ExtractConfig(use_extent=False)))
    on = uncapped_db(truth, ex_on.signals.leads_mv, 1000)
    off = uncapped_db(truth, ex_off.signals.leads_mv, 1000)
    # even the exact centre y per column (the "centre" oracle) stays below the extent reading
    ex_c, _ = run(labels, oracle_maps(labels, scale_x=0.5, scale_y=0.5, mode="centre"))
    centre = uncapped_db(truth, ex_c.signals.leads_mv, 1000)
    assert on >= off + 5.0, (on, off)  # measured 23.7 vs 16.1
    assert on >= centre + 2.0, (on, centre)  # measured 23.7 vs 20.6


# measured 24.22, 24.50. The read-back of half-resolution oracle maps swings between 23.9 and 25.1 dB with the
# phase of the chart origin on the 2 px grid (6x2 page, origin stepped by 0.25 px), so the floor sits under the
# swing rather than at one page's phase
@pytest.mark.parametrize("layout,floor", [("6x2", 23.7), ("12x1", 23.7)])
def test_other_layouts(layout, floor):
    labels = labels_for(500, layout)
    ex, truth = run(labels, oracle_maps(labels, scale_x=0.5, scale_y=0.5))
    assert uncapped_db(truth, ex.signals.leads_mv, 500) >= floor
    assert len(ex.info["x0_px"]) == get_layout(layout).n_rows


def test_logits_and_unnormalised_maps_read_the_same():
    labels = labels_for(250)
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    ref, truth = run(labels, maps)
    logits = dataclasses.replace(maps, maps=np.log(np.maximum(maps.maps, 1e-12)).astype(np.float32))
    ex_l, _ = run(labels, logits)
    ex_u, _ = run(labels, oracle_maps(labels, scale_x=0.5, scale_y=0.5, normalize=False))
    base = uncapped_db(truth, ref.signals.leads_mv, 250)
    assert abs(uncapped_db(truth, ex_l.signals.leads_mv, 250) - base) < 0.1
    assert abs(uncapped_db(truth, ex_u.signals.leads_mv, 250) - base) < 0.5


@pytest.fixture(scope="module")
def clean_500():
    labels = labels_for(500)
    maps = oracle_maps(labels, scale_x=1.0, scale_y=0.5)
    ex, truth = run(labels, maps)
    return labels, maps, ex, uncapped_db(truth, ex.signals.leads_mv, 500)


def _blank(maps: TraceMaps, row: int, columns: np.ndarray) -> None:
    maps.maps[row][:, columns] = 1.0 / maps.maps.shape[1]


def test_time_origin_robust_to_late_start_and_baseline_to_offset(clean_500):
    labels, maps, ex0, db0 = clean_500
    m = maps.maps.copy()
    bad = dataclasses.replace(maps, maps=m)
    xs = maps.sheet_x()
    _blank(bad, 3, xs < labels.x0_px + 0.4 * CANONICAL.px_per_s)  # rhythm strip starts 0.4 s late
    _blank(bad, 0, xs < labels.x0_px + 0.1 * CANONICAL.px_per_s)
    shift = 60  # row 1 printed 60 px lower than its neighbours would suggest
    m[1] = np.roll(m[1], int(shift * maps.scale_y), axis=0)
    ex, truth = run(labels, bad)
    x0 = np.array(ex.info["x0_px"])
    assert np.abs(x0 - labels.x0_px).max() < 0.05, (x0, labels.x0_px, ex.info["x0_how"])
    assert ex.info["x0_how"][3] == "end" and ex.info["x0_how"][0] == "end"
    base0 = {(r.panel.row, r.panel.col): r.baseline_y_px for r in ex0.readings}
    for r in ex.readings:
        if r.panel.row == 1:
            assert abs(r.baseline_y_px - base0[(1, r.panel.col)] - shift) < 0.25
    # lead II's first 0.4 s now comes from its row-2 copy; the loss is small
    assert uncapped_db(truth, ex.signals.leads_mv, 500) >= db0 - 1.0


def test_smoothing_along_time_removes_column_jitter():
    """Each map column read off by a random fraction of a pixel (as a network's columns are): the default
    Gaussian smoothing (CalibrateConfig.smooth_px) must win back part of what the jitter costs (at 1000 Hz,
    where five samples fall between two column readings)."""
    labels = labels_for(1000)
    maps = oracle_maps(labels, scale_x=1.0, scale_y=0.5)
    ex_clean, truth = run(labels, maps, UNSMOOTHED)
    db_clean = uncapped_db(truth, ex_clean.signals.leads_mv, 1000)
    rng = np.random.default_rng(3)
    m = maps.maps.astype(np.float32)
    # shift every column's distribution by a random sub-pixel amount: blend with its 1-px shifted neighbour
    frac = rng.uniform(-0.6, 0.6, size=m.shape[2]).astype(np.float32)
    up, down = np.roll(m, -1, axis=1), np.roll(m, 1, axis=1)
    m = np.where(frac > 0, (1 - frac) * m + frac * up, (1 + frac) * m - frac * down)
    jittered = dataclasses.replace(maps, maps=m.astype(np.float16))
    ex_sharp, _ = run(labels, jittered, UNSMOOTHED)
    ex_smooth, _ = run(labels, jittered)
    db_sharp = uncapped_db(truth, ex_sharp.signals.leads_mv, 1000)
    db_smooth = uncapped_db(truth, ex_smooth.signals.leads_mv, 1000)
    assert db_sharp < db_clean - 3.0, (db_sharp, db_clean)  # the jitter costs (measured 29.6 -> 25.1 dB)
    assert db_smooth > db_sharp + 0.15, (db_smooth, db_sharp)  # measured +0.28 dB
    with pytest.raises(ValueError, match="smooth_px"):
        dataclasses.replace(ExtractorConfig().calibrate, smooth_px=-1.0)


def test_an_unreadable_panel_costs_only_its_lead(clean_500):
    labels, maps, _, _ = clean_500
    bad = dataclasses.replace(maps, maps=maps.maps.copy())
    xs = maps.sheet_x()
    aVL = get_layout("3x4+II").lead_panels("aVL")[0]
    x_lo = labels.x0_px + aVL.x_offset_s * CANONICAL.px_per_s
    _blank(bad, aVL.row, (xs > x_lo - 2) & (xs < x_lo + aVL.duration_s * CANONICAL.px_per_s + 2))
    ex, truth = run(labels, bad)
    assert any(msg.startswith("panel aVL") for msg in ex.info["unread_panels"])
    assert len(ex.info["unread_panels"]) == 1
    # aVL is rebuilt from aVR and aVF (printed at the same time) by the Einthoven projection
    s, n, _, _ = lead_powers(truth["aVL"], ex.signals.leads_mv["aVL"], 500)
    assert s / n > 10
    others = {k: v for k, v in truth.items() if k != "aVL"}
    assert snr_db(others, ex.signals.leads_mv, 500) > 20


def test_calibration_pulses_in_the_maps_do_not_move_the_origin():
    labels = labels_for(500, index=2)  # a page printed with calibration pulses
    assert np.isfinite(labels.pulse_boxes_px).all()
    ex0, truth = run(labels, oracle_maps(labels, scale_x=1.0, scale_y=0.5))
    ex, _ = run(labels, oracle_maps(labels, scale_x=1.0, scale_y=0.5, include_pulse=True))
    assert np.abs(np.array(ex.info["x0_px"]) - labels.x0_px).max() < 0.05
    assert set(ex.info["x0_how"]) == {"end"}  # the pulse lengthens every row: their ends are trusted
    db0 = uncapped_db(truth, ex0.signals.leads_mv, 500)
    assert uncapped_db(truth, ex.signals.leads_mv, 500) >= db0 - 0.2


def test_a_dark_border_beyond_the_trace_end_does_not_move_the_origin(clean_500):
    """A scan's dark border at the sheet's edge is confident "trace" in every row, alone beyond a gap."""
    labels, maps, _, db0 = clean_500
    m = maps.maps.copy()
    xs = maps.sheet_x()
    end = labels.x0_px + 10.0 * CANONICAL.px_per_s
    border = (xs > end + 40) & (xs < end + 55)
    assert border.any() and xs[-1] > end + 55, "the page leaves no room for a border after the trace"
    for row in range(m.shape[0]):
        m[row][:, border] = 0.0
        m[row][int(0.5 * m.shape[1]), border] = 1.0
    ex, truth = run(labels, dataclasses.replace(maps, maps=m))
    assert np.abs(np.array(ex.info["x0_px"]) - labels.x0_px).max() < 0.05, ex.info["x0_how"]
    assert uncapped_db(truth, ex.signals.leads_mv, 500) >= db0 - 0.2


def test_rows_broken_into_short_pieces_everywhere_still_give_an_origin(clean_500):
    """A faint, binarised scan leaves only short pieces of trace: none of them is dropped as stray ink."""
    labels, maps, _, _ = clean_500
    bad = dataclasses.replace(maps, maps=maps.maps.copy())
    xs = maps.sheet_x()
    for row in range(bad.maps.shape[0]):
        _blank(bad, row, (xs % 80) < 30)
    ex, _ = run(labels, bad)  # before: every piece but one was "stray", and no row held a trace
    # either end may fall in a 30 px blank, so the origin can be off by up to two blanks
    assert np.abs(np.array(ex.info["x0_px"]) - labels.x0_px).max() < 60


def test_rows_share_one_origin_when_their_estimates_agree(clean_500):
    labels, maps, _, _ = clean_500
    m = maps.maps.copy()
    m[1] = np.roll(m[1], 2, axis=1)  # row 1's trace read 2 columns (2 px) late: an error, not a layout
    ex, _ = run(labels, dataclasses.replace(maps, maps=m))
    x0 = np.array(ex.info["x0_px"])
    assert np.ptp(x0) == 0.0
    assert abs(x0[0] - labels.x0_px - 0.5) < 0.1  # the mean of three exact rows and one 2 px late
    m[1] = np.roll(maps.maps[1], 40, axis=1)  # 40 px apart is a different origin, kept per row
    ex, _ = run(labels, dataclasses.replace(maps, maps=m))
    x0 = np.array(ex.info["x0_px"])
    assert abs(x0[1] - labels.x0_px - 40) < 0.1 and np.abs(np.delete(x0, 1) - labels.x0_px).max() < 0.05


def test_distant_clutter_does_not_bias(clean_500):
    labels, maps, _, db0 = clean_500
    m = maps.maps.astype(np.float64)
    ys, xs = maps.sheet_y(), maps.sheet_x()
    k = np.argmax(m[1], axis=0)
    for j in np.flatnonzero((xs > 600) & (xs < 1500)):
        m[1][:, j] += 0.4 * m[1][k[j], j] * np.exp(-0.5 * ((ys - ys[k[j]] + 100) / 3.0) ** 2)
    m[1] /= m[1].sum(axis=0, keepdims=True)
    ex, truth = run(labels, dataclasses.replace(maps, maps=m.astype(np.float32)))
    assert uncapped_db(truth, ex.signals.leads_mv, 500) >= db0 - 0.1


def test_scale_comes_from_measured_px_per_mm():
    """A sheet drawn at another resolution reads right when its px/mm is given."""
    labels = labels_for(250)
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    truth = truth_of(labels)
    counts = {lead: v.size for lead, v in truth.items()}
    right = extract(maps, CANONICAL.px_per_mm, 250, counts).signals.leads_mv
    wrong = extract(maps, 1.1 * CANONICAL.px_per_mm, 250, counts).signals.leads_mv
    for lead in ("V1", "V4"):  # amplitude scales as 1 / px_per_mm (up to the metric's offset)
        r, w = right[lead] - right[lead].mean(), wrong[lead] - wrong[lead].mean()
        assert np.std(w) < np.std(r)
    assert snr_db(truth, wrong, 250) < snr_db(truth, right, 250) - 5


def test_a_chart_drawn_at_half_gain_reads_right_at_its_gain():
    """The same record drawn at 5 mm/mV: read at that gain it scores as a 10 mm/mV page does; read at the sheet's
    10 mm/mV every lead comes out at half its amplitude."""
    record = simulate_record(np.random.default_rng(3), fs_hz=500.0, record_id="sim3")
    labels = make_page(record, 3, 11, [], layouts=["3x4+II"], fs_choices=[500],
                       arrangements=Arrangements(half_gain=1.0)).labels
    assert labels.style["mm_per_mv"] == 5.0
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    truth = truth_of(labels)
    counts = {lead: v.size for lead, v in truth.items()}
    right = extract(maps, CANONICAL.px_per_mm, 500, counts, mm_per_mv=5.0)
    wrong = extract(maps, CANONICAL.px_per_mm, 500, counts).signals.leads_mv
    assert right.info["mm_per_mv"] == 5.0
    assert snr_db(truth, right.signals.leads_mv, 500) >= 20.0
    assert snr_db(truth, wrong, 500) < 7.0  # gain x0.5 caps a page near 6 dB
    with pytest.raises(ValueError, match="gain"):
        extract(maps, CANONICAL.px_per_mm, 500, counts, mm_per_mv=0.0)


# --- Einthoven and copies ------------------------------------------------------------------------------
def _limb(n: int, rng) -> np.ndarray:
    ab = np.cumsum(rng.standard_normal((2, n)), axis=1) * 0.05
    return EINTHOVEN_BASIS @ ab  # (6, n) consistent limb leads


def test_einthoven_leaves_exact_inputs_unchanged():
    rng = np.random.default_rng(0)
    v = _limb(1000, rng)
    # 3x4 + II pattern: I, II, III over the first quarter; aVR, aVL, aVF + II over the second; II alone after
    v[[0, 2], 250:] = np.nan
    v[3:, :250] = np.nan
    v[3:, 500:] = np.nan
    out = einthoven_project(v, rng.uniform(0.2, 1.0, v.shape))
    assert np.array_equal(np.isnan(out), np.isnan(v))
    np.testing.assert_allclose(out[np.isfinite(v)], v[np.isfinite(v)], atol=1e-12)
    # a constant offset per lead (separately found baselines) stays a constant of that lead
    c = np.array([0.3, -0.2, 0.1, 0.05, -0.4, 0.25])[:, None]
    out = einthoven_project(v + c, None)
    np.testing.assert_allclose(out[np.isfinite(v)], (v + c)[np.isfinite(v)], atol=1e-12)


def test_einthoven_reduces_independent_noise():
    rng = np.random.default_rng(1)
    v = _limb(4000, rng)
    noisy = v + 0.02 * rng.standard_normal(v.shape)
    out = einthoven_project(noisy)
    assert np.mean((out - v) ** 2) < 0.45 * np.mean((noisy - v) ** 2)  # 2 of 6 dimensions kept: ~1/3


def test_fusion_of_two_copies_aligns_offsets_and_weights_by_confidence():
    rng = np.random.default_rng(2)
    n_full = 2000
    y = np.cumsum(rng.standard_normal(n_full)) * 0.02
    panel = get_layout("3x4+II").lead_panels("II")
    long_p = next(p for p in panel if p.duration_s == 10)
    short_p = next(p for p in panel if p.duration_s < 10)
    a = y + 0.03 * rng.standard_normal(n_full)
    b = y[:500] + 0.7 + 0.03 * rng.standard_normal(500)  # printed copy with its own baseline
    reads = [PanelReading(long_p, 0, n_full, a, np.full(n_full, 0.9), 0.0),
             PanelReading(short_p, 0, 500, b, np.full(500, 0.9), 0.0)]
    fused, w = fuse_lead(reads, n_full, PostConfig())
    err_a = np.mean((a[:500] - y[:500]) ** 2)
    err_f = np.mean((fused[:500] - y[:500]) ** 2)
    assert err_f < 0.65 * err_a  # two equal copies: half the noise power
    np.testing.assert_allclose(fused[500:], a[500:])
    assert abs(np.mean(fused[:500] - y[:500])) < 0.01  # the copy's offset was removed
    assert np.all(w[:500] > w[500:].max())


# --- contracts ------------------------------------------------------------------------------------------
def test_page_counts_are_honoured_at_1025_hz():
    """At 1025 Hz panels print 2562 or 2563 samples; the caller's counts win."""
    labels = labels_for(1025)
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    page = Page("sim1", np.zeros((16, 16, 3), np.uint8), 1025.0)
    sig = extract_signals(maps, CANONICAL.px_per_mm, page)
    assert isinstance(sig, Signals)
    for lead in LEADS:
        assert sig.leads_mv[lead].shape == (page.n_samples(lead),)
        assert np.isfinite(sig.leads_mv[lead]).all()
    # whole-record requests are served too (unprinted stretches interpolated)
    full = Page("sim1", np.zeros((16, 16, 3), np.uint8), 1025.0, {lead: 10250 for lead in LEADS})
    sig = SignalExtractor()(maps, CANONICAL.px_per_mm, full)
    assert all(sig.leads_mv[lead].shape == (10250,) for lead in LEADS)


def test_empty_maps_raise_clear_errors():
    labels = labels_for(250)
    maps = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    page = Page("sim1", np.zeros((16, 16, 3), np.uint8), 250.0)
    empty = dataclasses.replace(maps, maps=np.zeros_like(maps.maps))
    with pytest.raises(ValueError, match="constant"):
        extract_signals(empty, CANONICAL.px_per_mm, page)
    noise = np.random.default_rng(0).uniform(0, 1, maps.maps.shape).astype(np.float32)
    noise /= noise.sum(axis=1, keepdims=True)
    with pytest.raises(ValueError, match="no row of the trace maps holds a trace"):
        extract_signals(dataclasses.replace(maps, maps=noise), CANONICAL.px_per_mm, page)
    with pytest.raises(ValueError, match="px_per_mm"):
        extract_signals(maps, 0.0, page)


def test_bundle_round_trip_and_refusals(tmp_path):
    cfg = ExtractorConfig(extract=ExtractConfig(window_px=5.0), postprocess=PostConfig(einthoven=False))
    SignalExtractor(cfg).save_bundle(tmp_path / "b")
    loaded = SignalExtractor.from_bundle(tmp_path / "b")
    assert loaded.config == cfg
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text(json.dumps({"refiner": {"type": "cnn1d", "weights": "w.pt"}}))
    with pytest.raises(ValueError, match="refiner"):
        SignalExtractor.from_bundle(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text(json.dumps({"extract": {"windw_px": 3}}))
    with pytest.raises(ValueError, match="windw_px"):
        SignalExtractor.from_bundle(tmp_path / "c")
    with pytest.raises(FileNotFoundError):
        SignalExtractor.from_bundle(tmp_path / "missing")
    shipped = SignalExtractor.from_bundle(Path(stage2_signal.__file__).parent.parent / "weights" / "stage2_signal")
    assert shipped.config == ExtractorConfig()


def test_cli_writes_signals_and_plots(tmp_path):
    from stage2_signal.run import main

    labels = labels_for(250)
    labels.save(tmp_path / "labels" / "sim1.labels")
    oracle_maps(labels, scale_x=0.5, scale_y=0.5, image_id="sim1-0001").save(tmp_path / "maps" / "sim1-0001")
    assert main(["--maps", str(tmp_path / "maps"), "--out", str(tmp_path / "out"),
                 "--truth", str(tmp_path / "labels"), "--viz"]) == 0
    sig = Signals.load(tmp_path / "out" / "sim1-0001.signals")
    assert sig.leads_mv["II"].size == labels.lead_signal("II").size
    summary = json.loads((tmp_path / "out" / "sim1-0001.stage2.json").read_text())
    assert summary["snr_db_uncapped"] > 23.0
    for name in ("sim1-0001.rows.png", "sim1-0001.signals.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000


def test_bundle_keeps_its_tuning_record(tmp_path):
    record = {"data": "76 held-out pages", "extract.level": {"chosen": 0.07}}
    SignalExtractor(ExtractorConfig(tuned=record)).save_bundle(tmp_path / "b")
    loaded = SignalExtractor.from_bundle(tmp_path / "b")
    assert loaded.config.tuned == record
    assert loaded.config == ExtractorConfig()  # the record changes no reading


def test_oracle_maps_skip_samples_the_renderer_did_not_draw():
    """ECG-Image-Kit's labels are NaN where it drew no sample (at 1025 Hz, the one on a lead change): the ideal
    maps stay finite and leave that column to its neighbours, instead of a garbage row index from a NaN."""
    import dataclasses

    labels = labels_for(500)
    signals = labels.signals_mv.copy()
    signals[:, 1250] = np.nan  # the sample on the 2.5 s lead change, in every lead
    holed = dataclasses.replace(labels, signals_mv=signals)
    with np.errstate(invalid="raise"):
        maps = oracle_maps(holed, scale_x=0.5, scale_y=0.5)
    assert np.isfinite(maps.maps.astype(np.float32)).all()
    full = oracle_maps(labels, scale_x=0.5, scale_y=0.5)
    away = np.abs(np.arange(maps.maps.shape[2]) / 0.5 - (labels.x0_px + 2.5 * CANONICAL.px_per_s)) > 10
    np.testing.assert_allclose(maps.maps[:, :, away].astype(np.float32), full.maps[:, :, away].astype(np.float32),
                               atol=1e-3)
