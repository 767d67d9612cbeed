"""One record window -> a rendered sheet with labels -> that sheet as any of the nine image types.

Randomness is keyed by (seed, page index[, image type]) so a page is the same whether it is written by
``synth.make`` with any number of workers or rendered on the fly by :class:`synth.dataset.SynthPageDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.sheet_map import SheetMap
from common.types import IMAGE_TYPES, SUPPORTED_FS_HZ
from synth.degrade import degrade
from synth.labels import SheetLabels
from synth.render import Arrangements, render_page, sample_style
from synth.signals import Record, enforce_einthoven, prepare


@dataclass(frozen=True)
class PageImage:
    image_type: str
    image_rgb: np.ndarray
    sheet_map: SheetMap


@dataclass(frozen=True)
class SynthPage:
    labels: SheetLabels
    sheet_rgb: np.ndarray
    images: dict  # image type -> PageImage


def page_rng(seed: int, index: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), *salt])


def type_salt(image_type: str) -> int:
    return 1 + IMAGE_TYPES.index(image_type)


def make_page(record: Record, index: int, seed: int, image_types: Sequence[str],
              layouts: Sequence[str] | None = None, fs_choices: Sequence[int] = SUPPORTED_FS_HZ,
              record_id: str | None = None, eik_look: float = 0.0,
              arrangements: Arrangements | None = None) -> SynthPage:
    """Render a 10 s window of ``record`` at a random fs from ``fs_choices`` in a random style (with probability
    ``eik_look`` with ECG-Image-Kit's marks, :func:`synth.render.eik_look_of`; in ``arrangements`` at their
    shares, :func:`synth.render.arranged`) and degrade it as each of ``image_types``."""
    unknown = [t for t in image_types if t not in IMAGE_TYPES]
    if unknown:
        raise ValueError(f"unknown image types {unknown}; known: {', '.join(IMAGE_TYPES)}")
    rng = page_rng(seed, index)
    fs_hz = int(rng.choice(np.asarray(fs_choices)))
    window = prepare(record, fs_hz)
    signals = enforce_einthoven(window.leads_mv)
    layout = None if layouts is None else str(rng.choice(list(layouts)))
    style = sample_style(rng, layout, eik_look, arrangements)
    rendered = render_page(signals, fs_hz, record_id or record.record_id, style, rng)
    images = {}
    for image_type in image_types:
        degraded = degrade(rendered.sheet_rgb, image_type, page_rng(seed, index, type_salt(image_type)))
        images[image_type] = PageImage(image_type, degraded.image_rgb, degraded.sheet_map)
    return SynthPage(rendered.labels, rendered.sheet_rgb, images)
