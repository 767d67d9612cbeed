"""The speed benchmarks in one run (``make bench``): the digitizer's seconds per page and peak memory, the
metric on Kaggle-sized frames, and the page factory.

    python -m benchmarks.run [--quick]

``--quick`` runs each on a small set (a smoke test of the benchmarks, not a measurement). Speed is compared
side by side, as ratios, on one machine: run this on both checkouts in one session.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import bench_metric, bench_predict, bench_synth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sets: check the benchmarks run")
    args = parser.parse_args(argv)
    runs = [
        ("digitizer", bench_predict.main, ["--pages", "2" if args.quick else "6"]),
        ("metric", bench_metric.main, ["--images", "20" if args.quick else "1000"]),
        ("page factory", bench_synth.main, ["--pages", "3" if args.quick else "30"]),
    ]
    for name, run, run_args in runs:
        print(f"== {name}: {' '.join(run_args)}", flush=True)
        run(run_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
