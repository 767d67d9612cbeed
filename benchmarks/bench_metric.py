"""Time the competition metric on synthetic Kaggle-sized frames.

    python -m benchmarks.bench_metric [--images 1000] [--seed 0] [--shuffle] [--write DIR]

Each image gets an fs drawn from the six supported rates, lead II 10 s and the other 11 leads 2.5 s (about
37.5 * fs rows per image, ~22 M rows for 1,000 images). Prints the seconds spent in ``score`` (and, with
``--shuffle``, with the submission rows in random order, which takes the id-placement path); with ``--write``
also the seconds to write and validate submission.csv / submission.parquet in DIR.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from common.kaggle_io import expected_ids, validate_submission, write_submission
from common.layouts import LEADS
from common.metric import score
from common.types import SUPPORTED_FS_HZ


def synthetic_frames(n_images: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    solution, submission, _ = synthetic_case(n_images, seed)
    return solution, submission


def synthetic_case(n_images: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(solution, submission, test.csv-style rows) for ``n_images`` synthetic images."""
    rng = np.random.default_rng(seed)
    fs_img = rng.choice(np.asarray(SUPPORTED_FS_HZ), n_images)
    rows = pd.DataFrame({
        "id": np.repeat([str(i) for i in range(n_images)], len(LEADS)),
        "lead": np.tile(LEADS, n_images),
        "fs": np.repeat(fs_img, len(LEADS)),
    })
    dur = np.where(rows["lead"] == "II", 10.0, 2.5)
    rows["number_of_rows"] = np.round(dur * rows["fs"]).astype(np.int64)
    n = rows["number_of_rows"].to_numpy()
    total = int(n.sum())
    fs = np.repeat(rows["fs"].to_numpy(), n)
    t = (np.arange(total) - np.repeat(np.cumsum(n) - n, n)) / fs
    y = 0.3 * np.sin(2 * np.pi * 1.2 * t) + np.cumsum(rng.normal(0, 0.01, total)) * 0.05
    y += (rng.random(total) < 0.002) * rng.normal(0, 1.0, total)
    gain = np.repeat(rng.uniform(0.8, 1.2, len(rows)), n)
    p = gain * np.roll(y, 3) + rng.normal(0, 0.05, total) + 0.1
    ids = expected_ids(rows).to_numpy(zero_copy_only=False)
    solution = pd.DataFrame({"id": ids, "value": y, "fs": fs})
    submission = pd.DataFrame({"id": ids.copy(), "value": p})
    return solution, submission, rows


def predictions_from(submission: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """The submission's values as image id -> lead -> array (the input write_submission takes)."""
    parts = np.split(submission["value"].to_numpy(), np.cumsum(rows["number_of_rows"].to_numpy())[:-1])
    out: dict = {}
    for rid, lead, values in zip(rows["id"], rows["lead"], parts, strict=True):
        out.setdefault(rid, {})[lead] = values
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffle", action="store_true", help="also time a submission in random row order")
    ap.add_argument("--write", type=Path, nargs="?", const=Path(tempfile.gettempdir()) / "bench_metric",
                    help="also time writing and validating submission files in this folder")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    solution, submission, rows = synthetic_case(args.images, args.seed)
    t1 = time.perf_counter()
    print(f"built {args.images} images, {len(solution):,} rows in {t1 - t0:.1f} s")
    value = score(solution, submission)
    t2 = time.perf_counter()
    print(f"score (same row order): {value:.4f} dB in {t2 - t1:.2f} s")
    if args.shuffle:
        # rows in random order, with id strings allocated in their new order (as when read from a file;
        # a plain .iloc permutation leaves the Python strings scattered in memory, which is slower to read)
        perm = np.random.default_rng(1).permutation(len(submission))
        shuffled = pd.DataFrame({"id": pa.array(submission["id"].to_numpy()).take(pa.array(perm))
                                 .to_numpy(zero_copy_only=False), "value": submission["value"].to_numpy()[perm]})
        t3 = time.perf_counter()
        value2 = score(solution, shuffled)
        print(f"score (shuffled rows): {value2:.4f} dB in {time.perf_counter() - t3:.2f} s")
    if args.write:
        preds = predictions_from(submission, rows)
        for suffix in (".csv", ".parquet"):
            t4 = time.perf_counter()
            path = write_submission(preds, rows, args.write / f"submission{suffix}")
            t5 = time.perf_counter()
            problems = validate_submission(path, rows)
            t6 = time.perf_counter()
            print(f"write {path.name}: {t5 - t4:.2f} s ({path.stat().st_size / 1e6:.0f} MB); "
                  f"read + validate: {t6 - t5:.2f} s, {len(problems)} problems")


if __name__ == "__main__":
    main()
