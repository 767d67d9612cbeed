"""Competition data layout and submission files: round trips and the validator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.kaggle_io import (
    assert_valid_submission,
    expected_ids,
    read_record_signals,
    read_submission,
    read_test_csv,
    read_train_csv,
    rows_from_signals,
    solution_from_signals,
    submission_frame,
    validate_submission,
    write_submission,
)
from common.layouts import LEADS
from common.metric import MAX_SNR, per_image_snr, score

# 3x4 + II: which quarter of the 10 s record each short lead is printed in
QUARTER = {"I": 0, "II": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1, "V1": 2, "V2": 2, "V3": 2,
           "V4": 3, "V5": 3, "V6": 3}
RECORDS = {"101": 250, "2002": 500, "33": 256}


def make_record(rng: np.random.Generator, fs: int) -> pd.DataFrame:
    n = 10 * fs
    q = n // 4
    out = {}
    for lead in LEADS:
        col = np.full(n, np.nan)
        if lead == "II":
            col[:] = rng.normal(0, 0.5, n)
        else:
            col[QUARTER[lead] * q : (QUARTER[lead] + 1) * q] = rng.normal(0, 0.5, q)
        out[lead] = col
    return pd.DataFrame(out)


@pytest.fixture()
def layout(tmp_path):
    """A small competition layout in tmp_path: train.csv, train/<id>/<id>.csv and a matching test.csv."""
    rng = np.random.default_rng(0)
    signals = {rid: make_record(rng, fs) for rid, fs in RECORDS.items()}
    pd.DataFrame({"id": [int(r) for r in RECORDS], "fs": list(RECORDS.values()),
                  "sig_len": [10 * fs for fs in RECORDS.values()]}).to_csv(tmp_path / "train.csv", index=False)
    for rid, df in signals.items():
        (tmp_path / "train" / rid).mkdir(parents=True)
        df.to_csv(tmp_path / "train" / rid / f"{rid}.csv", index=False)
    rows = rows_from_signals(signals, {rid: fs for rid, fs in RECORDS.items()})
    rows.to_csv(tmp_path / "test.csv", index=False)
    return tmp_path, signals, rows


def truth_predictions(signals, rows):
    """Predictions equal to the printed samples, keyed by int image id (keys are matched via str)."""
    out: dict = {}
    for rid, lead in zip(rows["id"], rows["lead"], strict=True):
        col = signals[rid][lead].to_numpy()
        out.setdefault(int(rid), {})[lead] = col[~np.isnan(col)]
    return out


def test_train_layout_round_trip(layout):
    root, signals, _ = layout
    train = read_train_csv(root)
    assert train["id"].tolist() == list(RECORDS)
    assert train["fs"].tolist() == list(RECORDS.values())
    assert train["sig_len"].tolist() == [10 * fs for fs in RECORDS.values()]
    for rid in RECORDS:
        back = read_record_signals(root, int(rid))
        assert list(back.columns) == list(LEADS)
        np.testing.assert_array_equal(back.to_numpy(), signals[rid].to_numpy())  # NaNs in the same places
    with pytest.raises(FileNotFoundError):
        read_record_signals(root, "nope")


def test_test_csv_and_solution(layout):
    root, signals, rows = layout
    test = read_test_csv(root)
    pd.testing.assert_frame_equal(test, rows)
    assert test["id"].map(type).eq(str).all()
    n_ii = test.loc[(test["id"] == "2002") & (test["lead"] == "II"), "number_of_rows"].item()
    n_v1 = test.loc[(test["id"] == "2002") & (test["lead"] == "V1"), "number_of_rows"].item()
    assert (n_ii, n_v1) == (5000, 1250)

    sol = solution_from_signals(signals, test)
    assert len(sol) == test["number_of_rows"].sum()
    assert sol["id"].iloc[0] == "101_0_I"
    v1 = signals["33"]["V1"].to_numpy()
    got = sol.loc[sol["id"].str.endswith("_V1") & sol["id"].str.startswith("33_"), "value"].to_numpy()
    np.testing.assert_array_equal(got, v1[~np.isnan(v1)])
    assert sol.loc[sol["id"] == "33_0_V1", "fs"].item() == 256

    bad = test.copy()
    bad.loc[0, "number_of_rows"] += 1
    with pytest.raises(ValueError, match="image 101 lead I"):
        solution_from_signals(signals, bad)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_read_validate_score(layout, suffix):
    root, signals, rows = layout
    preds = truth_predictions(signals, rows)
    path = write_submission(preds, rows, root / "out" / f"submission{suffix}")
    back = read_submission(path)
    assert list(back.columns) == ["id", "value"]
    assert back["id"].tolist() == expected_ids(rows).to_pylist()
    frame = submission_frame(preds, rows)
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())  # exact round trip
    assert validate_submission(path, rows) == []
    assert validate_submission(back, rows) == []
    assert_valid_submission(path, rows)
    sol = solution_from_signals(signals, rows)
    assert (per_image_snr(sol, back)["snr"] == MAX_SNR).all()
    if suffix == ".csv":
        assert path.read_text().splitlines()[:2] == ["id,value", f"101_0_I,{float(preds[101]['I'][0])!r}"]


def test_write_submission_rejects_bad_predictions(layout, tmp_path):
    _, signals, rows = layout
    preds = truth_predictions(signals, rows)
    short = {k: dict(v) for k, v in preds.items()}
    short[2002]["V3"] = short[2002]["V3"][:-1]
    with pytest.raises(ValueError, match="image 2002 lead V3.*1250"):
        write_submission(short, rows, tmp_path / "s.csv")
    nan = {k: dict(v) for k, v in preds.items()}
    nan[33]["aVL"] = nan[33]["aVL"].copy()
    nan[33]["aVL"][7] = np.inf
    with pytest.raises(ValueError, match="image 33 lead aVL.*non-finite"):
        write_submission(nan, rows, tmp_path / "s.parquet")
    missing = {k: dict(v) for k, v in preds.items()}
    del missing[101]["V6"]
    with pytest.raises(ValueError, match="image 101 lacks lead V6"):
        write_submission(missing, rows, tmp_path / "s.csv")
    with pytest.raises(ValueError, match="no prediction for image 33"):
        write_submission({k: v for k, v in preds.items() if k != 33}, rows, tmp_path / "s.csv")
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_submission(preds, rows, tmp_path / "s.txt")
    assert not (tmp_path / "s.csv").exists()


def test_validator_catches_problems(layout):
    _, signals, rows = layout
    good = submission_frame(truth_predictions(signals, rows), rows)
    assert validate_submission(good.iloc[::-1].reset_index(drop=True), rows) == []  # order is free

    missing = good[good["id"] != "2002_17_V2"]
    (msg,) = validate_submission(missing, rows)
    assert "1 expected ids missing" in msg and "2002_17_V2" in msg and "image 2002 lead V2: 1 of 1250" in msg

    extra = pd.concat([good, pd.DataFrame({"id": ["33_640_V1", "junk"], "value": [0.0, 0.0]})])
    (msg,) = validate_submission(extra, rows)
    assert "2 ids not expected" in msg and "33_640_V1" in msg and "junk" in msg

    dup = pd.concat([good, good.iloc[[5, 5]]])
    (msg,) = validate_submission(dup, rows)
    assert "2 duplicated" in msg and "101_5_I" in msg

    is_v4 = good["id"].str.startswith("101_") & good["id"].str.endswith("_V4")
    short = good[~(is_v4 & (good["id"].str.split("_").str[1].astype(int) >= 600))]  # wrong length: 600 of 625
    (msg,) = validate_submission(short, rows)
    assert "image 101 lead V4: 25 of 625 rows missing" in msg

    nonfinite = good.copy()
    nonfinite.loc[[3, 9], "value"] = [np.nan, -np.inf]
    (msg,) = validate_submission(nonfinite, rows)
    assert "2 values are not finite" in msg and "101_3_I" in msg and "101_9_I" in msg

    words = good.astype({"value": object})
    words.loc[4, "value"] = "abc"
    (msg,) = validate_submission(words, rows)
    assert "1 values are not numbers" in msg and "101_4_I" in msg

    assert validate_submission(good.assign(extra=1), rows) == [
        "submission must have exactly the columns id, value; has ['id', 'value', 'extra']"]
    assert "must have columns id, value" in validate_submission(good.rename(columns={"value": "v"}), rows)[0]

    with pytest.raises(ValueError) as err:
        assert_valid_submission(pd.concat([missing, good.iloc[[0]]]).assign(value=np.nan), rows)
    assert "missing" in str(err.value) and "duplicated" in str(err.value) and "not finite" in str(err.value)


def test_validator_reads_files(layout):
    root, signals, rows = layout
    good = submission_frame(truth_predictions(signals, rows), rows)
    bad = good.copy()
    bad.loc[10, "value"] = np.nan
    bad.to_csv(root / "bad.csv", index=False)
    (msg,) = validate_submission(root / "bad.csv", rows)
    assert "not finite" in msg and "101_10_I" in msg
    assert validate_submission(root / "absent.parquet", rows)[0].startswith("cannot read submission")


def test_score_from_written_submission_matches_frame(layout):
    root, signals, rows = layout
    rng = np.random.default_rng(3)
    preds = {rid: {lead: 0.9 * v + rng.normal(0, 0.05, v.size) for lead, v in leads.items()}
             for rid, leads in truth_predictions(signals, rows).items()}
    sol = solution_from_signals(signals, rows)
    path = write_submission(preds, rows, root / "p.parquet")
    assert score(sol, read_submission(path)) == pytest.approx(score(sol, submission_frame(preds, rows)), abs=1e-12)
