"""``uvaug pipeline --executor ray`` on a local Ray instance: the local executor's outputs, byte for byte;
a worker that crashes on one input costs only that input; the pools fit the cluster; clear errors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from test_complete_run import contract_model
from test_fit_run import make_salted_folder
from test_pipeline import _copies, _files, _latest, _options
from typer.testing import CliRunner

from uvaug.artifacts import REASON_CRASH
from uvaug.cli.app import app
from uvaug.io import iter_inputs
from uvaug.pipeline import run_pipeline
from uvaug.pipeline.ray_executor import RayExecutor, RayExecutorError, RayPlan, plan_stages
from uvaug.pipeline.work import InputTask

ray = pytest.importorskip("ray", reason="the Ray executor needs the extra: pip install 'uvaug[ray]'")
pytest.importorskip("ray.data", reason="the Ray executor needs Ray Data: pip install 'uvaug[ray]'")


def test_missing_ray_is_a_one_line_install_hint(tmp_path: Path, monkeypatch, astronaut, hopper):
    if ray.is_initialized():
        pytest.skip("a Ray instance is running in this process")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    src = _copies(tmp_path / "faces", astronaut, hopper, 1)
    with pytest.raises(RayExecutorError, match=r"pip install 'uvaug\[ray\]'"):
        run_pipeline(src, tmp_path / "out", _options(), executor="ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (the executor joins it and leaves it running)."""
    ray.init("local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_ray_outputs_equal_the_local_executors(local_ray, tmp_path: Path, astronaut: np.ndarray):
    """A salted folder (corrupt, truncated, empty, non-image, bomb, no-face files) through both executors:
    the same manifest lines and the same files, byte for byte, the batched ONNX completer included."""
    src = tmp_path / "faces"
    make_salted_folder(src / "id_salted", astronaut)
    model = contract_model(tmp_path / "mirror.onnx")
    options = _options(method="model", model=str(model), include_original=True, keep_intermediates=True)
    local = run_pipeline(src, tmp_path / "local", options, workers=2)
    remote = run_pipeline(src, tmp_path / "ray", options, executor="ray")
    assert remote.executor == "ray" and remote.workers == 2
    assert _latest(tmp_path / "ray") == _latest(tmp_path / "local")
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert remote.statuses == local.statuses and remote.statuses["ok"] >= 5
    data = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert data["executor"] == "ray" and data["stages"]["complete"]["items"] == remote.statuses["ok"]
    assert (tmp_path / "ray" / "sheet.png").is_file()

    again = run_pipeline(src, tmp_path / "ray", options, executor="ray")  # resumes like a local run
    errors = sum(n for status, n in local.statuses.items() if status == "error")
    assert again.skipped == local.processed - errors and again.processed == errors


class _KillOn:
    """A stage in front of the pipeline's that kills its own process on one input, as a native crash would."""

    def __init__(self, poison: str):
        self.poison = poison

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if any(str(rel) == self.poison for rel in batch["rel"]):
            os._exit(1)
        return batch


class _CrashingExecutor(RayExecutor):
    poison = ""

    def _stages(self, ray, ds, plan):
        ds = ds.map_batches(
            _KillOn,
            fn_constructor_args=(self.poison,),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0.1,
            max_restarts=-1,
            max_task_retries=1,
        )
        return super()._stages(ray, ds, plan)


def test_a_worker_crash_costs_only_the_input_that_causes_it(local_ray, tmp_path: Path, astronaut, hopper):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    src = _copies(tmp_path / "faces", astronaut, hopper, 6)
    inputs = [
        InputTask(str(item.path), item.rel.as_posix(), stem.as_posix()) for item, stem in iter_inputs(src)
    ]
    executor = _CrashingExecutor(str(tmp_path / "out"), _options(), workers=1)
    executor.poison = inputs[4].rel
    results = {}
    executor.run(inputs, lambda result: results.__setitem__(result.task.rel, result))
    assert set(results) == {task.rel for task in inputs}
    crashed = {rel for rel, result in results.items() if result.fit.reason == REASON_CRASH}
    assert crashed == {inputs[4].rel}
    assert "crashed" in results[inputs[4].rel].fit.message
    for rel, result in results.items():
        if rel != inputs[4].rel:
            assert result.fit.status is None and len(result.faces) == 1 and not result.faces[0].errors


def test_pools_follow_the_clusters_cpus_and_gpus():
    model, symmetric = _options(method="model"), _options(method="symmetric")
    assert plan_stages(2, 0, model) == RayPlan(2, 1, 0.0, "cpu")
    assert plan_stages(64, 0, model) == RayPlan(64, 8, 0.0, "cpu")
    assert plan_stages(64, 4, model) == RayPlan(64, 4, 1.0, "cuda")
    assert plan_stages(64, 4, _options(method="model", device="cpu")).device == "cpu"
    assert plan_stages(16, 2, symmetric, workers=3) == RayPlan(3, 0, 0.0, "cpu")
    with pytest.raises(RayExecutorError, match="no GPU"):
        plan_stages(16, 0, _options(method="model", device="cuda"))


def test_the_cli_runs_on_ray_and_says_what_is_wrong(local_ray, tmp_path: Path, astronaut, hopper):
    src = _copies(tmp_path / "faces", astronaut, hopper, 2)
    runner = CliRunner()
    args = ["pipeline", str(src), "-o", str(tmp_path / "out"), "--method", "symmetric", "--yaw", "0"]
    result = runner.invoke(app, [*args, "--executor", "ray"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["executor"] == "ray"
    assert {rec["status"] for rec in _latest(tmp_path / "out").values()} == {"ok"}

    result = runner.invoke(app, [*args, "--ray-address", "auto"])
    assert result.exit_code != 0 and "--ray-address only applies to --executor ray" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_cli_joins_a_running_cluster_by_address(tmp_path: Path, astronaut, hopper):
    """What the Slurm and Kubernetes examples do: ``ray start --head`` elsewhere, then ``--ray-address``."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    # its own temp dir (short: Ray's socket paths must fit 107 bytes), so the head's record of "the current
    # cluster" does not outlive the test in /tmp/ray, where a later ray.init() would find it
    temp = Path(tempfile.mkdtemp(prefix="uvaug-ray-"))
    start = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    head = subprocess.Popen(
        [*start, "--block", f"--temp-dir={temp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the head's daemons and workers share its session: one killpg stops them
    )
    try:
        src = _copies(tmp_path / "faces", astronaut, hopper, 3)
        command = [sys.executable, "-m", "uvaug", "pipeline", str(src), "-o", str(tmp_path / "out")]
        command += ["--method", "symmetric", "--yaw", "-30,30", "--executor", "ray"]
        command += ["--ray-address", f"127.0.0.1:{port}"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the head listens once its GCS is up
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(0.5)
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        records = _latest(tmp_path / "out")
        assert len(records) == 3 and {rec["status"] for rec in records.values()} == {"ok"}
        assert all(rec["views"] == 2 for rec in records.values())
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert (
            report["executor"] == "ray" and report["workers"] == 2
        )  # the cluster's CPUs, not this process's
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # daemons that outlive the head's own exit
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
