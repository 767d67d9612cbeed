"""No input breaks the command line: every odd file of tests/odd_inputs.py is digitized or refused with its reason
(on stderr and in the failures file), and ``predict`` still writes every id with finite rows."""

import json
import os

import numpy as np
import pandas as pd
import wfdb

from common.kaggle_io import read_test_csv, validate_submission
from common.layouts import LEADS
from pipeline.__main__ import main
from tests.odd_inputs import ODD_INPUTS, make_all

ROOT = os.geteuid() == 0  # root reads a mode-000 file: then the unreadable case digitizes (tests/test_image_io.py)
REFUSED = [c for c in ODD_INPUTS if c.reason and not (ROOT and c.name == "unreadable file")]


def test_a_batch_of_odd_files_loses_nothing_and_says_why(tmp_path, capsys):
    paths = make_all(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["digitize", *map(str, paths.values()), "--fs", "500", "--out", str(out),
                 "--format", "csv,wfdb,json", "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    failures = pd.read_csv(out / "failures.csv")
    assert sorted(failures["image_id"]) == sorted(paths[c.name].stem for c in REFUSED)
    for case in REFUSED:
        reason = failures.loc[failures["image_id"] == paths[case.name].stem, "reason"].iloc[0]
        assert case.reason in reason, (case.name, reason)
        assert f"FAILED {paths[case.name]}: " in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "pages:" not in captured.err and " -> " not in captured.out  # --quiet: no progress bar, no page lines
    assert f"{len(paths)} pages, {len(REFUSED)} failed" in captured.out  # the summary line
    for case in ODD_INPUTS:  # every file has its outputs, a refused one its flat fallback
        stem = paths[case.name].stem
        table = pd.read_csv(out / f"{stem}.csv")
        assert list(table.columns) == ["time_s", *LEADS] and len(table) == 5000
        result = json.loads((out / f"{stem}.json").read_text())
        assert all(np.isfinite(result["leads"][lead]).all() for lead in LEADS)
        assert (out / f"{stem}.hea").is_file()
        if case.warning:
            assert any(case.warning in w for w in result["warnings"]), (case.name, result["warnings"])
        if case not in REFUSED:  # digitized: signals drawn over the image, and plotted
            assert (out / f"{stem}-overlay.png").stat().st_size > 0 and (out / f"{stem}-leads.png").is_file()
            assert table["II"].std() > 0.05
    # the WFDB record read back equals the CSV to 1 µV, NaN where a lead was not printed
    record = wfdb.rdrecord(str(out / "page"))
    table = pd.read_csv(out / "page.csv").drop(columns="time_s").to_numpy()
    assert record.fs == 500 and record.units == ["mV"] * 12 and record.sig_name == list(LEADS)
    assert np.array_equal(np.isnan(record.p_signal), np.isnan(table))
    assert np.nanmax(np.abs(record.p_signal - table)) <= 0.001


def test_predict_writes_every_id_for_odd_files(tmp_path, capsys):
    cases = REFUSED  # the ones that fail: digitized pages are covered above
    (tmp_path / "test").mkdir()
    paths = {}
    for case in cases:  # the test layout's names: test/<id>.png, whatever the content
        paths[case.name] = tmp_path / "test" / f"{case.filename.split('.')[0]}.png"
        case.make(paths[case.name])
    rows = [{"id": path.stem, "lead": lead, "fs": 250, "number_of_rows": 2500 if lead == "II" else 625}
            for path in paths.values() for lead in LEADS]
    pd.DataFrame(rows).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "submission.parquet"
    assert main(["predict", "--data-dir", str(tmp_path), "--out", str(out), "--quiet"]) == 0
    test_df = read_test_csv(tmp_path)
    assert validate_submission(out, test_df) == []
    sub = pd.read_parquet(out)
    assert len(sub) == int(test_df["number_of_rows"].sum()) and np.isfinite(sub["value"]).all()
    failures = pd.read_csv(tmp_path / "submission.failures.csv")
    assert sorted(failures["id"].astype(str)) == sorted(p.stem for p in paths.values())
    for case in cases:
        assert case.reason in failures.loc[failures["id"] == paths[case.name].stem, "reason"].iloc[0]
    assert f"{len(cases)} pages, {len(cases)} failed" in capsys.readouterr().out


def test_the_overlay_breaks_a_line_at_points_off_the_image():
    """Points the sheet map cannot take back into the image come as NaN: the drawing skips them (no garbage
    vertex, no cast warning) and still draws the finite pieces."""
    import warnings

    import cv2

    from pipeline.outputs import overlay_png

    image = np.full((300, 400, 3), 255, np.uint8)
    line = np.array([[10.0, 150.0], [100.0, 150.0], [np.nan, np.nan], [200.0, 150.0], [390.0, 150.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = overlay_png(image, [line])
    drawn = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    blue = (drawn[:, :, 0] > 150) & (drawn[:, :, 2] < 120)  # BGR: the line's (20, 60, 220) RGB
    assert blue[140:160, 20:90].any() and blue[140:160, 210:380].any()
    assert not blue[:130].any() and not blue[170:].any()


def test_each_stages_command_says_which_bundle_is_missing_without_a_traceback(tmp_path, capsys):
    import pytest

    from source_classifier.run import main as classifier_main
    from stage0_rectify.run import main as stage0_main
    from stage1_segment.run import main as stage1_main
    from stage2_signal.run import main as stage2_main

    images = tmp_path / "images"
    images.mkdir()
    missing = tmp_path / "no_bundle"
    for run, args in ((stage0_main, ["--images", str(images), "--out", str(tmp_path / "o0"), "--bundle"]),
                      (stage1_main, ["--images", str(images), "--out", str(tmp_path / "o1"), "--bundle"]),
                      (stage2_main, ["--maps", str(images), "--out", str(tmp_path / "o2"), "--bundle"]),
                      (classifier_main, [str(images), "--bundle"])):
        with pytest.raises(SystemExit) as exit_info:
            run([*args, str(missing)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert str(missing) in err and "Traceback" not in err, (run.__module__, err)
