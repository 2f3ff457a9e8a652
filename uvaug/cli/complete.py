"""``uvaug complete``: incomplete UV maps -> complete ones (the ONNX network, or the symmetric baseline)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from uvaug.cli.console import console, default_output, fail, progress_bar, summary_table
from uvaug.io import MANIFEST_NAME, InputError

EPILOG = """[bold]Examples[/]

  uvaug complete photos-fit/                      [dim]# the shipped model -> photos-fit-completed/[/]
  uvaug complete uvs/ --method symmetric -w 4     [dim]# mirror + smooth fill, 4 worker processes[/]
  uvaug complete uvs/ --model net.onnx --device cuda --batch-size 64

[bold]Input[/]: a fit output folder (the UV maps of the faces its manifest lists as ok) or a folder of RGBA
PNG UV maps (every [cyan]*.uv.png[/] below it, or every [cyan]*.png[/] if none is named so); alpha 0 marks
missing texels. Maps must be square; the model resizes them to its own size and back.

[bold]Outputs[/] (the input maps' relative paths): completed RGBA UV maps (known texels unchanged, the fill
blended into them along each hole's rim, alpha 255 on the whole face), [cyan]manifest.jsonl[/] (a line per
map: input, status, message, output, known, method, model). Reruns skip maps finished with the same method.
"""


class Method(StrEnum):
    model = "model"
    symmetric = "symmetric"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# The completion options, shared by ``uvaug pipeline`` (defaults stay in each signature).
MethodOption = Annotated[
    Method, typer.Option(help="The completion network, or the classical mirror-and-fill baseline.")
]
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="ONNX completion model \\[default: the shipped uv_completion.onnx].",
        show_default=False,
        dir_okay=False,
    ),
]
DeviceOption = Annotated[
    Device, typer.Option(help="Where the model runs: CUDA when available (auto), or as told.")
]


def complete_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="UVS",
            help="A fit output folder, or a folder of RGBA UV maps (alpha 0 = missing).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder \\[default: UVS-completed beside the input].",
            show_default=False,
        ),
    ] = None,
    method: MethodOption = Method.model,
    model: ModelOption = None,
    device: DeviceOption = Device.auto,
    batch_size: Annotated[int, typer.Option(help="Maps per network call.", min=1, max=4096)] = 16,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            help="Worker processes (symmetric) or decoding/encoding threads (model) \\[default: CPU cores].",
            min=1,
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo maps an earlier run finished.")
    ] = False,
) -> None:
    """Fill in the hidden part of UV maps: known texels stay exactly as they are, every hole gets a colour."""
    from uvaug.assets import ModelError
    from uvaug.complete.onnx_runtime import DeviceError
    from uvaug.complete.run import complete_inputs, create_completer, discover_uv_maps
    from uvaug.runner import available_cores

    if model is not None and method is Method.symmetric:
        fail("--model only applies to --method model")
    out = output or default_output(source, "completed")
    try:
        items = discover_uv_maps(source, exclude=[out])
    except InputError as exc:
        fail(str(exc))
    if not items:
        fail(f"no UV maps found in {source}")
    if out.exists() and not out.is_dir():
        fail(f"output {out} exists and is not a folder")
    if source.is_dir() and out.resolve() == source.resolve():
        fail(f"output folder {out} is the input folder; choose another with -o")
    workers = workers or available_cores()
    try:
        completer = create_completer(method.value, model, device=device.value)
    except (ModelError, DeviceError) as exc:
        fail(str(exc))

    with progress_bar("map") as progress:
        task = progress.add_task("complete", total=None)

        def on_start(todo: int, skipped: int) -> None:
            progress.update(task, total=todo)
            if skipped:
                progress.console.print(f"resuming: {skipped} of {len(items)} UV maps already done in {out}")

        report = complete_inputs(
            items,
            out,
            completer,
            batch_size=batch_size,
            workers=workers,
            overwrite=overwrite,
            on_start=on_start,
            on_result=lambda _records: progress.advance(task),
        )
    if method is Method.model:
        how = f"model {completer.model} on {getattr(completer, 'device', 'cpu')}, batches of {batch_size}"
        parallel = f"{workers} I/O thread{'s' if workers > 1 else ''}"
    else:
        how = "symmetric (mirror + harmonic fill)"
        parallel = f"{workers} worker{'s' if workers > 1 else ''}"
    rows = {
        "UV maps found": report.total,
        "skipped (done earlier)": report.skipped,
        "processed": report.processed,
        **{f"  {status}": n for status, n in sorted(report.statuses.items())},
        "method": how,
        "time": f"{report.seconds:.1f} s",
        "rate": f"{report.rate:.1f} maps/s ({parallel})",
        "manifest": out / MANIFEST_NAME,
    }
    console.print(summary_table("uvaug complete", rows))
    print(out)  # stdout carries only the result folder, for scripts
