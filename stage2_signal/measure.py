"""Measure stage 2 on oracle maps of simulated pages: SNR per fs, map scale and oracle kind.

    python -m stage2_signal.measure [--fs 250,500,1000] [--scale-x 0.5,1,2] [--scale-y 0.5] [--seeds 1,2,3,4]
                                    [--modes ink,centre] [--layout 3x4+II] [--no-extent]

Each seed is one simulated record rendered as one page (``make_page(record, seed, 11, ...)``). Prints the
uncapped SNR (signal / noise summed over the 12 leads, no 384 cap: shows the headroom above the cap) per
page and its mean, and the competition's capped score over the pages.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common.geometry import CANONICAL
from common.layouts import LEADS
from common.metric import image_snr, lead_powers, snr_db_from_linear
from stage2_signal.extract import ExtractConfig
from stage2_signal.infer import ExtractorConfig, extract
from stage2_signal.oracle import oracle_maps


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def page_labels(fs: int, layout: str, seed: int):
    from synth.factory import make_page
    from synth.signals import simulate_record

    record = simulate_record(np.random.default_rng(seed), fs_hz=500.0, record_id=f"sim{seed}")
    return make_page(record, seed, 11, [], layouts=[layout], fs_choices=[fs]).labels


def score_page(labels, maps, config: ExtractorConfig | None = None) -> tuple[float, float]:
    """(uncapped dB, capped linear SNR) of one page read from ``maps``."""
    truth = {lead: labels.lead_signal(lead).astype(np.float64) for lead in LEADS}
    counts = {lead: v.size for lead, v in truth.items()}
    ex = extract(maps, CANONICAL.px_per_mm, labels.fs_hz, counts, config)
    s = n = 0.0
    for lead in LEADS:
        a, b, _, _ = lead_powers(truth[lead], ex.signals.leads_mv[lead], labels.fs_hz)
        s, n = s + a, n + b
    return 10 * float(np.log10(s / n)), image_snr(truth, ex.signals.leads_mv, labels.fs_hz)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stage2_signal.measure", description=__doc__.split("\n")[0])
    ap.add_argument("--fs", default="250,500,1000")
    ap.add_argument("--scale-x", default="0.5,1,2")
    ap.add_argument("--scale-y", type=float, default=0.5)
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--modes", default="ink,centre")
    ap.add_argument("--layout", default="3x4+II")
    ap.add_argument("--sigma-px", type=float, default=1.5)
    ap.add_argument("--no-extent", action="store_true", help="one y per column (ignore strokes' extent)")
    args = ap.parse_args(argv)
    config = ExtractorConfig(extract=ExtractConfig(use_extent=not args.no_extent))
    seeds = [int(v) for v in _floats(args.seeds)]
    for fs in (int(v) for v in _floats(args.fs)):
        pages = [page_labels(fs, args.layout, s) for s in seeds]
        for sx in _floats(args.scale_x):
            for mode in args.modes.split(","):
                t = time.time()
                res = [score_page(lb, oracle_maps(lb, sx, args.scale_y, args.sigma_px, mode), config) for lb in pages]
                unc = [r[0] for r in res]
                capped = snr_db_from_linear([r[1] for r in res])
                print(f"fs {fs:5d}  scale_x {sx:<4g} scale_y {args.scale_y:<4g} {mode:6s}  uncapped mean "
                      f"{np.mean(unc):6.2f} dB [{' '.join(f'{v:.1f}' for v in unc)}]  score (capped) {capped:6.2f} dB"
                      f"  ({time.time() - t:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
