"""Complete a whole set of UV maps: per-map status, atomic outputs, resumable manifest, as the fit stage does.

Two ways to run, chosen by the completer:

* a network (``batched``): one session in this process takes ``batch_size`` maps at a time, while a small
  thread pool decodes the next batches and encodes and writes finished maps (PNG coding releases the GIL,
  and so does ONNX Runtime), so the network rarely waits for the disk;
* the symmetric baseline: one map per job in worker processes (:func:`uvaug.runner.run_jobs`), like fit.

Inputs (:func:`discover_uv_maps`): a fit output folder (the ``uv`` maps its manifest lists as ok), or any
folder of RGBA PNG UV maps. Each output keeps its input's relative path, so a completed map and its fit share
a name.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np

from uvaug.artifacts import COMPLETE_MANIFEST_FIELDS, MANIFEST_FIELDS, STATUS_ERROR, STATUS_OK, UV_SUFFIX
from uvaug.complete.maps import known_fraction, load_uv_map
from uvaug.io import (
    MANIFEST_NAME,
    ImageLoadError,
    InputError,
    InputItem,
    discover_inputs,
    read_manifest,
    write_image_atomic,
)
from uvaug.runner import (
    Record,
    RunReport,
    describe_error,
    prepare_output,
    previous_records,
    record_results,
    run_jobs,
)

#: A completion manifest holds one record per input map.
MANIFEST_KEY = ("input",)
METHODS = ("model", "symmetric")


class Completer(Protocol):
    """Turns (N, S, S, 4) uint8 RGBA UV maps into completed ones of the same shape."""

    method: str  # the manifest's ``method``
    model: str | None  # the manifest's ``model`` (a file name), None when there is none
    batched: bool  # True: run in this process in batches; False: one map per job in worker processes

    def __call__(self, rgba: np.ndarray) -> np.ndarray: ...


def create_completer(
    method: str = "model",
    model: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> Completer:
    """``"model"``: the ONNX network (``model`` names the file; default: the shipped one), or ``"symmetric"``.

    Raises :class:`uvaug.assets.ModelError` for a missing or unusable model file and
    :class:`uvaug.complete.onnx_runtime.DeviceError` when ``device="cuda"`` cannot run.
    """
    if method == "symmetric":
        if model is not None:
            raise ValueError("a model file only applies to method 'model'")
        from uvaug.complete.symmetric import SymmetricCompleter

        return SymmetricCompleter()
    if method == "model":
        from uvaug.complete.onnx_runtime import OnnxCompleter

        return OnnxCompleter(model, device=device, threads=threads)
    raise ValueError(f"unknown completion method {method!r}; choose from {', '.join(METHODS)}")


# --- inputs ------------------------------------------------------------------------------------------------


def discover_uv_maps(
    source: str | os.PathLike[str],
    exclude: Sequence[str | os.PathLike[str]] = (),
    inputs: Collection[str] | None = None,
) -> list[InputItem]:
    """The UV maps named by ``source``, with their paths relative to it (the outputs' relative paths).

    * a fit output folder: every face its manifest records as ok (the latest record per image and face),
      only those of the ``inputs`` named (as the manifest's ``input`` names them) when given; a listed map
      that has gone missing is kept, so the run reports it;
    * another folder: every ``*.uv.png`` below it, or, if there is none, every ``*.png`` (hidden files and
      the folders in ``exclude`` skipped, as :func:`uvaug.io.discover_inputs` does); UV maps need lossless
      alpha, so other formats are not considered;
    * a ``.png`` file: that map.

    Raises :class:`uvaug.io.InputError` when ``source`` is missing or of another kind, or names ``inputs``
    without being a fit output.
    """
    src = Path(source)
    if src.is_dir():
        records = read_manifest(src / MANIFEST_NAME)
        if any({"uv", "fit"} <= rec.keys() for rec in records):  # a fit stage's manifest
            if inputs is not None:
                wanted = set(inputs)
                records = [rec for rec in records if str(rec.get("input")) in wanted]
            return _fit_output_maps(src, records)
    elif not src.exists():
        raise InputError(f"input not found: {os.fspath(source)}")
    if inputs is not None:
        raise InputError(f"only a fit output's maps can be chosen by input name: {os.fspath(source)}")
    if src.is_dir():
        pngs = [it for it in discover_inputs(src, exclude) if it.rel.suffix.lower() == ".png"]
        return [it for it in pngs if it.rel.name.lower().endswith(UV_SUFFIX)] or pngs
    if src.is_file() and src.suffix.lower() == ".png":
        return [InputItem(src, PurePosixPath(src.name))]
    raise InputError(f"not a folder of UV maps, a fit output or a PNG UV map: {os.fspath(source)}")


def _fit_output_maps(folder: Path, records: Sequence[dict]) -> list[InputItem]:
    latest: dict[tuple[str, str], dict] = {}  # a killed fit run may leave an uncompacted manifest
    for rec in records:
        if set(MANIFEST_FIELDS[:3]) <= rec.keys():
            latest[str(rec["input"]), str(rec["face"])] = rec
    items = []
    for rec in latest.values():
        if rec["status"] != STATUS_OK or not isinstance(rec.get("uv"), str):
            continue
        rel = PurePosixPath(rec["uv"])
        if rel.is_absolute() or ".." in rel.parts:
            raise InputError(
                f"fit manifest {folder / MANIFEST_NAME} lists a UV map outside its folder: {rel}"
            )
        items.append(InputItem(folder.joinpath(*rel.parts), rel))
    items.sort(key=lambda item: item.rel.parts)
    return items


# --- jobs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompleteJob:
    path: str
    rel: str  # input map relative to the input root (posix): the manifest's ``input`` and ``output``


def finished_maps(records: Sequence[Record], out_dir: Path, completer: Completer) -> set[str]:
    """Inputs an earlier run completed with the same method and model whose output is still on disk.

    Errors are retried; a different method or model redoes the map.
    """
    return {
        str(rec["input"])
        for rec in records
        if rec.get("status") == STATUS_OK
        and rec.get("method") == completer.method
        and rec.get("model") == completer.model
        and isinstance(rec.get("output"), str)
        and (out_dir / str(rec["output"])).is_file()
    }


def plan_jobs(
    items: Sequence[InputItem], out_dir: Path, completer: Completer, overwrite: bool
) -> tuple[list[CompleteJob], int]:
    """Jobs still to run, and how many maps an earlier run already finished."""
    done = set() if overwrite else finished_maps(previous_records(out_dir, MANIFEST_KEY), out_dir, completer)
    jobs = [CompleteJob(str(it.path), it.rel.as_posix()) for it in items if it.rel.as_posix() not in done]
    return jobs, len(items) - len(jobs)


def _record(job: CompleteJob, completer: Completer, **values: object) -> Record:
    rec: Record = dict.fromkeys(COMPLETE_MANIFEST_FIELDS)
    rec.update(input=job.rel, message="", method=completer.method, model=completer.model)
    rec.update(values)
    return rec


def _error(job: CompleteJob, completer: Completer, message: str, known: float | None = None) -> Record:
    return _record(job, completer, status=STATUS_ERROR, message=message, known=known)


@dataclass(frozen=True)
class _Loaded:
    job: CompleteJob
    rgba: np.ndarray
    known: float


def _load(job: CompleteJob, completer: Completer) -> _Loaded | Record:
    """The map and its known fraction, or the error record saying why it cannot be used."""
    try:
        rgba = load_uv_map(job.path)
    except ImageLoadError as exc:
        return _error(job, completer, str(exc))
    except Exception as exc:  # one bad file must never stop a dataset run
        return _error(job, completer, describe_error(exc))
    return _Loaded(job, rgba, round(known_fraction(rgba), 4))


def _save(out_dir: Path, loaded: _Loaded, completed: np.ndarray, completer: Completer) -> Record:
    job = loaded.job
    target = out_dir / job.rel
    try:
        if target.exists() and os.path.samefile(target, job.path):
            return _error(job, completer, "output would overwrite the input map", loaded.known)
        write_image_atomic(target, completed)
    except (OSError, ValueError) as exc:
        return _error(job, completer, f"write failed: {exc}", loaded.known)
    return _record(job, completer, status=STATUS_OK, output=job.rel, known=loaded.known)


@dataclass(frozen=True)
class WorkerConfig:
    out_dir: str
    completer: Completer


class _MapWorker:
    """Per-process state for completers that run one map per job (the symmetric baseline)."""

    def __init__(self, config: WorkerConfig):
        self.out_dir = Path(config.out_dir)
        self.completer = config.completer

    def __call__(self, job: CompleteJob) -> list[Record]:
        loaded = _load(job, self.completer)
        if not isinstance(loaded, _Loaded):
            return [loaded]
        try:
            completed = self.completer(loaded.rgba[None])[0]
        except Exception as exc:
            return [_error(job, self.completer, f"completion failed: {describe_error(exc)}", loaded.known)]
        return [_save(self.out_dir, loaded, completed, self.completer)]


def _batched_results(
    jobs: Sequence[CompleteJob], completer: Completer, out_dir: Path, batch_size: int, threads: int
) -> Iterator[list[Record]]:
    """Run the completer on batches in this thread; decode ahead and encode behind on ``threads`` threads.

    Two batches are decoded ahead, and at most two batches' worth of writes wait, so memory stays bounded.
    Maps of different sizes in one batch go through the completer in one call per size.
    """
    batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="uvaug-complete-io")
    try:
        loading: deque[list[Future]] = deque()
        writing: deque[Future] = deque()
        for batch in batches[:2]:
            loading.append([pool.submit(_load, job, completer) for job in batch])
        for index in range(len(batches)):
            loaded = [future.result() for future in loading.popleft()]
            if index + 2 < len(batches):
                loading.append([pool.submit(_load, job, completer) for job in batches[index + 2]])
            by_size: dict[int, list[_Loaded]] = {}
            for item in loaded:
                if isinstance(item, _Loaded):
                    by_size.setdefault(item.rgba.shape[0], []).append(item)
                else:
                    yield [item]
            for group in by_size.values():
                try:
                    completed = completer(np.stack([item.rgba for item in group]))
                except Exception as exc:  # reported per map; the run goes on with the next batch
                    message = f"completion failed: {describe_error(exc)}"
                    for item in group:
                        yield [_error(item.job, completer, message, item.known)]
                    continue
                writing.extend(
                    pool.submit(_save, out_dir, item, c, completer)
                    for item, c in zip(group, completed, strict=True)
                )
            while writing and (writing[0].done() or len(writing) > 2 * batch_size):
                yield [writing.popleft().result()]
        while writing:
            yield [writing.popleft().result()]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def complete_inputs(
    items: Sequence[InputItem],
    out_dir: str | os.PathLike[str],
    completer: Completer,
    *,
    batch_size: int = 16,
    workers: int = 1,
    overwrite: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[Sequence[Record]], None] | None = None,
) -> RunReport:
    """Complete every map in ``items`` into ``out_dir`` (same relative paths) with ``manifest.jsonl``.

    ``workers``: processes for a per-map completer, decoding/encoding threads for a batched one.
    ``on_start(to_do, skipped)`` is called once before the work, ``on_result(records)`` after each map.
    Bad maps get an error record and never stop the run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out = prepare_output(out_dir)
    jobs, skipped = plan_jobs(items, out, completer, overwrite)
    report = RunReport(total=len(items), skipped=skipped)
    if on_start:
        on_start(len(jobs), skipped)
    if getattr(completer, "batched", False):
        results: Iterator[list[Record]] = _batched_results(jobs, completer, out, batch_size, workers)
    else:
        results = run_jobs(jobs, _MapWorker, WorkerConfig(str(out), completer), workers)
    record_results(out, results, report, key=MANIFEST_KEY, on_result=on_result)
    return report
