"""The upload web page and its API (FastAPI on uvicorn); the pipeline is loaded once and shared by the workers.

    GET  /                    the page: pick or drop an image, choose fs and gain, Digitize; see and download the result
    POST /api/digitize        multipart ``image`` (+ optional ``fs``, Hz, and ``mm_per_mv``: the chart's gain, 5, 10
                              or 20; default the gain its calibration pulses show): the result as JSON, or
                              ``?format=csv``
    GET  /api/results/{id}/…  signals.csv, signals.json, record.zip (WFDB), overlay.png, leads.png of a recent result
    GET  /healthz

Errors are JSON ``{"error": "..."}``: 400 (not an image, unreadable, no ECG found, bad request), 413 (over
30 MiB or over 60 MP), 415 (a type we do not read), 404 (unknown or expired result), 503 (every worker busy and
the queue full). Uploads are held in memory or in an anonymous temporary file (never a path built from the
client's file name), closed (and so removed) when the request ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from common.geometry import GAINS_MM_PER_MV
from common.types import Page
from pipeline.chain import Pipeline
from pipeline.image_io import MAX_FILE_BYTES, ImageReadError, decode_image
from pipeline.outputs import (
    Digitized,
    csv_text,
    digitized_page,
    leads_png,
    overlay_png,
    result_json,
    signal_polylines,
    wfdb_zip,
)

log = logging.getLogger("pipeline.server")

PAGE = Path(__file__).resolve().parent / "web" / "index.html"
DEFAULT_FS_HZ = 500.0
KEPT_RESULTS = 32  # recent results kept for their download links (~1-3 MB each, most of it the two pictures)
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the fs field on top of the file itself
DRAIN_LIMIT_BYTES = 4 * MAX_FILE_BYTES  # a too-large upload up to this is read (not kept) before the 413; beyond
# it the connection is closed on the sender
ACCEPTED_UPLOAD_TYPES = ("image/", "application/octet-stream")  # declared types we look into; others get 415
RESULT_ID = re.compile(r"^[0-9a-f]{32}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Stored:
    digitized: Digitized
    overlay_png: bytes | None
    leads_png: bytes | None


def _downloads(image_id: str) -> dict:
    base = f"/api/results/{image_id}"
    return {"csv": f"{base}/signals.csv", "wfdb": f"{base}/record.zip", "json": f"{base}/signals.json",
            "overlay": f"{base}/overlay.png", "leads": f"{base}/leads.png"}


class Digitizer:
    """The shared pipeline behind a bounded queue: ``workers`` pages at once, ``queue`` more waiting."""

    def __init__(self, pipeline: Pipeline, workers: int, queue: int):
        self.pipeline = pipeline
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="digitize")
        self.capacity = workers + queue
        self.admitted = 0  # requests running or waiting (changed on the event loop only)
        self.results: OrderedDict[str, Stored] = OrderedDict()

    async def __call__(self, data: bytes, fs_hz: float, mm_per_mv: float | None = None) -> tuple[str, Stored]:
        if self.admitted >= self.capacity:
            raise ApiError(503, "the server is busy (every worker occupied and the queue full): try again shortly")
        self.admitted += 1
        try:
            stored = await asyncio.get_running_loop().run_in_executor(self.executor, self._digitize, data, fs_hz,
                                                                      mm_per_mv)
        finally:
            self.admitted -= 1
        image_id = stored.digitized.image_id
        self.results[image_id] = stored
        while len(self.results) > KEPT_RESULTS:
            self.results.popitem(last=False)
        return image_id, stored

    def _digitize(self, data: bytes, fs_hz: float, mm_per_mv: float | None = None) -> Stored:
        """Decode, digitize and draw one upload (in a worker thread); ``mm_per_mv``: the gain asked for."""
        image_id = uuid.uuid4().hex
        decoded = decode_image(data)
        pipeline = self.pipeline if mm_per_mv is None else replace(self.pipeline, mm_per_mv=mm_per_mv)
        result = pipeline.digitize(Page(image_id, decoded.rgb, fs_hz))  # each lead as its layout prints it
        if result.refused:
            raise ApiError(400, result.error)
        digitized = digitized_page(image_id, fs_hz, result.signals.leads_mv,
                                   decoded.warnings + tuple(result.warnings), result.timings_s, result.layout)
        if result.failed:
            return Stored(digitized, None, None)
        lines = signal_polylines(digitized, result.rectified, result.extraction)
        return Stored(digitized, overlay_png(decoded.rgb, lines), leads_png(digitized))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_upload(request: Request) -> tuple[bytes, float, float | None]:
    """The uploaded file's bytes, the fs and the gain asked for (None: the pulses'), each checked."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FILE_BYTES + FORM_OVERHEAD_BYTES:
        if int(declared) <= DRAIN_LIMIT_BYTES:  # read and drop it, so a client still sending hears the answer
            async for _chunk in request.stream():
                pass
        raise ApiError(413, f"the upload is {int(declared) / 2**20:.1f} MiB; the limit is "
                            f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the image as multipart/form-data, in the field 'image'")
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "no file: send the image in the multipart field 'image'")
        declared_type = (upload.content_type or "").lower()
        if declared_type and not declared_type.startswith(ACCEPTED_UPLOAD_TYPES):
            raise ApiError(415, f"the file was sent as {declared_type}: send a PNG, JPEG, TIFF, BMP or WebP image")
        data = await upload.read(MAX_FILE_BYTES + 1)
        fs_text = form.get("fs") or str(DEFAULT_FS_HZ)
        gain_text = form.get("mm_per_mv") or ""
    if len(data) > MAX_FILE_BYTES:
        raise ApiError(413, f"the file is over {MAX_FILE_BYTES / 2**20:.0f} MiB; the limit is "
                            f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        fs_hz = float(fs_text)
    except (TypeError, ValueError):
        raise ApiError(400, f"fs must be a sampling rate in Hz, got {fs_text!r}") from None
    if not 50.0 <= fs_hz <= 5000.0:  # Page's range (common/types.py)
        raise ApiError(400, f"fs must be between 50 and 5000 Hz, got {fs_hz:g}")
    if gain_text in ("", "auto"):
        return data, fs_hz, None
    try:
        mm_per_mv = float(gain_text)
    except (TypeError, ValueError):
        mm_per_mv = None
    if mm_per_mv not in GAINS_MM_PER_MV:
        raise ApiError(400, f"mm_per_mv must be one of {', '.join(f'{g:g}' for g in GAINS_MM_PER_MV)} (or left out: "
                            f"the gain the calibration pulses show), got {gain_text!r}")
    return data, fs_hz, mm_per_mv


def create_app(pipeline: Pipeline, workers: int = 1, queue: int = 8) -> FastAPI:
    app = FastAPI(title="ECG digitizer", docs_url=None, redoc_url=None, openapi_url=None)
    digitizer = Digitizer(pipeline, workers, queue)
    page_html = PAGE.read_text(encoding="utf-8")

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(ImageReadError)
    async def image_error(_request: Request, err: ImageReadError) -> JSONResponse:
        return _error(err.http_status, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(400, "; ".join(str(e.get("msg", e)) for e in err.errors()))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, err: Exception) -> JSONResponse:
        log.exception("request failed")  # the traceback stays in the server's log
        return _error(500, f"internal error ({type(err).__name__}); the server is still up")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "busy": digitizer.admitted}

    @app.post("/api/digitize")
    async def digitize(request: Request, format: str = "json") -> Response:
        if format not in ("json", "csv"):
            raise ApiError(400, f"format must be json or csv, got {format!r}")
        data, fs_hz, mm_per_mv = await _read_upload(request)
        image_id, stored = await digitizer(data, fs_hz, mm_per_mv)
        if format == "csv":
            return Response(csv_text(stored.digitized), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{image_id}.csv"'})
        body = result_json(stored.digitized)
        body["downloads"] = _downloads(image_id) if stored.overlay_png else \
            {k: v for k, v in _downloads(image_id).items() if k in ("csv", "wfdb", "json")}
        return JSONResponse(body)

    @app.get("/api/results/{image_id}/{name}")
    async def result_file(image_id: str, name: str) -> Response:
        stored = digitizer.results.get(image_id) if RESULT_ID.match(image_id) else None
        if stored is None:
            raise ApiError(404, "no such result (results are kept for the last few uploads only)")
        attachment = {"Content-Disposition": f'attachment; filename="{image_id}-{name}"'}
        if name == "signals.csv":
            return Response(csv_text(stored.digitized), media_type="text/csv", headers=attachment)
        if name == "signals.json":
            return JSONResponse(result_json(stored.digitized), headers=attachment)
        if name == "record.zip":
            return Response(wfdb_zip(stored.digitized), media_type="application/zip", headers=attachment)
        picture = {"overlay.png": stored.overlay_png, "leads.png": stored.leads_png}.get(name)
        if picture is None:
            raise ApiError(404, f"no file {name!r} for this result")
        return Response(picture, media_type="image/png")

    return app


def serve(host: str, port: int, weights_dir: Path, workers: int = 1, queue: int = 8, device: str = "cpu") -> None:
    import torch
    import uvicorn

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))  # the workers share the cores
    pipeline = Pipeline.from_bundles(weights_dir, device)
    log.info("pipeline loaded from %s; serving on http://%s:%d/", weights_dir, host, port)
    uvicorn.run(create_app(pipeline, workers, queue), host=host, port=port, log_level="info")
