"""Apply the stage-2 refiner (:mod:`stage2_signal.model`) to read leads, and store / load it in a bundle.

A stage-2 bundle names its refiner in ``config.json``::

    "refiner": {"type": "lead_cnn", "kwargs": {...}, "weights": "refiner.safetensors",
                "weights_sha256": "...", "fs_hz": 250.0, "trained": {...data, steps, validation...}}

Each lead (at the page's fs, the requested length) is taken to ``fs_hz`` by linear interpolation, all twelve
go through the network as one batch (padded to the longest, the padding masked), and the correction is taken
back to the page's sample times and added. Loading is strict: a missing or altered weights file is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.layouts import LEADS
from common.weights import load_checked_weights, sha256_file
from stage2_signal.model import REFINER_REGISTRY, create_refiner, refiner_inputs

REFINER_FILE = "refiner.safetensors"


def resample_linear(values: np.ndarray, fs_from: float, fs_to: float, n_to: int | None = None) -> np.ndarray:
    """``values`` sampled at ``fs_from`` (sample k at k / fs) read at ``fs_to``: ``n_to`` samples (default:
    the same duration), held beyond the ends."""
    values = np.asarray(values, dtype=np.float64)
    n_to = int(round(values.size * fs_to / fs_from)) if n_to is None else int(n_to)
    return np.interp(np.arange(n_to) * (fs_from / fs_to), np.arange(values.size), values)


def lead_tensors(signals: list[np.ndarray], confidences: list[np.ndarray], lead_names: list[str]):
    """Leads already at the refiner's rate -> (inputs (B, C, T), printed (B, T)) padded to the longest."""
    t = max(s.size for s in signals)
    sig = np.zeros((len(signals), t), np.float32)
    conf = np.zeros_like(sig)
    printed = np.zeros_like(sig)
    for i, (s, c) in enumerate(zip(signals, confidences, strict=True)):
        sig[i, : s.size], conf[i, : c.size], printed[i, : s.size] = s, c, 1.0
    idx = torch.tensor([LEADS.index(name) for name in lead_names])
    printed_t = torch.from_numpy(printed)
    return refiner_inputs(torch.from_numpy(sig), torch.from_numpy(conf), printed_t, idx), printed_t


class Refiner:
    """A loaded refiner: ``refiner(leads_mv, confidence, fs_hz) -> leads_mv`` (dicts lead -> (n,) arrays)."""

    def __init__(self, model: torch.nn.Module, section: dict):
        self.model = model.eval()
        self.section = dict(section)
        self.fs_hz = float(section["fs_hz"])

    @classmethod
    def from_section(cls, section: dict, bundle_dir: str | Path) -> Refiner:
        for key in ("type", "kwargs", "weights", "weights_sha256", "fs_hz"):
            if key not in section:
                raise ValueError(f"stage-2 refiner section lacks {key!r}")
        if section["type"] not in REFINER_REGISTRY:
            raise ValueError(f"stage-2 refiner type {section['type']!r} is not available "
                             f"(known: {list(REFINER_REGISTRY)})")
        model = create_refiner(section["type"], **section["kwargs"])
        bundle_dir = Path(bundle_dir)
        load_checked_weights(model, bundle_dir / section["weights"], section["weights_sha256"],
                             bundle_dir / "config.json")
        return cls(model, section)

    @staticmethod
    def save(model: torch.nn.Module, name: str, kwargs: dict, fs_hz: float, bundle_dir: str | Path,
             trained: dict) -> dict:
        """Write the weights into ``bundle_dir`` and return the config section that names them."""
        from safetensors.torch import save_file

        out = Path(bundle_dir)
        out.mkdir(parents=True, exist_ok=True)
        w_path = out / REFINER_FILE
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(w_path))
        return {"type": name, "kwargs": kwargs, "weights": REFINER_FILE, "weights_sha256": sha256_file(w_path),
                "fs_hz": float(fs_hz), "trained": trained}

    @torch.inference_mode()
    def __call__(self, leads_mv: dict, confidence: dict, fs_hz: float) -> dict:
        names = [lead for lead in LEADS if lead in leads_mv]
        sig = [resample_linear(leads_mv[n], fs_hz, self.fs_hz).astype(np.float32) for n in names]
        conf = [resample_linear(confidence[n], fs_hz, self.fs_hz, s.size).astype(np.float32)
                for n, s in zip(names, sig, strict=True)]
        inputs, _ = lead_tensors(sig, conf, names)
        correction = self.model(inputs).numpy()
        out = dict(leads_mv)
        for i, n in enumerate(names):
            delta = resample_linear(correction[i, : sig[i].size], self.fs_hz, fs_hz, len(leads_mv[n]))
            # the loss forgives each lead's constant offset, as the metric does, so the correction carries an
            # arbitrary one (the photo refiner: -0.06 to -0.09 mV on every real photo); the lead keeps the baseline
            # stage 2 read from its pulse or panel
            finite = np.isfinite(delta)
            if finite.any():
                delta = delta - float(delta[finite].mean())
            out[n] = np.asarray(leads_mv[n], dtype=np.float64) + delta
        return out
