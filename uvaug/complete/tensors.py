"""The one contract between UV maps on disk and the completion network (torch, ONNX, any backend).

Network input, (N, 8, H, W) float32: the known RGB in [-1, 1] (0 where unknown), the known-mask (1 = known),
then the same four channels mirrored left-right. The UV layout is symmetric about u = 0.5, so the mirror puts
the other cheek's texels where this cheek's are missing. Network output, (N, 3, H, W) float32 in [-1, 1].
Known texels are always copied back from the input afterwards, so they come out bit-exact.
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "uv_input"
OUTPUT_NAME = "uv_completed"
INPUT_CHANNELS = 8
KNOWN_ALPHA = 128  # alpha at or above this counts as a known texel


def known_mask(rgba: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: texels the photo showed."""
    return rgba[..., 3] >= KNOWN_ALPHA


def to_network_input(rgba: np.ndarray) -> np.ndarray:
    """(N, H, W, 4) uint8 RGBA UV maps -> (N, 8, H, W) float32 network input."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 4 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 4) uint8 RGBA UV maps, got {rgba.shape} {rgba.dtype}")
    known = known_mask(rgba).astype(np.float32)[:, None]
    rgb = rgba[..., :3].transpose(0, 3, 1, 2).astype(np.float32) * (2.0 / 255.0) - 1.0
    half = np.concatenate([rgb * known, known], axis=1)
    return np.ascontiguousarray(np.concatenate([half, half[..., ::-1]], axis=1))


def from_network_output(
    output: np.ndarray, rgba: np.ndarray, coverage: np.ndarray | None = None
) -> np.ndarray:
    """Network output + the input maps -> (N, H, W, 4) uint8 completed maps.

    Known texels are copied from the input unchanged; the others take the network's colour. Alpha is 255 on
    ``coverage`` (the texels that belong to the face; all texels if None) and 0 elsewhere.
    """
    rgb = np.clip((np.asarray(output).transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    known = known_mask(rgba)
    rgb[known] = rgba[..., :3][known]
    alpha = np.full(rgb.shape[:3], 255, np.uint8)
    if coverage is not None:
        alpha[:, ~coverage] = 0
        rgb[:, ~coverage] = 0
    return np.concatenate([rgb, alpha[..., None]], axis=-1)
