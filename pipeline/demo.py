"""The demo: digitize the sample pages shipped in ``pipeline/samples`` and score them against their truth.

The samples were made by the page factory (a simulated record at 500 Hz on the competition's layout, as a
clean render and as a colour scan); ``sample.csv`` holds the plotted values (NaN where not printed).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.layouts import LEADS
from common.metric import image_snr
from common.types import Page
from pipeline.chain import Pipeline, read_image_rgb
from stage1_segment.run import overlay

SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_FS_HZ = 500.0


def run_demo(out: Path, weights_dir: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    truth_frame = pd.read_csv(SAMPLES / "sample.csv")
    truth = {lead: truth_frame[lead].dropna().to_numpy(np.float64) for lead in LEADS}
    counts = {lead: values.size for lead, values in truth.items()}
    pipeline = Pipeline.from_bundles(weights_dir)
    for path in sorted(SAMPLES.glob("sample-*.*")):
        page = Page(path.stem, read_image_rgb(path), SAMPLE_FS_HZ, counts)
        result = pipeline.digitize(page)
        signals_path = out / f"{path.stem}.csv"
        pd.DataFrame({lead: pd.Series(result.signals.leads_mv[lead]) for lead in LEADS}).to_csv(
            signals_path, index=False, float_format="%.5f")
        line = f"{path.name}: signals {signals_path}"
        if result.maps is not None:
            picture = out / f"{path.stem}-overlay.png"
            cv2.imwrite(str(picture), cv2.cvtColor(overlay(result.rectified.sheet_rgb, result.maps), cv2.COLOR_RGB2BGR))
            line += f", overlay {picture}"
        snr = image_snr(truth, result.signals.leads_mv, SAMPLE_FS_HZ)
        seconds = sum(result.timings_s.values())
        status = f"FAILED ({result.error}), flat fallback" if result.failed else f"{seconds:.1f} s"
        print(f"{line}\n    SNR against the truth: {10 * np.log10(snr):.2f} dB ({status})")
    return 0
