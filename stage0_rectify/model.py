"""Stage-0 keypoint network: a small U-Net on the downscaled, letterboxed photo.

Built by name from the kwargs a bundle's ``config.json`` stores (``create_model("unet_keypoints", **kwargs)``).
Input (B, 3, S, S): the image with its long side S px, padded (letterboxed) to a square. Output (B, 7, S, S):

* channels 0-3: logits of one spatial softmax each, the sheet's corners top-left, top-right, bottom-right,
  bottom-left in SHEET terms (so the page's orientation comes with them);
* channels 4-5: each pixel's sheet coordinates u = x / (W-1), v = y / (H-1) (regressed; where the pixel shows
  the sheet), a dense set of correspondences for a robust homography when a corner is hidden or cropped;
* channel 6: logit of "this pixel shows the sheet".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.registry import Registry
from common.torch_compat import ensure_torchvision

MODEL_REGISTRY = Registry("stage-0 model")
N_CORNERS = 4
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


def create_model(name: str, **kwargs) -> nn.Module:
    return MODEL_REGISTRY.create(name, **kwargs)


def normalise_image(image_u8: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float, roughly zero mean / unit spread."""
    return (image_u8.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD


class KeypointUnet(nn.Module):
    def __init__(self, encoder_name: str = "tu-mobilenetv4_conv_small", encoder_depth: int = 5,
                 decoder_channels: tuple | list = (96, 64, 32, 24, 16)):
        super().__init__()
        ensure_torchvision()
        import segmentation_models_pytorch as smp

        if len(decoder_channels) != encoder_depth:
            raise ValueError(f"decoder_channels {decoder_channels} must have encoder_depth={encoder_depth} entries")
        self.stride = 2**encoder_depth
        self.net = smp.Unet(encoder_name=encoder_name, encoder_depth=encoder_depth, encoder_weights=None,
                            decoder_channels=tuple(decoder_channels), in_channels=3, classes=N_CORNERS + 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        x = F.pad(image, (0, pw, 0, ph)) if (ph or pw) else image
        return self.net(x.contiguous(memory_format=torch.channels_last))[..., :h, :w]


@MODEL_REGISTRY.register("unet_keypoints")
def _unet_keypoints(**kwargs) -> nn.Module:
    return KeypointUnet(**kwargs)


def corner_log_probs(out: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) log of each corner's spatial softmax."""
    b, _, h, w = out.shape
    return torch.log_softmax(out[:, :N_CORNERS].float().reshape(b, N_CORNERS, h * w), dim=-1).reshape(
        b, N_CORNERS, h, w)


def gaussian_heatmaps(corners: torch.Tensor, hw: tuple[int, int], sigma: float) -> torch.Tensor:
    """(B, 4, H, W) normalised Gaussians at ``corners`` (B, 4, 2) px (zero for a corner off the canvas)."""
    h, w = hw
    ys = torch.arange(h, dtype=torch.float32, device=corners.device)
    xs = torch.arange(w, dtype=torch.float32, device=corners.device)
    gx = torch.exp(-0.5 * ((xs[None, None] - corners[..., :1]) / sigma) ** 2)  # (B, 4, W)
    gy = torch.exp(-0.5 * ((ys[None, None] - corners[..., 1:]) / sigma) ** 2)  # (B, 4, H)
    t = gy[..., :, None] * gx[..., None, :]
    return t / t.sum((-1, -2), keepdim=True).clamp(min=1e-12)


def keypoint_loss(out: torch.Tensor, corners: torch.Tensor, uv: torch.Tensor, mask: torch.Tensor,
                  sigma: float = 1.5, w_uv: float = 10.0, w_mask: float = 0.3) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of each corner's softmax against a Gaussian of ``sigma`` px (corners on the canvas only),
    plus L1 of the sheet coordinates (u, v in [0, 1]) where the pixel shows the sheet, plus the mask's BCE.

    ``corners`` (B, 4, 2) canvas px; ``uv`` (B, 2, H, W); ``mask`` (B, H, W) in {0, 1}."""
    h, w = out.shape[-2:]
    on = ((corners[..., 0] > -0.5) & (corners[..., 0] < w - 0.5) & (corners[..., 1] > -0.5)
          & (corners[..., 1] < h - 0.5)).float()  # (B, 4)
    t = gaussian_heatmaps(corners.float(), (h, w), sigma)
    ce = -(t * corner_log_probs(out)).sum((-1, -2))
    ce = (ce * on).sum() / on.sum().clamp(min=1)
    m = mask[:, None].float()
    l1 = ((out[:, N_CORNERS : N_CORNERS + 2].float() - uv).abs() * m).sum() / (2 * m.sum()).clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(out[:, N_CORNERS + 2].float(), mask.float())
    loss = ce + w_uv * l1 + w_mask * bce
    return loss, {"ce": float(ce.detach()), "uv_l1": float(l1.detach()), "bce": float(bce.detach()),
                  "loss": float(loss.detach())}
