"""Every file a stage writes and a later stage reads is defined here, once: names, fields and formats.

Per input image ``<rel>/<stem>.<ext>`` and detected face ``k`` (0 = largest), the fit stage writes
``<rel>/<stem>.f<k>.uv.png`` (RGBA UV map), ``<rel>/<stem>.f<k>.fit.npz`` (the fit, :class:`FaceFit`) and,
with ``--mesh``, ``<rel>/<stem>.f<k>.glb``. Each output folder has one ``manifest.jsonl`` with a line per
input image and face (:data:`MANIFEST_FIELDS`).

The completion stage writes each completed UV map under the same relative path as its input map (so
``<rel>/<stem>.f<k>.uv.png`` for a fit output), which is how later stages pair completed maps with fits, and
a ``manifest.jsonl`` with a line per input map (:data:`COMPLETE_MANIFEST_FIELDS`).

The pipeline writes the views of each input beside each other in the input's own folder layout
(``<rel>/<stem>_y+30_p+00.jpg``, as the render stage names them), one ``manifest.jsonl`` line per input
(:data:`PIPELINE_MANIFEST_FIELDS`), ``pipeline.json`` (the settings a rerun must share), ``report.json`` and
``sheet.png``; with ``--keep-intermediates`` the fit stage's artifacts under ``.uvaug/fit/`` and the
completed UV maps under ``.uvaug/uv/`` (a hidden folder, so dataset loaders that list identity folders
never see it).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

import numpy as np

FIT_FORMAT = "uvaug.fit/1"
FIT_SUFFIX = ".fit.npz"
UV_SUFFIX = ".uv.png"
MESH_SUFFIX = ".glb"

STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_ERROR = "error"
#: A view left out on purpose (``--min-seen``): not an error, and a rerun leaves it out again.
STATUS_SKIPPED = "skipped"

#: Keys of every fit manifest line; ``face`` is null for a line that speaks for a whole image.
MANIFEST_FIELDS = ("input", "face", "status", "message", "yaw", "pitch", "roll", "uv", "fit", "path")

#: Keys of every completion manifest line: ``input`` and ``output`` (paths relative to the input and output
#: folders), ``known`` (fraction of the face's texels the input map knew), ``method`` (``model`` or
#: ``symmetric``) and ``model`` (the ONNX file's name, null for ``symmetric``).
COMPLETE_MANIFEST_FIELDS = ("input", "status", "message", "output", "known", "method", "model")

#: Keys of every pipeline manifest line: ``input`` (path relative to the input folder), ``status``,
#: ``reason`` (a short fixed phrase to count by: :data:`PIPELINE_REASONS`), ``message`` (the details),
#: ``faces`` (fitted), ``pose`` (fitted [yaw, pitch, roll] per face), ``views`` (views written), ``outputs``
#: (paths relative to the output folder), ``mirrored`` (those of the outputs rendered from the mirrored
#: photo: the person's mirror image, see :data:`uvaug.render.run.MIRROR_BEYOND`) and ``points`` (each view
#: output's five ArcFace points in its own pixels, by path: eye centres, nose tip, mouth corners), ``seen``
#: (each view output's seen share, by path: see :mod:`uvaug.render.seen`) and ``skipped`` (the views
#: ``--min-seen`` left out, by the path they would have had).
PIPELINE_MANIFEST_FIELDS = (
    "input",
    "status",
    "reason",
    "message",
    "faces",
    "pose",
    "views",
    "outputs",
    "mirrored",
    "points",
    "seen",
    "skipped",
)
#: Why a pipeline input is not ``ok``.
REASON_UNREADABLE = "unreadable image"
REASON_NO_FACE = "no face detected"
REASON_FIT = "fit failed"
REASON_COMPLETE = "completion failed"
REASON_RENDER = "render failed"
REASON_WRITE = "write failed"
REASON_CRASH = "worker crashed"
REASON_FOLDER = "unreadable folder"
PIPELINE_REASONS = (
    REASON_UNREADABLE,
    REASON_NO_FACE,
    REASON_FIT,
    REASON_COMPLETE,
    REASON_RENDER,
    REASON_WRITE,
    REASON_CRASH,
    REASON_FOLDER,
)

#: Side lengths (texels) a square UV map may have; the fit stage writes 256 by default.
UV_SIZE_MIN, UV_SIZE_MAX = 16, 4096


def artifact_path(stem: PurePosixPath, face: int, suffix: str) -> PurePosixPath:
    """Path of face ``face``'s artifact for an input whose stem (rel path without extension) is ``stem``."""
    return stem.with_name(f"{stem.name}.f{face}{suffix}")


@dataclass
class FaceFit:
    """One fitted face. Photo coordinates: pixels, x right, y down, z away from the camera (same scale as x).

    ``vertices`` are the dense mesh (the canonical mesh's 468 vertices, i.e. ``landmarks[:468]``); the
    triangles and UVs are the canonical mesh's (:func:`uvaug.fit.mesh_topology`). ``rotation`` maps the
    canonical face into the y-up camera frame and gives ``yaw``/``pitch``/``roll`` (degrees; convention in
    :mod:`uvaug.fit.pose`); ``transform`` (3x4) maps canonical mesh points (cm) to photo pixels.
    """

    image_size: np.ndarray  # (2,) int32 height, width of the orientation-corrected photo
    box: np.ndarray  # (4,) float32 x0, y0, x1, y1
    keypoints: np.ndarray  # (6, 2) float32 detector keypoints (eyes, nose tip, mouth, ears)
    score: float  # detector confidence
    presence: float  # landmark model's face-presence probability
    landmarks: np.ndarray  # (478, 3) float32, incl. 10 iris points
    vertices: np.ndarray  # (468, 3) float32
    rotation: np.ndarray  # (3, 3) float64
    scale: float
    translation: np.ndarray  # (3,) float64
    transform: np.ndarray  # (3, 4) float64
    yaw: float
    pitch: float
    roll: float

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        np.savez_compressed(buf, format=np.asarray(FIT_FORMAT), **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceFit:
        with np.load(Path(path), allow_pickle=False) as data:
            fmt = str(data["format"]) if "format" in data else "?"
            if fmt != FIT_FORMAT:
                raise ValueError(f"{path}: not a uvaug fit file (format {fmt!r}, expected {FIT_FORMAT!r})")
            values = {}
            for f in fields(cls):
                value = data[f.name]
                values[f.name] = value.item() if value.ndim == 0 else value
            return cls(**values)
