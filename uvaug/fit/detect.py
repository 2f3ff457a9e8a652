"""BlazeFace (short range) face detection on LiteRT.

Reimplements MediaPipe's detection graph around the bundle's ``face_detector.tflite``: SSD anchors
(strides 8/16/16/16, fixed size), box and 6-keypoint decoding, sigmoid scores and weighted non-maximum
suppression. The image is letterboxed to 128x128 so any size and aspect ratio works.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from uvaug.fit.litert import make_interpreter

INPUT_SIZE = 128
#: Border added around an image in which the whole-image pass found no face (:func:`detect_framed`), as a
#: share of its longer side, and its grey level. Chosen on renders of 200 UTKFace *train* faces at yaw +-45
#: and +-60 (pitch -20, 0, 20) that the whole-image pass missed: a grey frame of 5 / 10 / 12.5 / 15 / 20%
#: found 111 / 119 / 121 / 123 / 119 of the 152; black or white frames of 15%, 101 and 115.
FRAME_MARGIN = 0.15
FRAME_GREY = 128
#: Keypoint order of BlazeFace: the subject's right eye (image left in a frontal photo), left eye,
#: nose tip, mouth centre, right ear tragion, left ear tragion.
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")


@dataclass(frozen=True)
class Detection:
    """One face, in pixel coordinates of the (orientation-corrected) photo."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    keypoints: np.ndarray  # (6, 2) x, y
    score: float

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def shifted(self, dx: float, dy: float) -> Detection:
        """The same detection moved by (dx, dy) pixels: from a tile's or a framed copy's coordinates."""
        offset = np.float32([dx, dy])
        return Detection(self.box + np.tile(offset, 2), self.keypoints + offset, self.score)


@cache
def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1], MediaPipe's SsdAnchorsCalculator for the short-range model."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = INPUT_SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw model outputs -> (N, 16) boxes+keypoints in [0, 1] letterbox coordinates and (N,) scores."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80.0, 80.0)))
    keep = scores >= min_score
    raw = raw_boxes.reshape(-1, 16)[keep] / INPUT_SIZE
    anchors = ssd_anchors()[keep]
    cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    out = np.empty_like(raw)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    out[:, 4::2] = raw[:, 4::2] + anchors[:, :1]
    out[:, 5::2] = raw[:, 5::2] + anchors[:, 1:]
    return out, scores[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's WEIGHTED suppression: each cluster is replaced by the score-weighted mean of its members.

    Averaging overlapping anchors steadies the keypoints, which the landmark crop's rotation depends on.
    """
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou_threshold)
        members[i] = True
        w = scores[members]
        out.append(((boxes[members] * w[:, None]).sum(0) / w.sum(), float(scores[i])))
        alive &= ~members
    return out


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float, float]:
    """Fit the image into a size x size square, padding with black: returns (square, scale, pad_x, pad_y)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    square = np.zeros((size, size, 3), np.uint8)
    square[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return square, scale, pad_x, pad_y


class BlazeFaceDetector:
    """Detects faces in an RGB uint8 image; one interpreter per instance (reuse it: creation costs ~10 ms)."""

    def __init__(self, model: bytes, min_score: float = 0.5, iou_threshold: float = 0.3, threads: int = 1):
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._interp = make_interpreter(model, threads)
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self._boxes, self._scores = outputs["regressors"], outputs["classificators"]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        square, scale, pad_x, pad_y = letterbox(image)
        tensor = square.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        self._interp.set_tensor(self._input, tensor)
        self._interp.invoke()
        boxes, scores = decode(
            self._interp.get_tensor(self._boxes), self._interp.get_tensor(self._scores), self.min_score
        )
        detections = []
        for coords, score in weighted_nms(boxes, scores, self.iou_threshold):
            xy = coords.reshape(-1, 2) * INPUT_SIZE
            xy = (xy - (pad_x, pad_y)) / scale
            detections.append(
                Detection(
                    box=xy[:2].reshape(4).astype(np.float32), keypoints=xy[2:].astype(np.float32), score=score
                )
            )
        return sorted(detections, key=lambda d: -d.size)


def suppress_duplicates(detections: list[Detection], iou_threshold: float = 0.3) -> list[Detection]:
    """Greedy NMS across detection passes (tiles, scales): the most confident of overlapping boxes wins."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if not kept or _iou(det.box, np.stack([k.box for k in kept])).max() <= iou_threshold:
            kept.append(det)
    return sorted(kept, key=lambda d: -d.size)


def _tile_origins(length: int, tile: int) -> np.ndarray:
    if length <= tile:
        return np.zeros(1, int)
    return np.linspace(0, length - tile, int(np.ceil((length - tile) / (tile / 2))) + 1).round().astype(int)


def detect_multiscale(
    detector: BlazeFaceDetector, image: np.ndarray, min_tile: int, exhaustive: bool, max_levels: int = 3
) -> list[Detection]:
    """The whole image, then the image in a grey frame (:func:`detect_framed`) if that finds no face, then
    overlapping square tiles of halving size for faces too small at full view.

    The short-range model needs a face to fill roughly a tenth of its 128x128 input, so a face in a wide group
    photo or a large scene is only found in a tile. ``exhaustive`` runs every level (all faces wanted);
    otherwise tiling stops at the first level that finds a face.
    """
    found = detector(image) or detect_framed(detector, image)
    h, w = image.shape[:2]
    tile = min(h, w) if max(h, w) > 1.2 * min(h, w) else min(h, w) // 2
    levels = 0
    while (exhaustive or not found) and tile >= min_tile and levels < max_levels:
        for y in _tile_origins(h, tile):
            for x in _tile_origins(w, tile):
                found.extend(det.shifted(x, y) for det in detector(image[y : y + tile, x : x + tile]))
        tile //= 2
        levels += 1
    return suppress_duplicates(found)


def detect_framed(
    detector: BlazeFaceDetector, image: np.ndarray, margin: float = FRAME_MARGIN
) -> list[Detection]:
    """Faces in the image framed by a neutral grey border of ``margin`` times its longer side, in ``image``
    coordinates.

    The short-range model misses many turned faces that fill the whole picture, as in tightly cropped face
    datasets: a face in profile puts its nose at the picture's edge. With a frame around it, it finds most.
    """
    pad = max(1, round(margin * max(image.shape[:2])))
    framed = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(FRAME_GREY,) * 3)
    return [det.shifted(-pad, -pad) for det in detector(framed)]


def unrotate(det: Detection, k: int, shape: tuple[int, ...]) -> Detection:
    """Map a detection found in ``np.rot90(image, k)`` back to ``image`` coordinates."""
    h, w = shape[:2]

    def back(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        if k == 1:
            return np.stack([w - 1 - y, x], axis=1)
        if k == 2:
            return np.stack([w - 1 - x, h - 1 - y], axis=1)
        return np.stack([y, h - 1 - x], axis=1)

    corners = back(det.box[[0, 1, 2, 3, 0, 3, 2, 1]].reshape(4, 2))
    box = np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)
    return Detection(box=box, keypoints=back(det.keypoints).astype(np.float32), score=det.score)
