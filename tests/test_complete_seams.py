"""Seam blending: the step where completed texels meet the photo's goes; nothing else moves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from uvaug.complete.maps import face_coverage
from uvaug.complete.pairs import visible_at
from uvaug.complete.seams import FADE_TEXELS, MIN_SIZE, blend_output_seams, blend_seams
from uvaug.complete.tensors import known_mask

SIZE = 256
#: Far enough turned that the hidden far side is wider than the fade (texels 3 fades deep): at 60 that
#: band is only a few dozen texels, and a degree of difference in the fitted pose empties it.
YAW = 70.0
STEP = 30.0


@pytest.fixture(scope="module")
def astronaut_face(fitter, astronaut: np.ndarray):
    """The astronaut's real fit and UV map from the fit stage (~84% of the face known)."""
    (face,) = fitter(astronaut)
    return face


@pytest.fixture(scope="module")
def hidden(astronaut_face) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _hidden(astronaut_face.fit, astronaut_face.uv)


@pytest.fixture(scope="module")
def uv_map(astronaut_face) -> np.ndarray:
    return astronaut_face.uv


def _hidden(fit, uv_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The map's known and face masks with what the head turned to yaw 70 would hide hidden (the far
    side), the texels whose truth is known there, and each texel's distance to the nearest known one."""
    seen = known_mask(uv_map[None])[0]
    face = face_coverage(SIZE) | seen
    known = seen & visible_at(fit, YAW, 0.0, SIZE)
    judged = seen & ~known
    distance = cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 3)
    return known, face, judged, distance


def test_a_step_at_the_rim_is_removed_and_fades_into_the_hole(uv_map: np.ndarray, hidden):
    """A fill that is the truth plus 30 grey levels (an exposure mismatch): next to the rim it comes back to
    the truth; deep inside the hole, where the fade has ended, it stays as the completer made it."""
    known, face, judged, distance = hidden
    truth = uv_map[..., :3].astype(np.float32)
    filled = truth.copy()
    filled[face & ~known] += STEP
    blended = blend_seams(filled, known, face)
    np.testing.assert_array_equal(blended[known], truth[known])  # the photo's texels never move
    np.testing.assert_array_equal(blended[~face], filled[~face])
    error = np.abs(blended - truth).mean(-1)
    near, deep = judged & (distance <= 2), judged & (distance >= 3 * FADE_TEXELS)
    assert near.sum() > 300 and deep.sum() > 300
    assert error[near].mean() < 0.3 * STEP, error[near].mean()  # measured 4.6
    assert abs(error[deep].mean() - STEP) < 0.05 * STEP, error[deep].mean()  # measured 30.0
    # In between, the correction fades with the distance from the rim.
    middle = judged & (np.abs(distance - FADE_TEXELS) < 2)
    assert 0.4 * STEP < error[middle].mean() < 0.8 * STEP, error[middle].mean()  # measured 20.1


def test_a_fill_that_continues_the_photo_is_left_nearly_as_it_is(uv_map: np.ndarray, hidden):
    """The truth itself as the fill: what the blend takes for a step is the texture's own change across
    the rim, which it then fades into the hole. Measured 37.0 dB over the hidden texels (39-40 dB on
    UTKFace train faces with the benchmark's masks): a ceiling far above what completion reaches."""
    known, face, judged, _ = hidden
    truth = uv_map[..., :3].astype(np.float32)
    blended = blend_seams(truth, known, face)
    mse = np.mean((blended[judged] - truth[judged]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 32.0


def test_batches_sizes_and_degenerate_maps(uv_map: np.ndarray, hidden):
    known, face, _, _ = hidden
    rgb = uv_map[..., :3].astype(np.float32)
    rgb[face & ~known] += STEP
    batch = blend_seams(
        np.stack([rgb, rgb[:, ::-1]]), np.stack([known, known[:, ::-1]]), np.stack([face, face[:, ::-1]])
    )
    np.testing.assert_array_equal(batch[0], blend_seams(rgb, known, face))
    np.testing.assert_allclose(batch[1], batch[0][:, ::-1], atol=1e-3)  # mirror in, mirror out
    # Nothing known, or nothing hidden: nothing to blend.
    np.testing.assert_array_equal(blend_seams(rgb, np.zeros_like(known), face), rgb)
    np.testing.assert_array_equal(blend_seams(rgb, face.copy(), face), rgb)
    # A half-size map is blended at its own scale: the step still goes next to the rim.
    small = cv2.resize(rgb, (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_NEAREST)
    small_known = known[::2, ::2]
    out = blend_seams(small, small_known, face[::2, ::2])
    touching = cv2.dilate(small_known.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rim = face[::2, ::2] & ~small_known & touching & known_mask(uv_map[None])[0][::2, ::2]
    truth = cv2.resize(uv_map[..., :3], (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_NEAREST)
    assert np.abs(out[rim] - truth[rim]).mean() < 0.4 * STEP  # measured 6.7
    # Maps too small for a texel's neighbour to be local are left as they are; 64 is still blended.
    for size in (64, 32):
        stride = SIZE // size
        tiny, tiny_known, tiny_face = (
            rgb[::stride, ::stride],
            known[::stride, ::stride],
            face[::stride, ::stride],
        )
        out = blend_seams(tiny, tiny_known, tiny_face)
        assert (out != tiny).any() == (size >= MIN_SIZE)


def test_network_output_layout(uv_map: np.ndarray, hidden):
    """:func:`blend_output_seams` works on the network's (N, 3, S, S) [-1, 1] colours and reads the rim's
    known side from the maps themselves, whatever the network painted there."""
    known, _, _, _ = hidden
    rgba = uv_map.copy()
    rgba[~known] = 0
    colours = uv_map[..., :3].astype(np.float32) / 127.5 - 1.0
    colours[~known] += STEP / 127.5
    colours[known] = 0.0  # garbage where the maps know better
    output = colours.transpose(2, 0, 1)[None]
    blended = blend_output_seams(output, rgba[None])
    assert blended.shape == output.shape and blended.dtype == np.float32
    expected = blend_seams(
        np.where(known[..., None], uv_map[..., :3], (colours + 1.0) * 127.5),
        known,
        face_coverage(SIZE) | known,
    )
    got = (blended[0].transpose(1, 2, 0) + 1.0) * 127.5
    holes = face_coverage(SIZE) & ~known
    np.testing.assert_allclose(got[holes], expected[holes], atol=1e-3)
