"""Write-then-rename, so a killed or crashing run never leaves a half-written artifact behind.

Stages decide what to skip on resume by looking at which artifacts exist; that is only safe if
an artifact that exists is complete. Everything is written to a hidden temporary file in the
target's folder and moved over the target with :func:`os.replace`, which is atomic on one file
system. (This guards against killed processes, not power loss: there is no ``fsync``, which
would be far too slow for millions of small files.)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "atomic_path",
    "cleanup_temp_files",
    "savez_atomic",
    "write_bytes_atomic",
    "write_image_atomic",
    "write_text_atomic",
]

# ``.{name}.{pid}.{8 hex}.tmp{suffix}``; the pid tells a killed run's leftovers from live writes.
_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?:\.[^.]*)?$")
_NAME_CHARS_IN_TEMP = 120  # keeps the temporary name under NAME_MAX even for long targets
_SUFFIX_CHARS_IN_TEMP = 16

# cv2 encoder extension and the sample types it can store, by target suffix.
_ENCODERS: dict[str, tuple[str, tuple[type[np.generic], ...]]] = {
    ".jpg": (".jpg", (np.uint8,)),
    ".jpeg": (".jpg", (np.uint8,)),
    ".png": (".png", (np.uint8, np.uint16)),
    ".bmp": (".bmp", (np.uint8,)),
    ".tif": (".tiff", (np.uint8, np.uint16)),
    ".tiff": (".tiff", (np.uint8, np.uint16)),
    ".webp": (".webp", (np.uint8,)),
}
_NO_ALPHA = frozenset({".jpg", ".jpeg"})


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step.

    The temporary file sits next to the target (same file system, so the rename is atomic), is
    hidden, and keeps the target's suffix so encoders that pick a format by suffix still work.
    Parent folders are created. If the block raises, the temporary file is removed and the
    exception propagates; the target is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(
        f".{target.name[:_NAME_CHARS_IN_TEMP]}.{os.getpid()}.{secrets.token_hex(4)}"
        f".tmp{target.suffix[:_SUFFIX_CHARS_IN_TEMP]}"
    )
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically make ``path`` hold exactly ``data`` (any bytes-like object)."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` as UTF-8, with ``\\n`` line ends on every platform."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_image_atomic(path: str | os.PathLike[str], image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode an RGB, RGBA or grayscale image (``uint8``; ``uint16`` for PNG/TIFF) by suffix.

    ``jpeg_quality`` (0-100) also sets the WebP quality. Raises :class:`ValueError` for an
    unsupported suffix, shape or sample type, and for alpha in a JPEG (which cannot store it).
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _ENCODERS:
        supported = ", ".join(sorted(_ENCODERS))
        raise ValueError(f"unsupported image format {target.suffix!r} for {target} (use one of {supported})")
    cv_ext, dtypes = _ENCODERS[suffix]
    if image.dtype.type not in dtypes:
        allowed = "/".join(np.dtype(t).name for t in dtypes)
        raise ValueError(f"cannot write {image.dtype} samples as {suffix}: expected {allowed}")
    if not 0 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 0..100, got {jpeg_quality}")

    bgr = _to_opencv_channels(image)
    if suffix in _NO_ALPHA and bgr.ndim == 3 and bgr.shape[2] == 4:
        raise ValueError(f"{suffix} cannot store an alpha channel; drop it first")
    params: list[int] = []
    if cv_ext == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    elif cv_ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, max(jpeg_quality, 1)]
    try:
        ok, encoded = cv2.imencode(cv_ext, bgr, params)
    except cv2.error as exc:
        raise ValueError(f"cannot encode image of shape {image.shape} as {suffix}: {exc}") from exc
    if not ok:
        raise ValueError(f"cannot encode image of shape {image.shape} as {suffix}")
    write_bytes_atomic(target, encoded)


def _to_opencv_channels(image: np.ndarray) -> np.ndarray:
    """RGB(A) -> BGR(A), which is what OpenCV encoders expect; gray passes through."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")


def savez_atomic(path: str | os.PathLike[str], /, **arrays: np.ndarray) -> None:
    """Atomically write a compressed ``.npz`` at exactly ``path``.

    Saving through a file object stops NumPy from appending ``.npz`` to the temporary name.
    """
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        np.savez_compressed(f, **arrays)


def cleanup_temp_files(folder: str | os.PathLike[str]) -> int:
    """Remove temporary files that killed runs left below ``folder``; return how many.

    Only names in :func:`atomic_path`'s format are touched. Files whose writer process is still
    alive on this machine (including this process) are kept, so cleaning up while another run
    writes into the same folder is safe. Files that cannot be removed are skipped.
    """
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMP_RE.match(name)
            if match is None or _process_alive(int(match.group("pid"))):
                continue
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError:
                continue
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        # os.kill(pid, 0) would terminate the process on Windows; there, a file another process
        # still has open cannot be deleted anyway, so the unlink failing is the liveness check.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped yet (a killed worker whose parent died too, until init
    collects it): ``os.kill(pid, 0)`` still succeeds, yet it will never finish a write."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux), or gone meanwhile
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")  # the state follows the parenthesised name
