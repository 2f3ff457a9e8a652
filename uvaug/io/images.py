"""Robust image loading: any common file in, RGB ``uint8`` out, or one clear error per bad file.

Datasets scraped from the web contain empty files, HTML saved as ``.jpg``, truncated downloads,
CMYK and 16-bit images, EXIF-rotated phone photos and the odd decompression bomb. The pipeline
must process millions of files without dying on any of them, and the manifest must say *why* a
file was skipped, so every failure becomes an :class:`ImageLoadError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "MissingAlphaError",
    "load_image",
    "load_rgba",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
"""Suffixes (lower-case, with the dot) treated as images; compare with ``suffix.lower()``."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width * height) decoded by default: 100 MP is 300 MB as RGB, far beyond any
photo a face pipeline needs, and small enough that a hostile header cannot exhaust memory."""

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PIL_PIXELS_RE = re.compile(r"\((\d+) pixels\)")
_DETAIL_MAX_CHARS = 160
_pil_limit_lock = threading.Lock()


class ImageLoadError(Exception):
    """A file could not be turned into an image; ``str()`` is a short reason for a manifest."""


class MissingAlphaError(ImageLoadError):
    """:func:`load_rgba` read an image that has no alpha channel."""


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` into a read-only, C-contiguous RGB ``uint8`` array of shape (H, W, 3).

    The size in the header is checked against ``max_pixels`` before any pixel is decoded, the
    whole file is decoded eagerly (so truncation is an error here, not garbage later), EXIF
    orientation is applied, and only the first frame of multi-frame files is used. Every failure
    raises :class:`ImageLoadError`.

    The array is read-only on every path because the fast path wraps Pillow's buffer without a
    copy; call ``.copy()`` before modifying it in place.
    """
    with _open(path) as f:
        rgb = _decode(f, max_pixels, _pil_to_rgb, tiff_fallback=True)
    rgb.flags.writeable = False
    return rgb


def load_rgba(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image that carries transparency into a read-only RGBA ``uint8`` array (H, W, 4).

    For files where alpha means something (UV maps: alpha 0 marks missing texels), so an image without an
    alpha channel or transparency key is a :class:`MissingAlphaError` (``no alpha channel (mode RGB)``)
    rather than a guess. Otherwise it behaves as :func:`load_image` (size limit, eager decoding, EXIF
    orientation, first frame, one-line errors).
    """
    with _open(path) as f:
        rgba = _decode(f, max_pixels, _pil_to_rgba, tiff_fallback=False)
    rgba.flags.writeable = False
    return rgba


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading, every failure (and an empty file) mapped to an :class:`ImageLoadError`."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except IsADirectoryError:
        raise ImageLoadError("is a directory") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot open file: {_one_line(exc)}") from None
    if os.fstat(f.fileno()).st_size == 0:
        f.close()
        raise ImageLoadError("empty file")
    return f


def _decode(
    f: BinaryIO, max_pixels: int, to_array: Callable[[Image.Image], np.ndarray], tiff_fallback: bool
) -> np.ndarray:
    """Pillow first (fast, lazy header), OpenCV only for TIFF variants Pillow cannot read (if allowed)."""
    _ensure_pil_limit_at_least(max_pixels)
    try:
        im = Image.open(f)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(_too_large_from_pil(exc, max_pixels)) from None
    except Image.UnidentifiedImageError:
        if tiff_fallback and _has_tiff_magic(f):
            return _decode_tiff_with_cv2(f, max_pixels)
        raise ImageLoadError("not an image (unrecognised format)") from None
    except MemoryError:
        raise ImageLoadError("out of memory while decoding") from None
    except Exception as exc:
        raise ImageLoadError(f"corrupt or truncated image: {_one_line(exc)}") from None

    _check_size(*im.size, max_pixels)
    try:
        im.load()  # decode everything now: truncation must raise here (LOAD_TRUNCATED_IMAGES untouched)
        _apply_exif_orientation(im)
        return to_array(im)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(_too_large_from_pil(exc, max_pixels)) from None
    except MemoryError:
        raise ImageLoadError("out of memory while decoding") from None
    except Exception as exc:
        raise ImageLoadError(f"corrupt or truncated image: {_one_line(exc)}") from None


def _ensure_pil_limit_at_least(max_pixels: int) -> None:
    """Raise (never lower) Pillow's global bomb threshold to ``max_pixels``.

    Pillow warns above ``MAX_IMAGE_PIXELS`` (89.5 MP by default) and refuses above twice that,
    which would reject images our own limit allows. Raising the global once, monotonically, keeps
    legitimate images free of warnings and errors without ``warnings.catch_warnings`` (which is
    not thread-safe and loaders run in threads). Our own check still runs before decoding.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None or current >= max_pixels:
        return
    with _pil_limit_lock:  # re-read under the lock so concurrent callers only ever raise it
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and current < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels


def _check_size(width: int, height: int, max_pixels: int) -> None:
    pixels = width * height
    if pixels > max_pixels:
        raise ImageLoadError(
            f"image too large: {width}x{height} = {pixels / 1e6:.1f} MP (limit {max_pixels / 1e6:.1f} MP)"
        )
    if pixels <= 0:
        raise ImageLoadError(f"corrupt or truncated image: invalid size {width}x{height}")


def _too_large_from_pil(exc: BaseException, max_pixels: int) -> str:
    """Pillow's bomb check reports only a pixel count; keep the message format of our own check."""
    match = _PIL_PIXELS_RE.search(str(exc))
    if match is None:
        return f"image too large (limit {max_pixels / 1e6:.1f} MP)"
    return f"image too large: {int(match.group(1)) / 1e6:.1f} MP (limit {max_pixels / 1e6:.1f} MP)"


def _apply_exif_orientation(im: Image.Image) -> None:
    """Rotate/flip in place as the EXIF (or XMP) orientation says; no copy when there is none.

    Broken EXIF is common in camera files and must not cost us the image: if reading it fails,
    the pixels are either untouched (failure before transposing) or already transposed (failure
    while rewriting metadata we do not use), so ignoring the error is safe.
    """
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(im, in_place=True)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's convert() clips 16/32-bit and float data to 0..255 instead of scaling it.
        return _gray_to_rgb(_scale_to_uint8(np.asarray(im)))
    # Alpha is dropped, so palette/colour-key transparency is irrelevant; removing it avoids
    # Pillow's "transparency expressed in bytes" warning and an RGBA detour.
    im.info.pop("transparency", None)
    try:
        rgb = im.convert("RGB")
    except ValueError:
        raise ImageLoadError(f"unsupported pixel mode: {mode}") from None
    return np.asarray(rgb)


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def _pil_to_rgba(im: Image.Image) -> np.ndarray:
    if im.mode == "RGBA":
        return np.asarray(im)
    if im.mode not in _ALPHA_MODES and "transparency" not in im.info:
        raise MissingAlphaError(f"no alpha channel (mode {im.mode})")
    try:
        return np.asarray(im.convert("RGBA"))
    except ValueError:
        raise ImageLoadError(f"unsupported pixel mode: {im.mode}") from None


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map a single-channel (or per-channel) array of any numeric dtype onto 0..255.

    Integers are scaled by their bit depth (``>> 8`` for 16-bit). Pillow's mode ``I`` is a 32-bit
    container that in practice holds 16-bit samples, so it is treated as 16-bit unless a value
    exceeds 65535. Floats are scaled by their maximum when it exceeds 1, else assumed in 0..1.
    """
    dtype = values.dtype
    if dtype == np.uint8:
        return values
    if dtype.kind == "u" and dtype.itemsize == 2:
        return (values >> 8).astype(np.uint8)
    if dtype.kind in "ui":
        values = np.maximum(values, 0) if dtype.kind == "i" else values
        peak = int(values.max(initial=0))
        bits = dtype.itemsize * 8 - (1 if dtype.kind == "i" else 0)
        shift = 8 if peak <= 0xFFFF else bits - 8
        return (values >> shift).astype(np.uint8)
    if dtype.kind == "f":
        finite = np.isfinite(values)
        peak = float(values.max(where=finite, initial=0.0))
        scale = 255.0 / peak if peak > 1.0 else 255.0
        values = np.nan_to_num(values, nan=0.0, posinf=peak, neginf=0.0)
        return np.rint(np.clip(values * scale, 0.0, 255.0)).astype(np.uint8)
    raise ImageLoadError(f"unsupported sample type: {dtype}")


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _has_tiff_magic(f: BinaryIO) -> bool:
    f.seek(0)
    return f.read(4) in _TIFF_MAGICS


def _decode_tiff_with_cv2(f: BinaryIO, max_pixels: int) -> np.ndarray:
    """Fallback for TIFF layouts Pillow cannot read (e.g. float RGB, float64).

    The size is read from the first IFD before OpenCV decodes anything, so the pixel limit holds
    on this path too.
    """
    try:
        f.seek(0)
        header = f.read(8)
        if b"+" in header[2:4]:  # BigTIFF: 16-byte header
            header += f.read(8)
        tags = TiffImagePlugin.ImageFileDirectory_v2(header)
        f.seek(tags.next)
        tags.load(f)
        width, height = int(tags[256]), int(tags[257])
    except Exception:
        raise ImageLoadError("not an image (unrecognised format)") from None
    _check_size(width, height, max_pixels)
    f.seek(0)
    data = np.frombuffer(f.read(), dtype=np.uint8)
    try:
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageLoadError(f"corrupt or truncated image: {_one_line(exc)}") from None
    if decoded is None:
        raise ImageLoadError("corrupt or truncated image: unsupported TIFF layout")
    scaled = _scale_to_uint8(decoded)
    if scaled.ndim == 2:
        return _gray_to_rgb(scaled)
    channels = scaled.shape[2]
    if channels == 1:
        return _gray_to_rgb(scaled[:, :, 0])
    if channels in (3, 4):
        return np.ascontiguousarray(scaled[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped
    raise ImageLoadError(f"unsupported channel count: {channels}")


def _one_line(exc: BaseException) -> str:
    """Exception text squeezed onto one short line, for a manifest field."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 3] + "..."
