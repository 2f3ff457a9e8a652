"""The face's outline texture: the photo's own colours where the fit left the face's edge to completion.

The fit stage leaves grazing texels (surface turned more than about 66 degrees from the camera, facing below
:data:`uvaug.fit.uv.DEFAULT_MIN_FACING`) to completion: the photo shows them squeezed into a few pixels,
mixed with background, hair and ears, and completion learns better without them. But while a view keeps
them grazing, those texels are exactly the face's outline, and there the completed colours differ from the
photo around them: renders turned 10-30 degrees showed a pale or dark crescent along the cheek, and where
hair covered the cheek, bare skin in place of the hair.

So the renderer draws the band twice: with the face's UV map, and over it this texture (the photo's
samples, alpha rising from 0 at :data:`BAND_FACING` to 1 at the fit's threshold, on texels the photo shows),
faded per vertex as the view turns the surface towards the camera (:data:`OUTLINE_FADE`), or turns it
towards the camera much further than the photo did (:data:`OUTLINE_STRETCH`). Turned towards the camera, the
squeezed samples would be stretched into smears; there the completion shows, as before.
Blended in without the fade, re-detection of 100 UTKFace val faces rendered at yaw 60 fell from 93.7% to
91.5% (``benchmarks/render_pose_fidelity.py``); with it, re-detection and pose errors are those of the
renderer without the outline, within the benchmark's noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from uvaug.artifacts import FaceFit
from uvaug.fit.mirror import mirror_uv
from uvaug.fit.uv import DEFAULT_MIN_FACING, sample_texels, texel_visibility, uv_layout, vertex_normals

#: Facing (cosine of the angle between the surface and the line of sight, in the photo) below which the photo
#: adds nothing; between it and :data:`uvaug.fit.uv.DEFAULT_MIN_FACING` its weight rises linearly.
BAND_FACING = 0.0
#: Facing in the rendered view over which the outline texture fades out: fully shown up to the first value,
#: gone from the second (the fit's own threshold and a little beyond).
OUTLINE_FADE = (0.6, 0.9)
#: How much further towards the camera than the photo (in facing, the cosine) a view may turn a vertex before
#: the outline fades there: fully shown up to the first value, gone from the second (near the edge a facing
#: change of 0.1 is about 6 degrees of turn). Turned towards the camera the band's squeezed samples are
#: stretched, by about the ratio of the two facings, and their mix of skin and background reads as a stripe:
#: frontalizing a face photographed at yaw 20 drew the dark scarf under its jaw as a stripe down the far
#: cheek, although the view left that surface grazing enough (facing under 0.6) for :data:`OUTLINE_FADE`.
OUTLINE_STRETCH = (0.1, 0.25)
#: Side of the outline texture. The photo squeezes the band into a few pixels, so its samples hold no more
#: detail than this (the face's own map is 256); its texels cost a third of 256's (4 against 11 ms a face).
OUTLINE_SIZE = 128


@dataclass(frozen=True)
class Outline:
    """The photo's colours over the grazing band: an RGBA texture in the face's UV layout (alpha the band's
    weight, 0 elsewhere: where the fit kept the photo the UV map already shows it) and the mesh triangles
    that carry any of it (only those are drawn twice)."""

    texture: np.ndarray
    triangles: np.ndarray  # (K,) indices into the face mesh's triangles

    @classmethod
    def of_texture(cls, texture: np.ndarray) -> Outline:
        """The outline that draws ``texture``: the triangles its alpha touches, and their neighbours
        (bilinear filtering reaches a texel across an edge)."""
        layout = uv_layout(texture.shape[0])
        band = np.unique(layout.triangle[texture[..., 3].reshape(-1)[layout.texel] > 0])
        touching = np.isin(layout.triangles, np.unique(layout.triangles[band])).any(1)
        return cls(texture, np.flatnonzero(touching).astype(np.int64))

    def mirrored(self) -> Outline:
        """The outline of the mirrored photo (:func:`uvaug.fit.mirror.mirror_uv`)."""
        return Outline.of_texture(mirror_uv(self.texture))


def outline_texture(fit: FaceFit, photo: np.ndarray, size: int = OUTLINE_SIZE) -> Outline | None:
    """The :class:`Outline` of a fitted face in its photo, ``size`` texels a side; None when the photo shows
    no grazing texel."""
    layout = uv_layout(size)
    facing, shown, points = texel_visibility(fit.vertices, photo.shape[:2], layout)  # shown: in front, inside
    ramp = (facing - BAND_FACING) / (DEFAULT_MIN_FACING - BAND_FACING)
    weight = np.where(shown & (ramp > 0) & (ramp < 1), ramp, 0.0)
    if not weight.any():
        return None
    # colours a few texels past the layout's edge, so that filtering there mixes in no black
    covered = np.dstack([sample_texels(photo, points, layout), layout.coverage.astype(np.uint8) * 255])
    rgb = pad_colours(covered)[..., :3]
    alpha = np.zeros(size * size, np.uint8)
    alpha[layout.texel] = np.round(weight * 255).astype(np.uint8)
    return Outline.of_texture(np.dstack([rgb, alpha.reshape(size, size)]))


def pad_colours(rgba: np.ndarray, texels: int = 4) -> np.ndarray:
    """Spread colours a few texels past the alpha edge (alpha unchanged).

    Bilinear filtering at the edge of the face mixes in the texels beyond it; black there draws a dark seam
    along the face's outline.
    """
    known = (rgba[..., 3] >= 128).astype(np.float32)
    if known.all() or not known.any():
        return rgba
    rgb = rgba[..., :3].astype(np.float32) * known[..., None]
    kernel = (2 * texels + 1, 2 * texels + 1)
    weight = cv2.blur(known, kernel)
    spread = cv2.blur(rgb, kernel) / np.maximum(weight, 1e-6)[..., None]
    out = rgba.copy()
    fill = (known == 0) & (weight > 0)
    out[..., :3][fill] = np.clip(spread[fill], 0, 255).astype(np.uint8)
    return out


def vertex_facing(vertices: np.ndarray) -> np.ndarray:
    """(V,) how squarely each vertex of a face mesh in the GL frame (the camera looks down -z) faces the
    camera: the cosine of its area-weighted normal with the view direction (1 head-on, 0 edge-on)."""
    # the GL frame is the photo's turned half round x: a normal's GL z is its photo -z, the facing
    return vertex_normals(vertices, uv_layout(OUTLINE_SIZE))[:, 2]


def outline_alpha(facing: np.ndarray, photo_facing: np.ndarray | None = None) -> np.ndarray:
    """(V,) per-vertex share of the outline texture in a view, from the vertices' facing in that view
    (:data:`OUTLINE_FADE`) and, given their facing in the photo, from how much further the view turns them
    towards the camera (:data:`OUTLINE_STRETCH`)."""
    low, high = OUTLINE_FADE
    alpha = np.clip((high - facing) / (high - low), 0.0, 1.0)
    if photo_facing is None:
        return alpha
    low, high = OUTLINE_STRETCH
    return np.minimum(alpha, np.clip((photo_facing + high - facing) / (high - low), 0.0, 1.0))
