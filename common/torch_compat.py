"""Import torchvision (and so timm / segmentation-models-pytorch) on the CPU-only torch build.

The pinned torchvision wheel is built against a torch that ships its C++ operators; on the CPU build of
torch 2.13.0 that lies on disk its ``_meta_registrations`` fail with "operator torchvision::nms does not
exist". Declaring the two operator schemas first lets the pure-Python parts import; we never call nms.
"""

from __future__ import annotations

import importlib

_PATCHED = False


def ensure_torchvision() -> None:
    """Make ``import torchvision`` work; call before importing timm or segmentation_models_pytorch."""
    global _PATCHED
    if _PATCHED:
        return
    try:
        importlib.import_module("torchvision")
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        import sys

        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        # Keep the library object alive for the process: dropping it would unregister the schemas.
        globals()["_TORCHVISION_SCHEMAS"] = lib
        importlib.import_module("torchvision")
    _PATCHED = True
