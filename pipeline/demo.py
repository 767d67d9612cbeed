"""The demo: a simulated 12-lead record rendered as every competition image type, with its labels."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from common.types import IMAGE_TYPES
from synth.degrade import IMAGE_TYPE_NAMES
from synth.factory import make_page
from synth.make import signals_frame, write_image
from synth.signals import simulate_record


def run_demo(out: Path, seed: int = 0) -> int:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = simulate_record(np.random.default_rng(seed), record_id="demo")
    page = make_page(record, index=0, seed=seed, image_types=IMAGE_TYPES, layouts=["3x4+II"])
    signals_frame(page).to_csv(out / "demo.csv", index=False, float_format="%.6f")
    page.labels.save(out / "demo.labels")
    print(f"simulated record at {page.labels.fs_hz:g} Hz, layout {page.labels.layout_name}:")
    print(f"  signals (mV, NaN where not printed): {out / 'demo.csv'}")
    for image_type in IMAGE_TYPES:
        image = page.images[image_type]
        path = out / f"demo-{image_type}.png"
        write_image(path, image.image_rgb)
        h, w = image.image_rgb.shape[:2]
        print(f"  {image_type} {IMAGE_TYPE_NAMES[image_type]:<45} {w}x{h}  {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
