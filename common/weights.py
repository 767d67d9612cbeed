"""Weight files of the stage bundles: safetensors checked against the SHA-256 their config.json names, loaded
strictly into the configured network. Offline only; never a silently random network."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
BUNDLE_FORMAT = 1


def save_model_bundle(model: torch.nn.Module, config: dict, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (the config plus the weights' SHA-256 and size), atomically:
    temp files, then rename, so a bundle is never half written."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp_w = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp_w), metadata={"format": str(BUNDLE_FORMAT)})
    cfg = dict(config, bundle_format=BUNDLE_FORMAT, weights_sha256=sha256_file(tmp_w),
               weights_bytes=tmp_w.stat().st_size)
    tmp_c = out / (CONFIG_FILE + ".tmp")
    tmp_c.write_text(json.dumps(cfg, indent=1))
    tmp_w.replace(out / WEIGHTS_FILE)
    tmp_c.replace(out / CONFIG_FILE)
    return out


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


def load_model_bundle(path: str | Path, what: str, required_keys: Iterable[str],
                      create_model: Callable[..., torch.nn.Module],
                      check: Callable[[dict, Path], None] | None = None) -> tuple[torch.nn.Module, dict]:
    """A bundle folder written by :func:`save_model_bundle`: its network (``create_model(name, **kwargs)`` from the
    config) with the checked weights, and the config. ``what`` names the bundle in errors; ``check`` may refuse
    a config before the network is built. FileNotFoundError for a missing file, ValueError for a bad config."""
    path = Path(path)
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"{what} bundle is incomplete: {p} is missing")
    cfg = json.loads(cfg_path.read_text())
    for key in required_keys:
        if key not in cfg:
            raise ValueError(f"{cfg_path} lacks {key!r}")
    if cfg.get("bundle_format") != BUNDLE_FORMAT:
        raise ValueError(f"{cfg_path}: bundle format {cfg.get('bundle_format')} is not {BUNDLE_FORMAT}")
    if check is not None:
        check(cfg, cfg_path)
    model = create_model(cfg["model_name"], **cfg["model_kwargs"])
    return load_checked_weights(model, w_path, cfg["weights_sha256"], cfg_path), cfg
