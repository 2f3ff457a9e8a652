"""Render every fitted face at every requested view: whole photos or aligned crops, resumable per view."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import cv2
import numpy as np

from uvaug.artifacts import FIT_SUFFIX, STATUS_ERROR, STATUS_OK, STATUS_SKIPPED, FaceFit
from uvaug.fit.mirror import mirror_fit, mirror_uv
from uvaug.io import (
    MANIFEST_NAME,
    ImageLoadError,
    load_image,
    read_manifest,
    write_image_atomic,
)
from uvaug.render.align import ARCFACE_SIZE, arcface_matrix, five_points
from uvaug.render.grid import View, sample_views, view_output_name
from uvaug.render.renderer import Background, Camera, HeadRenderer, gl_context
from uvaug.render.scene import TO_GL, build_head_scene, target_rotation, view_angles
from uvaug.render.seen import seen_share, triangle_seen
from uvaug.render.texture import outline_texture
from uvaug.runner import RunReport, prepare_output, record_results, run_jobs

Record = dict[str, object]
#: A render manifest has one line per fitted face and view.
RENDER_KEY = ("input", "face", "view")


#: A view that would turn the head by more than this (degrees of yaw) from its photo is rendered from the
#: mirrored photo when that saves at least :data:`MIRROR_MIN_SAVING` degrees of turn: a face turned 30
#: degrees to one side, asked at 45 to the other, turns 15 degrees from its mirror image instead of 75 from
#: itself. Far turns show mostly completed texture and stretch the background over what the head uncovers;
#: the mirror image shows the face's own side. ``benchmarks/render_turned_faces.py`` (214 AFLW2000-3D dev
#: faces turned 20-50 degrees, rendered at 30 / 45 / 60 degrees to the other side and fitted again):
#: re-detected 97.7 / 95.8 / 83.2% -> 100 / 98.6 / 97.2%, yaw MAE 4.40 / 3.46 / 10.38 -> 1.01 / 2.05 / 6.91.
#: The view is then the person's mirror image (as flip augmentation makes it); the manifests say which are.
MIRROR_BEYOND = 45.0
#: Faces within half this of frontal are never mirrored: the mirror image would save them little turn.
MIRROR_MIN_SAVING = 20.0


class RenderInputError(ValueError):
    """The fit folder (or the UV folder) cannot be rendered at all."""


@dataclass(frozen=True)
class RenderOptions:
    views: tuple[View, ...]
    relative: bool = False  # views are offsets from the fitted pose
    background: Background = "photo"
    align: Literal["none", "arcface"] = "none"
    size: int = ARCFACE_SIZE  # side of aligned crops
    jpeg_quality: int = 95
    mirror_beyond: float | None = MIRROR_BEYOND  # None: every view turns the photo itself
    sample: int | None = None  # render only this many of ``views`` per face, drawn per face (None: all)
    seed: int = 0  # the draw's seed (with ``sample``)
    min_seen: float | None = None  # skip views whose seen share (uvaug.render.seen) is below this

    def keeps(self, seen: float | None) -> bool:
        """Whether a view of this seen share is rendered (an unknown share passes only without
        ``min_seen``)."""
        return self.min_seen is None or (seen is not None and seen >= self.min_seen)

    @property
    def extension(self) -> str:
        return ".png" if self.background == "none" else ".jpg"

    @property
    def views_per_face(self) -> int:
        return len(self.views) if self.sample is None else min(self.sample, len(self.views))

    def views_of(self, input: str, face: int) -> tuple[View, ...]:
        """The views of face ``face`` of ``input`` (its path relative to the input root, as manifests give
        it): all of them, or with ``sample`` its own draw (:func:`uvaug.render.grid.sample_views`)."""
        return sample_views(self.views, self.sample, f"{input}#{face}", self.seed)


@dataclass(frozen=True)
class RenderJob:
    input: str  # the photo's path relative to the fit input root (manifest ``input``)
    face: int
    fit: str  # absolute paths
    texture: str
    photo: str
    fit_uv: str  # the fit's own UV map, what the photo showed (the texture itself when no --uv)
    outputs: tuple[tuple[View, str], ...]  # views still to render and their output paths (relative)


@dataclass(frozen=True)
class RenderConfig:
    out_dir: str
    options: RenderOptions


@dataclass
class RenderPlan:
    jobs: list[RenderJob] = field(default_factory=list)
    faces: int = 0  # fitted faces found
    done_views: int = 0  # views an earlier run finished


def read_texture(path: str | os.PathLike) -> np.ndarray:
    """RGBA UV map; a map without alpha counts as complete (alpha 255 everywhere)."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageLoadError(f"cannot read UV map {path}")
    if data.ndim == 2:
        data = cv2.cvtColor(data, cv2.COLOR_GRAY2BGR)
    if data.dtype != np.uint8:
        data = (data >> 8).astype(np.uint8)
    if data.shape[0] != data.shape[1]:
        raise ImageLoadError(f"UV map {path} is not square ({data.shape[1]}x{data.shape[0]})")
    rgba = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGBA)
    return np.ascontiguousarray(rgba)


def _fit_stem(fit_rel: str, face: int) -> PurePosixPath:
    """``a/b/img.f0.fit.npz`` -> ``a/b/img``."""
    path = PurePosixPath(fit_rel)
    return path.with_name(path.name[: -len(f".f{face}{FIT_SUFFIX}")])


def plan_render(
    fits_dir: Path,
    out: Path,
    options: RenderOptions,
    *,
    uv_dir: Path | None = None,
    images_dir: Path | None = None,
    overwrite: bool = False,
) -> RenderPlan:
    """One job per fitted face with the views it still needs; views whose output exists are done."""
    manifest = fits_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise RenderInputError(
            f"{fits_dir} is not a fit output folder (no {MANIFEST_NAME}); run `uvaug fit` first"
        )
    plan = RenderPlan()
    for rec in read_manifest(manifest):
        if rec.get("status") != STATUS_OK or rec.get("fit") is None:
            continue
        face = int(rec["face"])
        plan.faces += 1
        stem = _fit_stem(str(rec["fit"]), face)
        outputs = []
        for view in options.views_of(str(rec["input"]), face):
            rel = (stem.parent / view_output_name(stem.name, face, view, options.extension)).as_posix()
            if not overwrite and (out / rel).is_file():
                plan.done_views += 1
            else:
                outputs.append((view, rel))
        if not outputs:
            continue
        texture = (uv_dir or fits_dir) / str(rec["uv"])
        fit_uv = fits_dir / str(rec["uv"])
        photo = _photo_path(rec, images_dir)
        plan.jobs.append(
            RenderJob(
                input=str(rec["input"]),
                face=face,
                fit=str(fits_dir / str(rec["fit"])),
                texture=str(texture),
                photo=str(photo),
                fit_uv=str(fit_uv),
                outputs=tuple(outputs),
            )
        )
    return plan


def _load_photo(path: str) -> np.ndarray:
    """The fitted photo; a failure names the file, since :func:`load_image` only says what went wrong.

    A bare "file not found" in a render manifest does not tell which of a face's inputs is missing (fit,
    UV map or photo) nor where it was looked for, which is what a user needs to pass ``--images``.
    """
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise ImageLoadError(f"cannot read photo {path}: {exc}") from None


def _photo_if_readable(path: str, fit: FaceFit) -> np.ndarray | None:
    """The fitted photo if it can be read and is the size the fit was made on, else None."""
    photo = read_photo(path)
    return photo if photo is not None and _fitted_on(photo, fit) else None


def _fitted_on(photo: np.ndarray, fit: FaceFit) -> bool:
    """Whether ``photo`` is the size ``fit`` was made on."""
    return tuple(photo.shape[:2]) == tuple(int(v) for v in fit.image_size)


def renders_mirrored(fit: FaceFit, view: View, options: RenderOptions) -> bool:
    """Whether a view is rendered from the mirrored photo (see :data:`MIRROR_BEYOND`)."""
    if options.mirror_beyond is None:
        return False
    yaw, _ = view_angles(fit, view.yaw, view.pitch, options.relative)
    turn, mirrored_turn = abs(yaw - fit.yaw), abs(yaw + fit.yaw)
    return turn > options.mirror_beyond and turn - mirrored_turn >= MIRROR_MIN_SAVING


@dataclass(frozen=True)
class RenderedView:
    """One rendered view of a face and where the face lies in it."""

    image: np.ndarray
    mirrored: bool  # rendered from the mirrored photo (:func:`renders_mirrored`)
    # (468, 2) the mesh's vertices in the image's pixels (x right, y down), hidden ones included: landmarks
    # for aligning the view to any other template
    points: np.ndarray
    seen: float | None = None  # share of the drawn face the photo showed (:mod:`uvaug.render.seen`)

    def manifest_points(self) -> list[list[float]]:
        """The five ArcFace points (:func:`uvaug.render.align.five_points`) as the manifests give them."""
        return np.round(five_points(self.points), 2).tolist()


class FaceViews:
    """One fitted face, ready to render at any view: the scene of its photo and, made when a view first
    needs it, that of the mirrored photo (:func:`renders_mirrored`)."""

    def __init__(
        self, fit: FaceFit, texture: np.ndarray, photo: np.ndarray | None, seen: np.ndarray | None = None
    ):
        """``photo``: the photo the fit was made on; it textures the background and the face's outline
        (:func:`uvaug.render.texture.outline_texture`). None: neither (no ``background="photo"``).
        ``seen``: the (S, S) alpha of the fit's own UV map, what the photo showed (a completed map's alpha
        says nothing of it); None: views report no seen share."""
        if photo is not None and not _fitted_on(photo, fit):
            raise ImageLoadError("the photo is not the size the fit was made on")
        self.fit, self._texture, self._photo = fit, texture, photo
        self._seen = None if seen is None else (triangle_seen(seen), triangle_seen(mirror_uv(seen)))
        self._outline = None if photo is None else outline_texture(fit, photo)
        self.renderer = HeadRenderer(build_head_scene(fit), texture, photo, outline=self._outline)
        self._mirrored: tuple[FaceFit, HeadRenderer] | None = None

    def mirrored(self) -> tuple[FaceFit, HeadRenderer]:
        """The mirrored photo's fit and scene."""
        if self._mirrored is None:
            fit = mirror_fit(self.fit)
            photo = None if self._photo is None else np.ascontiguousarray(self._photo[:, ::-1])
            outline = None if self._outline is None else self._outline.mirrored()
            renderer = HeadRenderer(build_head_scene(fit), mirror_uv(self._texture), photo, outline=outline)
            self._mirrored = fit, renderer
        return self._mirrored

    def _turned(
        self, view: View, options: RenderOptions
    ) -> tuple[bool, HeadRenderer, np.ndarray, np.ndarray]:
        """Whether the view is rendered from the mirrored photo, the renderer of that photo, the head's
        rotation and the face's vertices (GL frame) in the view."""
        mirrored = renders_mirrored(self.fit, view, options)
        fit, renderer = self.mirrored() if mirrored else (self.fit, self.renderer)
        # absolute angles, as this photo's fit reads them: the mirrored fit turns to the same pose
        rotation = target_rotation(fit, *view_angles(self.fit, view.yaw, view.pitch, options.relative))
        return mirrored, renderer, rotation, renderer.head.face_at(rotation)

    def _seen_share(self, mirrored: bool, face: np.ndarray) -> float | None:
        return None if self._seen is None else seen_share(face, self._seen[int(mirrored)])

    def seen_share(self, view: View, options: RenderOptions) -> float | None:
        """Share of the face drawn in the view that the photo showed (:mod:`uvaug.render.seen`), without
        rendering it; None when the fit's own map was not given."""
        mirrored, _, _, face = self._turned(view, options)
        return self._seen_share(mirrored, face)

    def left_out(self, view: View, options: RenderOptions) -> tuple[bool, float | None]:
        """Whether ``options.min_seen`` leaves the view out, and its seen share; without ``min_seen``
        (False, None), and the face is not turned a second time for a share :meth:`render_view` gives."""
        if options.min_seen is None:
            return False, None
        share = self.seen_share(view, options)
        return not options.keeps(share), share

    def render_view(self, view: View, options: RenderOptions) -> RenderedView:
        """One view (the whole photo, or a crop aligned to the ArcFace template), whether it was rendered
        from the mirrored photo, where it draws the mesh's vertices, and its seen share."""
        mirrored, renderer, rotation, face = self._turned(view, options)
        points = (face * TO_GL)[:, :2]  # photo pixels
        if options.align == "arcface":
            matrix = arcface_matrix(five_points(points), options.size)
            camera = Camera.from_similarity(matrix, options.size, options.size)
            points = points @ matrix[:, :2].T + matrix[:, 2]
        else:
            camera = Camera.whole_photo(*(int(v) for v in self.fit.image_size))
        image = renderer.render(rotation, camera, options.background, face)
        return RenderedView(image, mirrored, points, self._seen_share(mirrored, face))

    def render(self, view: View, options: RenderOptions) -> tuple[np.ndarray, bool]:
        """One view and whether it was rendered from the mirrored photo (:meth:`render_view`)."""
        rendered = self.render_view(view, options)
        return rendered.image, rendered.mirrored


def aligned_photo(photo: np.ndarray, views: FaceViews, size: int) -> np.ndarray:
    """The original photo cropped to the ArcFace template by the fitted face's own five points."""
    rotation = target_rotation(views.fit, 0.0, 0.0, relative=True)
    points = five_points(views.renderer.head.face_at(rotation) * TO_GL)
    matrix = arcface_matrix(points, size)
    return cv2.warpAffine(
        photo, matrix[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


class _RenderWorker:
    """Per-process state: the GL context, made once and reused for every face."""

    def __init__(self, config: RenderConfig):
        self.out = Path(config.out_dir)
        self.options = config.options
        gl_context()  # fail at start-up, not per face, when no GL platform works

    def _record(
        self,
        job: RenderJob,
        view: View,
        rel: str | None,
        status: str,
        message: str = "",
        mirrored: bool | None = None,
        points: list[list[float]] | None = None,
        seen: float | None = None,
    ) -> Record:
        return {
            "input": job.input,
            "face": job.face,
            "view": view.tag.lstrip("_"),
            "yaw": view.yaw,
            "pitch": view.pitch,
            "status": status,
            "message": message,
            "output": rel,
            "mirrored": mirrored,  # rendered from the mirrored photo (null: not rendered)
            # the five ArcFace points in the output image (null: not rendered), for other alignments
            "points": points,
            # share of the drawn face the photo showed (null: not known); see uvaug.render.seen
            "seen": None if seen is None else round(seen, 3),
        }

    def _left_out(self, job: RenderJob, view: View, seen: float | None) -> Record:
        """The record of a view ``--min-seen`` leaves out (an error when the fit's own map is missing)."""
        if seen is None:
            message = f"--min-seen needs the fit's own UV map, which cannot be read: {job.fit_uv}"
            return self._record(job, view, None, STATUS_ERROR, message)
        limit = self.options.min_seen
        message = f"the photo showed {seen:.0%} of the face in this view (--min-seen {limit:g})"
        return self._record(job, view, None, STATUS_SKIPPED, message, seen=seen)

    def __call__(self, job: RenderJob) -> list[Record]:
        opts = self.options
        try:
            fit = FaceFit.load(job.fit)
            texture = read_texture(job.texture)
            fit_seen = _fit_alpha(job, texture)
            # the photo textures the face's outline too; only the photo background needs it
            if opts.background == "photo":
                photo = _load_photo(job.photo)
            else:
                photo = _photo_if_readable(job.photo, fit)
            try:
                views = FaceViews(fit, texture, photo, seen=fit_seen)
            except ImageLoadError:
                raise ImageLoadError(f"photo {job.photo} is not the size the fit was made on") from None
        except (OSError, ValueError, ImageLoadError) as exc:
            return [self._record(job, view, None, STATUS_ERROR, str(exc)) for view, _ in job.outputs]
        records = []
        for view, rel in job.outputs:
            try:
                left_out, share = views.left_out(view, opts)
                if left_out:
                    records.append(self._left_out(job, view, share))
                    continue
                rendered = views.render_view(view, opts)
                write_image_atomic(self.out / rel, rendered.image, jpeg_quality=opts.jpeg_quality)
                points = rendered.manifest_points()
                mirrored, seen = rendered.mirrored, rendered.seen
                records.append(
                    self._record(job, view, rel, STATUS_OK, mirrored=mirrored, points=points, seen=seen)
                )
            except Exception as exc:  # one bad view must not stop the others
                records.append(self._record(job, view, None, STATUS_ERROR, f"{type(exc).__name__}: {exc}"))
        return records


def _fit_alpha(job: RenderJob, texture: np.ndarray) -> np.ndarray | None:
    """Alpha of the fit's own UV map (what the photo showed): the texture's when it is that map; None when
    it cannot be read (views then report no seen share)."""
    if job.fit_uv == job.texture:
        return texture[..., 3]
    try:
        return read_texture(job.fit_uv)[..., 3]
    except (OSError, ImageLoadError):
        return None


def render_fits(
    plan: RenderPlan,
    out_dir: str | os.PathLike,
    options: RenderOptions,
    *,
    workers: int = 1,
    on_result: Callable[[Sequence[Record]], None] | None = None,
) -> RunReport:
    """Run a :func:`plan_render` plan; ``manifest.jsonl`` gets one line per face and view."""
    out = prepare_output(out_dir)
    report = RunReport(total=plan.faces, skipped=plan.faces - len(plan.jobs))
    config = RenderConfig(out_dir=str(out), options=options)
    results = run_jobs(plan.jobs, _RenderWorker, config, workers)
    # A rerun redoes only missing views: keep the other views' records (latest record per face and view).
    record_results(out, results, report, key=RENDER_KEY, whole_inputs=False, on_result=on_result)
    return report


#: Label of the contact sheet's first column, the input photo each row's views were made from.
INPUT_COLUMN = "input"
#: A contact sheet's mark on views rendered from the mirrored photo.
MIRROR_MARK = "mirror"


def fit_photos(fits_dir: Path, images_dir: Path | None = None) -> dict[str, str]:
    """Photo path per fitted input (the manifest's ``input``), as :func:`plan_render` finds them."""
    photos = {}
    for rec in read_manifest(fits_dir / MANIFEST_NAME):
        if rec.get("status") == STATUS_OK:
            photos[str(rec["input"])] = str(_photo_path(rec, images_dir))
    return photos


def _photo_path(rec: Record, images_dir: Path | None) -> Path:
    """A fit record's photo: under ``images_dir`` when given, else where the fit read it."""
    return images_dir / str(rec["input"]) if images_dir else Path(str(rec.get("path") or rec["input"]))


def read_photo(path: str | os.PathLike | None) -> np.ndarray | None:
    """An input photo for a contact sheet's input column (EXIF-rotated RGB); None if it cannot be read."""
    if path is None:
        return None
    try:
        return load_image(path)
    except ImageLoadError:
        return None


def write_sheet(
    out: Path,
    sheet_path: Path,
    options: RenderOptions,
    max_faces: int = 16,
    photos: Mapping[str, str] | None = None,
) -> bool:
    """Contact sheet of the first ``max_faces`` rendered faces (sorted by input) by their views
    (``options.views_of``); with ``photos`` (:func:`fit_photos`), the input photo comes first in each row, to
    compare the views with. False, and nothing written, when no face has a rendered view."""
    by_face: dict[tuple[str, int], dict[str, Record]] = {}
    for rec in read_manifest(out / MANIFEST_NAME):
        if rec.get("status") == STATUS_OK and rec.get("output"):
            by_face.setdefault((str(rec["input"]), int(rec["face"])), {})[str(rec["view"])] = rec
    rows = []
    inputs: dict[str, np.ndarray | None] = {}  # a photo with several faces is decoded once
    for (name, face), records in sorted(by_face.items())[:max_faces]:
        if photos is not None and name not in inputs:
            inputs[name] = read_photo(photos.get(name))
        cells = []
        for view in options.views_of(name, face):
            rec = records.get(view.tag.lstrip("_"))
            path = out / str(rec["output"]) if rec else None
            cells.append(SheetCell(view, path, bool(rec and rec.get("mirrored"))))
        rows.append((name if face == 0 else f"{name} #{face}", inputs.get(name), cells))
    if not rows:
        return False
    write_views_sheet(sheet_path, rows, with_photos=photos is not None, views=grid_columns(options))
    return True


def grid_columns(options: RenderOptions) -> tuple[View, ...] | None:
    """A sheet's view columns: the grid, or None when each face has its own sample of it."""
    return options.views if options.views_per_face == len(options.views) else None


@dataclass(frozen=True)
class SheetCell:
    """One rendered view on a contact sheet: its pose, its image file (None: missing) and whether it was
    rendered from the mirrored photo."""

    view: View
    path: Path | None
    mirrored: bool = False


#: One contact sheet row of rendered views: its label, its input photo, and its views' cells.
SheetRow = tuple[str, np.ndarray | None, Sequence[SheetCell]]


def write_views_sheet(
    sheet_path: Path, rows: Sequence[SheetRow], with_photos: bool, views: Sequence[View] | None
) -> None:
    """A contact sheet of rendered views (the render stage's and the pipeline's; ``rows`` not empty), after
    an input column of each row's photo when ``with_photos``. ``views``: the columns, each row's cells being
    those views in that order; None (``--sample``: each face its own views): columns are numbered and every
    cell is marked with its view. Mirrored views are marked :data:`MIRROR_MARK`."""
    from uvaug.render.sheet import write_contact_sheet

    first = 1 if with_photos else 0  # the column of the first view
    cells_by_row = []
    marks: dict[tuple[int, int], str] = {}
    for row, (label, photo, cells) in enumerate(rows):
        images = [photo] if with_photos else []
        for column, cell in enumerate(cells, start=first):
            images.append(read_rgb(cell.path) if cell.path is not None else None)
            mark = [MIRROR_MARK] if cell.mirrored else []
            if views is None:
                mark.insert(0, cell.view.label)
            if mark:
                marks[row, column] = " ".join(mark)
        cells_by_row.append((label, images))
    if views is None:  # every face has as many views (RenderOptions.views_per_face)
        labels = [f"view {k}" for k in range(1, len(rows[0][2]) + 1)]
    else:
        labels = [view.label for view in views]
    columns = [INPUT_COLUMN, *labels] if with_photos else labels
    write_contact_sheet(sheet_path, cells_by_row, columns, marks=marks)


def read_rgb(path: Path) -> np.ndarray | None:
    """An output image as RGB (RGBA for PNGs with alpha) for a contact sheet; None if unreadable."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        return None
    return cv2.cvtColor(
        data, cv2.COLOR_BGRA2RGBA if data.ndim == 3 and data.shape[2] == 4 else cv2.COLOR_BGR2RGB
    )
