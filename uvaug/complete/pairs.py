"""Self-supervised training pairs for UV completion: no complete ground-truth UV maps exist, so make holes.

A near-frontal photo shows most of the face. Turn its fitted mesh to another head pose, ask which texels the
mesh would show there (the fit stage's own visibility test: facing the camera, not occluded), and hide every
other texel: that is the incomplete map the photo would have given at that pose. The network learns to
restore the hidden texels, and is scored only where the photo really showed the face (the target's alpha).

Pairs are reproducible: the pose of pair ``i`` in epoch ``e`` comes from ``default_rng((seed, e, i))``. The
expensive parts (detection, landmarks, unwrapping) are cached by the fit stage's own outputs on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from uvaug.artifacts import STATUS_OK, FaceFit
from uvaug.fit.pose import FLIP_YZ, rotation_from_angles
from uvaug.fit.uv import uv_layout, visibility
from uvaug.io import MANIFEST_NAME, read_manifest

#: Source faces must be this close to frontal (degrees) so that the photo shows both halves of the face.
FRONTAL_YAW, FRONTAL_PITCH = 25.0, 25.0
MAX_YAW, MAX_PITCH = 90.0, 30.0
#: The facing threshold of the synthetic masks. The shipped model was trained, and the completion benchmark's
#: masks are drawn, with this value (the fit stage's default before 0.4); keeping it keeps both reproducible.
PAIR_MIN_FACING = 0.2


@dataclass(frozen=True)
class FaceSample:
    """One fitted face usable for training: its UV map and fit files, and the photo's relative path."""

    input: str
    uv: Path
    fit: Path


def training_faces(
    fit_dir: Path,
    names: Sequence[str] | None = None,
    frontal: tuple[float, float] = (FRONTAL_YAW, FRONTAL_PITCH),
) -> list[FaceSample]:
    """Near-frontal faces of a fit output folder, optionally only those whose input is in ``names``."""
    wanted = set(names) if names is not None else None
    faces = []
    for rec in read_manifest(fit_dir / MANIFEST_NAME):
        if rec.get("status") != STATUS_OK or (wanted is not None and rec["input"] not in wanted):
            continue
        if abs(float(rec["yaw"])) <= frontal[0] and abs(float(rec["pitch"])) <= frontal[1]:
            faces.append(FaceSample(str(rec["input"]), fit_dir / str(rec["uv"]), fit_dir / str(rec["fit"])))
    return sorted(faces, key=lambda f: f.input)


def visible_at(fit: FaceFit, yaw: float, pitch: float, size: int) -> np.ndarray:
    """(size, size) bool: texels the fitted mesh shows when the head is turned to (yaw, pitch).

    The mesh turns about its centroid and is tested on an unbounded canvas, so only facing and occlusion
    decide (a photo's border is not part of the synthetic pose).
    """
    vertices = np.asarray(fit.vertices, np.float64)
    centre = vertices.mean(0)
    delta = rotation_from_angles(yaw, pitch, 0.0) @ np.asarray(fit.rotation).T
    turn = FLIP_YZ @ delta @ FLIP_YZ  # the same rotation in photo coordinates
    turned = (vertices - centre) @ turn.T
    turned[:, :2] -= turned[:, :2].min(0) - 1.0  # onto a canvas that holds it all
    layout = uv_layout(size)
    extent = int(np.ceil(turned[:, :2].max())) + 2
    seen, _ = visibility(turned, (extent, extent), layout, PAIR_MIN_FACING)
    mask = np.zeros(size * size, bool)
    mask[layout.texel[seen]] = True
    return mask.reshape(size, size)


def draw_pose(rng: np.random.Generator, yaw_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """A target head pose: |yaw| uniform in ``yaw_range`` (default 0-90) with a random side, pitch +-30."""
    low, high = yaw_range or (0.0, MAX_YAW)
    yaw = float(rng.uniform(low, high)) * float(rng.choice([-1.0, 1.0]))
    return yaw, float(rng.uniform(-MAX_PITCH, MAX_PITCH))


def read_rgba(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.ndim != 3 or data.shape[2] != 4:
        raise ValueError(f"{path}: not an RGBA UV map")
    return cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)


class SelfOcclusionPairs:
    """``pairs[i]`` -> (input RGBA, target RGBA) uint8 maps; ``set_epoch`` draws new poses reproducibly.

    Works as a torch ``Dataset`` (it has ``__len__`` and ``__getitem__``) without importing torch.
    """

    def __init__(
        self,
        faces: Sequence[FaceSample],
        seed: int = 0,
        yaw_range: tuple[float, float] | None = None,
        min_hidden: float = 0.02,
    ):
        self.faces = list(faces)
        self.seed = seed
        self.yaw_range = yaw_range
        self.min_hidden = min_hidden
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        face = self.faces[index]
        target = read_rgba(face.uv)
        fit = FaceFit.load(face.fit)
        seen = target[..., 3] >= 128
        rng = np.random.default_rng((self.seed, self.epoch, index))
        for _ in range(8):  # a pose that hides too little teaches nothing: draw again
            yaw, pitch = draw_pose(rng, self.yaw_range)
            keep = visible_at(fit, yaw, pitch, target.shape[0]) & seen
            if (seen & ~keep).sum() >= self.min_hidden * seen.sum():
                break
        source = target.copy()
        source[~keep] = 0
        return source, target
