"""Losses of the completion GAN, every weight in one :class:`LossConfig`.

A training pair is an input built from a target UV map by hiding more of it (``x``, per
:mod:`uvaug.complete.tensors`), the target RGB in [-1, 1] and the target's own known mask: ground-truth UV
maps come from photos too, so they are incomplete, and every term only looks at texels the target knows.

* Reconstruction: L1 between the final output and the target on target-known texels. Known input texels are
  composited, so their error is zero; the sum is divided by the number of texels the generator painted
  (target-known, input-unknown), so the loss is a per-painted-texel error whatever the hole size.
* Auxiliary: the same L1 on the first U-Net's output.
* Adversarial: hinge loss (Lim & Ye 2017, as SAGAN; with spectral norm) by default, LSGAN optionally, from the
  global and the local discriminator, each with its own weight.
* Total variation (off by default): mean absolute difference of neighbouring texels that touch a painted one;
  it smooths the painted regions and fights the adversarial texture, so use it only against artefacts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from uvaug.complete.discriminators import UVDiscriminators

__all__ = [
    "LossConfig",
    "discriminator_loss",
    "generator_loss",
    "masked_l1",
    "painted_mask",
    "total_variation",
]

GanLoss = Literal["hinge", "lsgan"]


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (and the adversarial loss's form); stored as a dict in checkpoints."""

    reconstruction: float = 1.0
    auxiliary: float = 0.5
    adversarial_global: float = 0.01
    adversarial_local: float = 0.01
    total_variation: float = 0.0
    gan: GanLoss = "hinge"

    def __post_init__(self) -> None:
        if self.gan not in ("hinge", "lsgan"):
            raise ValueError(f"gan must be 'hinge' or 'lsgan', got {self.gan!r}")
        weights = dataclasses.asdict(self)
        del weights["gan"]
        negative = [name for name, value in weights.items() if value < 0]
        if negative:
            raise ValueError(f"loss weights must be >= 0: {negative}")

    @property
    def adversarial(self) -> bool:
        return self.adversarial_global > 0 or self.adversarial_local > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown loss config keys: {unknown}")
        return cls(**data)


def painted_mask(x: Tensor, target_known: Tensor) -> Tensor:
    """(N, 1, H, W) float: texels the generator paints (unknown in the input) that the target knows."""
    return (1.0 - x[:, 3:4]) * target_known.to(x.dtype)


def masked_l1(pred: Tensor, target: Tensor, target_known: Tensor, painted: Tensor) -> Tensor:
    """Sum of |pred - target| over target-known texels, per painted texel and channel."""
    error = (pred - target).abs() * target_known.to(pred.dtype)
    return error.sum() / (painted.sum().clamp(min=1.0) * pred.shape[1])


def total_variation(image: Tensor, region: Tensor) -> Tensor:
    """Mean |difference| of horizontal and vertical neighbours where either texel is in ``region``."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs() * torch.maximum(
        region[..., :, 1:], region[..., :, :-1]
    )
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs() * torch.maximum(
        region[..., 1:, :], region[..., :-1, :]
    )
    return (dx.sum() + dy.sum()) / (region.sum().clamp(min=1.0) * 2 * image.shape[1])


def _check(x: Tensor, target: Tensor, target_known: Tensor) -> None:
    n, _, h, w = x.shape
    if target.shape != (n, 3, h, w) or target_known.shape != (n, 1, h, w):
        raise ValueError(
            f"expected target (N, 3, H, W) and target_known (N, 1, H, W) matching input {tuple(x.shape)}, "
            f"got {tuple(target.shape)} and {tuple(target_known.shape)}"
        )


def generator_loss(
    output: Tensor,
    aux: Tensor,
    x: Tensor,
    target: Tensor,
    target_known: Tensor,
    discriminators: UVDiscriminators | None = None,
    config: LossConfig | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted generator loss and its terms (detached, unweighted) for logging.

    ``output``/``aux`` are the generator's two outputs for input ``x``; ``target`` (N, 3, H, W) in [-1, 1];
    ``target_known`` (N, 1, H, W), 1 where the target is known. ``discriminators`` is needed when an
    adversarial weight is non-zero; its parameters receive gradients here too, so zero them before the
    discriminator's own step.
    """
    config = config or LossConfig()
    _check(x, target, target_known)
    painted = painted_mask(x, target_known)
    terms = {
        "reconstruction": masked_l1(output, target, target_known, painted),
        "auxiliary": masked_l1(aux, target, target_known, painted),
    }
    if config.total_variation > 0:
        terms["total_variation"] = total_variation(output, 1.0 - x[:, 3:4])
    if config.adversarial:
        if discriminators is None:
            raise ValueError("adversarial loss weights are set but no discriminators were given")
        global_logits, local_logits = discriminators(output, target_known)
        terms["adversarial_global"] = _generator_adversarial(global_logits, config.gan)
        terms["adversarial_local"] = _generator_adversarial(local_logits, config.gan)
    total = sum((getattr(config, name) * value for name, value in terms.items()), output.new_zeros(()))
    return total, {name: value.detach() for name, value in terms.items()}


def discriminator_loss(
    discriminators: UVDiscriminators,
    fake: Tensor,
    target: Tensor,
    target_known: Tensor,
    config: LossConfig | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Global plus local discriminator loss (real = target, fake = generator output, detached here), and
    the two terms for logging. Both discriminators see the same target-known masking on real and fake."""
    config = config or LossConfig()
    real_global, real_local = discriminators(target, target_known)
    fake_global, fake_local = discriminators(fake.detach(), target_known)
    terms = {
        "global": _discriminator_adversarial(real_global, fake_global, config.gan),
        "local": _discriminator_adversarial(real_local, fake_local, config.gan),
    }
    return terms["global"] + terms["local"], {name: value.detach() for name, value in terms.items()}


def _generator_adversarial(fake_logits: Tensor, gan: GanLoss) -> Tensor:
    if gan == "hinge":
        return -fake_logits.mean()
    return ((fake_logits - 1.0) ** 2).mean()


def _discriminator_adversarial(real_logits: Tensor, fake_logits: Tensor, gan: GanLoss) -> Tensor:
    if gan == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return ((real_logits - 1.0) ** 2).mean() + (fake_logits**2).mean()
