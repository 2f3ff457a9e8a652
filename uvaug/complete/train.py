"""Training the completion GAN on self-supervised pairs (``uvaug train``): data, loop, metrics, checkpoints.

Data: a fit output folder (:func:`prepare_training_data` fits a photo folder first). Every near-frontal face
gives one pair per epoch (:class:`~uvaug.complete.pairs.SelfOcclusionPairs`: the face's own UV map with the
texels a random head turn would hide removed), new poses every epoch; the validation pairs are drawn once from
a fixed seed (:data:`VALIDATION_SEED`, whatever the run's ``seed``), so every epoch and every run is scored
on the same holes.

Loop: Adam for the generator and, after ``adversarial_warmup_epochs`` epochs of reconstruction only (an
untrained generator gives the discriminators nothing worth telling apart, and the early GAN gradients only
add noise), for the two discriminators, with the :mod:`uvaug.complete.losses` terms. Every epoch ends with a
validation pass, ``last.pt`` (atomic; what ``resume`` continues from), ``best.pt`` when the validation PSNR
improved, and ``metrics.csv`` / ``metrics.json``; per-step losses go to ``steps.csv``. The run ends with
``model.onnx`` exported from ``best.pt``.

Validation scores the texels a pair hides but the photo showed: ``target known & not input known`` (the
*region*). Maps are compared as the shipped pipeline outputs them (uint8, known texels copied back) at the
training size, both made black outside the target's known texels so that texels no photo showed never count.
Per map, PSNR is over the region's texels and channels (peak 255); SSIM is skimage's SSIM map (Gaussian
window, sigma 1.5, Wang et al.'s constants, per channel) averaged over the region's texels and channels. The
epoch's figures are the means over maps. Two baselines are scored on the same pairs once per run: the mean
colour of the input's known texels, and :mod:`uvaug.complete.symmetric` when it imports.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor
from torch.utils.data import DataLoader

from uvaug.complete.discriminators import DiscriminatorConfig, UVDiscriminators
from uvaug.complete.export import export_onnx, load_checkpoint, save_checkpoint
from uvaug.complete.losses import LossConfig, discriminator_loss, generator_loss
from uvaug.complete.network import AttentionResCUNet, GeneratorConfig
from uvaug.complete.pairs import FRONTAL_PITCH, FRONTAL_YAW, FaceSample, SelfOcclusionPairs, training_faces
from uvaug.complete.tensors import known_mask, to_network_input
from uvaug.io import MANIFEST_NAME, InputError, discover_inputs, read_manifest, write_text_atomic
from uvaug.runner import Record, available_cores

__all__ = [
    "DEVICES",
    "VALIDATION_SEED",
    "WIDTH_PRESETS",
    "Split",
    "TrainConfig",
    "TrainError",
    "TrainEvent",
    "check_disjoint",
    "export_checkpoint",
    "hidden_and_whole_scores",
    "holdout_names",
    "is_fit_output",
    "prepare_training_data",
    "read_name_list",
    "region_scores",
    "resize_rgba",
    "resolve_device",
    "resume_config",
    "split_names",
    "train",
]

DEVICES = ("auto", "cpu", "cuda")
#: Seed of the validation pairs: fixed, so runs with different ``seed`` are scored on the same holes.
VALIDATION_SEED = 20_170_105
#: Without a validation list, every HOLDOUT_EVERY-th face (sorted by input) is held out.
HOLDOUT_EVERY = 20
#: Generator widths by name (``--width``); "default" is :class:`GeneratorConfig`'s own.
WIDTH_PRESETS: dict[str, tuple[int, ...]] = {
    "tiny": (8, 8, 16, 32),
    "small": (16, 16, 32, 64, 128),
    "default": GeneratorConfig().widths,
    "wide": (32, 32, 64, 128, 256, 512),
}

LAST, BEST, MODEL = "last.pt", "best.pt", "model.onnx"
METRICS_CSV, METRICS_JSON, STEPS_CSV, CONFIG_JSON = "metrics.csv", "metrics.json", "steps.csv", "config.json"
TRAIN_LIST, VAL_LIST = "train.txt", "val.txt"
_PSNR_CAP_MSE = 255.0**2 * 1e-10  # an exact match scores 100 dB instead of infinity
_NO_KNOWN_GREY = 128

#: Per-step losses (``steps.csv`` and the epoch means); the adversarial and D terms are empty before warm-up.
LOSS_FIELDS = (
    "loss_g",
    "reconstruction",
    "auxiliary",
    "adversarial_global",
    "adversarial_local",
    "total_variation",
    "loss_d",
    "d_global",
    "d_local",
)
#: ``seconds``: wall time incl. data wait; ``lr``: the generator learning rate the step used.
STEP_FIELDS = ("epoch", "step", "global_step", "seconds", "lr", *LOSS_FIELDS)
BASELINES = ("mean_fill", "symmetric")
ROW_FIELDS = (
    "epoch",
    "gan",
    "steps",
    "samples",
    "seconds",
    "train_seconds",
    "samples_per_s",
    *LOSS_FIELDS,
    "val_psnr",
    "val_ssim",
    "val_maps",
    *(f"{name}_{metric}" for name in BASELINES for metric in ("psnr", "ssim")),
)


class TrainError(ValueError):
    """A training run that cannot start or continue as asked (one-line message for the command line)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in ``config.json`` and in every checkpoint.

    ``epochs`` counts from the run's start (a resumed run trains up to it). ``steps_per_epoch`` caps an epoch
    (a random subset of the training faces each epoch, new every epoch) so that long data sets still give
    regular validation and checkpoints. ``max_train`` / ``max_val`` keep a seeded random subset of the faces.
    ``threads`` is torch's intra-op thread count on the CPU (None: the cores this process may use).
    ``lr_decay_epochs``: the last that many epochs anneal both learning rates to zero along a half cosine,
    step by step (0: constant rates); resuming with a larger ``epochs`` and a decay adds a fine-tuning phase.
    """

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    uv_size: int = 256
    batch_size: int = 8
    epochs: int = 10
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    max_train: int | None = None
    max_val: int | None = None
    frontal: tuple[float, float] = (FRONTAL_YAW, FRONTAL_PITCH)
    adversarial_warmup_epochs: int = 1
    steps_per_epoch: int | None = None
    threads: int | None = None
    lr_decay_epochs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "frontal", tuple(float(v) for v in self.frontal))
        problems = [
            f"{name} must be >= {low}, got {getattr(self, name)}"
            for name, low in (
                ("batch_size", 1),
                ("epochs", 1),
                ("workers", 0),
                ("adversarial_warmup_epochs", 0),
                ("max_train", 1),
                ("max_val", 1),
                ("steps_per_epoch", 1),
                ("threads", 1),
                ("lr_decay_epochs", 0),
            )
            if getattr(self, name) is not None and getattr(self, name) < low
        ]
        if self.lr_generator <= 0 or self.lr_discriminator <= 0:
            problems.append("learning rates must be positive")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if len(self.frontal) != 2 or min(self.frontal) <= 0:
            problems.append(f"frontal must be two positive angles (yaw, pitch), got {self.frontal}")
        multiple = self.generator.size_multiple
        if self.uv_size < multiple or self.uv_size % multiple:
            problems.append(
                f"uv_size {self.uv_size} must be a multiple of {multiple} (generator depth "
                f"{self.generator.depth})"
            )
        elif self.loss.adversarial and min(_patch_sides(self.uv_size, self.discriminator)) < 1:
            problems.append(
                f"uv_size {self.uv_size} is too small for the discriminators' downsamplings; use a larger "
                "size, fewer downsamplings or no GAN terms"
            )
        if self.lr_decay_epochs > self.epochs:
            problems.append(f"lr_decay_epochs {self.lr_decay_epochs} exceeds epochs {self.epochs}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def adversarial(self) -> bool:
        return self.loss.adversarial

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists, not tuples, so that it round-trips through JSON unchanged)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a config from another version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {unknown}")
        values = dict(data)
        nested = (
            ("generator", GeneratorConfig),
            ("discriminator", DiscriminatorConfig),
            ("loss", LossConfig),
        )
        for name, kind in nested:
            if name in values and isinstance(values[name], Mapping):
                values[name] = kind.from_dict(dict(values[name]))
        return cls(**values)


def _patch_sides(size: int, config: DiscriminatorConfig) -> tuple[int, int]:
    """Output sides of the global and the local PatchGAN for ``size`` maps (4x4 convs, padding 1)."""
    from uvaug.complete.discriminators import local_slices

    rows, _ = local_slices(size, size)

    def side(s: int, downsamplings: int) -> int:
        for _ in range(downsamplings):
            s = (s - 2) // 2 + 1  # stride 2
        return s - 2  # two stride-1 convs: one wider layer, then the logits

    return side(size, config.global_downsamplings), side(rows.stop - rows.start, config.local_downsamplings)


@dataclass(frozen=True)
class TrainEvent:
    """What :func:`train` reports to ``on_progress``.

    ``kind``: ``start`` (after setup; ``epoch`` is the first epoch to train, ``steps`` the steps per epoch,
    ``row`` the face counts, device, resumed epoch and baseline scores),
    ``step`` (after each optimisation step, with its ``losses``), ``validate`` (the validation pass begins),
    ``epoch`` (an epoch is done and saved; ``row`` is its metrics row) and ``export`` (writing model.onnx).
    """

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    losses: Mapping[str, float] = field(default_factory=dict)
    samples_per_second: float = 0.0
    row: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------------------------------- data


def is_fit_output(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` holds a fit ``manifest.jsonl`` with at least one fitted face."""
    manifest = Path(folder) / MANIFEST_NAME
    return manifest.is_file() and any(rec.get("fit") for rec in read_manifest(manifest))


def prepare_training_data(
    data: str | os.PathLike[str],
    work: str | os.PathLike[str],
    workers: int = 1,
    *,
    options: Any = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[list[Record]], None] | None = None,
) -> Path:
    """The fit output folder to train from: ``data`` itself if it is one, else ``data`` (a photo folder, an
    image or a list file) fitted into ``work / "fit"`` with :func:`uvaug.fit.run.fit_inputs`.

    The fit resumes like ``uvaug fit`` (photos finished by an earlier call are skipped), so a restarted
    training run pays for fitting once. ``options`` is a :class:`uvaug.fit.fitter.FitOptions`;
    ``on_start``/``on_result`` are passed to ``fit_inputs`` for progress.
    """
    from uvaug.fit.run import fit_inputs

    source, fit_dir = Path(data), Path(work) / "fit"
    if source.is_dir() and is_fit_output(source):
        return source
    try:
        items = discover_inputs(source, exclude=[work])
    except InputError as exc:
        raise TrainError(str(exc)) from None
    if not items:
        raise TrainError(f"no images in {source}, and it is not a fit output (no {MANIFEST_NAME} with fits)")
    fit_inputs(items, fit_dir, options=options, workers=workers, on_start=on_start, on_result=on_result)
    return fit_dir


def read_name_list(path: str | os.PathLike[str]) -> list[str]:
    """Input names, one per line (as the fit manifest's ``input``); blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainError(f"cannot read name list {path}: {exc}") from None
    names = [line.strip() for line in text.splitlines()]
    return [name for name in names if name and not name.startswith("#")]


def holdout_names(names: Sequence[str], every: int = HOLDOUT_EVERY) -> list[str]:
    """Every ``every``-th name in sorted order (positions every-1, 2*every-1, ...: UTKFace's val.txt rule);
    with fewer than ``every`` names, the last one, so that a small data set still has a validation face."""
    ordered = sorted(set(names))
    if len(ordered) < 2:
        raise TrainError(f"need at least 2 faces to hold one out for validation, found {len(ordered)}")
    return ordered[every - 1 :: every] or ordered[-1:]


def check_disjoint(train_names: Sequence[str], val_names: Sequence[str]) -> None:
    """Refuse a validation set that shares inputs with the training set (its scores would be meaningless)."""
    both = set(train_names) & set(val_names)
    if both:
        raise TrainError(
            f"{len(both)} input(s) are in both the training and the validation set (e.g. {min(both)!r}); "
            "validation faces must be held out of training"
        )


@dataclass(frozen=True)
class Split:
    """Training and validation input names, and a sentence saying where they came from."""

    train: list[str]
    val: list[str]
    note: str


def split_names(
    fit_dir: str | os.PathLike[str],
    train_list: str | os.PathLike[str] | None = None,
    val_list: str | os.PathLike[str] | None = None,
    frontal: tuple[float, float] = (FRONTAL_YAW, FRONTAL_PITCH),
) -> Split:
    """The training and validation input names of a fit folder.

    With ``val_list``, those names validate and ``train_list`` (or every other usable face) trains; the two
    must not overlap. Without it, every 20th usable face (sorted by input) is held out, and taken out of
    ``train_list`` if that names it.
    """
    available = sorted({face.input for face in training_faces(Path(fit_dir), frontal=frontal)})
    if not available:
        raise TrainError(
            f"no usable faces in {fit_dir}: none fitted within yaw/pitch +-{frontal[0]:g}/{frontal[1]:g}"
        )
    listed = read_name_list(train_list) if train_list is not None else None
    if val_list is not None:
        val = read_name_list(val_list)
        train = listed if listed is not None else [n for n in available if n not in set(val)]
        check_disjoint(train, val)
        return Split(train, val, f"validation: the {len(val)} inputs listed in {val_list}")
    val = holdout_names(available)
    held = set(val)
    train = [n for n in (listed if listed is not None else available) if n not in held]
    faces = f"{len(val)} face{'s' if len(val) != 1 else ''}"
    note = f"no --val-list: holding out every {HOLDOUT_EVERY}th face sorted by input ({faces})"
    if listed is not None and len(train) < len(listed):
        note += f", {len(listed) - len(train)} of them taken out of {train_list}"
    return Split(train, val, note)


def _subset(faces: list[FaceSample], limit: int | None, seed: int) -> list[FaceSample]:
    """A seeded random subset of ``limit`` faces, in input order (all of them if there are not more)."""
    if limit is None or len(faces) <= limit:
        return faces
    keep = np.random.default_rng(seed).choice(len(faces), limit, replace=False)
    return [faces[i] for i in sorted(keep)]


def _select(
    fit_dir: Path, names: Sequence[str], frontal: tuple[float, float], limit: int | None, seed: int, what: str
) -> list[FaceSample]:
    faces = _subset(training_faces(fit_dir, names=names, frontal=frontal), limit, seed)
    if not faces:
        example = f" (e.g. {sorted(names)[0]!r})" if names else ""
        raise TrainError(
            f"no {what} faces: none of the {len(names)} {what} names{example} is a face in {fit_dir} fitted "
            f"within yaw/pitch +-{frontal[0]:g}/{frontal[1]:g} (names are the fit manifest's 'input')"
        )
    return faces


def resize_rgba(rgba: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGBA UV map (H, W, 4) uint8 to (size, size, 4), keeping 'known' meaningful.

    RGB is averaged over known texels only (premultiplied by the mask; area averaging when shrinking), so
    the black of unknown texels never bleeds into known colours; a texel is known where at least half of its
    footprint was. Unknown texels come out black with alpha 0, as the fit stage writes them.
    """
    if rgba.shape[0] == size and rgba.shape[1] == size:
        return rgba
    interpolation = cv2.INTER_AREA if size < rgba.shape[0] else cv2.INTER_LINEAR
    known = known_mask(rgba[None])[0].astype(np.float32)
    rgb = rgba[..., :3].astype(np.float32) * known[..., None]
    weight = cv2.resize(known, (size, size), interpolation=interpolation)
    colour = cv2.resize(rgb, (size, size), interpolation=interpolation)
    keep = weight >= 0.5
    out = np.zeros((size, size, 4), np.uint8)
    out[keep, :3] = np.clip(np.rint(colour[keep] / weight[keep, None]), 0, 255)
    out[keep, 3] = 255
    return out


class _KeyedPairs:
    """Pairs indexed by ``(epoch, index)``: persistent loader workers hold their own copy of the data set, so
    the epoch travels with every key instead of through ``set_epoch`` on the parent's copy."""

    def __init__(self, pairs: SelfOcclusionPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        epoch, index = key
        self.pairs.set_epoch(epoch)
        return self.pairs[index]


class _EpochBatches:
    """Batches of ``(epoch, index)`` keys: a fresh seeded order every epoch (the same on a resumed run), cut
    to ``max_steps`` batches; in index order without shuffling (validation)."""

    def __init__(self, count: int, batch_size: int, seed: int, shuffle: bool, max_steps: int | None) -> None:
        self.count, self.batch_size, self.seed = count, batch_size, seed
        self.shuffle, self.max_steps = shuffle, max_steps
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        steps = math.ceil(self.count / self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = (
            np.random.default_rng((self.seed, self.epoch, 0x5EED)).permutation(self.count)
            if self.shuffle
            else np.arange(self.count)
        )
        for step in range(len(self)):
            chunk = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield [(self.epoch, int(i)) for i in chunk]


@dataclass
class _Batch:
    """A collated batch: network tensors plus the uint8 maps that validation scores."""

    x: Tensor  # (N, 8, S, S) network input
    target: Tensor  # (N, 3, S, S) in [-1, 1]
    known: Tensor  # (N, 1, S, S) target-known mask
    source_maps: np.ndarray  # (N, S, S, 4) uint8
    target_maps: np.ndarray  # (N, S, S, 4) uint8

    def pin_memory(self) -> _Batch:
        self.x, self.target, self.known = (
            self.x.pin_memory(),
            self.target.pin_memory(),
            self.known.pin_memory(),
        )
        return self


def _collate(pairs: list[tuple[np.ndarray, np.ndarray]], size: int) -> _Batch:
    sources, targets = [], []
    for source, target in pairs:
        target = resize_rgba(target, size)
        source = resize_rgba(source, size)
        shown = source[..., 3] > 0
        source[shown] = target[shown]  # known input texels are exactly the target's, whatever the resize did
        sources.append(source)
        targets.append(target)
    source_maps, target_maps = np.stack(sources), np.stack(targets)
    rgb = target_maps[..., :3].transpose(0, 3, 1, 2).astype(np.float32) * (2.0 / 255.0) - 1.0
    known = known_mask(target_maps).astype(np.float32)[:, None]
    return _Batch(
        torch.from_numpy(to_network_input(source_maps)),
        torch.from_numpy(np.ascontiguousarray(rgb)),
        torch.from_numpy(known),
        source_maps,
        target_maps,
    )


def _seed_worker(worker_id: int) -> None:
    """Loader workers: seed NumPy and ``random`` from torch's per-worker seed (forked copies would otherwise
    share one NumPy state) and keep each to one thread (they are the data side of a few cores)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _loader(
    dataset: _KeyedPairs, batches: _EpochBatches, config: TrainConfig, device: torch.device
) -> DataLoader:
    extra: dict[str, Any] = {}
    if config.workers > 0:
        # forkserver: the parent holds threads (progress display, torch's pool) that make a plain fork unsafe.
        extra = {
            "num_workers": config.workers,
            "multiprocessing_context": "forkserver",
            "persistent_workers": True,
            "worker_init_fn": _seed_worker,
        }
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=partial(_collate, size=config.uv_size),
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),
        **extra,
    )


# ---------------------------------------------------------------------------------------------- metrics


def region_scores(
    completed_rgb: np.ndarray, source: np.ndarray, target: np.ndarray
) -> tuple[float, float] | None:
    """(PSNR dB, SSIM) of one completed map on the texels ``source`` hides and ``target`` knows, or None if
    there are none. ``completed_rgb`` (S, S, 3) uint8; ``source`` and ``target`` (S, S, 4) uint8 RGBA.

    Both maps are black outside the target's known texels (nothing there is scored, and SSIM windows that
    reach it see the same on both sides); see the module docstring for the definitions.
    """
    seen = known_mask(target[None])[0]
    return _scores_over(completed_rgb, target, seen, [seen & ~known_mask(source[None])[0]])[0]


def hidden_and_whole_scores(
    completed_rgb: np.ndarray, source: np.ndarray, target: np.ndarray
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """:func:`region_scores` and the same scores over every texel ``target`` knows (the whole map, known
    texels included), from one SSIM map."""
    seen = known_mask(target[None])[0]
    return tuple(_scores_over(completed_rgb, target, seen, [seen & ~known_mask(source[None])[0], seen]))


def _scores_over(
    completed_rgb: np.ndarray, target: np.ndarray, seen: np.ndarray, regions: list[np.ndarray]
) -> list[tuple[float, float] | None]:
    """(PSNR dB, SSIM) over each region (None where it is empty), both maps blacked out beyond ``seen``."""
    if not any(region.any() for region in regions):
        return [None] * len(regions)
    truth = np.where(seen[..., None], target[..., :3], 0).astype(np.float64)
    guess = np.where(seen[..., None], completed_rgb, 0).astype(np.float64)
    _, ssim_map = structural_similarity(
        truth,
        guess,
        channel_axis=-1,
        data_range=255.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    scores: list[tuple[float, float] | None] = []
    for region in regions:
        if not region.any():
            scores.append(None)
            continue
        mse = float(np.mean((guess[region] - truth[region]) ** 2))
        scores.append((10.0 * math.log10(255.0**2 / max(mse, _PSNR_CAP_MSE)), float(ssim_map[region].mean())))
    return scores


def _mean_fill(source: np.ndarray) -> np.ndarray:
    """The trivial completion: every unknown texel takes the mean colour of the map's known texels."""
    out = source[..., :3].copy()
    for i in range(len(source)):
        known = known_mask(source[i : i + 1])[0]
        colour = source[i][known, :3].mean(0) if known.any() else _NO_KNOWN_GREY
        out[i][~known] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out


def _symmetric_fill() -> Callable[[np.ndarray], np.ndarray] | None:
    """The symmetric baseline's completion if :mod:`uvaug.complete.symmetric` imports, else None."""
    try:
        from uvaug.complete.symmetric import complete_symmetric
    except Exception:  # optional: a missing or broken baseline must not stop training
        return None
    return lambda source: complete_symmetric(source)[..., :3]


def _evaluate(
    loader: DataLoader, completers: Mapping[str, Callable[[_Batch], np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Mean region PSNR/SSIM per completer over the validation pairs (maps with no region are skipped)."""
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in completers}
    for batch in loader:
        for name, complete in completers.items():
            rgb = complete(batch)
            for i in range(len(rgb)):
                score = region_scores(rgb[i], batch.source_maps[i], batch.target_maps[i])
                if score is not None:
                    scores[name].append(score)
    return {
        name: {
            "psnr": float(np.mean([s[0] for s in values])) if values else math.nan,
            "ssim": float(np.mean([s[1] for s in values])) if values else math.nan,
            "maps": len(values),
        }
        for name, values in scores.items()
    }


def _model_completer(generator: AttentionResCUNet, device: torch.device) -> Callable[[_Batch], np.ndarray]:
    from uvaug.complete.seams import blend_output_seams
    from uvaug.complete.tensors import from_network_output

    def complete(batch: _Batch) -> np.ndarray:
        """As ``uvaug complete`` does it: the network's colours, their seams blended."""
        with torch.inference_mode():
            output, _ = generator(batch.x.to(device, non_blocking=True))
        colours = blend_output_seams(output.float().cpu().numpy(), batch.source_maps)
        return from_network_output(colours, batch.source_maps)[..., :3]

    return complete


# ---------------------------------------------------------------------------------------------- training


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA if torch has a usable GPU, else the CPU; ``cuda`` without one is an error."""
    if name not in DEVICES:
        raise TrainError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        build = "has no CUDA support" if torch.version.cuda is None else "finds no usable GPU"
        raise TrainError(
            f"device cuda asked for, but this torch ({torch.__version__}) {build}; use --device cpu"
        )
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def resume_config(run_dir: str | os.PathLike[str]) -> TrainConfig | None:
    """The configuration stored in ``run_dir/last.pt``, or None when there is no checkpoint to resume."""
    last = Path(run_dir) / LAST
    if not last.is_file():
        return None
    checkpoint = _load(last)
    if "train_config" not in checkpoint:
        raise TrainError(f"{last} has no training configuration; it cannot be resumed")
    return TrainConfig.from_dict(checkpoint["train_config"])


def _load(path: Path) -> dict[str, Any]:
    try:
        return load_checkpoint(path)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise TrainError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # pickle's UnpicklingError and friends: the file is simply not a checkpoint
        raise TrainError(f"{path} is not a uvaug completion checkpoint ({type(exc).__name__})") from None


def _digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def _check_resumable(checkpoint: Mapping[str, Any], config: TrainConfig, val_digest: str, path: Path) -> None:
    """Refuse to resume when the networks, the map size or the validation faces differ from the run's."""
    saved_g = GeneratorConfig.from_dict(checkpoint["config"])
    problems = [
        f"generator {name} {getattr(saved_g, name)} -> {getattr(config.generator, name)}"
        for name in (f.name for f in dataclasses.fields(GeneratorConfig))
        if getattr(saved_g, name) != getattr(config.generator, name)
    ]
    if config.adversarial and "discriminator_config" in checkpoint:
        saved_d = DiscriminatorConfig.from_dict(checkpoint["discriminator_config"])
        problems += [
            f"discriminator {name} {getattr(saved_d, name)} -> {getattr(config.discriminator, name)}"
            for name in (f.name for f in dataclasses.fields(DiscriminatorConfig))
            if getattr(saved_d, name) != getattr(config.discriminator, name)
        ]
    saved = checkpoint.get("train_config", {})
    if saved.get("uv_size", config.uv_size) != config.uv_size:
        problems.append(f"uv_size {saved['uv_size']} -> {config.uv_size}")
    if checkpoint.get("val_digest", val_digest) != val_digest:
        problems.append("the validation faces differ (pass the run's own val.txt)")
    if problems:
        raise TrainError(
            f"cannot resume {path}: {'; '.join(problems)}; use the same settings or a new run folder"
        )


def lr_factor(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Share of the base learning rates used by ``step`` (1-based) of ``epoch`` (1-based).

    1 until the last ``lr_decay_epochs`` epochs, then a half cosine that reaches 0 after the run's final step.
    A function of the position in the run only, so a resumed run follows the same schedule.
    """
    if config.lr_decay_epochs == 0:
        return 1.0
    done = (epoch - 1) + (step - 1) / steps_per_epoch  # epochs completed before this step
    into_decay = done - (config.epochs - config.lr_decay_epochs)
    if into_decay <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(into_decay / config.lr_decay_epochs, 1.0)))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _write_rows(path: Path, fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    write_text_atomic(path, buffer.getvalue())


def _read_step_rows(path: Path, last_epoch: int) -> list[dict[str, str]]:
    """Rows of ``steps.csv`` up to ``last_epoch`` (a killed epoch's steps are redone on resume)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [
            row
            for row in csv.DictReader(f)
            if row.get("epoch", "").isdigit() and int(row["epoch"]) <= last_epoch
        ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def train(
    config: TrainConfig,
    fit_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    train_names: Sequence[str],
    val_names: Sequence[str],
    resume: bool = False,
    on_progress: Callable[[TrainEvent], None] | None = None,
) -> dict[str, Any]:
    """Train the completion GAN on the faces of ``fit_dir`` named by ``train_names``, validate on
    ``val_names`` (the fit manifest's ``input``), write the run into ``run_dir`` and export its model.

    ``resume``: continue from ``run_dir/last.pt`` (networks, optimisers, epoch, metrics history) up to
    ``config.epochs``; without a checkpoint there, a new run starts. A run folder that already holds a run is
    refused without ``resume``. Returns a summary: ``epochs`` (the metrics rows), ``best_epoch``,
    ``best_val_psnr``/``best_val_ssim``, ``baselines``, ``resumed_from`` (an epoch, or None), counts, the
    device and the paths written. Raises :class:`TrainError` for setups that cannot run.
    """
    fit_dir, run_dir = Path(fit_dir), Path(run_dir)
    emit = on_progress or (lambda _event: None)
    check_disjoint(train_names, val_names)
    device = resolve_device(config.device)
    train_faces = _select(fit_dir, train_names, config.frontal, config.max_train, config.seed, "training")
    val_faces = _select(fit_dir, val_names, config.frontal, config.max_val, VALIDATION_SEED, "validation")
    val_digest = _digest([f.input for f in val_faces])

    last_path = run_dir / LAST
    checkpoint: dict[str, Any] | None = None
    if last_path.is_file():
        if not resume:
            raise TrainError(
                f"{run_dir} already holds a training run ({LAST}); pass --resume to continue it or choose "
                "another folder"
            )
        checkpoint = _load(last_path)
        _check_resumable(checkpoint, config, val_digest, last_path)
    run_dir.mkdir(parents=True, exist_ok=True)

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.threads or available_cores())
    else:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    try:
        return _run(config, fit_dir, run_dir, train_faces, val_faces, val_digest, checkpoint, device, emit)
    finally:
        torch.set_num_threads(threads)


def _run(
    config: TrainConfig,
    fit_dir: Path,
    run_dir: Path,
    train_faces: list[FaceSample],
    val_faces: list[FaceSample],
    val_digest: str,
    checkpoint: dict[str, Any] | None,
    device: torch.device,
    emit: Callable[[TrainEvent], None],
) -> dict[str, Any]:
    started = time.perf_counter()
    torch.manual_seed(config.seed)  # the initial weights
    generator = AttentionResCUNet(config.generator).to(device)
    discriminators = UVDiscriminators(config.discriminator).to(device) if config.adversarial else None
    adam = {"betas": (0.5, 0.999)}
    optimizers: dict[str, torch.optim.Optimizer] = {
        "generator": torch.optim.Adam(generator.parameters(), lr=config.lr_generator, **adam)
    }
    if discriminators is not None:
        optimizers["discriminators"] = torch.optim.Adam(
            discriminators.parameters(), lr=config.lr_discriminator, **adam
        )

    start_epoch, history, baselines = 0, [], None
    if checkpoint is not None:
        start_epoch = int(checkpoint["epoch"])
        generator.load_state_dict(checkpoint["generator"])
        if discriminators is not None and "discriminators" in checkpoint:
            discriminators.load_state_dict(checkpoint["discriminators"])
        for name, optimizer in optimizers.items():
            if name in checkpoint.get("optimizers", {}) and (
                name != "discriminators" or "discriminators" in checkpoint
            ):
                optimizer.load_state_dict(checkpoint["optimizers"][name])
        history = [dict(row) for row in checkpoint.get("history", []) if int(row["epoch"]) <= start_epoch]
        baselines = checkpoint.get("baselines")

    train_pairs = SelfOcclusionPairs(train_faces, seed=config.seed)
    val_pairs = SelfOcclusionPairs(val_faces, seed=VALIDATION_SEED)  # epoch 0, always
    train_batches = _EpochBatches(
        len(train_faces), config.batch_size, config.seed, True, config.steps_per_epoch
    )
    val_batches = _EpochBatches(len(val_faces), config.batch_size, VALIDATION_SEED, False, None)
    train_loader = _loader(_KeyedPairs(train_pairs), train_batches, config, device)
    val_loader = _loader(_KeyedPairs(val_pairs), val_batches, config, device)

    write_text_atomic(run_dir / TRAIN_LIST, "".join(f"{f.input}\n" for f in train_faces))
    write_text_atomic(run_dir / VAL_LIST, "".join(f"{f.input}\n" for f in val_faces))
    info = {
        "config": config.to_dict(),
        "fit_dir": str(fit_dir.resolve()),
        "train_faces": len(train_faces),
        "val_faces": len(val_faces),
        "validation_seed": VALIDATION_SEED,
        "device": str(device),
        "torch": torch.__version__,
    }
    write_text_atomic(run_dir / CONFIG_JSON, json.dumps(info, indent=2) + "\n")

    if baselines is None:
        completers: dict[str, Callable[[_Batch], np.ndarray]] = {
            "mean_fill": lambda batch: _mean_fill(batch.source_maps)
        }
        symmetric = _symmetric_fill()
        if symmetric is not None:
            completers["symmetric"] = lambda batch: symmetric(batch.source_maps)
        baselines = {
            name: {k: _finite(v) for k, v in scores.items()}
            for name, scores in _evaluate(val_loader, completers).items()
        }

    steps_path = run_dir / STEPS_CSV
    _write_rows(steps_path, STEP_FIELDS, _read_step_rows(steps_path, start_epoch) if checkpoint else [])
    best = max(
        (row for row in history if row.get("val_psnr") is not None),
        key=lambda row: row["val_psnr"],
        default=None,
    )
    steps_per_epoch = len(train_batches)
    setup = {
        "train_faces": len(train_faces),
        "val_faces": len(val_faces),
        "device": str(device),
        "resumed_from": start_epoch if checkpoint is not None else None,
        "baselines": baselines,
    }
    emit(TrainEvent("start", start_epoch + 1, config.epochs, steps=steps_per_epoch, row=setup))

    with open(steps_path, "a", newline="", encoding="utf-8") as steps_file:
        step_writer = csv.DictWriter(steps_file, fieldnames=list(STEP_FIELDS), lineterminator="\n")
        for epoch in range(start_epoch + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            gan = discriminators is not None and epoch > config.adversarial_warmup_epochs
            loss_config = (
                config.loss
                if gan
                else dataclasses.replace(config.loss, adversarial_global=0.0, adversarial_local=0.0)
            )
            train_batches.set_epoch(epoch)
            train_pairs.set_epoch(epoch)
            generator.train()
            sums: dict[str, float] = {}
            samples = 0
            step_start = epoch_start
            for step, batch in enumerate(train_loader, 1):
                # Every step sets its rates from the config, so a resumed run takes the rates it is given now.
                factor = lr_factor(config, epoch, step, steps_per_epoch)
                _set_lr(optimizers["generator"], config.lr_generator * factor)
                if "discriminators" in optimizers:
                    _set_lr(optimizers["discriminators"], config.lr_discriminator * factor)
                losses = _train_step(
                    generator, discriminators if gan else None, optimizers, batch, loss_config, device
                )
                samples += len(batch.x)
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                step_writer.writerow(
                    {
                        "epoch": epoch,
                        "step": step,
                        "global_step": (epoch - 1) * steps_per_epoch + step,
                        "seconds": f"{time.perf_counter() - step_start:.3f}",
                        "lr": f"{config.lr_generator * factor:.6g}",
                        **{k: f"{losses[k]:.6g}" if k in losses else "" for k in LOSS_FIELDS},
                    }
                )
                steps_file.flush()
                step_start = time.perf_counter()
                rate = samples / max(time.perf_counter() - epoch_start, 1e-9)
                emit(TrainEvent("step", epoch, config.epochs, step, steps_per_epoch, losses, rate))
            train_seconds = time.perf_counter() - epoch_start

            emit(TrainEvent("validate", epoch, config.epochs, steps_per_epoch, steps_per_epoch))
            generator.eval()
            val = _evaluate(val_loader, {"model": _model_completer(generator, device)})["model"]
            generator.train()
            row: dict[str, Any] = {
                "epoch": epoch,
                "gan": int(gan),
                "steps": steps_per_epoch,
                "samples": samples,
                "train_seconds": round(train_seconds, 3),
                "samples_per_s": round(samples / max(train_seconds, 1e-9), 3),
                **{k: sums[k] / steps_per_epoch if k in sums else None for k in LOSS_FIELDS},
                "val_psnr": _finite(val["psnr"]),
                "val_ssim": _finite(val["ssim"]),
                "val_maps": val["maps"],
                **{
                    f"{name}_{metric}": (baselines.get(name) or {}).get(metric)
                    for name in BASELINES
                    for metric in ("psnr", "ssim")
                },
            }
            improved = row["val_psnr"] is not None and (best is None or row["val_psnr"] > best["val_psnr"])
            if improved:
                best = row
            row["seconds"] = round(time.perf_counter() - epoch_start, 3)
            history.append(row)
            extra = {
                "train_config": config.to_dict(),
                "history": history,
                "baselines": baselines,
                "val_digest": val_digest,
                "best_epoch": best["epoch"] if best else None,
            }
            numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and v is not None}
            state = {
                "discriminators": discriminators,
                "epoch": epoch,
                "metrics": numbers,
                "loss_config": config.loss,
                "extra": extra,
            }
            if improved:
                save_checkpoint(run_dir / BEST, generator, **state)
            save_checkpoint(run_dir / LAST, generator, optimizers=optimizers, **state)
            _write_metrics(run_dir, history, baselines, best, config)
            emit(TrainEvent("epoch", epoch, config.epochs, steps_per_epoch, steps_per_epoch, row=row))

    del train_loader, val_loader  # stops persistent loader workers before the export
    emit(TrainEvent("export", config.epochs, config.epochs))
    if not (run_dir / BEST).is_file():
        raise TrainError(f"no validation score was finite, so there is no {BEST} to export")
    export_checkpoint(run_dir / BEST, run_dir / MODEL, config.uv_size)
    _write_metrics(run_dir, history, baselines, best, config)
    return {
        "run_dir": run_dir,
        "fit_dir": fit_dir,
        "epochs": history,
        "best_epoch": best["epoch"] if best else None,
        "best_val_psnr": best["val_psnr"] if best else None,
        "best_val_ssim": best["val_ssim"] if best else None,
        "baselines": baselines,
        "resumed_from": start_epoch if checkpoint is not None else None,
        "train_faces": len(train_faces),
        "val_faces": len(val_faces),
        "device": str(device),
        "seconds": time.perf_counter() - started,
        "paths": {name: run_dir / name for name in (LAST, BEST, MODEL, METRICS_CSV, METRICS_JSON, STEPS_CSV)},
    }


def _train_step(
    generator: AttentionResCUNet,
    discriminators: UVDiscriminators | None,
    optimizers: Mapping[str, torch.optim.Optimizer],
    batch: _Batch,
    loss_config: LossConfig,
    device: torch.device,
) -> dict[str, float]:
    """One optimisation step: the discriminators on (real, detached fake) first, then the generator against
    the updated discriminators. Returns every loss term as a float."""
    x = batch.x.to(device, non_blocking=True)
    target = batch.target.to(device, non_blocking=True)
    known = batch.known.to(device, non_blocking=True)
    output, aux = generator(x)
    logged: dict[str, float] = {}
    if discriminators is not None:
        discriminators.requires_grad_(True)
        optimizers["discriminators"].zero_grad(set_to_none=True)
        d_loss, d_terms = discriminator_loss(discriminators, output, target, known, loss_config)
        d_loss.backward()
        optimizers["discriminators"].step()
        logged.update(
            loss_d=d_loss.item(), d_global=d_terms["global"].item(), d_local=d_terms["local"].item()
        )
        discriminators.requires_grad_(False)  # the generator's step needs gradients through D, not for D
    optimizers["generator"].zero_grad(set_to_none=True)
    g_loss, g_terms = generator_loss(output, aux, x, target, known, discriminators, loss_config)
    g_loss.backward()
    optimizers["generator"].step()
    if discriminators is not None:
        discriminators.requires_grad_(True)
    logged["loss_g"] = g_loss.item()
    logged.update({name: value.item() for name, value in g_terms.items()})
    return logged


def _write_metrics(
    run_dir: Path,
    history: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Any],
    best: Mapping[str, Any] | None,
    config: TrainConfig,
) -> None:
    _write_rows(run_dir / METRICS_CSV, ROW_FIELDS, history)
    summary = {
        "epochs": [{k: row.get(k) for k in ROW_FIELDS} for row in history],
        "best": {"epoch": best["epoch"], "val_psnr": best["val_psnr"], "val_ssim": best["val_ssim"]}
        if best
        else None,
        "baselines": baselines,
        "validation": {
            "seed": VALIDATION_SEED,
            "uv_size": config.uv_size,
            "region": "texels the input hides and the target (the photo) shows",
            "psnr": "per map over the region's texels and channels, peak 255; mean over maps",
            "ssim": "skimage SSIM map (Gaussian sigma 1.5) averaged over the region; mean over maps",
        },
    }
    write_text_atomic(run_dir / METRICS_JSON, json.dumps(summary, indent=2) + "\n")


def export_checkpoint(
    checkpoint: str | os.PathLike[str], model: str | os.PathLike[str], size: int | None = None
) -> int:
    """Export a checkpoint's generator to ONNX at ``size`` (default: the size it was trained at, else 256);
    returns the size. One-line :class:`TrainError` for files that are not checkpoints or bad sizes."""
    data = _load(Path(checkpoint))
    try:
        generator = AttentionResCUNet(GeneratorConfig.from_dict(data["config"]))
        generator.load_state_dict(data["generator"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise TrainError(f"{checkpoint}: cannot rebuild its generator: {str(exc).splitlines()[0]}") from None
    size = size or int(data.get("train_config", {}).get("uv_size", 256))
    try:
        export_onnx(generator.eval(), model, size=size)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    return size
