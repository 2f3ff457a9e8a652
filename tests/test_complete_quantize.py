"""8-bit completion models for the CPU: ``uvaug.complete.quantize`` and ``uvaug quantize``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from uvaug.assets import SHIPPED, model_path
from uvaug.cli.app import app
from uvaug.complete.export import export_onnx
from uvaug.complete.network import AttentionResCUNet, GeneratorConfig
from uvaug.complete.onnx_runtime import OnnxCompleter
from uvaug.complete.pairs import visible_at
from uvaug.complete.quantize import float_nodes, model_size, quantize_completion_model
from uvaug.complete.symmetric import complete_symmetric
from uvaug.fit.run import fit_inputs
from uvaug.io import discover_inputs, write_image_atomic


def _hidden_at(face, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """The face's UV map with the seen texels a turn to ``yaw`` would hide taken out, and those texels."""
    uv = face.uv
    hidden = (uv[..., 3] == 255) & ~visible_at(face.fit, yaw, 0.0, uv.shape[0])
    masked = uv.copy()
    masked[hidden] = 0
    return masked, hidden


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generator, its batch-norm statistics settled, exported at 64x64."""
    torch.manual_seed(0)
    generator = AttentionResCUNet(GeneratorConfig(widths=(8, 8, 16, 32)))
    generator.train()
    with torch.no_grad():
        for _ in range(3):
            generator(torch.rand(4, 8, 64, 64) * 2 - 1)
    path = tmp_path_factory.mktemp("models") / "small.onnx"
    export_onnx(generator, path, size=64)
    return path


@pytest.mark.skipif("uv_completion.onnx" not in SHIPPED, reason="this version ships no completion model")
def test_the_shipped_model_quantized_completes_as_the_float_model_does(astro_face, psnr, tmp_path):
    """The real network, calibrated on three turns of a face it never saw and tested on a fourth: the 8-bit
    copy keeps known texels, fills every hole, and fills them as the float model does (the two agree far
    more closely than either matches the truth)."""
    calibration = [_hidden_at(astro_face, yaw)[0] for yaw in (-60.0, 30.0, 75.0)]
    int8 = quantize_completion_model(model_path("uv_completion.onnx"), calibration, tmp_path / "int8.onnx")
    masked, hidden = _hidden_at(astro_face, 45.0)
    float_out = OnnxCompleter(None, device="cpu")(masked[None])[0]
    int8_out = OnnxCompleter(int8, device="cpu")(masked[None])[0]
    known = masked[..., 3] == 255
    assert np.array_equal(int8_out[..., :3][known], masked[..., :3][known])
    assert (int8_out[..., 3][hidden] == 255).all()
    truth = astro_face.uv[..., :3][hidden]
    int8_psnr, float_psnr = psnr(int8_out[..., :3][hidden], truth), psnr(float_out[..., :3][hidden], truth)
    assert abs(int8_psnr - float_psnr) < 0.5, (int8_psnr, float_psnr)
    assert int8_psnr > psnr(complete_symmetric(masked)[..., :3][hidden], truth) + 1.0
    assert psnr(int8_out[..., :3][hidden], float_out[..., :3][hidden]) > 35.0


def test_quantize_writes_an_8bit_model_that_completes_as_its_float_one(
    small_model, astro_face, psnr, tmp_path
):
    """Calibrated on real maps (256x256, resized to the model's 64), the 8-bit copy quantizes the inner
    convolutions, keeps the stem and the output layers float, and fills holes close to the float model."""
    maps = [_hidden_at(astro_face, yaw)[0] for yaw in (-60.0, -30.0, 30.0, 60.0)]
    out = quantize_completion_model(small_model, iter(maps), tmp_path / "small_int8.onnx")
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["small_int8.onnx"]
    assert model_size(out) == model_size(small_model) == 64

    graph = onnx.load(str(out)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    kept = set(float_nodes(small_model))
    assert any("stem" in name for name in kept) and any("head" in name for name in kept)
    for name, node in convs.items():
        assert (node.input[1] in dequantized) is (name not in kept), name
    assert int8_weights

    masked = _hidden_at(astro_face, 45.0)[0]
    small = OnnxCompleter(small_model, device="cpu", seam_blend=False)(masked[None])[0]
    quantized = OnnxCompleter(out, device="cpu", seam_blend=False)(masked[None])[0]
    known = masked[..., 3] == 255
    assert np.array_equal(quantized[..., :3][known], masked[..., :3][known])
    assert (quantized[..., 3] == small[..., 3]).all()
    filled = (~known) & (small[..., 3] == 255)
    assert psnr(quantized[..., :3][filled], small[..., :3][filled]) > 30.0


def test_uvaug_quantize_draws_listed_maps_of_a_fit_output(small_model, astronaut, tmp_path):
    photos = tmp_path / "photos"
    write_image_atomic(photos / "a.jpg", astronaut)
    write_image_atomic(photos / "b.png", np.ascontiguousarray(astronaut[:, ::-1]))
    fits = tmp_path / "fit"
    assert fit_inputs(discover_inputs(photos), fits, workers=1).faces == 2
    (tmp_path / "names.txt").write_text("b.png\n")
    runner = CliRunner()
    out = tmp_path / "q.onnx"
    args = ["quantize", str(small_model), str(fits), "-o", str(out), "--list", str(tmp_path / "names.txt")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.is_file() and result.output.strip().endswith(str(out))
    assert re.search(r"calibration maps\s*│\s*1\s*│", result.output), result.output  # b.png's face only

    (tmp_path / "none.txt").write_text("c.jpg\n")
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "none.txt")])
    assert result.exit_code != 0 and "no UV maps found" in result.output
    result = runner.invoke(app, ["quantize", str(tmp_path / "missing.onnx"), str(fits), "-o", str(out)])
    assert result.exit_code != 0 and "model file not found" in result.output
    uvs = tmp_path / "uvs"  # plain UV maps name no inputs
    write_image_atomic(uvs / "x.uv.png", np.zeros((64, 64, 4), np.uint8))
    result = runner.invoke(app, ["quantize", str(small_model), str(uvs), "-o", str(out), *args[-2:]])
    assert result.exit_code != 0 and "only a fit output's maps can be chosen by input name" in result.output
