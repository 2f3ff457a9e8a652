"""Run the pipeline's stages overlapped on this machine.

Worker processes (one per core) take fit and render tasks from one pool; this process batches the fitted
faces' UV maps through the completer (the ONNX session, on the GPU when there is one) and hands completed
faces back as render tasks. At most ``max_inputs`` inputs are in flight, so memory stays bounded whatever
the dataset's size, and the workers always have queued work while a batch completes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from uvaug.artifacts import REASON_CRASH, STATUS_ERROR
from uvaug.pipeline.options import PipelineOptions
from uvaug.pipeline.work import (
    FaceOutcome,
    FaceWork,
    FitOutcome,
    InputResult,
    InputTask,
    RenderTask,
    complete_faces,
    completion_failure,
    fit_task,
    init_worker,
    render_task,
)
from uvaug.runner import stop_pool


@dataclass
class _InFlight:
    result: InputResult
    faces_left: int = 0


class LocalExecutor:
    def __init__(self, out_dir: str, options: PipelineOptions, workers: int, completer=None):
        self.out_dir = out_dir
        self.options = options
        self.workers = max(1, workers)
        self.completer = completer  # batched completer run here; None when workers complete per map
        self.max_inputs = 4 * self.workers + 2 * options.batch_size

    def _pool(self) -> ProcessPoolExecutor:
        # forkserver: this process holds threads (progress display, ONNX Runtime) that make fork unsafe
        return ProcessPoolExecutor(
            self.workers,
            mp_context=mp.get_context("forkserver"),
            initializer=init_worker,
            initargs=(self.out_dir, self.options),
        )

    def run(self, tasks: Iterable[InputTask], on_input: Callable[[InputResult], None]) -> None:
        """Process every task; ``on_input`` gets each input's result as soon as all its faces are done."""
        run = _Run(self, on_input)
        try:
            run.loop(iter(tasks))
        finally:
            stop_pool(run.pool)


class _Run:
    """The state of one local run: the pool, the futures, the inputs in flight, the completion queue."""

    def __init__(self, executor: LocalExecutor, on_input: Callable[[InputResult], None]):
        self.ex = executor
        self.on_input = on_input
        self.pool = executor._pool()
        self.pending: dict[Future, tuple[str, str]] = {}  # future -> (kind, input rel)
        self.flight: dict[str, _InFlight] = {}
        self.queue: list[tuple[str, FaceWork]] = []  # fitted faces waiting for the completer
        self.fits_running = 0

    def loop(self, tasks: Iterator[InputTask]) -> None:
        batch_size = self.ex.options.batch_size
        exhausted = False
        while True:
            while not exhausted and len(self.flight) < self.ex.max_inputs:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                self.flight[task.rel] = _InFlight(InputResult(FitOutcome(task)))
                self._submit("fit", task.rel, fit_task, task)
            full = len(self.queue) >= batch_size
            starved = self.fits_running == 0 and (exhausted or len(self.flight) >= self.ex.max_inputs)
            if self.queue and (full or starved):
                batch, self.queue = self.queue[:batch_size], self.queue[batch_size:]
                self._complete(batch)
                continue
            if not self.pending:
                if exhausted and not self.flight:
                    return
                raise RuntimeError("pipeline stalled: inputs in flight but no work pending")  # a bug
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, rel = self.pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    self._recover(str(exc) or "a worker process died", rel)
                    break
                if kind == "fit":
                    self._fitted(rel, outcome)
                else:
                    self._face_done(rel, outcome)

    def _submit(self, kind: str, rel: str, fn, arg) -> None:
        self.pending[self.pool.submit(fn, arg)] = (kind, rel)
        self.fits_running += kind == "fit"

    def _fitted(self, rel: str, outcome: FitOutcome) -> None:
        self.fits_running -= 1
        state = self.flight[rel]
        state.result.fit = outcome
        if outcome.status is not None:  # no face, or an error: this input is done
            self.on_input(self.flight.pop(rel).result)
            return
        state.faces_left = len(outcome.faces)
        for work in outcome.faces:
            if work.completed:  # a per-map completer already ran in the worker
                self._submit("render", rel, render_task, RenderTask(outcome.task, work))
            else:
                self.queue.append((rel, work))

    def _face_done(self, rel: str, outcome: FaceOutcome) -> None:
        state = self.flight[rel]
        state.result.faces.append(outcome)
        state.faces_left -= 1
        if state.faces_left == 0:
            self.on_input(self.flight.pop(rel).result)

    def _complete(self, batch: list[tuple[str, FaceWork]]) -> None:
        """Complete a batch and queue the renders; a failed completion call fails its faces."""
        outcomes = complete_faces(self.ex.completer, [work for _, work in batch])
        for (rel, work), (error, seconds) in zip(batch, outcomes, strict=True):
            result = self.flight[rel].result
            result.complete_seconds += seconds
            if error:
                self._face_done(rel, completion_failure(result.task, work, error))
            else:
                self._submit("render", rel, render_task, RenderTask(result.task, work))

    def _recover(self, message: str, failed: str) -> None:
        """A worker died (a crash in native code, the OOM killer) and took the pool's queued work with it:
        record the inputs that had work there (a rerun retries them) and go on with a fresh pool."""
        stop_pool(self.pool)
        lost = {failed} | {rel for _, rel in self.pending.values()}
        self.pending.clear()
        self.fits_running = 0
        self.queue = [(rel, work) for rel, work in self.queue if rel not in lost]
        for rel in sorted(lost):
            result = self.flight.pop(rel).result
            result.fit.status, result.fit.reason = STATUS_ERROR, REASON_CRASH
            result.fit.message = f"worker crashed while this input was in flight: {message}"
            self.on_input(result)
        self.pool = self.ex._pool()
