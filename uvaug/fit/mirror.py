"""The fit of a mirrored photo, from the fit of the photo: no second fit needed.

A face and its mirror image are the same face turned the other way, so a view far to one side of a turned
face can be rendered from the mirrored photo, which needs a shorter turn (see :mod:`uvaug.render.run`).
The canonical mesh and its UV layout are left-right symmetric: vertex ``i`` of the mirrored face is the
mirror image of its twin ``mirror_permutation()[i]``, and the mirrored UV map is the map flipped left-right.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from uvaug.artifacts import FaceFit
from uvaug.fit.landmarks import mirror_permutation
from uvaug.fit.pose import FLIP_YZ, angles_from_rotation

#: Mirrors x in the camera frame and in the canonical mesh's frame alike.
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
#: Detector keypoints (right eye, left eye, nose tip, mouth, right ear, left ear) swap sides in a mirror.
KEYPOINT_TWINS = np.array([1, 0, 2, 3, 5, 4])


def mirror_fit(fit: FaceFit) -> FaceFit:
    """The fit of ``photo[:, ::-1]`` (pixel ``x`` of the photo is pixel ``width - 1 - x`` of its mirror)."""
    last = float(fit.image_size[1]) - 1.0  # x of the last pixel column

    def flip_x(points: np.ndarray) -> np.ndarray:
        out = np.array(points, copy=True)
        out[..., 0] = last - out[..., 0]
        return out

    landmarks = flip_x(fit.landmarks)[mirror_permutation()]
    rotation = MIRROR_X @ np.asarray(fit.rotation, np.float64) @ MIRROR_X
    translation = flip_x(np.asarray(fit.translation, np.float64))
    yaw, pitch, roll = angles_from_rotation(rotation)
    x0, y0, x1, y1 = (float(v) for v in fit.box)
    return dataclasses.replace(
        fit,
        box=np.array([last - x1, y0, last - x0, y1], np.float32),
        keypoints=flip_x(fit.keypoints)[KEYPOINT_TWINS],
        landmarks=landmarks,
        vertices=np.ascontiguousarray(landmarks[: len(fit.vertices)]),
        rotation=rotation,
        translation=translation,
        transform=np.hstack([fit.scale * FLIP_YZ @ rotation, translation[:, None]]),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )


def mirror_uv(uv: np.ndarray) -> np.ndarray:
    """The UV map (any channels) of the mirrored face: the layout is symmetric about its vertical midline."""
    return np.ascontiguousarray(uv[:, ::-1])
