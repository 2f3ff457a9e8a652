"""``uvaug fit``: photos -> fitted 3D faces, head poses and incomplete UV maps."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from uvaug.cli.console import WorkersOption, console, default_output, fail, progress_bar, summary_table
from uvaug.io import MANIFEST_NAME, InputError, discover_inputs

EPILOG = """[bold]Examples[/]

  uvaug fit photos/                       [dim]# every image below photos/ -> photos-fit/[/]
  uvaug fit photo.jpg -o out/ --mesh      [dim]# one photo, plus a textured GLB per face[/]
  uvaug fit list.txt --faces all -w 4     [dim]# paths listed one per line, every face, 4 workers[/]

[bold]Outputs[/] (mirroring the input's folders): [cyan]<stem>.f<k>.uv.png[/] (RGBA UV map, alpha = seen),
[cyan]<stem>.f<k>.fit.npz[/] (landmarks, mesh, pose, box, score), [cyan]manifest.jsonl[/] (a line per image
and face: input, face, status, message, yaw, pitch, roll, uv, fit). Reruns skip finished images.
"""


class FaceSelection(StrEnum):
    largest = "largest"
    all = "all"


# The detection options, shared by ``uvaug pipeline`` (defaults stay in each signature).
FacesOption = Annotated[FaceSelection, typer.Option(help="Fit the largest face or every face.")]
MinFaceSizeOption = Annotated[float, typer.Option(help="Smallest face to fit, box side in pixels.", min=1)]
MinScoreOption = Annotated[float, typer.Option(help="Detector score threshold.", min=0.0, max=1.0)]


def fit_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="An image, a folder (searched recursively) or a text file of image paths.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder \\[default: INPUT-fit beside the input].",
            show_default=False,
        ),
    ] = None,
    faces: FacesOption = FaceSelection.largest,
    min_face_size: MinFaceSizeOption = 24.0,
    min_score: MinScoreOption = 0.5,
    uv_size: Annotated[int, typer.Option(help="UV map side in texels.", min=16, max=4096)] = 256,
    min_facing: Annotated[
        float,
        typer.Option(
            help="Cosine of the largest viewing angle at which a texel counts as seen; lower keeps more of "
            "the photo's texture near the face's outline, where background and hair creep in.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.4,
    mesh: Annotated[bool, typer.Option("--mesh", help="Also write a textured GLB mesh per face.")] = False,
    workers: WorkersOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo images an earlier run finished.")
    ] = False,
) -> None:
    """Detect faces, fit a dense 3D face and head pose to each, unwrap its visible texture to a UV map."""
    from uvaug.fit.fitter import FitOptions
    from uvaug.fit.run import fit_inputs

    out = output or default_output(source, "fit")
    try:
        items = discover_inputs(source, exclude=[out])
    except InputError as exc:
        fail(str(exc))
    if not items:
        fail(f"no images found in {source}")
    if out.exists() and not out.is_dir():
        fail(f"output {out} exists and is not a folder")
    options = FitOptions(
        faces=faces.value,
        min_face_size=min_face_size,
        min_score=min_score,
        uv_size=uv_size,
        min_facing=min_facing,
    )
    workers = workers or os.cpu_count() or 1

    with progress_bar() as progress:
        task = progress.add_task("fit", total=None)

        def on_start(todo: int, skipped: int) -> None:
            progress.update(task, total=todo)
            if skipped:
                progress.console.print(f"resuming: {skipped} of {len(items)} images already done in {out}")

        report = fit_inputs(
            items,
            out,
            options=options,
            workers=workers,
            overwrite=overwrite,
            write_mesh=mesh,
            on_start=on_start,
            on_result=lambda _records: progress.advance(task),
        )
    rows = {
        "images found": report.total,
        "skipped (done earlier)": report.skipped,
        "processed": report.processed,
        **{f"  {status}": n for status, n in sorted(report.statuses.items())},
        "faces fitted": report.faces,
        "time": f"{report.seconds:.1f} s",
        "rate": f"{report.rate:.1f} images/s ({workers} worker{'s' if workers > 1 else ''})",
        "manifest": out / MANIFEST_NAME,
    }
    console.print(summary_table("uvaug fit", rows))
    print(out)  # stdout carries only the result folder, for scripts
