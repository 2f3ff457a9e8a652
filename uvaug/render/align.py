"""Recognition-ready alignment: the standard ArcFace 5-point template, fed by points of the turned mesh.

The five points come from the fitted mesh after it is turned to the view (no re-detection): eye centres
(midpoints of the eye corners), nose tip and mouth corners, in image order (the image-left eye first).
"""

from __future__ import annotations

import numpy as np

#: insightface's ``arcface_dst`` for 112x112 crops: left eye, right eye, nose tip, left and right mouth corner
#: (image left/right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
ARCFACE_SIZE = 112
#: Mesh vertices of the five points: subject's right eye corners, left eye corners, nose tip, mouth corners.
EYE_RIGHT, EYE_LEFT, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = (33, 133), (362, 263), 4, 61, 291


def five_points(vertices: np.ndarray) -> np.ndarray:
    """(5, 2) ArcFace points from (468, >=2) mesh vertices in photo pixels (x right, y down)."""
    v = np.asarray(vertices)[:, :2]
    return np.stack(
        [v[list(EYE_RIGHT)].mean(0), v[list(EYE_LEFT)].mean(0), v[NOSE_TIP], v[MOUTH_RIGHT], v[MOUTH_LEFT]]
    )


def similarity_to(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (Umeyama, no reflection) taking ``source`` points onto ``target``."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    cs, ct = source - mu_s, target - mu_t
    u, sig, vt = np.linalg.svd(ct.T @ cs)
    d = np.array([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / (cs**2).sum()
    return np.hstack([scale * rot, (mu_t - scale * rot @ mu_s)[:, None]])


def arcface_matrix(points: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """Similarity taking the five points onto the ArcFace template scaled to ``size``."""
    return similarity_to(points, ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))
