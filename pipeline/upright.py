"""Half a turn undone: a photo the keypoint network put on the sheet upside down, found by what an ECG page
prints where.

The keypoint network names the page's corners from how the page looks in the photo; now and then it names them
half a turn round: the corners are found, TL is named BR, the sheet is otherwise exact, and every lead reads
about 0 dB (6 of 135 keypoint-route photos in four evaluation sets, see docs/experiments.md). The network does
not see it on the sheet it made (it calls that sheet upright either way), but it was unsure of the page's
orientation on 5 of the 6 (:data:`UNSURE_TURN`; 11 of the 126 upright pages too). The page shows it: a chart's
rows sit in its lower half on an upright sheet far more often than in its upper half, the header's text stands
above the rows (a footer below them is shorter), and calibration pulses stand on the baselines at the rows'
left ends. A keypoint-route sheet whose rows sit in its upper half is read again half a turn round, and taken
turned where the rows then sit in the lower half and either

* turned, at least :data:`MIN_PULSES` rows show a pulse where the sheet showed none (a half-turned pulse hangs
  below its baseline at the row's right end, which the finder does not take for a pulse), or
* the network was unsure of the orientation and the sheet's glyph-sized ink lies more below its rows than above
  them (a stain can break a row into glyph-sized pieces, so the text alone does not turn a page the network
  was sure of).

The turned sheet's rows are the finder's on it, or, where it reads too few there (a faint, broken trace can fit a
layout one way round and not the other), the sheet's own rows half a turn round.

Before either, a page the network was unsure of is read half a turn round with its lead names, and taken turned
where :data:`MIN_SURE_NAMES` more names then read surely: a name is text the right way up, and wherever the
rows sit. The grid routes do not turn a page and are not checked.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from common.geometry import CANONICAL
from common.types import Rectified
from stage1_segment.layout_finder import NAME_CONFIDENT, FoundLayout, FoundRow, find_layout, ink_masks, named
from stage1_segment.lead_names import LeadNameReader

MIN_ROWS = 3  # a chart of fewer rows found says too little about where it sits
MIN_PULSES = 3  # pulses found on the turned sheet, none on the sheet (turned upright factory sheets show up to 2)
UNSURE_TURN = 0.95  # the keypoint network's orientation confidence under which the header's side may turn a page
HALF = 0.5  # rows centred above this share of the sheet's height sit in its upper half
TEXT_MARGIN_PX = 60.0  # sheet px: text this far above the top row (below the bottom row) is a header (a footer)
MIN_SURE_NAMES = 3  # a page the network was unsure of turns where half a turn round this many more of its lead names
# read surely (factory photos upright: 9-10 of 13; half a turn round: 0)


def rows_centre(found: FoundLayout) -> float | None:
    """Mean baseline of the rows found as a share of the sheet's height (None with fewer than MIN_ROWS rows)."""
    if found.n_rows < MIN_ROWS:
        return None
    return float(np.mean([r.y_px for r in found.rows])) / CANONICAL.height_px


def header_side(sheet_rgb: np.ndarray, found: FoundLayout) -> float:
    """Glyph-sized ink above the top row minus that below the bottom row, as a share of both (+1: all above);
    0 without rows."""
    if not found.rows:
        return 0.0
    _, text = ink_masks(sheet_rgb)
    ys = np.nonzero(text)[0] * (sheet_rgb.shape[0] / text.shape[0])
    top, bottom = min(r.y_px for r in found.rows), max(r.y_px for r in found.rows)
    above = int((ys < top - TEXT_MARGIN_PX).sum())
    below = int((ys > bottom + TEXT_MARGIN_PX).sum())
    return (above - below) / max(above + below, 1)


def sure_names(found: FoundLayout) -> int:
    """Panels whose lead name was read surely (a printed name read the right way up)."""
    return sum(1 for row in found.rows for name, p in (row.names or ()) if name != "none" and p >= NAME_CONFIDENT)


def n_pulses(found: FoundLayout) -> int:
    return sum(r.pulse is not None for r in found.rows)


def half_turned_rows(found: FoundLayout) -> FoundLayout:
    """The rows of ``found`` where they stand on the sheet turned half a turn (their baselines only: no layout)."""
    rows = tuple(FoundRow(CANONICAL.height_px - 1 - r.y_px, (), None, None, False, ()) for r in reversed(found.rows))
    return FoundLayout(None, 0.0, rows, {}, None, None)


def turned_half(rectified: Rectified) -> Rectified:
    """The same reading half a turn round: the sheet and its map turned."""
    return replace(rectified, sheet_rgb=np.ascontiguousarray(rectified.sheet_rgb[::-1, ::-1]),
                   sheet_map=rectified.sheet_map.turned_half())


def upright(rectified: Rectified, found: FoundLayout, names: LeadNameReader | None = None,
            orientation_conf: float = 1.0) -> tuple[Rectified, FoundLayout, bool]:
    """``(rectified, found, turned)``: the keypoint route's sheet half a turn round when it looks upside down
    (see the module doc), with the layout found on it (its names read by ``names``, as :func:`find_layout`
    does), else the inputs as they are. ``orientation_conf``: the keypoint network's confidence in the
    orientation it gave the page."""
    if rectified.method != "keypoints":
        return rectified, found, False
    if names is not None and orientation_conf < UNSURE_TURN and found.n_rows >= MIN_ROWS:
        turned = turned_half(rectified)
        found_turned = find_layout(turned.sheet_rgb, names)
        if sure_names(found_turned) >= MIN_SURE_NAMES + sure_names(found):
            return turned, found_turned, True
    centre = rows_centre(found)
    if centre is None or centre >= HALF:
        return rectified, found, False
    header_below = orientation_conf < UNSURE_TURN and header_side(rectified.sheet_rgb, found) < 0
    if not header_below and n_pulses(found) > 0:
        return rectified, found, False
    turned = turned_half(rectified)
    found_turned = find_layout(turned.sheet_rgb)
    # where the finder reads too few rows on the turned sheet (a faint, broken trace fits a layout one way round and
    # not the other), the rows found stand there half a turn round
    rows_turned = found_turned if found_turned.n_rows >= MIN_ROWS else half_turned_rows(found)
    centre_turned = rows_centre(rows_turned)
    if centre_turned is None or centre_turned <= HALF:
        return rectified, found, False
    pulses_stand = n_pulses(found) == 0 and n_pulses(found_turned) >= MIN_PULSES
    if not (pulses_stand or (header_below and header_side(turned.sheet_rgb, rows_turned) > 0)):
        return rectified, found, False
    if names is not None:
        found_turned = named(found_turned, turned.sheet_rgb, names)
    return turned, found_turned, True
