"""benchmarks.other_renderer's other arrangements (3x4, 3x4 + three strips, 6x2, 12x1) and page extras (gaps, the
pulse alone, time marks, wide papers); its standard page unchanged."""

from __future__ import annotations

import dataclasses
import hashlib

import cv2
import numpy as np
import pandas as pd
import pytest

from benchmarks.other_renderer import (
    ALL_PAPERS_MM,
    ARRANGEMENTS,
    CSV_LEADS,
    MM_PER_S,
    PageExtras,
    page_arrangement,
    printed_signals,
    render_page,
    sample_style,
    write_dataset,
)
from common.kaggle_io import read_record_signals, read_train_csv
from synth.signals import resample, simulate_record

# The standard page of seed [3, 0] at 100 dpi for simulated record 0 at 250 Hz, as drawn before arrangements
# existed (sha256 of the RGB pixels and of the printed-signal table).
STANDARD_IMAGE_SHA256 = "6dee1ec9a49b938c679dfae0691d608a4830f639944073700d3f7b0cb8970334"
STANDARD_TABLE_SHA256 = "46f3d678f95da671c05b150ed574c4e16642cf3b900bc5e5036b836c6b314618"


@pytest.fixture(scope="module")
def record():
    return simulate_record(np.random.default_rng(0), fs_hz=500, record_id="sim0")


def test_standard_page_is_unchanged(record):
    leads = resample(record.leads_mv, record.fs_hz, 250)
    style = sample_style(np.random.default_rng([3, 0]), 0.0, (100,))
    assert style.arrangement == "standard" and style.gap_mm == 0 and style.time_marks == "none"
    image = render_page(leads, 250, style)
    assert hashlib.sha256(image.tobytes()).hexdigest() == STANDARD_IMAGE_SHA256
    table = np.ascontiguousarray(printed_signals(leads, 250))
    assert hashlib.sha256(table.tobytes()).hexdigest() == STANDARD_TABLE_SHA256
    # no extras drawn for the standard arrangement: the same page as with none asked
    assert page_arrangement(3, 0) == ("standard", PageExtras())


def test_6x2_page_prints_limb_leads_first_half_chest_leads_second(tmp_path, record):
    pages = write_dataset(tmp_path, [record], seed=5, scan_fraction=0.0, dpis=(100,), verbose=False,
                          arrangement="6x2")
    page = pages[0]
    assert page.style.arrangement == "6x2" and len(page.style.baselines_mm) == 6
    fs = read_train_csv(tmp_path)["fs"].iloc[0]
    frame = read_record_signals(tmp_path, page.record_id)
    n, half = len(frame), int(round(5 * fs))
    assert n == round(10 * fs)
    for k, lead in enumerate(CSV_LEADS):
        expected = np.zeros(n, bool)
        if k < 6:
            expected[:half] = True
        else:
            expected[half:] = True
        np.testing.assert_array_equal(np.isfinite(frame[lead].to_numpy()), expected, err_msg=lead)
    truth = resample(record.leads_mv, record.fs_hz, fs)
    np.testing.assert_allclose(frame["V1"].to_numpy()[half:], truth[6, half:], atol=1e-5)
    variants = pd.read_csv(tmp_path / "variants.csv", dtype={"image_id": str})
    assert list(variants["layout"]) == ["6x2"] and list(variants["arrangement"]) == ["plain"]

    # V1's trace is where the page puts it: right column of the top row, from 5 s of chart time
    style = page.style
    grey = cv2.imread(str(page.image_path), cv2.IMREAD_COLOR).astype(np.float64).mean(axis=2)
    ppmm = style.dpi / 25.4
    x_mm = style.x0_mm + (np.arange(half, n) / fs) * MM_PER_S
    y_mm = style.baselines_mm[0] - truth[6, half:] * 10.0
    columns = np.round(x_mm * ppmm - 0.5).astype(int)
    rows = np.round(y_mm * ppmm - 0.5).astype(int)
    on_trace = grey[rows, columns] < 0.5 * np.median(grey)
    assert on_trace.mean() > 0.9


@pytest.mark.parametrize("arrangement", sorted(ARRANGEMENTS))
def test_printed_spans_follow_the_arrangement(arrangement, record):
    leads = resample(record.leads_mv, record.fs_hz, 500)
    counts = np.isfinite(printed_signals(leads, 500, arrangement)).sum(axis=0)
    expected = {"standard": {"II": 5000}, "3x4": {}, "3x4+3": {"II": 5000, "V1": 5000, "V5": 5000},
                "6x2": {lead: 2500 for lead in CSV_LEADS}, "12x1": {lead: 5000 for lead in CSV_LEADS}}[arrangement]
    assert dict(zip(CSV_LEADS, counts.tolist(), strict=True)) == {lead: expected.get(lead, 1250) for lead in CSV_LEADS}


def test_every_arrangement_with_extras_fits_its_paper():
    for seed in range(40):
        for arrangement in ARRANGEMENTS:
            name, extras = page_arrangement(seed, 0, arrangement, extras=0.7)
            style = sample_style(np.random.default_rng([seed, 0]), 0.0, arrangement=name, extras=extras)
            paper_w, paper_h = ALL_PAPERS_MM[style.paper]
            row_end = max(style.x0_mm + style.panel_offset_mm(p) + (p.t1_s - p.t0_s) * MM_PER_S
                          for p in style.panels)
            assert 3.0 <= style.grid_left_mm and row_end <= style.grid_right_mm <= paper_w - 3.0 + 1e-9
            assert style.grid_top_mm < style.baselines_mm[0] and style.baselines_mm[-1] < style.grid_bottom_mm
            assert style.grid_bottom_mm <= paper_h
            if extras.pulse_outside_mm is not None and style.pulse_rise_mm is not None:
                fall = style.grid_left_mm + style.pulse_rise_mm + 5.0
                assert style.x0_mm - fall >= extras.pulse_outside_mm + 1.0 - 1e-9


def test_the_gain_extra_draws_the_chart_and_its_pulses_at_5_mm_per_mv(record):
    leads = resample(record.leads_mv, record.fs_hz, 250)
    for seed in range(40):
        name, extras = page_arrangement(seed, 0, "standard", extras={"gain": 1.0})
        style = sample_style(np.random.default_rng([seed, 0]), 0.0, (100,), name, extras)
        if style.pulse_rise_mm is not None:
            break
    full = sample_style(np.random.default_rng([seed, 0]), 0.0, (100,), name, PageExtras())
    assert style.mm_per_mv == 5.0 and full.mm_per_mv == 10.0 and "5 mm/mV" in style.summary()
    assert not any("10 mm/mV" in line or "10mm/mV" in line for line in style.header_lines)
    # the gain changes nothing else on the page
    assert style == dataclasses.replace(full, mm_per_mv=5.0, header_lines=style.header_lines)
    ink = [(render_page(leads, 250, s).min(axis=2) < 128).any(axis=1) for s in (full, style)]
    rows = [np.flatnonzero(k) for k in ink]
    # dark rows (the chart's ink, text aside) span less height at half the gain
    assert rows[1].size < rows[0].size
