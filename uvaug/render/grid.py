"""The views to render: ``--yaw``/``--pitch`` specs -> angle lists -> a pose grid, and each view's file name.

Angles are degrees in uvaug's pose convention (:mod:`uvaug.fit.pose`): yaw > 0 turns the face towards the
image's right, pitch > 0 tilts it chin up. Every angle is rounded to 1e-6 degrees, so a spec such as
``0:1:0.1`` gives exactly the values a user typed rather than ``0.30000000000000004``, and file-name tags are
stable across machines.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_ANGLE",
    "MAX_ANGLES",
    "GridError",
    "View",
    "parse_angles",
    "pose_grid",
    "sample_views",
    "view_output_name",
]

#: Largest absolute angle: beyond a profile (yaw 90) or straight up/down (pitch 90) the renderer would show
#: the back of a mesh that only models the face, and the pose convention's yaw (an arcsin) ends there.
MAX_ANGLE = 90.0
#: Most angles one option may produce; a typo such as ``-60:60:0.01`` (12,001 angles, times every pitch and
#: face) should stop with a message rather than start a run of millions of renders.
MAX_ANGLES = 1000
_DECIMALS = 6  # angles are rounded to 1e-6 degrees
_STEP_SLACK = 1e-6  # STOP counts as on the grid when within this many steps of it (float rounding)


class GridError(ValueError):
    """A ``--yaw``/``--pitch`` spec that cannot be used; the message is one line and names the option."""


def parse_angles(spec: str, name: str = "yaw") -> tuple[float, ...]:
    """Angles (degrees) from ``START:STOP:STEP``, a comma list or a single number.

    ``START:STOP:STEP`` includes START and every step up to STOP; STOP itself only when it lies on the grid
    (``0:50:20`` -> 0, 20, 40), like a loop a user would write by hand. A negative step counts down
    (``60:-60:-15``). A comma list (``-45, 0, 45``) keeps its order and drops repeats. Raises
    :class:`GridError` naming ``--<name>`` for a malformed spec, a zero step, a step pointing away from
    STOP, an angle beyond +-90 degrees, an empty spec, or more than :data:`MAX_ANGLES` angles.
    """
    option = f"--{name.lstrip('-')}"
    text = spec.strip()
    if not text:
        raise GridError(f"{option}: empty")
    if ":" in text:
        angles = _parse_range(text, option)
    else:
        angles = np.array([_parse_number(part, text, option) for part in text.split(",")])
    # Rounding folds float noise (and -0.0, via + 0.0) into the values a user would expect to see.
    values = tuple(dict.fromkeys((np.round(angles, _DECIMALS) + 0.0).tolist()))
    if len(values) > MAX_ANGLES:
        raise GridError(f"{option}: {len(values)} angles is more than {MAX_ANGLES}; use a coarser step")
    beyond = [v for v in values if abs(v) > MAX_ANGLE]
    if beyond:
        raise GridError(f"{option}: angle {_plain(beyond[0])} is beyond +-{MAX_ANGLE:g} degrees")
    return values


def _parse_number(part: str, spec: str, option: str) -> float:
    try:
        value = float(part)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise GridError(f"{option}: malformed angle spec {spec!r} (use START:STOP:STEP or a comma list)")
    return value


def _parse_range(spec: str, option: str) -> np.ndarray:
    parts = spec.split(":")
    if len(parts) != 3:
        raise GridError(f"{option}: malformed angle spec {spec!r} (use START:STOP:STEP or a comma list)")
    start, stop, step = (_parse_number(part, spec, option) for part in parts)
    if step == 0:
        raise GridError(f"{option}: step must not be 0")
    steps = (stop - start) / step
    if steps < -_STEP_SLACK:
        raise GridError(f"{option}: step goes the wrong way ({spec})")
    # Whole steps that fit, counted as an integer so that 0:0.3:0.1 reaches 0.3 despite 0.3 / 0.1 < 3.
    count = math.floor(steps + _STEP_SLACK) + 1 if steps > 0 else 1
    if count > MAX_ANGLES:  # checked before allocating: 0:90:1e-9 must not build a 9e10-element array
        raise GridError(f"{option}: {count} angles is more than {MAX_ANGLES}; use a coarser step")
    return start + step * np.arange(count)


@dataclass(frozen=True)
class View:
    """One head pose to render, in degrees (convention of :mod:`uvaug.fit.pose`)."""

    yaw: float
    pitch: float

    @property
    def tag(self) -> str:
        """File-name suffix such as ``_y+30_p-10``: signed and zero-padded, so names sort and never clash."""
        return f"_y{_signed(self.yaw)}_p{_signed(self.pitch)}"

    @property
    def label(self) -> str:
        """Short caption such as ``y+30 p-10`` (contact sheet columns, logs)."""
        return f"y{_signed(self.yaw)} p{_signed(self.pitch)}"


def _plain(value: float, width: int = 0) -> str:
    """Fixed-point without trailing zeros (``-7.5``, ``90.000001``); ``:g`` would print the latter as 90."""
    padded = f"{value:0{width + _DECIMALS + 1}.{_DECIMALS}f}" if width else f"{value:.{_DECIMALS}f}"
    return padded.rstrip("0").rstrip(".")


def _signed(angle: float) -> str:
    """``30`` -> ``+30``, ``-5`` -> ``-05``, ``0`` -> ``+00``, ``7.5`` -> ``+07.5`` (1e-6 resolution)."""
    value = round(float(angle), _DECIMALS) + 0.0
    return f"{'-' if value < 0 else '+'}{_plain(abs(value), width=2)}"


def pose_grid(yaws: Iterable[float], pitches: Iterable[float]) -> list[View]:
    """Every (yaw, pitch) pair, yaw-major: all pitches of the first yaw, then of the next."""
    pitch_list = list(pitches)
    return [View(float(yaw), float(pitch)) for yaw in yaws for pitch in pitch_list]


def sample_views(views: Sequence[View], count: int | None, key: str, seed: int = 0) -> tuple[View, ...]:
    """``count`` of ``views`` (in their order), drawn without replacement for the face named ``key``.

    The draw depends only on ``seed`` and ``key`` (uvaug uses the input's relative path and face index), not
    on the process, the machine or the order faces are met in, so a rerun resumes the same views and the
    render stage and the pipeline draw alike for the same dataset. ``count`` None, or not below the number
    of views: every view.
    """
    if count is not None and count < 1:
        raise ValueError(f"a face needs at least 1 view, got {count}")
    if count is None or count >= len(views):
        return tuple(views)
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    chosen = np.sort(rng.choice(len(views), size=count, replace=False))
    return tuple(views[i] for i in chosen)


def view_output_name(stem: str, face: int, view: View, ext: str) -> str:
    """File name of face ``face`` of input ``stem`` rendered at ``view``, e.g. ``img_y+30_p-10.jpg``.

    Face 0 (the largest, the only one unless fit ran with ``--faces all``) gets no face index, so a
    dataset with one face per image gets ``<stem>_y+30_p-10.<ext>`` beside names its tools already parse;
    further faces get ``<stem>.f<k>_y+30_p-10.<ext>``, matching the fit stage's ``.f<k>`` artifacts.
    ``ext`` may be given with or without its dot.
    """
    if face < 0:
        raise ValueError(f"face index must be >= 0, got {face}")
    ext = ext.lstrip(".")
    if not ext:
        raise ValueError("an output extension is needed, e.g. 'jpg'")
    face_part = f".f{face}" if face else ""
    return f"{stem}{face_part}{view.tag}.{ext}"
