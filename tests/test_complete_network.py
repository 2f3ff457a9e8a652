"""The completion GAN's model side: generator, discriminators, losses, ONNX export and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from uvaug.complete.discriminators import (
    LOCAL_BOX,
    DiscriminatorConfig,
    UVDiscriminators,
    local_slices,
)
from uvaug.complete.export import (
    CONFIG_METADATA,
    export_onnx,
    load_checkpoint,
    load_generator_checkpoint,
    save_checkpoint,
)
from uvaug.complete.losses import LossConfig, discriminator_loss, generator_loss
from uvaug.complete.network import AttentionGate, AttentionResCUNet, GeneratorConfig, ScalarFusion
from uvaug.complete.onnx_runtime import SIZE_METADATA
from uvaug.complete.tensors import INPUT_NAME, OUTPUT_NAME, to_network_input

# Small enough for fast tests, deep enough that every kind of module appears at several levels.
SMALL = GeneratorConfig(widths=(8, 8, 16, 32))
NO_ADVERSARIAL = LossConfig(adversarial_global=0.0, adversarial_local=0.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models and batches are tiny: a second thread only adds synchronisation, and with other work on
    the machine, spinning threads make small-op workloads many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_input(n: int, h: int, w: int, seed: int = 0, known_fraction: float = 0.6) -> torch.Tensor:
    """Network input from random RGBA maps (random RGB, a random known mask), via the real contract."""
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (n, h, w, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((n, h, w)) < known_fraction, 255, 0)
    return torch.from_numpy(to_network_input(rgba))


def uv_like_batch(
    n: int = 4, size: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, target, target_known): smooth, left-right symmetric skin-like maps on the face coverage, and
    inputs that additionally miss one random rectangle (a cheek seen at an angle)."""
    from uvaug.fit.uv import uv_layout

    rng = np.random.default_rng(seed)
    coverage = uv_layout(size).coverage
    v, u = np.mgrid[0:size, 0:size] / size
    rgba = np.zeros((n, size, size, 4), np.uint8)
    targets = np.zeros((n, 3, size, size), np.float32)
    for i in range(n):
        base = rng.uniform(0.3, 0.8, 3)
        ripple = 0.15 * np.cos(2 * np.pi * (rng.uniform(1, 2) * np.abs(u - 0.5) + rng.uniform(0.5, 1.5) * v))
        rgb = np.clip(base[:, None, None] + ripple[None] * rng.uniform(0.5, 1.0, 3)[:, None, None], 0, 1)
        rgb8 = np.round(rgb * 255).astype(np.uint8)
        targets[i] = rgb8 * (2.0 / 255.0) - 1.0
        known = coverage.copy()
        y0, x0 = rng.integers(size // 4, size // 2, 2)
        known[y0 : y0 + size // 3, x0 : x0 + size // 3] = False
        rgba[i, ..., :3] = rgb8.transpose(1, 2, 0) * known[..., None]
        rgba[i, ..., 3] = known * 255
    target_known = torch.from_numpy(np.broadcast_to(coverage, (n, 1, size, size)).astype(np.float32).copy())
    return torch.from_numpy(to_network_input(rgba)), torch.from_numpy(targets), target_known


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("h", "w"), [(32, 32), (64, 96), (128, 128)])
def test_default_generator_output_shapes(h: int, w: int):
    generator = AttentionResCUNet().eval()
    with torch.no_grad():
        output, aux = generator(random_input(2, h, w))
    assert output.shape == aux.shape == (2, 3, h, w)
    assert output.dtype == torch.float32
    assert output.abs().max() <= 1.0 and aux.abs().max() <= 1.0


def test_generator_rejects_sizes_that_are_not_multiples_of_two_to_the_depth():
    generator = AttentionResCUNet(SMALL)
    with pytest.raises(ValueError, match="multiples of 8"):
        generator(random_input(1, 36, 32))
    with pytest.raises(ValueError, match="8, H, W"):
        generator(torch.zeros(1, 4, 32, 32))


def test_every_generator_parameter_gets_a_gradient():
    torch.manual_seed(0)
    generator = AttentionResCUNet(SMALL).train()
    x = random_input(2, 32, 32)
    output, aux = generator(x)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    ((output - target).abs().mean() + (aux - target).abs().mean()).backward()

    missing = [
        name for name, p in generator.named_parameters() if p.grad is None or not p.grad.abs().max() > 0
    ]
    assert missing == []
    gates = [m for m in generator.modules() if isinstance(m, AttentionGate)]
    fusions = [m for m in generator.modules() if isinstance(m, ScalarFusion)]
    assert len(gates) == 2 * SMALL.depth and len(fusions) == SMALL.depth
    for fusion in fusions:
        for scalar in (fusion.alpha, fusion.beta):
            assert isinstance(scalar, nn.Parameter) and scalar.requires_grad and scalar.ndim == 0
            assert scalar.grad is not None and scalar.grad.abs() > 0
    for gate in gates:
        assert all(p.grad.abs().max() > 0 for p in gate.parameters())


def test_known_texels_are_the_inputs_known_rgb_exactly():
    generator = AttentionResCUNet(SMALL).train()
    x = random_input(3, 32, 64, seed=1)
    output, aux = generator(x)
    known = (x[:, 3:4] > 0.5).expand(-1, 3, -1, -1)
    assert 0 < known.float().mean() < 1
    for image in (output, aux):
        assert torch.equal(image[known], x[:, :3][known])
        assert not torch.equal(image[~known], x[:, :3][~known])  # the holes are painted, not left at 0


@pytest.mark.parametrize("switch", ["attention", "scalar_fusion", "coupled"])
def test_ablation_switches_change_the_model_and_still_run(switch: str):
    full = AttentionResCUNet(SMALL)
    ablated = AttentionResCUNet(GeneratorConfig(**{**SMALL.to_dict(), switch: False})).train()
    assert n_params(ablated) < n_params(full)
    x = random_input(2, 32, 32)
    output, aux = ablated(x)
    assert output.shape == aux.shape == (2, 3, 32, 32)
    output.mean().backward()
    kinds = {type(m) for m in ablated.modules()}
    if switch == "attention":
        assert AttentionGate not in kinds and ScalarFusion in kinds
    elif switch == "scalar_fusion":
        assert ScalarFusion not in kinds and AttentionGate in kinds
    else:
        assert ablated.second is None and output is aux


def test_config_round_trips_and_rejects_bad_values():
    config = GeneratorConfig(widths=(16, 32, 64), attention=False)
    assert config.depth == 2 and config.size_multiple == 4
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    assert GeneratorConfig.from_dict({**config.to_dict(), "widths": [16, 32, 64]}) == config  # from JSON
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({**config.to_dict(), "heads": 4})
    with pytest.raises(ValueError, match="widths"):
        GeneratorConfig(widths=(16,))
    with pytest.raises(ValueError, match="norm"):
        GeneratorConfig(norm="layer")  # type: ignore[arg-type]


def _settle_batch_norm(generator: AttentionResCUNet) -> None:
    """A few train-mode passes so batch-norm running statistics are not the identity at export."""
    generator.train()
    with torch.no_grad():
        for seed in range(3):
            generator(random_input(4, 64, 64, seed=seed))
    generator.eval()


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_onnx_export_matches_torch_with_a_dynamic_batch(tmp_path, norm: str):
    torch.manual_seed(0)
    generator = AttentionResCUNet(GeneratorConfig(**{**SMALL.to_dict(), "norm": norm}))
    _settle_batch_norm(generator)
    generator.train()  # export must not depend on (or change) the caller's mode
    path = tmp_path / "model.onnx"
    export_onnx(generator, path, size=64)
    assert generator.training
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary or external-data files

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata[SIZE_METADATA] == "64"
    assert GeneratorConfig.from_dict(json.loads(metadata[CONFIG_METADATA])) == generator.config
    generator.eval()
    for batch in (1, 3):
        x = random_input(batch, 64, 64, seed=10 + batch)
        with torch.no_grad():
            expected = generator(x)[0].numpy()
        (got,) = session.run(None, {INPUT_NAME: x.numpy()})
        assert got.shape == (batch, 3, 64, 64)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_default_model_is_at_most_25_mb_as_onnx(tmp_path):
    path = tmp_path / "default.onnx"
    export_onnx(AttentionResCUNet(), path, size=256)
    assert path.stat().st_size <= 25_000_000


def test_export_rejects_a_size_the_network_cannot_take(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        export_onnx(AttentionResCUNet(SMALL), tmp_path / "m.onnx", size=60)
    assert list(tmp_path.iterdir()) == []


def test_a_few_training_steps_reduce_the_reconstruction_loss():
    torch.manual_seed(0)
    x, target, target_known = uv_like_batch()
    generator = AttentionResCUNet(GeneratorConfig(widths=(8, 8, 16, 32, 32))).train()
    optimiser = torch.optim.Adam(generator.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        output, aux = generator(x)
        loss, terms = generator_loss(output, aux, x, target, target_known, config=NO_ADVERSARIAL)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(terms["reconstruction"].item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_reconstruction_loss_counts_only_target_known_texels():
    x, target, target_known = uv_like_batch(n=2, size=32)
    output = target.clone()
    outside = target_known.expand(-1, 3, -1, -1) == 0
    output[outside] = -target[outside]  # wrong only where the target itself is unknown
    _, terms = generator_loss(output, output, x, target, target_known, config=NO_ADVERSARIAL)
    assert terms["reconstruction"] == 0 and terms["auxiliary"] == 0
    _, terms = generator_loss(-target, output, x, target, target_known, config=NO_ADVERSARIAL)
    assert terms["reconstruction"] > 0 and terms["auxiliary"] == 0


def test_total_variation_term_penalises_only_rough_painted_regions():
    x, target, target_known = uv_like_batch(n=2, size=32)
    config = LossConfig(adversarial_global=0.0, adversarial_local=0.0, total_variation=0.1)
    flat = torch.zeros_like(target)
    _, terms = generator_loss(flat, flat, x, target, target_known, config=config)
    assert terms["total_variation"] == 0
    rough = flat.clone()
    rough[..., ::2, :] = 1.0  # stripes everywhere, the known texels included
    known = x[:, 3:4] > 0.5
    _, terms = generator_loss(rough, rough, x, target, target_known, config=config)
    rough_known_only = torch.where(known, rough, flat)
    _, known_terms = generator_loss(rough_known_only, flat, x, target, target_known, config=config)
    # Rough known texels count only where they border a hole; rough painted texels count everywhere.
    assert terms["total_variation"] > known_terms["total_variation"] > 0


def test_local_box_is_the_central_face_region_inside_the_layout():
    from uvaug.fit.bundle import default_bundle
    from uvaug.fit.uv import uv_layout

    u0, v0, u1, v1 = LOCAL_BOX
    assert u0 + u1 == pytest.approx(1.0)  # symmetric like the layout
    for size in (64, 256):
        rows, cols = local_slices(size, size)
        assert uv_layout(size).coverage[rows, cols].all()
    uvs = default_bundle().geometry.uvs
    # Outer and inner eye corners, upper eyelids, nose tip, mouth corners, lower lip (Face Mesh indices).
    for index in (33, 133, 362, 263, 159, 386, 1, 61, 291, 17):
        u, v = uvs[index]
        assert u0 < u < u1 and v0 < v < v1, index


@pytest.mark.parametrize("gan", ["hinge", "lsgan"])
def test_discriminators_give_patch_maps_and_their_losses_backpropagate(gan: str):
    torch.manual_seed(0)
    discriminators = UVDiscriminators(DiscriminatorConfig(width=8, max_width=32)).train()
    generator = AttentionResCUNet(SMALL).train()
    x, target, target_known = uv_like_batch(n=2, size=64)
    output, aux = generator(x)
    config = LossConfig(gan=gan)  # type: ignore[arg-type]

    global_logits, local_logits = discriminators(output, target_known)
    assert global_logits.shape[:2] == local_logits.shape[:2] == (2, 1)
    assert min(global_logits.shape[-2:]) > 1 and min(local_logits.shape[-2:]) > 1

    d_loss, d_terms = discriminator_loss(discriminators, output, target, target_known, config)
    d_loss.backward()
    assert set(d_terms) == {"global", "local"} and d_loss >= 0
    # While no hinge term saturates, real and fake pull the output bias equally hard both ways: its
    # gradient is exactly zero then (all logits start near 0), and that is no missing connection.
    exempt = {"global_d.net.10.bias", "local_d.net.8.bias"} if gan == "hinge" else set()
    assert exempt <= dict(discriminators.named_parameters()).keys()
    without_grad = [
        name
        for name, p in discriminators.named_parameters()
        if name not in exempt and (p.grad is None or not p.grad.abs().max() > 0)
    ]
    assert without_grad == []
    assert all(p.grad is None for p in generator.parameters())  # the fake is detached for the critic

    adversarial_only = LossConfig(reconstruction=0.0, auxiliary=0.0, gan=gan)  # type: ignore[arg-type]
    g_loss, g_terms = generator_loss(output, aux, x, target, target_known, discriminators, adversarial_only)
    g_loss.backward()
    assert {"adversarial_global", "adversarial_local"} <= set(g_terms)
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in generator.parameters())


def test_generator_loss_needs_discriminators_when_adversarial_weights_are_set():
    x, target, target_known = uv_like_batch(n=1, size=32)
    with pytest.raises(ValueError, match="discriminators"):
        generator_loss(target, target, x, target, target_known)
    with pytest.raises(ValueError, match="target_known"):
        generator_loss(target, target, x, target, target_known[:, 0], config=NO_ADVERSARIAL)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    generator = AttentionResCUNet(SMALL)
    _settle_batch_norm(generator)
    discriminators = UVDiscriminators(DiscriminatorConfig(width=8, max_width=16))
    optimiser = torch.optim.Adam(generator.parameters())
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(
        path,
        generator,
        discriminators=discriminators,
        optimizers={"generator": optimiser},
        epoch=3,
        metrics={"val_l1": 0.125},
        loss_config=LossConfig(auxiliary=0.25),
    )
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]

    loaded = load_generator_checkpoint(path)
    assert not loaded.training and loaded.config == SMALL
    x = random_input(2, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], generator(x)[0])
    checkpoint = load_checkpoint(path)
    assert checkpoint["epoch"] == 3 and checkpoint["metrics"] == {"val_l1": 0.125}
    assert LossConfig.from_dict(checkpoint["loss_config"]).auxiliary == 0.25
    assert DiscriminatorConfig.from_dict(checkpoint["discriminator_config"]) == discriminators.config
    UVDiscriminators(discriminators.config).load_state_dict(checkpoint["discriminators"])
    torch.optim.Adam(loaded.parameters()).load_state_dict(checkpoint["optimizers"]["generator"])

    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a uvaug completion checkpoint"):
        load_generator_checkpoint(tmp_path / "other.pt")
