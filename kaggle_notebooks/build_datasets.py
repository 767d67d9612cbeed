"""Build the two folders to upload as Kaggle datasets for the offline submission notebook.

    python -m kaggle_notebooks.build_datasets --out DIR [--owner KAGGLE_USER] [--no-wheels]
        [--python-version 3.11] [--platform TAG ...] [--with-torch]

DIR/ecg-digitizer-code: the committed tree of HEAD (``git archive``: code and weights, nothing uncommitted).
DIR/ecg-digitizer-wheels: wheels of the runtime requirements (requirements.txt without the tools in
:data:`NOT_AT_RUN_TIME`) for Kaggle's Python, fetched with ``pip download --only-binary :all: --no-deps``, and
the ``requirements.txt`` the notebook installs them from. Kaggle's image brings torch, torchvision and the
packages those requirements depend on; ``--with-torch`` adds our pinned torch and torchvision as well.
Each folder gets the ``dataset-metadata.json`` that ``kaggle datasets create -p FOLDER`` reads.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE_SLUG = "ecg-digitizer-code"
WHEELS_SLUG = "ecg-digitizer-wheels"
# development and serving tools: the submission never imports them
NOT_AT_RUN_TIME = {"pytest", "ruff", "nbclient", "nbformat", "ipykernel", "fastapi", "uvicorn", "python-multipart",
                   "playwright", "httpx"}
KAGGLE_HAS = {"torch", "torchvision"}  # the image's own builds (CUDA) are kept unless --with-torch


def runtime_requirements(requirements: Path, with_torch: bool = False) -> list[str]:
    """The pinned ``name==version`` lines of ``requirements`` that the pipeline needs at run time."""
    keep = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower()
        if name in NOT_AT_RUN_TIME or (name in KAGGLE_HAS and not with_torch):
            continue
        if "==" not in line:
            raise ValueError(f"{requirements}: '{line}' is not pinned (name==version): the wheels would drift")
        keep.append(line)
    return keep


def _metadata(folder: Path, owner: str, slug: str, title: str) -> None:
    meta = {"title": title, "id": f"{owner}/{slug}", "licenses": [{"name": "other"}]}
    (folder / "dataset-metadata.json").write_text(json.dumps(meta, indent=1) + "\n")


def build_code(out: Path, owner: str) -> Path:
    """The committed tree of HEAD under ``out``/ecg-digitizer-code."""
    folder = out / CODE_SLUG
    folder.mkdir(parents=True, exist_ok=False)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=REPO, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    _metadata(folder, owner, CODE_SLUG, "ECG digitizer: code and weights")
    return folder


def build_wheels(out: Path, owner: str, python_version: str, platforms: list[str], with_torch: bool,
                 download: bool = True) -> Path:
    """Wheels of the runtime requirements (when ``download``) and their requirements.txt."""
    folder = out / WHEELS_SLUG
    folder.mkdir(parents=True, exist_ok=False)
    pins = runtime_requirements(REPO / "requirements.txt", with_torch)
    (folder / "requirements.txt").write_text("\n".join(pins) + "\n")
    if download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps",
                        "--python-version", python_version, *[a for tag in platforms for a in ("--platform", tag)],
                        "--implementation", "cp",
                        "-d", str(folder), *pins], check=True)
    _metadata(folder, owner, WHEELS_SLUG, "ECG digitizer: wheels")
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaggle_notebooks.build_datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    parser.add_argument("--owner", default="KAGGLE_USER", help="the Kaggle user the datasets belong to")
    parser.add_argument("--python-version", default="3.11", help="Kaggle's Python (major.minor)")
    parser.add_argument("--platform", nargs="+", default=["manylinux2014_x86_64", "manylinux_2_28_x86_64"],
                        help="wheel platform tags Kaggle's image accepts")
    parser.add_argument("--with-torch", action="store_true", help="also our pinned torch / torchvision wheels")
    parser.add_argument("--no-wheels", action="store_true", help="write the wheels' requirements.txt only")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    code = build_code(args.out, args.owner)
    wheels = build_wheels(args.out, args.owner, args.python_version, args.platform, args.with_torch,
                          download=not args.no_wheels)
    print(f"wrote {code} and {wheels}; upload each with: kaggle datasets create -p FOLDER")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
