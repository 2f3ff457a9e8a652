"""8-bit completion models for the CPU: static post-training quantization with ONNX Runtime.

On CPUs with 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI, ARM dot product) an int8 network can
run ahead of its float32 original (the shipped completion network: 1.3 times as fast on 2 cores).
:func:`quantize_completion_model` calibrates the activations' ranges on real incomplete UV maps (the input
the network sees in use) and writes a QDQ model: weights 8-bit per output channel, activations 8-bit with
ranges at the 99.99th percentile of the calibration maps.

Layers whose error reaches the output directly stay float32: the first U-Net's stem (it reads the map
itself), the second U-Net's last decoder level, fusion and head (their noise would be the output's) and its
merges (1x1 convolutions, cheap). Quantizing everything with min-max ranges left faint grain in the filled
texels (SSIM over hidden texels about 0.04 below the float model's, 100 UTKFace val faces); percentile ranges
and these float layers cut that to about 0.013.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from uvaug.complete.onnx_runtime import SIZE_METADATA, resize_maps
from uvaug.complete.tensors import INPUT_NAME, to_network_input

#: Percentile of calibration activations taken as their range.
CALIBRATION_PERCENTILE = 99.99
#: Nodes kept in float32, by name in the exported graph (``uvaug.complete.export``): level 0 is the full
#: resolution, the decoder's last level.
FLOAT_NODES = re.compile(
    r"/generator/(first|second)/stem/|/generator/second/(decoder\.1|up\.0|fusions\.0|merge\.\d+|head)\b"
)


class _MapReader:
    """ONNX Runtime's calibration reader over RGBA UV maps, one network input per map, resized to ``size``
    (the model's) as :class:`uvaug.complete.onnx_runtime.OnnxCompleter` resizes them."""

    def __init__(self, maps: Iterable[np.ndarray], size: int | None):
        self._maps: Iterator[np.ndarray] = iter(maps)
        self._size = size

    def get_next(self) -> dict[str, np.ndarray] | None:
        rgba = next(self._maps, None)
        if rgba is None:
            return None
        batch = np.asarray(rgba)[None]
        if self._size is not None and batch.shape[1] != self._size:
            batch = resize_maps(batch, self._size)
        return {INPUT_NAME: to_network_input(batch)}

    def rewind(self) -> None:  # one pass is all a percentile calibration reads
        pass


def float_nodes(model_path: str | os.PathLike[str]) -> list[str]:
    """The nodes of an exported completion model that :func:`quantize_completion_model` keeps in float32."""
    import onnx

    graph = onnx.load(os.fspath(model_path), load_external_data=False).graph
    return [node.name for node in graph.node if FLOAT_NODES.search(node.name)]


def model_size(model_path: str | os.PathLike[str]) -> int | None:
    """The UV map side a completion model takes: its input's fixed size, or the size its metadata names."""
    import onnx

    model = onnx.load(os.fspath(model_path), load_external_data=False)
    height = model.graph.input[0].type.tensor_type.shape.dim[2]
    if height.HasField("dim_value"):
        return int(height.dim_value)
    size = {prop.key: prop.value for prop in model.metadata_props}.get(SIZE_METADATA)
    return int(size) if size else None


def quantize_completion_model(
    model: str | os.PathLike[str],
    maps: Iterable[np.ndarray],
    output: str | os.PathLike[str],
) -> Path:
    """Write an 8-bit copy of the completion ``model`` to ``output``, calibrated on ``maps`` (RGBA uint8 UV
    maps, resized to the model's size; a few dozen are plenty). Returns ``output``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_MapReader, CalibrationDataReader):
        pass

    size = model_size(model)

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        quantize_static(
            os.fspath(model),
            os.fspath(temporary),
            Reader(maps, size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            nodes_to_exclude=float_nodes(model),
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
        )
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return output
