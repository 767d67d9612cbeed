"""Inference-only network rewriting: batch norms folded into the convolutions that feed them.

In eval mode a BatchNorm is a per-channel affine map, so a Conv2d whose output goes only into it can absorb it
(weights scaled, bias shifted). The network computes the same function to float rounding, with one layer
and one pass over its activations fewer per block: the stage-1 U-Net's forward pass went from 0.68 to 0.21 s
on 2 CPU cores under bf16 autocast (fp32: 1.44 to 1.08 s), measured on a CPU shared with a training run.
timm's ``BatchNormAct2d`` (norm, dropout, activation in one module) keeps its dropout and activation.

    net = fuse_conv_bn(net)   # a torch.fx GraphModule; the argument is left untouched
"""

from __future__ import annotations

import copy

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class _NormLeafTracer(fx.Tracer):
    """Keeps every BatchNorm2d (and subclasses such as timm's BatchNormAct2d) as one call, so it can be matched
    with the convolution before it."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.BatchNorm2d) or super().is_leaf_module(m, module_qualified_name)


def _after_norm(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What is left of ``bn`` once its normalisation is folded away, or None when it is not a norm we know."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "drop") and hasattr(bn, "act"):
        return nn.Sequential(bn.drop, bn.act)
    return None


def fuse_conv_bn(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (put in eval mode) with every BatchNorm2d that alone consumes a Conv2d's output folded into
    that convolution. Raises ValueError when ``net`` cannot be traced by torch.fx."""
    net = copy.deepcopy(net).eval()
    try:
        graph = _NormLeafTracer().trace(net)
    except Exception as exc:  # fx reports untraceable control flow with assorted exception types
        raise ValueError(f"cannot trace {type(net).__name__} to fold its batch norms: {exc}") from exc
    gm = fx.GraphModule(net, graph)
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and type(modules[src.target]) is nn.Conv2d):
            continue
        bn = modules[node.target]
        rest = _after_norm(bn)
        if rest is None or not bn.track_running_stats or bn.running_mean is None:
            continue
        _set_module(gm, src.target, fuse_conv_bn_eval(modules[src.target], bn))
        if isinstance(rest, nn.Identity):
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
        else:
            _set_module(gm, node.target, rest)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()


def _set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
