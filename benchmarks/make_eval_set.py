"""A train-layout evaluation set from the records stage 1 never trains on (its validation split).

    python -m benchmarks.make_eval_set --signals ../shared/data/signals --out /tmp/eval \
        [--types 0001,0003,0004] [--n-records 19] [--seed 1234] [--workers 2] [--layouts '3x4+II;6x2/cabrera']
        [--gaps 1 [--gap-mm 2,8]] [--outside-pulse 1] [--signal-rows 1] [--cabrera 1] [--time-marks 1] [--half-gain 1]
    python -m benchmarks.make_eval_set --signals ../shared/data/signals --out /tmp/eik_eval \
        --renderer ecg-image-kit --generator /path/to/ecg-image-kit [--n-records 38] [--augmented 1.0] \
        [--photograph 0005,0006,0009,0010]

``--renderer factory`` (default) draws the pages with our page factory as the given image types, in the given
layouts (variants too), with the given shares of arrangements (:class:`synth.render.Arrangements`: 1 forces one;
variants.csv names each page's base layout and arrangement);
``--renderer ecg-image-kit`` with the competition hosts' generator (see :mod:`synth.eik`; its environment comes
from ``make eik-env``), one 0001 page per record window (``--n-records`` above the number of windows draws them
again in other styles), ``--augmented`` of them rotated / noisy / cropped and/or wrinkled by it; ``--photograph``
adds, beside each plain page, that page through our degradation profiles of those image types (phone photos of
the hosts' renders, pages we did not draw). Then score the digitizer on it: ``python -m pipeline cv --data-dir
/tmp/eval`` (per variant too, from the set's variants.csv).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stage1_segment.data import split_records
from synth.make import add_arrangement_args, arrangements_from, make_dataset, parse_layouts, parse_types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--renderer", choices=["factory", "ecg-image-kit"], default="factory")
    parser.add_argument("--types", type=parse_types, default=["0001", "0003", "0004"], help="factory image types")
    parser.add_argument("--layouts", type=parse_layouts, default=["3x4+II"],
                        help="factory page layouts, separated by ';' (each page draws one)")
    add_arrangement_args(parser)
    parser.add_argument("--n-records", type=int, default=None, help="default: every validation window")
    parser.add_argument("--seed", type=int, default=1234, help="page styles; keep it apart from training seeds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generator", type=Path, default=None, help="ECG-Image-Kit checkout (its renderer)")
    parser.add_argument("--eik-python", type=Path, default=None, help="its environment's python (.venv-eik)")
    parser.add_argument("--augmented", type=float, default=0.0, help="ECG-Image-Kit: share of distorted pages")
    parser.add_argument("--photograph", type=parse_types, default=[],
                        help="ECG-Image-Kit: also each plain page as these factory image types (e.g. 0005,0010)")
    args = parser.parse_args()
    _, val, desc = split_records(args.signals)
    print(f"{len(val)} held-out windows: {desc}")
    if args.renderer == "factory":
        records = val[: args.n_records] if args.n_records else val
        make_dataset(args.out, records, args.types, args.seed, args.workers, "train", args.layouts,
                     arrangements=arrangements_from(args, parser))
    else:
        from synth import eik

        if args.generator is None:
            parser.error("--renderer ecg-image-kit needs --generator (an ECG-Image-Kit checkout)")
        n = args.n_records or len(val)
        records = [val[i % len(val)] for i in range(n)]
        python = args.eik_python or eik.DEFAULT_EIK_PYTHON
        try:
            eik.make_eik_dataset(args.out, records, args.generator, python, args.seed, args.workers, args.augmented)
        except eik.EikError as exc:
            parser.error(str(exc))
        if args.photograph:
            done = eik.photograph_dataset(args.out, args.photograph, args.seed)
            print(f"{len(done)} plain pages photographed as {', '.join(args.photograph)}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
