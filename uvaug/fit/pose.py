"""Head pose from dense landmarks: a depth-weighted similarity fit to the canonical mesh; Euler angles.

Convention (used everywhere in uvaug, tested in ``tests/test_fit_model.py``)
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


#: How much a landmark's depth counts against its image position in the pose fit. The landmark model reads
#: x and y off the picture but only guesses z, and its guesses flatten turned faces: a fit that trusts depth
#: as much as position reads turned heads short. Chosen with ``benchmarks/fit_pose_aflw.py`` on AFLW2000-3D
#: dev (mean abs error over yaw, pitch and roll: 1.0 3.41, 0.3 3.29, **0.2 3.28**, 0.1 3.29, 0.05 3.31, 0.0
#: 3.36 degrees; MediaPipe's own weighted subset of 33 points, depth counted fully: 3.48).
DEPTH_WEIGHT = 0.2


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) cross-product matrices: ``_skew(a) @ b == cross(a, b)``."""
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return out - np.swapaxes(out, -1, -2)


def _rotation_vector_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rodrigues' formula."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = _skew(v / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def depth_weighted_similarity(
    source: np.ndarray, target: np.ndarray, depth_weight: float, iterations: int = 30
) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity (R, s, t) minimising sum |(s R source + t - target) * (1, 1, sqrt(depth_weight))|^2.

    No closed form once depth counts less than position: Gauss-Newton (:func:`refine_similarity`) from the
    closed-form fit (Umeyama).
    """
    rot, scale, t = weighted_procrustes(source, target, np.ones(len(source)))
    if depth_weight == 1.0:
        return rot, scale, t
    weights = np.tile([1.0, 1.0, depth_weight], (len(source), 1))
    return refine_similarity(source, target, weights, (rot, scale, t), iterations)


def refine_similarity(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    start: tuple[np.ndarray, float, np.ndarray],
    iterations: int = 30,
    tolerance: float = 1e-7,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity minimising sum w |s R source + t - target|^2 per coordinate (``weights`` (N, 3): x, y, z
    of each point), by Gauss-Newton from ``start`` over a rotation increment, the scale and the translation
    (7 unknowns, a handful of steps, until no step exceeds ``tolerance`` radians or pixels)."""
    rot, scale, t = start
    row_weight = np.asarray(weights, np.float64).reshape(-1, 1)  # per residual row (x, y, z)
    jac = np.empty((len(source), 3, 7))
    jac[:, :, 4:] = np.eye(3)
    for _ in range(iterations):
        y = source @ rot.T
        residual = (scale * y + t - target).reshape(-1)
        jac[:, :, :3] = -scale * _skew(y)  # d(R y)/d(rotation vector) for R <- exp(v) R
        jac[:, :, 3] = y
        flat = jac.reshape(-1, 7)
        weighted = flat * row_weight
        # least squares, not a plain solve: with depth_weight 0 the depth shift is free, and a degenerate
        # mesh (all points at one place) leaves the rotation free; both then stay where they are
        step = -np.linalg.lstsq(weighted.T @ flat, weighted.T @ residual, rcond=None)[0]
        rot = _rotation_vector_to_matrix(step[:3]) @ rot
        scale, t = scale + step[3], t + step[4:]
        if np.abs(step).max() < tolerance:  # radians, and pixels for the scale and shift
            break
    return rot, float(scale), t


#: The silhouette-aware pose fit (:class:`Silhouette`). Mesh points turned away from the camera by more than
#: this (normal's z in the camera frame below it) do not count; the landmark model only guesses them.
SILHOUETTE_FACING = 0.2
#: Half-height (canonical cm) of the row of mesh vertices among which an outline point's silhouette vertex
#: is looked for, and how many times the correspondences are updated to the pose they give.
SILHOUETTE_BAND, SILHOUETTE_PASSES = 0.4, 2
#: Outline vertices this close to the midline (canonical cm) keep their own correspondence (chin, forehead).
SILHOUETTE_LATERAL = 0.5


@dataclass(frozen=True)
class Silhouette:
    """What the pose fit needs to treat a turned face's far outline as a silhouette.

    The landmark model puts the far side's outline points of a turned face on the visible edge of the
    cheek, not on the mesh's own outline vertices, which then lie hidden behind it; and it squeezes the far
    side's hidden points together. Matched to the canonical mesh as they are, both pull the fitted yaw short
    (AFLW2000-3D dev: 5.4 degrees short at 55-60, 7.4 at 60-65). So the fit drops the points that face away
    from the camera and matches each far outline point to the vertex of its row that is outermost at the
    current pose (the silhouette), its depth not counted, then fits again.
    """

    normals: np.ndarray  # (V, 3) canonical vertex normals (front faces +z)
    outline: np.ndarray  # (K,) lateral outline vertices
    rows: np.ndarray  # (K, M) per outline vertex, the vertices of its row on its side of the face, -1 padded

    @classmethod
    def of_mesh(cls, vertices: np.ndarray, triangles: np.ndarray) -> Silhouette:
        from uvaug.fit.topology import boundary_loop, vertex_normals

        v = np.asarray(vertices, np.float64)
        loop = boundary_loop(triangles)
        outline = loop[np.abs(v[loop, 0]) > SILHOUETTE_LATERAL]
        side = np.sign(v[:, 0])
        members = [
            np.flatnonzero(
                (side == side[j])
                & (np.abs(v[:, 1] - v[j, 1]) < SILHOUETTE_BAND)
                & (np.abs(v[:, 0]) >= 0.3 * abs(v[j, 0]))  # the cheek's part of the row, not the nose
            )
            for j in outline
        ]
        rows = np.full((len(outline), max(map(len, members))), -1, np.int64)
        for k, row in enumerate(members):
            rows[k, : len(row)] = row
        return cls(normals=vertex_normals(v, triangles), outline=outline, rows=rows)

    def refit(
        self,
        canonical: np.ndarray,
        target: np.ndarray,
        depth_weight: float,
        start: tuple[np.ndarray, float, np.ndarray],
    ) -> tuple[np.ndarray, float, np.ndarray]:
        """The similarity from ``start`` refitted :data:`SILHOUETTE_PASSES` times with the points facing
        away left out and the far outline matched to the silhouette (``target`` in the y-up camera frame)."""
        fit = start
        for _ in range(SILHOUETTE_PASSES):
            rot = fit[0]
            source = canonical.copy()
            weights = np.tile([1.0, 1.0, depth_weight], (len(canonical), 1))
            weights[(self.normals @ rot.T)[:, 2] < SILHOUETTE_FACING] = 0.0
            # each outline vertex's side: its outward axis, turned into the camera frame
            lateral = np.sign(canonical[self.outline, 0])[:, None] * rot[:, 0]
            far = lateral[:, 2] < 0  # sides turned away from the camera: their outline is a silhouette
            if far.any():
                rows = self.rows[far]
                outward = np.sign(lateral[far, 0])[:, None] * (canonical @ rot[0])[rows]
                outermost = rows[np.arange(len(rows)), np.argmax(np.where(rows >= 0, outward, -np.inf), 1)]
                source[self.outline[far]] = canonical[outermost]
                weights[self.outline[far]] = (1.0, 1.0, 0.0)
            if not weights.any():
                break
            fit = refine_similarity(source, target, weights, fit, tolerance=1e-5)
        return fit


def estimate_pose(
    points: np.ndarray,
    canonical: np.ndarray,
    depth_weight: float = DEPTH_WEIGHT,
    silhouette: Silhouette | None = None,
) -> Pose:
    """Pose of a face from its mesh landmarks in photo pixels (x right, y down, z away from the camera).

    Without ``silhouette`` every mesh point counts equally, matched to its own canonical vertex (exact for
    a posed canonical mesh). With it, points facing away are left out and the far outline is matched to
    the mesh's silhouette (:class:`Silhouette`), as the landmark model places it on turned faces.
    """
    source = np.asarray(canonical, np.float64)
    target = np.asarray(points, np.float64) @ FLIP_YZ
    rot, scale, t = depth_weighted_similarity(source, target, depth_weight)
    if silhouette is not None:
        rot, scale, t = silhouette.refit(source, target, depth_weight, (rot, scale, t))
    yaw, pitch, roll = angles_from_rotation(rot)
    return Pose(rotation=rot, scale=scale, translation=FLIP_YZ @ t, yaw=yaw, pitch=pitch, roll=roll)
