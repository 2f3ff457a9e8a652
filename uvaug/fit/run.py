"""Fit a whole set of photos: worker processes, per-item status, atomic artifacts, resumable manifest."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from uvaug.artifacts import (
    FIT_SUFFIX,
    MANIFEST_FIELDS,
    MESH_SUFFIX,
    STATUS_ERROR,
    STATUS_NO_FACE,
    STATUS_OK,
    UV_SUFFIX,
    artifact_path,
)
from uvaug.fit.fitter import FitOptions, create_fitter
from uvaug.io import (
    ImageLoadError,
    InputItem,
    artifact_stems,
    load_image,
    write_bytes_atomic,
    write_image_atomic,
)
from uvaug.runner import Record, RunReport, prepare_output, previous_records, record_results, run_jobs

#: A fit manifest holds a record per input and face (``face`` null for a record about the whole input).
MANIFEST_KEY = ("input", "face")


@dataclass(frozen=True)
class FitJob:
    path: str
    rel: str  # input path relative to the input root (posix), the manifest's ``input``
    stem: str  # artifact stem relative to the output folder (posix)


@dataclass(frozen=True)
class WorkerConfig:
    out_dir: str
    backend: str
    options: FitOptions
    write_mesh: bool


@dataclass
class FitReport(RunReport):
    """Per-input counts (``statuses``: ok / no_face / error) and the number of faces fitted."""

    faces: int = 0

    def count(self, records: Sequence[Record]) -> None:
        super().count(records)
        self.faces += sum(r["status"] == STATUS_OK for r in records)


class _FitWorker:
    """Per-process state: one fitter (interpreters, UV tables) reused for every image."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.fitter = create_fitter(config.backend, config.options)

    def __call__(self, job: FitJob) -> list[Record]:
        base: Record = dict.fromkeys(MANIFEST_FIELDS)
        base["input"] = job.rel
        base["path"] = str(Path(job.path).resolve())  # where later stages find the photo
        try:
            image = load_image(job.path)
            faces = self.fitter(image)
        except ImageLoadError as exc:
            return [{**base, "status": STATUS_ERROR, "message": str(exc)}]
        except Exception as exc:  # one bad image must never stop a dataset run
            return [{**base, "status": STATUS_ERROR, "message": f"{type(exc).__name__}: {exc}"}]
        if not faces:
            return [{**base, "status": STATUS_NO_FACE, "message": "no face detected"}]
        records = []
        stem = PurePosixPath(job.stem)
        for k, face in enumerate(faces):
            uv_rel, fit_rel = artifact_path(stem, k, UV_SUFFIX), artifact_path(stem, k, FIT_SUFFIX)
            try:
                write_image_atomic(self.out_dir / uv_rel, face.uv)
                write_bytes_atomic(self.out_dir / fit_rel, face.fit.to_npz_bytes())
                if self.config.write_mesh:
                    from uvaug.fit.mesh import mesh_glb

                    write_bytes_atomic(
                        self.out_dir / artifact_path(stem, k, MESH_SUFFIX), mesh_glb(face.fit, face.uv)
                    )
            except OSError as exc:
                records.append({**base, "face": k, "status": STATUS_ERROR, "message": f"write failed: {exc}"})
                continue
            records.append(
                {
                    **base,
                    "face": k,
                    "status": STATUS_OK,
                    "message": "",
                    "yaw": round(face.fit.yaw, 3),
                    "pitch": round(face.fit.pitch, 3),
                    "roll": round(face.fit.roll, 3),
                    "uv": uv_rel.as_posix(),
                    "fit": fit_rel.as_posix(),
                }
            )
        return records


def finished_inputs(records: Sequence[Record], out_dir: Path, write_mesh: bool) -> set[str]:
    """Inputs whose last recorded outcome is final (ok or no_face) and whose artifacts are all on disk.

    Errors are retried on a rerun: they are cheap when they repeat and may have been transient.
    """
    by_input: dict[str, list[Record]] = {}
    for rec in records:
        by_input.setdefault(str(rec["input"]), []).append(rec)
    done = set()
    for name, recs in by_input.items():
        if all(r["status"] in (STATUS_OK, STATUS_NO_FACE) for r in recs) and all(
            (out_dir / str(r["uv"])).is_file()
            and (out_dir / str(r["fit"])).is_file()
            and (not write_mesh or (out_dir / str(r["fit"]).replace(FIT_SUFFIX, MESH_SUFFIX)).is_file())
            for r in recs
            if r["status"] == STATUS_OK
        ):
            done.add(name)
    return done


def plan_jobs(
    items: Sequence[InputItem], out_dir: Path, overwrite: bool, write_mesh: bool
) -> tuple[list[FitJob], int]:
    """Jobs still to run, and how many inputs an earlier run already finished."""
    stems = artifact_stems(items)
    done = (
        set() if overwrite else finished_inputs(previous_records(out_dir, MANIFEST_KEY), out_dir, write_mesh)
    )
    jobs = [
        FitJob(path=str(it.path), rel=it.rel.as_posix(), stem=stems[it.rel].as_posix())
        for it in items
        if it.rel.as_posix() not in done
    ]
    return jobs, len(items) - len(jobs)


def fit_inputs(
    items: Sequence[InputItem],
    out_dir: str | os.PathLike,
    *,
    backend: str = "mediapipe",
    options: FitOptions | None = None,
    workers: int = 1,
    overwrite: bool = False,
    write_mesh: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[list[Record]], None] | None = None,
) -> FitReport:
    """Fit every input, writing artifacts and ``manifest.jsonl`` under ``out_dir``; returns counts and timing.

    ``on_start(to_do, skipped)`` is called once before the work, ``on_result(records)`` after each input.
    """
    out = prepare_output(out_dir)
    jobs, skipped = plan_jobs(items, out, overwrite, write_mesh)
    report = FitReport(total=len(items), skipped=skipped)
    if on_start:
        on_start(len(jobs), skipped)
    config = WorkerConfig(
        out_dir=str(out), backend=backend, options=options or FitOptions(), write_mesh=write_mesh
    )
    results = run_jobs(jobs, _FitWorker, config, workers)
    record_results(out, results, report, key=MANIFEST_KEY, on_result=on_result)
    return report
