"""Reading an input image, whatever the file: one decoder (Pillow) for the command line and the web page.

Every refusal is an :class:`ImageReadError` whose message says what is wrong with the file in words a person
can act on, and whose ``http_status`` is what the web page answers with (400 not an image / unreadable / no
ECG, 413 too large, 415 a type we do not read). Accepted files are turned upright by their EXIF orientation
and converted to 8-bit RGB (16-bit, grayscale, palette, CMYK; transparency composited onto white paper);
what was done to them goes into ``DecodedImage.warnings``.

Memory stays bounded: sizes are read from the header before any pixel is decoded; a JPEG over the pixel
limit is decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (draft mode), anything else over it is refused.
"""

from __future__ import annotations

import errno
import io
import math
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 30 * 1024 * 1024  # an upload or file above this is refused (a 300 dpi letter PNG is ~5-20 MB)
MAX_PIXELS = 60_000_000  # decoded raster limit (60 MP, 180 MB as RGB): the pipeline holds a few copies of it
MIN_SIDE_PX = 200  # a 12-lead page (280 x 215 mm) below ~1 px/mm cannot show its traces
READ_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF")  # what we digitize; other formats get 415
MAX_DRAFT_REDUCTION = 8  # JPEG's DCT scaling decodes at 1/1, 1/2, 1/4 or 1/8 scale

# Our own limit, checked on the header before decoding, replaces Pillow's decompression-bomb guard, which
# refuses a huge JPEG at open() before draft mode could decode it at a fraction of its size.
Image.MAX_IMAGE_PIXELS = None

# signatures of documents people upload instead of an image ((offset, bytes) -> what it is)
_DOCUMENT_SIGNATURES = {(0, b"%PDF"): "a PDF document", (0, b"PK\x03\x04"): "a ZIP archive (or Office document)",
                        (128, b"DICM"): "a DICOM file"}
_IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


class ImageReadError(ValueError):
    """A file that cannot be digitized, with the reason; ``http_status`` is the web page's answer."""

    http_status = 400


class NotAnImageError(ImageReadError):
    http_status = 400


class ImageTooLargeError(ImageReadError):
    http_status = 413


class UnsupportedTypeError(ImageReadError):
    http_status = 415


class NoECGFoundError(ImageReadError):
    """The image decodes but shows no ECG (raised by the pipeline once it has looked at the page)."""

    http_status = 400


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    format: str  # Pillow's name of the file format ("PNG", "JPEG", ...)
    warnings: tuple[str, ...] = field(default_factory=tuple)


def read_image(path: str | Path) -> DecodedImage:
    """Decode the image file at ``path``; an :class:`ImageReadError` saying why when it cannot be."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotAnImageError(f"{path} is a symbolic link loop (it points back at itself)") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotAnImageError(f"{path} does not exist") from None
        if err.errno == errno.EACCES:
            raise NotAnImageError(f"{path} cannot be read: permission denied") from None
        raise NotAnImageError(f"{path} cannot be reached: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotAnImageError(f"{path} is not a regular file ({'a folder' if path.is_dir() else 'a special file'})")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{path} is {info.st_size / 2**20:.1f} MiB; the limit is "
                                 f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise NotAnImageError(f"{path} cannot be read: permission denied") from None
    except OSError as err:
        raise NotAnImageError(f"{path} cannot be read: {err.strerror or err}") from None
    try:
        return decode_image(data)
    except ImageReadError as err:
        raise type(err)(f"{path}: {err}") from None


def decode_image(data: bytes) -> DecodedImage:
    """Decode an image held in memory (an upload, a file's bytes) into RGB uint8."""
    if not data:
        raise NotAnImageError("the file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is "
                                 f"{MAX_FILE_BYTES / 2**20:.0f} MiB")
    for (offset, signature), what in _DOCUMENT_SIGNATURES.items():
        if data[offset:offset + len(signature)] == signature:
            raise UnsupportedTypeError(f"this is {what}, not an image: save the ECG page as PNG or JPEG")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImageError(f"not an image: {_describe_unknown(data)}") from None
    if image.format not in READ_FORMATS:
        raise UnsupportedTypeError(f"{image.format} images are not supported: save the page as PNG or JPEG")
    warnings: list[str] = []
    width, height = image.size
    if min(width, height) < MIN_SIDE_PX:
        raise NotAnImageError(f"the image is {width}x{height} px, too small for a 12-lead page "
                              f"(at least {MIN_SIDE_PX} px on each side; a single-lead strip is not read)")
    if width * height > MAX_PIXELS:
        reduction = _draft_reduction(width, height) if image.format == "JPEG" else None
        if reduction is None:
            raise ImageTooLargeError(f"the image is {width}x{height} px ({width * height / 1e6:.0f} MP); the limit "
                                     f"is {MAX_PIXELS / 1e6:.0f} MP: scale it down, or save it as JPEG")
        image.draft(None, (width // reduction, height // reduction))  # keeps the mode; Pillow takes the floor
        warnings.append(f"{width}x{height} px image decoded at 1/{reduction} scale "
                        f"({image.size[0]}x{image.size[1]} px) to stay under {MAX_PIXELS / 1e6:.0f} MP")
    if getattr(image, "n_frames", 1) > 1:
        warnings.append(f"the file holds {image.n_frames} frames; the first is read")
    try:
        image.load()
        orientation = image.getexif().get(0x0112)  # the EXIF Orientation tag; 1 is upright
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # Pillow's ways of saying the data is broken
        raise NotAnImageError(f"the {image.format} file is truncated or corrupt ({err})") from None
    if orientation not in (None, 1):
        warnings.append(f"turned upright by its EXIF orientation ({orientation})")
    return DecodedImage(_to_rgb8(upright), str(image.format), tuple(warnings))


def _draft_reduction(width: int, height: int) -> int | None:
    """The smallest JPEG decoding reduction that brings ``width`` x ``height`` under the pixel limit."""
    reduction = 2
    while reduction <= MAX_DRAFT_REDUCTION:
        if math.ceil(width / reduction) * math.ceil(height / reduction) <= MAX_PIXELS:
            return reduction
        reduction *= 2
    return None


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """8-bit RGB of any mode: 16/32-bit integer grey scaled by its range, transparency over white paper."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey8 = np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _describe_unknown(data: bytes) -> str:
    """What an unidentified file seems to be, for the error message."""
    for signature, name in _IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return f"it starts as a {name} file but is truncated or corrupt"
    head = data[:256]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "the file holds text, not PNG, JPEG, TIFF, BMP or WebP data"
    return f"the content is not PNG, JPEG, TIFF, BMP or WebP data (it starts with bytes {head[:8].hex(' ')})"
