"""Pages read by the layout found on them: rows and panels of any known layout, forced layouts, the time spans
in the outputs, the factory's layout names and cv's per-layout scores."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.metric import lead_residuals
from common.types import Page
from pipeline import chain
from pipeline.__main__ import main
from pipeline.batch import summarise
from pipeline.chain import LAYOUT_CONFIDENCE, Pipeline, choose_reading, default_rows
from stage1_segment.anchors import Anchors
from stage1_segment.infer import TraceSegmenter
from stage1_segment.layout_finder import FoundLayout, FoundRow
from stage1_segment.passes import SPREAD_BAND, only_rows, row_passes, spread_rows
from synth.factory import make_page
from synth.make import make_dataset, parse_layouts
from synth.render import Arrangements
from synth.signals import simulate_record

REPO = Path(__file__).resolve().parent.parent
SEED_6X2 = 2  # a simulated record whose 6x2 page the committed weights read at 27 dB by its panels
SEED_HALF_GAIN = 4  # one whose 6x2 page has calibration pulses (seed 2's has none)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.from_bundles(REPO / "weights")


@pytest.fixture(scope="module")
def page_6x2():
    rec = simulate_record(np.random.default_rng(SEED_6X2))
    return make_page(rec, SEED_6X2, SEED_6X2, ["0001"], layouts=["6x2"], fs_choices=[500])


def _snr_db(truth: dict, leads_mv: dict, fs_hz: float) -> float:
    signal = noise = 0.0
    for lead in LEADS:
        resid, _, _ = lead_residuals(truth[lead], leads_mv[lead], fs_hz)
        signal, noise = signal + float(truth[lead] @ truth[lead]), noise + float(resid @ resid)
    return 10 * np.log10(signal / noise)


def test_a_6x2_factory_page_is_read_by_its_panels(pipeline, page_6x2):
    truth = {lead: page_6x2.labels.lead_signal(lead) for lead in LEADS}
    page = Page("p", page_6x2.images["0001"].image_rgb, 500.0, {lead: v.size for lead, v in truth.items()})
    result = pipeline(page)
    assert result.layout.name == "6x2" and result.layout.how == "found"
    assert result.maps.maps.shape[0] == 6
    assert all(result.signals.leads_mv[lead].size == 2500 for lead in LEADS)  # 5 s each
    assert _snr_db(truth, result.signals.leads_mv, 500.0) > 15.0


def test_a_page_with_two_rhythm_strips_is_read_by_its_five_rows(pipeline):
    """3x4 with strips V1 over II: the strips' 10 s are read as V1 and II (before the two-strip layout was known,
    five rows fit none and the page was read as 3x4+II, the V1 strip taken for II: factory pages near 5 dB)."""
    rec = simulate_record(np.random.default_rng(SEED_6X2))
    drawn = make_page(rec, SEED_6X2, SEED_6X2, ["0001"], layouts=["3x4+II,V1/rhythm=V1,II"], fs_choices=[500])
    truth = {lead: drawn.labels.lead_signal(lead) for lead in LEADS}
    page = Page("p", drawn.images["0001"].image_rgb, 500.0, {lead: v.size for lead, v in truth.items()})
    result = pipeline(page)
    assert result.layout.name == "3x4+II,V1/rhythm=V1,II" and result.layout.how == "found"
    assert result.maps.maps.shape[0] == 5
    assert _snr_db(truth, result.signals.leads_mv, 500.0) > 18.0
    for lead in ("V1", "II"):  # printed for the whole 10 s
        resid, _, _ = lead_residuals(truth[lead], result.signals.leads_mv[lead], 500.0)
        assert 10 * np.log10(float(truth[lead] @ truth[lead]) / float(resid @ resid)) > 15.0


def test_a_page_printed_at_half_gain_is_read_at_its_pulses_gain(pipeline, tmp_path):
    """A 6x2 page at 5 mm/mV: the pipeline reads it at the gain its pulses show, and says so; read at the sheet's
    10 mm/mV every lead would be half its amplitude (a page near 6 dB)."""
    import cv2

    rec = simulate_record(np.random.default_rng(SEED_HALF_GAIN))
    half = make_page(rec, SEED_HALF_GAIN, SEED_HALF_GAIN, ["0001"], layouts=["6x2"], fs_choices=[500],
                     arrangements=Arrangements(half_gain=1.0))
    assert half.labels.style["mm_per_mv"] == 5.0
    truth = {lead: half.labels.lead_signal(lead) for lead in LEADS}
    page = Page("p", half.images["0001"].image_rgb, 500.0, {lead: v.size for lead, v in truth.items()})
    result = pipeline(page)
    assert result.layout.name == "6x2" and result.layout.mm_per_mv == 5.0
    assert _snr_db(truth, result.signals.leads_mv, 500.0) > 15.0
    halved = {lead: 0.5 * v for lead, v in result.signals.leads_mv.items()}  # as read at 10 mm/mV
    assert _snr_db(truth, halved, 500.0) < 7.0
    image = tmp_path / "half.png"
    cv2.imwrite(str(image), cv2.cvtColor(half.images["0001"].image_rgb, cv2.COLOR_RGB2BGR))
    assert main(["digitize", str(image), "--out", str(tmp_path / "out"), "--format", "json", "--quiet"]) == 0
    assert json.loads((tmp_path / "out" / "half.json").read_text())["layout"]["mm_per_mv"] == 5.0
    # a gain given overrules the pulses' (a page without pulses is read at 10 mm/mV unless its gain is given)
    forced = replace(pipeline, mm_per_mv=20.0)(page)
    assert forced.layout.mm_per_mv == 20.0
    for lead in ("II", "V2"):  # the same px are a quarter of the mV at 20 mm/mV
        assert np.std(forced.signals.leads_mv[lead]) == pytest.approx(0.25 * np.std(result.signals.leads_mv[lead]),
                                                                      rel=0.05)
    with pytest.raises(ValueError, match="gain"):
        replace(pipeline, mm_per_mv=0.0)
    with pytest.raises(SystemExit):
        main(["digitize", str(image), "--mm-per-mv", "ten"])


def test_a_forced_layout_is_read_and_the_outputs_say_which_seconds_each_lead_is(tmp_path, page_6x2, capsys):
    import cv2

    image = tmp_path / "page.png"
    cv2.imwrite(str(image), cv2.cvtColor(page_6x2.images["0001"].image_rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main(["digitize", str(image), "--out", str(out), "--format", "csv,json", "--layout", "3x4+II"]) == 0
    assert "page.png: layout 3x4+II (forced;" in capsys.readouterr().out
    result = json.loads((out / "page.json").read_text())
    assert result["layout"]["name"] == "3x4+II" and result["layout"]["how"] == "forced"
    assert result["spans_s"]["II"] == [0.0, 10.0] and result["spans_s"]["V4"] == [7.5, 10.0]
    # found by itself: 6x2, every lead 5 s, the limb leads first and the chest leads after them
    assert main(["digitize", str(image), "--out", str(out), "--format", "csv,json", "--quiet"]) == 0
    result = json.loads((out / "page.json").read_text())
    assert result["layout"]["name"] == "6x2" and result["layout"]["how"] == "found"
    assert result["layout"]["finder_confidence"] >= LAYOUT_CONFIDENCE
    assert result["spans_s"]["aVF"] == [0.0, 5.0] and result["spans_s"]["V1"] == [5.0, 10.0]
    table = pd.read_csv(out / "page.csv")
    assert list(table.columns) == ["time_s", *LEADS]
    printed = table.loc[table["I"].notna(), "time_s"]
    assert printed.min() == 0.0 and printed.max() == pytest.approx(5.0 - 1 / 500)
    assert table.loc[table["V1"].notna(), "time_s"].min() == 5.0


def test_an_unknown_forced_layout_is_refused():
    with pytest.raises(SystemExit):
        main(["digitize", "x.png", "--layout", "4x3"])
    with pytest.raises(KeyError, match="unknown layout"):
        Pipeline(None, None, layout="4x3")


def _found(name: str | None, confidence: float, rows_y: list[float], pulsed: bool = False,
           names: list | None = None) -> FoundLayout:
    rows = tuple(FoundRow(y, ((100.0, 2000.0),), None, (46.0, y - 78.0, 86.0, y) if pulsed else None, False,
                          ((100.0, 2000.0),), None if names is None else names[k]) for k, y in enumerate(rows_y))
    return FoundLayout(name, confidence, rows, {}, 100.0 if name else None, CANONICAL.px_per_s if name else None)


def test_the_competition_layout_is_read_at_the_anchors_unless_they_lost_a_row_the_finder_found(monkeypatch):
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    rows = [750.0, 932.0, 1112.0, 1292.0]

    def anchored_at(*baselines):
        monkeypatch.setattr(chain, "find_anchors", lambda rgb, name: Anchors(tuple(baselines), "ink", ()))

    anchored_at(755.0, 936.0, 1140.0, 1296.0)  # within half a row pitch: the anchors' baselines, as always
    assert default_rows(_found("3x4+II", 1.0, rows), sheet, "3x4+II") == (755.0, 936.0, 1140.0, 1296.0)
    anchored_at(94.0, 752.0, 935.0, 1292.0)  # a header line taken for the first row, the third skipped
    assert default_rows(_found("3x4+II", 1.0, rows), sheet, "3x4+II") == tuple(rows)
    # ... but only where the finder is sure of the competition layout with as many rows
    for found in (_found("3x4+II", LAYOUT_CONFIDENCE / 2, rows), _found("3x4", 1.0, rows[:3] + [1400.0]),
                  _found(None, 0.0, rows), _found("3x4+II", 1.0, rows[:3])):
        assert default_rows(found, sheet, "3x4+II") == (94.0, 752.0, 935.0, 1292.0)
    # ... and found evenly spaced, as the competition layout's rows are (a dithered scan's rows found 365, 663
    # and 284 px apart are not them)
    anchored_at(444.0, 764.0, 1080.0, 1407.0)
    assert default_rows(_found("3x4+II", 0.45, [80.0, 445.0, 1108.0, 1392.0]), sheet, "3x4+II") == (
        444.0, 764.0, 1080.0, 1407.0)
    # ... unless each row stands on its own calibration pulse: a printer spacing its rows by their signals'
    # heights (378, 274 and 266 px apart), whose header the anchors took for the first row
    uneven = [534.0, 912.0, 1186.0, 1452.0]
    anchored_at(109.0, 537.0, 916.0, 1455.0)
    assert default_rows(_found("3x4+II", 0.92, uneven, pulsed=True), sheet, "3x4+II") == tuple(uneven)
    assert default_rows(_found("3x4+II", 0.92, uneven), sheet, "3x4+II") == (109.0, 537.0, 916.0, 1455.0)
    # ... or where the lead names read surely on every row are the layout's there (a page without pulses)
    named = [[("I", 0.99), ("none", 0.6), ("V1", 0.95), ("V4", 0.5)], [("II", 0.97)] + [("none", 0.9)] * 3,
             [("none", 0.8), ("aVF", 0.93), ("none", 0.9), ("V6", 0.99)], [("II", 0.98)]]
    assert default_rows(_found("3x4+II", 0.92, uneven, names=named), sheet, "3x4+II") == tuple(uneven)
    named[2][2] = ("V2", 0.95)  # a name read surely that is not the layout's there: the row is not confirmed
    assert default_rows(_found("3x4+II", 0.92, uneven, names=named), sheet, "3x4+II") == (109.0, 537.0, 916.0,
                                                                                           1455.0)
    named[2][2], named[3] = ("none", 0.9), [("II", 0.6)]  # a row named by none surely
    assert default_rows(_found("3x4+II", 0.92, uneven, names=named), sheet, "3x4+II") == (109.0, 537.0, 916.0,
                                                                                           1455.0)


def test_which_layout_a_page_is_read_by():
    sheet = np.full((*CANONICAL.shape_hw, 3), 255, np.uint8)
    six = [300.0, 520.0, 740.0, 960.0, 1180.0, 1400.0]
    reading = choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II")
    assert (reading.name, reading.how, reading.baselines_y_px) == ("6x2", "found", tuple(six))
    # not sure enough, nothing found, or the competition's own layout: read as always
    for found in (_found("6x2", LAYOUT_CONFIDENCE / 2, six), _found(None, 0.0, six),
                  _found("3x4+II", 1.0, six[:4])):
        reading = choose_reading(found, sheet, "3x4+II")
        assert (reading.name, reading.how, reading.baselines_y_px) == ("3x4+II", "default", None)
    # a page that asks for more of a lead than the found layout prints (the competition's 10 s of II) is not it
    asks = {lead: 1250 for lead in LEADS} | {"II": 5000}
    page = Page("p", sheet, 500.0, asks)
    assert choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II", page=page).how == "default"
    assert choose_reading(_found("3x4+II,V1,V5", 0.6, six), sheet, "3x4+II", page=page).how == "found"
    assert choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II", page=Page("p", sheet, 500.0)).how == "found"
    # ... but the next-best fit of as many rows that prints it is (three rhythm strips that fit 6x2 a little
    # better), when it is sure enough; a layout of another row count never is
    fits = {"6x2": 0.83, "3x4+II,V1,V5": 0.75, "3x4+II": 0.0}
    strips = replace(_found("6x2", 0.6, six), fits=fits)
    reading = choose_reading(strips, sheet, "3x4+II", page=page)
    assert (reading.name, reading.how, reading.baselines_y_px) == ("3x4+II,V1,V5", "found", tuple(six))
    assert reading.confidence == 0.75
    unsure = replace(strips, fits=fits | {"3x4+II,V1,V5": LAYOUT_CONFIDENCE / 2})
    assert choose_reading(unsure, sheet, "3x4+II", page=page).how == "default"
    other_rows = replace(strips, fits={"6x2": 0.83, "3x4+II": 0.7})
    assert choose_reading(other_rows, sheet, "3x4+II", page=page).how == "default"
    # the competition's geometry with its names in another order (Cabrera's) is read as the competition's pages
    cab = choose_reading(_found("3x4+II/cabrera", 0.9, six[:4]), sheet, "3x4+II", page=page)
    assert (cab.name, cab.how, cab.baselines_y_px) == ("3x4+II/cabrera", "found", None)
    # forced: on the rows found where there are as many, else on the layout's own rows
    assert choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II", "3x4+II,V1,V5").baselines_y_px == tuple(six)
    forced = choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II", "12x1")
    assert forced.how == "forced" and len(forced.baselines_y_px) == 12
    assert choose_reading(_found("6x2", 0.6, six), sheet, "3x4+II", "3x4+II").baselines_y_px is None


@pytest.mark.parametrize("n_rows", [1, 3, 4, 5, 6, 12])
def test_every_row_is_read_and_only_the_last_in_the_bottom_channel(n_rows):
    ys = [200.0 + 100.0 * k for k in range(n_rows)]
    passes = row_passes(ys, 4, 1700.0)
    read = [row for _, rows in passes for row in rows if row >= 0]
    assert sorted(set(read)) == list(range(n_rows))
    for anchors, rows in passes:
        assert len(anchors) == 4 and len(rows) == 4
        assert all(a == ys[r] for a, r in zip(anchors, rows, strict=True) if r >= 0)
        if n_rows >= 4:
            assert rows[3] in (n_rows - 1, -1)


def test_spread_rows_moves_each_band_to_its_target():
    sheet = np.full((*CANONICAL.shape_hw, 3), 250, np.uint8)
    for k, y in enumerate((300, 400, 500)):
        sheet[y, 100:200] = 10 * k
    canvas, shifts = spread_rows(sheet, [300.0, 400.0, 500.0], [490.0, 772.0, 1052.0], 60.0)
    for k, (shift, lo, hi) in enumerate(shifts):
        assert shift % 2 == 0 and lo <= (300 + 100 * k) < hi
        assert (canvas[300 + 100 * k + shift, 100:200] == 10 * k).all()
    assert (canvas[300, 100:200] == 250).all()  # nothing left where the rows were


def test_the_band_close_rows_are_read_in_is_the_bundles_own(pipeline):
    """Close rows are shown to a network as it was trained: moved apart in its bundle's ``spread_band`` (default
    SPREAD_BAND), or in place; a band that is no share of a row pitch is refused."""
    seg = pipeline.segmenter
    inference = seg.config.get("inference") or {}
    assert TraceSegmenter(seg.model, seg.config).spread_band == SPREAD_BAND
    wider = {**seg.config, "inference": {**inference, "spread_band": 1.4}}
    assert TraceSegmenter(seg.model, wider).spread_band == 1.4
    in_place = {**seg.config, "inference": {**inference, "close_rows": "in_place", "spread_band": 1.4}}
    assert TraceSegmenter(seg.model, in_place).spread_band is None
    with pytest.raises(ValueError, match="spread_band"):
        TraceSegmenter(seg.model, {**seg.config, "inference": {**inference, "spread_band": 0.0}})


def test_only_rows_paints_over_the_rows_beyond_a_pass():
    sheet = np.full((*CANONICAL.shape_hw, 3), 250, np.uint8)
    rows = [300, 500, 700, 900, 1100, 1300]
    for y in rows:
        sheet[y, 100:200] = 0
    kept = only_rows(sheet, [float(y) for y in rows[1:5]], [float(y) for y in rows])
    assert (kept[rows[0], 100:200] == 250).all() and (kept[rows[5], 100:200] == 250).all()
    assert all((kept[y, 100:200] == 0).all() for y in rows[1:5])
    assert (kept[401:1200] == sheet[401:1200]).all()  # nothing between the pass's rows is touched


def test_layout_names_with_commas_can_be_asked_for(tmp_path):
    assert parse_layouts("3x4+II,V1,V5") == ["3x4+II,V1,V5"]
    assert parse_layouts("3x4+II,V1,V5;6x2") == ["3x4+II,V1,V5", "6x2"]
    assert parse_layouts("3x4+II,6x2") == ["3x4+II", "6x2"]  # the old comma list still reads
    assert parse_layouts(" 12x1 ; 3x4 ") == ["12x1", "3x4"]
    for bad in ("4x3", "3x4+II,V2", ";"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_layouts(bad)
    out = make_dataset(tmp_path / "set", [simulate_record(np.random.default_rng(3))], ["0001"], 3, 1, "train",
                       parse_layouts("3x4+II,V1,V5"), fs_choices=[250], progress=False)
    variants = pd.read_csv(out / "variants.csv", dtype=str)
    assert variants.to_dict("records") == [{"image_id": "10000-0001", "layout": "3x4+II,V1,V5"}]
    assert get_layout(variants["layout"].iloc[0]).n_rows == 6


def test_cv_reports_per_layout():
    images = pd.DataFrame({"image_id": ["a-0001", "b-0001", "c-0001"], "type": "0001", "fs": 500.0,
                           "snr": [100.0, 100.0, 10.0], "snr_db": [20.0, 20.0, 10.0], "signal": 1.0,
                           "noise": 0.01, "noise_uncovered": 0.0, "noise_edges": 0.0, "error": "",
                           "layout": ["6x2", "6x2", "12x1"]})
    leads = pd.DataFrame({"image_id": "a-0001", "lead": list(LEADS), "snr_db": 20.0})
    text = summarise(images, leads)
    assert "per layout:\n  12x1: 10.00 dB (1)\n  6x2: 20.00 dB (2)" in text


def test_rows_closer_than_the_competitions_are_read_by_the_close_rows_network(pipeline, page_6x2, tmp_path):
    """A 12x1 page's rows (about 100 px apart) go to the close-rows network where the weights have one; a 6x2
    page's (about 220 px) stay with the competition's; the folder is optional."""
    from pipeline.chain import CLOSE_ROWS_BUNDLE

    weights = tmp_path / "weights"
    weights.mkdir()
    for bundle in ("stage1_segment", "stage2_signal"):
        (weights / bundle).symlink_to(REPO / "weights" / bundle)
    assert Pipeline.from_bundles(weights).close_rows is None
    (weights / CLOSE_ROWS_BUNDLE).symlink_to(REPO / "weights" / "stage1_segment")
    assert Pipeline.from_bundles(weights).close_rows is not None

    calls = []

    def close_rows(rectified, layout_name, baselines_y_px):
        calls.append(layout_name)
        return pipeline.segmenter(rectified, layout_name, baselines_y_px)

    spied = replace(pipeline, close_rows=close_rows)
    rec = simulate_record(np.random.default_rng(3))
    page_12x1 = make_page(rec, 3, 3, ["0001"], layouts=["12x1"], fs_choices=[500])
    result = spied(Page("p", page_12x1.images["0001"].image_rgb, 500.0))
    assert result.layout.name == "12x1" and calls == ["12x1"]
    spied(Page("q", page_6x2.images["0001"].image_rgb, 500.0))
    assert calls == ["12x1"]
