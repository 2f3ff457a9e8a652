"""The face model itself: bundle parsing, detection, landmarks and pose on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from uvaug.fit.bundle import default_bundle
from uvaug.fit.landmarks import mirror_permutation
from uvaug.fit.pose import (
    DEPTH_WEIGHT,
    Silhouette,
    angles_from_rotation,
    estimate_pose,
    rotation_from_angles,
)


def test_canonical_mesh_parsed_from_bundle():
    g = default_bundle().geometry
    assert g.vertices.shape == (468, 3) and g.uvs.shape == (468, 2) and g.triangles.shape == (898, 3)
    assert g.triangles.min() == 0 and g.triangles.max() == 467
    assert (g.uvs >= 0).all() and (g.uvs <= 1).all()
    # Left-right symmetric layout: every vertex has a mirror twin with x -> -x and u -> 1 - u.
    mirrored = g.vertices * [-1, 1, 1]
    twin = np.argmin(np.linalg.norm(g.vertices[None] - mirrored[:, None], axis=2), axis=1)
    assert np.abs(g.vertices[twin] - mirrored).max() < 1e-3
    assert np.abs(g.uvs[twin, 0] - (1 - g.uvs[:, 0])).max() < 2e-3
    assert len(g.procrustes_ids) == len(g.procrustes_weights) > 10 and g.procrustes_weights.min() > 0


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (30, 0, 0), (-50, 10, 5), (70, -20, -15)])
def test_pose_convention_roundtrip(yaw, pitch, roll):
    """Procrustes on a posed canonical mesh reads back the angles, with the documented signs."""
    g = default_bundle().geometry
    rot = rotation_from_angles(yaw, pitch, roll)
    nose = rot @ [0, 0, 1.0]  # camera frame: x right, y up, z towards the viewer
    if yaw:
        assert np.sign(nose[0]) == np.sign(yaw)  # yaw > 0: nose towards the image's right
    if pitch:
        assert np.sign(nose[1]) == np.sign(pitch)  # pitch > 0: nose up
    photo = (12.0 * g.vertices @ rot.T) * [1, -1, -1] + [300, 200, 0]  # to photo pixels, y down, z away
    pose = estimate_pose(photo, g.vertices)
    assert pose.yaw == pytest.approx(yaw, abs=1e-6)
    assert pose.pitch == pytest.approx(pitch, abs=1e-6)
    assert pose.roll == pytest.approx(roll, abs=1e-6)
    assert pose.scale == pytest.approx(12.0)
    mapped = g.vertices @ pose.transform[:, :3].T + pose.transform[:, 3]
    assert np.abs(mapped - photo).max() < 1e-4  # float32 mesh
    assert angles_from_rotation(rotation_from_angles(yaw, pitch, roll)) == pytest.approx((yaw, pitch, roll))


def test_depth_counts_less_than_position_in_the_pose_fit():
    """A mesh whose depth is squashed (as the landmark model squashes turned faces) still reads its turn from
    the image positions; a fit trusting depth fully reads it short. Degenerate meshes do not raise."""
    g = default_bundle().geometry
    rot = rotation_from_angles(50, 0, 0)
    turned = 12.0 * g.vertices @ rot.T
    squashed = turned * [1, 1, 0.6]  # depth 40% too shallow, positions exact
    photo = squashed * [1, -1, -1] + [300, 200, 0]
    read = {w: estimate_pose(photo, g.vertices, depth_weight=w).yaw for w in (0.0, DEPTH_WEIGHT, 1.0)}
    assert read[0.0] == pytest.approx(50, abs=1e-3)  # positions alone: exact
    assert read[1.0] < 43 < 46 < read[DEPTH_WEIGHT] < 50  # measured 42.1 and 47.1
    flat = estimate_pose(np.tile([[100.0, 100.0, 0.0]], (468, 1)), g.vertices)
    assert np.isfinite(flat.rotation).all() and flat.rotation @ flat.rotation.T == pytest.approx(np.eye(3))


def _outline_on_silhouette(photo_cam: np.ndarray, rot: np.ndarray, silhouette: Silhouette) -> np.ndarray:
    """Camera-frame mesh points with the far outline moved onto the mesh's silhouette, as the landmark
    model places it on turned faces (each far outline point where the outermost vertex of its row shows)."""
    g = default_bundle().geometry
    lateral = np.sign(g.vertices[silhouette.outline, 0])[:, None] * rot[:, 0]
    far = lateral[:, 2] < 0
    rows = silhouette.rows[far]
    outward = np.sign(lateral[far, 0])[:, None] * (g.vertices @ rot[0])[rows]
    outermost = rows[np.arange(len(rows)), np.argmax(np.where(rows >= 0, outward, -np.inf), 1)]
    out = photo_cam.copy()
    out[silhouette.outline[far], :2] = photo_cam[outermost, :2]
    return out


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(10, 0, 0), (50, 0, 5), (-60, -10, 0), (70, 10, -5)])
def test_silhouette_fit_reads_a_turned_outline_as_the_landmark_model_gives_it(yaw, pitch, roll):
    """Landmarks whose far outline lies on the cheek's visible edge read short when matched to the mesh's
    own outline vertices (the plain fit) and true with the silhouette fit; mirrored, they read the mirror
    pose."""
    g = default_bundle().geometry
    silhouette = Silhouette.of_mesh(g.vertices, g.triangles)
    rot = rotation_from_angles(yaw, pitch, roll)
    landmarks = _outline_on_silhouette(12.0 * g.vertices @ rot.T, rot, silhouette)
    photo = landmarks * [1, -1, -1] + [300, 200, 0]
    pose = estimate_pose(photo, g.vertices, silhouette=silhouette)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=0.05)
    plain = estimate_pose(photo, g.vertices)
    if abs(yaw) >= 50:
        assert abs(plain.yaw) < abs(yaw) - 2  # measured 47.4 at 50, 56.7 at 60, 66.0 at 70
    mirrored = photo[mirror_permutation()[: len(photo)]] * [-1, 1, 1] + [600, 0, 0]
    flipped = estimate_pose(mirrored, g.vertices, silhouette=silhouette)
    assert (flipped.yaw, flipped.pitch, flipped.roll) == pytest.approx((-yaw, pitch, -roll), abs=0.05)


def test_roll_sign_follows_image_rotation():
    """roll > 0 is counter-clockwise in the photo: a point right of centre moves up (smaller y)."""
    g = default_bundle().geometry
    rot = rotation_from_angles(0, 0, 20)
    right_eye_corner = (rot @ g.vertices[263]) * [1, -1, -1]
    assert right_eye_corner[1] < -g.vertices[263, 1]


def test_astronaut_is_found_frontal(fitter, astronaut):
    faces = fitter(astronaut)
    assert len(faces) == 1
    fit = faces[0].fit
    x0, y0, x1, y1 = fit.box
    assert 150 < x0 < x1 < 300 and 60 < y0 < y1 < 200  # her face, not the flag or the helmet
    assert abs(fit.yaw) < 10 and abs(fit.pitch) < 20 and abs(fit.roll) < 10
    assert fit.score > 0.8 and fit.presence > 0.9
    # Dense landmarks sit on the face: all within the detector box grown by 30%.
    w, h = x1 - x0, y1 - y0
    pts = fit.landmarks[:, :2]
    assert (pts[:, 0] > x0 - 0.3 * w).all() and (pts[:, 0] < x1 + 0.3 * w).all()
    assert (pts[:, 1] > y0 - 0.3 * h).all() and (pts[:, 1] < y1 + 0.3 * h).all()
    np.testing.assert_allclose(fit.vertices, fit.landmarks[:468])


def test_a_face_filling_the_whole_picture_is_found(fitter, astronaut):
    """Tight face crops (aligned datasets, turned renders): the detector misses a face that fills the whole
    picture, so the fitter looks again with a grey frame around it; landmarks land where the uncropped
    photo's fit has them."""
    full = fitter(astronaut)[0].fit
    x0, y0, x1, y1 = full.box
    half = 0.4 * max(x1 - x0, y1 - y0)  # a square crop at 80% of the detector's box
    cx, cy = round((x0 + x1) / 2 - half), round((y0 + y1) / 2 - half)
    crop = np.ascontiguousarray(astronaut[cy : cy + round(2 * half), cx : cx + round(2 * half)])
    assert fitter.detector(crop) == []  # the whole-picture pass alone finds nothing here
    faces = fitter(crop)
    assert len(faces) == 1
    fit = faces[0].fit
    shift = np.abs(fit.landmarks[:468, :2] + (cx, cy) - full.landmarks[:468, :2])
    assert np.median(shift) < 0.03 * 2 * half
    assert fit.yaw == pytest.approx(full.yaw, abs=3) and fit.roll == pytest.approx(full.roll, abs=3)


def test_the_landmark_crop_is_framed_by_the_photo_reflected_or_grey_past_it(astronaut):
    """Where a tightly cropped face's box reaches past the photo, the model sees the photo mirrored beside it
    and its edge rows continued above and below it, blurred (it reads turned faces truer so), or mid grey
    (the fallback); inside, the crop is the photo either way (``uvaug.fit.landmarks.CROP_FRAMES``)."""
    from uvaug.fit.landmarks import (
        CROP_GREY,
        CROP_REFLECT_BLUR,
        INPUT_SIZE,
        Roi,
        roi_crop,
        roi_reaches_past,
    )

    photo = np.ascontiguousarray(astronaut[100:200, 150:250])  # 100 x 100
    roi = Roi(center=np.array([49.5, 49.5]), size=200.0, angle=0.0)
    assert roi_reaches_past(roi, photo.shape)
    assert not roi_reaches_past(Roi(center=np.array([49.5, 49.5]), size=60.0, angle=0.3), photo.shape)
    grey, reflected = roi_crop(photo, roi, frame="grey"), roi_crop(photo, roi)
    assert grey.shape == reflected.shape == (INPUT_SIZE, INPUT_SIZE, 3)

    def frame(crop: np.ndarray) -> np.ndarray:
        return np.concatenate([crop[:48], crop[-48:], crop[:, :48]], axis=None).astype(int)

    assert (frame(grey) == CROP_GREY).all()
    # the photo twice as large: mirrored beside it, its edge rows continued above and below it; blurred
    extended = cv2.copyMakeBorder(photo, 50, 50, 50, 50, cv2.BORDER_REPLICATE)
    extended[50:150] = cv2.copyMakeBorder(photo, 0, 0, 50, 50, cv2.BORDER_REFLECT_101)
    expected = cv2.GaussianBlur(cv2.resize(extended, (256, 256)), (0, 0), CROP_REFLECT_BLUR)
    assert np.abs(frame(reflected) - frame(expected)).mean() < 4
    assert np.abs(frame(reflected) - CROP_GREY).mean() > 20  # the photo's tones, not a flat frame
    inside = cv2.resize(photo, (128, 128), interpolation=cv2.INTER_LINEAR)
    for crop in (grey, reflected):
        assert np.abs(crop[72:184, 72:184].astype(int) - inside[8:120, 8:120]).mean() < 8  # up to resampling
    with pytest.raises(ValueError, match="unknown crop frame"):
        roi_crop(photo, roi, frame="black")


@pytest.mark.parametrize("photo", ["astronaut", "hopper"])
def test_mirrored_photo_negates_yaw_and_roll(fitter, photo, request):
    image = request.getfixturevalue(photo)
    fit = fitter(image)[0].fit
    mirrored = fitter(np.ascontiguousarray(image[:, ::-1]))[0].fit
    assert mirrored.yaw == pytest.approx(-fit.yaw, abs=2.0)
    assert mirrored.roll == pytest.approx(-fit.roll, abs=2.0)
    assert mirrored.pitch == pytest.approx(fit.pitch, abs=2.0)


@pytest.mark.parametrize(
    ("code", "roll_change"),
    [
        (cv2.ROTATE_90_CLOCKWISE, -90),
        (cv2.ROTATE_90_COUNTERCLOCKWISE, 90),
        (cv2.ROTATE_180, 180),
    ],
)
def test_rotated_photo_changes_roll_only(fitter, astronaut, code, roll_change):
    upright = fitter(astronaut)[0].fit
    turned = fitter(np.ascontiguousarray(cv2.rotate(astronaut, code)))[0].fit
    delta = (turned.roll - upright.roll - roll_change + 180) % 360 - 180
    assert abs(delta) < 5
    assert turned.yaw == pytest.approx(upright.yaw, abs=7)


def test_all_faces_in_a_group_photo(astronaut, hopper):
    from uvaug.fit.fitter import FitOptions, create_fitter

    left = cv2.resize(astronaut, (512, 512))
    right = cv2.resize(hopper, (440, 512))
    group = np.ascontiguousarray(np.hstack([left, right]))
    all_faces = create_fitter(options=FitOptions(faces="all"))(group)
    assert len(all_faces) == 2
    centres = sorted(float(f.fit.box[0] + f.fit.box[2]) / 2 for f in all_faces)
    assert centres[0] < 512 < centres[1]
    largest = create_fitter(options=FitOptions(faces="largest"))(group)
    assert len(largest) == 1
    assert largest[0].fit.box[2] - largest[0].fit.box[0] == pytest.approx(
        max(f.fit.box[2] - f.fit.box[0] for f in all_faces)
    )


def test_no_face_in_a_photo_without_people(fitter):
    import skimage.data

    coffee = np.ascontiguousarray(skimage.data.coffee())
    assert fitter(coffee) == []


@pytest.mark.parametrize("name", ["cell", "colorwheel", "moon", "hubble_deep_field"])
def test_detections_the_landmark_model_guesses_at_are_dropped(fitter, name):
    """Pictures without people whose detections pass the presence score (0.75-1.0): the landmark model reads
    them differently once mirrored (median gap 0.04-0.11 of the crop), so the fitter finds no face."""
    import skimage.data

    from uvaug.fit.fitter import FitOptions, create_fitter

    picture = getattr(skimage.data, name)()
    picture = np.ascontiguousarray(np.stack([picture] * 3, -1) if picture.ndim == 2 else picture[..., :3])
    ungated = create_fitter(options=FitOptions(max_mirror_disagreement=float("inf")))
    assert ungated(picture), "the detector and presence score alone accept a face here"
    assert fitter(picture) == []


def test_faces_read_the_same_mirrored(fitter, astronaut, hopper):
    """Real faces sit far under the default cap: their mirror disagreement is about a tenth of it."""
    from uvaug.fit.fitter import MAX_MIRROR_DISAGREEMENT

    for photo in (astronaut, hopper):
        det = fitter.detect(photo)[0]
        result = fitter.landmarks(photo, det)
        assert 0 < result.mirror_disagreement < MAX_MIRROR_DISAGREEMENT / 4
        assert fitter.options.is_face(result)


def test_min_face_size_filters_small_faces(astronaut):
    from uvaug.fit.fitter import FitOptions, create_fitter

    assert create_fitter(options=FitOptions(min_face_size=200))(astronaut) == []


def test_a_framed_crop_not_read_as_a_face_is_read_again_framed_in_grey(astronaut):
    """Past a tight photo's border the crop is framed by the photo itself; where the model does not take
    that for a face (here: no reading is, presence above 1 being asked), the grey-framed reading is kept."""
    from uvaug.fit.fitter import FitOptions, create_fitter

    strict = create_fitter(options=FitOptions(min_presence=1.01))
    crop = np.ascontiguousarray(astronaut[60:240, 140:320])  # the face, cut at its outline
    det = strict.detect(crop)[0]
    framed, reaches_past = strict._settled_landmarks(crop, det, "reflect")
    grey, _ = strict._settled_landmarks(crop, det, "grey")
    assert reaches_past
    assert np.abs(framed.points - grey.points).max() > 0.05  # the two frames read differently
    np.testing.assert_array_equal(strict.landmarks(crop, det).points, grey.points)
