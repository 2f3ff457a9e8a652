"""Shared fixtures: real face photos that ship inside installed packages (no ../shared data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins, NASA portrait (public domain), 512x512 RGB, near-frontal face."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    """Grace Hopper portrait shipped with matplotlib's sample data (public domain), 600x512 RGB."""
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib (test extra) provides the photo")
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.ascontiguousarray(im.convert("RGB"))


@pytest.fixture(scope="session")
def fitter():
    from uvaug.fit.fitter import create_fitter

    return create_fitter()


def require_shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the project's shared data at {path}")
    return path
