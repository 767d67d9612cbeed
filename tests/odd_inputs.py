"""The odd input files the digitizer must survive, in one place: each with how it is made and what must come
of it (digitized, or refused with a reason and the web page's status code). Used by the decoder's tests, the
command line's batch test and the web API's tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image

from pipeline.demo import SAMPLES

ECG_PAGE = SAMPLES / "sample-0001.png"  # a factory page (2200 x 1700 px) with known truth in sample.csv
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # a portrait, 512 x 600 px


@dataclass(frozen=True)
class OddInput:
    name: str
    filename: str
    make: Callable[[Path], None]  # writes the file at the given path
    reason: str | None  # a phrase of the refusal's message; None: the page is digitized
    status: int  # the web page's answer
    warning: str | None = None  # a phrase of a warning the digitized page must carry
    over_http: bool = True  # False: a property of a path on disk (no upload can have it)


def _page() -> Image.Image:
    return Image.open(ECG_PAGE).convert("RGB")


def _truncated(path: Path) -> None:
    data = ECG_PAGE.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _png16(path: Path) -> None:
    bgr = cv2.imread(str(ECG_PAGE), cv2.IMREAD_COLOR)
    cv2.imwrite(str(path), bgr.astype(np.uint16) * 257)  # 16 bits per channel


def _grey16(path: Path) -> None:
    grey = np.asarray(_page().convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(path)  # uint16 -> mode I;16: a 16-bit grayscale PNG


def _rgba(path: Path) -> None:
    page = _page().convert("RGBA")
    alpha = np.full(page.size[::-1], 255, np.uint8)
    alpha[:, :150] = 0  # a transparent left margin: paper, not black
    page.putalpha(Image.fromarray(alpha))
    page.save(path)


def _palette(path: Path) -> None:
    _page().convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)


def _exif_rotated(path: Path) -> None:
    """Pixels stored turned a quarter anticlockwise, with EXIF orientation 6 (turn clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    _page().transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif)


def _huge_png(path: Path) -> None:
    Image.new("1", (20000, 20000), 1).save(path)  # 1 bit per pixel: 50 MB to make, 400 MP to decode


def _big_jpeg(path: Path) -> None:
    """The page scaled to 10000 x 7727 px (77 MP, over the 60 MP limit): decoded at half scale."""
    grey = cv2.imread(str(ECG_PAGE), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(path), cv2.resize(grey, (10000, 7727), interpolation=cv2.INTER_LINEAR),
                [cv2.IMWRITE_JPEG_QUALITY, 85])


def _symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)


def _unreadable(path: Path) -> None:
    path.write_bytes(ECG_PAGE.read_bytes())
    path.chmod(0)


ODD_INPUTS: tuple[OddInput, ...] = (
    OddInput("truncated PNG", "truncated.png", _truncated, "truncated or corrupt", 400),
    OddInput("zero-byte file", "empty.png", lambda p: p.write_bytes(b""), "empty", 400),
    OddInput("text renamed .png", "notes.png", lambda p: p.write_text("Patient notes: ECG to follow.\n" * 20),
             "holds text", 400),
    OddInput("PDF renamed .png", "scan.png", lambda p: p.write_bytes(b"%PDF-1.7\n" + b"0" * 2000), "PDF", 415),
    OddInput("16-bit RGB PNG", "rgb16.png", _png16, None, 200),
    OddInput("16-bit grayscale PNG", "grey16.png", _grey16, None, 200),
    OddInput("RGBA PNG", "rgba.png", _rgba, None, 200),
    OddInput("grayscale PNG", "grey.png", lambda p: _page().convert("L").save(p), None, 200),
    OddInput("palette PNG", "palette.png", _palette, None, 200),
    OddInput("EXIF-rotated JPEG", "rotated.jpg", _exif_rotated, None, 200, warning="EXIF orientation"),
    OddInput("CMYK JPEG", "cmyk.jpg", lambda p: _page().convert("CMYK").save(p, quality=92), None, 200),
    OddInput("TIFF", "page.tif", lambda p: _page().save(p, compression="tiff_lzw"), None, 200),
    OddInput("20000x20000 PNG", "huge.png", _huge_png, "the limit is 60 MP", 413),
    OddInput("77 MP JPEG", "big.jpg", _big_jpeg, None, 200, warning="decoded at 1/2 scale"),
    OddInput("file over 30 MiB", "heavy.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (31 << 20)),
             "the limit is 30 MiB", 413),
    OddInput("50x50 image", "tiny.png", lambda p: _page().resize((50, 50)).save(p), "too small", 400),
    OddInput("blank page", "blank.png", lambda p: Image.new("RGB", (2200, 1700), (252, 250, 248)).save(p),
             "no ECG found", 400),
    OddInput("photo that is not an ECG", "portrait.jpg", lambda p: p.write_bytes(PHOTO.read_bytes()),
             "no ECG found", 400),
    OddInput("symbolic link loop", "loop.png", _symlink_loop, "symbolic link loop", 400, over_http=False),
    OddInput("unreadable file", "locked.png", _unreadable, "permission denied", 400, over_http=False),
)


def make_all(folder: Path, cases: tuple[OddInput, ...] = ODD_INPUTS) -> dict[str, Path]:
    """Write every case into ``folder``; case name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases:
        path = folder / case.filename
        case.make(path)
        paths[case.name] = path
    return paths
