"""The lead names printed beside the panels, read by the committed glyph classifier."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from common.geometry import CANONICAL
from common.layouts import get_layout
from stage1_segment.layout_finder import FoundLayout, find_layout
from stage1_segment.lead_names import DEFAULT_BUNDLE, NAMES, NONE, LeadNameReader
from stage1_segment.train_names import redraw_name
from synth.render import RenderStyle, render_page
from synth.signals import enforce_einthoven, prepare, simulate_record


@pytest.fixture(scope="module")
def reader():
    torch.set_num_threads(1)
    return LeadNameReader.from_bundle()


def _page(style: RenderStyle, seed: int = 0):
    window = prepare(simulate_record(np.random.default_rng(seed)), 500)
    return render_page(enforce_einthoven(window.leads_mv), 500, "t", style)


def _starts(labels):
    layout = get_layout(labels.layout_name)
    return [(float(labels.placement.panel_x_px(p, p.t0_s)), labels.baselines_y_px[k])
            for k in range(layout.n_rows) for p in layout.row_panels(k)]


@pytest.mark.parametrize(("font", "scale", "dy_mv"), [("simplex", 1.1, 0.9), ("triplex", 0.9, 1.2),
                                                      ("duplex", 1.3, -0.65), ("complex", 1.2, 0.8)])
def test_rendered_names_are_read(reader, font, scale, dy_mv):
    # seed 1: a record whose traces keep clear of the names (one whose QRS crosses a name can lose it)
    page = _page(RenderStyle(font=font, font_scale=scale, label_dy_mv=dy_mv), seed=1)
    read = reader(page.sheet_rgb, np.array(_starts(page.labels)))
    assert read.side == ("above" if dy_mv > 0 else "below")
    assert read.names == page.labels.panel_leads
    assert min(read.confidences) > 0.5


def test_an_inverted_avr_is_read_as_such(reader):
    style = RenderStyle()
    page = _page(style, seed=1)
    sheet, labels = page.sheet_rgb.copy(), page.labels
    k = labels.panel_leads.index("aVR")
    redraw_name(sheet, labels, style, k, "-aVR")
    read = reader(sheet, np.array(_starts(labels)))
    assert read.names[k] == "-aVR"
    assert read.names[:k] + read.names[k + 1 :] == labels.panel_leads[:k] + labels.panel_leads[k + 1 :]


def test_rhythm_strips_are_named_in_the_order_printed(reader):
    style = RenderStyle(layout_name="3x4+II,V1,V5")
    page = _page(style, seed=1)
    sheet, labels = page.sheet_rgb.copy(), page.labels
    # the rhythm strips (the last three panels) printed V1, II, V5 instead of II, V1, V5
    for k, name in zip((12, 13), ("V1", "II"), strict=True):
        redraw_name(sheet, labels, style, k, name)
    found = find_layout(sheet, reader)
    # read by the names, in the order printed: the pipeline reads the strips' signals as these leads
    assert found.layout_name == "3x4+II,V1,V5/rhythm=V1,II,V5"
    assert [p.lead for p in get_layout(found.layout_name).panels if p.row >= 3] == ["V1", "II", "V5"]
    assert [r.leads for r in found.rows[3:]] == [("V1",), ("II",), ("V5",)]
    assert [r.names[0][0] for r in found.rows[3:]] == ["V1", "II", "V5"]
    assert found.rows[0].leads == ("I", "aVR", "V1", "V4")  # the rest as printed
    assert FoundLayout.from_dict(json.loads(json.dumps(found.to_dict()))) == found  # names survive the JSON


def test_two_rhythm_strips_printed_v1_over_ii_are_read_so(reader):
    """A 3x4 page with two strips, V1 over II (a real page's arrangement): five rows, found by their names in the
    order printed."""
    page = _page(RenderStyle(layout_name="3x4+II,V1/rhythm=V1,II"), seed=1)
    found = find_layout(page.sheet_rgb, reader)
    assert found.layout_name == "3x4+II,V1/rhythm=V1,II"
    assert [r.leads for r in found.rows[3:]] == [("V1",), ("II",)]


def test_a_window_of_trace_alone_is_none(reader):
    page = _page(RenderStyle(header=False))
    # 1.2 s into each first-column panel: trace and grid, no name
    starts = np.array([(x + 1.2 * CANONICAL.px_per_s, y) for x, y in _starts(page.labels)[::4]])
    probs = reader.probabilities(page.sheet_rgb, starts)
    assert (probs.argmax(axis=2) == NONE).all()
    assert probs[:, :, NONE].min() > 0.5


def test_a_bundle_without_weights_is_refused(tmp_path, reader):
    bundle = tmp_path / "names"
    bundle.mkdir()
    shutil.copy(DEFAULT_BUNDLE / "config.json", bundle / "config.json")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        LeadNameReader.from_bundle(bundle)
    shutil.copy(DEFAULT_BUNDLE / "model.safetensors", bundle / "model.safetensors")
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["classes"] = list(NAMES[:-1])
    (bundle / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="classes"):
        LeadNameReader.from_bundle(bundle)


class _MisreadNames:
    """A reader that reads the printed names surely, those of ``misread`` as another name on the row whose
    baseline is ``row_y``."""

    def __init__(self, sheet_names, misread: dict, row_y: float):
        self.sheet_names, self.misread, self.row_y = sheet_names, misread, row_y

    def probabilities(self, sheet_rgb, starts):
        probs = np.full((len(starts), 2, len(NAMES)), 1e-3)
        for i, (x, y) in enumerate(starts):
            name = min(self.sheet_names, key=lambda s: abs(s[0] - x) + abs(s[1] - y))[2]
            name = self.misread.get(name, name) if abs(y - self.row_y) < 50.0 else name  # rows are 250 px apart
            probs[i, 0, NAMES.index(name)] = 1.0
        return probs / probs.sum(axis=2, keepdims=True)


def _read_with(misread: dict, row: int) -> FoundLayout:
    page = _page(RenderStyle())
    labels = page.labels
    sheet_names = [(x, y, lead) for (x, y), lead in zip(_starts(labels), labels.panel_leads, strict=True)]
    return find_layout(page.sheet_rgb, _MisreadNames(sheet_names, misread, labels.baselines_y_px[row]))


def test_misread_names_do_not_change_the_competition_layout():
    found = _read_with({"I": "aVR", "aVR": "I"}, row=0)  # the first row's first two names swapped
    assert found.layout_name == "3x4+II"
    assert found.rows[0].leads == ("aVR", "I", "V1", "V4")  # the names as read, where read surely
    assert found.rows[3].leads == ("II",)


def test_a_name_read_surely_as_another_panels_lead_keeps_its_own():
    """V6 read surely as V5 (as a trace's spike through the 6 made /tmp/eval 10007's read): the page would have
    two V5s and no V6, so that panel keeps the layout's V6; the row's other names are read as printed."""
    found = _read_with({"V6": "V5"}, row=2)
    assert found.layout_name == "3x4+II"
    assert found.rows[2].names[3][0] == "V5"
    assert found.rows[2].leads == ("III", "aVF", "V3", "V6")
    assert [r.leads for r in found.rows[:2]] == [("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5")]


def test_names_plainly_another_layouts_overrule_a_worse_geometry(reader, monkeypatch):
    """A 6x2 page whose boundaries read like 3x4+II,V1,V5's (fits 0.72 against 0.49, as l6x2b 10015 read): the
    names read say 6x2 everywhere the two differ, and contradict the better geometry there, so 6x2 is taken."""
    from dataclasses import replace

    import stage1_segment.layout_finder as finder

    page = _page(RenderStyle(layout_name="6x2"), seed=1)
    found = find_layout(page.sheet_rgb)
    assert found.layout_name == "6x2"
    misfit = replace(found, layout_name="3x4+II,V1,V5",
                     fits={**{name: 0.0 for name in found.fits}, "3x4+II,V1,V5": 0.72, "6x2": 0.49})
    named = finder.name_panels(misfit, page.sheet_rgb, reader)
    assert named.layout_name == "6x2"
    assert [r.leads for r in named.rows] == [tuple(p.lead for p in get_layout("6x2").row_panels(k))
                                            for k in range(6)]
    # the contradiction is what does it: a geometry that fits worse never wins on agreeing names alone
    monkeypatch.setattr(finder, "NAME_CONTRADICTED", -1.0)
    assert finder.name_panels(misfit, page.sheet_rgb, reader).layout_name == "3x4+II,V1,V5"
