"""Execute a notebook headless, as Kaggle would, with its parameters from environment variables.

    python -m kaggle_notebooks.run_notebook kaggle_notebooks/submission.ipynb --data-dir DIR --out FILE \
        [--wheels DIR] [--workers N] [--executed FILE]

(``make notebook-check DATA=DIR OUT=FILE``.) The notebook runs in a Jupyter kernel of this Python (nbclient),
with ``ECG_DATA``, ``ECG_OUT``, ``ECG_CODE`` (this repository), ``ECG_WHEELS`` and ``ECG_WORKERS`` set; a
failing cell fails the run with its error. ``--executed`` keeps the executed copy, outputs included.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent


def run_notebook(notebook: Path, env: dict, timeout_s: int = 1800) -> nbformat.NotebookNode:
    """The executed notebook; ``env`` is added to the kernel's environment. Raises CellExecutionError."""
    nb = nbformat.read(notebook, as_version=4)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_notebooks.run_notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True, help="a competition test-layout folder")
    parser.add_argument("--out", type=Path, required=True, help="the submission file (.parquet or .csv)")
    parser.add_argument("--wheels", type=Path, default=None, help="wheels folder to install from (default: none)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--executed", type=Path, default=None, help="write the executed notebook here")
    args = parser.parse_args(argv)
    if not (args.data_dir / "test.csv").is_file():
        parser.error(f"{args.data_dir} has no test.csv (a competition test-layout folder is needed)")
    env = {"ECG_DATA": str(args.data_dir.resolve()), "ECG_OUT": str(args.out.resolve()), "ECG_CODE": str(REPO),
           "ECG_WHEELS": str(args.wheels.resolve()) if args.wheels else str(REPO / "no-wheels"),
           "ECG_WORKERS": str(args.workers)}
    try:
        nb = run_notebook(args.notebook, env)
    except CellExecutionError as err:
        print(f"{args.notebook} failed:\n{err}", file=sys.stderr)
        return 1
    if args.executed:
        nbformat.write(nb, args.executed)
    print(f"{args.notebook} ran; submission {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
