"""Write the notebooks' source cells (the committed .ipynb files are made by this, then executed).

    python -m kaggle_notebooks.make_notebooks

The submission notebook holds no logic of its own: parameters, an offline install, ``pipeline predict``, and
the validator of ``common.kaggle_io``. Keeping its cells here keeps them reviewable as code.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SUBMISSION_INTRO = """# ECG digitizer: offline submission

Attach two datasets (internet off), both made by `python -m kaggle_notebooks.build_datasets --out DIR`:
* `ecg-digitizer-code`: the repository with its `weights/`;
* `ecg-digitizer-wheels`: wheels of the runtime requirements for Kaggle's Python, and their `requirements.txt`.

The parameters cell reads environment variables first, so the same notebook runs outside Kaggle
(`make notebook-check DATA=DIR OUT=FILE`)."""

SUBMISSION_PARAMETERS = """import os
# where the competition's test layout is (test.csv, test/<id>.png), and where the submission goes
DATA = os.environ.get("ECG_DATA", "/kaggle/input/physionet-ecg-image-digitization")
OUT = os.environ.get("ECG_OUT", "/kaggle/working/submission.parquet")
CODE = os.environ.get("ECG_CODE", "/kaggle/input/ecg-digitizer-code")
WHEELS = os.environ.get("ECG_WHEELS", "/kaggle/input/ecg-digitizer-wheels")  # no such folder: nothing installed
WORKERS = int(os.environ.get("ECG_WORKERS", max(1, (os.cpu_count() or 2) // 2)))"""

SUBMISSION_INSTALL = """import subprocess, sys
if os.path.isdir(WHEELS):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", WHEELS,
                    "-r", os.path.join(WHEELS, "requirements.txt")], check=True)
else:
    print(f"no wheels folder at {WHEELS}: using the packages this kernel has")"""

SUBMISSION_PREDICT = """subprocess.run([sys.executable, "-m", "pipeline", "predict", "--data-dir", DATA, "--out", OUT,
                "--workers", str(WORKERS)], cwd=CODE, check=True)"""

SUBMISSION_VALIDATE = """sys.path.insert(0, CODE)
from common.kaggle_io import assert_valid_submission, read_submission, read_test_csv

submission = read_submission(OUT)
assert_valid_submission(submission, read_test_csv(DATA))
print(f"{OUT}: {len(submission):,} rows, valid for {DATA}")
submission.head()"""


def submission_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(SUBMISSION_INTRO),
                nbformat.v4.new_code_cell(SUBMISSION_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(SUBMISSION_INSTALL),
                nbformat.v4.new_code_cell(SUBMISSION_PREDICT),
                nbformat.v4.new_code_cell(SUBMISSION_VALIDATE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main() -> int:
    path = HERE / "submission.ipynb"
    nbformat.write(submission_notebook(), path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
