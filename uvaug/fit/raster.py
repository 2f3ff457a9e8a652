"""A vectorised triangle rasteriser in numpy, for the two places that need one without a GL context.

1. The UV layout table: which triangle covers each texel, with barycentric weights (computed once per size).
2. The image-space depth buffer that decides which texels are hidden behind other parts of the face.

All triangles are rasterised at once: every candidate pixel of every triangle's bounding box is generated as
one flat array, so a face mesh (~900 triangles) costs a few milliseconds and no Python loop per triangle.
Pixel (row i, column j) has its centre at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fragments:
    """Pixels covered by triangles: flat pixel index, triangle index and barycentric weights per fragment."""

    pixel: np.ndarray  # (M,) int64 flat index row * width + col
    triangle: np.ndarray  # (M,) int32
    bary: np.ndarray  # (M, 3) float32


def fragments(tri_xy: np.ndarray, width: int, height: int, eps: float = 1e-6) -> Fragments:
    """All (pixel, triangle) pairs whose pixel centre lies inside the triangle (either winding)."""
    tri_xy = np.asarray(tri_xy, np.float64)
    x, y = tri_xy[..., 0], tri_xy[..., 1]
    x0 = np.clip(np.ceil(x.min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(x.max(1) - 0.5) + 1, 0, width).astype(np.int64)
    y0 = np.clip(np.ceil(y.min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(y.max(1) - 0.5) + 1, 0, height).astype(np.int64)
    nx, ny = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    # Barycentric solve: p = a + s (b - a) + t (c - a)
    e1 = tri_xy[:, 1] - tri_xy[:, 0]
    e2 = tri_xy[:, 2] - tri_xy[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = (np.abs(det) > 1e-12) & (nx > 0) & (ny > 0)
    counts = np.where(ok, nx * ny, 0)
    total = int(counts.sum())
    if total == 0:
        return Fragments(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, 3), np.float32))
    tri = np.repeat(np.arange(len(tri_xy)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(total) - np.repeat(starts, counts)
    px = x0[tri] + local % nx[tri]
    py = y0[tri] + local // nx[tri]
    dx = px + 0.5 - tri_xy[tri, 0, 0]
    dy = py + 0.5 - tri_xy[tri, 0, 1]
    inv = 1.0 / np.where(ok, det, 1.0)[tri]
    s = (dx * e2[tri, 1] - dy * e2[tri, 0]) * inv
    t = (dy * e1[tri, 0] - dx * e1[tri, 1]) * inv
    inside = (s >= -eps) & (t >= -eps) & (s + t <= 1 + eps)
    s, t = s[inside], t[inside]
    bary = np.stack([1 - s - t, s, t], axis=1).astype(np.float32)
    return Fragments(pixel=(py * width + px)[inside], triangle=tri[inside].astype(np.int32), bary=bary)


def depth_buffer(tri_xyz: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) nearest depth (smallest z) of the triangles at each pixel centre; +inf where empty."""
    frags = fragments(tri_xyz[..., :2], width, height)
    z = (frags.bary * tri_xyz[frags.triangle, :, 2]).sum(1)
    zbuf = np.full(width * height, np.inf, np.float64)
    np.minimum.at(zbuf, frags.pixel, z)
    return zbuf.reshape(height, width)
