"""Self-supervised completion pairs: real masks from turning a real fitted face, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from uvaug.artifacts import FaceFit
from uvaug.complete.pairs import SelfOcclusionPairs, training_faces, visible_at
from uvaug.fit.run import fit_inputs
from uvaug.fit.uv import uv_layout
from uvaug.io import discover_inputs, write_image_atomic


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory, astronaut, hopper):
    root = tmp_path_factory.mktemp("pairs")
    write_image_atomic(root / "photos" / "astronaut.png", astronaut)
    write_image_atomic(root / "photos" / "hopper.png", hopper)
    write_image_atomic(root / "photos" / "turned.png", np.ascontiguousarray(astronaut[:, ::-1]))
    fit_inputs(discover_inputs(root / "photos"), root / "fit")
    return root / "fit"


def test_training_faces_keeps_near_frontal_faces_and_honours_the_name_list(fit_dir):
    faces = training_faces(fit_dir)
    assert [f.input for f in faces] == ["astronaut.png", "hopper.png", "turned.png"]
    assert all(f.uv.is_file() and f.fit.is_file() for f in faces)
    assert [f.input for f in training_faces(fit_dir, names=["hopper.png"])] == ["hopper.png"]
    assert training_faces(fit_dir, frontal=(0.1, 0.1)) == []  # nothing is exactly frontal


def test_pairs_hide_only_seen_texels_and_are_reproducible(fit_dir):
    faces = training_faces(fit_dir)
    pairs = SelfOcclusionPairs(faces, seed=3)
    again = SelfOcclusionPairs(faces, seed=3)
    other = SelfOcclusionPairs(faces, seed=4)
    for i in range(len(pairs)):
        source, target = pairs[i]
        known, seen = source[..., 3] >= 128, target[..., 3] >= 128
        assert not (known & ~seen).any()  # the input never shows more than the photo did
        assert (source[known] == target[known]).all()  # and shows it unchanged
        assert (seen & ~known).sum() >= 0.02 * seen.sum()  # something to learn
        np.testing.assert_array_equal(source, again[i][0])
    assert any((pairs[i][0] != other[i][0]).any() for i in range(len(pairs)))
    pairs.set_epoch(1)
    assert any((pairs[i][0] != again[i][0]).any() for i in range(len(pairs)))


def test_larger_turns_hide_more(fit_dir):
    fit = FaceFit.load(training_faces(fit_dir)[0].fit)
    coverage = uv_layout(256).coverage
    shown = [visible_at(fit, yaw, 0, 256).sum() / coverage.sum() for yaw in (0, 30, 60, 90)]
    assert shown[0] > 0.85
    assert shown[0] > shown[1] > shown[2] > shown[3]
    # Yaw > 0 (nose to the image's right) shows the subject's right cheek, which the layout puts at low u
    # (the image-left half of a frontal face), and hides the other; yaw < 0 the reverse.
    right, left = visible_at(fit, 70, 0, 256), visible_at(fit, -70, 0, 256)
    assert right[:, :128].sum() > 5 * right[:, 128:].sum()
    assert left[:, 128:].sum() > 5 * left[:, :128].sum()


def test_yaw_bins_for_benchmark_masks(fit_dir):
    faces = training_faces(fit_dir)
    hidden = {}
    for low, high in ((30, 45), (75, 90)):
        pairs = SelfOcclusionPairs(faces, seed=0, yaw_range=(low, high))
        hidden[low] = np.mean(
            [
                ((t[..., 3] >= 128) & (s[..., 3] < 128)).sum() / (t[..., 3] >= 128).sum()
                for s, t in (pairs[i] for i in range(len(pairs)))
            ]
        )
    assert hidden[75] > hidden[30] + 0.1
