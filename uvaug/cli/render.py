"""``uvaug render``: every fitted face at every requested yaw/pitch, in its own photo or as aligned crops."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from uvaug.cli.console import WorkersOption, console, default_output, fail, progress_bar, summary_table

if TYPE_CHECKING:
    from uvaug.render.grid import View

EPILOG = """[bold]Examples[/]

  uvaug render photos-fit/ --yaw -60:60:15               [dim]# 9 views per face, whole photos[/]
  uvaug render photos-fit/ --uv photos-fit-completed/ --yaw -45,0,45 --pitch -20:20:20 --align arcface
  uvaug render fits/ --yaw 30 --relative --background none   [dim]# 30 degrees more than fitted, RGBA[/]
  uvaug render fits/ --yaw -75:75:5 --pitch -20:20:10 --sample 3   [dim]# 3 of 155 poses per face[/]

Angles are degrees (yaw > 0: nose towards the image's right; pitch > 0: chin up), as START:STOP:STEP (STOP
included when on the grid) or comma lists; every yaw is combined with every pitch, and [cyan]--sample N[/]
keeps N of those views per face, a different draw for each face (set by [cyan]--seed[/] and the input's
path, so reruns and [bold]uvaug pipeline[/] over the same images draw the same). Outputs mirror the input
folders: [cyan]<stem>_y+30_p-10.jpg[/] (PNG with --background none), faces after the first as
[cyan]<stem>.f<k>_y+30_p-10.jpg[/], and [cyan]manifest.jsonl[/] (a line per face and view). Reruns skip views
already rendered. Without --uv the fit's own incomplete UV maps are used, so unseen parts of the face show as
holes: complete them first with [bold]uvaug complete[/]. A face turned 30 degrees one way and asked at 45 the
other way is rendered from the mirrored photo, a 15-degree turn, rather than turned 75 degrees
([cyan]--no-mirror[/] turns it anyway); the manifest's [cyan]mirrored[/] says which views are mirror images.
Along the face's edge, where the fit left the texture to completion, the photo's own colours are drawn while
the view keeps that edge grazing; with --background black or none the photo is used when it can be read.
The manifest's [cyan]seen[/] is the share of each view's face that the photo really showed (about 0.9 at the
photo's own pose, less the further the view turns from it); [cyan]--min-seen F[/] leaves out views below F.
"""


class BackgroundChoice(StrEnum):
    photo = "photo"
    black = "black"
    none = "none"


class AlignChoice(StrEnum):
    none = "none"
    arcface = "arcface"


# The render options, shared by ``uvaug pipeline`` (defaults stay in each signature).
YawOption = Annotated[str, typer.Option(help="Yaw angles: START:STOP:STEP or a comma list.")]
PitchOption = Annotated[str, typer.Option(help="Pitch angles: START:STOP:STEP or a comma list.")]
RelativeOption = Annotated[
    bool, typer.Option("--relative", help="Angles are offsets from the fitted pose, not absolute poses.")
]
BackgroundOption = Annotated[
    BackgroundChoice,
    typer.Option(help="photo: the head turns in its own photo; black; none: RGBA, face only."),
]
AlignOption = Annotated[
    AlignChoice, typer.Option(help="arcface: crops aligned to the ArcFace 5-point template.")
]
SizeOption = Annotated[int, typer.Option(help="Side of aligned crops in pixels.", min=16, max=2048)]
MirrorOption = Annotated[
    bool,
    typer.Option(
        "--mirror/--no-mirror",
        help="A view turning a face over 45 degrees of yaw is rendered from the mirrored photo when that "
        "saves 20 or more (a face turned 10+ to the other side): the person's mirror image, listed in the "
        "manifest.",
    ),
]
QualityOption = Annotated[int, typer.Option(help="JPEG quality.", min=1, max=100)]
SampleOption = Annotated[
    int | None,
    typer.Option(
        help="Render only N of the yaw x pitch views per face, drawn at random for each face (the same on "
        "every run) \\[default: every view].",
        min=1,
        show_default=False,
    ),
]
SeedOption = Annotated[int, typer.Option(help="Seed of the --sample draw.")]
MinSeenOption = Annotated[
    float | None,
    typer.Option(
        help="Leave out views in which the photo showed less than this share of the drawn face (the rest "
        "is completed texture); the manifest's [cyan]seen[/] gives every view's share \\[default: keep all].",
        min=0.0,
        max=1.0,
        show_default=False,
    ),
]


def parse_views(yaw: str, pitch: str) -> tuple[View, ...]:
    """The yaw x pitch grid of views, or a one-line usage error."""
    from uvaug.render.grid import GridError, parse_angles, pose_grid

    try:
        return tuple(pose_grid(parse_angles(yaw, "yaw"), parse_angles(pitch, "pitch")))
    except GridError as exc:
        fail(str(exc))


def render_command(
    fits: Annotated[
        Path, typer.Argument(metavar="FITS", help="A `uvaug fit` output folder.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Output folder \\[default: FITS-render beside it].", show_default=False
        ),
    ] = None,
    uv: Annotated[
        Path | None,
        typer.Option(
            "--uv", help="Folder of completed UV maps (matched to fits by relative path).", show_default=False
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
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of the original photos, if they moved since fitting.", show_default=False),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(
            help="Also write a contact sheet PNG (each face's input photo, then its views).",
            show_default=False,
        ),
    ] = None,
    workers: WorkersOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo views an earlier run rendered.")
    ] = False,
) -> None:
    """Render every fitted face at every requested yaw/pitch: whole photos or recognition-ready crops."""
    from uvaug.artifacts import STATUS_OK, STATUS_SKIPPED
    from uvaug.render.run import MIRROR_BEYOND, RenderInputError, RenderOptions, plan_render, render_fits
    from uvaug.runner import available_cores

    views = parse_views(yaw, pitch)
    if not fits.is_dir():
        fail(f"fit folder not found: {fits}")
    if uv is not None and not uv.is_dir():
        fail(f"UV folder not found: {uv}")
    if images is not None and not images.is_dir():
        fail(f"image folder not found: {images}")
    out = output or default_output(fits, "render")
    options = RenderOptions(
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
    )
    try:
        plan = plan_render(fits, out, options, uv_dir=uv, images_dir=images, overwrite=overwrite)
    except RenderInputError as exc:
        fail(str(exc))
    if plan.faces == 0:
        fail(f"no fitted faces in {fits} (every image was no_face or error)")
    workers = workers or available_cores()

    rendered = {"ok": 0, "views": 0, "mirrored": 0, "skipped": 0}

    with progress_bar(unit="face") as progress:
        task = progress.add_task("render", total=len(plan.jobs))
        if plan.done_views:
            progress.console.print(f"resuming: {plan.done_views} views already rendered in {out}")

        def on_result(records: list) -> None:
            rendered["views"] += len(records)
            rendered["ok"] += sum(r["status"] == STATUS_OK for r in records)
            rendered["mirrored"] += sum(bool(r.get("mirrored")) for r in records)
            rendered["skipped"] += sum(r["status"] == STATUS_SKIPPED for r in records)
            progress.advance(task)

        report = render_fits(plan, out, options, workers=workers, on_result=on_result)
    rows = {
        "faces": plan.faces,
        "views per face": options.views_per_face
        if options.views_per_face == len(views)
        else f"{options.views_per_face} of {len(views)} (drawn per face, seed {seed})",
        "skipped (done earlier)": report.skipped,
        "rendered faces": report.processed,
        **{f"  {status}": n for status, n in sorted(report.statuses.items())},
        "views rendered": f"{rendered['ok']} of {rendered['views']}",
        "  from the mirrored photo": rendered["mirrored"],
        **({f"  left out (seen < {min_seen:g})": rendered["skipped"]} if min_seen is not None else {}),
        "time": f"{report.seconds:.1f} s",
        "rate": f"{rendered['ok'] / max(report.seconds, 1e-9):.1f} views/s ({workers} workers)",
        "manifest": out / "manifest.jsonl",
    }
    if sheet is not None:
        from uvaug.render.run import fit_photos, write_sheet

        written = write_sheet(out, sheet, options, photos=fit_photos(fits, images))
        rows["contact sheet"] = sheet if written else "not written: no view was rendered"
    console.print(summary_table("uvaug render", rows))
    print(out)
