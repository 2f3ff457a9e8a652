"""Checkpoints of the completion GAN and ONNX export of its generator (what ``uvaug complete`` runs).

A checkpoint is a plain dict, loadable with ``torch.load(weights_only=True)`` (no pickled classes):

* ``format``: :data:`CHECKPOINT_FORMAT`
* ``config``: the :class:`GeneratorConfig` as a dict; ``generator``: its state_dict
* ``discriminator_config`` / ``discriminators``: the same for the discriminators (optional)
* ``optimizers``: name -> optimiser state_dict (optional); ``epoch``: int; ``metrics``: name -> number
* ``loss_config``: the :class:`LossConfig` as a dict (optional)
* anything else a caller stores with ``extra`` (plain data only; training keeps its history and config there)
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from uvaug.complete.discriminators import UVDiscriminators
from uvaug.complete.losses import LossConfig
from uvaug.complete.network import AttentionResCUNet, GeneratorConfig
from uvaug.complete.onnx_runtime import SIZE_METADATA
from uvaug.complete.tensors import INPUT_CHANNELS, INPUT_NAME, OUTPUT_NAME
from uvaug.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "CONFIG_METADATA",
    "export_onnx",
    "load_checkpoint",
    "load_generator_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "uvaug.complete.checkpoint/1"
BATCH_AXIS = "batch"
#: ONNX metadata key holding the generator's config (JSON), so a model file says what it is.
CONFIG_METADATA = "uvaug_generator_config"
_RESERVED_KEYS = frozenset(
    {"format", "config", "generator", "epoch", "metrics", "discriminator_config", "discriminators"}
    | {"optimizers", "loss_config"}
)


class _FinalOutput(nn.Module):
    """The exported graph: the generator's final output only (the aux output is a training signal)."""

    def __init__(self, generator: AttentionResCUNet) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x)[0]


def export_onnx(
    generator: AttentionResCUNet, path: str | os.PathLike[str], size: int = 256, opset: int = 17
) -> None:
    """Write ``generator`` as a single-file fp32 ONNX model with a dynamic batch axis, atomically.

    The graph is fixed to ``size`` x ``size`` UV maps (tracing bakes the resolution into the resize ops);
    input ``tensors.INPUT_NAME`` (N, 8, size, size), output ``tensors.OUTPUT_NAME`` (N, 3, size, size).
    Metadata: ``uv_size`` (the size, as :mod:`uvaug.complete.onnx_runtime` reads it) and
    :data:`CONFIG_METADATA`. A copy is exported on the CPU in eval mode, so the caller's model (device, train
    mode) is untouched.
    """
    multiple = generator.config.size_multiple
    if size <= 0 or size % multiple:
        raise ValueError(f"size must be a positive multiple of {multiple}, got {size}")
    model = _FinalOutput(copy.deepcopy(generator).float().cpu().eval())
    example = torch.zeros(1, INPUT_CHANNELS, size, size)
    example[:, 3] = 1.0  # any values trace the same graph; a valid mask keeps the example meaningful
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript dependency) warns that it is deprecated in favour of dynamo;
        # with norm="instance", torch's own instance_norm trips tracer warnings and says that it always
        # normalises with the input's statistics, which is what instance norm means.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*'instance_norm' is set to train=True")
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(
            proto, {SIZE_METADATA: str(size), CONFIG_METADATA: json.dumps(generator.config.to_dict())}
        )
        onnx.save(proto, str(tmp))


def save_checkpoint(
    path: str | os.PathLike[str],
    generator: AttentionResCUNet,
    *,
    discriminators: UVDiscriminators | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    epoch: int = 0,
    metrics: dict[str, float] | None = None,
    loss_config: LossConfig | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a training checkpoint atomically (a crash mid-save keeps the previous one intact).

    ``extra`` adds keys of plain data (numbers, strings, lists, dicts) that ``weights_only`` loading accepts;
    it may not replace the keys above, which every reader relies on.
    """
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "config": generator.config.to_dict(),
        "generator": _cpu_state(generator),
        "epoch": int(epoch),
        "metrics": {name: float(value) for name, value in (metrics or {}).items()},
    }
    if discriminators is not None:
        checkpoint["discriminator_config"] = discriminators.config.to_dict()
        checkpoint["discriminators"] = _cpu_state(discriminators)
    if optimizers:
        checkpoint["optimizers"] = {name: opt.state_dict() for name, opt in optimizers.items()}
    if loss_config is not None:
        checkpoint["loss_config"] = loss_config.to_dict()
    clash = sorted(set(extra or {}) & (set(checkpoint) | _RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra checkpoint keys clash with reserved ones: {clash}")
    checkpoint.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (for resuming training); only plain data is unpickled."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path} is not a uvaug completion checkpoint (format {found!r})")
    return checkpoint


def load_generator_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> AttentionResCUNet:
    """The generator of a checkpoint, rebuilt from its stored config, in eval mode."""
    checkpoint = load_checkpoint(path, map_location)
    generator = AttentionResCUNet(GeneratorConfig.from_dict(checkpoint["config"]))
    generator.load_state_dict(checkpoint["generator"])
    return generator.to(map_location).eval()


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}
