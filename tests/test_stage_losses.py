"""The per-stage loss table: each stage fed the truth of the one before it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.chain import Pipeline
from pipeline.stage_losses import LOSSES, READINGS, stage_loss_table, stage_readings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def readings(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage_losses")
    subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "1", "--types", "0001,0003",
                    "--out", str(out), "--seed", "2"], check=True, cwd=REPO, capture_output=True)
    return stage_readings(out, Pipeline.from_bundles(REPO / "weights"), progress=False)


def test_every_image_is_read_four_ways_and_the_ideal_readings_are_near_the_cap(readings):
    assert len(readings) == 2 and set(READINGS) <= set(readings.columns)
    assert np.isfinite(readings[list(READINGS)].to_numpy()).all()
    # the labels' own trace maps with the labels' origin: only the sub-pixel reading is left to lose
    assert (10 * np.log10(readings["true_maps_origin"]) > 22.0).all(), readings


def test_the_losses_are_the_differences_of_the_readings(readings):
    table = stage_loss_table(readings)
    assert list(table["type"]) == ["all", "0001", "0003"]
    for loss, (better, worse) in LOSSES.items():
        assert np.allclose(table[f"loss_{loss}"], table[better] - table[worse])


def test_a_folder_without_labelled_maps_is_refused(tmp_path):
    subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "1", "--types", "0001",
                    "--out", str(tmp_path), "--seed", "2"], check=True, cwd=REPO, capture_output=True)
    for path in tmp_path.glob("train/*/*.map.json"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="labelled pages"):
        stage_readings(tmp_path, Pipeline.from_bundles(REPO / "weights"), progress=False)


def test_the_true_sheet_is_read_by_the_network_the_pipeline_chose_for_the_page(tmp_path):
    """A photo's true sheet must be read by the photo network the pipeline read it with, or the rectification's
    loss would hold the difference between two networks."""
    subprocess.run([sys.executable, "-m", "synth.make", "--simulated", "--n-records", "1", "--types", "0001",
                    "--out", str(tmp_path), "--seed", "2"], check=True, cwd=REPO, capture_output=True)
    pipeline = Pipeline.from_bundles(REPO / "weights")
    general = pipeline.segmenter
    read_by_chosen = []

    class Chosen:  # the network stage1_network names, wrapping the general one
        def __getattr__(self, name):
            return getattr(general, name)

        def __call__(self, rectified, *args):
            read_by_chosen.append(rectified.method)
            return general(rectified, *args)

    chosen = Chosen()
    pipeline.stage1_network = lambda page, rectified, baselines_y_px=None, timings=None, settings=None: chosen
    stage_readings(tmp_path, pipeline, progress=False)
    # once for the pipeline's own reading (its stage 0's sheet), once for the true sheet
    assert read_by_chosen.count("labels") == 1 and len(read_by_chosen) == 2, read_by_chosen
