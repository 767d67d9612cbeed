"""The lead names printed beside each panel, read from the page by a small glyph CNN.

A panel's name stands near its start, above the baseline (our factory, most printers) or below it
(ECG-Image-Kit). Measured on the renderers' label boxes (sheet px, from the panel's start x and the row's 0 mV
line): the factory's names span x +4..+164 and y -142..-39 (above), or +11..+59 with its ECG-Image-Kit look;
ECG-Image-Kit's span x -1..+61 and y +32..+69 (80 pages of /work/pool/eik_train and /tmp/eikA). So two windows
per panel, :data:`WINDOW_X_PX` wide, one above and one below the baseline (:data:`ABOVE_Y_PX`,
:data:`BELOW_Y_PX`), each read on its own into :data:`NAMES` (the 12 leads, Cabrera's "-aVR" and "none").

A page prints all its names on one side, so the side is chosen per page (the one whose windows hold more
name); a window on the other side can hold the next row's name (rows 20-30 mm apart), which that choice
keeps out.

The crop is the sheet's brightest channel (a coloured grid stays bright, black or grey text stays dark) at the sheet's
resolution (:data:`CROP_REDUCE`: the factory's smallest names, 8 px tall, lose II from III and V4 from V6 at half
resolution), its darkness scaled by the crop's own paper and darkest ink.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from common.layouts import LEADS
from common.weights import load_model_bundle

NAMES: tuple[str, ...] = (*LEADS, "-aVR", "none")
NONE = NAMES.index("none")
WINDOW_X_PX = (-16, 176)  # sheet px from the panel's start: the widest name ("-aVR", 134 px) 30 px in, and 16 px
# of slack for a start found up to 2 mm early
ABOVE_Y_PX = (-152, -8)  # sheet px from the baseline (up: negative): names 0.5-1.4 mV above, 32 px tall, +-8 px
BELOW_Y_PX = (8, 152)  # the same distance below it
CROP_REDUCE = 1  # the crops are read at the sheet's resolution: 144 x 192 px
CROP_HW = ((ABOVE_Y_PX[1] - ABOVE_Y_PX[0]) // CROP_REDUCE, (WINDOW_X_PX[1] - WINDOW_X_PX[0]) // CROP_REDUCE)
PAPER_PERCENTILE = 75.0  # a crop's paper level: most of a crop is paper (a grid's lines and a trace are less)
MIN_CONTRAST = 48.0  # grey levels: a crop's darkness is scaled by at least this (a crop of paper alone stays pale)
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "weights" / "lead_names"


def bright_channel(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8: the brightest of the three channels."""
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    return cv2.max(cv2.max(r, g), b)


def window_boxes(x_start: float, y_base: float) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Sheet px (x0, y0, x1, y1) of the windows above and below a panel's start."""
    x0 = int(round(x_start)) + WINDOW_X_PX[0]
    y = int(round(y_base))
    return ((x0, y + ABOVE_Y_PX[0], x0 + WINDOW_X_PX[1] - WINDOW_X_PX[0], y + ABOVE_Y_PX[1]),
            (x0, y + BELOW_Y_PX[0], x0 + WINDOW_X_PX[1] - WINDOW_X_PX[0], y + BELOW_Y_PX[1]))


def cut(bright: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box of a bright-channel sheet at sheet resolution, padded with white beyond the sheet."""
    x0, y0, x1, y1 = box
    h, w = bright.shape
    out = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = bright[sy0:sy1, sx0:sx1]
    return out


def normalise(crop: np.ndarray) -> np.ndarray:
    """A sheet-resolution window -> (CROP_HW) uint8 darkness, 0 paper .. 255 the crop's darkest ink."""
    small = crop if crop.shape == CROP_HW else cv2.resize(crop, (CROP_HW[1], CROP_HW[0]), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    paper = float(np.percentile(small, PAPER_PERCENTILE))
    scale = max(paper - float(small.min()), MIN_CONTRAST)
    return np.clip((paper - small) * (255.0 / scale), 0, 255).astype(np.uint8)


class NameNet(nn.Module):
    """A 4x4 conv of stride 2 (it sees every px of the full-resolution crop at a third of the time of a 3x3 at
    full size: 45 against 150 ms for a page's 26 crops on one busy thread), then 3x3 conv blocks (batch norm,
    ReLU), each but the last halving the crop, then a global max over the crop (a name may stand anywhere in its
    window) and a linear layer to the classes."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 48, 64, 96), n_classes: int = len(NAMES),
                 dropout: float = 0.2):
        super().__init__()
        layers = [nn.Conv2d(1, widths[0], 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                  nn.ReLU(inplace=True)]
        c_in = widths[0]
        for k, c in enumerate(widths[1:], start=1):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if k < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) darkness in [0, 1] -> (N, classes) logits."""
        return self.head(self.drop(torch.amax(self.features(x), dim=(2, 3))))


def create_model(name: str, **kwargs) -> nn.Module:
    if name != "name_cnn":
        raise ValueError(f"unknown lead-name model {name!r}")
    return NameNet(**kwargs)


@dataclass(frozen=True)
class PanelNames:
    """Per panel (in the order asked): the name read, its probability, every class's probability
    (:data:`NAMES` order) and the side of the baseline the page's names were read on."""

    names: tuple[str, ...]
    confidences: tuple[float, ...]
    probs: np.ndarray  # (n_panels, len(NAMES))
    side: str  # "above" or "below"


class LeadNameReader:
    """The committed glyph classifier: ``reader(sheet_rgb, starts)`` reads the names at panel starts."""

    def __init__(self, model: nn.Module, config: dict):
        # channels-last: the same logits (to 2e-6) in 38 against 53 ms for a page's 26 crops on one thread
        # (its max-pools and 3x3 convs run faster so on the CPU)
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.config = config

    @classmethod
    def from_bundle(cls, path: str | Path = DEFAULT_BUNDLE) -> LeadNameReader:
        """Load a bundle written by :mod:`stage1_segment.train_names`; FileNotFoundError when a file is missing,
        ValueError when it was made for other classes or windows (never a random network)."""
        model, cfg = load_model_bundle(path, "lead-name", ("model_name", "model_kwargs", "classes", "window"),
                                       create_model, _check_config)
        return cls(model, cfg)

    def probabilities(self, sheet_rgb: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(n, 2, len(NAMES)): per (x_start, y_baseline) sheet px, the class probabilities of the windows above
        (0) and below (1)."""
        starts = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
        if starts.size == 0:
            return np.zeros((0, 2, len(NAMES)), np.float32)
        bright = bright_channel(sheet_rgb)
        crops = [normalise(cut(bright, box)) for x, y in starts for box in window_boxes(x, y)]
        batch = torch.from_numpy(np.stack(crops)[:, None].astype(np.float32) / 255.0).contiguous(
            memory_format=torch.channels_last)
        with torch.inference_mode():
            probs = torch.softmax(self.model(batch), dim=1).numpy()
        return probs.reshape(len(starts), 2, len(NAMES))

    def __call__(self, sheet_rgb: np.ndarray, starts: np.ndarray) -> PanelNames:
        """The names at the panel starts, all read on the page's side: the one whose windows hold more name
        (the sum of 1 - P(none))."""
        probs = self.probabilities(sheet_rgb, starts)
        side = int(np.argmax((1.0 - probs[:, :, NONE]).sum(axis=0))) if len(probs) else 0
        chosen = probs[:, side]
        best = chosen.argmax(axis=1)
        return PanelNames(tuple(NAMES[i] for i in best), tuple(float(chosen[k, i]) for k, i in enumerate(best)),
                          chosen, ("above", "below")[side])


def window_config() -> dict:
    """The crop geometry a bundle was trained on (checked when it is loaded)."""
    return {"x_px": list(WINDOW_X_PX), "above_y_px": list(ABOVE_Y_PX), "below_y_px": list(BELOW_Y_PX),
            "reduce": CROP_REDUCE, "paper_percentile": PAPER_PERCENTILE, "min_contrast": MIN_CONTRAST}


def _check_config(cfg: dict, cfg_path: Path) -> None:
    if tuple(cfg["classes"]) != NAMES:
        raise ValueError(f"{cfg_path}: classes {cfg['classes']} are not {list(NAMES)}")
    if cfg["window"] != window_config():
        raise ValueError(f"{cfg_path}: trained on windows {cfg['window']}, this code cuts {window_config()}")
