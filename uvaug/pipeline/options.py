"""What a pipeline run is asked to do, and the settings a rerun into the same folder must share."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from uvaug.fit.fitter import FitOptions
from uvaug.io import write_text_atomic
from uvaug.render.grid import View, view_output_name
from uvaug.render.run import RenderOptions

SETTINGS_NAME = "pipeline.json"
REPORT_NAME = "report.json"
SHEET_NAME = "sheet.png"
#: Hidden folder (dataset loaders listing identity folders skip it) for ``--keep-intermediates``.
INTERMEDIATES = ".uvaug"


class SettingsMismatchError(ValueError):
    """The output folder holds a run made with other settings; resuming it would mix two datasets."""


@dataclass(frozen=True)
class PipelineOptions:
    render: RenderOptions
    fit: FitOptions = field(default_factory=FitOptions)
    method: str = "model"  # completion: "model" (ONNX) or "symmetric"
    model: str | None = None  # ONNX file; None: the shipped model
    device: str = "auto"
    batch_size: int = 8  # CPU: 8 is as fast per map as 16 at half the ONNX Runtime arena memory
    include_original: bool = False  # also write the input itself (aligned like the views with --align)
    keep_intermediates: bool = False

    def settings(self) -> dict[str, object]:
        """What decides the outputs' content and names (not where or how fast they are made)."""
        render = asdict(self.render)
        render["views"] = [[v.yaw, v.pitch] for v in self.render.views]
        if self.render.sample is None:  # as runs made before --sample recorded them: they resume
            del render["sample"], render["seed"]
        if self.render.min_seen is None:  # likewise for --min-seen
            del render["min_seen"]
        return {
            "fit": asdict(self.fit),
            "completion": {"method": self.method, "model": Path(self.model).name if self.model else None},
            "render": render,
            "include_original": self.include_original,
        }


def view_outputs(stem: PurePosixPath, face: int, views: tuple[View, ...], ext: str) -> list[str]:
    """Output paths (relative, posix) of one face's views: ``<stem>[.f<k>]_y+30_p+00.<ext>``."""
    return [(stem.parent / view_output_name(stem.name, face, view, ext)).as_posix() for view in views]


def original_output(stem: PurePosixPath, face: int, ext: str) -> str:
    """Where ``--include-original`` writes a face's (aligned) original: ``<stem>[.f<k>]<ext>``."""
    return (stem.parent / f"{stem.name}{f'.f{face}' if face else ''}{ext}").as_posix()


def check_settings(out: Path, options: PipelineOptions, overwrite: bool) -> None:
    """Record the settings in ``out``; refuse a resume whose settings differ (unless ``overwrite``)."""
    path = out / SETTINGS_NAME
    wanted = json.loads(json.dumps(options.settings()))  # tuples -> lists, as read back
    if path.is_file() and not overwrite:
        try:
            earlier = json.loads(path.read_text(encoding="utf-8")).get("settings")
        except (OSError, ValueError, AttributeError):
            earlier = None
        if earlier is not None and earlier != wanted:
            changed = _differences(earlier, wanted)
            raise SettingsMismatchError(
                f"{out} holds a pipeline run made with other settings ({', '.join(changed[:4])}); "
                "use another output folder, the same settings, or --overwrite to redo it"
            )
    write_text_atomic(path, json.dumps({"format": "uvaug.pipeline/1", "settings": wanted}, indent=2) + "\n")


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]
