"""The independent page renderer of benchmarks.other_renderer: dataset files, trace placement, determinism."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmarks.other_renderer import CSV_LEADS, OUTPUT_FS_HZ, render_page, sample_style, write_dataset
from common.kaggle_io import read_record_signals, read_train_csv
from synth.signals import resample, simulate_record

# 3x4 + II: the panel column (2.5 s quarter of the record) of every lead but the rhythm lead II.
COLUMN = {"I": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1, "V1": 2, "V2": 2, "V3": 2, "V4": 3, "V5": 3, "V6": 3}
SIZE_AT_100_DPI = {(850, 1100), (827, 1169)}  # (height, width) of US Letter / A4 landscape
SEED = 3


@pytest.fixture(scope="module")
def records():
    return [simulate_record(np.random.default_rng(k), fs_hz=500, record_id=f"sim{k}") for k in range(2)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, records):
    out = tmp_path_factory.mktemp("other")
    pages = write_dataset(out, records, seed=SEED, scan_fraction=0.0, dpis=(100,), verbose=False)
    return out, pages


def test_files_follow_the_train_layout(dataset, records):
    out, pages = dataset
    train = read_train_csv(out)
    assert list(train["id"]) == [p.record_id for p in pages]
    for page, record, row in zip(pages, records, train.itertuples(), strict=True):
        assert row.fs in OUTPUT_FS_HZ and row.sig_len == round(10 * row.fs)
        raw = pd.read_csv(out / "train" / page.record_id / f"{page.record_id}.csv")
        assert list(raw.columns) == list(CSV_LEADS)
        frame = read_record_signals(out, page.record_id)
        assert len(frame) == row.sig_len
        for lead, column in COLUMN.items():
            i0, i1 = round(2.5 * column * row.fs), round(2.5 * (column + 1) * row.fs)
            expected = np.zeros(row.sig_len, bool)
            expected[i0:i1] = True
            np.testing.assert_array_equal(np.isfinite(frame[lead].to_numpy()), expected, err_msg=lead)
        truth = resample(record.leads_mv, record.fs_hz, row.fs)
        np.testing.assert_allclose(frame["II"].to_numpy(), truth[1], atol=1e-5)
        image = cv2.imread(str(page.image_path), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] in SIZE_AT_100_DPI


def test_rhythm_strip_trace_is_where_the_truth_says(dataset):
    out, pages = dataset
    for page in pages:
        style = page.style
        grey = cv2.imread(str(page.image_path), cv2.IMREAD_COLOR).astype(np.float64).mean(axis=2)
        lead_ii = read_record_signals(out, page.record_id)["II"].to_numpy()
        t_s = np.arange(lead_ii.size) / page.fs_hz
        px_per_mm = style.dpi / 25.4
        px_per_s = 25.0 * px_per_mm
        x0_px = style.x0_mm * px_per_mm - 0.5  # pixel-centre coordinates
        baseline_px = style.baselines_mm[-1] * px_per_mm - 0.5
        # Columns from 0.5 s to 9.5 s (clear of the pulse and the label) where the trace is flat to under a
        # pixel over +-3 px, i.e. away from QRS complexes; eight of them spread over the strip.
        columns = np.arange(math.ceil(x0_px + 0.5 * px_per_s), math.floor(x0_px + 9.5 * px_per_s))
        around = (columns[:, None] + np.arange(-3, 4)[None, :] - x0_px) / px_per_s
        y_around = baseline_px - np.interp(around, t_s, lead_ii) * 10.0 * px_per_mm
        flat = columns[np.ptp(y_around, axis=1) < 1.0]
        chosen = flat[np.linspace(0, flat.size - 1, 8).round().astype(int)]
        band = int(0.4 * style.row_pitch_mm * px_per_mm)
        top = int(baseline_px) - band
        for x in chosen:
            expected_y = baseline_px - np.interp((x - x0_px) / px_per_s, t_s, lead_ii) * 10.0 * px_per_mm
            darkest_y = top + int(np.argmin(grey[top: int(baseline_px) + band, x]))
            assert abs(darkest_y - expected_y) <= 2.0, (page.record_id, x, darkest_y, expected_y)


def test_same_seed_same_pages(dataset, records, tmp_path):
    out, pages = dataset
    again = write_dataset(tmp_path, records, seed=SEED, scan_fraction=0.0, dpis=(100,), verbose=False)
    assert [p.style for p in again] == [p.style for p in pages]
    for first, second in zip(pages, again, strict=True):
        np.testing.assert_array_equal(cv2.imread(str(first.image_path)), cv2.imread(str(second.image_path)))
        name = f"{first.record_id}.csv"
        assert (out / "train" / first.record_id / name).read_bytes() == (tmp_path / "train" / second.record_id
                                                                         / name).read_bytes()


def test_scanned_page_is_deterministic_and_keeps_its_size(records):
    style = sample_style(np.random.default_rng(0), scan_fraction=1.0, dpis=(100,))
    assert style.scan is not None and abs(style.scan.rotation_deg) < 1.5
    leads = resample(records[0].leads_mv, records[0].fs_hz, 250)
    first, second = render_page(leads, 250, style), render_page(leads, 250, style)
    assert first.shape[:2] in SIZE_AT_100_DPI
    np.testing.assert_array_equal(first, second)
