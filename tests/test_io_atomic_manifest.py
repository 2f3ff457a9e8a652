"""Atomic writes and the JSON-lines manifest: nothing half-written is ever visible or trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest

from uvaug.io import (
    MANIFEST_NAME,
    ManifestWriter,
    atomic_path,
    cleanup_temp_files,
    compact_manifest,
    load_image,
    read_manifest,
    savez_atomic,
    write_bytes_atomic,
    write_image_atomic,
    write_text_atomic,
)

DEAD_PID = 99_999_999  # above any pid_max, so no such process can exist


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- atomic writes -------------------------------------------------------------------------------


def test_atomic_path_success(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "out.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent  # same file system: rename is atomic
        assert tmp.parent.is_dir()  # parents created up front
        assert tmp.name.startswith(".out.png.")
        assert tmp.suffix == ".png"  # encoders choosing by suffix still work
        tmp.write_bytes(b"data")
        assert not target.exists()  # nothing visible under the final name yet
    assert target.read_bytes() == b"data"
    assert _all_files(tmp_path) == ["new/dir/out.png"]


def test_atomic_path_exception_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert _all_files(tmp_path) == []


def test_atomic_path_exception_keeps_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("new, half written")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _all_files(tmp_path) == ["out.txt"]


def test_write_bytes_and_text(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    write_bytes_atomic(tmp_path / "b.bin", b"\x02")  # replaces
    assert (tmp_path / "b.bin").read_bytes() == b"\x02"
    write_text_atomic(tmp_path / "t.txt", "größe\nline 2\n")
    assert (tmp_path / "t.txt").read_bytes() == "größe\nline 2\n".encode()
    assert _all_files(tmp_path) == ["b.bin", "t.txt"]


def _rgb(height: int = 12, width: int = 16) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".PNG"])
def test_write_image_lossless_roundtrip(tmp_path: Path, suffix: str) -> None:
    rgb = _rgb()
    write_image_atomic(tmp_path / f"img{suffix}", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / f"img{suffix}"), rgb)  # channel order kept
    assert _all_files(tmp_path) == [f"img{suffix}"]


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_write_image_lossy(tmp_path: Path, suffix: str) -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 220  # red: a swapped channel order would show up as blue
    write_image_atomic(tmp_path / f"img{suffix}", rgb, jpeg_quality=90)
    assert np.abs(load_image(tmp_path / f"img{suffix}").astype(int) - rgb).max() < 8


def test_write_image_quality_matters(tmp_path: Path) -> None:
    rgb = _rgb(64, 64)
    write_image_atomic(tmp_path / "hi.jpg", rgb, jpeg_quality=95)
    write_image_atomic(tmp_path / "lo.jpg", rgb, jpeg_quality=20)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_write_image_rgba_gray_and_16bit(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(), np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)])
    write_image_atomic(tmp_path / "rgba.png", rgba)
    bgra = cv2.imread(str(tmp_path / "rgba.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgra, rgba[:, :, [2, 1, 0, 3]])

    gray = _rgb()[:, :, 0]
    write_image_atomic(tmp_path / "gray.png", gray)
    write_image_atomic(tmp_path / "gray1.png", gray[:, :, None])
    for name in ("gray.png", "gray1.png"):
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED), gray)

    rgb16 = (np.arange(12 * 16 * 3).reshape(12, 16, 3) * 100).astype(np.uint16)
    write_image_atomic(tmp_path / "rgb16.png", rgb16)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / "rgb16.png"), cv2.IMREAD_UNCHANGED), rgb16[:, :, ::-1]
    )


@pytest.mark.parametrize(
    ("name", "image", "match"),
    [
        ("img.gif", np.zeros((4, 4, 3), np.uint8), "unsupported image format '.gif'"),
        ("img", np.zeros((4, 4, 3), np.uint8), "unsupported image format ''"),
        ("img.jpg", np.zeros((4, 4, 4), np.uint8), "alpha"),
        ("img.jpg", np.zeros((4, 4, 3), np.uint16), "uint16"),
        ("img.png", np.zeros((4, 4, 3), np.float32), "float32"),
        ("img.png", np.zeros((4, 4, 2), np.uint8), "shape"),
    ],
)
def test_write_image_rejects(tmp_path: Path, name: str, image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_image_atomic(tmp_path / name, image)
    assert _all_files(tmp_path) == []


def test_savez_atomic_keeps_exact_name(tmp_path: Path) -> None:
    target = tmp_path / "fit" / "face.data"  # no .npz suffix: NumPy must not add one
    savez_atomic(target, vertices=np.arange(6.0).reshape(2, 3), path=np.array([1, 2]))
    assert _all_files(tmp_path) == ["fit/face.data"]
    with np.load(target) as data:
        np.testing.assert_array_equal(data["vertices"], np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(data["path"], [1, 2])  # an array may be called "path"


def test_cleanup_temp_files(tmp_path: Path) -> None:
    stale = [
        tmp_path / f".face.png.{DEAD_PID}.0123abcd.tmp.png",
        tmp_path / "a" / "b" / f".fit.npz.{DEAD_PID}.deadbeef.tmp.npz",
        tmp_path / f".manifest.jsonl.{DEAD_PID}.00000000.tmp.jsonl",
        tmp_path / f".noext.{DEAD_PID}.11111111.tmp",
    ]
    kept = [
        tmp_path / f".live.png.{os.getpid()}.0123abcd.tmp.png",  # this process: maybe mid-write
        tmp_path / f".parent.png.{os.getppid()}.0123abcd.tmp.png",  # another live process
        tmp_path / ".editor.tmp",  # not ours
        tmp_path / "face.png",
        tmp_path / f"visible.{DEAD_PID}.0123abcd.tmp",  # not hidden: not ours
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert cleanup_temp_files(tmp_path) == len(stale)
    assert all(p.exists() for p in kept)
    assert not any(p.exists() for p in stale)
    assert cleanup_temp_files(tmp_path) == 0
    assert cleanup_temp_files(tmp_path / "missing") == 0


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_cleanup_removes_files_of_an_exited_but_unreaped_writer(tmp_path: Path) -> None:
    """A killed writer can linger as a zombie (its parent killed too, init not yet reaping): it is dead."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":  # exited, not waited
            assert time.monotonic() < deadline
            time.sleep(0.01)
        leftover = tmp_path / f".view.jpg.{child.pid}.0123abcd.tmp.jpg"
        leftover.write_bytes(b"half")
        assert cleanup_temp_files(tmp_path) == 1 and not leftover.exists()
    finally:
        child.wait()


def test_cleanup_spares_an_in_flight_write(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out.png") as tmp:
        tmp.write_bytes(b"in progress")
        assert cleanup_temp_files(tmp_path) == 0
    assert (tmp_path / "out.png").read_bytes() == b"in progress"


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_write_and_read(tmp_path: Path) -> None:
    path = tmp_path / "out" / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        writer.write({"input": "a/顔 1.jpg", "face": 0, "yaw": 12.345678901234, "src": Path("/x/y.jpg")})
        writer.write({"input": PurePosixPath("b.jpg"), "face": None, "status": "error", "n": np.int64(3)})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"input":"a/顔 1.jpg","face":0,"yaw":12.345678901234,"src":"/x/y.jpg"}'
    assert read_manifest(path) == [
        {"input": "a/顔 1.jpg", "face": 0, "yaw": 12.345678901234, "src": "/x/y.jpg"},
        {"input": "b.jpg", "face": None, "status": "error", "n": 3},
    ]
    with ManifestWriter(path) as writer:  # a second run appends
        writer.write({"input": "c.jpg", "face": None})
    assert [r["input"] for r in read_manifest(path)] == ["a/顔 1.jpg", "b.jpg", "c.jpg"]


def test_manifest_record_that_cannot_be_serialised_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        with pytest.raises(TypeError, match="JSON-serialisable"):
            writer.write({"input": "a.jpg", "bad": object()})
        writer.write({"input": "a.jpg", "face": None})
    assert read_manifest(path) == [{"input": "a.jpg", "face": None}]


def test_manifest_records_are_visible_before_close(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    writer = ManifestWriter(path)
    writer.write({"input": "a.jpg", "face": None})
    assert read_manifest(path) == [{"input": "a.jpg", "face": None}]  # flushed: survives a kill
    writer.close()
    writer.close()


def test_read_manifest_missing_and_junk(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "none.jsonl") == []
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(b'{"input": "a.jpg"}\n\n   \n[1, 2]\n"text"\nnot json\n\xff\xfe\n{"input": "b.jpg"}\n')
    assert read_manifest(path) == [{"input": "a.jpg"}, {"input": "b.jpg"}]


def test_truncated_last_line_after_kill(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        writer.write({"input": "a.jpg", "face": 0})
    with open(path, "ab") as f:  # a run killed in the middle of a record
        f.write(b'{"input": "b.jpg", "fa')
    assert read_manifest(path) == [{"input": "a.jpg", "face": 0}]

    with ManifestWriter(path) as writer:
        writer.write({"input": "b.jpg", "face": 0})
        writer.write({"input": "c.jpg", "face": 0})
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"input":"b.jpg","face":0}'  # started on its own line
    assert [r["input"] for r in read_manifest(path)] == ["a.jpg", "b.jpg", "c.jpg"]


def _write(path: Path, *records: dict[str, object]) -> None:
    with ManifestWriter(path) as writer:
        for record in records:
            writer.write(record)


def _summary(records: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(r["input"], r.get("face"), r.get("run")) for r in records]


def test_compact_latest_run_wins_per_input(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    # run 1: a has 3 faces, b fails, c has 1 face, d has 2 faces
    _write(
        path,
        *({"input": "a.jpg", "face": i, "run": 1} for i in range(3)),
        {"input": "b.jpg", "face": None, "run": 1, "status": "error"},
        {"input": "c.jpg", "face": 0, "run": 1},
        {"input": "d.jpg", "face": 0, "run": 1},
        {"input": "d.jpg", "face": 1, "run": 1},
    )
    # run 2 (re-run of a, b, c): a now has 2 faces, b now succeeds, c now finds no face.
    _write(
        path,
        {"input": "b.jpg", "face": 0, "run": 2},
        {"input": "a.jpg", "face": 0, "run": 2},
        {"input": "c.jpg", "face": None, "run": 2, "status": "no_face"},
        {"input": "a.jpg", "face": 1, "run": 2},
    )
    result = compact_manifest(path)
    assert _summary(result) == [
        ("a.jpg", 0, 2),
        ("a.jpg", 1, 2),  # no stale face 2 from run 1
        ("b.jpg", 0, 2),  # the old failure is gone
        ("c.jpg", None, 2),  # the old face is gone
        ("d.jpg", 0, 1),  # untouched inputs keep their records
        ("d.jpg", 1, 1),
    ]
    assert read_manifest(path) == result  # rewritten, sorted
    assert compact_manifest(path) == result  # idempotent
    assert _all_files(tmp_path) == [MANIFEST_NAME]


def test_compact_interleaved_inputs_and_face_order(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    # Parallel workers interleave inputs, and faces may arrive out of order within a run.
    _write(
        path,
        {"input": "a.jpg", "face": 1, "run": 1},
        {"input": "b.jpg", "face": 0, "run": 1},
        {"input": "a.jpg", "face": 0, "run": 1},
        {"input": "b.jpg", "face": 1, "run": 1},
        {"input": "a.jpg", "face": 2, "run": 1},
    )
    assert _summary(compact_manifest(path)) == [
        ("a.jpg", 0, 1),
        ("a.jpg", 1, 1),
        ("a.jpg", 2, 1),
        ("b.jpg", 0, 1),
        ("b.jpg", 1, 1),
    ]


def test_compact_repeated_whole_input_records(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    _write(
        path,
        {"input": "a.jpg", "face": None, "run": 1},
        {"input": "a.jpg", "run": 2},  # a missing face field counts as null
        {"input": "b.jpg", "face": 0, "run": 1},
        {"input": "b.jpg", "face": 0, "run": 2},  # a key repeating starts a new run's block
        {"no_input": True},  # cannot be attributed: dropped
    )
    assert _summary(compact_manifest(path)) == [("a.jpg", None, 2), ("b.jpg", 0, 2)]


def test_compact_survives_truncated_line_and_sorts_null_first(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text(
        json.dumps({"input": "z.jpg", "face": 1})
        + "\n"
        + json.dumps({"input": "z.jpg", "face": 0})
        + "\n"
        + '{"input": "y.jpg", "fa'
    )
    assert _summary(compact_manifest(path)) == [("z.jpg", 0, None), ("z.jpg", 1, None)]
    assert path.read_text().endswith("\n")


def test_compact_custom_key(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    _write(
        path,
        {"src": "a.jpg", "face": 0, "view": "yaw30", "run": 1},
        {"src": "a.jpg", "face": 0, "view": "yaw-30", "run": 1},
        {"src": "a.jpg", "face": 0, "view": "yaw30", "run": 2},
    )
    result = compact_manifest(path, key=("src", "face", "view"))
    assert [(r["view"], r["run"]) for r in result] == [("yaw30", 2)]


def test_compact_missing_manifest(tmp_path: Path) -> None:
    assert compact_manifest(tmp_path / MANIFEST_NAME) == []
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_compaction_per_record_keeps_an_inputs_other_records(tmp_path):
    """Render reruns redo some views of an input: with whole_inputs=False the other views' lines stay."""
    path = tmp_path / "manifest.jsonl"
    with ManifestWriter(path) as writer:
        writer.write({"input": "a.jpg", "face": 0, "view": "y+00", "status": "ok"})
        writer.write({"input": "a.jpg", "face": 0, "view": "y+30", "status": "error"})
        writer.write({"input": "a.jpg", "face": 0, "view": "y+30", "status": "ok"})  # the rerun
    kept = compact_manifest(path, ("input", "face", "view"), whole_inputs=False)
    assert [(r["view"], r["status"]) for r in kept] == [("y+00", "ok"), ("y+30", "ok")]
    # The default (fit's rule) treats the repeated key as a new run of the input and keeps only that run.
    with ManifestWriter(path) as writer:
        writer.write({"input": "a.jpg", "face": 0, "view": "y+30", "status": "ok"})
    assert [r["view"] for r in compact_manifest(path, ("input", "face", "view"))] == ["y+30"]
