"""Source classifier inference: Page -> SourcePrediction (the image type, with a probability per type).

A bundle is a folder with ``model.safetensors`` (the weights) and ``config.json`` (model name + kwargs, the
class names, the input size, the low-confidence threshold, a SHA-256 of the weights file, how it was trained
and validated). Loading is offline and strict: a missing file, a weights file that is not the one the config
names, or weights that do not fit the configured network are errors that name the file - never a silently
random network.

``config["inference"]["precision"]``: "auto" runs the network under bf16 autocast where the CPU supports
bf16 natively, else fp32; "fp32" / "bf16" force it. ``config["inference"]["views"]`` (default ["identity"]):
the input is also read mirrored ("flip_x", "flip_y", or both: "flip_xy"), in one batch, and the probabilities are
the normalised geometric mean of the views' (test-time augmentation: each mirrored reading alone is a little worse,
but their errors are partly independent of the direct one's).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from common.types import IMAGE_TYPES, Page, SourcePrediction
from common.weights import load_model_bundle, save_model_bundle
from source_classifier.data import prepare_input
from source_classifier.model import create_model, normalise_input
from stage1_segment.infer import bf16_native

DEFAULT_THRESHOLD = 0.6  # top-type probability under which a prediction counts as low-confidence
PRECISIONS = ("auto", "fp32", "bf16")
VIEW_FLIP_DIMS = {"identity": (), "flip_x": (-1,), "flip_y": (-2,), "flip_xy": (-2, -1)}  # the views a bundle may
# name, and the input dims each mirrors ("flip_xy": both, a half turn)
REQUIRED_KEYS = ("model_name", "model_kwargs", "class_names", "input_hw", "low_confidence_threshold",
                 "weights_sha256")

__all__ = ["SourceClassifier", "bf16_native", "load_bundle", "save_bundle"]


def save_bundle(model: torch.nn.Module, config: dict, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (:func:`common.weights.save_model_bundle`)."""
    return save_model_bundle(model, config, out_dir)


def _check_classes(cfg: dict, cfg_path: Path) -> None:
    if tuple(cfg["class_names"]) != IMAGE_TYPES:
        raise ValueError(f"{cfg_path}: class names {cfg['class_names']} are not the image types {IMAGE_TYPES}")


def load_bundle(path: str | Path) -> tuple[torch.nn.Module, dict]:
    return load_model_bundle(path, "source-classifier", REQUIRED_KEYS, create_model, _check_classes)


class SourceClassifier:
    """``SourceClassifier.from_bundle(path)(page) -> SourcePrediction``."""

    def __init__(self, model: torch.nn.Module, config: dict, num_threads: int | None = None,
                 precision: str | None = None):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.config = config
        self.input_hw = (int(config["input_hw"][0]), int(config["input_hw"][1]))
        self.threshold = float(config["low_confidence_threshold"])
        self.num_threads = num_threads
        self.precision = str(precision or (config.get("inference") or {}).get("precision", "auto"))
        if self.precision not in PRECISIONS:
            raise ValueError(f"source-classifier precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.bf16 = self.precision == "bf16" or (self.precision == "auto" and bf16_native(torch.device("cpu")))
        self.views = tuple((config.get("inference") or {}).get("views", ["identity"]))
        if not self.views or any(v not in VIEW_FLIP_DIMS for v in self.views) or len(set(self.views)) != len(
                self.views):
            raise ValueError(f"source-classifier views must be distinct names from {tuple(VIEW_FLIP_DIMS)}, got "
                             f"{list(self.views)}")
        self.last_timing: dict = {}

    @classmethod
    def from_bundle(cls, path: str | Path, num_threads: int | None = None,
                    precision: str | None = None) -> SourceClassifier:
        model, cfg = load_bundle(path)
        return cls(model, cfg, num_threads=num_threads, precision=precision)

    @torch.inference_mode()
    def probabilities(self, image_rgb: np.ndarray) -> np.ndarray:
        """(9,) float64 softmax over IMAGE_TYPES for an RGB uint8 image of any size."""
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        t0 = time.perf_counter()
        x = normalise_input(torch.from_numpy(prepare_input(image_rgb, self.input_hw)).permute(2, 0, 1)[None])
        x = torch.cat([x.flip(VIEW_FLIP_DIMS[v]) if VIEW_FLIP_DIMS[v] else x for v in self.views])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x.contiguous(memory_format=torch.channels_last))
        log_p = torch.log_softmax(logits.float().double(), dim=1).mean(dim=0)
        p = torch.softmax(log_p, dim=0).numpy()
        self.last_timing = {"prep_s": t1 - t0, "net_s": time.perf_counter() - t1}
        return p

    def __call__(self, page: Page) -> SourcePrediction:
        p = self.probabilities(page.image_rgb)
        return SourcePrediction(image_id=page.image_id, image_type=IMAGE_TYPES[int(p.argmax())], probabilities=p,
                                threshold=self.threshold)
