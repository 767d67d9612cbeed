"""A train-layout evaluation set from the records stage 1 never trains on (its validation split).

    python -m benchmarks.make_eval_set --signals ../shared/data/signals --out /tmp/eval \
        [--types 0001,0003,0004] [--n-records 19] [--seed 1234] [--workers 2]

Then score the digitizer on it: ``python -m pipeline cv --data-dir /tmp/eval``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stage1_segment.data import split_records
from synth.make import make_dataset, parse_types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--types", type=parse_types, default=["0001", "0003", "0004"])
    parser.add_argument("--n-records", type=int, default=None, help="default: every validation window")
    parser.add_argument("--seed", type=int, default=1234, help="page styles; keep it apart from training seeds")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _, val, desc = split_records(args.signals)
    records = val[: args.n_records] if args.n_records else val
    print(f"{len(records)} held-out windows: {desc}")
    make_dataset(args.out, records, args.types, args.seed, args.workers, "train", ["3x4+II"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
