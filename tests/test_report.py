"""A cv run kept in a folder, and docs/report.md written from it."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.batch import cross_validate
from pipeline.chain import Pipeline
from pipeline.report import fold_keys, fold_scores, record_fold, save_run, write_report, write_worst_pages
from pipeline.stage_losses import stage_readings

REPO = Path(__file__).resolve().parent.parent


def test_a_records_images_share_one_fold_and_folds_are_stable():
    assert record_fold("10001", 5) == record_fold("10001", 5)
    folds = {record_fold(str(r), 5) for r in range(10000, 10100)}
    assert folds == set(range(5))


def test_folds_group_the_drawings_of_one_source_record(tmp_path):
    assert fold_keys(tmp_path, ["1", "2"]) == ["1", "2"]  # no records.csv: each id is its own record
    (tmp_path / "records.csv").write_text("id,source,source_record\n1,ludb/7.hea,7_w0\n2,ludb/7.hea,7_w1\n")
    keys = fold_keys(tmp_path, ["1", "2", "3"])
    assert keys == ["ludb/7.hea", "ludb/7.hea", "3"]
    assert len({record_fold(k, 5) for k in keys[:2]}) == 1


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "2", "--types", "0001,0003",
                    "--out", str(data), "--seed", "4"], check=True, cwd=REPO, capture_output=True)
    images, leads = cross_validate(data, REPO / "weights", progress=False)
    images["fold"] = [record_fold(r, 2) for r in images["record_id"]]
    stages = stage_readings(data, Pipeline.from_bundles(REPO / "weights"), progress=False)
    run = tmp_path_factory.mktemp("run")
    save_run(run, images, leads, stages, {"command": "python -m pipeline cv ...", "data_dir": str(data),
                                          "weights": "weights"})
    write_worst_pages(run, data, images, REPO / "weights", n=1)
    return run, images


def test_the_report_holds_the_runs_tables_figures_and_prose(cv_run, tmp_path):
    run, images = cv_run
    path = write_report([run], tmp_path)
    text = path.read_text()
    for heading in ("# Method", "### Per image type", "### Per sampling rate (Hz)", "### Record-level folds",
                    "### What each stage loses", "### The worst pages", "# Limitations"):
        assert heading in text, heading
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) >= 4 and all((tmp_path / f).is_file() for f in figures)
    assert f"{images['snr_db'].min():.2f} dB" in text  # the worst page's own score is quoted beside its picture
    assert len(fold_scores(pd.read_csv(run / "images.csv", dtype={"record_id": str}))) == images["fold"].nunique()


def test_report_refuses_a_folder_that_is_no_cv_run(tmp_path, capsys):
    from pipeline.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["report", "--cv-dir", str(tmp_path), "--out", str(tmp_path / "docs")])
    assert exc.value.code == 2
    assert "not a cv run folder" in capsys.readouterr().err
