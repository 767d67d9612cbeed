"""Batch norms folded into convolutions (common.fusion): the same function, no norm left in the graph."""

import pytest
import torch
from torch import nn

from common.fusion import fuse_conv_bn
from common.torch_compat import ensure_torchvision


def randomise_batch_norms(net: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from a fresh norm's identity, so folding them is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(0.2 + torch.rand(n, generator=g) * 3)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return net.eval()


def _norms_called(gm: torch.fx.GraphModule) -> int:
    return sum(node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.BatchNorm2d)
               for node in gm.graph.nodes)


def test_sequential_conv_norm_relu_folds_to_the_same_function():
    torch.manual_seed(0)
    net = randomise_batch_norms(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                              nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4)))
    fused = fuse_conv_bn(net)
    x = torch.randn(2, 3, 17, 23)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-5)
    assert _norms_called(fused) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2  # the argument is left as it was


def test_norm_fed_by_something_else_or_shared_output_is_kept():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn_shared = nn.BatchNorm2d(3)
            self.bn_after_add = nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn_shared(y) + y, self.bn_after_add(x + 1)  # the conv's output is used twice

    net = randomise_batch_norms(Branchy())
    fused = fuse_conv_bn(net)
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        for a, b in zip(fused(x), net(x), strict=True):
            torch.testing.assert_close(a, b)
    assert _norms_called(fused) == 2


def test_timm_encoder_norm_act_keeps_its_activation():
    ensure_torchvision()
    import segmentation_models_pytorch as smp

    torch.manual_seed(1)
    net = randomise_batch_norms(smp.Unet(encoder_name="tu-mobilenetv4_conv_small", encoder_depth=3,
                                         encoder_weights=None, decoder_channels=(16, 8, 8), in_channels=3, classes=2))
    assert any(type(m).__name__ == "BatchNormAct2d" for m in net.modules())
    fused = fuse_conv_bn(net)
    assert _norms_called(fused) == 0
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-3, atol=1e-4)


def test_untraceable_network_is_refused_clearly():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match="cannot trace DataDependent"):
        fuse_conv_bn(DataDependent())
