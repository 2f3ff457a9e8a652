"""Completing whole folders (``uvaug.complete.run``), the ONNX Runtime completer and ``uvaug complete``.

The ONNX models here are built in the test with ``onnx.helper`` and implement the network contract of
``uvaug.complete.tensors`` without the network: the mirrored known RGB (input channels 4..6) as the output, so
a hole whose mirror twin is known gets the twin's colour and any other hole mid grey.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image
from typer.testing import CliRunner

from uvaug.assets import SHIPPED, ModelError
from uvaug.cli.app import app
from uvaug.complete.maps import face_coverage, finish, known_fraction, load_uv_map
from uvaug.complete.onnx_runtime import (
    CPU,
    CUDA,
    DEFAULT_MODEL,
    DeviceError,
    OnnxCompleter,
    choose_providers,
)
from uvaug.complete.run import complete_inputs, create_completer, discover_uv_maps
from uvaug.complete.seams import blend_output_seams
from uvaug.complete.symmetric import SymmetricCompleter
from uvaug.complete.tensors import INPUT_NAME, OUTPUT_NAME, from_network_output, known_mask, to_network_input
from uvaug.fit.run import fit_inputs
from uvaug.io import MANIFEST_NAME, InputError, discover_inputs, read_manifest, write_image_atomic

WIDE = {"COLUMNS": "200"}
OK, ERROR = "ok", "error"


# --- fixtures ----------------------------------------------------------------------------------------------


def contract_model(
    path: Path,
    *,
    size: int | None = None,
    batch: int | None = None,
    metadata: dict[str, str] | None = None,
    input_name: str = INPUT_NAME,
    crop: int | None = None,
) -> Path:
    """An ONNX model honouring the tensors contract: output = the mirrored known RGB (channels 4..6).

    ``size``/``batch`` fix those dimensions (None: dynamic); ``crop`` makes it return only the top-left
    ``crop`` x ``crop`` texels, i.e. break the contract at run time.
    """
    h = w = size if size is not None else "H"
    n = batch if batch is not None else "N"
    starts, ends, axes = [4], [7], [1]
    if crop is not None:
        starts, ends, axes = [4, 0, 0], [7, crop, crop], [1, 2, 3]
    out_hw = [crop, crop] if crop is not None else [h, w]
    graph = helper.make_graph(
        [helper.make_node("Slice", [input_name, "starts", "ends", "axes"], [OUTPUT_NAME])],
        "uv_completion_contract",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [n, 8, h, w])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [n, 3, *out_hw])],
        initializer=[
            helper.make_tensor("starts", TensorProto.INT64, [len(starts)], starts),
            helper.make_tensor("ends", TensorProto.INT64, [len(ends)], ends),
            helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime the project supports
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return contract_model(tmp_path_factory.mktemp("models") / "mirror.onnx")


@pytest.fixture(scope="module")
def fit_output(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """A fit stage output: two faces (one in a subfolder), a photo without a face, a corrupt photo."""
    import skimage.data

    photos = tmp_path_factory.mktemp("photos")
    write_image_atomic(photos / "astronaut.jpg", astronaut)
    write_image_atomic(photos / "sub dir" / "mirrored.png", np.ascontiguousarray(astronaut[:, ::-1]))
    write_image_atomic(photos / "coffee.jpg", skimage.data.coffee())
    (photos / "corrupt.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 2048, np.uint8).tobytes())
    out = photos.parent / "photos-fit"
    report = fit_inputs(discover_inputs(photos), out, workers=1)
    assert report.faces == 2 and dict(report.statuses) == {"ok": 2, "no_face": 1, "error": 1}
    return out


def _png(image: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def uv_folder(tmp_path_factory: pytest.TempPathFactory, fit_output: Path) -> tuple[Path, dict[str, str]]:
    """A plain folder of UV maps, good and bad; returns it and rel -> expected status or message fragment."""
    folder = tmp_path_factory.mktemp("uvs")
    real = load_uv_map(fit_output / "astronaut.f0.uv.png")
    left_hidden = real.copy()
    left_hidden[:, :128] = 0
    gray_alpha = np.dstack([real[..., :3].mean(axis=2).astype(np.uint8), real[..., 3]])
    files = {
        "a.uv.png": (_png(real), OK),
        "nested/left_hidden.uv.png": (_png(left_hidden), OK),
        "gray_alpha.uv.png": (_png(gray_alpha, "LA"), OK),  # gray + alpha is a UV map too
        "small.uv.png": (_png(np.ascontiguousarray(real[::4, ::4])), OK),  # 64x64
        "corrupt.uv.png": (_png(real)[:3000], "corrupt or truncated"),
        "rgb.uv.png": (_png(np.ascontiguousarray(real[..., :3])), "not an RGBA UV map"),
        "wide.uv.png": (_png(np.zeros((64, 96, 4), np.uint8)), "not square"),
        "tiny.uv.png": (_png(np.zeros((8, 8, 4), np.uint8)), "outside 16..4096"),
        "preview.png": (_png(real), "-"),  # not named *.uv.png: not a UV map here
    }
    expected = {}
    for rel, (data, status) in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        if status != "-":
            expected[rel] = status
    return folder, expected


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def _check_outputs(out: Path, src: Path, records: list[dict]) -> None:
    """Every ok record's output: same relative path, known texels exact, the whole face opaque."""
    for rec in records:
        if rec["status"] != OK:
            continue
        assert rec["output"] == rec["input"]
        rgba = load_uv_map(src / rec["input"])
        done = load_uv_map(out / rec["output"])
        known = known_mask(rgba[None])[0]
        np.testing.assert_array_equal(done[known][:, :3], rgba[known][:, :3])
        assert (done[..., 3][face_coverage(rgba.shape[0]) | known] == 255).all()
        assert rec["known"] == round(known_fraction(rgba), 4)


# --- discovery ---------------------------------------------------------------------------------------------


def test_discovering_a_fit_output_reads_its_manifest(fit_output: Path):
    items = discover_uv_maps(fit_output)
    assert [it.rel.as_posix() for it in items] == ["astronaut.f0.uv.png", "sub dir/mirrored.f0.uv.png"]
    assert all(it.path.is_file() for it in items)


def test_discovering_a_folder_of_maps(uv_folder: tuple[Path, dict[str, str]], tmp_path: Path):
    folder, expected = uv_folder
    assert [it.rel.as_posix() for it in discover_uv_maps(folder)] == sorted(expected)
    # No *.uv.png at all: every PNG is taken for a UV map.
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("x.png", "y.PNG", "z.jpg"):
        (plain / name).write_bytes(b"")
    assert [it.rel.as_posix() for it in discover_uv_maps(plain)] == ["x.png", "y.PNG"]
    (single,) = discover_uv_maps(plain / "x.png")
    assert single.rel.as_posix() == "x.png"
    with pytest.raises(InputError, match="input not found"):
        discover_uv_maps(tmp_path / "missing")
    with pytest.raises(InputError, match="not a folder of UV maps"):
        discover_uv_maps(plain / "z.jpg")


def test_a_fit_manifest_pointing_outside_its_folder_is_refused(tmp_path: Path):
    line = (
        '{"input":"a.jpg","face":0,"status":"ok","message":"","uv":"../escape.uv.png","fit":"a.f0.fit.npz"}\n'
    )
    (tmp_path / MANIFEST_NAME).write_text(line)
    with pytest.raises(InputError, match="outside its folder"):
        discover_uv_maps(tmp_path)


def test_a_fit_manifest_is_read_as_its_latest_records(tmp_path: Path):
    """A killed fit run leaves history in its manifest: the latest record of each face counts."""
    lines = [
        {"input": "a.jpg", "face": 0, "status": "ok", "uv": "a.f0.uv.png"},
        {"input": "b.jpg", "face": 0, "status": "ok", "uv": "b.f0.uv.png"},
        {"input": "a.jpg", "face": 0, "status": "error", "uv": None},  # a rerun failed: a is no longer done
        {"input": "c.jpg", "face": None, "status": "no_face", "uv": None},
    ]
    (tmp_path / MANIFEST_NAME).write_text(
        "".join(json.dumps({"message": "", "fit": None, **r}) + "\n" for r in lines)
    )
    (item,) = discover_uv_maps(tmp_path)
    assert item.rel.as_posix() == "b.f0.uv.png"
    # Listed but gone: the run reports it instead of skipping it silently.
    complete_inputs([item], tmp_path / "out", SymmetricCompleter())
    (rec,) = read_manifest(tmp_path / "out" / MANIFEST_NAME)
    assert rec["status"] == ERROR and rec["message"] == "file not found"


# --- complete_inputs ---------------------------------------------------------------------------------------


def test_complete_a_fit_output_with_the_symmetric_baseline(fit_output: Path, tmp_path: Path):
    out = tmp_path / "completed"
    seen: list[str] = []
    report = complete_inputs(
        discover_uv_maps(fit_output),
        out,
        SymmetricCompleter(),
        on_result=lambda recs: seen.extend(r["input"] for r in recs),
    )
    assert report.total == report.processed == 2 and dict(report.statuses) == {OK: 2}
    records = read_manifest(out / MANIFEST_NAME)
    assert sorted(seen) == sorted(r["input"] for r in records)
    # One line per map, mirroring the fit's paths, so the render stage pairs them with the fits.
    fit_uvs = sorted(r["uv"] for r in read_manifest(fit_output / MANIFEST_NAME) if r["status"] == OK)
    assert sorted(r["output"] for r in records) == fit_uvs
    for rec in records:
        assert set(rec) == {"input", "status", "message", "output", "known", "method", "model"}
        assert rec["status"] == OK and rec["message"] == "" and rec["method"] == "symmetric"
        # A frontal photo shows about 70% of the layout, the grazing band (beyond ~66 degrees) left out.
        assert rec["model"] is None and 0.6 < rec["known"] < 1.0
    _check_outputs(out, fit_output, records)


def test_bad_maps_get_error_records_and_never_stop_the_run(
    uv_folder: tuple[Path, dict[str, str]], tmp_path: Path
):
    folder, expected = uv_folder
    out = tmp_path / "out"
    report = complete_inputs(discover_uv_maps(folder), out, SymmetricCompleter(), workers=2)
    records = {r["input"]: r for r in read_manifest(out / MANIFEST_NAME)}
    assert set(records) == set(expected) and report.processed == len(expected)
    for rel, status in expected.items():
        rec = records[rel]
        if status == OK:
            assert rec["status"] == OK, rec
        else:
            assert rec["status"] == ERROR and status in rec["message"], rec
            assert rec["output"] is None and "\n" not in rec["message"]
            assert not (out / rel).exists()
    _check_outputs(out, folder, list(records.values()))


def test_resume_skips_finished_maps_and_retries_errors(
    uv_folder: tuple[Path, dict[str, str]], tmp_path: Path
):
    folder, expected = uv_folder
    items = discover_uv_maps(folder)
    errors = {rel for rel, status in expected.items() if status != OK}
    oks = set(expected) - errors
    out = tmp_path / "out"
    complete_inputs(items, out, SymmetricCompleter())
    manifest = read_manifest(out / MANIFEST_NAME)
    mtimes = _mtimes(out)

    def rerun(completer=None, **kwargs) -> tuple[object, set[str]]:
        seen: list[str] = []
        report = complete_inputs(
            items,
            out,
            completer or SymmetricCompleter(),
            on_result=lambda recs: seen.extend(r["input"] for r in recs),
            **kwargs,
        )
        return report, set(seen)

    report, redone = rerun()
    assert report.skipped == len(oks) and redone == errors
    assert _mtimes(out) == mtimes
    assert read_manifest(out / MANIFEST_NAME) == manifest  # compacted: still one line per map

    (out / "a.uv.png").unlink()  # a lost output is redone, alone
    _, redone = rerun()
    assert redone == errors | {"a.uv.png"}

    _, redone = rerun(overwrite=True)
    assert redone == set(expected)

    # Another method redoes everything and says so in the manifest.
    _, redone = rerun(OnnxCompleter(contract_model(tmp_path / "m.onnx")))
    assert redone == set(expected)
    assert {r["method"] for r in read_manifest(out / MANIFEST_NAME)} == {"model"}


def test_complete_with_an_onnx_model_in_batches(fit_output: Path, model_file: Path, tmp_path: Path):
    items = discover_uv_maps(fit_output)
    # Hide one side of each face so that the model has mirror twins to use.
    src = tmp_path / "src"
    for item in items:
        rgba = load_uv_map(item.path).copy()
        rgba[:, 140:] = 0
        write_image_atomic(src / item.rel, rgba)
    items = discover_uv_maps(src)
    out = tmp_path / "out"
    completer = OnnxCompleter(model_file, device="cpu", seam_blend=False)  # the mirror model's own colours
    report = complete_inputs(items, out, completer, batch_size=1, workers=2)
    assert report.processed == 2 and dict(report.statuses) == {OK: 2}
    records = read_manifest(out / MANIFEST_NAME)
    assert {(r["method"], r["model"]) for r in records} == {("model", "mirror.onnx")}
    _check_outputs(out, src, records)
    for rec in records:
        rgba, done = load_uv_map(src / rec["input"]), load_uv_map(out / rec["output"])
        known = known_mask(rgba[None])[0]
        twins = ~known & known[:, ::-1] & face_coverage(256)
        assert twins.sum() > 10_000
        np.testing.assert_array_equal(done[twins][:, :3], rgba[:, ::-1][twins][:, :3])


def test_onnx_completer_keeps_known_texels_and_fills_holes(fit_output: Path, model_file: Path):
    rgba = load_uv_map(fit_output / "astronaut.f0.uv.png")
    completer = OnnxCompleter(model_file, device="cpu", threads=1, seam_blend=False)
    assert completer.providers == [CPU] and completer.size is None and completer.fixed_batch is None
    single = completer(rgba)
    known = known_mask(rgba[None])[0]
    face = face_coverage(256)
    np.testing.assert_array_equal(single[known][:, :3], rgba[known][:, :3])
    assert (single[..., 3][face] == 255).all() and not single[~face].any()
    holes = face & ~known & ~known[:, ::-1]  # no twin either: the contract model paints them mid grey
    assert holes.any() and (single[holes][:, :3] == 128).all()
    # A batch of five, one of them hiding everything, gives the same maps.
    batch = np.stack([rgba, rgba[:, ::-1], np.zeros_like(rgba), rgba, rgba])
    out = completer(batch)
    np.testing.assert_array_equal(out[0], single)
    np.testing.assert_array_equal(out[3], single)
    assert (out[2][face] == (128, 128, 128, 255)).all()


def test_onnx_completer_blends_seams_by_default(fit_output: Path, model_file: Path):
    """The default completer is the network's colours with :func:`blend_output_seams` applied, known texels
    still exact; only holes change."""
    rgba = load_uv_map(fit_output / "astronaut.f0.uv.png").copy()
    rgba[:, 150:] = 0  # the far side hidden: the mirror model's copies meet the photo along the cut
    blended = OnnxCompleter(model_file, device="cpu", threads=1)(rgba)
    raw = OnnxCompleter(model_file, device="cpu", threads=1, seam_blend=False)(rgba)
    colours = to_network_input(rgba[None])[:, 4:7]  # what the mirror model outputs
    completed = from_network_output(blend_output_seams(colours, rgba[None]), rgba[None])
    expected = finish(np.ascontiguousarray(completed), rgba[None])[0]
    np.testing.assert_array_equal(blended, expected)
    known = known_mask(rgba[None])[0]
    np.testing.assert_array_equal(blended[known], raw[known])
    changed = (blended != raw).any(-1)
    assert changed.sum() > 1000 and not changed[known].any()


@pytest.mark.parametrize(
    ("size", "batch", "metadata"), [(64, 3, None), (None, None, {"uv_size": "64"}), (256, 2, None)]
)
def test_models_with_a_fixed_size_or_batch(
    fit_output: Path, tmp_path: Path, size: int | None, batch: int | None, metadata: dict | None
):
    """A map of another size is resized to the model's and back; known texels still come out exact."""
    path = contract_model(tmp_path / "fixed.onnx", size=size, batch=batch, metadata=metadata)
    completer = OnnxCompleter(path, device="cpu", seam_blend=False)
    assert completer.size == (size or 64) and completer.fixed_batch == batch
    rgba = load_uv_map(fit_output / "astronaut.f0.uv.png")
    maps = np.stack([rgba] * 5)  # not a multiple of the fixed batch: the last chunk is padded
    out = completer(maps)
    known = known_mask(rgba[None])[0]
    face = face_coverage(256)
    for done in out:
        np.testing.assert_array_equal(done[known][:, :3], rgba[known][:, :3])
        assert (done[..., 3][face] == 255).all() and not done[~face].any()
    np.testing.assert_array_equal(out[4], out[0])
    if completer.size != 256:  # resampled through 64x64: still close to the mirror on mirrored holes
        twins = ~known & known[:, ::-1] & face
        error = np.abs(out[0][twins][:, :3].astype(int) - rgba[:, ::-1][twins][:, :3]).mean()
        assert error < 20, error


def test_a_model_failing_at_run_time_gives_error_records(fit_output: Path, tmp_path: Path):
    broken = OnnxCompleter(contract_model(tmp_path / "crop.onnx", crop=8), device="cpu")
    out = tmp_path / "out"
    report = complete_inputs(discover_uv_maps(fit_output), out, broken, batch_size=1)
    assert report.processed == 2 and dict(report.statuses) == {ERROR: 2}
    for rec in read_manifest(out / MANIFEST_NAME):
        assert rec["message"].startswith("completion failed: RuntimeError: the model returned shape")
        assert rec["known"] is not None and rec["output"] is None


def test_unusable_model_files(tmp_path: Path):
    with pytest.raises(ModelError, match="model file not found"):
        OnnxCompleter(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="cannot load completion model"):
        OnnxCompleter(junk)
    wrong = contract_model(tmp_path / "wrong.onnx", input_name="image")
    with pytest.raises(ModelError, match="not a uvaug completion model"):
        OnnxCompleter(wrong)


@pytest.mark.skipif(DEFAULT_MODEL in SHIPPED, reason="the completion model ships with this version")
def test_the_missing_default_model_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ModelError, match=f"{DEFAULT_MODEL} not found.*--method symmetric"):
        create_completer("model")
    # A copy dropped into a models folder without a registered checksum is refused, and named.
    from uvaug.assets import MODELS_ENV

    contract_model(tmp_path / DEFAULT_MODEL)
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    with pytest.raises(ModelError, match="not a registered uvaug model"):
        create_completer("model")


def test_provider_choice():
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cuda", ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(DeviceError, match="no CUDA provider"):
        choose_providers("cuda", [CPU])
    with pytest.raises(ValueError, match="unknown device"):
        choose_providers("gpu", [CPU])


def _cuda_usable(model_file: Path) -> bool:
    try:
        OnnxCompleter(model_file, device="cuda")
    except DeviceError:
        return False
    return True


def test_cuda_runs_or_is_refused_clearly(model_file: Path, fit_output: Path):
    """Either CUDA really runs the model, or asking for it fails with a one-line reason (not silently CPU)."""
    rgba = load_uv_map(fit_output / "astronaut.f0.uv.png")
    try:
        completer = OnnxCompleter(model_file, device="cuda")
    except DeviceError as exc:
        assert "--device cpu" in str(exc) and "\n" not in str(exc)
        assert OnnxCompleter(model_file, device="auto").device == "cpu"  # auto falls back quietly
    else:
        assert completer.device == "cuda" and completer.providers[0] == CUDA
        np.testing.assert_array_equal(completer(rgba), OnnxCompleter(model_file, device="cpu")(rgba))


def test_a_cuda_session_that_does_not_start_is_retried_once_with_the_pip_cuda_libraries(
    model_file: Path, monkeypatch
):
    """Where CUDA does not start at first, NVIDIA's wheels (if installed) are loaded and the session started
    again; where that does not help either, auto still ends on the CPU and cuda still fails in one line."""
    import onnxruntime as ort

    from uvaug.complete import onnx_runtime

    if CUDA not in ort.get_available_providers() or _cuda_usable(model_file):
        pytest.skip("needs ONNX Runtime's GPU build on a machine where CUDA does not start")
    loads = []
    monkeypatch.setattr(onnx_runtime, "pip_cuda_libraries", lambda: True)  # as if 'uvaug[gpu]' were installed
    monkeypatch.setattr(ort, "preload_dlls", lambda: loads.append(1), raising=False)  # ONNX Runtime's loader
    onnx_runtime.preload_pip_cuda_libraries.cache_clear()
    try:
        assert OnnxCompleter(model_file, device="auto").device == "cpu"
        assert OnnxCompleter(model_file, device="cpu").device == "cpu"
        with pytest.raises(DeviceError, match="uvaug\\[gpu\\]"):
            OnnxCompleter(model_file, device="cuda")
        assert loads == [1]  # loaded once per process, only for sessions that asked for CUDA
    finally:
        onnx_runtime.preload_pip_cuda_libraries.cache_clear()


def test_create_completer_checks_its_arguments(model_file: Path):
    assert isinstance(create_completer("symmetric"), SymmetricCompleter)
    assert create_completer("model", model_file, device="cpu").model == "mirror.onnx"
    with pytest.raises(ValueError, match="only applies to method 'model'"):
        create_completer("symmetric", model_file)
    with pytest.raises(ValueError, match="unknown completion method"):
        create_completer("telepathy")


# --- the command line --------------------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def test_cli_completes_a_fit_output_into_the_default_folder(fit_output: Path, model_file: Path):
    result = invoke("complete", str(fit_output), "--method", "symmetric", "-w", "1")
    assert result.exit_code == 0, result.output
    out = fit_output.parent / "photos-fit-completed"
    assert result.stdout.splitlines()[-1] == str(out)
    assert {r["output"] for r in read_manifest(out / MANIFEST_NAME)} == {
        "astronaut.f0.uv.png",
        "sub dir/mirrored.f0.uv.png",
    }
    assert "maps/s" in result.stderr and "UV maps found" in result.stderr

    # The model, into a given folder; then a rerun resumes.
    other = fit_output.parent / "with-model"
    for _ in range(2):
        result = invoke(
            "complete", str(fit_output), "-o", str(other), "--model", str(model_file), "--device", "cpu"
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == str(other)
    assert "resuming: 2 of 2 UV maps" in result.stderr
    assert {r["model"] for r in read_manifest(other / MANIFEST_NAME)} == {"mirror.onnx"}


def test_cli_help():
    result = invoke("complete", "--help")
    assert result.exit_code == 0
    for text in ("Examples", "uvaug complete photos-fit/", "--method", "--batch-size", "manifest.jsonl"):
        assert text in result.stdout, text
    assert "UVS-completed" in result.stdout
    assert " complete " in invoke("--help").stdout


def _usage_cases(tmp_path: Path, fit_output: Path, model_file: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    cases = {
        "missing folder": (["complete", str(tmp_path / "nope")], "input not found"),
        "no UV maps": (["complete", str(empty)], "no UV maps found"),
        "model file missing": (
            ["complete", str(fit_output), "--model", str(tmp_path / "net.onnx")],
            "model file not found",
        ),
        "model with symmetric": (
            ["complete", str(fit_output), "--method", "symmetric", "--model", str(model_file)],
            "--model only applies to --method model",
        ),
        "output is a file": (["complete", str(fit_output), "-o", str(a_file)], "not a folder"),
        "output is the input": (["complete", str(fit_output), "-o", str(fit_output)], "is the input folder"),
        "zero batch size": (["complete", str(fit_output), "--batch-size", "0"], "--batch-size"),
        "unknown device": (["complete", str(fit_output), "--device", "tpu"], "tpu"),
    }
    if DEFAULT_MODEL not in SHIPPED:
        cases["default model missing"] = (["complete", str(fit_output)], "--method symmetric")
    if not _cuda_usable(model_file):
        cases["cuda unavailable"] = (
            ["complete", str(fit_output), "--model", str(model_file), "--device", "cuda"],
            "CUDA requested",
        )
    return cases


def test_cli_usage_errors_exit_2_with_one_line(tmp_path: Path, fit_output: Path, model_file: Path):
    cases = _usage_cases(tmp_path, fit_output, model_file)
    assert len(cases) >= 8
    for i, (case, (args, fragment)) in enumerate(cases.items()):
        out = tmp_path / f"out{i}"
        result = invoke(*args, *([] if "-o" in args else ["-o", str(out)]))
        assert result.exit_code == 2, (case, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, result.stderr)
        assert fragment in lines[0], (case, lines[0])
        assert result.stdout == "", case
        assert not out.exists(), case  # nothing was run


def test_write_failures_are_reported_per_map(fit_output: Path, tmp_path: Path):
    """An output path that cannot be written (a folder is in the way) is an error record, not a crash."""
    out = tmp_path / "out"
    (out / "astronaut.f0.uv.png").mkdir(parents=True)
    complete_inputs(discover_uv_maps(fit_output), out, SymmetricCompleter())
    records = {r["input"]: r for r in read_manifest(out / MANIFEST_NAME)}
    assert records["astronaut.f0.uv.png"]["status"] == ERROR
    assert records["astronaut.f0.uv.png"]["message"].startswith("write failed")
    assert records["sub dir/mirrored.f0.uv.png"]["status"] == OK
    assert os.listdir(out / "astronaut.f0.uv.png") == []  # nothing half-written left behind
