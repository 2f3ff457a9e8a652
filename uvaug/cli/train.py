"""``uvaug train`` (the completion GAN on self-supervised pairs) and ``uvaug export`` (checkpoint -> ONNX)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from uvaug.cli.console import console, default_output, fail, progress_bar, summary_table

EPILOG = """[bold]Examples[/]

  uvaug train photos/ -o run/                        [dim]# fit into run/fit, train, export run/model.onnx[/]
  uvaug train faces-fit/ -o run/ --val-list val.txt  [dim]# a fit output; validate on the listed inputs[/]
  uvaug train faces-fit/ -o run/ --epochs 20 --resume  [dim]# continue run/ up to epoch 20[/]
  uvaug train faces-fit/ -o run/ --epochs 23 --lr-decay-epochs 3 --resume  [dim]# then anneal 3 epochs[/]
  uvaug train photos/ -o tiny/ --width tiny --size 128 --max-train 500 --steps-per-epoch 50 --no-gan

[bold]DATA[/] is a fit output folder (its [cyan]manifest.jsonl[/] lists fitted faces) or photos (a folder, an
image or a list file), which are fitted into [cyan]RUN/fit[/] first (resumable). Near-frontal faces make the
training pairs: each epoch, every face's UV map loses the texels a random head turn would hide. Name lists
(--train-list, --val-list) hold one input per line as the fit manifest's [cyan]input[/] names it; without
--val-list every 20th face (sorted by input) is held out. Training and validation faces never overlap.

[bold]Outputs[/] in RUN: [cyan]last.pt[/] (every epoch; --resume continues from it), [cyan]best.pt[/] (best
validation PSNR), [cyan]model.onnx[/] (exported from best.pt at the end), [cyan]metrics.csv[/] and
[cyan]metrics.json[/] (per epoch: losses, validation PSNR/SSIM on the hidden-but-photographed texels, the
mean-fill and symmetric baselines, seconds, samples/s), [cyan]steps.csv[/] (per-step losses),
[cyan]config.json[/], [cyan]train.txt[/] and [cyan]val.txt[/] (the faces used). On --resume, settings not
given again are the run's own; a different architecture or map size is refused.
"""

EXPORT_EPILOG = """[bold]Examples[/]

  uvaug export run/best.pt model.onnx              [dim]# at the size it was trained at[/]
  uvaug export run/last.pt model-512.onnx --size 512

The model takes (N, 8, S, S) float32 [cyan]uv_input[/] and returns (N, 3, S, S) [cyan]uv_completed[/], with a
dynamic batch axis; use it with [bold]uvaug complete --model[/].
"""


class WidthPreset(StrEnum):
    tiny = "tiny"
    small = "small"
    default = "default"
    wide = "wide"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        fail(f"--widths must be comma-separated integers such as 16,16,32,64, got {text!r}")
    if len(widths) < 2 or min(widths) < 1:
        fail(f"--widths needs at least two positive channel counts, got {text!r}")
    return widths


def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}{unit}"


def _scores(scores: Mapping[str, Any] | None) -> str:
    if not scores:
        return "-"
    return f"{_fmt(scores.get('psnr'), 2, ' dB')} / {_fmt(scores.get('ssim'), 3)}"


def _require_training() -> None:
    """Stop with one line if a training dependency is missing (``onnx`` writes the exported model's metadata
    and is not a dependency of the inference-only install)."""
    try:
        import uvaug.complete.train  # noqa: F401
    except ImportError as exc:
        fail(f"training and export need the {exc.name!r} package; install it with: pip install {exc.name}")


def train_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA",
            help="A fit output folder, or photos to fit first (folder, image or list file).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Run folder \\[default: DATA-train beside DATA].", show_default=False
        ),
    ] = None,
    train_list: Annotated[
        Path | None,
        typer.Option(
            help="Inputs to train on, one per line \\[default: all but the held-out ones].",
            show_default=False,
        ),
    ] = None,
    val_list: Annotated[
        Path | None,
        typer.Option(help="Held-out inputs to validate on \\[default: every 20th face].", show_default=False),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Train up to this epoch \\[default: 10].", min=1, show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Pairs per step \\[default: 8].", min=1, show_default=False)
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr", help="Generator learning rate (Adam) \\[default: 2e-4].", min=0.0, show_default=False
        ),
    ] = None,
    lr_d: Annotated[
        float | None,
        typer.Option(help="Discriminator learning rate \\[default: 2e-4].", min=0.0, show_default=False),
    ] = None,
    lr_decay_epochs: Annotated[
        int | None,
        typer.Option(
            help="Anneal both learning rates to zero (half cosine) over the last N epochs \\[default: 0, "
            "constant].",
            min=0,
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="UV map side to train at \\[default: 256].", min=16, max=4096, show_default=False
        ),
    ] = None,
    width: Annotated[
        WidthPreset | None,
        typer.Option(help="Generator widths preset \\[default: default].", show_default=False),
    ] = None,
    widths: Annotated[
        str | None,
        typer.Option(help="Generator widths per level, e.g. 16,16,32,64,128,256.", show_default=False),
    ] = None,
    d_width: Annotated[
        int | None,
        typer.Option(help="Discriminators' first-layer width \\[default: 64].", min=1, show_default=False),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of weights, pairs and order \\[default: 0].", show_default=False)
    ] = None,
    device: Annotated[
        Device | None,
        typer.Option(help="auto: CUDA when available, else the CPU \\[default: auto].", show_default=False),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in RUN from its last.pt.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            help="Data-loading worker processes (0: in the main process) \\[default: 1].",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_train: Annotated[
        int | None, typer.Option(help="Train on at most this many faces (seeded subset).", min=1)
    ] = None,
    max_val: Annotated[
        int | None, typer.Option(help="Validate on at most this many faces (fixed subset).", min=1)
    ] = None,
    steps_per_epoch: Annotated[
        int | None, typer.Option(help="Cap on steps per epoch (a new random subset each epoch).", min=1)
    ] = None,
    gan: Annotated[
        bool | None,
        typer.Option(
            "--gan/--no-gan", help="Train with the two discriminators \\[default: --gan].", show_default=False
        ),
    ] = None,
    warmup_epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs of reconstruction losses only before the GAN terms \\[default: 1].",
            min=0,
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Torch CPU threads \\[default: the cores this process may use].", min=1, show_default=False
        ),
    ] = None,
) -> None:
    """Train the UV completion network on self-supervised pairs; validate, checkpoint, export ONNX."""
    _require_training()
    from uvaug.complete.train import LAST as LAST_NAME
    from uvaug.complete.train import (
        WIDTH_PRESETS,
        TrainConfig,
        TrainError,
        is_fit_output,
        prepare_training_data,
        resume_config,
        split_names,
        train,
    )
    from uvaug.runner import available_cores

    run = output or default_output(data, "train")
    if run.exists() and not run.is_dir():
        fail(f"output {run} exists and is not a folder")
    if width is not None and widths is not None:
        fail("give --width or --widths, not both")
    if not data.exists():
        fail(f"data not found: {data}")
    if run.resolve() == data.resolve():
        fail(f"the run folder {run} is the data folder; choose another with -o")
    try:
        base = resume_config(run) if resume else None
    except (TrainError, ValueError) as exc:
        fail(str(exc))
    if resume and base is None:
        console.print(f"no {LAST_NAME} in {run}: starting a new run")
    base = base or TrainConfig()

    generator = base.generator
    if width is not None or widths is not None:
        chosen = WIDTH_PRESETS[width.value] if width is not None else _parse_widths(widths or "")
        generator = dataclasses.replace(generator, widths=chosen)
    discriminator = base.discriminator
    if d_width is not None:
        discriminator = dataclasses.replace(discriminator, width=d_width)
    loss = base.loss
    if gan is False:
        loss = dataclasses.replace(loss, adversarial_global=0.0, adversarial_local=0.0)
    elif gan and not loss.adversarial:
        default = type(loss)()
        loss = dataclasses.replace(
            loss, adversarial_global=default.adversarial_global, adversarial_local=default.adversarial_local
        )
    given = {
        "uv_size": size,
        "batch_size": batch_size,
        "epochs": epochs,
        "lr_generator": lr,
        "lr_discriminator": lr_d,
        "lr_decay_epochs": lr_decay_epochs,
        "seed": seed,
        "workers": workers,
        "device": device.value if device is not None else None,
        "max_train": max_train,
        "max_val": max_val,
        "steps_per_epoch": steps_per_epoch,
        "adversarial_warmup_epochs": warmup_epochs,
        "threads": threads,
    }
    try:
        config = dataclasses.replace(
            base,
            generator=generator,
            discriminator=discriminator,
            loss=loss,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValueError as exc:
        fail(str(exc))

    try:
        if data.is_dir() and is_fit_output(data):
            fit_dir = data
        else:
            with progress_bar("img") as progress:
                task = progress.add_task("fit", total=None)

                def on_start(todo: int, skipped: int) -> None:
                    progress.update(task, total=todo)
                    if skipped:
                        progress.console.print(f"fit: {skipped} images already fitted in {run / 'fit'}")

                fit_dir = prepare_training_data(
                    data,
                    run,
                    workers=available_cores(),
                    on_start=on_start,
                    on_result=lambda _records: progress.advance(task),
                )
        if resume and val_list is None and (run / "val.txt").is_file():
            val_list = run / "val.txt"  # the run's own validation faces, so that its scores stay comparable
            if train_list is None and (run / "train.txt").is_file():
                train_list = run / "train.txt"
        split = split_names(fit_dir, train_list, val_list, config.frontal)
    except TrainError as exc:
        fail(str(exc))
    console.print(split.note, soft_wrap=True)

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps {task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("train", total=None, info="")
    trained: list[int] = []

    def on_progress(event: Any) -> None:
        label = f"epoch {event.epoch}/{event.epochs}"
        if event.kind == "start":
            info = event.row or {}
            progress.update(task, total=event.steps * max(event.epochs - event.epoch + 1, 0), completed=0)
            if info.get("resumed_from") is not None:
                progress.console.print(f"resuming {run} after epoch {info['resumed_from']}")
            baselines = info.get("baselines") or {}
            progress.console.print(
                f"{info.get('train_faces')} training / {info.get('val_faces')} validation faces on "
                f"{info.get('device')}; baselines (PSNR / SSIM on hidden texels): mean fill "
                f"{_scores(baselines.get('mean_fill'))}, symmetric {_scores(baselines.get('symmetric'))}",
                soft_wrap=True,
            )
        elif event.kind == "step":
            progress.update(
                task,
                advance=1,
                description=label,
                info=f"| loss {event.losses.get('loss_g', math.nan):.4f} "
                f"| {event.samples_per_second:.1f} samples/s",
            )
        elif event.kind == "validate":
            progress.update(task, description=f"{label} validating")
        elif event.kind == "epoch" and event.row is not None:
            row = event.row
            trained.append(event.epoch)
            progress.console.print(
                f"epoch {event.epoch}/{event.epochs}{' (gan)' if row['gan'] else ''}: loss "
                f"{_fmt(row['loss_g'], 4)}, L1 {_fmt(row['reconstruction'], 4)} | val PSNR "
                f"{_fmt(row['val_psnr'], 2, ' dB')}, SSIM {_fmt(row['val_ssim'], 3)} | "
                f"{_fmt(row['samples_per_s'], 1)} samples/s, {_fmt(row['seconds'], 0)} s",
                soft_wrap=True,
            )
        elif event.kind == "export":
            progress.update(task, description="export")

    try:
        with progress:
            result = train(
                config, fit_dir, run, split.train, split.val, resume=resume, on_progress=on_progress
            )
    except TrainError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print(f"interrupted: rerun with --resume to continue {run} from its last finished epoch")
        raise typer.Exit(130) from None

    rows = result["epochs"]
    rates = [row["samples_per_s"] for row in rows if row["epoch"] in trained]
    best = next((row for row in rows if row["epoch"] == result["best_epoch"]), None)
    table = {
        "data (fit folder)": result["fit_dir"],
        "faces": f"{result['train_faces']} training / {result['val_faces']} validation",
        "device": result["device"],
        "epochs trained": (
            f"{trained[0]}{f'-{trained[-1]}' if len(trained) > 1 else ''} of {config.epochs}"
            if trained
            else f"none (the run had reached epoch {config.epochs})"
        ),
        "best epoch": result["best_epoch"],
        "val PSNR / SSIM (best)": _scores(
            {"psnr": best["val_psnr"], "ssim": best["val_ssim"]} if best else None
        ),
        "mean fill PSNR / SSIM": _scores(result["baselines"].get("mean_fill")),
        "symmetric PSNR / SSIM": _scores(result["baselines"].get("symmetric")),
        "time": f"{result['seconds']:.1f} s",
        "rate": f"{sum(rates) / len(rates):.1f} samples/s" if rates else "-",
        "model": result["paths"]["model.onnx"],
        "metrics": result["paths"]["metrics.csv"],
    }
    console.print(summary_table("uvaug train", table))
    print(run)  # stdout carries only the run folder, for scripts


def export_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(metavar="CKPT", help="A training checkpoint (best.pt, last.pt).", show_default=False),
    ],
    model: Annotated[
        Path, typer.Argument(metavar="MODEL.onnx", help="Where to write the ONNX model.", show_default=False)
    ],
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="UV map side of the exported graph \\[default: the training size].",
            min=16,
            max=4096,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a checkpoint's generator as an ONNX model for [bold]uvaug complete --model[/]."""
    _require_training()
    from uvaug.complete.train import TrainError, export_checkpoint

    if not checkpoint.is_file():
        fail(f"checkpoint not found: {checkpoint}")
    if model.is_dir():
        fail(f"{model} is a folder; give the model's file name")
    try:
        size = export_checkpoint(checkpoint, model, size)
    except TrainError as exc:
        fail(str(exc))
    console.print(
        summary_table("uvaug export", {"checkpoint": checkpoint, "size": f"{size}x{size}", "model": model})
    )
    print(model)  # stdout carries only the model file, for scripts
