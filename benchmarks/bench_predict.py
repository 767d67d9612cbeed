"""Seconds per page and peak memory of the digitizer on a fixed synthetic set.

    python -m benchmarks.bench_predict [--pages 6] [--types 0001,0003,0005] [--threads 2] [--weights weights]

Renders the pages first (not timed), then runs the pipeline page by page in this process with
``--threads`` torch threads, and prints the mean seconds per page (per stage too) and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from common.types import Page
from pipeline.__main__ import DEFAULT_WEIGHTS, DEVICES
from pipeline.chain import Pipeline
from synth.factory import make_page
from synth.signals import simulate_record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--types", default="0001,0003,0005")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="where the stage-1 network runs")
    args = parser.parse_args(argv)
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    types = [t for t in args.types.split(",") if t]
    pages = []
    for i in range(args.pages):
        image_type = types[i % len(types)]
        synth = make_page(simulate_record(np.random.default_rng([7, i])), i, 7, [image_type], layouts=["3x4+II"])
        pages.append(Page(f"{i}-{image_type}", synth.images[image_type].image_rgb, synth.labels.fs_hz))
    pipeline = Pipeline.from_bundles(args.weights, args.device)
    pipeline(pages[0])  # warm-up: first-call allocations and kernel selection are not per-page costs
    stage_totals: dict[str, float] = {}
    start = time.perf_counter()
    for page in pages:
        result = pipeline(page)
        for stage, seconds in result.timings_s.items():
            stage_totals[stage] = stage_totals.get(stage, 0.0) + seconds
    per_page = (time.perf_counter() - start) / len(pages)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{per_page:.2f} s/page over {len(pages)} pages ({','.join(types)}), {args.threads} threads, "
          f"stage 1 on {args.device}; "
          f"peak RSS {peak_gb:.2f} GB")
    print("  " + "  ".join(f"{k} {v / len(pages):.2f} s" for k, v in stage_totals.items()))


if __name__ == "__main__":
    main()
