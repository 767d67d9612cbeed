"""Stage 1 network: a light U-Net over the (downscaled) canonical sheet, one output map per layout row.

Models are built by name from a kwargs dict (timm style): ``create_model("unet_rows", **kwargs)``; the name
and kwargs are what a bundle's ``config.json`` stores, so a bundle rebuilds exactly the network it was
trained as. Besides RGB, the network sees where each layout row is (``position``):

* ``"anchors"``: one channel per row, the signed distance of each pixel from that row's baseline (found on
  the page by :mod:`stage1_segment.anchors`), in units of ``ANCHOR_SCALE_PX`` sheet px and clipped. Row
  channel r then follows the trace that starts near anchor r, wherever a renderer put its rows.
* ``"sheet"``: normalised sheet y (and x) coordinates; rows are where our own renderer puts them (kept so
  bundles trained that way still load).

Output: (B, n_rows, H, W) y-logits (softmax over H per column gives each row's trace distribution in that
column) and, with ``mask_head``, another n_rows channels of per-pixel trace-mask logits (an auxiliary
training target only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.registry import Registry
from common.torch_compat import ensure_torchvision

MODEL_REGISTRY = Registry("stage-1 model")

# Image normalisation: uint8 -> roughly zero mean, unit spread.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25
POSITIONS = ("sheet", "anchors")
ANCHOR_SCALE_PX = 200.0  # sheet px per unit of an anchor channel (about a row pitch)
ANCHOR_CLIP = 3.0  # anchor channels saturate this many units away from their row


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model from its kwargs (as stored in a bundle's config)."""
    return MODEL_REGISTRY.create(name, **kwargs)


def coord_channels(batch: int, height: int, width: int, x_offset: torch.Tensor | int, full_width: int,
                   full_height: int | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """(B, 2, H, W): sheet y and x of each pixel, normalised to [-1, 1] over the FULL map.

    ``x_offset`` (int or (B,) tensor) is each crop's first column in the full map, so a crop carries the same
    coordinates as the same pixels of the whole page.
    """
    full_height = height if full_height is None else full_height
    y = (torch.arange(height, device=device, dtype=dtype) + 0.5) / full_height * 2 - 1
    x = torch.arange(width, device=device, dtype=dtype)
    off = torch.as_tensor(x_offset, device=device, dtype=dtype).reshape(-1, 1)
    off = off.expand(batch, 1) if off.shape[0] == 1 else off
    xs = (x[None, :] + off + 0.5) / full_width * 2 - 1  # (B, W)
    ych = y[None, :, None].expand(batch, height, width)
    xch = xs[:, None, :].expand(batch, height, width)
    return torch.stack([ych, xch], dim=1)


def anchor_channels(anchors_map_y: torch.Tensor, height: int, width: int, scale_y: float,
                    device=None) -> torch.Tensor:
    """(B, R, H, W): per row, (y - anchor) / ANCHOR_SCALE_PX in sheet px, clipped to +-ANCHOR_CLIP.

    ``anchors_map_y`` (B, R) are the rows' baselines in map px of a map whose rows are 1/``scale_y`` sheet px.
    """
    a = torch.as_tensor(anchors_map_y, dtype=torch.float32, device=device)
    y = torch.arange(height, dtype=torch.float32, device=device)
    d = (y[None, None, :] - a[:, :, None]) / (scale_y * ANCHOR_SCALE_PX)
    return d.clamp(-ANCHOR_CLIP, ANCHOR_CLIP)[..., None].expand(*a.shape, height, width)


def normalise_image(image_u8: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float, roughly zero mean / unit spread."""
    return (image_u8.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD


class RowTraceUnet(nn.Module):
    """smp U-Net with coordinate input channels; pads to the encoder stride internally."""

    def __init__(self, n_rows: int = 4, encoder_name: str = "tu-mobilenetv4_conv_small", encoder_depth: int = 5,
                 decoder_channels: tuple | list = (64, 32, 24, 16, 8), coord_x: bool = True,
                 mask_head: bool = True, position: str = "sheet"):
        super().__init__()
        ensure_torchvision()
        import segmentation_models_pytorch as smp

        if len(decoder_channels) != encoder_depth:
            raise ValueError(f"decoder_channels {decoder_channels} must have encoder_depth={encoder_depth} entries")
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.n_rows = int(n_rows)
        self.position = position
        self.coord_x = bool(coord_x) and position == "sheet"
        self.mask_head = bool(mask_head)
        self.stride = 2**encoder_depth
        in_ch = 3 + (self.n_rows if position == "anchors" else 1 + int(self.coord_x))
        out_ch = self.n_rows * (2 if self.mask_head else 1)
        self.net = smp.Unet(encoder_name=encoder_name, encoder_depth=encoder_depth, encoder_weights=None,
                            decoder_channels=tuple(decoder_channels), in_channels=in_ch, classes=out_ch)

    def position_channels(self, batch: int, height: int, width: int, x_offset, full_width: int,
                          anchors_map_y=None, scale_y: float = 1.0, device=None) -> torch.Tensor:
        """The position input for a crop starting at map column ``x_offset`` of a ``full_width`` map: sheet
        coordinates, or (position "anchors") the rows' ``anchors_map_y`` (B, R) as distance channels."""
        if self.position == "anchors":
            if anchors_map_y is None:
                raise ValueError("this stage-1 model needs the rows' anchors (baselines)")
            return anchor_channels(anchors_map_y, height, width, scale_y, device)
        return coord_channels(batch, height, width, x_offset, full_width, device=device)

    def forward(self, image: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """``image`` (B, 3, H, W) normalised float; ``coords`` from :meth:`position_channels`.

        Returns (B, n_rows * (1 + mask_head), H, W) logits: y-logits first, then mask logits.
        """
        if self.position == "sheet" and not self.coord_x:
            coords = coords[:, :1]
        x = torch.cat([image, coords.to(image.dtype)], dim=1)
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        out = self.net(x.contiguous(memory_format=torch.channels_last))
        return out[..., :h, :w]


@MODEL_REGISTRY.register("unet_rows")
def _unet_rows(**kwargs) -> nn.Module:
    return RowTraceUnet(**kwargs)


def split_logits(out: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y_logits, mask_logits or None) from a model output."""
    y = out[:, :n_rows]
    m = out[:, n_rows : 2 * n_rows] if out.shape[1] >= 2 * n_rows else None
    return y, m


# ---------------------------------------------------------------------------------------------- losses


def gaussian_column_targets(col_y: torch.Tensor, height: int, sigma: float,
                            reach: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse target distribution over y for every column, and which columns have a trace.

    ``col_y``: (B, R, W, K) trace-centre y (map px) of the K label sub-columns inside each map column, NaN where
    no trace. The target is the mixture (over finite sub-columns) of Gaussians of width ``sigma`` integrated over
    each map pixel, so a steep stroke that crosses many pixels inside one column spreads the target over them.
    Only the ``2 * reach + 1`` pixels around each sub-column's y carry weight. Returns bins (B, R, K*(2r+1), W)
    long, weights (same shape, summing to 1 over dim 2 on valid columns) and valid (B, R, W) bool.
    """
    finite = torch.isfinite(col_y)
    inside = finite & (col_y > -0.5) & (col_y < height - 0.5)
    valid = inside.any(-1) & ~(finite & ~inside).any(-1)
    y = torch.where(finite, col_y, torch.zeros_like(col_y)).float()  # (B, R, W, K)
    d = torch.arange(-reach, reach + 1, device=col_y.device, dtype=torch.float32)
    base = torch.round(y)[..., None] + d  # (B, R, W, K, D)
    inv = 1.0 / (sigma * 2**0.5)
    yy = y[..., None]
    w = 0.5 * (torch.special.erf((base + 0.5 - yy) * inv) - torch.special.erf((base - 0.5 - yy) * inv))
    w = w * finite[..., None] * ((base >= 0) & (base <= height - 1))
    w = w / w.sum((-1, -2), keepdim=True).clamp(min=1e-12)
    bins = base.clamp(0, height - 1).long()
    b, r, wd = col_y.shape[:3]
    bins = bins.reshape(b, r, wd, -1).permute(0, 1, 3, 2).contiguous()
    w = w.reshape(b, r, wd, -1).permute(0, 1, 3, 2).contiguous()
    return bins, w, valid


def dense_targets(col_y: torch.Tensor, height: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The target of :func:`gaussian_column_targets` as a dense (B, R, H, W) distribution (for inspection)."""
    bins, w, valid = gaussian_column_targets(col_y, height, sigma)
    b, r, _, wd = bins.shape
    t = torch.zeros(b, r, height, wd, dtype=torch.float32, device=col_y.device)
    t.scatter_add_(2, bins, w)
    return t, valid


def column_mean_y(col_y: torch.Tensor) -> torch.Tensor:
    """Mean of the finite sub-column y's per column (NaN where none): the column's true trace centre."""
    finite = torch.isfinite(col_y)
    s = torch.where(finite, col_y, torch.zeros_like(col_y)).sum(-1)
    n = finite.sum(-1)
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, float("nan")))


def soft_argmax_y(logits: torch.Tensor) -> torch.Tensor:
    """(B, R, H, W) logits -> (B, R, W) expected y (map px) under the column softmax."""
    p = torch.softmax(logits.float(), dim=2)
    ys = torch.arange(logits.shape[2], device=logits.device, dtype=torch.float32)
    return (p * ys[None, None, :, None]).sum(2)


def trace_loss(out: torch.Tensor, col_y: torch.Tensor, masks: torch.Tensor | None, n_rows: int, sigma: float = 0.75,
               w_l1: float = 0.05, w_mask: float = 0.2) -> tuple[torch.Tensor, dict]:
    """Column cross-entropy against the Gaussian-mixture target + soft-argmax L1 (map px) + mask BCE.

    ``col_y`` (B, R, W, K) map-px sub-column y's; ``masks`` (B, R, H, W) float in [0, 1] or None.
    """
    y_logits, m_logits = split_logits(out, n_rows)
    y_logits = y_logits.float()
    height = y_logits.shape[2]
    bins, weights, valid = gaussian_column_targets(col_y, height, sigma)
    logp = torch.log_softmax(y_logits, dim=2)
    ce_col = -(weights * logp.gather(2, bins)).sum(2)  # (B, R, W)
    vf = valid.float()
    n_valid = vf.sum().clamp(min=1)
    ce = (ce_col * vf).sum() / n_valid
    ys = torch.arange(height, device=out.device, dtype=torch.float32)
    y_hat = (logp.exp() * ys[None, None, :, None]).sum(2)
    y_true = torch.nan_to_num(column_mean_y(col_y), nan=0.0)
    l1 = ((y_hat - y_true).abs() * vf).sum() / n_valid
    loss = ce + w_l1 * l1
    parts = {"ce": float(ce.detach()), "l1_px": float(l1.detach())}
    if m_logits is not None and masks is not None and w_mask > 0:
        bce = F.binary_cross_entropy_with_logits(m_logits.float(), masks,
                                                 pos_weight=torch.tensor(5.0, device=out.device))
        loss = loss + w_mask * bce
        parts["bce"] = float(bce.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts
