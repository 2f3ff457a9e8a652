"""Head pose from dense landmarks: weighted Procrustes against the canonical mesh, and its Euler angles.

Convention (used everywhere in uvaug, tested in ``tests/test_fit_pose.py``)
----------------------------------------------------------------------------
The camera frame has x to the right of the image, y up, z towards the viewer. ``rotation`` maps the canonical
(frontal, upright) face into that frame and factors as ``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)``:

* **yaw > 0**: the face turns towards the image's right (the nose points to the right side of the photo; the
  subject turns to their own left). A mirrored photo has the opposite yaw.
* **pitch > 0**: the face tilts up (chin up, nose points up in the image).
* **roll > 0**: the head leans counter-clockwise as seen in the photo. A mirrored photo has the opposite roll.

All angles are in degrees; a frontal, upright face reads (0, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Flips between the photo's frame (x right, y down, z away from the camera) and the y-up camera frame.
FLIP_YZ = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Pose:
    rotation: np.ndarray  # (3, 3) canonical -> camera frame (y up, z towards viewer)
    scale: float  # photo pixels per canonical-mesh centimetre
    translation: np.ndarray  # (3,) in the photo's frame (pixels)
    yaw: float
    pitch: float
    roll: float

    @property
    def transform(self) -> np.ndarray:
        """(3, 4) matrix taking canonical mesh points (cm) to photo pixels (x right, y down, z away)."""
        return np.hstack([self.scale * FLIP_YZ @ self.rotation, self.translation[:, None]])


def weighted_procrustes(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity transform (R, s, t) minimising sum w |s R source + t - target|^2 (Umeyama), det R = +1."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_t = w @ source, w @ target
    cs, ct = source - mu_s, target - mu_t
    cov = (ct * w[:, None]).T @ cs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (w @ (cs**2).sum(1)))
    return rot, scale, mu_t - scale * rot @ mu_s


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``Rz(roll) @ Ry(yaw) @ Rx(-pitch)`` for angles in degrees (see the module's convention)."""
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(-p), -np.sin(-p)], [0, np.sin(-p), np.cos(-p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, the inverse of :func:`rotation_from_angles`."""
    yaw = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    pitch = -np.arctan2(rot[2, 1], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return tuple(float(v) for v in np.degrees([yaw, pitch, roll]))  # type: ignore[return-value]


def estimate_pose(points: np.ndarray, canonical: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> Pose:
    """Pose of a face from its landmarks in photo pixels (x right, y down, z away from the camera)."""
    target = np.asarray(points, np.float64)[ids] @ FLIP_YZ
    rot, scale, t = weighted_procrustes(np.asarray(canonical, np.float64)[ids], target, weights)
    yaw, pitch, roll = angles_from_rotation(rot)
    return Pose(rotation=rot, scale=scale, translation=FLIP_YZ @ t, yaw=yaw, pitch=pitch, roll=roll)
