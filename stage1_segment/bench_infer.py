"""Time stage-1 inference per page: ``python -m stage1_segment.bench_infer [--bundle DIR] [--threads 2] [--pages 5]``.

Reports wall time (min and median over repeats) and the process CPU time per page. On a shared machine the
wall time includes waiting for other processes; CPU time / threads is the wall time an idle machine would give
when both threads are kept busy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from common.types import Rectified


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", type=Path, default=Path("weights/stage1_segment"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pages", type=int, default=5)
    args = ap.parse_args(argv)

    from stage1_segment.infer import TraceSegmenter

    torch.set_num_threads(args.threads)
    seg = TraceSegmenter.from_bundle(args.bundle, num_threads=args.threads)
    rng = np.random.default_rng(0)
    sheet = np.full((*CANONICAL.shape_hw, 3), 245, np.uint8)
    sheet[rng.random(CANONICAL.shape_hw) < 0.02] = 0
    rect = Rectified("bench", sheet, SheetMap.identity(), CANONICAL.px_per_mm, "bench", 1.0)
    seg(rect)  # warm-up
    walls, cpus, nets = [], [], []
    for _ in range(args.pages):
        c0, w0 = time.process_time(), time.perf_counter()
        seg(rect)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        nets.append(seg.last_timing["net_s"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bundle {args.bundle} ({seg.config['model_kwargs']['encoder_name']}, map {seg.spec.shape_hw}), "
          f"{args.threads} threads, load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"wall/page: min {min(walls):.3f}s median {np.median(walls):.3f}s (network min {min(nets):.3f}s); "
          f"CPU/page: median {np.median(cpus):.3f}s -> idle-machine estimate {np.median(cpus) / args.threads:.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
