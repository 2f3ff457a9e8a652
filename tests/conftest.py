"""Shared fixtures: real face photos that ship inside installed packages (no ../shared data needed)."""

from __future__ import annotations

import numpy as np
import pytest


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


@pytest.fixture(scope="session")
def astro_face(fitter, astronaut):
    """The astronaut's fitted face (fit and incomplete UV map), from the real fitter."""
    return fitter(astronaut)[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="session")
def psnr():
    """PSNR in dB of two 8-bit images (any shape): ``psnr(a, b)``."""
    return _psnr
