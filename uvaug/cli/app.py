"""The ``uvaug`` command: a thin layer over the library, one module per subcommand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from uvaug import __version__
from uvaug.cli.complete import EPILOG as COMPLETE_EPILOG
from uvaug.cli.complete import complete_command
from uvaug.cli.console import console, fail, reflow
from uvaug.cli.doctor import doctor_command
from uvaug.cli.fit import EPILOG as FIT_EPILOG
from uvaug.cli.fit import fit_command
from uvaug.cli.pipeline import EPILOG as PIPELINE_EPILOG
from uvaug.cli.pipeline import pipeline_command
from uvaug.cli.quantize import EPILOG as QUANTIZE_EPILOG
from uvaug.cli.quantize import quantize_command
from uvaug.cli.render import EPILOG as RENDER_EPILOG
from uvaug.cli.render import render_command
from uvaug.cli.train import EPILOG as TRAIN_EPILOG
from uvaug.cli.train import EXPORT_EPILOG, export_command, train_command

try:  # recent typer ships its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import UsageError


class OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing argument, an unknown command) as one ``error:`` line.

    Click would print the usage, a hint and a framed panel; scripts and people get the same exit status 2
    and a line that fits a log instead.
    """

    def make_context(self, *args, **kwargs):  # type: ignore[override]
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _usage_error(exc)


def _usage_error(exc: UsageError) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help text itself, printed by typer
        raise exc
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    fail(exc.format_message() + hint)


app = typer.Typer(
    name="uvaug",
    cls=OneLineErrors,
    help="Pose augmentation for face datasets: fit a dense 3D face to each photo, unwrap and complete its "
    "texture, and re-render it at any yaw/pitch.",
    epilog="Start with [bold]uvaug demo[/] or [bold]uvaug fit --help[/]; "
    "[bold]uvaug doctor[/] checks the setup.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"uvaug {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    pass


app.command("fit", epilog=reflow(FIT_EPILOG))(fit_command)
app.command("complete", epilog=reflow(COMPLETE_EPILOG))(complete_command)
app.command("render", epilog=reflow(RENDER_EPILOG))(render_command)
app.command("pipeline", epilog=reflow(PIPELINE_EPILOG))(pipeline_command)
app.command("train", epilog=reflow(TRAIN_EPILOG))(train_command)
app.command("export", epilog=reflow(EXPORT_EPILOG))(export_command)
app.command("quantize", epilog=reflow(QUANTIZE_EPILOG))(quantize_command)
app.command("doctor")(doctor_command)


@app.command("demo")
def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the demo writes its files.")] = Path(
        "uvaug-demo"
    ),
) -> None:
    """Run every stage on a sample photo shipped with scikit-image (no data needed); print where results are.

    fit -> complete (the shipped model, or the symmetric baseline when no model ships) -> render at five yaws,
    with a contact sheet.
    """
    import skimage.data

    from uvaug.artifacts import STATUS_OK
    from uvaug.assets import ModelError
    from uvaug.complete.run import complete_inputs as run_complete
    from uvaug.complete.run import create_completer, discover_uv_maps
    from uvaug.fit.run import fit_inputs
    from uvaug.io import MANIFEST_NAME, discover_inputs, read_manifest, write_image_atomic
    from uvaug.render.grid import pose_grid
    from uvaug.render.run import RenderOptions, fit_photos, plan_render, render_fits, write_sheet

    images, fits, completed, renders = (output / name for name in ("images", "fit", "completed", "render"))
    write_image_atomic(images / "astronaut.png", skimage.data.astronaut())
    report = fit_inputs(discover_inputs(images), fits, write_mesh=True, overwrite=True)
    console.print(f"fit: {report.faces} face(s) in {report.seconds:.2f} s")
    for rec in read_manifest(fits / MANIFEST_NAME):
        if rec["status"] == STATUS_OK:
            console.print(
                f"  {rec['input']} face {rec['face']}: yaw {rec['yaw']:+.1f}, pitch {rec['pitch']:+.1f}, "
                f"roll {rec['roll']:+.1f}; UV map {fits / rec['uv']}",
                soft_wrap=True,
            )
    try:
        completer = create_completer("model")
    except ModelError:
        completer = create_completer("symmetric")
    run_complete(discover_uv_maps(fits, exclude=[]), completed, completer, overwrite=True)
    console.print(f"complete: method {completer.method} -> {completed}")
    views = tuple(pose_grid((-60, -30, 0, 30, 60), (0,)))
    options = RenderOptions(views=views)
    render_fits(plan_render(fits, renders, options, uv_dir=completed, overwrite=True), renders, options)
    sheet = output / "sheet.png"
    write_sheet(renders, sheet, options, photos=fit_photos(fits))
    console.print(f"render: {len(views)} views -> {renders}; contact sheet {sheet}")
    console.print(f"results: {output} (fit/: UV maps, fits, GLB meshes; completed/; render/; sheet.png)")
    print(output)


def main() -> None:
    from uvaug.assets import ModelError

    try:
        app()
    except ModelError as exc:  # a broken installation: say what is missing, not where Python noticed
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
