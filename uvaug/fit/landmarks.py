"""478-point 3D face landmarks (MediaPipe Face Mesh V2) on a rotation-normalised crop.

The model sees a 256x256 crop whose x axis runs along the eye line, so an in-plane rotated face looks upright
to it. Points come back in photo pixels; z uses the same pixel scale as x, growing away from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from uvaug.fit.litert import Interpreter, make_interpreter

INPUT_SIZE = 256
NUM_LANDMARKS = 478
#: The first 468 landmarks are the canonical mesh's vertices; the rest are iris points.
MESH_POINTS = 468
#: Outer eye corners (subject's right, subject's left) of the 478-point topology: define the crop rotation.
EYE_CORNERS = (33, 263)
ROI_SCALE = 1.5
#: Iris points (centre, then four around it) of one eye and their mirror twins in the other eye.
IRIS_MIRROR = {468: 473, 469: 476, 470: 475, 471: 474, 472: 477}
#: How the landmark crop is filled where the face's box reaches past the photo (tightly cropped photos:
#: UTKFace's chips, aligned recognition crops, renders of them). ``"reflect"`` (default): beside the photo,
#: the photo mirrored at its border; above and below it, its edge rows continued; blurred
#: (:data:`CROP_REFLECT_BLUR`), so the model sees the head's tones and hair go on. ``"grey"``: mid grey
#: (:data:`CROP_GREY`), as the detector frames such photos. The model reads a turned face from what lies
#: around it, and a flat frame reads it short; mirrored above and below too, the model read renders' pitch
#: worse (UTKFace val renders at yaw 45: pitch error 5.4 degrees against grey's 3.2; with the edge rows 3.7).
#: Where the model does not take the framed crop for a face, the fitter reads the grey one
#: (``MediaPipeFitter.landmarks``). Figures: benchmarks/README.md (AFLW2000-3D centre crops).
CROP_FRAMES = ("reflect", "grey")
#: Grey level of the ``"grey"`` frame. With black, as before it, AFLW2000-3D dev's centre crops scored a
#: mean pose error of 3.97 degrees against 3.53.
CROP_GREY = 128
#: Gaussian blur (sigma, crop pixels) of the ``"reflect"`` frame. Sharp, it mirrors the face's features into
#: a second face at the border (renders at yaw 45 read 33-37 degrees and were found in 84-86%); chosen among
#: 6, 12 and 24 on AFLW2000-3D dev's centre crops and 80 UTKFace val renders at yaw -60..60 (6 reads yaw
#: truest but renders' pitch worse; 24, mirrored all round, read as short as grey).
CROP_REFLECT_BLUR = 12.0
#: A point at crop x maps to FLIP_ORIGIN - x in the flipped crop (measured: the model sits between the
#: integer-centre and half-pixel-centre conventions).
FLIP_ORIGIN = 255.5


@cache
def mirror_permutation() -> np.ndarray:
    """(478,) index of each landmark's left-right twin, from the canonical mesh's symmetry."""
    from uvaug.fit.bundle import default_bundle

    vertices = default_bundle().geometry.vertices
    mirrored = vertices * np.array([-1.0, 1.0, 1.0], np.float32)
    twins = np.argmin(np.linalg.norm(vertices[None] - mirrored[:, None], axis=2), axis=1)
    iris = {**IRIS_MIRROR, **{v: k for k, v in IRIS_MIRROR.items()}}
    return np.concatenate([twins, [iris[i] for i in range(len(vertices), NUM_LANDMARKS)]]).astype(np.int64)


@dataclass(frozen=True)
class Roi:
    """A square region of the photo rotated by ``angle`` (radians, the eye line's direction in the image)."""

    center: np.ndarray  # (2,)
    size: float
    angle: float

    def crop_to_image(self, size: int = INPUT_SIZE) -> np.ndarray:
        """2x3 affine taking crop pixels to photo pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = self.size / size
        ax, ay = np.array([c, s]) * k, np.array([-s, c]) * k
        origin = self.center - (ax + ay) * (size / 2)
        return np.array([[ax[0], ay[0], origin[0]], [ax[1], ay[1], origin[1]]], np.float64)


def roi_from_points(points: np.ndarray, left: np.ndarray, right: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """Square ROI around ``points`` in the frame of the eye line from ``right`` to ``left`` (image coords)."""
    d = left - right
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # image -> eye-line frame
    local = points @ rot.T
    lo, hi = local.min(0), local.max(0)
    center = ((lo + hi) / 2) @ rot  # back to image
    return Roi(center=center, size=float(max(hi - lo)) * scale, angle=angle)


def roi_reaches_past(roi: Roi, shape: tuple[int, ...], size: int = INPUT_SIZE) -> bool:
    """Whether the crop of ``roi`` takes pixels from beyond the photo (``shape``: its height, width)."""
    m = roi.crop_to_image(size)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ m.T
    height, width = shape[:2]
    inside = (corners >= 0).all() and corners[:, 0].max() <= width - 1 and corners[:, 1].max() <= height - 1
    return not inside


def roi_crop(image: np.ndarray, roi: Roi, size: int = INPUT_SIZE, frame: str = "reflect") -> np.ndarray:
    """The landmark model's input: ``roi`` resampled to ``size`` x ``size``; past the photo, ``frame`` (one of
    :data:`CROP_FRAMES`) fills it."""
    if frame not in CROP_FRAMES:
        raise ValueError(f"unknown crop frame {frame!r}; expected one of {', '.join(CROP_FRAMES)}")
    m = roi.crop_to_image(size)
    warp = dict(dsize=(size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    if frame == "grey" or not roi_reaches_past(roi, image.shape, size):
        return cv2.warpAffine(image, m, borderMode=cv2.BORDER_CONSTANT, borderValue=(CROP_GREY,) * 3, **warp)
    crop = cv2.warpAffine(image, m, borderMode=cv2.BORDER_REFLECT_101, **warp)
    # each crop pixel's place in the photo
    steps = np.arange(size, dtype=np.float32)
    col, row = (m[k, 0] * steps[None, :] + m[k, 1] * steps[:, None] + m[k, 2] for k in (0, 1))
    # beside the photo it is mirrored; above and below it, its edge rows go on (see CROP_FRAMES)
    beyond_rows = ((row < 0) | (row > image.shape[0] - 1))[..., None]
    fill = crop
    if beyond_rows.any():
        edge_rows = cv2.warpAffine(image, m, borderMode=cv2.BORDER_REPLICATE, **warp)
        fill = np.where(beyond_rows, edge_rows, crop)
    # blurred at a quarter of the size (a full-size blur this wide costs a fifth of the landmark model)
    small = cv2.resize(fill, (size // 4,) * 2, interpolation=cv2.INTER_AREA)
    frame_fill = cv2.resize(cv2.GaussianBlur(small, (0, 0), CROP_REFLECT_BLUR / 4), (size, size))
    # the share of each bilinear sample that falls on the photo: 1 inside, 0 a pixel beyond its edge
    height, width = image.shape[:2]
    inside_cols = np.clip(np.minimum(col + 1, width - col), 0, 1)
    inside = (inside_cols * np.clip(np.minimum(row + 1, height - row), 0, 1)).astype(np.float32)
    return cv2.blendLinear(crop, frame_fill, inside, 1.0 - inside)


@dataclass(frozen=True)
class LandmarkResult:
    points: np.ndarray  # (478, 3) photo pixels; z grows away from the camera
    presence: float  # model's face-presence probability for the crop
    #: Median distance between the mesh points read from the crop and from its mirror image, as a fraction
    #: of the crop's side (0 when only the crop was read). Small on faces; large where the model guesses.
    mirror_disagreement: float = 0.0


class FaceLandmarker:
    """Runs the landmark model; ``symmetric=True`` also runs the mirrored crop and averages the two.

    The model is not exactly mirror-equivariant (yaw of a photo and its mirror differ by up to ~2 degrees);
    averaging with the mirrored crop makes the fit equivariant and halves landmark noise, at twice the cost.
    """

    def __init__(self, model: bytes, threads: int = 1):
        self._model, self._threads = model, threads
        # One interpreter per batch size, made on first use: resizing per call would re-plan its memory.
        self._interpreters: dict[int, Interpreter] = {}
        probe = self._interpreter(2)
        self._input = probe.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in probe.get_output_details()}
        self._points, self._presence = outputs["Identity"], outputs["Identity_1"]

    def _interpreter(self, batch: int) -> Interpreter:
        if batch not in self._interpreters:
            self._interpreters[batch] = make_interpreter(self._model, self._threads, batch=batch)
        return self._interpreters[batch]

    def __call__(
        self, image: np.ndarray, roi: Roi, symmetric: bool = True, frame: str = "reflect"
    ) -> LandmarkResult:
        """Landmarks of the face in ``roi``; ``frame`` fills the crop past the photo (:func:`roi_crop`)."""
        m = roi.crop_to_image()
        crop = roi_crop(image, roi, frame=frame)
        batch = np.stack([crop, crop[:, ::-1]]) if symmetric else crop[None]
        interp = self._interpreter(len(batch))
        interp.set_tensor(self._input, batch.astype(np.float32) * (1.0 / 255.0))
        interp.invoke()
        raw = interp.get_tensor(self._points).reshape(len(batch), NUM_LANDMARKS, 3).astype(np.float64)
        logit = float(interp.get_tensor(self._presence).reshape(-1).mean())
        disagreement = 0.0
        if symmetric:
            unflipped = raw[1, mirror_permutation()]
            unflipped[:, 0] = FLIP_ORIGIN - unflipped[:, 0]
            gap = np.linalg.norm(raw[0, :MESH_POINTS, :2] - unflipped[:MESH_POINTS, :2], axis=1)
            disagreement = float(np.median(gap)) / INPUT_SIZE
            raw = (raw[0] + unflipped) / 2
        else:
            raw = raw[0]
        pts = np.empty_like(raw)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        pts[:, 2] = raw[:, 2] * (roi.size / INPUT_SIZE)
        return LandmarkResult(
            points=pts.astype(np.float32),
            presence=1.0 / (1.0 + np.exp(-logit)),
            mirror_disagreement=disagreement,
        )
