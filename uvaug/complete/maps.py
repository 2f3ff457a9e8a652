"""UV maps as the completion stage sees them: loading and checking files, the face's texels, the output rules.

Every completer (the network, the symmetric baseline) follows the same output rules, defined once here by
:func:`finish`: known texels keep their RGB exactly, every texel of the face (the layout's coverage, plus any
texel the input knew) comes out opaque, and everything else is transparent black, as in the fit stage's maps.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np

from uvaug.artifacts import UV_SIZE_MAX, UV_SIZE_MIN
from uvaug.complete.tensors import known_mask
from uvaug.io import ImageLoadError, MissingAlphaError, load_rgba


@cache
def face_coverage(size: int) -> np.ndarray:
    """(size, size) bool, read-only: the texels of the canonical UV layout that belong to the face."""
    from uvaug.fit.uv import uv_layout

    coverage = uv_layout(size).coverage
    coverage.flags.writeable = False
    return coverage


def face_texels(known: np.ndarray) -> np.ndarray:
    """(N, S, S) bool: the texels a completer fills or keeps for maps whose known texels are ``known``
    (N, S, S): the layout's face, and any texel the photo showed beyond it."""
    return face_coverage(known.shape[-1])[None] | known


def load_uv_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an RGBA UV map (H, W, 4) uint8; :class:`ImageLoadError` with a one-line reason if it is not one.

    An image without alpha is refused rather than guessed at: taking it as fully known would paste the black
    holes of an unwrapped map onto the face, and taking black as missing would eat dark pixels. Maps must be
    square (the layout is) and between :data:`UV_SIZE_MIN` and :data:`UV_SIZE_MAX` texels a side.
    """
    try:
        rgba = load_rgba(path, max_pixels=UV_SIZE_MAX * UV_SIZE_MAX)
    except MissingAlphaError as exc:
        raise ImageLoadError(f"not an RGBA UV map: {exc}; alpha 0 must mark missing texels") from None
    height, width = rgba.shape[:2]
    if height != width:
        raise ImageLoadError(f"not a UV map: {width}x{height} is not square")
    if not UV_SIZE_MIN <= width <= UV_SIZE_MAX:
        raise ImageLoadError(f"UV map size {width}x{height} outside {UV_SIZE_MIN}..{UV_SIZE_MAX} texels")
    return rgba


def as_batch(rgba: np.ndarray) -> tuple[np.ndarray, bool]:
    """Check square RGBA uint8 maps, (N, S, S, 4) or one (S, S, 4); return them as a batch, and if one."""
    rgba = np.asarray(rgba)
    single = rgba.ndim == 3
    batch = rgba[None] if single else rgba
    if batch.ndim != 4 or batch.shape[-1] != 4 or batch.dtype != np.uint8:
        raise ValueError(
            f"expected (N, S, S, 4) or (S, S, 4) uint8 RGBA UV maps, got {rgba.shape} {rgba.dtype}"
        )
    if batch.shape[1] != batch.shape[2]:
        raise ValueError(f"UV maps must be square, got {batch.shape[2]}x{batch.shape[1]}")
    return batch, single


def known_fraction(rgba: np.ndarray) -> float:
    """Fraction of the face's texels that one map (S, S, 4) knows."""
    coverage = face_coverage(rgba.shape[0])
    return float(known_mask(rgba)[coverage].mean()) if coverage.any() else 0.0


def finish(completed: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Apply the output rules to ``completed`` (N, S, S, 4) uint8 in place and return it.

    Known texels get the input's RGB back, the face's texels and every known texel alpha 255, and all other
    texels become transparent black; only the RGB of the face's unknown texels is the completer's.
    """
    if not completed.flags.c_contiguous or completed.dtype != np.uint8 or completed.shape != rgba.shape:
        raise ValueError(f"expected a C-contiguous uint8 array of shape {rgba.shape}")
    known = known_mask(rgba)
    face = face_texels(known)
    texels = completed.view(np.uint32)[..., 0]  # one RGBA texel per element: whole-texel copies and masks
    np.copyto(texels, np.ascontiguousarray(rgba).view(np.uint32)[..., 0], where=known)
    completed[..., 3] = 255
    np.multiply(texels, face, out=texels, casting="unsafe")
    return completed
