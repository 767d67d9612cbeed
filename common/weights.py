"""Weight files of the stage bundles: safetensors checked against the SHA-256 their config.json names, loaded
strictly into the configured network. Offline only; never a silently random network."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checked_weights(model: torch.nn.Module, weights_path: str | Path, expected_sha256: str,
                         named_in: str | Path) -> torch.nn.Module:
    """Load ``weights_path`` into ``model`` (strict) after checking it is the file ``named_in`` (a config) names.
    FileNotFoundError if it is missing, ValueError if it was altered or does not fit the network."""
    from safetensors.torch import load_file

    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights {weights_path} named in {named_in} are missing")
    sha = sha256_file(weights_path)
    if sha != expected_sha256:
        raise ValueError(f"{weights_path} is not the file {named_in} names (sha256 {sha[:12]} != "
                         f"{expected_sha256[:12]})")
    try:
        model.load_state_dict(load_file(str(weights_path)), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights_path} does not fit the network configured in {named_in}: {exc}") from exc
    return model.eval()
