"""What every dataset stage shares: the output folder, a worker-process pool, the manifest loop, the report.

A stage turns its inputs into picklable jobs and runs them (in worker processes with :func:`run_jobs`, each
holding its own expensive state, or its own way), then hands each job's manifest records to
:func:`record_results`, which appends them as they arrive (a killed run keeps everything finished so far; only
the parent process writes the manifest) and compacts the manifest at the end, so a rerun sees one current
record per key.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from uvaug.artifacts import STATUS_OK
from uvaug.io import MANIFEST_NAME, ManifestWriter, cleanup_temp_files, compact_manifest

Record = dict[str, object]
J = TypeVar("J")
R = TypeVar("R")


@dataclass
class RunReport:
    total: int = 0  # inputs found
    skipped: int = 0  # already finished by an earlier run
    processed: int = 0
    statuses: Counter = field(default_factory=Counter)  # per processed input: its overall status
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def count(self, records: Sequence[Record]) -> None:
        """Tally one input: ``ok`` if any of its records is ok, else the status of its first record."""
        self.processed += 1
        statuses = {r["status"] for r in records}
        self.statuses[STATUS_OK if STATUS_OK in statuses else records[0]["status"]] += 1


def describe_error(exc: BaseException) -> str:
    """An unexpected exception as one short manifest line: its type and its text, whitespace folded."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200] + '...' if len(text) > 200 else text}"


def prepare_output(out_dir: str | os.PathLike[str]) -> Path:
    """Create the output folder and remove the temporary files of killed runs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cleanup_temp_files(out)
    return out


def previous_records(out: Path, key: Sequence[str], whole_inputs: bool = True) -> list[dict[str, Any]]:
    """The current record of every input an earlier run wrote into ``out`` (compacting its manifest)."""
    return compact_manifest(out / MANIFEST_NAME, key, whole_inputs)


def record_results(
    out: Path,
    results: Iterable[Sequence[Record]],
    report: RunReport,
    *,
    key: Sequence[str],
    whole_inputs: bool = True,
    on_result: Callable[[Sequence[Record]], None] | None = None,
) -> None:
    """Append each input's records to ``out``'s manifest as they arrive and count them in ``report``.

    The manifest is compacted afterwards even when the run stops early (an exception or Ctrl-C), so the
    next run resumes from a clean file.
    """
    start = time.perf_counter()
    try:
        with ManifestWriter(out / MANIFEST_NAME) as manifest:
            for records in results:
                for rec in records:
                    manifest.write(rec)
                report.count(records)
                if on_result:
                    on_result(records)
    finally:
        report.seconds = time.perf_counter() - start
        compact_manifest(out / MANIFEST_NAME, key, whole_inputs)


_WORKER: Callable[[Any], Any] | None = None
_INIT_ERROR: BaseException | None = None


def _init_worker(make_worker: Callable[[Any], Callable[[Any], Any]], config: Any) -> None:
    # An exception escaping a Pool initializer kills the worker, the pool starts a replacement that fails
    # the same way, and the run hangs forever. Keep it and raise it from the first job instead, which
    # re-raises it in the parent (unknown backend, missing or altered model file).
    global _WORKER, _INIT_ERROR
    try:
        _WORKER = make_worker(config)
    except Exception as exc:
        _INIT_ERROR = exc


def _run_job(job: Any) -> Any:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WORKER is not None
    return _WORKER(job)


def _run_chunk(jobs: Sequence[Any]) -> list[Any]:
    return [_run_job(job) for job in jobs]


def run_jobs(
    jobs: Sequence[J], make_worker: Callable[[Any], Callable[[J], R]], config: Any, workers: int
) -> Iterator[R]:
    """Results of ``make_worker(config)(job)`` for every job, in completion order (chunk by chunk).

    The worker is built once per process (interpreters and sessions are not shareable). One worker runs in
    this process (no pool start-up); more use a forkserver process pool, because the parent holds threads
    (the progress display) that make plain fork unsafe. At most four chunks per worker are queued at a time.
    Whatever ends the run (an exception, Ctrl-C, the caller closing the generator), the pool is stopped at
    once with :func:`stop_pool`: ``multiprocessing.Pool``'s own ``terminate`` could deadlock when a job's
    exception ended the run. ``make_worker``, ``config`` and the jobs must pickle.
    """
    if not jobs:  # a finished rerun: do not pay for a worker (models, GL contexts)
        return
    if workers <= 1 or len(jobs) <= 1:
        worker = make_worker(config)
        for job in jobs:
            yield worker(job)
        return
    workers = min(workers, len(jobs))
    size = max(1, min(16, len(jobs) // (workers * 8)))
    chunks = iter([jobs[i : i + size] for i in range(0, len(jobs), size)])
    pool = ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(make_worker, config),
    )
    try:
        pending = {pool.submit(_run_chunk, chunk) for chunk in itertools.islice(chunks, 4 * workers)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
                chunk = next(chunks, None)
                if chunk is not None:
                    pending.add(pool.submit(_run_chunk, chunk))
    finally:
        stop_pool(pool)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a process pool down now: queued work cancelled, running workers terminated and reaped."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
