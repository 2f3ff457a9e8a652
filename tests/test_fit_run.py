"""Fitting a whole folder (``uvaug.fit.run.fit_inputs``): every input accounted for, artifacts, resume."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from uvaug.artifacts import FaceFit
from uvaug.fit.fitter import FitOptions
from uvaug.fit.run import fit_inputs
from uvaug.io import MANIFEST_NAME, discover_inputs, read_manifest, write_image_atomic

OK, ERROR, NO_FACE = "ok", "error", "no_face"
EXIF_ORIENTATION = 0x0112


def _jpeg(image: np.ndarray | Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    im.save(buf, "JPEG", quality=92, **save)
    return buf.getvalue()


def _png_claiming_size(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR (CRC fixed) claims ``width`` x ``height``: a decompression-bomb header."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def make_salted_folder(root: Path, astronaut: np.ndarray) -> dict[str, tuple[str, str]]:
    """Write the folder of good, odd and broken inputs; return rel -> (expected status, message fragment)."""
    import skimage.data

    root.mkdir(parents=True)
    expected: dict[str, tuple[str, str]] = {}

    def put(rel: str, data: bytes, status: str, fragment: str = "") -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = (status, fragment)

    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    put("astronaut.jpg", _jpeg(astronaut), OK)
    put("gray.jpg", _jpeg(gray), OK)
    buf = io.BytesIO()
    Image.fromarray(gray.astype(np.uint16) * 257).save(buf, "PNG")  # mode I;16
    put("gray16.png", buf.getvalue(), OK)
    put("cmyk.jpg", _jpeg(Image.fromarray(astronaut).convert("CMYK")), OK)
    # Stored sideways (turned 90 degrees counter-clockwise); EXIF Orientation 6 says "turn clockwise to view".
    upright = np.ascontiguousarray(astronaut[:, 64:448])  # 512 high, 384 wide: the upright size is telling
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    put("exif_rotated.jpg", _jpeg(np.ascontiguousarray(np.rot90(upright, 1)), exif=exif.tobytes()), OK)
    put("sub dir/café photo.jpg", _jpeg(astronaut), OK)
    put("coffee.jpg", _jpeg(skimage.data.coffee()), NO_FACE, "no face")
    put("corrupt.jpg", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), ERROR)
    put("truncated.jpg", _jpeg(astronaut)[:20_000], ERROR, "truncated")
    put("empty.png", b"", ERROR, "empty file")
    put("notes.jpg", b"these are not the pixels you are looking for\n" * 20, ERROR, "not an image")
    put("huge.png", _png_claiming_size(100_000, 100_000), ERROR, "too large")
    return expected


class Run:
    def __init__(self, src: Path, out: Path, expected: dict[str, tuple[str, str]], report, records):
        self.src, self.out, self.expected, self.report, self.records = src, out, expected, report, records

    def inputs_with(self, *statuses: str) -> set[str]:
        return {rel for rel, (status, _) in self.expected.items() if status in statuses}


@pytest.fixture(scope="module")
def salted(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Run:
    base = tmp_path_factory.mktemp("salted")
    src, out = base / "photos", base / "out"
    expected = make_salted_folder(src, astronaut)
    report = fit_inputs(discover_inputs(src), out, workers=1)
    return Run(src, out, expected, report, read_manifest(out / MANIFEST_NAME))


def _run(src: Path, out: Path, **kwargs: object) -> tuple[object, set[str]]:
    """fit_inputs on ``src``; returns the report and the inputs it actually processed."""
    seen: list[str] = []
    report = fit_inputs(
        discover_inputs(src), out, workers=1, on_result=lambda recs: seen.append(recs[0]["input"]), **kwargs
    )
    assert len(seen) == len(set(seen)) == report.processed
    return report, set(seen)


def _artifact_mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}


def test_discovery_finds_every_salted_file(salted: Run):
    items = discover_inputs(salted.src)
    assert sorted(it.rel.as_posix() for it in items) == sorted(salted.expected)


def test_every_input_gets_the_expected_status(salted: Run):
    report, records = salted.report, salted.records
    assert report.total == report.processed == len(salted.expected) and report.skipped == 0
    by_input: dict[str, list[dict]] = {}
    for rec in records:
        by_input.setdefault(rec["input"], []).append(rec)
    assert set(by_input) == set(salted.expected)
    for rel, (status, fragment) in salted.expected.items():
        recs = by_input[rel]
        assert [r["status"] for r in recs] == [status], (rel, recs)
        rec = recs[0]
        if status == OK:
            assert rec["face"] == 0 and rec["message"] == ""
        else:
            assert rec["face"] is None and rec["uv"] is None and rec["fit"] is None
            assert rec["message"] and "\n" not in rec["message"]
            assert fragment in rec["message"], (rel, rec["message"])
    n_ok = len(salted.inputs_with(OK))
    assert report.faces == n_ok
    assert dict(report.statuses) == {
        OK: n_ok,
        NO_FACE: len(salted.inputs_with(NO_FACE)),
        ERROR: len(salted.inputs_with(ERROR)),
    }


def test_ok_artifacts_are_complete_and_match_the_manifest(salted: Run):
    ok = [r for r in salted.records if r["status"] == OK]
    assert len(ok) == len(salted.inputs_with(OK))
    for rec in ok:
        uv_path, fit_path = salted.out / rec["uv"], salted.out / rec["fit"]
        assert uv_path.is_file() and fit_path.is_file()
        with Image.open(uv_path) as im:
            assert im.mode == "RGBA" and im.size == (256, 256)
            alpha = np.asarray(im)[:, :, 3]
        assert (alpha == 0).any() and (alpha == 255).any(), rec["input"]
        fit = FaceFit.load(fit_path)
        assert fit.landmarks.shape == (478, 3) and fit.vertices.shape == (468, 3)
        for angle in ("yaw", "pitch", "roll"):
            assert rec[angle] == round(float(getattr(fit, angle)), 3)
        # Every face here is the astronaut's, upright once the file is read right: near-frontal, level.
        assert abs(fit.yaw) < 15 and abs(fit.roll) < 15, rec["input"]


def test_exif_orientation_is_honoured(salted: Run):
    with Image.open(salted.src / "exif_rotated.jpg") as im:
        assert im.size == (512, 384)  # stored sideways: 512 wide, 384 high
    (rec,) = [r for r in salted.records if r["input"] == "exif_rotated.jpg"]
    fit = FaceFit.load(salted.out / rec["fit"])
    assert tuple(fit.image_size) == (512, 384)  # upright (h, w)
    assert abs(fit.roll) < 15  # found upright, not as a face lying on its side


def test_output_mirrors_input_folders(salted: Run):
    (rec,) = [r for r in salted.records if r["input"] == "sub dir/café photo.jpg"]
    assert rec["status"] == OK
    assert rec["uv"] == "sub dir/café photo.f0.uv.png" and rec["fit"] == "sub dir/café photo.f0.fit.npz"
    assert (salted.out / "sub dir" / "café photo.f0.uv.png").is_file()
    assert {p.name for p in salted.out.iterdir() if p.is_dir()} == {"sub dir"}


def test_manifest_is_valid_jsonl_one_line_per_input_and_face(salted: Run):
    lines = (salted.out / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    keys = [(r["input"], r["face"]) for r in records]
    assert len(keys) == len(set(keys)) == len(salted.expected)


def test_resume_skips_finished_retries_errors_and_cleans_temp_files(tmp_path: Path, salted: Run):
    out = tmp_path / "out"
    first, _ = _run(salted.src, out)
    assert first.processed == len(salted.expected)
    manifest_before = read_manifest(out / MANIFEST_NAME)
    mtimes = _artifact_mtimes(out)
    assert len(mtimes) == 2 * len(salted.inputs_with(OK))  # a UV map and a fit per face

    # A killed writer's leftover: a temp name in atomic_path's format whose pid no longer exists.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / "sub dir" / f".café photo.f0.uv.png.{dead.pid}.abcd1234.tmp.png"
    stale.write_bytes(b"half a png")

    again, rerun = _run(salted.src, out)
    assert again.skipped == len(salted.inputs_with(OK, NO_FACE))
    assert rerun == salted.inputs_with(ERROR)  # errors are retried, nothing else is touched
    assert again.processed == len(rerun) and again.faces == 0
    assert _artifact_mtimes(out) == mtimes
    assert read_manifest(out / MANIFEST_NAME) == manifest_before
    assert not stale.exists()

    # A lost artifact re-runs exactly its input.
    (out / "astronaut.f0.uv.png").unlink()
    _, rerun = _run(salted.src, out)
    assert rerun == salted.inputs_with(ERROR) | {"astronaut.jpg"}
    assert (out / "astronaut.f0.uv.png").is_file()
    changed = {p for p, t in _artifact_mtimes(out).items() if mtimes.get(p) != t}
    assert changed <= {out / "astronaut.f0.uv.png", out / "astronaut.f0.fit.npz"}

    forced, rerun = _run(salted.src, out, overwrite=True)
    assert forced.skipped == 0 and rerun == set(salted.expected)
    assert read_manifest(out / MANIFEST_NAME) == manifest_before


def test_rerun_after_a_killed_run_with_a_truncated_manifest_line(tmp_path: Path, salted: Run):
    out = tmp_path / "out"
    shutil.copytree(salted.out, out)
    with open(out / MANIFEST_NAME, "ab") as fh:
        fh.write(b'{"input": "half')
    _, rerun = _run(salted.src, out)
    assert rerun == salted.inputs_with(ERROR)  # the finished inputs before the cut still count as done
    records = [json.loads(line) for line in (out / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()]
    assert records == salted.records
    assert len({(r["input"], r["face"]) for r in records}) == len(records) == len(salted.expected)


def test_two_workers_give_the_same_manifest(tmp_path: Path, salted: Run):
    report = fit_inputs(discover_inputs(salted.src), tmp_path / "out", workers=2)
    assert report.processed == len(salted.expected)
    parallel = read_manifest(tmp_path / "out" / MANIFEST_NAME)

    def key(rec: dict) -> tuple:
        return rec["input"], rec["face"], rec["status"]

    assert sorted(map(key, parallel)) == sorted(map(key, salted.records))
    serial = {(r["input"], r["face"]): r for r in salted.records}
    for rec in parallel:
        ref = serial[rec["input"], rec["face"]]
        assert rec["message"] == ref["message"] and rec["uv"] == ref["uv"]
        if rec["status"] == OK:
            assert rec["yaw"] == pytest.approx(ref["yaw"], abs=0.01)


def test_worker_start_failure_stops_the_run(tmp_path: Path, astronaut: np.ndarray):
    """A worker that cannot start (here: unknown backend) must fail the run, not leave the pool hanging."""
    for name in ("a.jpg", "b.jpg"):
        write_image_atomic(tmp_path / "in" / name, astronaut)
    script = textwrap.dedent(
        f"""
        from uvaug.fit.run import fit_inputs
        from uvaug.io import discover_inputs

        if __name__ == "__main__":
            fit_inputs(discover_inputs({str(tmp_path / "in")!r}), {str(tmp_path / "out")!r},
                       backend="no-such-backend", workers=2)
        """
    )
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("fit_inputs hung when its workers could not start")
    assert proc.returncode != 0
    assert "unknown fit backend 'no-such-backend'" in proc.stderr
    with pytest.raises(ValueError, match="unknown fit backend"):
        fit_inputs(discover_inputs(tmp_path / "in"), tmp_path / "out1", backend="no-such-backend", workers=1)


@pytest.mark.parametrize("photo", ["astronaut", "hopper"])
def test_uv_alpha_of_a_frontal_face_is_near_symmetric(tmp_path: Path, photo: str, request):
    from uvaug.fit.uv import uv_layout

    write_image_atomic(tmp_path / "in" / f"{photo}.png", request.getfixturevalue(photo))
    fit_inputs(discover_inputs(tmp_path / "in"), tmp_path / "out", workers=1)
    (rec,) = read_manifest(tmp_path / "out" / MANIFEST_NAME)
    assert rec["status"] == OK and abs(rec["yaw"]) < 10
    with Image.open(tmp_path / "out" / rec["uv"]) as im:
        alpha = np.asarray(im)[:, :, 3]
    covered = uv_layout(256).coverage
    assert not alpha[~covered].any()  # nothing is seen outside the face
    agreement = (alpha == alpha[:, ::-1])[covered].mean()
    assert agreement >= 0.95, agreement
    # Most of the face, less the grazing band along the outline (beyond ~66 degrees: min_facing 0.4).
    seen = (alpha[covered] == 255).mean()
    assert seen > 0.6, seen


def test_write_mesh_writes_a_textured_glb(tmp_path: Path, astronaut: np.ndarray):
    import trimesh

    write_image_atomic(tmp_path / "in" / "astronaut.jpg", astronaut)
    out = tmp_path / "out"
    report = fit_inputs(discover_inputs(tmp_path / "in"), out, workers=1, write_mesh=True)
    assert report.faces == 1
    glb = out / "astronaut.f0.glb"
    mesh = trimesh.load(glb, force="mesh")
    assert mesh.vertices.shape == (468, 3) and mesh.faces.shape == (898, 3)
    texture = mesh.visual.material.baseColorTexture
    assert texture is not None and texture.size == (256, 256)
    # Resume knows the mesh is an artifact too: present -> skipped, lost -> redone.
    assert fit_inputs(discover_inputs(tmp_path / "in"), out, write_mesh=True).skipped == 1
    glb.unlink()
    assert fit_inputs(discover_inputs(tmp_path / "in"), out, write_mesh=True).processed == 1
    assert glb.is_file()


def test_all_faces_of_a_composite(tmp_path: Path, astronaut: np.ndarray, hopper: np.ndarray):
    left = cv2.resize(astronaut, (512, 512))
    right = cv2.resize(hopper, (440, 512))
    write_image_atomic(tmp_path / "in" / "pair.png", np.ascontiguousarray(np.hstack([left, right])))
    out = tmp_path / "out"
    report = fit_inputs(discover_inputs(tmp_path / "in"), out, workers=1, options=FitOptions(faces="all"))
    assert report.processed == 1 and report.faces == 2 and dict(report.statuses) == {OK: 1}
    records = read_manifest(out / MANIFEST_NAME)
    assert [(r["input"], r["face"], r["status"]) for r in records] == [
        ("pair.png", 0, OK),
        ("pair.png", 1, OK),
    ]
    fits = [FaceFit.load(out / r["fit"]) for r in records]
    widths = [float(f.box[2] - f.box[0]) for f in fits]
    assert widths[0] >= widths[1]  # face 0 is the largest
    centres = sorted(float(f.box[0] + f.box[2]) / 2 for f in fits)
    assert centres[0] < 512 < centres[1]  # one face on each photo
    assert all((out / r["uv"]).is_file() for r in records)


# --- model files ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_model_caches(monkeypatch: pytest.MonkeyPatch):
    """Model lookups re-run during the test, and again (with the real environment) after it."""
    from uvaug.assets import model_path
    from uvaug.fit.bundle import default_bundle

    model_path.cache_clear()
    default_bundle.cache_clear()
    yield monkeypatch
    model_path.cache_clear()
    default_bundle.cache_clear()


def test_altered_model_file_is_refused(tmp_path: Path, fresh_model_caches: pytest.MonkeyPatch):
    from uvaug.assets import MODELS_ENV, ModelError, model_path
    from uvaug.fit.fitter import create_fitter

    real = model_path.__wrapped__("face_landmarker.task")
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0x01
    models = tmp_path / "models"
    models.mkdir()
    (models / real.name).write_bytes(bytes(data))
    fresh_model_caches.setenv(MODELS_ENV, str(models))

    with pytest.raises(ModelError, match="altered") as info:
        model_path("face_landmarker.task")
    assert str(models / real.name) in str(info.value)
    with pytest.raises(ModelError, match="altered"):
        create_fitter()
    # A run stops at once instead of recording every image as failed.
    write_image_atomic(tmp_path / "in" / "a.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ModelError, match="altered"):
        fit_inputs(discover_inputs(tmp_path / "in"), tmp_path / "out", workers=1)
    assert read_manifest(tmp_path / "out" / MANIFEST_NAME) == []


def test_unknown_model_and_search_order(tmp_path: Path, fresh_model_caches: pytest.MonkeyPatch):
    from uvaug.assets import MODELS_ENV, ModelError, model_dirs, model_path

    with pytest.raises(ModelError, match=r"unknown model 'nope\.task'"):
        model_path("nope.task")
    fresh_model_caches.setenv(MODELS_ENV, str(tmp_path))
    dirs = model_dirs()
    assert dirs[0] == tmp_path and len(dirs) == 3
    fresh_model_caches.delenv(MODELS_ENV)
    assert tmp_path not in model_dirs()
    # An empty override folder falls back to the shipped copy, which verifies.
    fresh_model_caches.setenv(MODELS_ENV, str(tmp_path))
    found = model_path("face_landmarker.task")
    assert found.parent != tmp_path and found.is_file()
