"""How much of a rendered face the photo really showed.

A view shows the face's surface turned towards its camera. Where the photo showed that surface, the view
draws the photo's own texels; elsewhere it draws completed (invented) texture, and beyond about half the face
the view looks like a mask. The *seen share* of a view is the part of the face's drawn area whose texels the
fit marked as seen (alpha of the fit's own UV map): 1 at the photo's own pose (up to the grazing band the fit
leaves to completion), falling as the view turns the hidden side into sight. It is computed from the mesh
alone, before rendering (per triangle: its projected area in the view times the share of its texels the
photo showed), so a view below ``--min-seen`` costs nothing. Parts of the face hidden behind the nose are
counted as drawn; at the turns where that happens they are a small part of the face.
"""

from __future__ import annotations

import numpy as np

from uvaug.fit.uv import uv_layout

#: Alpha at or above which a texel of the fit's own UV map counts as seen in the photo.
SEEN_ALPHA = 128


def triangle_seen(alpha: np.ndarray) -> np.ndarray:
    """(T,) share of each mesh triangle's texels that the photo showed, from the (S, S) alpha of the fit's
    own UV map; NaN for triangles too small to own a texel at that size (they are left out of the share)."""
    alpha = np.asarray(alpha)
    layout = uv_layout(alpha.shape[0])
    count = len(layout.triangles)
    seen = alpha.reshape(-1)[layout.texel] >= SEEN_ALPHA
    texels = np.bincount(layout.triangle, minlength=count)
    shown = np.bincount(layout.triangle, weights=seen, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(texels > 0, shown / texels, np.nan)


def seen_share(vertices_gl: np.ndarray, seen: np.ndarray) -> float:
    """Share of the face's drawn area (triangles facing the camera, weighted by their area in the image)
    that the photo showed. ``vertices_gl``: (V, 3) face vertices in the view's GL frame (x right, y up, the
    camera looking down -z); ``seen``: :func:`triangle_seen` of the map the view is textured with."""
    triangles = uv_layout().triangles  # the same mesh at every map size
    corners = np.asarray(vertices_gl, np.float64)[triangles][..., :2]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])  # > 0: counter-clockwise, facing the camera
    drawn = (area > 0) & ~np.isnan(seen)
    total = float(area[drawn].sum())
    return float((area[drawn] * seen[drawn]).sum() / total) if total > 0 else 0.0
