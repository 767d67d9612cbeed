"""Write the notebooks from their cells here (reviewable as code); the walkthrough is committed executed.

    python -m kaggle_notebooks.make_notebooks [--execute]

The submission notebook holds no logic of its own: parameters, an offline install, ``pipeline predict``, and
the validator of ``common.kaggle_io``. The walkthrough takes one shipped sample page through every stage with
pictures, then scores a few fresh factory pages; ``--execute`` runs it and stores its outputs, so it reads
on GitHub.
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


WALKTHROUGH = [
    ("markdown", """# ECG digitizer: one page through every stage

A shipped sample page (`pipeline/samples/sample-0003.jpg`: the factory's colour scan of a simulated 500 Hz
record on the competition's 3×4 + II layout, its truth in `sample.csv`) goes through the chain: stage 0 puts it
on the canonical sheet, stage 1 draws a probability map of each row's trace, stage 2 reads the traces and
calibrates them into mV. Then a few fresh factory pages are scored with the competition's metric.
Regenerate: `python -m kaggle_notebooks.make_notebooks --execute`."""),
    ("code", """%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar: plain text is enough here
import numpy as np, pandas as pd, matplotlib.pyplot as plt
from pathlib import Path
from common.geometry import CANONICAL
from common.layouts import LEADS
from common.metric import image_snr, lead_powers
from common.types import Page
from pipeline.chain import Pipeline, read_image_rgb
from pipeline.demo import SAMPLES, SAMPLE_FS_HZ
from stage1_segment.run import overlay

plt.rcParams["figure.dpi"] = 72
truth_frame = pd.read_csv(SAMPLES / "sample.csv")
truth = {lead: truth_frame[lead].dropna().to_numpy(np.float64) for lead in LEADS}
image = read_image_rgb(SAMPLES / "sample-0003.jpg")
page = Page("sample-0003", image, SAMPLE_FS_HZ, {lead: v.size for lead, v in truth.items()})
pipeline = Pipeline.from_bundles("weights")
result = pipeline(page)
print({stage: f"{s:.2f} s" for stage, s in result.timings_s.items()})"""),
    ("markdown", """## The input
The source classifier (`source_classifier/`) names the image type (95.0 % of fresh factory pages right). It
chooses one thing: the stage-1 network of a page stage 0 placed by its grid. A black-and-white scan it names moldy
(0012) is read by the network fine-tuned on mold (`weights/stage1_mold`), a photo by the one fine-tuned on photos
(`weights/stage1_photo`). Routing stage 0, or light and screen treatments before stage 1, by even the true type
changed no photo's score on the factory sets (`docs/experiments.md`), so stage 0 takes one general route: it asks
the keypoint network where its grid reading is unsure, and a sheet the keypoints placed (a phone photo) is read by
the photo network whatever its type, and its maps by the photo stage-2 bundle (`weights/stage2_photo`:
a 1-D refiner trained on that network's readings of photos)."""),
    ("code", """plt.figure(figsize=(11, 8.5)); plt.imshow(image); plt.axis("off")
plt.title(f"input {image.shape[1]}x{image.shape[0]} px");"""),
    ("markdown", """## Stage 0: onto the canonical sheet
The grid's pitch and angle give the map onto the 2200×1700 px sheet (200 dpi, 7.874 px/mm). The canonical 5 mm
grid is drawn over the rectified sheet in blue: on a right rectification it sits on the printed major lines."""),
    ("code", """rect = result.rectified
print(f"method {rect.method}, confidence {rect.confidence:.2f}, {rect.px_per_mm:.3f} px/mm on the sheet")
fig, ax = plt.subplots(figsize=(11, 6))
crop = (slice(550, 1050), slice(0, 900))  # rows, columns of the sheet (px)
ax.imshow(rect.sheet_rgb[crop], extent=(0, 900, 1050, 550))
for x in np.arange(0, 900, 5 * CANONICAL.px_per_mm):
    ax.axvline(x, color="tab:blue", lw=0.6, alpha=0.7)
for y in np.arange(0, 1700, 5 * CANONICAL.px_per_mm):
    if 550 <= y <= 1050:
        ax.axhline(y, color="tab:blue", lw=0.6, alpha=0.7)
ax.set_title("rectified sheet (part) with the canonical 5 mm grid");"""),
    ("markdown", """## Stage 1: a probability map per row
One colour per layout row; each column's probabilities scaled to its maximum so that faint columns show."""),
    ("code", """maps = result.maps
plt.figure(figsize=(11, 8.5)); plt.imshow(overlay(rect.sheet_rgb, maps)); plt.axis("off")
plt.title(f"trace maps: {maps.maps.shape[0]} rows, {maps.scale_x}x / {maps.scale_y}x the sheet in x / y");"""),
    ("markdown", """## Stage 2: traces read from the maps, over the sheet
Each row's sub-pixel trace (confident columns only), then the panels calibrated into mV from the grid's pitch
and each panel's baseline."""),
    ("code", """ex = result.extraction
fig, ax = plt.subplots(figsize=(11, 8.5))
ax.imshow(rect.sheet_rgb, alpha=0.6)
for row, trace in enumerate(ex.traces):
    ok = trace.conf >= trace.cfg.min_confidence
    ax.plot(trace.x[ok], trace.y_peak[ok], lw=0.6, color=f"C{row}")
ax.set_xlim(0, 2200); ax.set_ylim(1700, 0); ax.axis("off")
print("chart origin per row (px):", np.round(ex.info["x0_px"], 2), "found by", set(ex.info["x0_how"]))"""),
    ("markdown", """## The 12 leads against the truth
Prediction in red over the truth in green (the metric forgives a constant offset and a lag of up to 0.2 s);
per-lead SNR in dB."""),
    ("code", """fig, axes = plt.subplots(6, 2, figsize=(12, 12), sharex=False)
for ax, lead in zip(axes.T.ravel(), LEADS):
    y, p = truth[lead], np.asarray(result.signals.leads_mv[lead], np.float64)
    s, n, lag, off = lead_powers(y, p, SAMPLE_FS_HZ)
    t = np.arange(y.size) / SAMPLE_FS_HZ
    ax.plot(t, y + off, color="tab:green", lw=1.2); ax.plot(t, p, color="tab:red", lw=0.7)
    ax.set_title(f"{lead}: {10 * np.log10(s / max(n, 1e-30)):.1f} dB", fontsize=9); ax.tick_params(labelsize=7)
fig.tight_layout()
print(f"page SNR {10 * np.log10(image_snr(truth, result.signals.leads_mv, SAMPLE_FS_HZ)):.2f} dB")"""),
    ("markdown", """## A small cross-validation
Fresh factory pages of simulated records (two records, four image types), scored by `pipeline cv`'s function.
The full evaluation sets and their figures are in the README and `docs/`."""),
    ("code", """import subprocess, sys, tempfile
from pipeline.batch import cross_validate, summarise
folder = Path(tempfile.mkdtemp()) / "cv"
subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "2", "--types", "0001,0003,0004,0011",
                "--out", str(folder), "--seed", "5"], check=True, capture_output=True)
images, leads = cross_validate(folder, Path("weights"), progress=False)
print(summarise(images, leads, worst=3))"""),
]


def walkthrough_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                for kind, src in WALKTHROUGH]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kaggle_notebooks.make_notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="run the walkthrough and keep its outputs")
    args = parser.parse_args(argv)
    nbformat.write(submission_notebook(), HERE / "submission.ipynb")
    walkthrough = walkthrough_notebook()
    if args.execute:
        from kaggle_notebooks.run_notebook import run_notebook

        path = HERE / "walkthrough.ipynb"
        nbformat.write(walkthrough, path)
        walkthrough = run_notebook(path, {})
    nbformat.write(walkthrough, HERE / "walkthrough.ipynb")
    print(f"wrote {HERE / 'submission.ipynb'} and {HERE / 'walkthrough.ipynb'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
