"""Stage 1 inference: Rectified (page on the canonical sheet) -> TraceMaps (one y-distribution map per row).

A bundle is a folder with ``model.safetensors`` (the weights) and ``config.json`` (model name + kwargs, map
scale, layout, a SHA-256 of the weights file, and how it was trained). Loading is offline and strict: a
missing file, a weights file that is not the one the config names, or weights that do not fit the configured
network are errors that name the file - never a silently random network.

Views and precision (``config["inference"]``, default :data:`DEFAULT_INFERENCE`): ``"views": ["identity",
"flip_x"]`` also reads the sheet mirrored left-right and averages the two views' column distributions
(test-time augmentation: the mirrored reading alone is worse, but its errors are partly independent of the
direct one's, so the mean is closer to the trace: held-out 20.78 -> 21.49 dB on the 76 non-photo pages).
``"precision": "auto"`` runs the network under bf16 autocast where the device supports bf16 natively (about
half the time per view on an AVX-512 CPU), else in fp32; "fp32" / "bf16" force it.

Ink guidance (``config["inference"]["ink_guidance"]``, off when absent): the network's column distributions
are a few px wide; the page's own ink is sharper. Each row's distribution is multiplied by ``eps + ink`` (ink
from :func:`stage1_segment.anchors.ink_weights` at map scale) and renormalised per column, so within the
network's choice of trace the mass moves onto the drawn line; where the network is sure and there is no ink
(a faint or broken trace) ``eps`` keeps its answer.

Close rows (``config["inference"]["close_rows"]``): "spread" (the default) reads rows printed closer than
CLOSE_PITCH_PX moved one competition row pitch apart (:func:`stage1_segment.passes.spread_rows`), each in a band
of ``config["inference"]["spread_band"]`` row pitches (default :data:`~stage1_segment.passes.SPREAD_BAND`; a
network trained on close rows shown in a wider band names its own); "in_place" reads them where they are, for one
trained on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.fusion import fuse_conv_bn
from common.layouts import default_placement, get_layout
from common.types import Rectified, TraceMaps
from common.weights import load_model_bundle, save_model_bundle
from stage1_segment.anchors import Anchors, find_anchors, ink_weights
from stage1_segment.data import MapSpec, sheet_to_map_image
from stage1_segment.model import RowTraceUnet, create_model, normalise_image, split_logits
from stage1_segment.passes import (
    SPREAD_BAND,
    checked_spread_band,
    only_rows,
    row_passes,
    rows_are_close,
    spread_half_band_px,
    spread_rows,
)


def save_bundle(model: torch.nn.Module, config: dict, out_dir: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` (:func:`common.weights.save_model_bundle`)."""
    return save_model_bundle(model, config, out_dir)


def load_bundle(path: str | Path) -> tuple[torch.nn.Module, dict]:
    return load_model_bundle(path, "stage-1", ("model_name", "model_kwargs", "scale_x", "scale_y", "layout",
                                               "weights_sha256"), create_model)


VIEWS = ("identity", "flip_x")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_INFERENCE = {"views": ["identity", "flip_x"], "precision": "auto"}  # training writes it into bundles;
# a bundle that names no views or precision is read with it too




NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512 BF16 / AMX, Arm BF16


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions natively. Elsewhere autocast would emulate them: on an
    AVX2-only CPU bf16 ran 10-40x slower than fp32."""
    if device.type == "cuda":  # bf16 tensor cores from compute capability 8.0 (Ampere); a T4 would emulate
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu" or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    return bool(cpu_flags() & set(NATIVE_BF16_CPU_FLAGS))


@dataclass(frozen=True)
class InkGuidance:
    eps: float = 0.1  # weight of a column pixel without ink, relative to a fully inked one
    lo_pct: float = 97.5  # page darkness percentile below which a pixel counts as no ink
    hi_pct: float = 99.7  # ... and above which as full ink

    def __post_init__(self) -> None:
        if not (self.eps > 0 and 0 <= self.lo_pct < self.hi_pct <= 100):
            raise ValueError(f"invalid ink guidance {self}")


class TraceSegmenter:
    """``TraceSegmenter.from_bundle(path)(rectified) -> TraceMaps``; each column of each row's map sums to 1."""

    def __init__(self, model: torch.nn.Module, config: dict, num_threads: int | None = None,
                 device: str | torch.device = "cpu", views: tuple[str, ...] | None = None,
                 precision: str | None = None):
        """``views`` and ``precision`` override the bundle's ``config["inference"]`` (see the module doc)."""
        self.device = torch.device(device)
        self.model = model.eval().to(device=self.device, memory_format=torch.channels_last)
        self.config = config
        self.spec = MapSpec(float(config["scale_x"]), float(config["scale_y"]))
        self.layout_name = str(config["layout"])
        self.n_rows = int(config["model_kwargs"].get("n_rows", 4))
        self.num_threads = num_threads
        self.last_timing: dict = {}
        self.last_anchors: Anchors | None = None  # the row baselines the last page was read with (debugging)
        inference = config.get("inference") or {}
        guidance = inference.get("ink_guidance")
        self.ink_guidance = None if guidance is None else InkGuidance(**guidance)
        self.views = tuple(inference.get("views", DEFAULT_INFERENCE["views"]) if views is None else views)
        # how close rows are shown: the band (row pitches) each is moved apart in, or None: read in place (a network
        # trained so, stage1_segment.train --close-rows in_place / --spread-band B, says so)
        self.spread_band = checked_spread_band(float(inference.get("spread_band", SPREAD_BAND))) \
            if inference.get("close_rows", "spread") == "spread" else None
        unknown = [v for v in self.views if v not in VIEWS]
        if not self.views or unknown:
            raise ValueError(f"stage-1 views must be a non-empty list from {VIEWS}, got {list(self.views)}")
        self.precision = str(inference.get("precision", DEFAULT_INFERENCE["precision"]) if precision is None
                             else precision)
        if self.precision not in PRECISIONS:
            raise ValueError(f"stage-1 precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.bf16 = self.precision == "bf16" or (self.precision == "auto" and bf16_native(self.device))

    @classmethod
    def from_bundle(cls, path: str | Path, num_threads: int | None = None, device: str | torch.device = "cpu",
                    views: tuple[str, ...] | None = None, precision: str | None = None) -> TraceSegmenter:
        model, cfg = load_bundle(path)
        if isinstance(model, RowTraceUnet):  # a bundle is only read here: its batch norms can go into its convs
            model.net = fuse_conv_bn(model.net)
        return cls(model, cfg, num_threads=num_threads, device=device, views=views, precision=precision)

    @torch.inference_mode()
    def probabilities(self, sheet_rgb: np.ndarray, baselines_y_px: tuple[float, ...] | None = None) -> np.ndarray:
        """(rows, Hm, Wm) float32 column softmax of the rows' y-logits for a canonical-sheet RGB image,
        flattened where the mask head sees no trace in the column. The rows are the bundle layout's, found by
        :func:`find_anchors`, or the rows at ``baselines_y_px`` (sheet px, top to bottom; any count: an anchored
        network reads them :attr:`n_rows` at a time, see :func:`row_passes`; rows closer than CLOSE_PITCH_PX
        are read spread apart, see :func:`spread_rows`)."""
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        t0 = time.perf_counter()
        hm, wm = self.spec.shape_hw
        if self.model.position != "anchors":
            if baselines_y_px is not None:
                raise ValueError("this stage-1 model reads rows by sheet position: it cannot read given baselines")
            passes = [((), list(range(self.n_rows)))]
        else:
            if baselines_y_px is None:
                self.last_anchors = find_anchors(sheet_rgb, self.layout_name)
                baselines_y_px = self.last_anchors.baselines_y_px
            else:
                self.last_anchors = Anchors(tuple(float(y) for y in baselines_y_px), "given", ())
            passes = row_passes(baselines_y_px, self.n_rows, float(sheet_rgb.shape[0]))
        close = baselines_y_px is not None and rows_are_close(baselines_y_px)
        spread_to = default_placement(get_layout(self.layout_name)).baselines_y_px \
            if close and self.spread_band is not None else None
        pitch = float(np.median(np.diff(baselines_y_px))) if close else np.inf
        t1 = time.perf_counter()
        rows: dict[int, np.ndarray] = {}
        net_s = 0.0
        for anchors_y, page_rows in passes:
            if spread_to is not None:
                image, shifts = spread_rows(sheet_rgb, anchors_y, spread_to,
                                            spread_half_band_px(self.spread_band, pitch, spread_to))
            elif baselines_y_px is not None and len(baselines_y_px) > self.n_rows:
                image, shifts = only_rows(sheet_rgb, anchors_y, baselines_y_px), None
            else:
                image, shifts = sheet_rgb, None
            x = normalise_image(torch.from_numpy(sheet_to_map_image(image, self.spec)).to(self.device)
                                .permute(2, 0, 1)[None])
            ink = None
            if self.ink_guidance is not None:
                ink = torch.from_numpy(ink_weights(image, (hm, wm), self.ink_guidance.lo_pct,
                                                   self.ink_guidance.hi_pct)).to(self.device)
            given = anchors_y if shifts is None else spread_to
            anchors = self.spec.sheet_to_map_y(np.asarray(given, np.float64))[None] if anchors_y else None
            coords = self.model.position_channels(1, hm, wm, 0, wm, anchors, self.spec.scale_y, device=self.device)
            probs = None
            for view in self.views:
                # one view at a time: on a CPU a batch of two is no faster, and it would double the activations
                flip = view == "flip_x"
                v0 = time.perf_counter()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    # the mirrored sheet is read as a page of its own: the position channels stay in its frame
                    out = self.model(x.flip(-1) if flip else x, coords)
                if self.device.type == "cuda":  # kernels run asynchronously: wait, so net_s is the network's time
                    torch.cuda.synchronize(self.device)
                net_s += time.perf_counter() - v0
                view_probs = self._column_probs(out.flip(-1) if flip else out, ink)
                probs = view_probs if probs is None else probs + view_probs
            probs = (probs / len(self.views)).cpu().numpy()
            for channel, row in enumerate(page_rows):
                if row >= 0 and row not in rows:  # a row two passes read keeps the first pass's reading
                    rows[row] = probs[channel] if shifts is None else self._unspread(probs[channel], shifts[channel])
        t2 = time.perf_counter()
        self.last_timing = {"prep_s": t1 - t0, "net_s": net_s, "softmax_s": t2 - t1 - net_s}
        return np.stack([rows[k] for k in range(len(rows))])

    def _unspread(self, probs: np.ndarray, shift: tuple[int, int, int]) -> np.ndarray:
        """A row's map read on a :func:`spread_rows` sheet, back at the row's place on the page: its band moved
        back, the rest of each column at the column's floor (no trace there)."""
        shift_px, lo_px, hi_px = shift
        lo, hi = int(np.ceil(self.spec.sheet_to_map_y(lo_px))), int(np.floor(self.spec.sheet_to_map_y(hi_px - 1))) + 1
        moved = int(round(shift_px * self.spec.scale_y))
        out = np.repeat(probs.min(axis=0, keepdims=True), probs.shape[0], axis=0)
        out[lo:hi] = probs[lo + moved:hi + moved]
        return out / out.sum(axis=0, keepdims=True)

    def _column_probs(self, out: torch.Tensor, ink: torch.Tensor | None) -> torch.Tensor:
        """(n_rows, Hm, Wm) column softmax of one view's output (in sheet orientation), ink-guided and
        flattened where the mask head sees no trace."""
        # the network answers in channels_last; a column softmax over y reads contiguous memory 5x faster
        y_logits, mask_logits = split_logits(out.contiguous(), self.n_rows)
        probs = torch.softmax(y_logits[0].float(), dim=1)
        if ink is not None:
            probs = probs * (self.ink_guidance.eps + ink)[None]
            probs = probs / probs.sum(dim=1, keepdim=True).clamp(min=1e-30)
        if mask_logits is not None:
            # The y-softmax is trained only where a row has a trace, so elsewhere (margins, calibration
            # pulses, text) it is arbitrary. The mask head knows where the row's ink is: where a column holds
            # none, the column's distribution is flattened to uniform, which stage 2 reads as "no trace".
            # (the sigmoid is monotonic: the column's largest logit gives its largest presence)
            presence = torch.sigmoid(mask_logits[0].amax(dim=1, keepdim=True).float())
            probs = presence * probs + (1.0 - presence) / probs.shape[1]
        return probs

    def __call__(self, rectified: Rectified, layout_name: str | None = None,
                 baselines_y_px: tuple[float, ...] | None = None) -> TraceMaps:
        """The bundle layout's rows, or ``layout_name``'s at ``baselines_y_px`` (one per row, e.g. as found by
        :func:`stage1_segment.layout_finder.find_layout`)."""
        if (layout_name is None) != (baselines_y_px is None):
            raise ValueError("a layout to read needs its rows' baselines, and baselines need their layout")
        if layout_name is not None and len(baselines_y_px) != get_layout(layout_name).n_rows:
            raise ValueError(f"layout {layout_name} has {get_layout(layout_name).n_rows} rows, "
                             f"got {len(baselines_y_px)} baselines")
        probs = self.probabilities(rectified.sheet_rgb, baselines_y_px)
        # torch casts to float16 bit for bit like numpy, but numpy takes ~50x longer on the tiny
        # probabilities (float16 subnormals) that fill most of each column
        maps = torch.from_numpy(probs).to(torch.float16).numpy()
        return TraceMaps(image_id=rectified.image_id, layout_name=layout_name or self.layout_name,
                         maps=maps, scale_x=self.spec.scale_x, scale_y=self.spec.scale_y)
