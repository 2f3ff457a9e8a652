"""Stage-independent input/output: find inputs, load images, write artifacts and manifests safely.

Every stage uses these so that bad files become manifest entries instead of crashes, outputs
mirror the input layout, and a killed run never leaves a half-written file behind.
"""

from uvaug.io.atomic import (
    atomic_path,
    cleanup_temp_files,
    savez_atomic,
    write_bytes_atomic,
    write_image_atomic,
    write_text_atomic,
)
from uvaug.io.discover import InputError, InputItem, artifact_stems, discover_inputs, iter_inputs
from uvaug.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    MissingAlphaError,
    load_image,
    load_rgba,
)
from uvaug.io.manifest import MANIFEST_NAME, ManifestWriter, compact_manifest, iter_manifest, read_manifest

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "ImageLoadError",
    "InputError",
    "InputItem",
    "ManifestWriter",
    "MissingAlphaError",
    "artifact_stems",
    "atomic_path",
    "cleanup_temp_files",
    "compact_manifest",
    "discover_inputs",
    "iter_inputs",
    "iter_manifest",
    "load_image",
    "load_rgba",
    "read_manifest",
    "savez_atomic",
    "write_bytes_atomic",
    "write_image_atomic",
    "write_text_atomic",
]
