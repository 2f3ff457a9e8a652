"""Photo -> fitted faces: detection, dense landmarks, head pose and incomplete UV map, per face."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from uvaug.artifacts import FaceFit
from uvaug.fit.bundle import default_bundle
from uvaug.fit.detect import BlazeFaceDetector, Detection, detect_multiscale, unrotate
from uvaug.fit.landmarks import (
    EYE_CORNERS,
    MESH_POINTS,
    ROI_SCALE,
    FaceLandmarker,
    LandmarkResult,
    Roi,
    roi_from_points,
    roi_reaches_past,
)
from uvaug.fit.pose import Silhouette, estimate_pose
from uvaug.fit.uv import DEFAULT_MIN_FACING, DEFAULT_UV_SIZE, unwrap, uv_layout
from uvaug.registry import Registry

#: Why ``max_mirror_disagreement`` defaults to 0.03 (median gap between the mesh read from the crop and from
#: its mirror image, as a share of the crop's side). The presence score passes many false detections (coins,
#: the moon, ears in profile photos: presence 0.96-1.0), but the model's reading of them changes when
#: mirrored, while a face's does not (median 0.0045; profiles reach about 0.035). Chosen with
#: ``benchmarks/fit_false_detections.py`` (AFLW2000-3D dev, UTKFace val, pictures without people, all faces):
#: 1,385 of 1,387 faces kept; other detections (ears, hair, collapsed meshes, other people) 96 -> 25; false
#: ones 28 -> 0. On 1,161 UTKFace train chips every face found before is still found.
MAX_MIRROR_DISAGREEMENT = 0.03


@dataclass(frozen=True)
class FitOptions:
    faces: Literal["largest", "all"] = "largest"
    min_face_size: float = 24.0  # pixels, detector box side in the photo
    min_score: float = 0.5  # detector confidence
    min_presence: float = 0.5  # landmark model's face-presence probability (drops false detections)
    max_mirror_disagreement: float = MAX_MIRROR_DISAGREEMENT  # drops detections the model guesses at
    uv_size: int = DEFAULT_UV_SIZE
    min_facing: float = DEFAULT_MIN_FACING
    refine: int = 0  # landmark passes always re-run on the ROI re-centred on the previous pass's landmarks
    max_refine: int = 3  # further passes while the ROI still moves (turns, shifts or rescales)

    def is_face(self, result: LandmarkResult) -> bool:
        """Whether a detection's landmarks read as a face: present, and the same when the crop is mirrored."""
        return (
            result.presence >= self.min_presence
            and result.mirror_disagreement <= self.max_mirror_disagreement
        )


#: A landmark crop counts as settled when re-centring it on its own landmarks would turn it by less than this
#: (radians), shift it by less than this fraction of its size, and rescale it by less than this (log ratio).
#: The model tolerates ROI jitter of this order (MediaPipe tracks faces with such ROIs).
ROI_SETTLED = (np.radians(6.0), 0.05, 0.10)

#: Photo orientations tried in turn (np.rot90 counts) until a face survives: upright, sideways, upside down.
ORIENTATIONS = (0, 1, 3, 2)


@dataclass
class FittedFace:
    fit: FaceFit
    uv: np.ndarray  # (uv_size, uv_size, 4) RGBA uint8, alpha 255 = seen in the photo


class FitBackend(Protocol):
    def __call__(self, image: np.ndarray) -> list[FittedFace]: ...


FIT_BACKENDS: Registry[FitBackend] = Registry("fit backend")


def roi_from_detection(det: Detection) -> Roi:
    """MediaPipe's detection-to-ROI rule: box centre, eye-line rotation, 1.5x the box's longer side."""
    right_eye, left_eye = det.keypoints[0], det.keypoints[1]
    d = left_eye - right_eye
    return Roi(
        center=(det.box[:2] + det.box[2:]) / 2, size=det.size * ROI_SCALE, angle=float(np.arctan2(d[1], d[0]))
    )


@FIT_BACKENDS.register("mediapipe")
class MediaPipeFitter:
    """The default backend: MediaPipe Face Landmarker models on LiteRT, canonical-mesh UV layout."""

    def __init__(self, options: FitOptions | None = None):
        self.options = options or FitOptions()
        bundle = default_bundle()
        self.geometry = bundle.geometry
        self.silhouette = Silhouette.of_mesh(self.geometry.vertices, self.geometry.triangles)
        self.detector = BlazeFaceDetector(bundle.detector_tflite, min_score=self.options.min_score)
        self.landmarker = FaceLandmarker(bundle.landmarker_tflite)
        self.layout = uv_layout(self.options.uv_size)

    def detect(self, image: np.ndarray, orientation: int = 0) -> list[Detection]:
        """Faces in ``np.rot90(image, orientation)``, returned in ``image`` coordinates, largest first."""
        view = np.ascontiguousarray(np.rot90(image, orientation)) if orientation else image
        # A face must fill about a tenth of a tile to be found: smaller tiles cannot find wanted faces.
        min_tile = max(128, int(6 * self.options.min_face_size))
        found = detect_multiscale(self.detector, view, min_tile, exhaustive=self.options.faces == "all")
        if orientation:
            found = [unrotate(d, orientation, image.shape) for d in found]
        return [d for d in found if d.size >= self.options.min_face_size]

    def landmarks(self, image: np.ndarray, det: Detection) -> LandmarkResult:
        """Landmarks on the detection's ROI, re-centred on its own landmarks until the ROI stops moving.

        Detector keypoints are rough on sideways or tilted faces; each pass straightens the crop. Where the
        crop reaches past the photo it is framed by the photo itself (mirrored beside it, continued above and
        below: the model reads turned faces truer so); if the model does not take that for a face, the crops
        are read again framed in grey (:data:`uvaug.fit.landmarks.CROP_FRAMES`).
        """
        result, framed = self._settled_landmarks(image, det, "reflect")
        if framed and not self.options.is_face(result):
            result, _ = self._settled_landmarks(image, det, "grey")
        return result

    def _settled_landmarks(
        self, image: np.ndarray, det: Detection, frame: str
    ) -> tuple[LandmarkResult, bool]:
        """The settled reading with crops framed by ``frame``, and whether any crop reached past the photo."""
        roi = roi_from_detection(det)
        result = self.landmarker(image, roi, frame=frame)
        framed = roi_reaches_past(roi, image.shape)
        for i in range(self.options.max_refine):
            pts = result.points
            new = roi_from_points(pts[:MESH_POINTS, :2], pts[EYE_CORNERS[1], :2], pts[EYE_CORNERS[0], :2])
            turn = abs((new.angle - roi.angle + np.pi) % (2 * np.pi) - np.pi)
            shift = np.linalg.norm(new.center - roi.center) / roi.size
            scale = abs(np.log(new.size / roi.size))
            settled = turn < ROI_SETTLED[0] and shift < ROI_SETTLED[1] and scale < ROI_SETTLED[2]
            if i >= self.options.refine and settled:
                break
            roi, result = new, self.landmarker(image, new, frame=frame)
            framed = framed or roi_reaches_past(roi, image.shape)
        return result, framed

    def __call__(self, image: np.ndarray) -> list[FittedFace]:
        """Every wanted face, largest first; rotated views are tried only when the upright one finds none."""
        for orientation in ORIENTATIONS:
            faces = []
            for det in self.detect(image, orientation):
                result = self.landmarks(image, det)
                if self.options.is_face(result):
                    faces.append(self._face(image, det, result.points, result.presence))
                    if self.options.faces == "largest":
                        break
            if faces:
                return faces
        return []

    def _face(self, image: np.ndarray, det: Detection, landmarks: np.ndarray, presence: float) -> FittedFace:
        g = self.geometry
        vertices = landmarks[: len(g.vertices)]
        pose = estimate_pose(vertices, g.vertices, silhouette=self.silhouette)
        fit = FaceFit(
            image_size=np.asarray(image.shape[:2], np.int32),
            box=det.box.astype(np.float32),
            keypoints=det.keypoints.astype(np.float32),
            score=float(det.score),
            presence=float(presence),
            landmarks=landmarks.astype(np.float32),
            vertices=vertices.astype(np.float32),
            rotation=pose.rotation,
            scale=pose.scale,
            translation=pose.translation,
            transform=pose.transform,
            yaw=pose.yaw,
            pitch=pose.pitch,
            roll=pose.roll,
        )
        return FittedFace(fit=fit, uv=unwrap(image, vertices, self.layout, self.options.min_facing))


def create_fitter(backend: str = "mediapipe", options: FitOptions | None = None) -> FitBackend:
    return FIT_BACKENDS.create(backend, options)
