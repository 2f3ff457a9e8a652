"""The completion generator: an Attention ResCUNet (two coupled residual U-Nets with attention-gated skips).

Input and output follow :mod:`uvaug.complete.tensors`: (N, 8, H, W) in, (N, 3, H, W) in [-1, 1] out, H and
W multiples of ``2 ** depth``. The first U-Net makes a coarse completion (the auxiliary output, supervised on
its own so that the first U-Net learns a usable image, not just features). The second U-Net sees the input
plus that completion; at every decoder level it fuses its own attention-gated encoder feature with the first
U-Net's decoder feature at the same level through two trainable scalars (``alpha * gated + beta * first``),
so it learns how much to trust the coarse pass at each scale. Both outputs are composited: known texels are
the input's known RGB exactly, the network only paints the holes.

Upsampling is a 1x1 conv at the coarse level, bilinear interpolation, concatenation with the skip and a
merge conv: no transposed convs, so no checkerboard artefacts. The default is sized for CPU inference
(about 2 GMAC per 256x256 map, 20 MB as ONNX): widths are multiples of 16 (ONNX Runtime's AVX-512 conv
kernels work on blocks of 16 channels and pad to them, so widths in between save little time); the full-
and half-resolution levels stay at 16 channels and level 0 has no residual blocks, since every conv at
those levels costs as much as one at any level below; batch norm, because it folds into the convs at
inference, while instance norm needs kernels and layout reorders of its own (about 20% slower in ONNX
Runtime).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uvaug.complete.tensors import INPUT_CHANNELS

__all__ = [
    "AttentionGate",
    "AttentionResCUNet",
    "ConvNormAct",
    "GeneratorConfig",
    "ResBlock",
    "ScalarFusion",
    "UNet",
    "composite",
]

Norm = Literal["instance", "batch", "none"]
_NEGATIVE_SLOPE = 0.2


@dataclass(frozen=True)
class GeneratorConfig:
    """Every architecture choice of the generator; stored as a plain dict in checkpoints.

    ``widths`` are the channels per level, from level 0 (full resolution) to the bottleneck at
    ``H / 2**depth``, ``depth = len(widths) - 1``. The three switches are the ablation:

    * ``attention``: skips go through additive attention gates (False: skips are passed as they are).
    * ``scalar_fusion``: the second U-Net fuses the first U-Net's decoder features into its skips with
      trainable scalars (False: the two U-Nets are coupled only through the first one's output image).
    * ``coupled``: two U-Nets in sequence (False: a single U-Net, whose output is also the aux output).
    """

    widths: tuple[int, ...] = (16, 16, 32, 64, 128, 256)
    res_blocks: int = 1  # residual blocks per level, in the encoder and in the decoder
    full_res_blocks: bool = False  # residual blocks at level 0 too
    attention: bool = True
    scalar_fusion: bool = True
    coupled: bool = True
    norm: Norm = "batch"
    merge_kernel: int = 1  # the conv after each skip concatenation: 1 (cheap) or 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))  # lists from JSON or dicts
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths needs at least two positive levels, got {self.widths}")
        if self.res_blocks < 0:
            raise ValueError(f"res_blocks must be >= 0, got {self.res_blocks}")
        if self.norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {self.norm!r}")
        if self.merge_kernel not in (1, 3):
            raise ValueError(f"merge_kernel must be 1 or 3, got {self.merge_kernel}")

    @property
    def depth(self) -> int:
        """Number of 2x downsamplings."""
        return len(self.widths) - 1

    @property
    def size_multiple(self) -> int:
        """UV sizes must be multiples of this (every level halves the resolution)."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a checkpoint from another architecture)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {unknown}")
        return cls(**data)


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvNormAct(nn.Sequential):
    """Conv (3x3 unless told), normalisation, LeakyReLU; no conv bias under a norm (it would cancel it)."""

    def __init__(self, cin: int, cout: int, norm: Norm, stride: int = 1, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=norm == "none"),
            _norm(norm, cout),
            nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True),
        )


class ResBlock(nn.Module):
    """conv-norm-act-conv-norm plus the identity, then the activation (He et al. 2016)."""

    def __init__(self, channels: int, norm: Norm) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, norm),
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            _norm(norm, channels),
        )
        self.act = nn.LeakyReLU(_NEGATIVE_SLOPE, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


def _res_blocks(channels: int, count: int, norm: Norm) -> nn.Module:
    return nn.Sequential(*(ResBlock(channels, norm) for _ in range(count))) if count else nn.Identity()


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, Attention U-Net): the coarser decoder feature ``gate``
    decides, per texel, how much of the encoder feature ``skip`` reaches the decoder.

    ``q = relu(theta(skip) + phi(gate))`` at the gate's resolution (theta is a 2x2 stride-2 conv),
    ``a = sigmoid(psi(q))`` upsampled bilinearly to the skip's resolution, output ``skip * a``.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gate_channels, inter_channels, 1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def attention(self, skip: Tensor, gate: Tensor) -> Tensor:
        """(N, 1, H, W) attention map in (0, 1) at the skip's resolution."""
        q = F.relu(self.theta(skip) + self.phi(gate))
        return F.interpolate(
            torch.sigmoid(self.psi(q)), scale_factor=2.0, mode="bilinear", align_corners=False
        )

    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        return skip * self.attention(skip, gate)


class ScalarFusion(nn.Module):
    """``alpha * gated + beta * first``: two trainable scalars weigh the second U-Net's gated skip against the
    first U-Net's decoder feature at the same level (both start at 1, a plain sum)."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(1.0))

    def forward(self, gated: Tensor, first: Tensor) -> Tensor:
        return self.alpha * gated + self.beta * first


class _Up(nn.Module):
    """1x1 conv to the finer level's width at the coarse level (cheap), then 2x bilinear upsampling.
    No bias under a norm: the merge conv's norm would cancel it."""

    def __init__(self, cin: int, cout: int, norm: Norm) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=norm == "none")

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.conv(x), scale_factor=2.0, mode="bilinear", align_corners=False)


class UNet(nn.Module):
    """Residual U-Net with (optionally) attention-gated skips and (optionally) scalar fusion of another
    U-Net's decoder features. ``forward`` returns the raw tanh image and the decoder features per level."""

    def __init__(self, in_channels: int, config: GeneratorConfig, fuse: bool = False) -> None:
        super().__init__()
        widths, norm, depth = config.widths, config.norm, config.depth
        blocks = [config.res_blocks if level or config.full_res_blocks else 0 for level in range(depth + 1)]
        self.depth = depth
        self.stem = ConvNormAct(in_channels, widths[0], norm)
        self.encoder = nn.ModuleList([_res_blocks(widths[0], blocks[0], norm)])
        self.down = nn.ModuleList()
        for level in range(1, depth + 1):
            self.down.append(ConvNormAct(widths[level - 1], widths[level], norm, stride=2))
            self.encoder.append(_res_blocks(widths[level], blocks[level], norm))
        # Decoder modules are indexed by level (0..depth-1); the bottleneck is encoder[depth].
        self.up = nn.ModuleList(_Up(widths[level + 1], widths[level], norm) for level in range(depth))
        self.gates = (
            nn.ModuleList(
                AttentionGate(widths[level], widths[level + 1], max(widths[level] // 2, 8))
                for level in range(depth)
            )
            if config.attention
            else None
        )
        self.fusions = nn.ModuleList(ScalarFusion() for _ in range(depth)) if fuse else None
        self.merge = nn.ModuleList(
            ConvNormAct(2 * widths[level], widths[level], norm, kernel=config.merge_kernel)
            for level in range(depth)
        )
        self.decoder = nn.ModuleList(
            _res_blocks(widths[level], blocks[level], norm) for level in range(depth)
        )
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, x: Tensor, first_decoder: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        if (self.fusions is None) != (first_decoder is None):
            raise ValueError("first_decoder features are required exactly when the U-Net fuses them")
        skips = [self.encoder[0](self.stem(x))]
        for level in range(1, self.depth + 1):
            skips.append(self.encoder[level](self.down[level - 1](skips[-1])))
        feature = skips[-1]
        decoded: list[Tensor] = []  # from the coarsest decoder level to level 0, reversed at the end
        for level in reversed(range(self.depth)):
            skip = skips[level] if self.gates is None else self.gates[level](skips[level], feature)
            if self.fusions is not None and first_decoder is not None:
                skip = self.fusions[level](skip, first_decoder[level])
            feature = torch.cat([self.up[level](feature), skip], dim=1)
            feature = self.decoder[level](self.merge[level](feature))
            decoded.append(feature)
        return torch.tanh(self.head(feature)), decoded[::-1]


def composite(raw: Tensor, x: Tensor) -> Tensor:
    """Known texels (mask channel 3 of the input) take the input's RGB exactly; the rest take ``raw``."""
    return torch.where(x[:, 3:4] > 0.5, x[:, :3], raw)


class AttentionResCUNet(nn.Module):
    """Generator: ``forward(x) -> (output, aux)``, both (N, 3, H, W) in [-1, 1] and composited.

    ``aux`` is the first U-Net's output (supervised by the auxiliary loss); with ``coupled=False`` there is
    one U-Net and ``aux`` is ``output``.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        self.first = UNet(INPUT_CHANNELS, self.config)
        self.second = (
            UNet(INPUT_CHANNELS + 3, self.config, fuse=self.config.scalar_fusion)
            if self.config.coupled
            else None
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):  # checks would only warn there
            self._check_input(x)
        raw, first_decoder = self.first(x)
        aux = composite(raw, x)
        if self.second is None:
            return aux, aux
        raw, _ = self.second(torch.cat([x, aux], dim=1), first_decoder if self.config.scalar_fusion else None)
        return composite(raw, x), aux

    def _check_input(self, x: Tensor) -> None:
        multiple = self.config.size_multiple
        if x.ndim != 4 or x.shape[1] != INPUT_CHANNELS:
            raise ValueError(f"expected (N, {INPUT_CHANNELS}, H, W) input, got {tuple(x.shape)}")
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(
                f"H and W must be multiples of {multiple} (depth {self.config.depth}), got {x.shape}"
            )
