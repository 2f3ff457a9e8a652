"""Seam blending: remove the step in colour where a completed region meets the texels the photo showed.

Any completion leaves one. The symmetric baseline pastes the other cheek, whose exposure and shading differ
locally from this cheek's; the network paints the holes from context, and along the hole's rim its colours
sit a few grey levels off the known texels next to them. Either way the rendered face shows a line where the
photo's texture ends.

The step is measured along the rim: the local mean of the known texels that touch a hole, minus the local
mean of the completed texels that touch known ones (both normalised Gaussian averages, so each side is
averaged over its own texels only). That offset is spread over the hole and faded with the distance from
the rim, so it corrects the colours next to the photo's texture and leaves the inside of a large hole as
the completer made it. Known texels are never changed.

Chosen on 100 UTKFace *train* faces (the masks of ``benchmarks/complete_quality.py``; PSNR over seen but
hidden texels, shipped model): the offset taken over the texels right at the rim (1 texel) with a 1-texel
average and a 16-texel fade gave +0.65 / +0.34 / +0.16 / +0.10 dB at target yaw 30-45 / 45-60 / 60-75 /
75-90 and SSIM +0.013 / +0.007 / +0.003 / +0.004. Wider rims (2 texels) or averages (2-3 texels) gained
less; no fade (the offset spread over the whole hole) gained up to 0.4 dB less in the wider bins; and
extrapolating each side's colour to the rim (to tell the texture's own gradient from a step) lost 0.2-1.2
dB against this plain difference, as the extrapolation doubles the noise. With the same settings the
symmetric baseline gained +2.1 / +1.0 / +0.4 / +0.0 dB (60 train faces). Applied to the truth itself, the
blend costs it little: 39-40 dB over the hidden texels on the same faces.
"""

from __future__ import annotations

import cv2
import numpy as np

from uvaug.complete.maps import face_texels
from uvaug.complete.tensors import known_mask

#: Constants for 256x256 maps (scaled with the map's size): the Gaussian that averages each side of the rim,
#: the wider ones that spread the offset into the hole (the second where the first no longer reaches), and
#: the distance over which the offset fades to 1/e.
RIM_SIGMA = 1.0
SPREAD_SIGMAS = (2.0, 8.0)
FADE_TEXELS = 16.0
REFERENCE_SIZE = 256
#: The narrowest average, in texels: at 0.5 a texel's neighbour still weighs e^-2.
MIN_SIGMA = 0.5
#: Smaller maps are left as they are: a texel of a 32x32 map spans as much of the face as 8 of a 256x256 one,
#: so the difference across the rim is mostly the face's own change, not a seam (on the astronaut's map at
#: yaw 60 with a 30-level step, blending left 10.8 levels at 128, 19.9 at 64, 27.3 at 32, and 42.8 at 16).
MIN_SIZE = 64
#: Below this share of rim weight in its neighbourhood, a texel takes the wider spread's offset.
_REACH = 1e-2
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def blend_seams(rgb: np.ndarray, known: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Blend completed colours into the known texels around them; returns a new float32 array.

    ``rgb``: (N, S, S, 3) or (S, S, 3) colours, 0-255 (known texels included); ``known``: texels the photo
    showed and ``face``: texels of the layout, (N, S, S) or (S, S) bool each. Only ``face & ~known`` texels
    change; maps under :data:`MIN_SIZE` texels a side are returned as they are.
    """
    single = rgb.ndim == 3
    colours = np.array(rgb[None] if single else rgb, np.float32)
    known_maps = known[None] if single else known
    face_maps = face[None] if single else face
    if face_maps.ndim == 2:
        face_maps = np.broadcast_to(face_maps, known_maps.shape)
    for i in range(len(colours)):
        _blend_one(colours[i], known_maps[i], face_maps[i])
    return colours[0] if single else colours


def blend_output_seams(output: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """:func:`blend_seams` on network output ((N, 3, S, S) in [-1, 1], the :mod:`uvaug.complete.tensors`
    contract) for the maps ``rgba`` (N, S, S, 4) it completes; returns output of the same layout."""
    known = known_mask(rgba)
    rgb = (np.asarray(output, np.float32).transpose(0, 2, 3, 1) + 1.0) * 127.5
    np.copyto(rgb, rgba[..., :3], where=known[..., None])  # the rim's side is the photo's texels, exactly
    blended = blend_seams(rgb, known, face_texels(known))
    return np.ascontiguousarray((blended * (1.0 / 127.5) - 1.0).transpose(0, 3, 1, 2))


def _blend_one(rgb: np.ndarray, known: np.ndarray, face: np.ndarray) -> None:
    holes = face & ~known
    if rgb.shape[0] < MIN_SIZE or not holes.any() or not known.any():
        return
    scale = rgb.shape[0] / REFERENCE_SIZE
    rim_sigma = max(RIM_SIGMA * scale, MIN_SIGMA)  # small maps: the averages must still reach a neighbour
    near_sigma, far_sigma = (max(sigma * scale, MIN_SIGMA) for sigma in SPREAD_SIGMAS)
    hole_u8, known_u8 = holes.astype(np.uint8), known.astype(np.uint8)
    rim = known & cv2.dilate(hole_u8, _CROSS).astype(bool)  # known texels touching a hole
    edge = holes & cv2.dilate(known_u8, _CROSS).astype(bool)  # hole texels touching a known one
    step = _average(rgb, rim, rim_sigma)[0] - _average(rgb, edge, rim_sigma)[0]
    near, reach = _average(step, edge, near_sigma)
    far = _coarse_average(step, edge, far_sigma)
    offset = np.where((reach > _REACH)[..., None], near, far)
    distance = cv2.distanceTransform(1 - known_u8, cv2.DIST_L2, 3)  # to the nearest known texel
    fade = np.exp(np.maximum(distance - 1.0, 0.0) * (-1.0 / max(FADE_TEXELS * scale, 1.0))) * holes
    rgb += offset * fade[..., None]


def _coarse_average(values: np.ndarray, where: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`_average` for a wide ``sigma``, on a grid 4 times coarser (a smooth result at a 16th of the
    cost), resized back."""
    size = (values.shape[1], values.shape[0])
    small = (max(1, size[0] // 4), max(1, size[1] // 4))
    weight = cv2.resize(where.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    total = cv2.resize(values * where[..., None], small, interpolation=cv2.INTER_AREA)
    mean, _ = _average_weighted(total, weight, sigma * small[0] / size[0])
    return cv2.resize(mean, size, interpolation=cv2.INTER_LINEAR)


def _average(values: np.ndarray, where: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian average of ``values`` (H, W, 3) over the texels ``where`` (normalised convolution), and the
    Gaussian weight of ``where`` around each texel (0 where none of them is in reach)."""
    return _average_weighted(values * where[..., None], where.astype(np.float32), sigma)


def _average_weighted(total: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution of weighted values ``total`` (H, W, 3) with their weights ``weight`` (H, W)."""
    weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    total = cv2.GaussianBlur(total, (0, 0), sigma)
    return total / np.maximum(weight, 1e-6)[..., None], weight
