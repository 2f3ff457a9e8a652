"""Run the pipeline's stages as Ray Data on a Ray cluster (``--executor ray``; ``pip install 'uvaug[ray]'``).

The stages are the local executor's, as three actor pools: fit (about one actor per CPU), complete (one actor
per GPU with the batched ONNX session, or on a CPU-only cluster a few actors sharing the cores) and render
(about one per CPU, each with its own GL context). Ray Data streams the inputs through them with its own
backpressure; this process walks the input folder, feeds it to Ray in chunks (so a folder of 10^7 images is
never held in memory at once) and gets back one :class:`InputResult` per input, which ``run_pipeline`` turns
into the manifest exactly as for a local run. Workers write the outputs straight into the output folder: on a
multi-node cluster it must be on a filesystem every node mounts at the same path.

A worker that crashes (native code, the OOM killer) is restarted by Ray and its batch retried once; if the
chunk still fails, it is split in halves and rerun until the input that crashes stands alone, and that input
alone is recorded as crashed (a rerun retries it). An exception raised by the pipeline's own code (a worker
that cannot render at all, a missing model) stops the run with that message, as in a local run.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import islice

import numpy as np

from uvaug.artifacts import REASON_CRASH, STATUS_ERROR
from uvaug.pipeline.options import PipelineOptions
from uvaug.pipeline.work import (
    FitOutcome,
    InputResult,
    InputTask,
    PipelineWorker,
    RenderTask,
    complete_faces,
    completion_failure,
)

INSTALL_HINT = "pip install 'uvaug[ray]'"
#: Inputs handed to Ray Data per dataset: big enough that actor start-up and the pipeline's drain at the end
#: of a chunk cost little, small enough that this process never holds a whole dataset's task list.
CHUNK_INPUTS = 4096
#: CPU-only clusters: one completion actor per this many CPUs (a map takes about as long to complete as to
#: fit, and a completer's ONNX session uses several cores).
CPUS_PER_CPU_COMPLETER = 8
_EMPTY_UV = np.zeros((0, 0, 4), np.uint8)


class RayExecutorError(RuntimeError):
    """Ray is missing, the cluster cannot be reached or cannot run the pipeline (a one-line message)."""


@dataclass(frozen=True)
class RayPlan:
    """How the stages map onto the cluster's resources."""

    workers: int  # actors in each of the fit and render pools
    completers: int  # actors in the completion pool (0: completion runs per map in the fit actors)
    completer_gpus: float  # GPUs per completion actor (0: on the CPU)
    device: str  # the completion actors' device: "cuda" or "cpu"
    worker_cpus: float = 0.5  # a fit and a render actor share a core: the stages take turns on it


def plan_stages(cpus: float, gpus: float, options: PipelineOptions, workers: int | None = None) -> RayPlan:
    """Size the actor pools for a cluster with ``cpus`` CPUs and ``gpus`` GPUs (``workers`` overrides)."""
    n = workers or max(1, int(cpus))
    if options.method != "model":
        return RayPlan(n, 0, 0.0, "cpu")
    want_gpu = options.device in ("auto", "cuda") and gpus >= 1
    if options.device == "cuda" and gpus < 1:
        raise RayExecutorError("--device cuda: the Ray cluster has no GPU")
    if want_gpu:
        return RayPlan(n, int(gpus), 1.0, "cuda")
    return RayPlan(n, max(1, n // CPUS_PER_CPU_COMPLETER), 0.0, "cpu")


def _pack(result: InputResult) -> bytes:
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes) -> InputResult:
    return pickle.loads(data)


def _results(batch: dict[str, np.ndarray]) -> list[InputResult]:
    return [_unpack(data) for data in batch["result"]]


def _batch(results: list[InputResult]) -> dict[str, np.ndarray]:
    column = np.empty(len(results), dtype=object)
    column[:] = [_pack(result) for result in results]
    return {"result": column}


class FitActor:
    """Ray Data stage 1: photos to fitted faces with UV maps (completed here by per-map methods)."""

    def __init__(self, out_dir: str, options: PipelineOptions):
        self.worker = PipelineWorker(out_dir, options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tasks = zip(batch["path"], batch["rel"], batch["stem"], strict=True)
        return _batch([InputResult(self.worker.fit(InputTask(*map(str, row)))) for row in tasks])


class CompleteActor:
    """Ray Data stage 2: the batched completion model over every face of the batch's inputs."""

    def __init__(self, options: PipelineOptions, device: str):
        from uvaug.complete.run import create_completer

        self.completer = create_completer("model", options.model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = _results(batch)
        waiting = [(r, w) for r in results if r.fit.status is None for w in r.fit.faces if not w.completed]
        outcomes = complete_faces(self.completer, [work for _, work in waiting])
        for (result, work), (error, seconds) in zip(waiting, outcomes, strict=True):
            result.complete_seconds += seconds
            if error:
                result.faces.append(completion_failure(result.task, work, error))
        return _batch(results)


class RenderActor:
    """Ray Data stage 3: every view of every completed face; the UV maps are dropped before the result
    travels back to the driver, which needs only the fits, the outputs and the timings."""

    def __init__(self, out_dir: str, options: PipelineOptions):
        self.worker = PipelineWorker(out_dir, options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = _results(batch)
        for result in results:
            for work in result.fit.faces:
                if work.completed:
                    result.faces.append(self.worker.render(RenderTask(result.task, work)))
                work.uv, work.seen = _EMPTY_UV, None
        return _batch(results)


class RayExecutor:
    """The pipeline's stages on a Ray cluster: ``address`` (or $RAY_ADDRESS), else a local Ray instance."""

    def __init__(
        self,
        out_dir: str,
        options: PipelineOptions,
        workers: int | None = None,
        address: str | None = None,
        chunk_inputs: int = CHUNK_INPUTS,
    ):
        self.out_dir = out_dir
        self.options = options
        self.workers = workers  # asked for; once planned, the actors in each of the fit and render pools
        self.address = address
        self.chunk_inputs = max(1, chunk_inputs)
        self.plan: RayPlan | None = None

    def run(self, tasks: Iterable[InputTask], on_input: Callable[[InputResult], None]) -> None:
        """Process every task; ``on_input`` gets each input's result as soon as it is finished."""
        ray = _import_ray()
        started = self._connect(ray)
        try:
            resources = ray.cluster_resources()
            self.plan = plan_stages(
                resources.get("CPU", 1.0), resources.get("GPU", 0.0), self.options, self.workers
            )
            self.workers = self.plan.workers
            iterator = iter(tasks)
            while chunk := list(islice(iterator, self.chunk_inputs)):
                self._run_chunk(ray, chunk, on_input)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Join the cluster; True when this call started a local instance (then it is shut down after)."""
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(
                # no address: a fresh local instance, never a stale one recorded by an earlier `ray start`
                address=address or "local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=False,
            )
        except Exception as exc:  # an unreachable address, a version mismatch with the cluster
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            hint = ""
            if address and "RAY_AUTH_MODE" not in os.environ:  # no token is sent to an explicit address
                hint = (
                    "; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token here "
                    "and its token (~/.ray/auth_token or RAY_AUTH_TOKEN)"
                )
            raise RayExecutorError(f"cannot start or reach {where}: {exc}{hint}") from exc
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI shows its own
        return True

    def _dataset(self, ray, chunk: list[InputTask]):
        plan = self.plan
        assert plan is not None
        rows = [{"path": t.path, "rel": t.rel, "stem": t.stem} for t in chunk]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * plan.workers))
        if len(chunk) < plan.workers:  # a short last chunk: no idle actors to start
            plan = replace(plan, workers=len(chunk), completers=min(plan.completers, len(chunk)))
        with warnings.catch_warnings():  # the retry limits are still plain remote args (Ray < 2.64)
            warnings.simplefilter("ignore", ray.util.annotations.RayDeprecationWarning)
            return self._stages(ray, ds, plan)

    def _stages(self, ray, ds, plan: RayPlan):
        def stage(actor: type, args: tuple, batch_size: int, size: int, **resources):
            # a crashed actor is restarted; its batch is retried once, then the chunk fails and is split
            return ds.map_batches(
                actor,
                fn_constructor_args=args,
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=size),
                max_restarts=-1,
                max_task_retries=1,
                **resources,
            )

        ds = stage(FitActor, (self.out_dir, self.options), 2, plan.workers, num_cpus=plan.worker_cpus)
        if plan.completers:
            ds = stage(
                CompleteActor,
                (self.options, plan.device),
                self.options.batch_size,
                plan.completers,
                num_cpus=0,
                num_gpus=plan.completer_gpus,
            )
        return stage(RenderActor, (self.out_dir, self.options), 1, plan.workers, num_cpus=plan.worker_cpus)

    def _run_chunk(self, ray, chunk: list[InputTask], on_input: Callable[[InputResult], None]) -> None:
        delivered: set[str] = set()
        try:
            for row in self._dataset(ray, chunk).iter_rows():
                result = _unpack(row["result"])
                delivered.add(result.task.rel)
                on_input(result)
        except ray.exceptions.UserCodeException as exc:  # the pipeline's own code raised: stop
            raise RayExecutorError(f"a pipeline worker failed: {_last_line(str(exc))}") from exc
        except ray.exceptions.RayError as exc:  # a worker or node died: isolate the input that kills it
            rest = [task for task in chunk if task.rel not in delivered]
            if len(rest) == 1:
                on_input(_crashed(rest[0], _last_line(str(exc))))
                return
            half = len(rest) // 2
            for part in (rest[:half], rest[half:]):
                self._run_chunk(ray, part, on_input)


def _crashed(task: InputTask, message: str) -> InputResult:
    fit = FitOutcome(task, status=STATUS_ERROR, reason=REASON_CRASH)
    fit.message = f"a worker crashed on this input: {message}"[:1000]
    return InputResult(fit)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayExecutorError(f"--executor ray needs Ray Data: {INSTALL_HINT}") from exc
    return ray
