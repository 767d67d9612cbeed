"""Speed of the page factory on one core.

    python -m benchmarks.bench_synth [--pages 30] [--seed 0]

Prints clean pages rendered per second (2200x1700, labels included, one process, OpenCV on one thread) and
the time per page of each degradation profile: wall time, and CPU time of this process, which stays
meaningful when other work shares the machine.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from common.types import IMAGE_TYPES, SUPPORTED_FS_HZ
from synth.degrade import degrade
from synth.render import render_page, sample_style
from synth.signals import enforce_einthoven, prepare, simulate_record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    inputs = []
    for i in range(args.pages):
        fs = int(rng.choice(SUPPORTED_FS_HZ))
        record = prepare(simulate_record(np.random.default_rng([args.seed, i])), fs)
        inputs.append((enforce_einthoven(record.leads_mv), fs, sample_style(rng)))
    wall, cpu = time.perf_counter(), time.process_time()
    pages = [render_page(sig, fs, str(i), style) for i, (sig, fs, style) in enumerate(inputs)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"clean render: {args.pages / cpu:.1f} pages per CPU-second ({1000 * cpu / args.pages:.0f} ms CPU, "
          f"{1000 * wall / args.pages:.0f} ms wall per page)")
    n = min(10, len(pages))
    for image_type in IMAGE_TYPES:
        wall, cpu = time.perf_counter(), time.process_time()
        for i, page in enumerate(pages[:n]):
            degrade(page.sheet_rgb, image_type, np.random.default_rng([args.seed, i]))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"degrade {image_type}: {1000 * cpu / n:.0f} ms CPU, {1000 * wall / n:.0f} ms wall per page")


if __name__ == "__main__":
    main()
