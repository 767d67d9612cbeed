"""Time axes ruled under the rows, found on the sheet and erased before the trace maps are read.

Plotting programs (and some printers) rule a thin line under each panel or row, with ticks on it every second.
Stage 1 was trained on pages without them, and where a QRS stroke comes near such a line it follows the line
instead of the stroke. The lines are found the way :mod:`stage1_segment.anchors` tells a grid line from a trace:
a straight horizontal run of ink longer than any flat stretch of trace (:data:`RULED_MIN_S` of chart), here also
thin (nothing inked 2-3 px above or below it at half resolution, so it is no thicker than a stroke; breaks of
:data:`BRIDGE_PX`, where a QRS complex crosses it, are bridged) and more than :data:`EDGE_PX` inside the sheet (a
scan's or a warp's dark border is no axis). Its ink is then painted over from its surroundings (OpenCV's
inpainting over its rows and one more either side), which also closes a stroke that crossed it. The ticks are
left: short and apart from the trace, they do not pull the maps.

A candidate is no axis where the rest of the ink carries on at its height beyond its ends (its own line followed
first, across QRS strokes and pulses): it is then a flat stretch of a row's trace (a flat lead, or a low one
whose small QRS blips the bridging joins; :func:`_is_trace_line`). A lead flat over its whole row (a 12x1 or
rhythm row) is still taken for an axis.

Grid lines as dark as the traces are no axes: the ink mask is :func:`stage1_segment.layout_finder.ink_masks`',
which has taken out straight runs that repeat one grid pitch away, and frame lines longer than any row; a bold
grid line of a scan or photo whose fainter neighbours the mask lost is told by rows about as dark one 1 mm or
5 mm pitch away along it (:func:`_is_grid_line`). On the real images (``../shared/data/real_images``) that leaves
one line found, on two pages: a bracket in the footer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.geometry import CANONICAL
from stage1_segment.layout_finder import EDGE_PX, ink_masks

_REDUCE = 2  # ink_masks' resolution: 1 px there = 2 sheet px
RULED_MIN_S = 1.5  # s of chart (38 mm): a thin straight run this long is ruled, not a flat stretch of trace
# (the longest such run of trace on our factory, ECG-Image-Kit and other-renderer sets: 1.43 s, on a wrinkled
# ECG-Image-Kit page; anchors.py's LINE_RUN_PX makes the same call)
BRIDGE_PX = 24.0  # sheet px (0.12 s): breaks this short in the run (a QRS complex crossing it) are bridged ...
THIN_SHARE = 0.5  # ... as long as the run is thin in at least this share of its columns (an axis 4 mm under
# its row, the trace's S waves beside it: 0.59-0.68)
MAX_HEIGHT = 3  # half-res px: the run's ink is at most this many rows high (a 1-4 px sheet line)
ERASE_HALF_PX = 1  # sheet px: the band painted over reaches this far above and below the run's rows (its anti-aliasing)
INPAINT_RADIUS_PX = 3
CONTINUE_S = 1.0  # s of chart: a candidate is a flat stretch of trace where the ink goes on at its height ...
CONTINUE_SHARE = 0.3  # ... over this share of the columns this far beyond either end (a trace keeps near its
# baseline most of the time; an axis has paper beyond its ends)
GRID_LIKE = 0.5  # a line with rows this dark one grid pitch away is a grid line (see _is_grid_line) ...
GRID_SEARCH_PX = 2  # ... looked for this far either side of the pitch (sheet px)


@dataclass(frozen=True)
class RuledLine:
    """A ruled line on the sheet: its ink's rows [y0_px, y1_px] and columns [x0_px, x1_px], sheet px."""

    y0_px: int
    y1_px: int
    x0_px: int
    x1_px: int


def _thin_ink(ink: np.ndarray) -> np.ndarray:
    """Ink with nothing inked 2 and 3 px above and below it (half res): a line no thicker than a stroke."""
    inked = ink.astype(bool)
    above, below = np.zeros_like(inked), np.zeros_like(inked)
    above[3:] = inked[1:-2] | inked[:-3]
    below[:-3] = inked[2:-1] | inked[3:]
    return (inked & ~above & ~below).astype(np.uint8)


def find_ruled_lines(sheet_rgb: np.ndarray) -> list[RuledLine]:
    """The ruled lines of a rectified sheet (see the module doc), top to bottom."""
    ink, _ = ink_masks(sheet_rgb)
    thin = _thin_ink(ink)
    bridge = int(round(BRIDGE_PX / _REDUCE)) | 1
    joined = cv2.morphologyEx(thin, cv2.MORPH_CLOSE, np.ones((1, bridge), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    min_len = RULED_MIN_S * CANONICAL.px_per_s / _REDUCE
    edge = EDGE_PX / _REDUCE
    found = []
    for k in range(1, n):
        x, y, w, h, _ = stats[k]
        if w < min_len or h > MAX_HEIGHT or y < edge or y + h > ink.shape[0] - edge:
            continue
        piece = labels[y : y + h, x : x + w] == k
        if (piece & (thin[y : y + h, x : x + w] > 0)).any(axis=0).mean() >= THIN_SHARE:
            found.append((int(x), int(y), int(w), int(h)))
    if not found:
        return []
    rest = ink.copy()  # the ink without the candidates: the traces they would serve as axes
    for x, y, w, h in found:
        rest[max(y - 1, 0) : y + h + 1, x : x + w] = 0
    bright = np.max(sheet_rgb, axis=2)
    lines = []
    for x, y, w, h in found:
        line = RuledLine(y * _REDUCE, (y + h) * _REDUCE - 1, x * _REDUCE, (x + w) * _REDUCE - 1)
        if not _is_trace_line(ink, rest, x, y, w, h, bridge) and not _is_grid_line(bright, line):
            lines.append(line)
    return sorted(lines, key=lambda r: (r.y0_px, r.x0_px))


def _is_trace_line(ink: np.ndarray, rest: np.ndarray, x: int, y: int, w: int, h: int, bridge: int) -> bool:
    """Whether a candidate (half-res box) is a flat stretch of a row's trace. Its ink is first followed along its
    own rows beyond its ends, across breaks of up to ``bridge`` (an axis goes on, crossed by a pulse or a QRS
    near its end, where it is not thin); beyond that, a trace goes on near its height: the rest of the ink (the
    other candidates taken out) within 2 px of it over CONTINUE_SHARE of the columns up to CONTINUE_S either
    side. An axis ends with its panel or row, where nothing at its height goes on."""
    along = ink[y : y + h].any(axis=0)
    x0, x1 = x, x + w  # [x0, x1)
    while x0 > 0 and along[max(x0 - bridge, 0) : x0].any():
        x0 -= 1
    while x1 < along.size and along[x1 : x1 + bridge].any():
        x1 += 1
    span = int(round(CONTINUE_S * CANONICAL.px_per_s / _REDUCE))
    rows = rest[max(y - 2, 0) : y + h + 2]
    beyond = np.concatenate([rows[:, max(x0 - span, 0) : x0].any(axis=0), rows[:, x1 : x1 + span].any(axis=0)])
    return bool(beyond.size) and float(beyond.mean()) >= CONTINUE_SHARE


def _darkness_rows(bright: np.ndarray, line: RuledLine, y0: int, y1: int) -> np.ndarray:
    """Per sheet row in [y0, y1): how much darker than the paper the row is along most of the line's columns
    (the median over them, so a trace crossing it does not count)."""
    cols = slice(line.x0_px, line.x1_px + 1, 2)
    band = bright[max(y0, 0) : min(y1, bright.shape[0]), cols].astype(np.float32)
    paper = float(np.percentile(band, 90)) if band.size else 0.0
    return paper - np.median(band, axis=1) if band.size else np.zeros(0, np.float32)


def _is_grid_line(bright: np.ndarray, line: RuledLine) -> bool:
    """Whether the line is one of the grid's: rows about as dark (GRID_LIKE of it) lie one 1 mm or 5 mm pitch
    above or below it along the same columns (a dark grid line the ink mask kept, its neighbours drawn fainter
    or broken); an axis has paper or a fainter grid line there."""
    big = CANONICAL.big_box_mm * CANONICAL.px_per_mm
    reach = int(np.ceil(big)) + GRID_SEARCH_PX + 2
    top = line.y0_px - reach
    rows = _darkness_rows(bright, line, top, line.y1_px + reach + 1)
    own = float(rows[line.y0_px - max(top, 0) : line.y1_px + 1 - max(top, 0)].max(initial=0.0))
    if own <= 0:
        return True
    for pitch in (CANONICAL.small_box_mm * CANONICAL.px_per_mm, big):
        for side in (-1, 1):
            c = int(round((line.y0_px + line.y1_px) / 2 + side * pitch)) - max(top, 0)
            near = rows[max(c - GRID_SEARCH_PX, 0) : c + GRID_SEARCH_PX + 1]
            if near.size and float(near.max()) >= GRID_LIKE * own:
                return True
    return False


def erase_ruled_lines(sheet_rgb: np.ndarray, lines: list[RuledLine]) -> np.ndarray:
    """A copy of the sheet with each line's band painted over from its surroundings (the input is not changed)."""
    out = np.array(sheet_rgb, copy=True)
    h, w = out.shape[:2]
    pad = ERASE_HALF_PX + 2 * INPAINT_RADIUS_PX
    for line in lines:
        y0, y1 = max(line.y0_px - pad, 0), min(line.y1_px + pad + 1, h)
        x0, x1 = max(line.x0_px - pad, 0), min(line.x1_px + pad + 1, w)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        mask[max(line.y0_px - ERASE_HALF_PX - y0, 0) : line.y1_px + ERASE_HALF_PX + 1 - y0,
             max(line.x0_px - 1 - x0, 0) : line.x1_px + 2 - x0] = 255
        crop = np.ascontiguousarray(out[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = cv2.inpaint(crop, mask, INPAINT_RADIUS_PX, cv2.INPAINT_TELEA)
    return out


def without_ruled_lines(sheet_rgb: np.ndarray) -> np.ndarray:
    """The sheet as stage 1 and the layout finder read it: its ruled lines erased (the sheet itself where it has
    none)."""
    lines = find_ruled_lines(sheet_rgb)
    return erase_ruled_lines(sheet_rgb, lines) if lines else sheet_rgb
