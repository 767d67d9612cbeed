"""A cross-validation run kept in a folder, and the report written from it.

    python -m pipeline cv --data-dir DATA --cv-dir RUN [--stages] [--folds 5]   # writes RUN/
    python -m pipeline report --cv-dir RUN [RUN ...] --out docs/                 # docs/report.md + figures

RUN holds ``images.csv`` (per image: score, type, fs, record, fold, timings, variants), ``leads.csv`` (per image
and lead), ``stages.csv`` (with ``--stages``: each stage fed the truth of the one before it, see
:mod:`pipeline.stage_losses`), ``run.json`` (the command, data folder, weights, date) and ``worst/`` (the worst
pages: the sheet with the found traces over it, the 12 leads against the truth). A report may gather several
runs (say, the factory's held-out pages and ECG-Image-Kit's): each gets its own section, named after its data
folder. Every figure in the report is drawn from these files by this module, and the report names the commands.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.metric import snr_db_from_linear

IMAGES_CSV, LEADS_CSV, STAGES_CSV, RUN_JSON, WORST_DIR = "images.csv", "leads.csv", "stages.csv", "run.json", "worst"


def record_fold(record_id: str, n_folds: int) -> int:
    """The fold of a record: every image of one record in one fold, stable across runs and machines."""
    return zlib.crc32(str(record_id).encode()) % n_folds


def fold_keys(data_dir: Path, record_ids: Sequence[str]) -> list[str]:
    """What a fold groups by: each id's source record where the folder's ``records.csv`` names it (our writers
    do: two drawings of one source record, or two windows of it, get different ids), else the id itself."""
    path = Path(data_dir) / "records.csv"
    if not path.is_file():
        return [str(r) for r in record_ids]
    table = pd.read_csv(path, dtype=str)
    if not {"id", "source"} <= set(table.columns):
        return [str(r) for r in record_ids]
    source = dict(zip(table["id"], table["source"], strict=True))
    return [source.get(str(r), str(r)) for r in record_ids]


def fold_scores(images: pd.DataFrame) -> pd.DataFrame:
    """The metric per fold (mean over the fold's images, in dB)."""
    key = "source_record" if "source_record" in images else "record_id"
    return pd.DataFrame([{"fold": int(k), "images": len(g), "records": g[key].nunique(),
                          "snr_db": snr_db_from_linear(g["snr"])} for k, g in images.groupby("fold")])


def write_worst_pages(cv_dir: Path, data_dir: Path, images: pd.DataFrame, weights_dir: Path, n: int = 3) -> list[Path]:
    """Pictures of the ``n`` worst images: the rectified sheet with the found traces, and the leads vs truth."""
    from common.types import Page
    from pipeline.batch import train_jobs
    from pipeline.chain import Pipeline, read_image_rgb
    from stage1_segment.run import overlay
    from stage2_signal.viz import signal_plot

    out = cv_dir / WORST_DIR
    out.mkdir(parents=True, exist_ok=True)
    worst = images.sort_values("snr_db").head(n)["image_id"].tolist()
    jobs, truth = train_jobs(data_dir)
    jobs = {job.image_id: job for job in jobs if job.image_id in worst}
    pipeline = Pipeline.from_bundles(weights_dir)
    written = []
    for image_id in worst:
        job = jobs[image_id]
        result = pipeline.digitize(Page(image_id, read_image_rgb(job.path), job.fs_hz, job.samples_per_lead))
        plot = signal_plot(result.signals.leads_mv, job.fs_hz, truth[image_id], width=1200, strip_h=80)
        if result.maps is not None:
            sheet = cv2.resize(overlay(result.rectified.sheet_rgb, result.maps), (1200, 927),
                               interpolation=cv2.INTER_AREA)
            plot = np.concatenate([sheet, plot], axis=0)
        path = out / f"{image_id}.jpg"  # JPEG: a page picture is ~10x smaller than as PNG, and it is only looked at
        cv2.imwrite(str(path), cv2.cvtColor(plot, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        written.append(path)
    return written


def save_run(cv_dir: Path, images: pd.DataFrame, leads: pd.DataFrame, stages: pd.DataFrame | None, meta: dict) -> None:
    cv_dir.mkdir(parents=True, exist_ok=True)
    images.to_csv(cv_dir / IMAGES_CSV, index=False)
    leads.to_csv(cv_dir / LEADS_CSV, index=False)
    if stages is not None:
        stages.to_csv(cv_dir / STAGES_CSV, index=False)
    (cv_dir / RUN_JSON).write_text(json.dumps({**meta, "date": date.today().isoformat()}, indent=1) + "\n")


def _table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.astype(object).itertuples(index=False):  # object: integer columns stay integers
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by(images: pd.DataFrame, key: str) -> pd.DataFrame:
    rows = [{key: k, "images": len(g), "snr_db": snr_db_from_linear(g["snr"]),
             "worst_db": float(g["snr_db"].min())} for k, g in images.groupby(key)]
    return pd.DataFrame(rows)


def _bar_figure(frame: pd.DataFrame, key: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.bar(range(len(frame)), frame["snr_db"], color="tab:blue", tick_label=[str(k) for k in frame[key]])
    ax.set_ylabel("SNR (dB)")
    ax.set_title(title, fontsize=10)
    for i, v in enumerate(frame["snr_db"]):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _lead_figure(leads: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.layouts import LEADS

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    ax.boxplot([leads.loc[leads["lead"] == lead, "snr_db"].clip(lower=-10) for lead in LEADS], showfliers=False)
    ax.set_xticks(range(1, len(LEADS) + 1), LEADS)
    ax.set_ylabel("lead SNR (dB)")
    ax.set_title("per-lead SNR over the images (box: quartiles)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_section(cv_dir: Path, out_dir: Path) -> str:
    """The report's section for one cv run; its figures are written to ``out_dir``/report_figures."""
    images = pd.read_csv(cv_dir / IMAGES_CSV, dtype={"image_id": str, "record_id": str, "type": str})
    leads = pd.read_csv(cv_dir / LEADS_CSV, dtype={"image_id": str})
    meta = json.loads((cv_dir / RUN_JSON).read_text())
    name = Path(meta["data_dir"]).name or "run"
    figs = out_dir / "report_figures"
    figs.mkdir(parents=True, exist_ok=True)
    parts = [f"## {name}: {len(images)} images of {images['record_id'].nunique()} records",
             f"`{meta['command']}` ({meta['date']}, weights `{meta['weights']}`): "
             f"**{snr_db_from_linear(images['snr']):.2f} dB** over all images, "
             f"{int((images['error'].fillna('') != '').sum())} failed."]
    for key, title in (("type", "image type"), ("fs", "sampling rate (Hz)")):
        frame = _by(images, key)
        fig = figs / f"{name}_by_{key}.png"
        _bar_figure(frame, key, f"{name}: SNR per {title}", fig)
        parts += [f"### Per {title}", _table(frame), f"![{name} per {title}](report_figures/{fig.name})"]
    for key in ("renderer", "grid", "pulse", "augment"):
        if key in images and images[key].nunique() > 1:
            parts += [f"### Per {key}", _table(_by(images, key))]
    if "fold" in images:
        folds = fold_scores(images)
        parts += ["### Record-level folds (every image of a record in one fold)", _table(folds),
                  f"Spread over folds: {folds['snr_db'].std(ddof=0):.2f} dB (std)."]
    fig = figs / f"{name}_leads.png"
    _lead_figure(leads, fig)
    parts += ["### Per lead", f"![{name} per lead](report_figures/{fig.name})"]
    stages_path = cv_dir / STAGES_CSV
    if stages_path.is_file():
        from pipeline.stage_losses import stage_loss_table

        table = stage_loss_table(pd.read_csv(stages_path, dtype={"image_id": str, "type": str}))
        parts += ["### What each stage loses",
                  "Each column feeds one more stage the truth: the true sheet map (instead of stage 0), the ideal "
                  "trace maps (instead of stage 1), the true time origin (instead of stage 2's timing); the losses "
                  "are the differences (dB).", _table(table)]
    timing_cols = [c for c in images.columns if c.startswith("t_")]
    if timing_cols:
        t = images[timing_cols].mean()
        parts += ["### Time per page (mean, as the run's workers measured it)",
                  ", ".join(f"{c[2:]} {v:.2f} s" for c, v in t.items()) + f"; total {t.sum():.2f} s."]
    worst = sorted((cv_dir / WORST_DIR).glob("*.jpg")) if (cv_dir / WORST_DIR).is_dir() else []
    if worst:
        parts.append("### The worst pages")
        scores = images.set_index("image_id")["snr_db"]
        for path in worst:
            target = figs / f"{name}_worst_{path.name}"
            target.write_bytes(path.read_bytes())
            parts.append(f"**{path.stem}**: {scores.get(path.stem, float('nan')):.2f} dB\n\n"
                         f"![{path.stem}](report_figures/{target.name})")
    return "\n\n".join(parts)


TEXT_DIR = Path(__file__).resolve().parent / "report_text"  # the report's prose: method.md, then limits.md


def write_report(cv_dirs: Sequence[Path], out_dir: Path) -> Path:
    """``out_dir``/report.md from the runs' folders, figures beside it: the method, a section per run, the
    limitations and what to try next."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = "--cv-dir " + " ".join(str(d) for d in cv_dirs)
    head = (f"# Report\n\nWritten by `python -m pipeline report {runs} --out {out_dir}`: the tables and figures "
            "come from the runs' files, the prose from `pipeline/report_text/`.")
    sections = [head, (TEXT_DIR / "method.md").read_text().strip(), "# Results"]
    sections += [run_section(Path(d), out_dir) for d in cv_dirs]
    sections.append((TEXT_DIR / "limits.md").read_text().strip())
    text = "\n\n".join(sections) + "\n"
    path = out_dir / "report.md"
    path.write_text(text)
    return path
