"""The Kaggle submission notebook executed headless (as `make notebook-check` does), and the datasets it reads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.kaggle_io import read_submission, read_test_csv, validate_submission
from kaggle_notebooks.build_datasets import build_code, build_wheels, runtime_requirements
from kaggle_notebooks.run_notebook import REPO, run_notebook


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kaggle_test")
    subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "2", "--types", "0001,0003",
                    "--layout", "test", "--out", str(out), "--seed", "3"], check=True, cwd=REPO, capture_output=True)
    return out


def test_the_submission_notebook_runs_offline_and_its_submission_is_valid(test_folder, tmp_path):
    out = tmp_path / "submission.parquet"
    env = {"ECG_DATA": str(test_folder), "ECG_OUT": str(out), "ECG_CODE": str(REPO),
           "ECG_WHEELS": str(tmp_path / "no-wheels"), "ECG_WORKERS": "1"}
    nb = run_notebook(REPO / "kaggle_notebooks" / "submission.ipynb", env)
    assert validate_submission(read_submission(out), read_test_csv(test_folder)) == []
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "valid for" in printed


def test_the_notebook_holds_no_logic_of_its_own():
    nb = json.loads((REPO / "kaggle_notebooks" / "submission.ipynb").read_text())
    code = [("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in nb["cells"][1]["metadata"].get("tags", [])
    assert not any("def " in c or "class " in c for c in code)
    assert any("pipeline\", \"predict\"" in c for c in code) and any("assert_valid_submission" in c for c in code)


def test_the_datasets_carry_the_committed_code_and_pinned_runtime_wheels(tmp_path):
    code = build_code(tmp_path, "someone")
    assert (code / "pipeline" / "__main__.py").is_file()
    assert (code / "weights" / "stage1_segment" / "config.json").is_file()
    assert json.loads((code / "dataset-metadata.json").read_text())["id"] == "someone/ecg-digitizer-code"
    wheels = build_wheels(tmp_path, "someone", "3.11", ["manylinux2014_x86_64"], with_torch=False, download=False)
    pins = (wheels / "requirements.txt").read_text().split()
    names = {p.split("==")[0] for p in pins}
    assert {"segmentation-models-pytorch", "timm", "opencv-python-headless"} <= names
    assert not names & {"pytest", "ruff", "torch", "nbclient"}
    assert all("==" in p for p in pins)


def test_an_unpinned_runtime_requirement_is_refused(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("numpy==2.2.6\nscipy\n")
    with pytest.raises(ValueError, match="not pinned"):
        runtime_requirements(reqs)


def test_the_walkthrough_runs_and_reads_its_sample_page():
    """Executed as CI would (its committed copy carries the outputs of `make_notebooks --execute`)."""
    import re

    nb = run_notebook(REPO / "kaggle_notebooks" / "walkthrough.ipynb", {})
    printed = "".join("".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    pictures = sum("image/jpeg" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert pictures >= 5
    page_db = float(re.search(r"page SNR (-?[\d.]+) dB", printed).group(1))
    assert page_db > 15.0, printed
    assert re.search(r"overall: -?[\d.]+ dB over 8 images \(0 failed\)", printed), printed
