"""Speed of the page factory on one core.

    python -m benchmarks.bench_synth [--pages 30] [--seed 0]

Prints clean pages rendered per second (2200x1700, labels included, one process) and seconds per page of
each degradation profile.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    inputs = []
    for i in range(args.pages):
        fs = int(rng.choice(SUPPORTED_FS_HZ))
        record = prepare(simulate_record(np.random.default_rng([args.seed, i])), fs)
        inputs.append((enforce_einthoven(record.leads_mv), fs, sample_style(rng)))
    start = time.perf_counter()
    pages = [render_page(sig, fs, str(i), style) for i, (sig, fs, style) in enumerate(inputs)]
    elapsed = time.perf_counter() - start
    print(f"clean render: {args.pages / elapsed:.1f} pages/s on one core ({1000 * elapsed / args.pages:.0f} ms/page)")
    for image_type in IMAGE_TYPES:
        start = time.perf_counter()
        for i, page in enumerate(pages[:10]):
            degrade(page.sheet_rgb, image_type, np.random.default_rng([args.seed, i]))
        per_page = (time.perf_counter() - start) / min(10, len(pages))
        print(f"degrade {image_type}: {1000 * per_page:.0f} ms/page")


if __name__ == "__main__":
    main()
