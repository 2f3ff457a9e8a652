"""How well ``uvaug fit`` tells faces from false detections, by the landmark model's mirror disagreement.

    python benchmarks/fit_false_detections.py [--aflw AFLW2000_DEV] [--data UTKFACE] [--limit N]

Every detection (all faces, every orientation the fitter would try) is read by the landmark model on its crop
and on the crop's mirror image; the median gap between the two meshes, as a share of the crop's side, is the
*mirror disagreement* that ``FitOptions.max_mirror_disagreement`` caps. Detections are labelled:

* **AFLW2000-3D (dev)**: a *face* when its box overlaps the annotated 68 points' box (IoU > 0.3) and its
  fitted abs(yaw) is within 25 degrees of the annotated abs(yaw); anything else (another face in the photo,
  an ear, hair, a collapsed mesh on a profile) is *other*.
* **UTKFace val**: chips with one centred face; a *face* when the box is centred and at least 60 px wide.
* **non-face pictures**: scikit-image's sample pictures without people, whole and as 12 seeded random square
  crops each; every detection there is false.

For each cap it prints how many detections of each label the fitter would accept (faces="all"; the first
orientation with an accepted detection wins, as in the fitter), against no cap at all.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from common import UTKFACE, add_utkface_argument, utkface_names
from fit_pose_aflw import read_annotations

from uvaug.fit.fitter import MAX_MIRROR_DISAGREEMENT, ORIENTATIONS, FitOptions, MediaPipeFitter
from uvaug.fit.landmarks import LandmarkResult
from uvaug.fit.pose import estimate_pose
from uvaug.io import load_image

#: Labels one detection of an image: "face", "other" or "false".
Labeller = Callable[["Reading"], str]
AFLW = UTKFACE.parent / "aflw2000-dev"
CAPS = (0.02, 0.025, MAX_MIRROR_DISAGREEMENT, 0.04, 0.05, float("inf"))
#: scikit-image sample pictures with no human face in them.
NON_FACE_PICTURES = (
    "brick", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass", "gravel", "horse",
    "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina", "rocket",
    "shepp_logan_phantom", "text",
)  # fmt: skip
CROPS_PER_PICTURE = 12


@dataclass
class Reading:
    orientation: int
    box: np.ndarray
    yaw: float
    result: LandmarkResult
    label: str = "false"  # "face", "other" or "false"


def readings(fitter: MediaPipeFitter, image: np.ndarray) -> list[Reading]:
    """Every detection in every orientation, with the landmark model's readings (no gate applied)."""
    g = fitter.geometry
    out = []
    for orientation in ORIENTATIONS:
        for det in fitter.detect(image, orientation):
            result = fitter.landmarks(image, det)
            mesh = result.points[: len(g.vertices)]
            pose = estimate_pose(mesh, g.vertices)
            out.append(Reading(orientation, det.box, pose.yaw, result))
    return out


def accepted(found: list[Reading], options: FitOptions) -> list[Reading]:
    """The readings the fitter keeps with ``options`` (faces="all"): the first orientation with any wins."""
    for orientation in ORIENTATIONS:
        kept = [r for r in found if r.orientation == orientation and options.is_face(r.result)]
        if kept:
            return kept
    return []


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(inter / max(area - inter, 1e-9))


def aflw_images(root: Path, limit: int | None) -> Iterator[tuple[np.ndarray, Labeller]]:
    rows, angles = read_annotations(root, limit or 0)
    points = np.load(root / "pts3d_68.npy")
    for row, pts, (_, yaw, _) in zip(rows, points[: len(rows)], np.abs(angles), strict=True):
        annotated = np.array([pts[0].min(), pts[1].min(), pts[0].max(), pts[1].max()])

        def label(r: Reading, annotated=annotated, yaw=yaw) -> str:
            return "face" if iou(r.box, annotated) > 0.3 and abs(abs(r.yaw) - yaw) < 25 else "other"

        yield load_image(root / "images" / row["image"]), label


def utkface_images(data: Path, limit: int | None) -> Iterator[tuple[np.ndarray, Labeller]]:
    for name in utkface_names(data, limit):
        image = load_image(data / "images" / name)
        h, w = image.shape[:2]

        def label(r: Reading, h=h, w=w) -> str:
            cx, cy = (r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2
            wide = r.box[2] - r.box[0] > 0.3 * w
            centred = abs(cx - w / 2) < 0.2 * w and abs(cy - h / 2) < 0.25 * h and wide
            return "face" if centred else "other"

        yield image, label


def non_face_images() -> Iterator[tuple[np.ndarray, Labeller]]:
    rng = random.Random(0)
    for name in NON_FACE_PICTURES:
        picture = getattr(skimage.data, name)()
        if picture.dtype != np.uint8:
            values = picture.astype(np.float64)
            picture = (255 * (values - values.min()) / max(np.ptp(values), 1e-9)).astype(np.uint8)
        picture = np.ascontiguousarray(np.stack([picture] * 3, -1) if picture.ndim == 2 else picture[..., :3])
        yield picture, lambda r: "false"
        h, w = picture.shape[:2]
        for _ in range(CROPS_PER_PICTURE):
            side = rng.randint(min(h, w) // 4, min(h, w))
            y, x = rng.randint(0, h - side), rng.randint(0, w - side)
            crop = cv2.resize(picture[y : y + side, x : x + side], (200, 200))
            yield np.ascontiguousarray(crop), lambda r: "false"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aflw", type=Path, default=AFLW, help="AFLW2000-3D dev folder (annotations.csv, ...)")
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per dataset")
    args = ap.parse_args()

    fitter = MediaPipeFitter(FitOptions(faces="all"))
    sets = {}
    sources = {
        "AFLW2000 dev": lambda: aflw_images(args.aflw, args.limit),
        "UTKFace val": lambda: utkface_images(args.data, args.limit),
        "non-face": non_face_images,
    }
    for name, source in sources.items():
        found = []
        for image, label in source():
            image_readings = readings(fitter, image)
            for r in image_readings:
                r.label = label(r)
            found.append(image_readings)
        sets[name] = found
        print(f"{name}: {len(found)} images, {sum(map(len, found))} detections")

    print("\ndetections the fitter accepts (faces='all'), by cap; inf = no cap (presence only)")
    print(f"{'cap':>6} {'faces':>7} {'other':>7} {'false':>7}")
    for cap in CAPS:
        options = FitOptions(faces="all", max_mirror_disagreement=cap)
        counts = {"face": 0, "other": 0, "false": 0}
        for found in sets.values():
            for image_readings in found:
                for r in accepted(image_readings, options):
                    counts[r.label] += 1
        marker = "  (default)" if cap == MAX_MIRROR_DISAGREEMENT else ""
        print(f"{cap:>6.3g} {counts['face']:>7} {counts['other']:>7} {counts['false']:>7}{marker}")


if __name__ == "__main__":
    main()
