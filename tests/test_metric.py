"""The competition metric: hand-computed cases and an independent loop-based reference implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.layouts import LEADS
from common.metric import (
    MAX_SNR,
    image_snr,
    lead_powers,
    lead_residuals,
    per_image_snr,
    per_lead_breakdown,
    score,
    snr_db_from_linear,
    split_ids,
)
from common.types import SUPPORTED_FS_HZ

CAP_DB = 10 * np.log10(384.0)


# ----------------------------------------------------------------------------------------------- helpers


def frames(images: dict[str, tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]]):
    """images: id -> (fs, truth by lead, prediction by lead) -> (solution, submission) Kaggle frames."""
    sol, sub = [], []
    for img, (fs, truth, pred) in images.items():
        for lead, y in truth.items():
            ids = [f"{img}_{k}_{lead}" for k in range(len(y))]
            sol.append(pd.DataFrame({"id": ids, "value": y, "fs": fs}))
            sub.append(pd.DataFrame({"id": ids, "value": pred[lead]}))
    return pd.concat(sol, ignore_index=True), pd.concat(sub, ignore_index=True)


def ecg_like(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """A rough ECG: beats of narrow and wide Gaussians, baseline wander, DC offset and a little noise."""
    t = np.arange(n) / fs
    period = 60.0 / rng.uniform(50, 110)
    beats = np.arange(rng.uniform(0, period), t[-1] + period, period)
    d = t[:, None] - beats[None, :]
    qrs = rng.uniform(-0.5, 2.0) * np.exp(-((d / rng.uniform(0.008, 0.025)) ** 2))
    twave = rng.uniform(-0.3, 0.5) * np.exp(-(((d - 0.3) / 0.06) ** 2))
    pwave = rng.uniform(0, 0.2) * np.exp(-(((d + 0.15) / 0.04) ** 2))
    wander = 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6))
    return (qrs + twave + pwave).sum(axis=1) + wander + rng.normal(0, 0.2) + rng.normal(0, 0.01, n)


def lead_lengths(fs: float) -> dict[str, int]:
    return {lead: int(round((10.0 if lead == "II" else 2.5) * fs)) for lead in LEADS}


# ------------------------------------------------------------------------- independent reference implementation


def ref_lead(y: np.ndarray, p: np.ndarray, fs: float) -> tuple[float, float, int]:
    """Straight from the spec, with plain loops: signal, noise, lag (p_shifted[i] = p[i - lag])."""
    n = len(y)
    max_lag = int(0.2 * fs)
    yc = y - np.mean(y)
    pcen = p - np.mean(p)
    best_lag, best_corr = 0, -np.inf
    # candidates by increasing |lag|, negative first; a later candidate wins only if strictly larger
    for lag in sorted(range(-max_lag, max_lag + 1), key=lambda k: (abs(k), k)):
        if lag >= 0:
            corr = float(np.dot(yc[lag:], pcen[: n - lag])) if lag < n else 0.0
        else:
            corr = float(np.dot(yc[: n + lag], pcen[-lag:])) if -lag < n else 0.0
        if corr > best_corr:
            best_lag, best_corr = lag, corr
    shifted = np.full(n, np.nan)  # shifted[i] = p[i - best_lag] where 0 <= i - best_lag < n
    if best_lag >= 0:
        shifted[best_lag:] = p[: n - best_lag]
    else:
        shifted[: n + best_lag] = p[-best_lag:]
    offset = np.nanmean(shifted - y)
    aligned = shifted - offset
    aligned[np.isnan(aligned)] = 0.0
    return float(np.sum(y**2)), float(np.sum((y - aligned) ** 2)), best_lag


def ref_score(images) -> tuple[float, dict[tuple[str, str], int]]:
    snrs, lags = [], {}
    for img, (fs, truth, pred) in images.items():
        signal = noise = 0.0
        for lead, y in truth.items():
            s, nz, lag = ref_lead(np.asarray(y, float), np.asarray(pred[lead], float), fs)
            signal += s
            noise += nz
            lags[(img, lead)] = lag
        snrs.append(384.0 if noise == 0 else min(signal / noise, 384.0))
    return 10 * np.log10(np.mean(snrs)), lags


def random_image(rng: np.random.Generator, fs: float):
    truth, pred = {}, {}
    gain = rng.uniform(0.7, 1.3)
    shift = int(rng.integers(-int(0.3 * fs), int(0.3 * fs) + 1))  # sometimes beyond the 0.2 s window
    for lead, n in lead_lengths(fs).items():
        pad = int(0.3 * fs) + 1
        base = ecg_like(rng, n + 2 * pad, fs)
        truth[lead] = base[pad : pad + n]
        kind = rng.integers(4)
        if kind == 3:  # unrelated prediction
            pred[lead] = rng.normal(0, 0.3, n)
            continue
        p = gain * base[pad - shift : pad - shift + n] + rng.normal(0, 1.0)
        if kind >= 1:
            p = p + rng.normal(0, rng.choice([0.005, 0.05, 0.3]), n)
        pred[lead] = p
    return fs, truth, pred


# ----------------------------------------------------------------------------------------------- hand cases


def test_perfect_prediction_is_capped():
    rng = np.random.default_rng(0)
    truth = {lead: ecg_like(rng, n, 500) for lead, n in lead_lengths(500).items()}
    sol, sub = frames({"7": (500, truth, truth)})
    assert score(sol, sub) == pytest.approx(CAP_DB, abs=1e-12)
    assert CAP_DB == pytest.approx(25.84, abs=0.005)
    assert image_snr(truth, truth, 500) == MAX_SNR


def test_zero_prediction_exact():
    rng = np.random.default_rng(1)
    images, expected = {}, []
    for img in ("1", "2"):
        truth = {lead: ecg_like(rng, n, 250) for lead, n in lead_lengths(250).items()}
        zeros = {lead: np.zeros_like(y) for lead, y in truth.items()}
        images[img] = (250, truth, zeros)
        # all correlations are 0 -> lag 0; offset mean(0 - y) -> aligned prediction = mean(y)
        signal = sum(float(np.sum(y**2)) for y in truth.values())
        noise = sum(float(np.sum((y - y.mean()) ** 2)) for y in truth.values())
        expected.append(min(signal / noise, 384.0))
    sol, sub = frames(images)
    assert score(sol, sub) == pytest.approx(10 * np.log10(np.mean(expected)), abs=1e-9)
    br = per_lead_breakdown(sol, sub)
    assert (br["lag"] == 0).all()
    y = images["1"][1]["V3"]
    row = br[(br.image_id == "1") & (br.lead == "V3")].iloc[0]
    assert row["offset"] == pytest.approx(-y.mean(), abs=1e-12)
    assert row["noise"] == pytest.approx(np.sum((y - y.mean()) ** 2), rel=1e-12)


def test_constant_prediction_keeps_lag_zero():
    # centred constant = rounding noise; the tie tolerance must still see all lags as equal
    y = ecg_like(np.random.default_rng(2), 640, 256)
    signal, noise, lag, offset = lead_powers(y, np.full(640, 0.1), 256)
    assert lag == 0
    assert offset == pytest.approx(0.1 - y.mean(), abs=1e-12)
    assert noise == pytest.approx(np.sum((y - y.mean()) ** 2), rel=1e-12)
    assert signal == pytest.approx(np.sum(y**2), rel=1e-12)


def test_constant_offset_is_free():
    rng = np.random.default_rng(3)
    truth = {lead: ecg_like(rng, n, 1000) for lead, n in lead_lengths(1000).items()}
    pred = {lead: y + 3.7 for lead, y in truth.items()}
    sol, sub = frames({"5": (1000, truth, pred)})
    assert score(sol, sub) == pytest.approx(CAP_DB, abs=1e-12)
    assert per_lead_breakdown(sol, sub)["offset"].to_numpy() == pytest.approx(3.7, abs=1e-9)


@pytest.mark.parametrize("k", [3, -3, 17, -50, 50])
def test_lag_sign_convention_and_uncovered_end(k):
    fs, n = 250, 500  # max lag int(0.2 * 250) = 50
    x = np.random.default_rng(4).normal(size=n + 200)
    y = x[100 : 100 + n]
    p = x[100 + k : 100 + k + n]  # p[i] = y[i + k]: running ahead by k, so p_shifted[i] = p[i - k] = y[i]
    signal, noise, lag, offset = lead_powers(y, p, fs)
    assert lag == k
    assert offset == pytest.approx(0.0, abs=1e-12)
    uncovered = y[:k] if k > 0 else y[n + k :]  # positions i with i - k outside 0..n-1 count as 0
    assert noise == pytest.approx(np.sum(uncovered**2), rel=1e-12)
    assert signal == pytest.approx(np.sum(y**2), rel=1e-12)
    sol, sub = frames({"9": (fs, {"II": y}, {"II": p})})
    assert score(sol, sub) == pytest.approx(10 * np.log10(min(signal / noise, 384.0)), abs=1e-9)
    assert per_lead_breakdown(sol, sub)["lag"].tolist() == [k]


@pytest.mark.parametrize("k", [3, -7])
def test_residuals_say_where_the_noise_is(k):
    fs, n = 250, 500
    x = np.random.default_rng(8).normal(size=n + 200)
    y = x[100 : 100 + n] + 2.0  # an offset in the label: uncovered samples cost its full y**2
    p = x[100 + k : 100 + k + n] + 0.5 * np.sin(np.arange(n) / 9.0)
    resid, covered, lag = lead_residuals(y, p, fs)
    _, noise, lag_powers, _ = lead_powers(y, p, fs)
    assert lag == lag_powers == k
    assert resid @ resid == pytest.approx(noise, rel=1e-12)
    assert int((~covered).sum()) == abs(k)
    assert (~covered[:k] if k > 0 else ~covered[k:]).all()
    assert resid[~covered] == pytest.approx(y[~covered], abs=1e-12)


@pytest.mark.parametrize("k", [51, -51, 60, -75])
def test_lag_beyond_window_is_not_found(k):
    fs, n = 250, 500
    x = np.random.default_rng(5).normal(size=n + 200)
    y, p = x[100 : 100 + n], x[100 + k : 100 + k + n]
    _, noise, lag, _ = lead_powers(y, p, fs)
    assert abs(lag) <= 50
    assert noise > np.sum(y**2)  # no alignment: about twice the signal power
    sol, sub = frames({"9": (fs, {"I": y}, {"I": p})})
    assert score(sol, sub) < 0


def test_ties_prefer_smallest_abs_lag():
    n = 500
    y = np.zeros(n)
    y[[101, 103]] = 1.0
    y[[150, 152]] = -1.0
    p = np.zeros(n)
    p[100], p[200] = 1.0, -1.0
    # c(k) = y[100 + k] - y[200 + k]: equal maxima 1 at k = 1, 3, -48, -50 (both series have mean exactly 0)
    assert lead_powers(y, p, 250)[2] == 1


def test_plus_minus_tie_picks_negative_lag():
    n, d = 500, 5
    y = np.zeros(n)
    y[[100 - d, 100 + d]] = 1.0
    y[[300, 302]] = -1.0
    p = np.zeros(n)
    p[100], p[400] = 1.0, -1.0
    signal, noise, lag, offset = lead_powers(y, p, 250)
    assert lag == -d
    assert (signal, noise, offset) == (4.0, 4.0, 0.0)


def test_gain_on_whole_record():
    rng = np.random.default_rng(6)
    truth = {lead: ecg_like(rng, n, 512) for lead, n in lead_lengths(512).items()}
    pred = {lead: 0.9 * y for lead, y in truth.items()}
    # lag 0, offset mean(0.9 y - y) = -0.1 mean(y) -> residual 0.1 (y - mean(y))
    signal = sum(np.sum(y**2) for y in truth.values())
    noise = sum(np.sum((0.1 * (y - y.mean())) ** 2) for y in truth.values())
    sol, sub = frames({"3": (512, truth, pred)})
    expected = 10 * np.log10(min(signal / noise, 384.0))
    assert score(sol, sub) == pytest.approx(expected, abs=1e-9)
    assert 19.5 < expected < 25.84
    assert image_snr(truth, pred, 512) == pytest.approx(min(signal / noise, 384.0), rel=1e-12)


# ------------------------------------------------------------------------------------ frames: matching, errors


def small_case():
    rng = np.random.default_rng(7)
    truth = {"I": ecg_like(rng, 50, 100), "II": ecg_like(rng, 80, 100)}
    pred = {lead: y + rng.normal(0, 0.1, y.size) for lead, y in truth.items()}
    return frames({"12": (100, truth, pred), "a_b": (100, truth, pred)})


def test_order_of_rows_does_not_matter():
    sol, sub = small_case()
    base = score(sol, sub)
    rng = np.random.default_rng(8)
    assert score(sol, sub.iloc[rng.permutation(len(sub))]) == pytest.approx(base, abs=1e-12)
    assert score(sol.iloc[rng.permutation(len(sol))], sub) == pytest.approx(base, abs=1e-12)
    per = per_image_snr(sol, sub)
    assert per["image_id"].tolist() == ["12", "a_b"]  # ids parsed from the right
    assert snr_db_from_linear(per["snr"]) == pytest.approx(base, abs=1e-12)


def test_large_frames_in_any_order():
    # >= 4096 rows: the grouped fast parse, the solution-sort fallback and the id-placement path
    rng = np.random.default_rng(11)
    images = {str(i): random_image(rng, 250) for i in range(3)}
    sol, sub = frames(images)
    expected, _ = ref_score(images)
    assert score(sol, sub) == pytest.approx(expected, abs=1e-6)
    perm = rng.permutation(len(sub))
    assert score(sol, sub.iloc[perm]) == pytest.approx(expected, abs=1e-6)
    assert score(sol.iloc[perm], sub) == pytest.approx(expected, abs=1e-6)
    assert score(sol.iloc[perm], sub.iloc[rng.permutation(len(sub))]) == pytest.approx(expected, abs=1e-6)
    # "0_007_II" is not "0_7_II", though both parse to the same sample
    shuffled = sub.iloc[perm].reset_index(drop=True)
    shuffled.loc[shuffled["id"] == "0_7_II", "id"] = "0_007_II"
    with pytest.raises(ValueError, match=r"0_7_II.*0_007_II"):
        score(sol, shuffled)
    twice = sol[sol["id"].str.endswith("_V5")]  # a series given twice, each copy laid out properly
    with pytest.raises(ValueError, match="sample indices"):
        score(pd.concat([sol, twice]), pd.concat([sub, sub.loc[twice.index]]))


def test_split_ids():
    got = split_ids(pd.Series(["62_0_I", "a_b_12_aVR", "7_100_V6"]))
    assert got.to_dict("list") == {"image_id": ["62", "a_b", "7"], "sample": [0, 12, 100],
                                   "lead": ["I", "aVR", "V6"]}
    with pytest.raises(ValueError, match="62_x_I"):
        split_ids(["62_x_I"])


def test_missing_id_is_named():
    sol, sub = small_case()
    with pytest.raises(ValueError, match="a_b_17_II"):
        score(sol, sub[sub["id"] != "a_b_17_II"])


def test_non_finite_prediction_is_named():
    sol, sub = small_case()
    for bad in (np.nan, np.inf):
        s = sub.copy()
        s.loc[s["id"] == "12_3_I", "value"] = bad
        with pytest.raises(ValueError, match="12_3_I"):
            score(sol, s)


def test_nan_in_solution_is_named():
    sol, sub = small_case()
    sol.loc[sol["id"] == "12_40_II", "value"] = np.nan
    with pytest.raises(ValueError, match="12_40_II"):
        score(sol, sub)


def test_duplicate_and_extra_ids_rejected():
    sol, sub = small_case()
    with pytest.raises(ValueError, match="duplicated.*12_0_I"):
        score(sol, pd.concat([sub, sub.iloc[:1]], ignore_index=True))
    extra = pd.DataFrame({"id": ["12_999_I"], "value": [0.0]})
    with pytest.raises(ValueError, match="12_999_I"):
        score(sol, pd.concat([sub, extra], ignore_index=True))


def test_malformed_solution_series_rejected():
    sol, sub = small_case()
    s = sol[sol["id"] != "12_5_I"]
    with pytest.raises(ValueError, match="sample indices"):
        score(s, sub[sub["id"] != "12_5_I"])
    with pytest.raises(ValueError, match="form"):
        score(sol.assign(id=sol["id"].str.replace("_I", "I", regex=False)), sub)


# ------------------------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("fs", SUPPORTED_FS_HZ)
def test_matches_reference_implementation(fs):
    rng = np.random.default_rng(int(fs))
    images = {str(i): random_image(rng, fs) for i in range(3)}
    images["perfect"] = (fs, images["0"][1], images["0"][1])
    expected, lags = ref_score(images)
    sol, sub = frames(images)
    assert score(sol, sub) == pytest.approx(expected, abs=1e-6)
    br = per_lead_breakdown(sol, sub)
    assert {(r.image_id, r.lead): r.lag for r in br.itertuples()} == lags
    for img, (_, truth, pred) in images.items():
        s, nz, _ = ref_lead(truth["V2"], pred["V2"], fs)
        got = lead_powers(truth["V2"], pred["V2"], fs)
        assert got[0] == pytest.approx(s, rel=1e-12)
        assert got[1] == pytest.approx(nz, rel=1e-9, abs=1e-12), img
