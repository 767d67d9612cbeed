"""The source classifier's network: a timm EfficientNet built by name, nine outputs (the image types).

``create_model("timm_classifier", timm_name="tinynet_c", in_chans=4, num_classes=9)``: the name and kwargs
are what a bundle's ``config.json`` stores, so a bundle rebuilds exactly the network it was trained as.
Weights always start random (``pretrained=False``: nothing is downloaded); the bundle's weights replace them.
"""

from __future__ import annotations

import torch
from torch import nn

from common.registry import Registry
from common.torch_compat import ensure_torchvision

MODEL_REGISTRY = Registry("source-classifier model")

# EfficientNet family members, b0 or smaller (timm names); the tinynets are b0's blocks scaled narrower and
# shallower (tinynet_c: 0.54x width, 0.85x depth, 1.2 M parameters; b0: 4.0 M)
EFFICIENTNETS = ("efficientnet_b0", "tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e")

# uint8 input -> roughly zero mean, unit spread (the same for the RGB and the high-pass channel)
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model from its kwargs (as stored in a bundle's config)."""
    return MODEL_REGISTRY.create(name, **kwargs)


def normalise_input(x_u8: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 -> float network input."""
    return (x_u8.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD


@MODEL_REGISTRY.register("timm_classifier")
def _timm_classifier(timm_name: str = "tinynet_c", in_chans: int = 4, num_classes: int = 9,
                     drop_rate: float = 0.2, global_pool: str = "avg") -> nn.Module:
    """``global_pool`` "avgmax" (timm: the mean of average and max pooling) lets one strong local feature (a mold
    colony, a stain) decide, where the plain average dilutes it over the page; it adds no weights."""
    if timm_name not in EFFICIENTNETS:
        raise ValueError(f"timm_name must be an EfficientNet of b0 size or smaller {EFFICIENTNETS}, got {timm_name!r}")
    ensure_torchvision()
    import timm

    return timm.create_model(timm_name, pretrained=False, in_chans=int(in_chans), num_classes=int(num_classes),
                             drop_rate=float(drop_rate), global_pool=global_pool)
