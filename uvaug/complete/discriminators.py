"""PatchGAN discriminators for the completion GAN: a global one on the whole UV map and a local one on the
central face region (eyes, nose, mouth), as UV-GAN did; the local one sharpens the features that matter most
for recognition, which the global one sees at too coarse a scale.

Both see the RGB multiplied by the target's known mask plus the mask itself (4 channels), for real and fake
maps alike (see :func:`discriminator_input`): ground-truth UV maps are themselves incomplete, so a
discriminator shown raw targets would learn "real maps have black holes" and teach the generator to paint
them. With the same mask on both sides, only texels the target knows are compared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = [
    "LOCAL_BOX",
    "DiscriminatorConfig",
    "PatchDiscriminator",
    "UVDiscriminators",
    "discriminator_input",
    "local_crop",
    "local_slices",
]

#: The local discriminator's crop of the UV square, (u0, v0, u1, v1) as fractions (u right, v down). In
#: the canonical layout the outer eye corners sit at u = 0.28 / 0.72, v = 0.376, the upper eyelids at
#: v = 0.355, the nose tip at v = 0.547, the mouth corners at v = 0.695 and the lower lip at v = 0.737. The
#: box is half the square wide and high, centred on that span, symmetric about u = 0.5, and lies wholly
#: inside ``uv_layout(size).coverage`` (checked in the tests); multiples of 1/64, so whole texels from 64x64.
LOCAL_BOX: tuple[float, float, float, float] = (16 / 64, 19 / 64, 48 / 64, 51 / 64)


def local_slices(
    height: int, width: int, box: tuple[float, float, float, float] = LOCAL_BOX
) -> tuple[slice, slice]:
    """(rows, cols) slices of ``box`` in an (height, width) map."""
    u0, v0, u1, v1 = box
    return slice(round(v0 * height), round(v1 * height)), slice(round(u0 * width), round(u1 * width))


def local_crop(x: Tensor, box: tuple[float, float, float, float] = LOCAL_BOX) -> Tensor:
    """The central face region of (N, C, H, W) maps."""
    rows, cols = local_slices(x.shape[-2], x.shape[-1], box)
    return x[..., rows, cols]


def discriminator_input(rgb: Tensor, known: Tensor) -> Tensor:
    """(N, 4, H, W): RGB where the target is known (0 elsewhere) and the known mask (N, 1, H, W)."""
    known = known.to(rgb.dtype)
    return torch.cat([rgb * known, known], dim=1)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Both discriminators: widths ``min(width * 2**i, max_width)``; ``*_downsamplings`` stride-2 layers set
    the receptive field (pix2pix's 70x70 PatchGAN is 3; the global one uses 4 for ~142 texels at 256)."""

    width: int = 64
    max_width: int = 512
    global_downsamplings: int = 4
    local_downsamplings: int = 3
    spectral_norm: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown discriminator config keys: {unknown}")
        return cls(**data)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): 4x4 convs, ``downsamplings`` of them with stride 2, then two with
    stride 1; one logit per overlapping patch. Spectral norm (Miyato et al. 2018) instead of batch norm keeps
    the critic Lipschitz, which suits the hinge loss."""

    def __init__(
        self, in_channels: int, width: int, max_width: int, downsamplings: int, use_spectral_norm: bool
    ) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 4, stride=stride, padding=1)
            return spectral_norm(layer) if use_spectral_norm else layer

        layers: list[nn.Module] = []
        cin = in_channels
        for i in range(downsamplings + 1):
            cout = min(width * 2**i, max_width)
            layers += [conv(cin, cout, 2 if i < downsamplings else 1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers.append(conv(cin, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class UVDiscriminators(nn.Module):
    """The global and the local discriminator; ``forward(rgb, known) -> (global_logits, local_logits)``,
    each (N, 1, h, w) patch logits."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        self.global_d = PatchDiscriminator(
            4, config.width, config.max_width, config.global_downsamplings, config.spectral_norm
        )
        self.local_d = PatchDiscriminator(
            4, config.width, config.max_width, config.local_downsamplings, config.spectral_norm
        )

    def forward(self, rgb: Tensor, known: Tensor) -> tuple[Tensor, Tensor]:
        x = discriminator_input(rgb, known)
        return self.global_d(x), self.local_d(local_crop(x))
