"""Run an exported completion network (ONNX, the :mod:`uvaug.complete.tensors` contract) on ONNX Runtime.

One :class:`OnnxCompleter` holds one InferenceSession for a whole run (creating one costs far more than a
batch). Providers: CUDA when asked for or, with ``device="auto"``, when this ONNX Runtime build has it and it
starts; CPU otherwise. The session's intra-op threads default to the cores this process may use (ONNX
Runtime's own default counts the machine's cores, which oversubscribes a container limited to a few).

Sizes: a model exported at a fixed resolution (``uvaug.complete.export`` fixes it) gets every map resized to
that size for the network and the network's colours resized back, so maps of any size work; known texels are
then restored at the map's own resolution, so they stay exact. A model with dynamic H and W runs at the map's
size, unless its metadata names the size it was trained at (``uv_size``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from uvaug.assets import SHIPPED, ModelError, model_dirs, model_path
from uvaug.complete.maps import as_batch, finish
from uvaug.complete.seams import blend_output_seams
from uvaug.complete.tensors import (
    INPUT_CHANNELS,
    INPUT_NAME,
    OUTPUT_NAME,
    from_network_output,
    known_mask,
    to_network_input,
)
from uvaug.runner import available_cores

DEFAULT_MODEL = "uv_completion.onnx"
DEVICES = ("auto", "cuda", "cpu")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: Model metadata key naming the training resolution of a model exported with dynamic H and W.
SIZE_METADATA = "uv_size"
_ORT_DEFAULT_LOG_SEVERITY = 2  # warnings


class DeviceError(RuntimeError):
    """The requested device cannot run the model here (one-line message)."""


def default_model_path() -> Path:
    """The shipped completion model, checksum verified; a :class:`ModelError` naming the file if missing."""
    fallback = "pass a trained model with --model FILE.onnx, or use --method symmetric"
    if DEFAULT_MODEL in SHIPPED:
        try:
            return model_path(DEFAULT_MODEL)
        except ModelError as exc:
            raise ModelError(f"{exc}; or {fallback}") from None
    for folder in model_dirs():
        if (folder / DEFAULT_MODEL).is_file():
            raise ModelError(
                f"{folder / DEFAULT_MODEL} is not a registered uvaug model (no checksum in "
                f"uvaug.assets.SHIPPED); {fallback}"
            )
    raise ModelError(
        f"completion model {DEFAULT_MODEL} not found: this version of uvaug does not ship it yet; {fallback}"
    )


def completion_model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """The model file to load: ``model``, or the shipped one; a :class:`ModelError` if it is not there."""
    path = Path(model) if model is not None else default_model_path()
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return path


def choose_providers(device: str, available: Sequence[str] | None = None) -> list[str]:
    """Execution providers to ask ONNX Runtime for, best first; ``available`` defaults to this build's."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if available is None:
        available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceError(
            "CUDA requested, but this ONNX Runtime build has no CUDA provider "
            f"(it has {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
        )
    return [CPU]


def pip_cuda_libraries() -> bool:
    """Whether NVIDIA's CUDA and cuDNN wheels are installed (``pip install 'uvaug[gpu]'``)."""
    return importlib.util.find_spec("nvidia") is not None


@functools.cache
def preload_pip_cuda_libraries() -> bool:
    """Load the CUDA and cuDNN libraries of NVIDIA's pip wheels, once per process; False if there are none.

    ONNX Runtime's CUDA provider looks for them only on the system's library path, not in the wheels, unless
    they were loaded first (``onnxruntime.preload_dlls``). That prints what it cannot load; kept quiet here,
    since a session that still cannot start on CUDA falls back to the CPU or raises :class:`DeviceError`.
    """
    if not pip_cuda_libraries() or not hasattr(ort, "preload_dlls"):
        return False
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            ort.preload_dlls()
        except Exception:  # a broken CUDA install must not stop a CPU run
            return False
    return True


@contextlib.contextmanager
def _quiet_provider_fallback() -> Iterator[None]:
    """Silence ONNX Runtime's log while a session starts: a CUDA provider that cannot load (no GPU, missing
    CUDA libraries) logs a multi-line error before falling back to CPU, which is handled here instead."""
    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(_ORT_DEFAULT_LOG_SEVERITY)


class OnnxCompleter:
    """Complete UV maps with an ONNX completion network; call it on (N, S, S, 4) or (S, S, 4) uint8 maps."""

    method = "model"
    batched = True  # one session used from one process, in batches (the session parallelises itself)

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "auto",
        threads: int | None = None,
        seam_blend: bool = True,
    ) -> None:
        """``seam_blend``: blend the network's colours into the known texels along each hole's rim
        (:mod:`uvaug.complete.seams`); off, the raw network output fills the holes."""
        self.seam_blend = seam_blend
        self.path = completion_model_path(model)
        providers = choose_providers(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = self._start(options, providers)
        if CUDA in providers and CUDA not in self.session.get_providers() and preload_pip_cuda_libraries():
            self.session = self._start(options, providers)  # again, with the wheels' CUDA libraries loaded
        self.providers: list[str] = self.session.get_providers()
        if device == "cuda" and CUDA not in self.providers:
            raise DeviceError(
                "CUDA requested, but ONNX Runtime could not start its CUDA provider (no usable GPU, or the "
                "CUDA/cuDNN libraries it needs are missing: pip install 'uvaug[gpu]'); use --device cpu"
            )
        self.device = "cuda" if CUDA in self.providers else "cpu"
        self.model: str | None = self.path.name
        self.size, self.fixed_batch = _signature(self.session, self.path)

    def _start(self, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        try:
            with _quiet_provider_fallback():
                return ort.InferenceSession(os.fspath(self.path), options, providers=providers)
        except Exception as exc:  # ONNX Runtime raises its own exception types for every kind of bad file
            detail = " ".join(str(exc).split())[:200]
            raise ModelError(f"cannot load completion model {self.path}: {detail}") from None

    def __call__(self, rgba: np.ndarray) -> np.ndarray:
        batch, single = as_batch(rgba)
        size = batch.shape[1]
        work = batch if self.size in (None, size) else resize_maps(batch, self.size)
        colours = self._run(to_network_input(work))
        if colours.shape != (len(batch), 3, *work.shape[1:3]):
            raise RuntimeError(f"the model returned shape {colours.shape} for input {work.shape[:3]}")
        if work is not batch:
            colours = resize_colours(colours, size)
        if self.seam_blend:
            colours = blend_output_seams(colours, batch)
        out = finish(np.ascontiguousarray(from_network_output(colours, batch)), batch)
        return out[0] if single else out

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The network on ``x``, in chunks of the model's batch size when it has a fixed one."""
        step = self.fixed_batch or len(x)
        parts = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            short = step - len(chunk)
            if short:  # a fixed-batch model needs full batches: repeat the last map
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
            parts.append(self.session.run([OUTPUT_NAME], {INPUT_NAME: chunk})[0][: step - short])
        return np.concatenate(parts).astype(np.float32, copy=False)


def _signature(session: ort.InferenceSession, path: Path) -> tuple[int | None, int | None]:
    """Check the tensors contract; return the model's fixed UV size and batch size (None where dynamic)."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    wanted = f"input {INPUT_NAME!r} (N, {INPUT_CHANNELS}, H, W) and output {OUTPUT_NAME!r} (N, 3, H, W)"
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelError(
            f"{path} is not a uvaug completion model: expected {wanted}, found inputs "
            f"{sorted(inputs)} and outputs {sorted(outputs)}"
        )
    shape, out_shape = inputs[INPUT_NAME].shape, outputs[OUTPUT_NAME].shape
    if (
        len(shape) != 4
        or len(out_shape) != 4
        or not _fits(shape[1], INPUT_CHANNELS)
        or not _fits(out_shape[1], 3)
    ):
        raise ModelError(
            f"{path} is not a uvaug completion model: expected {wanted}, found {shape} -> {out_shape}"
        )
    height, width = shape[2], shape[3]
    size: int | None = None
    if isinstance(height, int) and isinstance(width, int):
        if height != width:
            raise ModelError(f"{path}: the model takes {width}x{height} maps; UV maps are square")
        size = height
    else:
        meta = session.get_modelmeta().custom_metadata_map.get(SIZE_METADATA)
        if meta is not None and meta.isdigit():
            size = int(meta)
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return size, batch


def _fits(dim: int | str | None, value: int) -> bool:
    """A model dimension accepts ``value``: it is that number, or dynamic (a name or None)."""
    return not isinstance(dim, int) or dim == value


def resize_maps(rgba: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 4) RGBA maps -> (N, size, size, 4), resampling known texels only (holes do not darken them).

    Colours are averaged weighted by known-ness; a texel of the result is known where at least half the
    area it covers was.
    """
    known = known_mask(rgba).astype(np.float32)
    interpolation = cv2.INTER_AREA if size < rgba.shape[1] else cv2.INTER_LINEAR
    out = np.zeros((len(rgba), size, size, 4), np.uint8)
    for i in range(len(rgba)):
        weighted = np.dstack([rgba[i, ..., :3].astype(np.float32) * known[i][..., None], known[i]])
        small = cv2.resize(weighted, (size, size), interpolation=interpolation)
        weight = small[..., 3]
        keep = weight >= 0.5
        rgb = small[..., :3] / np.maximum(weight, 1e-6)[..., None]
        out[i, ..., :3][keep] = np.clip(np.rint(rgb[keep]), 0, 255).astype(np.uint8)
        out[i, ..., 3][keep] = 255
    return out


def resize_colours(colours: np.ndarray, size: int) -> np.ndarray:
    """(N, 3, s, s) network colours -> (N, 3, size, size)."""
    interpolation = cv2.INTER_AREA if size < colours.shape[-1] else cv2.INTER_LINEAR
    return np.stack(
        [
            cv2.resize(
                np.ascontiguousarray(c.transpose(1, 2, 0)), (size, size), interpolation=interpolation
            ).transpose(2, 0, 1)
            for c in colours
        ]
    )
