"""Signal sources of the page factory: WFDB / CPSC readers, simulated records, resampling, windows."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from common.layouts import LEADS
from common.types import SUPPORTED_FS_HZ
from synth.signals import (
    MissingLeadsError,
    Record,
    enforce_einthoven,
    iter_records,
    list_record_paths,
    parse_wfdb_header,
    prepare,
    read_cpsc_mat,
    read_record,
    read_wfdb,
    resample,
    simulate_record,
    windows,
)

FS = 500.0
N = 1000  # 2 s keeps the files small
# Header spellings of the 12 leads, deliberately in mixed case and in a shuffled order.
HEADER_NAMES = {"I": "i", "II": "II", "III": "iii", "aVR": "AVR", "aVL": "aVl", "aVF": "avf",
                "V1": "v1", "V2": "V2", "V3": "v3", "V4": "V4", "V5": "v5", "V6": "V6"}
FILE_ORDER = ("V1", "II", "aVR", "I", "V6", "III", "aVL", "V2", "aVF", "V3", "V5", "V4")


def _signals_mv(seed: int = 0, n: int = N) -> np.ndarray:
    return simulate_record(np.random.default_rng(seed), fs_hz=FS, duration_s=n / FS).leads_mv.astype(np.float64)


def _pack_212(adc: np.ndarray) -> bytes:
    """Interleaved samples -> WFDB format 212 (two 12-bit two's-complement samples in 3 bytes)."""
    flat = adc.astype(np.int64).reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, 0)
    u = flat & 0xFFF
    u0, u1 = u[0::2], u[1::2]
    out = np.empty((u0.size, 3), dtype=np.uint8)
    out[:, 0] = u0 & 0xFF
    out[:, 1] = ((u0 >> 8) & 0x0F) | (((u1 >> 8) & 0x0F) << 4)
    out[:, 2] = u1 & 0xFF
    return out.tobytes()


def _encode(adc: np.ndarray, fmt: int) -> bytes:
    """(N, n_sig) adc -> bytes of one WFDB signal file."""
    if fmt == 16:
        return adc.astype("<i2").tobytes()
    if fmt == 61:
        return adc.astype(">i2").tobytes()
    if fmt == 80:
        return (adc + 128).astype(np.uint8).tobytes()
    if fmt == 160:
        return (adc + 32768).astype("<u2").tobytes()
    if fmt == 212:
        return _pack_212(adc)
    raise AssertionError(fmt)


def _write_wfdb(folder: Path, name: str, mv: np.ndarray, fmt: int, gains: dict[str, float],
                baselines: dict[str, int], leads=FILE_ORDER, extra_lines: str = "") -> np.ndarray:
    """Write ``name``.hea/.dat holding ``leads``; returns the mV values the header+adc should decode to."""
    bits = {16: 16, 61: 16, 160: 16, 212: 12, 80: 8}[fmt]
    lo, hi = -(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1
    adc = np.stack([np.clip(np.round(mv[LEADS.index(k)] * gains[k] + baselines[k]), lo, hi) for k in leads], axis=1)
    (folder / f"{name}.dat").write_bytes(_encode(adc.astype(np.int64), fmt))
    lines = [f"{name} {len(leads) + (1 if extra_lines else 0)} {FS:g} {mv.shape[1]}"]
    for col, k in enumerate(leads):
        checksum = int(adc[:, col].sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{name}.dat {fmt} {gains[k]:g}({baselines[k]})/mV {bits} 0 {int(adc[0, col])} {checksum} 0 "
                     f"{HEADER_NAMES[k]}")
    if extra_lines:
        lines.append(extra_lines)
    lines.append("# age: 60")
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    expected = np.zeros((len(LEADS), mv.shape[1]))
    for col, k in enumerate(leads):
        expected[LEADS.index(k)] = (adc[:, col] - baselines[k]) / gains[k]
    return expected


GAINS = {k: g for k, g in zip(LEADS, (1000, 1200.5, 800, 1000, 1000, 950, 2000, 2000, 1500, 1500, 1000, 1000),
                              strict=True)}
BASELINES = {k: b for k, b in zip(LEADS, (6, 2, -5, 0, 5, -1, 10, 0, 3, 0, -7, 1), strict=True)}


# --------------------------------------------------------------------------------------------------
# WFDB
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [16, 61, 160])
def test_wfdb_16bit_formats_round_trip(tmp_path: Path, fmt: int) -> None:
    mv = _signals_mv(1)
    # A Frank lead in a file that does not exist (as in PTB): must be ignored, its file never opened.
    extra = "rec.xyz 16 2000 16 0 0 0 0 vx"
    expected = _write_wfdb(tmp_path, "rec", mv, fmt, GAINS, BASELINES, extra_lines=extra)
    rec = read_wfdb(tmp_path / "rec.hea")
    assert rec.record_id == "rec" and rec.fs_hz == FS and rec.leads_mv.shape == (12, N)
    assert rec.leads_mv.dtype == np.float32
    np.testing.assert_allclose(rec.leads_mv, expected, rtol=1e-6, atol=1e-6)
    quantum = np.array([0.5 / GAINS[k] for k in LEADS])[:, None]
    assert np.all(np.abs(rec.leads_mv - mv) <= quantum + 1e-6)


def test_wfdb_format_212_round_trip(tmp_path: Path) -> None:
    mv = _signals_mv(2, n=N + 1) * 0.5  # 12 bits at 200-1000 adc/mV: keep within +-2047
    gains = {k: 200.0 * (1 + i % 3) for i, k in enumerate(LEADS)}
    expected = _write_wfdb(tmp_path, "r212", mv, 212, gains, BASELINES)
    rec = read_wfdb(tmp_path / "r212.hea")
    np.testing.assert_allclose(rec.leads_mv, expected, rtol=1e-6, atol=1e-6)
    quantum = np.array([0.5 / gains[k] for k in LEADS])[:, None]
    assert np.all(np.abs(rec.leads_mv - mv) <= quantum + 1e-6)


def test_wfdb_format_212_odd_sample_count(tmp_path: Path) -> None:
    # One signal per file and an odd number of samples: the last byte triple holds half a pair.
    mv = _signals_mv(3, n=501) * 0.5
    expected = np.zeros_like(mv)
    lines = [f"odd 12 {FS:g} 501"]
    for k in LEADS:
        adc = np.round(mv[LEADS.index(k)] * 400)[:, None]
        (tmp_path / f"odd_{k}.dat").write_bytes(_pack_212(adc))
        lines.append(f"odd_{k}.dat 212 400/mV 12 0 0 0 0 {k}")
        expected[LEADS.index(k)] = adc[:, 0] / 400
    (tmp_path / "odd.hea").write_text("\n".join(lines) + "\n")
    rec = read_wfdb(tmp_path / "odd.hea")
    assert rec.n_samples == 501
    np.testing.assert_allclose(rec.leads_mv, expected, atol=1e-6)


def test_wfdb_format_80_and_units(tmp_path: Path) -> None:
    mv = _signals_mv(4) * 0.2
    gains = {k: 50.0 for k in LEADS}
    zeros = {k: 0 for k in LEADS}
    expected = _write_wfdb(tmp_path, "r80", mv, 80, gains, zeros)
    np.testing.assert_allclose(read_wfdb(tmp_path / "r80.hea").leads_mv, expected, atol=1e-6)
    # Same adc, gain given per uV: 0.05 adc/uV == 50 adc/mV.
    text = (tmp_path / "r80.hea").read_text().replace("50(0)/mV", "0.05(0)/uV")
    (tmp_path / "r80.hea").write_text(text)
    np.testing.assert_allclose(read_wfdb(tmp_path / "r80.hea").leads_mv, expected, atol=1e-6)


def test_wfdb_header_defaults_and_invalid_samples(tmp_path: Path) -> None:
    mv = _signals_mv(5)
    adc = np.round(mv * 200).astype(np.int64).T.copy()  # (N, 12), default gain 200 adc/mV
    adc[100, 0] = -32768  # WFDB "no sample" -> NaN -> interpolated
    (tmp_path / "d.dat").write_bytes(adc.astype("<i2").tobytes())
    # Gain 0 means the default 200; no baseline means baseline = adc zero (here 0); no n_samples -> file size.
    lines = ["d 12 500"] + [f"d.dat 16 0 16 0 0 0 0 {k}" for k in LEADS]
    (tmp_path / "d.hea").write_text("\n".join(lines) + "\n")
    rec = read_wfdb(tmp_path / "d.hea")
    assert rec.n_samples == N and np.isfinite(rec.leads_mv).all()
    expected = adc.T / 200.0
    expected[0, 100] = (expected[0, 99] + expected[0, 101]) / 2
    np.testing.assert_allclose(rec.leads_mv, expected, atol=1e-6)


def test_wfdb_with_mat_signal_file(tmp_path: Path) -> None:
    mv = _signals_mv(6)
    gain, baselines = 1000.0, [0, 3, -2, 0, 0, 0, 0, 0, 0, 5, 0, 0]
    val = np.stack([np.round(mv[i] * gain + baselines[i]) for i in range(12)]).astype(np.int16)
    savemat(tmp_path / "A0001.mat", {"val": val})
    lines = [f"A0001 12 500 {N} 05-Feb-2020 11:39:16"]
    lines += [f"A0001.mat 16+24 {gain:g}({baselines[i]})/mV 16 0 {val[i, 0]} 0 0 {k.upper()}"
              for i, k in enumerate(LEADS)]
    lines += ["#Age: 74", "#Dx: 59118001"]
    (tmp_path / "A0001.hea").write_text("\n".join(lines) + "\n")
    rec = read_wfdb(tmp_path / "A0001.hea")
    expected = (val.astype(np.float64) - np.array(baselines)[:, None]) / gain
    np.testing.assert_allclose(rec.leads_mv, expected, atol=1e-6)
    # The .mat beside a header is the header's signal file, not a separate record.
    assert list_record_paths(tmp_path) == [tmp_path / "A0001.hea"]


def test_inconsistent_limb_gains_warn_and_adc_gain_override(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Einthoven-exact adc with one true gain (1000/mV), but a header whose gains scale each lead to 1 mV p-p.
    adc = np.round(enforce_einthoven(_signals_mv(12)) * 1000).astype(np.int64)
    adc[2] = adc[1] - adc[0]  # III exact in adc units
    (tmp_path / "n.dat").write_bytes(adc.T.astype("<i2").tobytes())
    lines = [f"n 12 500 {N}"] + [f"n.dat 16 {np.ptp(adc[i])}(0)/mV 16 0 0 0 0 {k}" for i, k in enumerate(LEADS)]
    (tmp_path / "n.hea").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="synth.signals"):
        rec = read_wfdb(tmp_path / "n.hea")
    assert "gains look wrong" in caplog.text
    np.testing.assert_allclose(np.ptp(rec.leads_mv, axis=1), 1.0, atol=1e-6)
    fixed = read_wfdb(tmp_path / "n.hea", adc_gain=1000)
    np.testing.assert_allclose(fixed.leads_mv, adc / 1000, atol=1e-6)
    assert np.abs(fixed.leads_mv[2] - (fixed.leads_mv[1] - fixed.leads_mv[0])).max() < 1e-6


def test_parse_header_fields() -> None:
    h = parse_wfdb_header("s0010_re 15 1000/1000(0) 38400\ns.dat 16+24 2000(-3)/uV 16 5 -489 -8337 0 ECG lead i\n"
                          + "s.dat 16 2000 16 0 0 0 0 ii\n" * 14)
    s = h.signals[0]
    assert (h.fs_hz, h.n_samples, s.fmt, s.byte_offset, s.gain, s.baseline, s.units) == (
        1000.0, 38400, 16, 24, 2000.0, -3.0, "uV")
    assert (s.adc_zero, s.initial_value, s.checksum, s.description) == (5, -489, -8337, "ECG lead i")
    assert h.signals[1].baseline == 0.0 and h.signals[1].units == "mV"


def test_missing_leads_raise(tmp_path: Path) -> None:
    _write_wfdb(tmp_path, "few", _signals_mv(7), 16, GAINS, BASELINES, leads=LEADS[:8])
    with pytest.raises(MissingLeadsError, match="V3"):
        read_wfdb(tmp_path / "few.hea")


# --------------------------------------------------------------------------------------------------
# CPSC .mat and folders
# --------------------------------------------------------------------------------------------------


def test_cpsc_mat_round_trip(tmp_path: Path) -> None:
    data = _signals_mv(8)
    savemat(tmp_path / "A1980.mat", {"ECG": {"data": data, "sex": "Male", "age": 60}})
    np.testing.assert_array_equal(loadmat(tmp_path / "A1980.mat")["ECG"][0, 0]["data"], data)  # the CPSC layout
    rec = read_cpsc_mat(tmp_path / "A1980.mat")
    assert rec.record_id == "A1980" and rec.fs_hz == 500.0
    np.testing.assert_allclose(rec.leads_mv, data, atol=1e-6)
    assert read_cpsc_mat(tmp_path / "A1980.mat", fs_hz=250.0).fs_hz == 250.0


def test_iter_records_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    _write_wfdb(tmp_path / "sub", "good", _signals_mv(9), 16, GAINS, BASELINES)
    _write_wfdb(tmp_path / "sub", "few", _signals_mv(10), 16, GAINS, BASELINES, leads=LEADS[:6])
    savemat(tmp_path / "sub" / "deeper" / "A2000.mat", {"ECG": {"data": _signals_mv(11), "sex": "F", "age": 1}})
    (tmp_path / "broken.hea").write_text("this is not a header\nat all\n")
    (tmp_path / "nodata.hea").write_text("nodata 12 500 100\n" + "".join(f"nodata.dat 16 200 16 0 0 0 0 {k}\n"
                                                                         for k in LEADS))
    savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    (tmp_path / "notes.txt").write_text("ignored")

    paths = list_record_paths(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "broken.hea", "nodata.hea", "other.mat", "sub/deeper/A2000.mat", "sub/few.hea", "sub/good.hea"]
    with caplog.at_level(logging.WARNING, logger="synth.signals"):
        records = list(iter_records(tmp_path))
    assert [r.record_id for r in records] == ["A2000", "good"]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("broken.hea", "nodata.hea", "other.mat", "few.hea"):
        assert name in skipped
    assert read_record(paths[-1]).record_id == "good"


# --------------------------------------------------------------------------------------------------
# Record, simulation, Einthoven
# --------------------------------------------------------------------------------------------------


def test_record_validation() -> None:
    ok = np.zeros((12, 10))
    rec = Record("r", 500, ok, "test")
    assert rec.leads_mv.dtype == np.float32 and not rec.leads_mv.flags.writeable
    ok[0, 0] = 5.0
    assert rec.leads_mv[0, 0] == 0.0  # a copy, not a view of the caller's array
    for bad in (np.zeros((11, 10)), np.zeros((12, 0)), np.zeros(12), np.full((12, 10), np.nan)):
        with pytest.raises(ValueError):
            Record("r", 500, bad, "test")
    with pytest.raises(ValueError):
        Record("r", 0, np.zeros((12, 10)), "test")
    assert rec.lead("avr").shape == (10,)


def _einthoven_residual(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    i, ii, iii, avr, avl, avf = x[:6]
    return float(max(np.abs(iii - (ii - i)).max(), np.abs(avr + (i + ii) / 2).max(),
                     np.abs(avl - (i - ii / 2)).max(), np.abs(avf - (ii - i / 2)).max()))


@pytest.mark.parametrize("fs", SUPPORTED_FS_HZ)
def test_simulate_record_einthoven_and_shape(fs: int) -> None:
    rec = simulate_record(np.random.default_rng(fs), fs_hz=fs)
    assert rec.leads_mv.shape == (12, round(10 * fs)) and rec.fs_hz == fs
    assert _einthoven_residual(rec.leads_mv) < 1e-6


def test_simulate_record_deterministic_per_seed() -> None:
    a = simulate_record(np.random.default_rng(42), record_id="x")
    b = simulate_record(np.random.default_rng(42), record_id="x")
    c = simulate_record(np.random.default_rng(43), record_id="x")
    np.testing.assert_array_equal(a.leads_mv, b.leads_mv)
    assert a.source == b.source and not np.array_equal(a.leads_mv, c.leads_mv)


def test_simulate_record_is_plausible() -> None:
    ok = 0
    for seed in range(20):
        x = simulate_record(np.random.default_rng(seed)).leads_mv.astype(np.float64)
        x -= np.median(x, axis=1, keepdims=True)
        top, bottom = x.max(axis=1), -x.min(axis=1)
        assert 0.4 < top.max() < 3.0  # tallest R wave
        assert np.abs(x).max() < 4.0
        avr, v1, v6 = (LEADS.index(k) for k in ("aVR", "V1", "V6"))
        ok += bottom[avr] > top[avr] and bottom[v1] > top[v1] and top[v6] > bottom[v6]
    assert ok >= 18  # aVR negative, V1 rS, V6 qR on nearly all (the axis is randomised)


def test_enforce_einthoven() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 300)).astype(np.float32)
    y = enforce_einthoven(x)
    assert y.dtype == np.float32 and _einthoven_residual(y) < 1e-6
    np.testing.assert_array_equal(y[:2], x[:2])
    np.testing.assert_array_equal(y[6:], x[6:])
    assert _einthoven_residual(x) > 0.1  # input untouched
    with pytest.raises(ValueError):
        enforce_einthoven(np.zeros((11, 5)))


# --------------------------------------------------------------------------------------------------
# Resampling, windows, prepare
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs_out", SUPPORTED_FS_HZ)
@pytest.mark.parametrize("n_in", [5000, 4999, 1])
def test_resample_length(fs_out: int, n_in: int) -> None:
    out = resample(np.zeros((12, n_in), dtype=np.float32), 500, fs_out)
    assert out.shape == (12, round(n_in * fs_out / 500)) and out.dtype == np.float32


@pytest.mark.parametrize("fs_in", [500, 1000])
@pytest.mark.parametrize("fs_out", SUPPORTED_FS_HZ)
def test_resample_preserves_sine(fs_in: int, fs_out: int) -> None:
    t_in = np.arange(10 * fs_in) / fs_in
    x = np.sin(2 * np.pi * 5 * t_in + 0.3)
    y = resample(x[None, :], fs_in, fs_out)[0]
    t_out = np.arange(y.size) / fs_out
    inner = (t_out > 0.5) & (t_out < 9.5)
    np.testing.assert_allclose(y[inner], np.sin(2 * np.pi * 5 * t_out[inner] + 0.3), atol=0.01)


def test_windows() -> None:
    rec = simulate_record(np.random.default_rng(1), fs_hz=1000, duration_s=38.0, record_id="long")
    ws = windows(rec)
    assert [w.record_id for w in ws] == ["long_w0", "long_w1", "long_w2"]
    assert all(w.n_samples == 10_000 and w.fs_hz == 1000 for w in ws)
    np.testing.assert_array_equal(ws[1].leads_mv, rec.leads_mv[:, 10_000:20_000])
    assert len(windows(rec, hop_s=5.0)) == 6
    assert windows(simulate_record(np.random.default_rng(1), duration_s=9.9)) == []


@pytest.mark.parametrize("fs_out", SUPPORTED_FS_HZ)
def test_prepare(fs_out: int) -> None:
    rec = simulate_record(np.random.default_rng(2), fs_hz=500)
    out = prepare(rec, fs_out)
    assert out.fs_hz == fs_out and out.leads_mv.shape == (12, round(10 * fs_out))
    assert out.record_id == rec.record_id
    assert _einthoven_residual(out.leads_mv) < 1e-5  # resampling is linear


def test_prepare_rejects_bad_input() -> None:
    rec = simulate_record(np.random.default_rng(2), fs_hz=500)
    with pytest.raises(ValueError):
        prepare(rec, 300)
    with pytest.raises(ValueError):
        prepare(simulate_record(np.random.default_rng(2), duration_s=12.0), 500)
