"""``uvaug pipeline``: a whole dataset through fit, complete and render, streaming and resumable."""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from uvaug.cli.complete import Device, DeviceOption, Method, MethodOption, ModelOption
from uvaug.cli.console import WorkersOption, console, default_output, fail, progress_bar, summary_table
from uvaug.cli.fit import FaceSelection, FacesOption, MinFaceSizeOption, MinScoreOption
from uvaug.cli.render import (
    AlignChoice,
    AlignOption,
    BackgroundChoice,
    BackgroundOption,
    MinSeenOption,
    MirrorOption,
    PitchOption,
    QualityOption,
    RelativeOption,
    SampleOption,
    SeedOption,
    SizeOption,
    YawOption,
    parse_views,
)


class Executor(StrEnum):
    local = "local"
    ray = "ray"


EPILOG = """[bold]Examples[/]

  uvaug pipeline casia/ -o casia-aug/ --align arcface          [dim]# 9 yaws per image, 112x112 crops[/]
  uvaug pipeline faces/ --yaw -45,45 --pitch -20:20:20 --include-original
  uvaug pipeline casia/ --yaw -75:75:5 --pitch -20:20:10 --sample 2   [dim]# 2 random poses per image[/]
  uvaug pipeline faces/ -o out/ --method symmetric -w 8        [dim]# no network: mirror + smooth fill[/]
  uvaug pipeline /shared/vggface2/ -o /shared/aug/ --executor ray --ray-address auto   [dim]# a Ray cluster[/]

Every image under IMAGES (identity folders or any layout) is fitted, its UV map completed (the shipped model
on ONNX Runtime, CUDA when present, in batches) and rendered at every yaw x pitch (with [cyan]--sample N[/],
at N of them drawn per image); the stages overlap, so all cores stay busy. Outputs mirror the input
folders: [cyan]OUT/<identity>/<image>_y+30_p+00.jpg[/], plus [cyan]manifest.jsonl[/] (a line per input:
status, reason, fitted pose, outputs, and which outputs were rendered from the mirrored photo: a face turned
far one way is shown far the other way as its mirror image, not turned through 90 degrees;
[cyan]--no-mirror[/] turns it anyway; and each view's seen share, the part of its face the photo really
showed: [cyan]--min-seen F[/] leaves out views below F), [cyan]report.json[/] (counts per status and
reason, time per stage, peak memory) and [cyan]sheet.png[/] (a contact sheet). Interrupt it at any time
(Ctrl-C, kill -9) and run the same command again: it continues where it stopped; failed inputs are
retried. A rerun must use the same settings (they are kept in pipeline.json).

[bold]--executor ray[/] (pip install 'uvaug\\[ray]') runs the same stages as Ray Data actor pools on a Ray
cluster (--ray-address, or $RAY_ADDRESS, else a local Ray instance), completion on the cluster's GPUs when
it has any; the outputs equal a local run's. Every node must see IMAGES and OUT at the same paths.
"""


def pipeline_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="IMAGES",
            help="A folder of images (searched recursively), an image, or a text file of image paths.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder \\[default: IMAGES-aug beside the input].",
            show_default=False,
        ),
    ] = None,
    yaw: YawOption = "-60:60:15",
    pitch: PitchOption = "0",
    relative: RelativeOption = False,
    background: BackgroundOption = BackgroundChoice.photo,
    align: AlignOption = AlignChoice.none,
    size: SizeOption = 112,
    quality: QualityOption = 95,
    mirror: MirrorOption = True,
    sample: SampleOption = None,
    seed: SeedOption = 0,
    min_seen: MinSeenOption = None,
    include_original: Annotated[
        bool,
        typer.Option(
            "--include-original", help="Also write each input (aligned like the views with --align arcface)."
        ),
    ] = False,
    keep_intermediates: Annotated[
        bool,
        typer.Option(
            "--keep-intermediates", help="Also keep fits and incomplete/completed UV maps in OUT/.uvaug/."
        ),
    ] = False,
    method: MethodOption = Method.model,
    model: ModelOption = None,
    device: DeviceOption = Device.auto,
    batch_size: Annotated[
        int,
        typer.Option(
            help="UV maps per completion call (on CPU more only costs memory; raise it on a GPU).",
            min=1,
            max=4096,
        ),
    ] = 8,
    faces: FacesOption = FaceSelection.largest,
    min_face_size: MinFaceSizeOption = 24.0,
    min_score: MinScoreOption = 0.5,
    workers: WorkersOption = None,
    executor: Annotated[
        Executor,
        typer.Option(help="local: worker processes on this machine; ray: Ray Data on a Ray cluster."),
    ] = Executor.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join with --executor ray (e.g. auto, ray://head:10001) "
            "\\[default: $RAY_ADDRESS, else a local Ray instance].",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Redo inputs an earlier run finished (and allow new settings)."),
    ] = False,
) -> None:
    """Pose-augment a whole dataset: fit, complete and render every image, streaming and resumable."""
    from uvaug.assets import ModelError
    from uvaug.complete.onnx_runtime import DeviceError
    from uvaug.fit.fitter import FitOptions
    from uvaug.pipeline import PipelineOptions, SettingsMismatchError, run_pipeline
    from uvaug.pipeline.ray_executor import RayExecutorError
    from uvaug.pipeline.run import PipelineInputError
    from uvaug.render.run import MIRROR_BEYOND, RenderOptions
    from uvaug.runner import available_cores

    views = parse_views(yaw, pitch)
    if model is not None and method is Method.symmetric:
        fail("--model only applies to --method model")
    if model is not None and not model.is_file():
        fail(f"model file not found: {model}")
    if not source.exists():
        fail(f"input not found: {source}")
    if ray_address is not None and executor is not Executor.ray:
        fail("--ray-address only applies to --executor ray")
    out = output or default_output(source, "aug")
    options = PipelineOptions(
        render=RenderOptions(
            views=views,
            relative=relative,
            background=background.value,
            align=align.value,
            size=size,
            jpeg_quality=quality,
            mirror_beyond=MIRROR_BEYOND if mirror else None,
            sample=sample,
            seed=seed,
            min_seen=min_seen,
        ),
        fit=FitOptions(faces=faces.value, min_face_size=min_face_size, min_score=min_score),
        method=method.value,
        model=str(model) if model else None,
        device=device.value,
        batch_size=batch_size,
        include_original=include_original,
        keep_intermediates=keep_intermediates,
    )
    if executor is Executor.local:
        workers = workers or available_cores()
    with progress_bar(unit="img") as progress:
        task = progress.add_task("pipeline", total=None)
        _count_inputs_in_background(source, out, lambda n: progress.update(task, total=n))
        try:
            report = run_pipeline(
                source,
                out,
                options,
                workers=workers,
                executor=executor.value,
                ray_address=ray_address,
                overwrite=overwrite,
                on_skip=lambda: progress.advance(task),
                on_record=lambda _rec: progress.advance(task),
            )
        except (PipelineInputError, SettingsMismatchError, ModelError, DeviceError, RayExecutorError) as exc:
            progress.stop()
            fail(str(exc))
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"interrupted: finished inputs are in {out}; run the same command again to continue"
            )
            raise typer.Exit(130) from None
    if report.output_excluded:
        console.print(f"note: the output folder {out} is inside the input folder; it was not read as input")
    rows: dict[str, object] = {
        "inputs": report.found,
        "skipped (done earlier)": report.skipped,
        "processed": report.processed,
        **{f"  {status}": n for status, n in sorted(report.statuses.items())},
        **{f"    {reason}": n for reason, n in sorted(report.reasons.items())},
        "faces": report.faces,
        "views written": report.views,
        "  from the mirrored photo": report.mirrored,
        **({f"  left out (seen < {min_seen:g})": report.left_out} if min_seen is not None else {}),
        "time": f"{report.seconds:.1f} s",
        "rate": f"{report.rate:.2f} img/s, {report.views / max(report.seconds, 1e-9):.1f} views/s "
        f"({report.workers} workers{', Ray' if executor is Executor.ray else ''})",
    }
    for stage in ("fit", "complete", "render"):
        n = report.stage_items[stage]
        if n:
            rows[f"{stage} time"] = f"{1000 * report.stage_seconds[stage] / n:.1f} ms per item, {n} items"
    rows["peak memory"] = f"{report.peak_rss_mb:.0f} MiB"
    rows["manifest"] = out / "manifest.jsonl"
    rows["report"] = out / "report.json"
    if report.sheet:
        rows["contact sheet"] = out / report.sheet
    console.print(summary_table("uvaug pipeline", rows))
    print(out)


def _count_inputs_in_background(source: Path, out: Path, on_total) -> None:
    """Walk the input once more in a thread, only to give the progress bar its total and ETA."""
    from uvaug.io import iter_inputs

    def count() -> None:
        try:
            n = sum(1 for _ in iter_inputs(source, exclude=[out], on_error=lambda *_: None))
        except Exception:  # the run itself reports input problems
            return
        on_total(n)

    threading.Thread(target=count, name="uvaug-count-inputs", daemon=True).start()
