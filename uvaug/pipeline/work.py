"""The work of one input, split where the batched completer sits: fit (+ a per-map completer), then render.

Both halves run in worker processes; each process holds one fitter, one GL context and, for completers that
run a map at a time (the symmetric baseline), one completer, built on first use and reused for every input.
Per-item failures come back as outcomes, never as exceptions: an exception out of these functions means the
worker itself cannot work (no GL platform, a missing model) and stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from uvaug.artifacts import (
    FIT_SUFFIX,
    REASON_COMPLETE,
    REASON_FIT,
    REASON_NO_FACE,
    REASON_RENDER,
    REASON_UNREADABLE,
    REASON_WRITE,
    STATUS_ERROR,
    STATUS_NO_FACE,
    UV_SUFFIX,
    FaceFit,
    artifact_path,
)
from uvaug.complete.run import create_completer
from uvaug.fit.fitter import create_fitter
from uvaug.io import ImageLoadError, load_image, write_bytes_atomic, write_image_atomic
from uvaug.pipeline.options import INTERMEDIATES, PipelineOptions, original_output, view_outputs
from uvaug.render.renderer import gl_context
from uvaug.render.run import FaceViews, aligned_photo
from uvaug.runner import describe_error


@dataclass(frozen=True)
class InputTask:
    path: str
    rel: str  # relative to the input folder (posix): the manifest's ``input``
    stem: str  # output stem relative to the output folder (posix)


@dataclass
class FaceWork:
    face: int
    fit: FaceFit
    uv: np.ndarray  # (S, S, 4) RGBA; completed when ``completed``
    completed: bool = False
    seen: np.ndarray | None = None  # (S, S) alpha of the fit's own map: what the photo showed


@dataclass
class FitOutcome:
    task: InputTask
    faces: list[FaceWork] = field(default_factory=list)
    status: str | None = None  # set when the input stops here (no face, error)
    reason: str = ""
    message: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


@dataclass(frozen=True)
class RenderTask:
    task: InputTask
    face: FaceWork


@dataclass
class FaceOutcome:
    task: InputTask
    face: int
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    views: int = 0  # outputs that are views (the rest: the original)
    mirrored: list[str] = field(default_factory=list)  # views rendered from the mirrored photo
    points: dict[str, list] = field(default_factory=dict)  # each view's five ArcFace points, by output
    seen: dict[str, float] = field(default_factory=dict)  # each view's seen share, by output
    skipped: list[str] = field(default_factory=list)  # views --min-seen left out (their would-be outputs)


@dataclass
class InputResult:
    """Everything one input produced: its fit outcome and one render outcome per face (any executor)."""

    fit: FitOutcome
    faces: list[FaceOutcome] = field(default_factory=list)
    complete_seconds: float = 0.0

    @property
    def task(self) -> InputTask:
        return self.fit.task


def complete_faces(completer, works: Sequence[FaceWork]) -> list[tuple[str, float]]:
    """Complete the maps of ``works`` in place with a batched completer, one call per map size.

    Returns, per work, the error message ('' when completed) and its share of the call's time: a failed call
    fails only the faces in it.
    """
    results: list[tuple[str, float]] = [("", 0.0)] * len(works)
    by_size: dict[int, list[int]] = {}
    for i, work in enumerate(works):
        by_size.setdefault(work.uv.shape[0], []).append(i)
    for indices in by_size.values():
        start = time.perf_counter()
        try:
            completed, error = completer(np.stack([works[i].uv for i in indices])), ""
        except Exception as exc:
            completed, error = None, describe_error(exc)
        share = (time.perf_counter() - start) / len(indices)
        for j, i in enumerate(indices):
            if completed is not None:
                works[i].uv, works[i].completed = completed[j], True
            results[i] = (error, share)
    return results


def completion_failure(task: InputTask, work: FaceWork, error: str) -> FaceOutcome:
    """The outcome of a face whose completion call failed: no views, an error with its reason."""
    return FaceOutcome(task, work.face, errors=[f"completion failed: {error}"], reason=REASON_COMPLETE)


class PipelineWorker:
    """One process's state, built lazily: a fit-only process never opens GL, a render-only one no fitter."""

    def __init__(self, out_dir: str, options: PipelineOptions):
        self.out = Path(out_dir)
        self.options = options
        self._fitter = None
        self._completer = None
        self._gl = False

    # --- first half: photo -> fitted faces with incomplete (or, per-map completer, completed) UV maps ---

    def fit(self, task: InputTask) -> FitOutcome:
        outcome = FitOutcome(task)
        start = time.perf_counter()
        if self._fitter is None:
            self._fitter = create_fitter("mediapipe", self.options.fit)
        try:
            image = load_image(task.path)
        except ImageLoadError as exc:
            return self._stop(outcome, STATUS_ERROR, REASON_UNREADABLE, str(exc), start)
        except Exception as exc:
            return self._stop(outcome, STATUS_ERROR, REASON_UNREADABLE, describe_error(exc), start)
        try:
            fitted = self._fitter(image)
        except Exception as exc:
            return self._stop(outcome, STATUS_ERROR, REASON_FIT, describe_error(exc), start)
        if not fitted:
            return self._stop(outcome, STATUS_NO_FACE, REASON_NO_FACE, "no face detected", start)
        outcome.faces = [
            FaceWork(k, face.fit, face.uv, seen=np.ascontiguousarray(face.uv[..., 3]))
            for k, face in enumerate(fitted)
        ]
        if self.options.keep_intermediates:
            stem = PurePosixPath(INTERMEDIATES, "fit", task.stem)
            try:
                for work in outcome.faces:
                    write_image_atomic(self.out / artifact_path(stem, work.face, UV_SUFFIX), work.uv)
                    write_bytes_atomic(
                        self.out / artifact_path(stem, work.face, FIT_SUFFIX), work.fit.to_npz_bytes()
                    )
            except OSError as exc:
                return self._stop(outcome, STATUS_ERROR, REASON_WRITE, f"write failed: {exc}", start)
        outcome.seconds["fit"] = time.perf_counter() - start
        if self.options.method != "model":  # a per-map completer runs here, in parallel across processes
            start = time.perf_counter()
            if self._completer is None:
                self._completer = create_completer(self.options.method)
            try:
                for work in outcome.faces:
                    work.uv = self._completer(work.uv[None])[0]
                    work.completed = True
            except Exception as exc:
                outcome.faces = []
                return self._stop(
                    outcome, STATUS_ERROR, REASON_COMPLETE, describe_error(exc), start, "complete"
                )
            outcome.seconds["complete"] = time.perf_counter() - start
        return outcome

    @staticmethod
    def _stop(
        outcome: FitOutcome, status: str, reason: str, message: str, start: float, stage: str = "fit"
    ) -> FitOutcome:
        outcome.status, outcome.reason, outcome.message = status, reason, message
        outcome.seconds[stage] = time.perf_counter() - start
        return outcome

    # --- second half: a fitted face with its completed UV map -> every view ---

    def render(self, job: RenderTask) -> FaceOutcome:
        task, work = job.task, job.face
        opts = self.options.render
        result = FaceOutcome(task, work.face)
        start = time.perf_counter()
        if not self._gl:
            gl_context()  # a worker that cannot render fails here, once, not per face
            self._gl = True
        stem = PurePosixPath(task.stem)
        try:
            photo = load_image(task.path)  # the background, the face's outline, the original's crop
            views = FaceViews(work.fit, work.uv, photo, seen=work.seen)
        except Exception as exc:  # the photo changed since it was fitted, or the scene cannot be built
            result.errors.append(describe_error(exc))
            result.reason = REASON_RENDER
            result.seconds = time.perf_counter() - start
            return result
        face_views = opts.views_of(task.rel, work.face)
        for view, rel in zip(
            face_views, view_outputs(stem, work.face, face_views, opts.extension), strict=True
        ):
            try:
                if views.left_out(view, opts)[0]:
                    result.skipped.append(rel)
                    continue
                rendered = views.render_view(view, opts)
            except Exception as exc:
                result.errors.append(f"{view.tag.lstrip('_')}: {describe_error(exc)}")
                result.reason = result.reason or REASON_RENDER
                continue
            try:
                write_image_atomic(self.out / rel, rendered.image, jpeg_quality=opts.jpeg_quality)
            except (OSError, ValueError) as exc:
                result.errors.append(f"write failed: {exc}")
                result.reason = result.reason or REASON_WRITE
                continue
            result.outputs.append(rel)
            result.points[rel] = rendered.manifest_points()
            if rendered.seen is not None:
                result.seen[rel] = round(rendered.seen, 3)
            if rendered.mirrored:
                result.mirrored.append(rel)
        result.views = len(result.outputs)
        try:
            self._write_extras(task, work, views, photo, result)
        except (OSError, ValueError) as exc:
            result.errors.append(f"write failed: {exc}")
            result.reason = result.reason or REASON_WRITE
        result.seconds = time.perf_counter() - start
        return result

    def _write_extras(
        self, task: InputTask, work: FaceWork, views: FaceViews, photo, result: FaceOutcome
    ) -> None:
        opts = self.options.render
        stem = PurePosixPath(task.stem)
        if self.options.include_original:
            if opts.align != "none":
                rel = original_output(stem, work.face, opts.extension)
                write_image_atomic(self.out / rel, aligned_photo(photo, views, opts.size), opts.jpeg_quality)
                result.outputs.append(rel)
            elif work.face == 0:  # the photo itself, byte for byte, once per input
                rel = original_output(stem, 0, Path(task.path).suffix.lower())
                with open(task.path, "rb") as src:
                    data = src.read()
                write_bytes_atomic(self.out / rel, data)
                result.outputs.append(rel)
        if self.options.keep_intermediates:
            rel = artifact_path(PurePosixPath(INTERMEDIATES, "uv", task.stem), work.face, UV_SUFFIX)
            write_image_atomic(self.out / rel, work.uv)


_WORKER: PipelineWorker | None = None


def init_worker(out_dir: str, options: PipelineOptions) -> None:
    """Process-pool initializer: the worker (lazy) and SIGINT left to the parent, which stops the run."""
    import signal

    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = PipelineWorker(out_dir, options)


def fit_task(task: InputTask) -> FitOutcome:
    assert _WORKER is not None
    return _WORKER.fit(task)


def render_task(job: RenderTask) -> FaceOutcome:
    assert _WORKER is not None
    return _WORKER.render(job)


__all__ = [
    "FaceOutcome",
    "FaceWork",
    "FitOutcome",
    "InputResult",
    "InputTask",
    "PipelineWorker",
    "RenderTask",
    "complete_faces",
    "completion_failure",
]
