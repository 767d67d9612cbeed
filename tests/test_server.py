"""The web page for real: ``python -m pipeline serve`` on a free local port, its API on a factory page and on every
odd input of tests/odd_inputs.py, a full queue, and the page itself driven in headless Chromium."""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from common.layouts import LEADS
from common.metric import image_snr
from pipeline.demo import SAMPLE_FS_HZ, SAMPLES
from tests.odd_inputs import ECG_PAGE, ODD_INPUTS, make_all

REPO = SAMPLES.parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `make test` installs it (never a downloaded browser)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # --headless comes with headless=True
MIN_SNR_DB = 15.0  # the committed weights read this page at ~20.9 dB (README); far below means a broken path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server with one worker and a queue of one, so a third simultaneous request finds it full."""
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "--port", str(port), "--workers", "1",
                                "--queue", "1"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                assert json.load(answer)["status"] == "ok"
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the server did not start:\n{log.read()}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.seek(0)
    assert "Traceback" not in log.read()  # no request made the server fail


def _post(url: str, data: bytes, fs: str | None = None, content_type: str = "image/png",
          query: str = "", mm_per_mv: str | None = None) -> tuple[int, bytes]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="../../etc/x.png"\r\n'
             f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"]
    for name, value in (("fs", fs), ("mm_per_mv", mm_per_mv)):
        if value is not None:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    host = url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=300)
    connection.request("POST", f"/api/digitize{query}", body,
                       {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = connection.getresponse()
    return answer.status, answer.read()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return answer.read()


def _truth() -> dict:
    frame = pd.read_csv(SAMPLES / "sample.csv")
    return {lead: frame[lead].dropna().to_numpy(np.float64) for lead in LEADS}


def _snr_db_of_csv(text: str) -> float:
    table = pd.read_csv(io.StringIO(text))
    return 10 * np.log10(image_snr(_truth(), {lead: table[lead].dropna().to_numpy() for lead in LEADS},
                                   SAMPLE_FS_HZ))


def test_digitizes_a_factory_page(server, tmp_path):
    status, body = _post(server, ECG_PAGE.read_bytes(), fs="500")
    assert status == 200, body
    result = json.loads(body)
    assert result["fs_hz"] == 500.0 and set(result["leads"]) == set(LEADS)
    assert len(result["leads"]["II"]) == 5000 and all(len(result["leads"][k]) == 1250 for k in LEADS if k != "II")
    # the classifier's time too: it chose the stage-1 network of a page its grid placed
    assert set(result["timings_s"]) == {"stage0_rectify", "source_classifier", "stage1_segment", "stage2_signal"}
    assert result["warnings"] == []  # a clean page with its grid
    csv = _get(server + result["downloads"]["csv"]).decode()
    assert _snr_db_of_csv(csv) > MIN_SNR_DB
    table = pd.read_csv(io.StringIO(csv))
    assert np.allclose(table["V1"].dropna(), result["leads"]["V1"], atol=1e-5)
    with zipfile.ZipFile(io.BytesIO(_get(server + result["downloads"]["wfdb"]))) as archive:
        archive.extractall(tmp_path)
        record = wfdb.rdrecord(str(tmp_path / result["image_id"]))
    assert record.fs == 500 and record.units == ["mV"] * 12
    assert np.nanmax(np.abs(record.p_signal - table[list(LEADS)].to_numpy())) <= 0.001
    assert _get(server + result["downloads"]["overlay"])[:8] == b"\x89PNG\r\n\x1a\n"
    status, csv_body = _post(server, ECG_PAGE.read_bytes(), query="?format=csv")  # fs defaults to 500 Hz
    assert status == 200 and _snr_db_of_csv(csv_body.decode()) > MIN_SNR_DB
    assert result["layout"]["mm_per_mv"] == 10.0  # the gain its pulses show
    status, body = _post(server, ECG_PAGE.read_bytes(), fs="500", mm_per_mv="20")  # a gain asked for
    halved = json.loads(body)
    assert status == 200 and halved["layout"]["mm_per_mv"] == 20.0
    assert np.std(halved["leads"]["II"]) == pytest.approx(0.5 * np.std(result["leads"]["II"]), rel=0.05)


def test_each_bad_file_gets_its_error_code(server, tmp_path):
    cases = [c for c in ODD_INPUTS if c.over_http and c.reason]
    paths = make_all(tmp_path, tuple(cases))
    for case in cases:
        status, body = _post(server, paths[case.name].read_bytes())
        answer = json.loads(body)
        assert (status, case.reason in answer["error"]) == (case.status, True), (case.name, status, answer)
    page = ECG_PAGE.read_bytes()
    for data, fs, content_type, status_expected, phrase in (
            (page, None, "text/plain", 415, "sent as text/plain"),
            (page, "fast", "image/png", 400, "fs must be a sampling rate"),
            (page, "20", "image/png", 400, "between 50 and 5000 Hz")):
        status, body = _post(server, data, fs, content_type)
        assert status == status_expected and phrase in json.loads(body)["error"]
    for gain in ("7", "ten"):
        status, body = _post(server, page, mm_per_mv=gain)
        assert status == 400 and "mm_per_mv must be one of 10, 5, 20" in json.loads(body)["error"]
    request = urllib.request.Request(server + "/api/digitize", b"{}", {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400 and "multipart/form-data" in json.load(refused.value)["error"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server + "/api/results/" + "0" * 32 + "/signals.csv", timeout=30)
    assert missing.value.code == 404 and "error" in json.load(missing.value)
    assert json.loads(_get(server + "/healthz"))["status"] == "ok"  # still up


def test_a_full_queue_answers_503(server):
    page = ECG_PAGE.read_bytes()
    with ThreadPoolExecutor(4) as pool:  # one runs, one waits, the others find the queue full
        statuses = sorted(status for status, _ in pool.map(lambda _: _post(server, page, fs="250"), range(4)))
    assert statuses.count(200) >= 2 and 503 in statuses, statuses
    assert set(statuses) <= {200, 503}
    assert json.loads(_get(server + "/healthz")) == {"status": "ok", "busy": 0}


def test_the_page_in_headless_chromium(server, tmp_path):
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip(f"{CHROMIUM} is missing and, not being root, `make test` could not install it "
                        "(apt-get install chromium)")
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True, viewport={"width": 1200, "height": 900})
        try:
            page = browser.new_page()
            page.goto(server + "/")
            dropped = page.evaluate("""() => {  // a file dropped on the drop zone becomes the chosen file
                const files = new DataTransfer();
                files.items.add(new File(["x"], "dropped.png", {type: "image/png"}));
                document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: files}));
                return document.getElementById("image").files[0].name;
            }""")
            assert dropped == "dropped.png"
            page.set_input_files("#image", str(ECG_PAGE))
            page.fill("#fs", "500")
            page.click("#digitize")
            page.wait_for_function("document.getElementById('leads').naturalWidth > 0 || "
                                   "document.getElementById('error').textContent !== ''", timeout=240_000)
            assert page.text_content("#error") == ""
            assert page.evaluate("document.getElementById('overlay').naturalWidth") > 0
            assert "stage1_segment" in page.text_content("#timings")
            assert "read at 10 mm/mV" in page.text_content("#status")  # the gain its pulses show
            with page.expect_download() as download:
                page.click("#download-csv")
            csv = Path(download.value.path()).read_text()
            page.set_input_files("#image", {"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"})
            page.click("#digitize")
            page.wait_for_function("document.getElementById('error').textContent !== ''")
            assert "not an image" in page.text_content("#error")
        finally:
            browser.close()
    assert _snr_db_of_csv(csv) > MIN_SNR_DB
