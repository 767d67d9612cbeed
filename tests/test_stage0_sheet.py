"""benchmarks.stage0_sheet on a factory render and a file the reader refuses: one PNG with one tile, the CSV."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from benchmarks.stage0_sheet import main
from pipeline.__main__ import DEFAULT_WEIGHTS
from synth.factory import make_page
from synth.signals import simulate_record


def test_contact_sheet_of_a_render(tmp_path):
    images, out = tmp_path / "images", tmp_path / "sheet"
    images.mkdir()
    page = make_page(simulate_record(np.random.default_rng(0)), 0, 7, ("0001",))
    cv2.imwrite(str(images / "render.png"), cv2.cvtColor(page.images["0001"].image_rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(images / "strip.png"), np.full((80, 300, 3), 255, np.uint8))  # a single-lead strip's size

    assert main(["--images", str(images), "--out", str(out), "--weights", str(DEFAULT_WEIGHTS)]) == 0

    assert [p.name for p in sorted(out.glob("*.png"))] == ["stage0_sheet_01.png"]
    picture = cv2.imread(str(out / "stage0_sheet_01.png"))
    assert picture is not None and picture.shape[0] > 400 and picture.shape[1] > 1000
    rows = {r["image"]: r for r in csv.DictReader(open(out / "stage0_sheet.csv"))}
    assert rows["strip.png"]["route"] == "refused" and "too small" in rows["strip.png"]["error"]
    render = rows["render.png"]
    assert render["route"] == "grid" and float(render["confidence"]) > 0.9
    # the grid read again on the rectified render: canonical pitch on both axes, no rotation
    assert float(render["sheet_px_per_mm_x"]) == pytest.approx(7.874, abs=0.03)
    assert float(render["sheet_px_per_mm_y"]) == pytest.approx(7.874, abs=0.03)
    assert abs(float(render["sheet_angle_deg"])) < 0.1


def test_rejects_an_empty_folder(tmp_path):
    with pytest.raises(SystemExit):
        main(["--images", str(tmp_path), "--out", str(tmp_path / "sheet")])
