"""Locate the model files that ship with uvaug and verify them before use.

Models live in the repository's top-level ``models/`` folder, which the wheel installs as ``uvaug/_models``.
Every file the default pipeline needs is listed in :data:`SHIPPED` with its SHA-256, so a truncated download,
a Git LFS pointer or a tampered file fails loudly at load time instead of producing wrong faces.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MODELS_ENV = "UVAUG_MODELS_DIR"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    sha256: str
    size: int
    what: str


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            "face_landmarker.task",
            "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
            3_758_596,
            "MediaPipe Face Landmarker bundle (BlazeFace detector, 478-point landmarks, canonical mesh)",
        ),
        ShippedModel(
            "uv_completion.onnx",
            "c7e40198676def208aaf97380accd494f19fae3225f4b390fd39e262ef5e712f",
            20_194_794,
            "Attention ResCUNet UV completion generator trained on UTKFace (see models/uv_completion.md)",
        ),
    )
}


class ModelError(RuntimeError):
    """A model file is missing or is not the file uvaug was built against."""


def model_dirs() -> list[Path]:
    """Folders searched for models, in order: $UVAUG_MODELS_DIR, installed package data, source tree."""
    dirs = []
    if os.environ.get(MODELS_ENV):
        dirs.append(Path(os.environ[MODELS_ENV]))
    here = Path(__file__).resolve().parent
    dirs += [here / "_models", here.parent / "models"]
    return dirs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def model_path(name: str) -> Path:
    """Path of a shipped model, checksum verified (once per process)."""
    spec = SHIPPED.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; shipped models: {', '.join(SHIPPED)}")
    searched = model_dirs()
    for folder in searched:
        path = folder / name
        if path.is_file():
            actual = sha256_of(path)
            if actual != spec.sha256:
                raise ModelError(
                    f"model file {path} is altered or incomplete (sha256 {actual[:12]}..., "
                    f"expected {spec.sha256[:12]}...); reinstall uvaug"
                )
            return path
    raise ModelError(
        f"model file {name} not found (searched {', '.join(str(d) for d in searched)}); "
        f"reinstall uvaug or set {MODELS_ENV} to a folder holding it"
    )
