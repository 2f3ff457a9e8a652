"""The ``uvaug`` command line: version, help, fit, usage errors, doctor and demo."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from uvaug import __version__
from uvaug.cli.app import app
from uvaug.cli.console import reflow
from uvaug.io import MANIFEST_NAME, read_manifest, write_image_atomic

WIDE = {"COLUMNS": "200"}  # rich wraps tables and help at the terminal width; keep names on one line


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


@pytest.fixture
def photos(tmp_path: Path, astronaut: np.ndarray) -> Path:
    folder = tmp_path / "photos"
    write_image_atomic(folder / "astronaut.jpg", astronaut)
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 2048, np.uint8).tobytes())
    return folder


def test_version_from_the_installed_console_script():
    script = shutil.which("uvaug") or shutil.which("uvaug", path=str(Path(sys.executable).parent))
    assert script, "the uvaug console script is not installed (pip install -e .)"
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"uvaug {__version__}"


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"uvaug {__version__}"
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("fit", "doctor", "demo"):
        assert f" {command} " in result.stdout, command
    result = invoke("fit", "--help")
    assert result.exit_code == 0
    assert "Examples" in result.stdout and "uvaug fit photos/" in result.stdout
    assert "--workers" in result.stdout and "manifest.jsonl" in result.stdout


def test_help_prose_wraps_at_the_terminal_width_and_examples_keep_their_lines():
    examples = "[bold]Examples[/]\n\n  uvaug fit a/\n  uvaug fit b/"
    assert reflow(f"{examples}\n\nOne sentence\nacross lines.\n\nAnother.\n") == (
        f"{examples}\n\nOne sentence across lines.\n\nAnother."
    )
    wide = invoke("pipeline", "--help").stdout  # the source breaks this sentence after "the shipped model"
    assert "completed (the shipped model on ONNX Runtime, CUDA when present, in batches)" in wide
    assert "--align arcface          # 9 yaws per image, 112x112 crops" in wide


def test_fit_a_folder_into_the_default_output(photos: Path):
    result = invoke("fit", str(photos), "-w", "1")
    assert result.exit_code == 0, result.output
    out = photos.parent / "photos-fit"  # the default: <input>-fit beside the input
    assert result.stdout.splitlines()[-1] == str(out)
    records = read_manifest(out / MANIFEST_NAME)
    assert sorted((r["input"], r["status"]) for r in records) == [
        ("astronaut.jpg", "ok"),
        ("corrupt.jpg", "error"),
    ]
    assert (out / "astronaut.f0.uv.png").is_file() and (out / "astronaut.f0.fit.npz").is_file()
    assert "faces fitted" in result.stderr  # the summary goes to stderr, stdout only carries the folder


def _usage_cases(tmp_path: Path, photos: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "taken.txt"
    a_file.write_text("not a folder")
    return {
        # brackets must come out literally, not as console markup
        "missing input path": (["fit", str(tmp_path / "[red]x")], f"input not found: {tmp_path / '[red]x'}"),
        "no input argument": (["fit"], "Missing argument 'INPUT'"),
        # no -w here: the default worker count must parse (it is not a usage error)
        "empty folder": (["fit", str(empty)], "no images found"),
        "zero workers": (["fit", str(photos), "--workers", "0"], "--workers"),
        "unknown face selection": (["fit", str(photos), "--faces", "bogus"], "bogus"),
        "output is a file": (["fit", str(photos), "-o", str(a_file)], "not a folder"),
        "unknown command": (["fitt", str(photos)], "No such command"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing input path",
        "no input argument",
        "empty folder",
        "zero workers",
        "unknown face selection",
        "output is a file",
        "unknown command",
    ],
)
def test_usage_errors_exit_2_with_one_line(case: str, tmp_path: Path, photos: Path):
    args, fragment = _usage_cases(tmp_path, photos)[case]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""
    assert not (photos.parent / "photos-fit").exists()  # nothing was run


def test_output_inside_the_input_is_not_read_back(photos: Path):
    out = photos / "out"
    for _ in range(2):
        result = invoke("fit", str(photos), "-o", str(out), "-w", "1")
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == str(out)
        assert {r["input"] for r in read_manifest(out / MANIFEST_NAME)} == {"astronaut.jpg", "corrupt.jpg"}
    assert (out / "astronaut.f0.uv.png").is_file()  # the second run had UV PNGs under the input to ignore
    assert "resuming: 1 of 2 images" in result.stderr


def test_doctor():
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    for what in ("face_landmarker.task", "LiteRT", "GL ", "ONNX Runtime", "completion device"):
        assert what in result.stderr, what


def _doctor_with_gl(monkeypatch, works: dict[str, bool], chosen: str | None = None):
    """``uvaug doctor`` as it reports on a machine where only the platforms in ``works`` render (the probe
    of the system's GL libraries is the boundary replaced here)."""
    import uvaug.gl

    monkeypatch.setattr(
        uvaug.gl, "probe_platform", lambda name: (works[name], "renders" if works[name] else "nope")
    )
    if chosen is None:
        monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    else:
        monkeypatch.setenv("PYOPENGL_PLATFORM", chosen)
    result = invoke("doctor")
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.stderr.splitlines()
        if line.count("│") == 4 and line.split("│")[1].strip()
    }
    return result, rows


def test_doctor_fails_only_on_the_gl_platform_rendering_would_use(monkeypatch):
    result, rows = _doctor_with_gl(monkeypatch, {"egl": True, "osmesa": False})
    assert result.exit_code == 0, result.output
    assert rows["GL egl"] == "ok" and rows["GL osmesa"] == "-" and rows["GL platform for rendering"] == "ok"

    result, rows = _doctor_with_gl(monkeypatch, {"egl": True, "osmesa": False}, chosen="osmesa")
    assert result.exit_code == 1
    assert rows["GL osmesa"] == "FAIL" and rows["GL platform for rendering"] == "FAIL"
    assert "set it to egl" in " ".join(result.stderr.split())

    result, rows = _doctor_with_gl(monkeypatch, {"egl": False, "osmesa": False})
    assert result.exit_code == 1
    assert rows["GL egl"] == rows["GL osmesa"] == rows["GL platform for rendering"] == "FAIL"
    assert "apt-get install libosmesa6" in " ".join(result.stderr.split())
    assert "3 check(s) failed" in result.stderr

    result, rows = _doctor_with_gl(monkeypatch, {"egl": False, "osmesa": False}, chosen="egl")
    assert result.exit_code == 1 and rows["GL platform for rendering"] == "FAIL"
    assert "does not render; no headless OpenGL platform works" in " ".join(result.stderr.split())


def test_demo(tmp_path: Path):
    result = invoke("demo", "-o", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    demo = tmp_path / "demo"
    assert result.stdout.splitlines()[-1] == str(demo)
    fit = demo / "fit"
    assert (fit / "astronaut.f0.uv.png").is_file() and (fit / "astronaut.f0.glb").is_file()
    (rec,) = read_manifest(fit / MANIFEST_NAME)
    assert rec["input"] == "astronaut.png" and rec["status"] == "ok"
    # Every stage ran: a completed map for the face, five rendered views, and the contact sheet.
    (done,) = read_manifest(demo / "completed" / MANIFEST_NAME)
    assert done["status"] == "ok" and (demo / "completed" / done["output"]).is_file()
    views = read_manifest(demo / "render" / MANIFEST_NAME)
    assert len(views) == 5 and all((demo / "render" / v["output"]).is_file() for v in views)
    assert (demo / "sheet.png").is_file()


def test_cli_defaults_match_the_library_defaults():
    """The fit command's visible defaults are the ones the library (and so ``uvaug pipeline``) uses."""
    import inspect

    from uvaug.cli.fit import fit_command
    from uvaug.fit.fitter import FitOptions

    params = inspect.signature(fit_command).parameters
    for name in ("min_face_size", "min_score", "uv_size", "min_facing"):
        assert params[name].default == getattr(FitOptions(), name), name
