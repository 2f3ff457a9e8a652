"""Far views from the mirrored photo: the mirrored fit, which views take it, and what they look like.

The turned face is the astronaut rendered at yaw +30 in her photo and fitted again, a real fit of a real
(rendered) picture of a face turned to one side.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from uvaug.fit.mirror import mirror_fit, mirror_uv
from uvaug.render.align import ARCFACE_TEMPLATE, arcface_matrix, five_points
from uvaug.render.grid import View
from uvaug.render.run import MIRROR_BEYOND, MIRROR_MIN_SAVING, FaceViews, RenderOptions, renders_mirrored


@pytest.fixture(scope="module")
def turned(fitter, astronaut, astro_face):
    """(photo, fitted face) of the astronaut turned to yaw +30."""
    views = FaceViews(astro_face.fit, astro_face.uv, astronaut)
    photo, _ = views.render(View(30.0, 0.0), RenderOptions(views=()))
    photo = np.ascontiguousarray(photo)
    (face,) = fitter(photo)
    assert 20 < face.fit.yaw < 35
    return photo, face


def test_the_mirrored_fit_is_the_fit_of_the_mirrored_photo(fitter, astronaut, astro_face):
    fit = astro_face.fit
    refit = fitter(np.ascontiguousarray(astronaut[:, ::-1]))[0]
    mirrored = mirror_fit(fit)
    # the landmark model reads a photo and its mirror alike (its two readings are averaged): measured 0.52 px
    assert np.abs(mirrored.landmarks[:, :2] - refit.fit.landmarks[:, :2]).max() < 1.0
    np.testing.assert_array_equal(mirrored.vertices, mirrored.landmarks[:468])
    assert (mirrored.yaw, mirrored.pitch, mirrored.roll) == pytest.approx((-fit.yaw, fit.pitch, -fit.roll))
    assert mirrored.yaw == pytest.approx(refit.fit.yaw, abs=0.2)
    assert mirrored.roll == pytest.approx(refit.fit.roll, abs=0.2)
    # the transform still takes the canonical mesh onto the (mirrored) landmarks
    from uvaug.fit.bundle import default_bundle

    canonical = default_bundle().geometry.vertices
    mapped = canonical @ mirrored.transform[:, :3].T + mirrored.transform[:, 3]
    original = canonical @ fit.transform[:, :3].T + fit.transform[:, 3]
    assert np.abs(mapped[:, :2] - mirrored.vertices[:, :2]).mean() == pytest.approx(
        np.abs(original[:, :2] - fit.vertices[:, :2]).mean(), rel=1e-6
    )
    # the UV map of the mirrored photo is the map flipped: measured 2.1 grey levels apart where both saw
    flipped = mirror_uv(astro_face.uv)
    both = (flipped[..., 3] > 0) & (refit.uv[..., 3] > 0)
    assert both.mean() > 0.3
    assert np.abs(flipped[..., :3].astype(int) - refit.uv[..., :3])[both].mean() < 4.0
    # mirroring twice gives the fit back
    twice = mirror_fit(mirrored)
    for name in ("landmarks", "box", "keypoints", "rotation", "transform", "translation"):
        np.testing.assert_allclose(getattr(twice, name), getattr(fit, name), atol=1e-4)


def test_views_turning_far_from_the_photo_are_rendered_mirrored(astro_face):
    fit = dataclasses.replace(astro_face.fit, yaw=-30.0)
    options = RenderOptions(views=())
    assert (MIRROR_BEYOND, MIRROR_MIN_SAVING) == (45.0, 20.0)

    def mirrored(yaw: float, fit=fit, options=options) -> bool:
        return renders_mirrored(fit, View(yaw, 0.0), options)

    assert mirrored(45) and mirrored(60) and mirrored(30)  # turns of 75, 90 and 60 become 15, 30 and 0
    assert not mirrored(15)  # a 45-degree turn is kept
    assert not mirrored(-60) and not mirrored(-90)  # the same side: the mirror would turn further
    assert not renders_mirrored(fit, View(45, 0), dataclasses.replace(options, mirror_beyond=None))
    relative = dataclasses.replace(options, relative=True)
    assert renders_mirrored(fit, View(80, 0), relative)  # to yaw +50: 80 from the photo, 20 from its mirror
    assert not renders_mirrored(fit, View(40, 0), relative)
    # a near-frontal face is not mirrored for a small saving: 65 degrees from it, 55 from its mirror
    assert not mirrored(60, dataclasses.replace(fit, yaw=-5.0))
    assert not mirrored(45, dataclasses.replace(fit, yaw=-5.0))
    assert mirrored(45, dataclasses.replace(fit, yaw=-12.0))  # 57 degrees from it, 33 from its mirror


def test_a_far_view_of_a_turned_face_is_its_mirror_image_turned_less(fitter, turned, psnr):
    photo, face = turned
    yaw = face.fit.yaw
    views = FaceViews(face.fit, face.uv, photo)
    far, mirrored = views.render(View(-30.0, 0.0), RenderOptions(views=()))
    assert mirrored
    # The mirror image of the same face turned +30 from the photo itself (a short turn both ways).
    near, near_mirrored = views.render(View(30.0, 0.0), RenderOptions(views=()))
    assert not near_mirrored
    assert psnr(far, near[:, ::-1]) > 33.0  # measured 38.2
    # Turned through the whole 57 degrees instead, the far side shows what the photo never did (here the
    # incomplete map's holes) and the background stretches across what the head uncovers: it is no longer
    # found as a face, or reads far less turned than asked (measured: mirrored -30.4; turned, not found; with
    # the renderer of an earlier version, -18.1).
    direct, was_mirrored = views.render(View(-30.0, 0.0), RenderOptions(views=(), mirror_beyond=None))
    assert not was_mirrored
    read = fitter(np.ascontiguousarray(far))[0].fit.yaw
    assert read == pytest.approx(-30.0, abs=4), yaw
    direct_faces = fitter(np.ascontiguousarray(direct))
    assert not direct_faces or abs(direct_faces[0].fit.yaw + 30.0) > abs(read + 30.0) + 4.0


def test_a_views_points_are_where_it_draws_the_face(fitter, turned):
    """At the photo's pose the points are the fit's own; in a view drawn from the mirrored photo they are
    where a fit of that render finds the face; in an aligned crop the five points sit on the template."""
    photo, face = turned
    views = FaceViews(face.fit, face.uv, photo)
    own = views.render_view(View(0.0, 0.0), RenderOptions(views=(), relative=True)).points
    assert np.abs(own - face.fit.vertices[:, :2]).max() < 1e-3
    whole = RenderOptions(views=())
    far = views.render_view(View(-30.0, 0.0), whole)
    assert far.mirrored
    points = far.points
    found = fitter(np.ascontiguousarray(far.image))[0].fit.vertices[:, :2]
    height = np.ptp(points[:, 1])
    # far from the refit's points, were the mirrored photo's frame taken for the photo's (x -> width - x)
    assert np.median(np.linalg.norm(points - found, axis=1)) < 0.02 * height  # measured 0.005; flipped 0.45
    aligned = RenderOptions(views=(), align="arcface")
    crop_points = five_points(views.render_view(View(-30.0, 0.0), aligned).points)
    matrix = arcface_matrix(five_points(points))
    assert np.allclose(crop_points, five_points(points) @ matrix[:, :2].T + matrix[:, 2], atol=1e-6)
    # eyes and mouth corners on the template; the nose of a turned face sits off the frontal template's
    off = np.abs(crop_points - ARCFACE_TEMPLATE)
    assert np.delete(off, 2, axis=0).max() < 6, off


@pytest.fixture(scope="module")
def turned_folder(tmp_path_factory, turned):
    """``photos/turned.png``: the turned astronaut as an input photo."""
    from uvaug.io import write_image_atomic

    root = tmp_path_factory.mktemp("mirror")
    write_image_atomic(root / "photos" / "turned.png", turned[0])
    return root


def test_render_and_pipeline_manifests_say_which_views_are_mirror_images(turned_folder: Path):
    from uvaug.fit.run import fit_inputs
    from uvaug.io import MANIFEST_NAME, discover_inputs, read_manifest
    from uvaug.pipeline import PipelineOptions, run_pipeline
    from uvaug.render.run import plan_render, render_fits

    root = turned_folder
    views = (View(-30.0, 0.0), View(30.0, 0.0))
    fits = root / "fits"
    assert fit_inputs(discover_inputs(root / "photos"), fits).faces == 1
    for mirror_beyond, expected in ((MIRROR_BEYOND, {-30.0: True, 30.0: False}), (None, {-30.0: False})):
        options = RenderOptions(views=views, mirror_beyond=mirror_beyond)
        out = root / f"render-{mirror_beyond}"
        render_fits(plan_render(fits, out, options), out, options)
        records = {r["yaw"]: r for r in read_manifest(out / MANIFEST_NAME)}
        assert all(r["status"] == "ok" for r in records.values())
        assert {yaw: records[yaw]["mirrored"] for yaw in expected} == expected

    # the CLI: on by default, --no-mirror turns every view from the photo itself
    from typer.testing import CliRunner

    from uvaug.cli.app import app
    from uvaug.render.run import MIRROR_MARK, read_photo, read_rgb
    from uvaug.render.sheet import contact_sheet

    for flag, expected_mirrored in (("--mirror", True), ("--no-mirror", False)):
        out = root / f"cli{flag}"
        sheet = out / "sheet.png"
        args = ["render", str(fits), "-o", str(out), "--yaw", "-30", flag, "-w", "1", "--sheet", str(sheet)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        (record,) = read_manifest(out / MANIFEST_NAME)
        assert record["mirrored"] is expected_mirrored
        assert f"from the mirrored photo │ {int(expected_mirrored)}" in " ".join(result.output.split())
        # its contact sheet marks the view when it is a mirror image
        cells = [read_photo(root / "photos" / "turned.png"), read_rgb(out / str(record["output"]))]
        marks = {(0, 1): MIRROR_MARK} if expected_mirrored else {}
        expected_sheet = contact_sheet([("turned.png", cells)], ["input", "y-30 p+00"], marks=marks)
        np.testing.assert_array_equal(read_rgb(sheet), expected_sheet)

    options = PipelineOptions(render=RenderOptions(views=views), method="symmetric")
    report = run_pipeline(root / "photos", root / "aug", options, workers=1)
    assert report.mirrored == 1 and report.to_json()["views_mirrored"] == 1
    (rec,) = read_manifest(root / "aug" / MANIFEST_NAME)
    assert rec["status"] == "ok" and rec["outputs"] == ["turned_y-30_p+00.jpg", "turned_y+30_p+00.jpg"]
    assert rec["mirrored"] == ["turned_y-30_p+00.jpg"]
    # the contact sheet marks the mirror image: exactly the sheet of the same images with that one mark
    views_written = [read_rgb(root / "aug" / rel) for rel in rec["outputs"]]
    cells = [read_photo(root / "photos" / "turned.png"), *views_written]
    columns = ["input", "y-30 p+00", "y+30 p+00"]
    written = read_rgb(root / "aug" / "sheet.png")
    marked = contact_sheet([(rec["input"], cells)], columns, marks={(0, 1): MIRROR_MARK})
    np.testing.assert_array_equal(written, marked)
    assert (marked != contact_sheet([(rec["input"], cells)], columns)).any()


def test_the_help_states_the_rule_the_library_applies():
    from typer.testing import CliRunner

    from uvaug.cli.app import app

    for command in ("render", "pipeline"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"})
        text = " ".join(result.output.replace("│", " ").split())
        assert f"over {MIRROR_BEYOND:g} degrees of yaw" in text
        assert f"saves {MIRROR_MIN_SAVING:g} or more" in text
