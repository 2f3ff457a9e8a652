"""Read the MediaPipe face landmarker bundle without the mediapipe package.

The ``.task`` file is a zip of tflite models plus ``geometry_pipeline_metadata_landmarks.binarypb``, a small
protobuf (``GeometryPipelineMetadata``) holding the canonical face mesh and the Procrustes landmark weights.
Its schema is three messages deep, so a 30-line wire-format reader replaces a protobuf dependency.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from uvaug.assets import model_path

BUNDLE_NAME = "face_landmarker.task"
DETECTOR_MEMBER = "face_detector.tflite"
LANDMARKER_MEMBER = "face_landmarks_detector.tflite"
GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Decode one protobuf message into (field number, wire type, value) triples."""
    out: list[tuple[int, int, object]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = struct.unpack_from("<f", buf, i)[0], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, wire, value))
    return out


def _repeated_uint(entries: list[tuple[int, int, object]], field: int) -> list[int]:
    values: list[int] = []
    for f, wire, value in entries:
        if f != field:
            continue
        if wire == 2:  # packed
            j = 0
            while j < len(value):  # type: ignore[arg-type]
                v, j = _varint(value, j)  # type: ignore[arg-type]
                values.append(v)
        else:
            values.append(value)  # type: ignore[arg-type]
    return values


def _repeated_float(entries: list[tuple[int, int, object]], field: int) -> list[float]:
    values: list[float] = []
    for f, wire, value in entries:
        if f != field:
            continue
        if wire == 2:  # packed
            values.extend(struct.unpack(f"<{len(value) // 4}f", value))  # type: ignore[arg-type]
        else:
            values.append(value)  # type: ignore[arg-type]
    return values


@dataclass(frozen=True)
class GeometryMetadata:
    """Canonical face mesh of the bundle, in centimetres: x right, y up, z towards the viewer."""

    vertices: np.ndarray  # (468, 3) float32
    uvs: np.ndarray  # (468, 2) float32, v grows downwards (image convention)
    triangles: np.ndarray  # (898, 3) int32, counter-clockwise seen from +z
    # MediaPipe's own rigid-fit subset; uvaug fits every vertex instead (see uvaug.fit.pose.DEPTH_WEIGHT).
    procrustes_ids: np.ndarray  # (K,) int32 landmark indices
    procrustes_weights: np.ndarray  # (K,) float32


def parse_geometry(buf: bytes) -> GeometryMetadata:
    top = _fields(buf)
    mesh = _fields(next(v for f, _, v in top if f == 1))  # type: ignore[arg-type]
    vertex_buffer = np.asarray(_repeated_float(mesh, 3), np.float32).reshape(-1, 5)
    triangles = np.asarray(_repeated_uint(mesh, 4), np.int32).reshape(-1, 3)
    ids, weights = [], []
    for f, _, v in top:
        if f == 2:
            ref = _fields(v)  # type: ignore[arg-type]
            ids.append(next((x for g, _, x in ref if g == 1), 0))
            weights.append(next((x for g, _, x in ref if g == 2), 0.0))
    return GeometryMetadata(
        vertices=np.ascontiguousarray(vertex_buffer[:, :3]),
        uvs=np.ascontiguousarray(vertex_buffer[:, 3:]),
        triangles=triangles,
        procrustes_ids=np.asarray(ids, np.int32),
        procrustes_weights=np.asarray(weights, np.float32),
    )


@dataclass(frozen=True)
class LandmarkerBundle:
    detector_tflite: bytes
    landmarker_tflite: bytes
    geometry: GeometryMetadata


def read_bundle(path: Path) -> LandmarkerBundle:
    with zipfile.ZipFile(path) as zf:
        return LandmarkerBundle(
            detector_tflite=zf.read(DETECTOR_MEMBER),
            landmarker_tflite=zf.read(LANDMARKER_MEMBER),
            geometry=parse_geometry(zf.read(GEOMETRY_MEMBER)),
        )


@cache
def default_bundle() -> LandmarkerBundle:
    """The shipped bundle, verified and parsed once per process."""
    return read_bundle(model_path(BUNDLE_NAME))
