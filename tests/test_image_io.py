"""The decoder on every odd input of tests/odd_inputs.py: what it reads, what it refuses and why, in bounded memory."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pipeline.image_io import ImageReadError, read_image
from tests.odd_inputs import ECG_PAGE, ODD_INPUTS, make_all

REPO = ECG_PAGE.parents[2]
DECODER_REFUSES = [c for c in ODD_INPUTS if c.reason and "no ECG" not in c.reason]  # the pipeline finds the rest


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("odd"))


def _as_nobody(path) -> subprocess.CompletedProcess:
    """read_image(path) in a process that drops root to the unprivileged uid 65534 once it has imported the
    decoder (root reads a mode-000 file; the interpreter may live where that uid cannot reach)."""
    code = ("import os, sys; from pipeline.image_io import read_image, ImageReadError\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "try:\n    read_image(sys.argv[1])\nexcept ImageReadError as err:\n    print(err)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("case", DECODER_REFUSES, ids=lambda c: c.name)
def test_refused_with_a_reason(case, odd_files):
    path = odd_files[case.name]
    if case.name == "unreadable file" and os.geteuid() == 0:
        done = _as_nobody(path)
        assert done.returncode == 0, done.stderr
        assert case.reason in done.stdout and str(path) in done.stdout
        return
    with pytest.raises(ImageReadError, match=case.reason) as refused:
        read_image(path)
    assert refused.value.http_status == case.status
    assert "Traceback" not in str(refused.value)


@pytest.mark.parametrize("case", [c for c in ODD_INPUTS if c not in DECODER_REFUSES], ids=lambda c: c.name)
def test_read_as_the_upright_page(case, odd_files):
    decoded = read_image(odd_files[case.name])
    page = cv2.cvtColor(cv2.imread(str(ECG_PAGE)), cv2.COLOR_BGR2GRAY).astype(np.float64)
    grey = cv2.cvtColor(decoded.rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape[2] == 3
    if case.warning:
        assert any(case.warning in w for w in decoded.warnings), decoded.warnings
    if "no ECG" in (case.reason or ""):
        return  # not the ECG page: the pipeline refuses it (tests/test_cli_inputs.py)
    if grey.shape != page.shape:  # decoded at a reduced scale: compare at the page's size
        assert grey.shape[1] == 10000 // 2
        grey = cv2.resize(grey, page.shape[::-1], interpolation=cv2.INTER_AREA)
    if case.name == "RGBA PNG":
        assert decoded.rgb[:, :150].min() == 255  # transparent paper is white, not black
        grey, page = grey[:, 150:], page[:, 150:]
    # the same picture, in the same orientation and brightness (a 16-bit page scaled wrongly is all white/black)
    assert np.abs(grey - page).mean() < 4.0


@pytest.mark.parametrize("name,limit_mb", [("20000x20000 PNG", 150), ("77 MP JPEG", 400)])
def test_memory_stays_bounded_on_huge_images(name, limit_mb, odd_files):
    """Peak memory (VmHWM, MB) of a process decoding the image: decoding the PNG would take 1.2 GB as RGB; the
    JPEG decoded at full size and made RGB peaks at 840 MB, at half scale at 260 MB (30 MB of it the imports)."""
    code = ("import sys\nfrom pipeline.image_io import read_image, ImageReadError\n"
            "try:\n    read_image(sys.argv[1])\nexcept ImageReadError:\n    pass\n"
            "status = open('/proc/self/status').read().splitlines()\n"
            "print(next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) // 1024)\n")
    done = subprocess.run([sys.executable, "-c", code, str(odd_files[name])], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) < limit_mb
