"""``uvaug pipeline``: a salted dataset end to end, resume, settings, folders, and kill -9 then rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_complete_run import contract_model
from test_fit_run import make_salted_folder

from uvaug.artifacts import PIPELINE_MANIFEST_FIELDS, REASON_COMPLETE, REASON_NO_FACE, REASON_UNREADABLE
from uvaug.io import MANIFEST_NAME, read_manifest
from uvaug.pipeline import PipelineOptions, SettingsMismatchError, run_pipeline
from uvaug.pipeline.run import PipelineInputError
from uvaug.pipeline.state import ManifestState
from uvaug.render.align import arcface_matrix
from uvaug.render.grid import pose_grid
from uvaug.render.run import RenderOptions
from uvaug.render.sheet import ROW_LABEL_WIDTH

VIEWS = tuple(pose_grid([-30.0, 0.0, 30.0], [0.0]))
ALIGNED = RenderOptions(views=VIEWS, align="arcface")


def _options(**kwargs) -> PipelineOptions:
    values = {"render": ALIGNED, "method": "symmetric", "batch_size": 4, **kwargs}
    return PipelineOptions(**values)


def _latest(out: Path) -> dict[str, dict]:
    return {rec["input"]: rec for rec in read_manifest(out / MANIFEST_NAME)}


def _files(out: Path) -> dict[str, bytes]:
    """Every image the run wrote (not the manifest, report or sheet), by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.parent != out
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> tuple[Path, dict]:
    """Identity folders: one salted with broken files, one with a photo, a unicode name and a symlink loop."""
    root = tmp_path_factory.mktemp("pipeline") / "faces"
    expected = {
        f"id_salted/{rel}": value for rel, value in make_salted_folder(root / "id_salted", astronaut).items()
    }
    second = root / "id ünïcode"
    second.mkdir()
    Image.fromarray(astronaut[::-1, ::-1].copy()).save(second / "upside down.png")  # found by rotated views
    expected["id ünïcode/upside down.png"] = ("ok", "")
    os.symlink("..", second / "loop")  # a folder symlink loop: never followed
    return root, expected


@pytest.fixture(scope="module")
def model_run(dataset, tmp_path_factory: pytest.TempPathFactory):
    """The batched path: an ONNX model completes in this process while 2 workers fit and render."""
    src, _ = dataset
    model = contract_model(tmp_path_factory.mktemp("models") / "mirror.onnx")
    out = tmp_path_factory.mktemp("runs") / "aug"
    options = _options(method="model", model=str(model), include_original=True, keep_intermediates=True)
    report = run_pipeline(src, out, options, workers=2)
    return out, report


def test_every_input_is_accounted_for_with_status_and_reason(dataset, model_run):
    _, expected = dataset
    out, report = model_run
    records = _latest(out)
    assert set(records) == set(expected)
    for rel, (status, fragment) in expected.items():
        rec = records[rel]
        assert set(rec) == set(PIPELINE_MANIFEST_FIELDS)
        assert rec["status"] == status, (rel, rec)
        assert fragment.lower() in rec["message"].lower()
        if status == "no_face":
            assert rec["reason"] == REASON_NO_FACE
        if status == "error":
            assert rec["reason"] == REASON_UNREADABLE
    assert report.found == report.processed == len(expected)
    assert sum(report.statuses.values()) == len(expected)


def test_ok_inputs_get_every_view_aligned_and_the_original(model_run):
    out, _ = model_run
    ok = [rec for rec in _latest(out).values() if rec["status"] == "ok"]
    assert len(ok) == 7
    for rec in ok:
        assert rec["faces"] == 1 and rec["views"] == len(VIEWS) and len(rec["pose"]) == 1
        assert len(rec["outputs"]) == len(VIEWS) + 1  # the aligned original too
        for rel in rec["outputs"]:
            image = cv2.imread(str(out / rel))
            assert image is not None and image.shape == (112, 112, 3)
        # every view's five points, in its crop: the least-squares fit onto the template is the identity
        assert list(rec["points"]) == rec["outputs"][: len(VIEWS)]
        for points in rec["points"].values():
            np.testing.assert_allclose(arcface_matrix(np.array(points)), np.eye(2, 3), atol=0.02)
    (astro,) = [r for r in ok if r["input"] == "id_salted/astronaut.jpg"]
    assert astro["outputs"][:3] == [f"id_salted/astronaut_y{y:+03d}_p+00.jpg" for y in (-30, 0, 30)]
    assert "id_salted/astronaut.jpg" in astro["outputs"]
    assert (out / "id ünïcode" / "upside down_y+30_p+00.jpg").is_file()


def test_views_turn_the_face(model_run):
    """The +30 and -30 crops differ from each other and from the frontal one (a real turn, not a copy)."""
    out, _ = model_run
    views = [
        cv2.imread(str(out / f"id_salted/astronaut_y{y:+03d}_p+00.jpg")).astype(float) for y in (-30, 0, 30)
    ]
    assert np.abs(views[0] - views[2]).mean() > 10 and np.abs(views[0] - views[1]).mean() > 5


def test_intermediates_report_and_sheet(dataset, model_run):
    out, report = model_run
    errors = sum(status == "error" for status, _ in dataset[1].values())
    assert (out / ".uvaug/fit/id_salted/astronaut.f0.fit.npz").is_file()
    incomplete = cv2.imread(str(out / ".uvaug/fit/id_salted/astronaut.f0.uv.png"), cv2.IMREAD_UNCHANGED)
    completed = cv2.imread(str(out / ".uvaug/uv/id_salted/astronaut.f0.uv.png"), cv2.IMREAD_UNCHANGED)
    known = incomplete[..., 3] == 255
    assert np.array_equal(completed[..., :3][known], incomplete[..., :3][known])  # known texels kept
    data = json.loads((out / "report.json").read_text())
    assert data["processed"] == report.processed and data["statuses"] == dict(report.statuses)
    assert data["all_inputs"]["error"][REASON_UNREADABLE] == errors
    assert data["stages"]["fit"]["items"] == report.processed
    assert data["stages"]["complete"]["items"] == data["stages"]["render"]["items"] == 7
    assert data["peak_rss_mb"] > 0 and data["sheet"] == "sheet.png"
    sheet = cv2.imread(str(out / "sheet.png"))
    assert sheet is not None
    assert sheet.shape[1] == ROW_LABEL_WIDTH + (1 + len(VIEWS)) * 160  # the input photo, then the views
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_rerun_skips_finished_inputs_and_retries_errors(dataset, model_run):
    src, expected = dataset
    out, _ = model_run
    before = _files(out)
    model = json.loads((out / "pipeline.json").read_text())["settings"]["completion"]["model"]
    assert model == "mirror.onnx"
    options = _options(
        method="model",
        model=str(next(Path(out).parent.parent.glob("models*/mirror.onnx"))),
        include_original=True,
        keep_intermediates=True,
    )
    report = run_pipeline(src, out, options, workers=1)
    errors = {rel for rel, (status, _) in expected.items() if status == "error"}
    assert report.skipped == len(expected) - len(errors) and report.processed == len(errors)
    assert _files(out) == before


def test_changed_settings_are_refused_unless_overwrite(dataset, tmp_path: Path):
    src, _ = dataset
    one = src / "id ünïcode"
    run_pipeline(one, tmp_path / "out", _options(), workers=1)
    with pytest.raises(SettingsMismatchError, match=r"render\.views"):
        run_pipeline(one, tmp_path / "out", _options(render=RenderOptions(views=VIEWS[:1], align="arcface")))
    report = run_pipeline(
        one,
        tmp_path / "out",
        _options(render=RenderOptions(views=VIEWS[:1], align="arcface")),
        overwrite=True,
    )
    assert report.processed == 1 and report.views == 1


def test_sample_draws_the_views_render_draws_and_a_rerun_keeps_the_draw(tmp_path: Path, astronaut, hopper):
    src = tmp_path / "faces"
    for name, photo in (("a/astronaut.jpg", astronaut), ("b/hopper.jpg", hopper)):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(src / name)
    grid = tuple(pose_grid([-40.0, -20.0, 0.0, 20.0, 40.0], [-20.0, 0.0, 20.0]))
    sampled = RenderOptions(views=grid, align="arcface", sample=2, seed=5)
    out = tmp_path / "out"
    report = run_pipeline(src, out, _options(render=sampled), workers=1)
    assert report.statuses == {"ok": 2} and report.views == 4
    for name, rec in _latest(out).items():
        stem = name.rsplit(".", 1)[0]
        assert rec["outputs"] == [f"{stem}{view.tag}.jpg" for view in sampled.views_of(name, 0)]
    settings = json.loads((out / "pipeline.json").read_text())["settings"]["render"]
    assert (settings["sample"], settings["seed"]) == (2, 5)
    with pytest.raises(SettingsMismatchError, match=r"render\.seed"):
        run_pipeline(src, out, _options(render=RenderOptions(views=grid, align="arcface", sample=2, seed=6)))
    # the sheet: the input, then one column per drawn view
    sheet = cv2.imread(str(out / "sheet.png"))
    assert sheet.shape[1] == ROW_LABEL_WIDTH + 3 * 160
    # runs without --sample record no sample or seed, as runs made before the option did
    assert "sample" not in _options().settings()["render"] and "seed" not in _options().settings()["render"]


def test_min_seen_leaves_out_the_views_render_leaves_out(tmp_path: Path, astronaut):
    """The manifest gives each view's seen share and lists the views --min-seen left out; the setting is
    recorded (and omitted without it, as runs made before the option recorded none)."""
    src = tmp_path / "faces"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "astronaut.jpg")
    grid = tuple(pose_grid([-60.0, 0.0, 60.0], [0.0]))
    out = tmp_path / "all"
    run_pipeline(src, out, _options(render=RenderOptions(views=grid, align="arcface")), workers=1)
    (rec,) = _latest(out).values()
    shares = rec["seen"]
    assert list(shares) == rec["outputs"] and rec["skipped"] == []
    frontal = shares["astronaut_y+00_p+00.jpg"]  # the frontal view shows the most: the turns go
    assert all(share < frontal - 0.01 for name, share in shares.items() if "y+00" not in name)

    limit = frontal - 0.005  # the manifest rounds shares to 3 decimals
    filtered = RenderOptions(views=grid, align="arcface", min_seen=limit)
    out = tmp_path / "filtered"
    report = run_pipeline(src, out, _options(render=filtered), workers=1)
    (rec,) = _latest(out).values()
    assert rec["status"] == "ok" and rec["outputs"] == ["astronaut_y+00_p+00.jpg"]
    assert rec["seen"] == {"astronaut_y+00_p+00.jpg": frontal}
    assert rec["skipped"] == ["astronaut_y-60_p+00.jpg", "astronaut_y+60_p+00.jpg"]
    assert report.left_out == 2 and sorted(p.name for p in out.glob("astronaut*")) == rec["outputs"]
    assert json.loads((out / "pipeline.json").read_text())["settings"]["render"]["min_seen"] == limit
    assert "min_seen" not in _options().settings()["render"]


def test_output_folder_inside_the_input_is_excluded_and_overlaps_refused(tmp_path: Path, astronaut):
    src = tmp_path / "faces"
    (src / "a").mkdir(parents=True)
    Image.fromarray(astronaut).save(src / "a" / "one.jpg")
    first = run_pipeline(src, src / "aug", _options(), workers=1)
    second = run_pipeline(src, src / "aug", _options(), workers=1)
    assert first.output_excluded and first.found == 1 and second.found == 1 and second.skipped == 1
    with pytest.raises(PipelineInputError, match="is the input folder"):
        run_pipeline(src, src, _options())
    with pytest.raises(PipelineInputError, match="inside the output folder"):
        run_pipeline(src / "a", src, _options())


def test_a_folder_without_images_is_refused_before_any_output_is_made(tmp_path: Path):
    src = tmp_path / "faces"
    (src / "empty-identity").mkdir(parents=True)
    (src / "notes.txt").write_text("not an image")
    with pytest.raises(PipelineInputError, match="no images found in"):
        run_pipeline(src, tmp_path / "aug", _options(), workers=1)
    assert not (tmp_path / "aug").exists()


def test_a_completion_failure_is_an_error_of_those_inputs_only(dataset, tmp_path: Path):
    src, _ = dataset
    broken = contract_model(tmp_path / "broken.onnx", crop=8)  # returns 8x8 maps: breaks the contract
    report = run_pipeline(src / "id ünïcode", tmp_path / "out", _options(method="model", model=str(broken)))
    (rec,) = _latest(tmp_path / "out").values()
    assert rec["status"] == "error" and rec["reason"] == REASON_COMPLETE and rec["outputs"] == []
    assert report.statuses == {"error": 1}


def test_manifest_state_keeps_the_latest_record_per_input(tmp_path: Path):
    lines = [
        {"input": "a.jpg", "status": "error", "reason": "fit failed"},
        {"input": "b.jpg", "status": "ok", "reason": ""},
        {"input": "a.jpg", "status": "ok", "reason": ""},
        {"input": "c.jpg", "status": "no_face", "reason": REASON_NO_FACE},
        {"input": "b.jpg", "status": "error", "reason": "render failed"},
    ]
    path = tmp_path / MANIFEST_NAME
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines) + '{"input": "d.jp')
    state = ManifestState.scan(path)
    assert state.inputs == 3
    assert [state.is_finished(n) for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")] == [True, False, True, False]
    assert state.counts == {("ok", ""): 1, ("error", "render failed"): 1, ("no_face", REASON_NO_FACE): 1}


def _copies(root: Path, astronaut: np.ndarray, hopper: np.ndarray, n: int) -> Path:
    for i in range(n):
        folder = root / f"id{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        image = (astronaut if i % 2 else hopper)[:, ::-1] if i % 4 >= 2 else (astronaut if i % 2 else hopper)
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"img{i:02d}.jpg", quality=90)
    return root


def _command(src: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvaug",
        "pipeline",
        str(src),
        "-o",
        str(out),
        "--method",
        "symmetric",
        "--align",
        "arcface",
        "--yaw",
        "-30:30:30",
        "--include-original",
        "-w",
        "2",
    ]


def test_kill_9_and_rerun_gives_the_outputs_of_an_uninterrupted_run(tmp_path: Path, astronaut, hopper):
    src = _copies(tmp_path / "faces", astronaut, hopper, 16)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(_command(src, whole), check=True, capture_output=True, env=env, timeout=300)

    proc = subprocess.Popen(
        _command(src, killed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    manifest = killed / MANIFEST_NAME
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and len(manifest.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
    proc.wait()
    interrupted = _latest(killed)
    assert 3 <= len(interrupted) < 16

    rerun = subprocess.run(_command(src, killed), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    records = _latest(killed)
    assert len(records) == 16 and {rec["status"] for rec in records.values()} == {"ok"}
    assert _files(killed) == _files(whole)
    assert not [p for p in killed.rglob("*") if ".tmp" in p.name]
    report = json.loads((killed / "report.json").read_text())
    assert report["skipped_finished_earlier"] >= len(interrupted)
    assert report["all_inputs"] == {"ok": {"ok": 16}}
