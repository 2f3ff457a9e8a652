"""What the benchmark scripts share: UTKFace name lists and the steady-state rate.

The scripts run as ``python benchmarks/NAME.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

UTKFACE = Path(__file__).resolve().parents[2] / "shared/data/utkface"


def add_utkface_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``: the UTKFace folder (images/ and splits/), ../shared/data/utkface by default."""
    parser.add_argument(
        "--data",
        type=Path,
        default=UTKFACE,
        help="UTKFace folder holding images/ and splits/ (default: ../shared/data/utkface)",
    )


def utkface_names(data: Path, limit: int | None, splits: Sequence[str] = ("val.txt",)) -> list[str]:
    """The first ``limit`` (None: all) image names of the given UTKFace split files, in order (val first by
    default)."""
    names: list[str] = []
    for split in splits:
        lines = (data / "splits" / split).read_text(encoding="utf-8").splitlines()
        names += [line.strip() for line in lines if line.strip()]
    return names[:limit]


def write_image_list(path: Path, data: Path, names: Sequence[str]) -> Path:
    """A list file (one absolute image path per line, as ``uvaug fit`` reads lists) of the named UTKFace
    images; returns ``path``."""
    images = data.resolve() / "images"
    path.write_text("".join(f"{images / name}\n" for name in names), encoding="utf-8")
    return path


def steady_rate(stamps: Sequence[float], warmup: float, counts: Sequence[int] | None = None) -> float:
    """Items per second after the first ``warmup`` fraction of results (pool and model start-up excluded).

    ``stamps`` are the completion times of the results; ``counts`` the items each result carried (1 each
    by default). NaN when too few results remain to measure.
    """
    skip = math.ceil(warmup * len(stamps))
    if len(stamps) - skip < 2 or skip < 1:
        return float("nan")
    items = sum(counts[skip:]) if counts is not None else len(stamps) - skip
    return items / (stamps[-1] - stamps[skip - 1])
