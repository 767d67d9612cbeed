"""Batch jobs over competition-layout folders: ``predict`` (test layout) and ``cv`` (train layout).

Each worker process loads the pipeline once and decodes each image once. A page that fails gets the
fallback prediction; its reason goes to stderr and to the failures file, and the run goes on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from common.kaggle_io import read_record_signals, read_test_csv, read_train_csv, write_submission
from common.layouts import LEADS
from common.metric import MAX_SNR, lead_residuals, snr_db_from_linear
from common.types import Page
from pipeline.chain import LayoutReading, Pipeline, fallback_signals
from pipeline.image_io import read_image
from pipeline.outputs import digitized_page, signal_polylines, write_outputs

EDGE_S = 0.02  # the noise budget's "edges": each printed lead's first and last 20 ms (~4 px at 25 mm/s), where
# panels meet, rows start at the calibration pulse and end at the page's last column


@dataclass(frozen=True)
class Job:
    image_id: str
    path: Path
    fs_hz: float
    samples_per_lead: dict
    out_dir: Path | None = None  # where the worker writes this page's outputs (digitize); None: nothing written
    formats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    image_id: str
    leads_mv: dict
    error: str | None
    timings_s: dict
    warnings: tuple[str, ...] = ()
    files: tuple[Path, ...] = field(default_factory=tuple)
    layout: LayoutReading | None = None  # the layout the page was read by (None: it failed first)
    stage0_method: str = ""  # how stage 0 placed the page (Rectified.method: keypoints, grid, ...; "" if it failed)


_WORKER_PIPELINE: Pipeline | None = None


def _init_worker(weights_dir: str, threads: int, device: str = "cpu", layout: str | None = None,
                 mm_per_mv: float | None = None) -> None:
    global _WORKER_PIPELINE
    import torch

    torch.set_num_threads(threads)
    _WORKER_PIPELINE = Pipeline.from_bundles(weights_dir, device, layout, mm_per_mv)


def _run_job(job: Job) -> Outcome:
    assert _WORKER_PIPELINE is not None, "worker not initialised"
    try:
        decoded = read_image(job.path)
        page = Page(job.image_id, decoded.rgb, job.fs_hz, job.samples_per_lead)
    except ValueError as err:  # unreadable or invalid image: fallback of the requested shape
        fallback = fallback_signals(job.image_id, job.fs_hz, job.samples_per_lead)
        outcome = Outcome(job.image_id, fallback.leads_mv, str(err), {})
        return _with_files(outcome, job, None, None)
    result = _WORKER_PIPELINE.digitize(page)
    outcome = Outcome(job.image_id, result.signals.leads_mv, result.error, result.timings_s,
                      decoded.warnings + tuple(result.warnings), layout=result.layout,
                      stage0_method="" if result.rectified is None else result.rectified.method)
    return _with_files(outcome, job, page, result)


def _with_files(outcome: Outcome, job: Job, page: Page | None, result) -> Outcome:
    """Write the job's outputs in the worker (the images and maps they are drawn from stay there)."""
    if job.out_dir is None:
        return outcome
    digitized = digitized_page(job.image_id, job.fs_hz, outcome.leads_mv, outcome.warnings, outcome.timings_s,
                               outcome.layout)
    drawn = result is not None and not result.failed
    files = write_outputs(digitized, job.out_dir, job.formats, page.image_rgb if drawn else None,
                          signal_polylines(digitized, result.rectified, result.extraction) if drawn else None)
    return Outcome(**{**outcome.__dict__, "files": tuple(files)})


def summary_line(n_pages: int, n_failed: int, seconds: float) -> str:
    """The one line a run ends with."""
    per_page = seconds / n_pages if n_pages else 0.0
    return f"{n_pages} pages, {n_failed} failed, {seconds:.1f} s ({per_page:.2f} s per page)"


def run_jobs(jobs: Sequence[Job], weights_dir: Path, workers: int = 1, progress: bool = True,
             device: str = "cpu", layout: str | None = None, mm_per_mv: float | None = None) -> Iterator[Outcome]:
    """Outcomes in job order; ``workers`` processes share the machine's cores (and ``device``); ``layout``
    forces one layout on every page, ``mm_per_mv`` one gain (see :class:`pipeline.chain.Pipeline`)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    if workers <= 1:
        _init_worker(str(weights_dir), threads, device, layout, mm_per_mv)
        yield from tqdm(map(_run_job, jobs), total=len(jobs), disable=not progress, desc="pages")
        return
    with _blas_threads(threads):  # the pool starts its workers here, with this environment
        pool = get_context("spawn").Pool(workers, _init_worker,
                                         (str(weights_dir), threads, device, layout, mm_per_mv))
    with pool:
        yield from tqdm(pool.imap(_run_job, jobs), total=len(jobs), disable=not progress, desc="pages")


@contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    """While worker processes are spawned, OpenBLAS (numpy's and scipy's linear algebra) is told to use as many
    threads as each worker's torch. By default each worker's OpenBLAS takes every core, and its threads then wait
    on the other workers (a stage-0 surface fit: 12 ms instead of 1; cv of 48 photos on 2 workers: 1.26 -> 1.11
    s a page). OpenBLAS reads the variable when a worker first imports numpy; this process keeps its own."""
    old = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = old


def test_jobs(data_dir: Path) -> tuple[list[Job], pd.DataFrame]:
    test_df = read_test_csv(data_dir)
    jobs = []
    for image_id, rows in test_df.groupby("id", sort=False):
        fs = float(rows["fs"].iloc[0])
        counts = dict(zip(rows["lead"], rows["number_of_rows"].astype(int), strict=True))
        jobs.append(Job(str(image_id), data_dir / "test" / f"{image_id}.png", fs, counts))
    return jobs, test_df


def predict(data_dir: Path, out: Path, weights_dir: Path, workers: int = 1, progress: bool = True,
            device: str = "cpu") -> Path:
    """Write a submission for every image of a test-layout folder; failures listed beside it."""
    jobs, test_df = test_jobs(data_dir)
    start = time.perf_counter()
    predictions, failures = {}, []
    for outcome in run_jobs(jobs, weights_dir, workers, progress, device):
        predictions[outcome.image_id] = outcome.leads_mv
        if outcome.error:
            failures.append((outcome.image_id, outcome.error))
            tqdm.write(f"FAILED {outcome.image_id}: {outcome.error} (flat 0 mV fallback used)", file=sys.stderr)
    path = write_submission(predictions, test_df, out)
    failures_path = out.with_name(out.stem + ".failures.csv")
    pd.DataFrame(failures, columns=["id", "reason"]).to_csv(failures_path, index=False)
    print(f"{summary_line(len(jobs), len(failures), time.perf_counter() - start)}; failures (fallback used): "
          f"{failures_path}")
    return path


def train_jobs(data_dir: Path, types: Sequence[str] | None = None) -> tuple[list[Job], dict]:
    """One job per image of a train-layout folder, with the record's truth (printed samples per lead)."""
    train = read_train_csv(data_dir)
    jobs, truth = [], {}
    for record_id, fs in zip(train["id"].astype(str), train["fs"], strict=True):
        frame = read_record_signals(data_dir, record_id)
        leads = {lead: frame[lead].to_numpy(np.float64) for lead in LEADS}
        leads = {lead: v[np.isfinite(v)] for lead, v in leads.items()}
        counts = {lead: int(v.size) for lead, v in leads.items()}
        for path in sorted((data_dir / "train" / record_id).glob(f"{record_id}-*.png")):
            image_type = path.stem.rsplit("-", 1)[1]
            if types and image_type not in types:
                continue
            jobs.append(Job(path.stem, path, float(fs), counts))
            truth[path.stem] = leads
    return jobs, truth


def cross_validate(data_dir: Path, weights_dir: Path, workers: int = 1, types: Sequence[str] | None = None,
                   progress: bool = True, device: str = "cpu", layout: str | None = None,
                   mm_per_mv: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-image and per-lead scores of the pipeline on a train-layout folder (every page read by ``layout`` and
    at ``mm_per_mv`` when given, as :func:`digitize_files`)."""
    jobs, truth = train_jobs(data_dir, types)
    if not jobs:
        raise SystemExit(f"no images found under {data_dir / 'train'}")
    images, leads = [], []
    for job, outcome in zip(jobs, run_jobs(jobs, weights_dir, workers, progress, device, layout, mm_per_mv),
                            strict=True):
        signal = noise = uncovered = edges = 0.0
        edge = max(1, int(round(EDGE_S * job.fs_hz)))
        for lead in LEADS:
            y = truth[job.image_id][lead]
            resid, covered, lag = lead_residuals(y, outcome.leads_mv[lead], job.fs_hz)
            s, n = float(y @ y), float(resid @ resid)
            r2 = np.where(covered, resid**2, 0.0)
            signal, noise = signal + s, noise + n
            uncovered += float(resid[~covered] @ resid[~covered])
            edges += float(r2[:edge].sum() + r2[edge:][-edge:].sum())  # a lead shorter than 2 edges counts once
            lead_snr = MAX_SNR if n == 0 else min(MAX_SNR, s / n)
            leads.append({"image_id": job.image_id, "lead": lead, "lag": lag,
                          "snr_db": 10 * np.log10(max(lead_snr, 1e-12))})
        snr = MAX_SNR if noise == 0 else min(MAX_SNR, signal / noise)
        record_id, image_type = job.image_id.rsplit("-", 1)
        images.append({"image_id": job.image_id, "record_id": record_id, "type": image_type, "fs": job.fs_hz,
                       "snr": snr, "snr_db": 10 * np.log10(max(snr, 1e-12)), "signal": signal, "noise": noise,
                       "noise_uncovered": uncovered, "noise_edges": edges, "error": outcome.error or "",
                       "layout_read": "" if outcome.layout is None else outcome.layout.name,
                       "mm_per_mv_read": np.nan if outcome.layout is None else outcome.layout.mm_per_mv,
                       "stage0_method": outcome.stage0_method,
                       **{f"t_{k}": v for k, v in outcome.timings_s.items()}})
    images = pd.DataFrame(images)
    variants_path = data_dir / VARIANTS_CSV
    if variants_path.is_file():
        variants = pd.read_csv(variants_path, dtype={"image_id": str})
        images = images.merge(variants, on="image_id", how="left")
    return images, pd.DataFrame(leads)


VARIANTS_CSV = "variants.csv"  # optional, beside train.csv: image_id + columns that describe how each was drawn
# reported when present
VARIANT_KEYS = ("layout", "arrangement", "renderer", "grid", "header", "pulse", "augment", "wrinkles")


def summarise(images: pd.DataFrame, leads: pd.DataFrame, worst: int = 10) -> str:
    """The metric overall, per image type, per fs, per variant (where the folder describes them) and per lead,
    and the worst images."""
    lines = [f"overall: {snr_db_from_linear(images['snr']):.2f} dB over {len(images)} images "
             f"({(images['error'] != '').sum()} failed)"]
    keys = ["type", "fs"] + [k for k in VARIANT_KEYS if k in images and images[k].notna().any()]
    for key in keys:
        lines.append(f"per {key}:")
        for value, group in images.groupby(key):
            lines.append(f"  {value}: {snr_db_from_linear(group['snr']):.2f} dB ({len(group)})")
    lines.append("per lead (median of per-image lead SNR):")
    lines.append("  " + "  ".join(f"{lead} {leads.loc[leads['lead'] == lead, 'snr_db'].median():.1f}"
                                  for lead in LEADS))
    lines.append("noise budget (share of each type's noise; headroom: the score if that part cost nothing):")
    for value, group in [*images.groupby("type"), ("all", images)]:
        noise = group["noise"].sum()
        if noise <= 0:
            continue
        parts = []
        for part, what in (("noise_uncovered", "uncovered by the metric's lag (timing)"),
                           ("noise_edges", f"first/last {EDGE_S * 1000:.0f} ms of each lead")):
            rest = group["noise"] - group[part]
            without = np.where(rest > 0, np.minimum(group["signal"] / rest.where(rest > 0, 1.0), MAX_SNR), MAX_SNR)
            parts.append(f"{what} {group[part].sum() / noise:.1%} (-> {snr_db_from_linear(without):.2f} dB)")
        lines.append(f"  {value}: " + "; ".join(parts))
    lines.append("worst images:")
    for row in images.nsmallest(worst, "snr").itertuples():
        variant = f" [{row.variant}]" if "variant" in images and isinstance(getattr(row, "variant", None), str) else ""
        lines.append(f"  {row.image_id} {row.snr_db:.2f} dB{variant} {row.error}")
    return "\n".join(lines)


def digitize_files(images: Sequence[Path], out_dir: Path, fs_hz: float, weights_dir: Path, workers: int = 1,
                   device: str = "cpu", formats: Sequence[str] = ("csv",), progress: bool = True,
                   verbose: bool = False, layout: str | None = None, mm_per_mv: float | None = None) -> int:
    """Digitize image files into ``out_dir``, each by the layout found on it (or ``layout``) at the gain its
    calibration pulses show (or ``mm_per_mv``; 10 mm/mV without pulses), each lead as long
    as that layout prints it: per image ``<stem>.csv`` (the 12 leads as columns, NaN where a lead was not
    printed), ``.json``, a WFDB record, as ``formats`` asks, and the pictures (see :mod:`pipeline.outputs`);
    unless ``progress`` is off, each image's layout. A file that fails gets the flat fallback (the competition's
    lengths) and its reason, on stderr and in ``<out_dir>/failures.csv``; nothing is skipped. Returns the
    number of failed images."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict = {}  # nothing asked: the lengths the page's layout prints
    jobs, seen = [], set()
    for path in images:
        image_id, k = Path(path).stem, 1
        while image_id in seen:  # two files of one name in different folders must not overwrite each other
            k += 1
            image_id = f"{Path(path).stem}-{k}"
        seen.add(image_id)
        jobs.append(Job(image_id, Path(path), fs_hz, counts, out_dir, tuple(formats)))
    start = time.perf_counter()
    failures = []
    for job, outcome in zip(jobs, run_jobs(jobs, weights_dir, workers, progress, device, layout, mm_per_mv),
                            strict=True):
        if progress and outcome.layout is not None:
            reading = outcome.layout
            tqdm.write(f"{job.path}: layout {reading.name} ({reading.how}; the layout finder's confidence "
                       f"{reading.confidence:.2f}), {reading.mm_per_mv:g} mm/mV")
        if outcome.error:
            failures.append((str(job.path), job.image_id, outcome.error))
            tqdm.write(f"FAILED {job.path}: {outcome.error} (flat 0 mV fallback written)", file=sys.stderr)
        if verbose:
            notes = "".join(f"\n    warning: {w}" for w in outcome.warnings if not outcome.error)
            timing = ", ".join(f"{k} {v:.2f} s" for k, v in outcome.timings_s.items())
            tqdm.write(f"{job.path} -> {', '.join(str(f) for f in outcome.files)}" + (f" ({timing})" if timing else "")
                       + notes)
    pd.DataFrame(failures, columns=["path", "image_id", "reason"]).to_csv(out_dir / "failures.csv", index=False)
    line = summary_line(len(jobs), len(failures), time.perf_counter() - start)
    print(f"{line}; outputs in {out_dir}" + (f", failures in {out_dir / 'failures.csv'}" if failures else ""))
    return len(failures)
