"""uvaug: pose augmentation of face datasets.

Stages (each a subpackage, each reading the previous stage's artifacts from disk):
``fit`` (detect, dense 3D landmarks, head pose, incomplete UV map) -> ``complete`` -> ``render``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("uvaug")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
