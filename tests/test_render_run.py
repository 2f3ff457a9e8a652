"""The render stage on a real fit output: files, manifest, resume, broken inputs, completed maps, CLI errors.

Every test fits the astronaut and Grace Hopper photos (kept in a sub-folder, so mirroring shows) with the real
fitter into its own temporary folder (about 0.2 s), then renders them for real (pyrender, headless GL).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from uvaug.cli.app import app
from uvaug.fit.run import fit_inputs
from uvaug.io import MANIFEST_NAME, discover_inputs, load_rgba, read_manifest, write_image_atomic
from uvaug.render.align import arcface_matrix, five_points
from uvaug.render.grid import View
from uvaug.render.run import RenderOptions, plan_render, render_fits
from uvaug.render.sheet import HEADER_HEIGHT, ROW_LABEL_WIDTH, contact_sheet

WIDE = {"COLUMNS": "200"}  # rich wraps at the terminal width; keep paths in messages on one line
SUB = "people"  # the photos' sub-folder, which every output must mirror
STEMS = ("astronaut", "hopper")
PHOTO_SIZES = {"astronaut": (512, 512), "hopper": (600, 512)}  # height, width
SHEET_CELL = 160  # write_sheet's cell size (contact_sheet's default)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


@pytest.fixture
def fits(tmp_path: Path, astronaut: np.ndarray, hopper: np.ndarray) -> Path:
    """A real ``uvaug fit`` output of ``photos/people/{astronaut,hopper}.jpg``: one face each."""
    photos = tmp_path / "photos"
    write_image_atomic(photos / SUB / "astronaut.jpg", astronaut)
    write_image_atomic(photos / SUB / "hopper.jpg", hopper)
    out = tmp_path / "fits"
    report = fit_inputs(discover_inputs(photos), out, workers=1)
    assert report.faces == 2, report
    return out


def output_name(stem: str, yaw: int, ext: str = "jpg") -> str:
    return f"{SUB}/{stem}_y{yaw:+03d}_p+00.{ext}"


def manifest_by_output(out: Path) -> dict[tuple[str, str], dict]:
    """Render manifest records keyed by (input, view); fails on a duplicate key."""
    records = read_manifest(out / MANIFEST_NAME)
    keyed = {(str(r["input"]), str(r["view"])): r for r in records}
    assert len(keyed) == len(records), records
    return keyed


def rendered_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}


def file_identity(path: Path) -> tuple[int, int]:
    """Inode and mtime: atomic writes replace the file, so a re-render changes the inode."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def green_pixels(image: np.ndarray) -> int:
    """Pixels of nearly pure green (RGB), a colour neither test photo contains."""
    rgb = image.astype(np.int32)
    return int(((rgb[..., 1] > 180) & (rgb[..., 0] < 90) & (rgb[..., 2] < 90)).sum())


def read_rgb(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert data is not None, path
    return data[..., ::-1]


def test_cli_renders_every_face_and_view_mirroring_the_inputs(fits: Path, tmp_path: Path, fitter):
    sheet = tmp_path / "sheet.png"
    result = invoke("render", fits, "--yaw", "-30:30:30", "-w", "1", "--sheet", sheet)
    assert result.exit_code == 0, result.output
    out = tmp_path / "fits-render"  # the default: FITS-render beside FITS
    assert result.stdout.splitlines()[-1] == str(out)

    expected = {output_name(stem, yaw) for stem in STEMS for yaw in (-30, 0, 30)}
    assert rendered_files(out) == expected
    records = manifest_by_output(out)
    assert len(records) == len(expected)  # one line per face and view
    for (name, view), rec in records.items():
        stem = Path(name).stem
        assert name == f"{SUB}/{stem}.jpg" and rec["face"] == 0
        assert rec["status"] == "ok" and rec["message"] == ""
        assert rec["output"] == output_name(stem, int(rec["yaw"])) and view == f"y{int(rec['yaw']):+03d}_p+00"
        image = read_rgb(out / str(rec["output"]))
        assert image.shape == (*PHOTO_SIZES[stem], 3)  # whole photos
        # the manifest's five points are where a fit of the render finds them
        points = np.array(rec["points"])
        found = five_points(fitter(np.ascontiguousarray(image))[0].fit.vertices)
        eyes_to_mouth = found[3:].mean(0)[1] - found[:2].mean(0)[1]
        assert np.abs(points - found).max() < 0.1 * eyes_to_mouth, (points, found)

    image = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert image.shape == (HEADER_HEIGHT + 2 * SHEET_CELL, ROW_LABEL_WIDTH + 4 * SHEET_CELL, 3)
    # The first column is each row's input photo (rows sorted by input: astronaut, then hopper).
    for row, stem in enumerate(STEMS):
        top = HEADER_HEIGHT + row * SHEET_CELL
        cell = image[top : top + SHEET_CELL, ROW_LABEL_WIDTH : ROW_LABEL_WIDTH + SHEET_CELL, ::-1]
        own = contact_sheet([("", [read_rgb(fits.parent / "photos" / SUB / f"{stem}.jpg")])], [""])
        expected = own[HEADER_HEIGHT:, ROW_LABEL_WIDTH:].mean((0, 1))
        np.testing.assert_allclose(cell.mean((0, 1)), expected, atol=2)


def test_sample_renders_each_faces_own_draw_resumes_it_and_sheets_it(fits: Path, tmp_path: Path):
    """--sample 2 of a 5 x 3 grid: each face gets its own 2 views (RenderOptions.views_of, the pipeline's
    draw too), a rerun finds them done, and the sheet has one column per drawn view, each cell its view."""
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    args = ["render", fits, "-o", out, "-w", "1", "--yaw", "-40:40:20", "--pitch", "-20:20:20"]
    args += ["--sample", "2"]
    result = invoke(*args, "--sheet", sheet)
    assert result.exit_code == 0, result.output
    assert "2 of 15 (drawn per face, seed 0)" in result.stderr
    grid = tuple(View(float(y), float(p)) for y in (-40, -20, 0, 20, 40) for p in (-20, 0, 20))
    options = RenderOptions(views=grid, sample=2)
    drawn = {stem: options.views_of(f"{SUB}/{stem}.jpg", 0) for stem in STEMS}
    assert drawn["astronaut"] != drawn["hopper"]  # (for these two names and seed 0)
    expected = {f"{SUB}/{stem}{view.tag}.jpg" for stem in STEMS for view in drawn[stem]}
    assert rendered_files(out) == expected
    assert {rec["output"] for rec in manifest_by_output(out).values()} == expected

    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "resuming: 4 views already rendered" in result.stderr and rendered_files(out) == expected
    result = invoke(*args, "--seed", "3")  # another draw adds its own views beside the first
    assert result.exit_code == 0, result.output
    reseeded = RenderOptions(views=grid, sample=2, seed=3)
    assert rendered_files(out) == expected | {
        f"{SUB}/{stem}{view.tag}.jpg" for stem in STEMS for view in reseeded.views_of(f"{SUB}/{stem}.jpg", 0)
    }

    image = cv2.imread(str(sheet), cv2.IMREAD_COLOR)[..., ::-1]
    assert image.shape == (HEADER_HEIGHT + 2 * SHEET_CELL, ROW_LABEL_WIDTH + 3 * SHEET_CELL, 3)
    for row, stem in enumerate(STEMS):
        top = HEADER_HEIGHT + row * SHEET_CELL
        for column, view in enumerate(drawn[stem], start=1):
            left = ROW_LABEL_WIDTH + column * SHEET_CELL
            cell = image[top : top + SHEET_CELL // 2, left : left + SHEET_CELL]  # above the view's mark
            own = contact_sheet([("", [read_rgb(out / SUB / f"{stem}{view.tag}.jpg")])], [""])
            expected_cell = own[HEADER_HEIGHT : HEADER_HEIGHT + SHEET_CELL // 2, ROW_LABEL_WIDTH:]
            assert np.abs(cell.astype(int) - expected_cell).mean() < 3, (stem, view)


def test_min_seen_leaves_out_views_the_photo_showed_too_little_of(fits: Path, tmp_path: Path):
    """Every rendered view records its seen share; --min-seen leaves out, as ``skipped``, the views below it
    (no file), says how many in the summary, and a rerun leaves them out again."""
    out = tmp_path / "out"
    args = ["render", fits, "-o", out, "-w", "1", "--yaw", "-60,0,60"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    shares = {key: rec["seen"] for key, rec in manifest_by_output(out).items()}
    assert all(0.0 < share <= 1.0 for share in shares.values()), shares
    for stem in STEMS:  # near frontal photos: their own pose shows most of what the photo saw
        own = shares[f"{SUB}/{stem}.jpg", "y+00_p+00"]
        assert own > max(shares[f"{SUB}/{stem}.jpg", "y-60_p+00"], shares[f"{SUB}/{stem}.jpg", "y+60_p+00"])
    ordered = sorted(set(shares.values()))  # a limit halfway between two shares (the manifest rounds them)
    middle = len(ordered) // 2
    limit = round((ordered[middle - 1] + ordered[middle]) / 2, 4)
    kept = {key for key, share in shares.items() if share > limit}
    assert 0 < len(kept) < len(shares)

    out = tmp_path / "filtered"
    args = ["render", fits, "-o", out, "-w", "1", "--yaw", "-60,0,60", "--min-seen", f"{limit:g}"]
    for _ in range(2):  # the rerun leaves the same views out
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert f"left out (seen < {limit:g})" in result.stderr
        records = manifest_by_output(out)
        assert {key for key, rec in records.items() if rec["status"] == "ok"} == kept
        for key, rec in records.items():
            assert rec["seen"] == shares[key]
            if key not in kept:
                assert rec["status"] == "skipped" and rec["output"] is None
                assert f"(--min-seen {limit:g})" in rec["message"] and "showed" in rec["message"]
        assert rendered_files(out) == {records[key]["output"] for key in kept}


def test_background_none_writes_rgba_png(fits: Path, tmp_path: Path):
    out = tmp_path / "rgba"
    result = invoke("render", fits, "-o", out, "--yaw", "30", "--background", "none", "-w", "1")
    assert result.exit_code == 0, result.output
    assert rendered_files(out) == {output_name(stem, 30, "png") for stem in STEMS}
    for stem in STEMS:
        rgba = load_rgba(out / output_name(stem, 30, "png"))
        assert rgba.shape == (*PHOTO_SIZES[stem], 4)
        alpha = rgba[..., 3]
        assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # no face in the corners
        assert (alpha == 255).sum() > 5000  # the face itself is opaque


@pytest.mark.parametrize("size", [112, 96])
def test_arcface_crops_have_the_asked_size(fits: Path, tmp_path: Path, size: int):
    out = tmp_path / "crops"
    result = invoke(
        "render", fits, "-o", out, "--yaw", "-45,45", "--align", "arcface", "--size", size, "-w", "1"
    )
    assert result.exit_code == 0, result.output
    assert rendered_files(out) == {output_name(stem, yaw) for stem in STEMS for yaw in (-45, 45)}
    for name in rendered_files(out):
        crop = read_rgb(out / name)
        assert crop.shape == (size, size, 3)
        assert crop.std() > 20  # a face, not an empty frame
    for rec in read_manifest(out / MANIFEST_NAME):
        # in the crop's frame: already the best fit to the template (a turned face's points cannot all sit
        # on it), so the least-squares similarity onto it is the identity
        matrix = arcface_matrix(np.array(rec["points"]), size)
        np.testing.assert_allclose(matrix, np.eye(2, 3), atol=0.02)


def test_resume_renders_only_missing_views(fits: Path, tmp_path: Path):
    options = RenderOptions(views=(View(-30.0, 0.0), View(30.0, 0.0)))
    out = tmp_path / "out"
    plan = plan_render(fits, out, options)
    assert (plan.faces, len(plan.jobs), plan.done_views) == (2, 2, 0)
    report = render_fits(plan, out, options, workers=1)
    assert report.processed == 2 and report.statuses["ok"] == 2
    files = {name: file_identity(out / name) for name in rendered_files(out)}
    assert len(files) == 4

    # A rerun finds every view done and renders nothing.
    plan = plan_render(fits, out, options)
    assert (plan.faces, plan.jobs, plan.done_views) == (2, [], 4)
    report = render_fits(plan, out, options, workers=1)
    assert (report.processed, report.skipped) == (0, 2)
    assert {name: file_identity(out / name) for name in rendered_files(out)} == files

    # A deleted output is rendered again, and nothing else.
    missing = output_name("hopper", 30)
    (out / missing).unlink()
    plan = plan_render(fits, out, options)
    assert plan.done_views == 3
    (job,) = plan.jobs
    assert job.input == f"{SUB}/hopper.jpg" and job.outputs == ((View(30.0, 0.0), missing),)
    report = render_fits(plan, out, options, workers=1)
    assert report.processed == 1
    again = {name: file_identity(out / name) for name in rendered_files(out)}
    assert again.keys() == files.keys()
    assert {name for name in files if again[name] != files[name]} == {missing}
    records = manifest_by_output(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())

    # The CLI says so on a rerun; --overwrite redoes every view.
    result = invoke("render", fits, "-o", out, "--yaw", "-30,30", "-w", "1")
    assert result.exit_code == 0, result.output
    assert "resuming: 4 views already rendered" in result.stderr
    assert {name: file_identity(out / name) for name in rendered_files(out)} == again
    result = invoke("render", fits, "-o", out, "--yaw", "-30,30", "-w", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    redone = {name: file_identity(out / name) for name in rendered_files(out)}
    assert redone.keys() == again.keys() and all(redone[n] != again[n] for n in redone)
    assert len(manifest_by_output(out)) == 4


def test_a_rerun_of_some_views_keeps_the_other_views_in_the_manifest(fits: Path, tmp_path: Path):
    """A run that redoes some views of a face (here --overwrite of one angle) replaces only their lines."""
    out = tmp_path / "out"
    for args in (["--yaw", "-15,30"], ["--yaw", "30", "--overwrite"], ["--yaw", "0"]):
        result = invoke("render", fits, "-o", out, "-w", "1", *args)
        assert result.exit_code == 0, result.output
    records = manifest_by_output(out)
    expected = {(f"{SUB}/{stem}.jpg", f"y{yaw:+03d}_p+00") for stem in STEMS for yaw in (-15, 0, 30)}
    assert set(records) == expected
    assert {r["output"] for r in records.values()} == rendered_files(out)


def test_missing_uv_map_fails_only_that_face(fits: Path, tmp_path: Path):
    uv_map = fits / SUB / "astronaut.f0.uv.png"
    uv_map.unlink()
    out = tmp_path / "out"
    result = invoke("render", fits, "-o", out, "--yaw", "-30,30", "-w", "1")
    assert result.exit_code == 0, result.output  # per-face failures are manifest entries, not a failed run
    records = manifest_by_output(out)
    assert len(records) == 4
    for (name, _), rec in records.items():
        if name == f"{SUB}/astronaut.jpg":
            assert rec["status"] == "error" and rec["output"] is None
            assert str(uv_map) in str(rec["message"])
        else:
            assert rec["status"] == "ok" and (out / str(rec["output"])).is_file()
    assert rendered_files(out) == {output_name("hopper", yaw) for yaw in (-30, 30)}


def test_a_run_that_renders_no_view_still_reports_and_writes_no_sheet(fits: Path, tmp_path: Path):
    """Every UV map missing: each view is an error in the manifest, the summary says the sheet was not
    written (there is nothing to show), and the command ends normally, as it does without --sheet."""
    out, sheet, empty = tmp_path / "out", tmp_path / "sheet.png", tmp_path / "no-maps"
    empty.mkdir()
    for sample in ([], ["--sample", "1"]):
        result = invoke(
            "render", fits, "-o", out, "-w", "1", "--yaw", "0,30", "--uv", empty, "--sheet", sheet, *sample
        )
        assert result.exit_code == 0, result.output
        assert "not written: no view was rendered" in result.stderr
        assert not sheet.exists()
        records = manifest_by_output(out)
        assert records and all(r["status"] == "error" for r in records.values())


def test_missing_photo_fails_only_that_face_and_images_finds_it(fits: Path, tmp_path: Path):
    photo = tmp_path / "photos" / SUB / "hopper.jpg"
    moved = tmp_path / "moved"
    (moved / SUB).mkdir(parents=True)
    shutil.move(photo, moved / SUB / "hopper.jpg")
    out = tmp_path / "out"
    result = invoke("render", fits, "-o", out, "--yaw", "-30,30", "-w", "1")
    assert result.exit_code == 0, result.output
    records = manifest_by_output(out)
    assert len(records) == 4
    for (name, _), rec in records.items():
        if name == f"{SUB}/hopper.jpg":
            assert rec["status"] == "error" and rec["output"] is None
            assert str(photo) in str(rec["message"]) and "file not found" in str(rec["message"])
        else:
            assert rec["status"] == "ok"
    assert rendered_files(out) == {output_name("astronaut", yaw) for yaw in (-30, 30)}

    # The rerun retries the failed views only (the astronaut's are done) and finds the photo under --images.
    result = invoke("render", fits, "-o", out, "--yaw", "-30,30", "-w", "1", "--images", moved)
    assert result.exit_code == 0, result.output
    records = manifest_by_output(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    assert rendered_files(out) == {output_name(stem, yaw) for stem in STEMS for yaw in (-30, 30)}


def test_face_only_backgrounds_use_the_photo_when_they_can(fits: Path, tmp_path: Path):
    """``--background black`` draws the face's edge from the photo (:mod:`uvaug.render.texture`) when it can
    read it, and renders without it, not fails, when the photo is gone."""
    # a small turn: turned further towards the camera, the edge gives way to the map (OUTLINE_STRETCH)
    args = ("--yaw", "5", "--background", "black", "-w", "1")
    with_photo = tmp_path / "with"
    assert invoke("render", fits, "-o", with_photo, *args).exit_code == 0
    for stem in STEMS:
        (tmp_path / "photos" / SUB / f"{stem}.jpg").unlink()
    without = tmp_path / "without"
    result = invoke("render", fits, "-o", without, *args)
    assert result.exit_code == 0, result.output
    assert all(r["status"] == "ok" for r in read_manifest(without / MANIFEST_NAME))
    for stem in STEMS:
        a = read_rgb(with_photo / output_name(stem, 5)).astype(int)
        b = read_rgb(without / output_name(stem, 5)).astype(int)
        assert (a.max(-1) > 0).sum() > 5000 and (b.max(-1) > 0).sum() > 5000  # both show the face
        changed = np.abs(a - b).max(-1) > 24
        # the incomplete map's holes along the edge take the photo's colours; the middle is the same
        assert changed.sum() > 100, changed.sum()
        assert changed.sum() < 0.2 * (a.max(-1) > 0).sum()


def test_uv_option_renders_the_completed_maps(fits: Path, tmp_path: Path):
    """A "completed" map whose filled-in texels are pure green: they appear on the side turned into view."""
    completed = tmp_path / "completed"
    for rec in read_manifest(fits / MANIFEST_NAME):
        uv = load_rgba(fits / str(rec["uv"]))
        filled = uv.copy()
        filled[uv[..., 3] == 0, :3] = (0, 255, 0)
        filled[..., 3] = 255
        write_image_atomic(completed / str(rec["uv"]), filled)
    with_uv, without = tmp_path / "with-uv", tmp_path / "without"
    result = invoke("render", fits, "-o", with_uv, "--uv", completed, "--yaw", "60", "-w", "1")
    assert result.exit_code == 0, result.output
    result = invoke("render", fits, "-o", without, "--yaw", "60", "-w", "1")
    assert result.exit_code == 0, result.output
    for stem in STEMS:
        name = output_name(stem, 60)
        assert green_pixels(read_rgb(with_uv / name)) > 300, stem
        assert green_pixels(read_rgb(without / name)) == 0, stem  # the fit's maps leave holes there


def test_with_completed_maps_the_seen_share_still_comes_from_the_fits_own_maps(fits: Path, tmp_path: Path):
    """A completed map's alpha is 255 everywhere: the share must come from what the fit saw, and without
    the fit's own map --min-seen cannot tell, which fails only that face's views."""
    completed = tmp_path / "completed"
    for rec in read_manifest(fits / MANIFEST_NAME):
        filled = load_rgba(fits / str(rec["uv"])).copy()
        filled[..., 3] = 255
        write_image_atomic(completed / str(rec["uv"]), filled)
    args = ["--yaw", "-45,45", "-w", "1"]
    plain, with_uv = tmp_path / "plain", tmp_path / "with-uv"
    assert invoke("render", fits, "-o", plain, *args).exit_code == 0
    assert invoke("render", fits, "-o", with_uv, "--uv", completed, *args).exit_code == 0
    expected = {key: rec["seen"] for key, rec in manifest_by_output(plain).items()}
    assert {key: rec["seen"] for key, rec in manifest_by_output(with_uv).items()} == expected
    assert all(share < 0.95 for share in expected.values())

    own_map = fits / SUB / "astronaut.f0.uv.png"
    own_map.unlink()
    out = tmp_path / "filtered"
    result = invoke("render", fits, "-o", out, "--uv", completed, "--min-seen", "0.1", *args)
    assert result.exit_code == 0, result.output
    for (name, _), rec in manifest_by_output(out).items():
        if name == f"{SUB}/astronaut.jpg":
            assert rec["status"] == "error" and rec["output"] is None
            assert "--min-seen needs the fit's own UV map" in rec["message"]
            assert str(own_map) in rec["message"]
        else:
            assert rec["status"] == "ok" and rec["seen"] > 0.1


def _usage_cases(tmp_path: Path, fits: Path) -> dict[str, tuple[Path, list[object], str]]:
    """Per case: the FITS argument, further options, and what the one error line must say."""
    photos = tmp_path / "photos"  # a folder, but no fit output
    nope, no_uv = tmp_path / "nope", tmp_path / "no-uv"
    return {
        "malformed yaw": (fits, ["--yaw", "-30:30"], "--yaw: malformed angle spec"),
        "zero step": (fits, ["--pitch", "-20:20:0"], "--pitch: step must not be 0"),
        "angle beyond 90": (fits, ["--yaw", "0,95"], "--yaw: angle 95 is beyond +-90 degrees"),
        "missing fits folder": (nope, [], f"fit folder not found: {nope}"),
        "not a fit output": (photos, [], f"{photos} is not a fit output folder (no manifest.jsonl)"),
        "missing uv folder": (fits, ["--uv", no_uv], f"UV folder not found: {no_uv}"),
        "sample of 0": (fits, ["--sample", "0"], "Invalid value for '--sample'"),
        "min seen above 1": (fits, ["--min-seen", "1.5"], "Invalid value for '--min-seen'"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed yaw",
        "zero step",
        "angle beyond 90",
        "missing fits folder",
        "not a fit output",
        "missing uv folder",
        "sample of 0",
        "min seen above 1",
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_work(case: str, fits: Path, tmp_path: Path):
    source, options, fragment = _usage_cases(tmp_path, fits)[case]
    out = tmp_path / "out"
    result = invoke("render", source, "-o", out, "-w", "1", *options)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""
    assert not out.exists() and not (tmp_path / "fits-render").exists()  # nothing was run
