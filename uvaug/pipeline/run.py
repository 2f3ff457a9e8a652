"""One pipeline run: inputs streamed from the folder, finished ones skipped, results into the manifest.

The executor (local processes, or Ray Data on a cluster) only turns tasks into :class:`InputResult`\\ s;
everything a user reads (``manifest.jsonl``, ``report.json``, ``sheet.png``) is written here, the same way for
every executor.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from uvaug.artifacts import (
    PIPELINE_MANIFEST_FIELDS,
    REASON_FOLDER,
    STATUS_ERROR,
    STATUS_OK,
)
from uvaug.io import (
    MANIFEST_NAME,
    InputError,
    ManifestWriter,
    discover_inputs,
    iter_inputs,
    iter_manifest,
    write_text_atomic,
)
from uvaug.pipeline.local import LocalExecutor
from uvaug.pipeline.options import REPORT_NAME, SHEET_NAME, PipelineOptions, check_settings
from uvaug.pipeline.state import ManifestState
from uvaug.pipeline.work import InputResult, InputTask
from uvaug.runner import available_cores, prepare_output

if TYPE_CHECKING:
    from uvaug.pipeline.ray_executor import RayExecutor

Record = dict[str, object]
EXECUTORS = ("local", "ray")
SHEET_ROWS = 8


class PipelineInputError(InputError):
    """The input or output folder cannot be used for a pipeline run (one-line message)."""


@dataclass
class PipelineReport:
    found: int = 0  # inputs seen this run
    skipped: int = 0  # finished by an earlier run
    processed: int = 0
    statuses: Counter = field(default_factory=Counter)  # this run: status -> inputs
    reasons: Counter = field(default_factory=Counter)  # this run: reason -> inputs (not ok)
    faces: int = 0
    views: int = 0
    mirrored: int = 0  # views rendered from the mirrored photo
    left_out: int = 0  # views --min-seen left out
    stage_seconds: Counter = field(default_factory=Counter)  # busy seconds summed over workers
    stage_items: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    workers: int = 1
    executor: str = "local"
    output_excluded: bool = False  # the output folder is inside the input folder and was left out
    totals: Counter = field(default_factory=Counter)  # the whole output folder: (status, reason) -> inputs
    peak_rss_mb: float = 0.0
    sheet: str | None = None

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def count(self, record: Record) -> None:
        self.processed += 1
        self.statuses[record["status"]] += 1
        if record["status"] != STATUS_OK:
            self.reasons[record["reason"]] += 1
        self.faces += int(record["faces"] or 0)
        self.views += int(record["views"] or 0)
        self.mirrored += len(record.get("mirrored") or ())
        self.left_out += len(record.get("skipped") or ())

    def to_json(self) -> dict[str, object]:
        stages = {
            name: {
                "items": self.stage_items[name],
                "busy_seconds": round(self.stage_seconds[name], 3),
                "ms_per_item": round(1000 * self.stage_seconds[name] / max(self.stage_items[name], 1), 2),
            }
            for name in ("fit", "complete", "render")
        }
        totals: dict[str, dict[str, int]] = {}
        for (status, reason), n in sorted(self.totals.items()):
            totals.setdefault(status, {})[reason or status] = n
        return {
            "inputs_found": self.found,
            "skipped_finished_earlier": self.skipped,
            "processed": self.processed,
            "statuses": dict(self.statuses),
            "reasons": dict(self.reasons),
            "faces": self.faces,
            "views": self.views,
            "views_mirrored": self.mirrored,
            "views_left_out": self.left_out,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.rate, 3),
            "views_per_second": round(self.views / self.seconds, 3) if self.seconds else 0.0,
            "workers": self.workers,
            "executor": self.executor,
            "stages": stages,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "output_folder_excluded_from_inputs": self.output_excluded,
            "all_inputs": totals,
            "sheet": self.sheet,
        }


def check_folders(source: Path, out: Path) -> bool:
    """Refuse an output folder that is the input or holds it; True when it lies inside the input."""
    src, dst = Path(os.path.realpath(source)), Path(os.path.realpath(out))
    if src == dst:
        raise PipelineInputError(f"the output folder {out} is the input folder; choose another with -o")
    if dst in src.parents:
        raise PipelineInputError(
            f"the input {source} is inside the output folder {out}; outputs would mix with inputs"
        )
    return src.is_dir() and src in dst.parents


def input_record(result: InputResult) -> Record:
    """The manifest line of one finished input."""
    fit = result.fit
    record: Record = dict.fromkeys(PIPELINE_MANIFEST_FIELDS)
    record.update(input=fit.task.rel, faces=len(fit.faces), message="", reason="")
    record["pose"] = [[round(w.fit.yaw, 2), round(w.fit.pitch, 2), round(w.fit.roll, 2)] for w in fit.faces]
    faces = sorted(result.faces, key=lambda f: f.face)
    outputs = [rel for face in faces for rel in face.outputs]
    record["outputs"] = outputs
    record["views"] = sum(face.views for face in faces)
    record["mirrored"] = [rel for face in faces for rel in face.mirrored]
    record["points"] = {rel: points for face in faces for rel, points in face.points.items()}
    record["seen"] = {rel: share for face in faces for rel, share in face.seen.items()}
    record["skipped"] = [rel for face in faces for rel in face.skipped]
    if fit.status is not None:
        record.update(status=fit.status, reason=fit.reason, message=fit.message)
        return record
    errors = [f"face {face.face}: {e}" if len(faces) > 1 else e for face in faces for e in face.errors]
    if errors:
        reason = next(face.reason for face in faces if face.reason)
        message = "; ".join(errors)
        record.update(status=STATUS_ERROR, reason=reason, message=message[:1000])
    else:
        record["status"] = STATUS_OK
    return record


def run_pipeline(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: PipelineOptions,
    *,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    overwrite: bool = False,
    on_skip: Callable[[], None] | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> PipelineReport:
    """Fit, complete and render every image under ``source`` into ``out_dir``; resumable; returns the report.

    Raises :class:`PipelineInputError` for unusable folders, :class:`uvaug.pipeline.SettingsMismatchError`
    when ``out_dir`` holds a run made with other settings, :class:`uvaug.assets.ModelError` for a missing
    completion model, :class:`uvaug.pipeline.ray_executor.RayExecutorError` when ``executor="ray"`` cannot
    run. ``workers``: processes (local) or actors per CPU stage (Ray; default: one per CPU of the cluster).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    src, out = Path(source), Path(out_dir)
    if not src.exists():
        raise PipelineInputError(f"input not found: {source}")
    report = PipelineReport(executor=executor)
    report.output_excluded = check_folders(src, out)
    try:  # as `uvaug fit` does: a folder without images is a mistake, not a run of nothing
        first = next(iter_inputs(src, exclude=[out], on_error=lambda _rel, _message: None), None)
    except InputError as exc:
        raise PipelineInputError(str(exc)) from None
    if first is None:
        raise PipelineInputError(f"no images found in {source}")
    out = prepare_output(out)
    check_settings(out, options, overwrite)
    runner = _executor(executor, out, options, workers, ray_address)
    state = ManifestState() if overwrite else ManifestState.scan(out / MANIFEST_NAME)
    start = time.perf_counter()
    with ManifestWriter(out / MANIFEST_NAME) as manifest:

        def record(rec: Record) -> None:
            manifest.write(rec)
            report.count(rec)
            if on_record:
                on_record(rec)

        def folder_error(rel: PurePosixPath, message: str) -> None:
            rec: Record = dict.fromkeys(PIPELINE_MANIFEST_FIELDS)
            rec.update(input=f"{rel.as_posix()}/", status=STATUS_ERROR, reason=REASON_FOLDER, message=message)
            rec.update(faces=0, views=0, outputs=[], mirrored=[], pose=[], points={}, seen={}, skipped=[])
            record(rec)

        def tasks() -> Iterator[InputTask]:
            for item, stem in iter_inputs(src, exclude=[out], on_error=folder_error):
                report.found += 1
                rel = item.rel.as_posix()
                if state.is_finished(rel):
                    report.skipped += 1
                    if on_skip:
                        on_skip()
                    continue
                yield InputTask(str(item.path), rel, stem.as_posix())

        def finished(result: InputResult) -> None:
            for stage, seconds in result.fit.seconds.items():
                report.stage_seconds[stage] += seconds
                report.stage_items[stage] += 1
            if result.complete_seconds:
                report.stage_seconds["complete"] += result.complete_seconds
                report.stage_items["complete"] += 1
            for face in result.faces:
                report.stage_seconds["render"] += face.seconds
                report.stage_items["render"] += 1
            record(input_record(result))

        try:
            runner.run(tasks(), finished)
        finally:
            report.seconds = time.perf_counter() - start
            report.workers = runner.workers or report.workers  # Ray: known once the cluster is planned
    report.totals = ManifestState.scan(out / MANIFEST_NAME).counts
    report.peak_rss_mb = peak_rss_mb()
    report.sheet = write_pipeline_sheet(out, options, src)
    write_text_atomic(out / REPORT_NAME, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _executor(
    name: str, out: Path, options: PipelineOptions, workers: int | None, ray_address: str | None
) -> LocalExecutor | RayExecutor:
    """The chosen executor, its completion model checked before any input is read."""
    if name == "ray":
        from uvaug.pipeline.ray_executor import RayExecutor

        if options.method == "model":  # loaded by the cluster's completion actors; fail early here if absent
            from uvaug.complete.onnx_runtime import completion_model_path

            completion_model_path(options.model)
        return RayExecutor(str(out), options, workers, address=ray_address)
    completer = None
    if options.method == "model":  # one batched session here; per-map completers run in the workers
        from uvaug.complete.run import create_completer

        completer = create_completer("model", options.model, device=options.device)
    return LocalExecutor(str(out), options, workers or available_cores(), completer)


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of the largest finished child (worker), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def _photo_locator(source: Path) -> Callable[[str], Path | None]:
    """The photo behind a manifest ``input``: under a source folder (no walk needed), or the one photo or
    list file's entry of that name."""
    if source.is_dir():
        return lambda rel: source / rel
    try:
        paths = {item.rel.as_posix(): item.path for item in discover_inputs(source)}
    except InputError:  # the source changed since the run began: the sheet shows no photos, not an error
        paths = {}
    return paths.get


def write_pipeline_sheet(out: Path, options: PipelineOptions, source: Path | None = None) -> str | None:
    """``sheet.png``: the first finished inputs (manifest order) by the requested views; None if none. With
    the run's ``source`` (a folder or one photo), each row starts with the input photo."""
    from uvaug.render.run import SheetCell, grid_columns, read_photo, write_views_sheet

    ext = options.render.extension
    photo_of = _photo_locator(source) if source is not None else None
    rows = []
    for rec in iter_manifest(out / MANIFEST_NAME):
        if rec.get("status") != STATUS_OK or not rec.get("outputs"):
            continue
        photo = read_photo(photo_of(str(rec["input"]))) if photo_of is not None else None
        mirrored = set(rec.get("mirrored") or ())
        cells = []
        for view in options.render.views_of(str(rec["input"]), 0):  # a row shows the largest face's views
            rel = next((o for o in rec["outputs"] if o.endswith(f"{view.tag}{ext}")), None)
            cells.append(SheetCell(view, out / rel if rel else None, rel in mirrored))
        rows.append((str(rec["input"]), photo, cells))
        if len(rows) == SHEET_ROWS:
            break
    if not rows:
        return None
    write_views_sheet(
        out / SHEET_NAME, rows, with_photos=photo_of is not None, views=grid_columns(options.render)
    )
    return SHEET_NAME
