"""Stage 2 refiner network: a small residual 1-D CNN that corrects each read lead.

The read signal carries the errors stage 1 and the extraction make systematically (QRS peaks blunted by the
map's blur, strokes pulled towards a neighbouring trace, baseline wander of the reading). The refiner sees a
lead at ``REFINE_FS_HZ`` with its per-sample confidence, a mask of where it was printed and which lead it is,
and returns a correction in mV that is added to the lead. Its last layer starts at zero, so an untrained
refiner is the identity.

Built by name from a kwargs dict (``create_refiner("lead_cnn", **kwargs)``), as a bundle stores it.
"""

from __future__ import annotations

import torch
from torch import nn

from common.layouts import LEADS
from common.metric import MAX_SNR
from common.registry import Registry

REFINER_REGISTRY = Registry("stage-2 refiner")
REFINE_FS_HZ = 250.0  # the printed trace holds about 200 samples/s (25 mm/s at 7.9 px/mm): 250 Hz loses nothing
INPUT_CHANNELS = 3 + len(LEADS)  # signal (mV), confidence, printed mask, lead one-hot


def create_refiner(name: str, **kwargs) -> nn.Module:
    return REFINER_REGISTRY.create(name, **kwargs)


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class LeadRefiner(nn.Module):
    """Dilated residual 1-D CNN: (B, INPUT_CHANNELS, T) -> (B, T) correction in mV, zero where not printed.

    ``dilations`` set the reach: with kernel 5 and (1, 2, 4, 8, 16, 1) a sample sees +-64 samples (0.26 s at
    250 Hz), about one QRS complex and its surroundings.
    """

    def __init__(self, channels: int = 32, kernel: int = 5, dilations: tuple | list = (1, 2, 4, 8, 16, 1)):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.stem = nn.Conv1d(INPUT_CHANNELS, channels, kernel, padding=kernel // 2)
        self.blocks = nn.Sequential(*[_Block(channels, kernel, int(d)) for d in dilations])
        self.head = nn.Conv1d(channels, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != INPUT_CHANNELS:
            raise ValueError(f"refiner input must be (B, {INPUT_CHANNELS}, T), got {tuple(x.shape)}")
        printed = x[:, 2]
        return self.head(self.blocks(self.stem(x)))[:, 0] * printed


@REFINER_REGISTRY.register("lead_cnn")
def _lead_cnn(**kwargs) -> nn.Module:
    return LeadRefiner(**kwargs)


def refiner_inputs(signal_mv: torch.Tensor, confidence: torch.Tensor, printed: torch.Tensor,
                   lead_index: torch.Tensor) -> torch.Tensor:
    """(B, T) signal, confidence and printed mask (0/1) + (B,) lead indices -> (B, INPUT_CHANNELS, T).
    Unprinted samples are zeroed so that padding carries no information."""
    b, t = signal_mv.shape
    onehot = torch.zeros(b, len(LEADS), t, dtype=signal_mv.dtype)
    onehot[torch.arange(b), lead_index.long()] = 1.0
    m = printed.to(signal_mv.dtype)
    return torch.cat([(signal_mv * m)[:, None], (confidence * m)[:, None], m[:, None], onehot], dim=1)


LOSS_WEIGHTINGS = ("pages", "metric")


def page_powers(pred_mv: torch.Tensor, truth_mv: torch.Tensor, printed: torch.Tensor,
                page_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per page (noise, signal) power as the metric sums them over a page's leads, after each lead's
    least-squares constant offset is removed (the metric forgives it)."""
    m = printed.to(pred_mv.dtype)
    err = (pred_mv - truth_mv) * m
    n = m.sum(1).clamp(min=1.0)
    err = (err - (err.sum(1) / n)[:, None]) * m
    noise = (err**2).sum(1)
    signal = (truth_mv**2 * m).sum(1)
    pages, inverse = torch.unique(page_index, return_inverse=True)
    noise_p = torch.zeros(pages.numel(), dtype=noise.dtype).index_add_(0, inverse, noise)
    signal_p = torch.zeros(pages.numel(), dtype=noise.dtype).index_add_(0, inverse, signal)
    return noise_p, signal_p


def snr_loss(pred_mv: torch.Tensor, truth_mv: torch.Tensor, printed: torch.Tensor,
             page_index: torch.Tensor, weighting: str = "pages") -> torch.Tensor:
    """The metric's view of a batch of leads: log10(noise / signal) per page (= -SNR / 10 in dB), averaged.

    ``weighting="pages"``: every page counts alike. ``"metric"``: each page is weighted by its linear SNR
    (capped at the metric's ``MAX_SNR``, zero weight above it; detached, normalised to mean 1), which makes the
    gradient that of the mean linear SNR the metric averages, so the clean pages that carry the score are the
    ones improved, not the hopeless ones.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    noise_p, signal_p = page_powers(pred_mv, truth_mv, printed, page_index)
    log_ratio = torch.log10((noise_p + 1e-4) / (signal_p + 1e-4))
    if weighting == "pages":
        return log_ratio.mean()
    snr = (10.0 ** (-log_ratio.detach()))
    w = torch.where(snr < MAX_SNR, snr, torch.zeros_like(snr))
    return (w * log_ratio).sum() / w.sum().clamp(min=1e-12)
