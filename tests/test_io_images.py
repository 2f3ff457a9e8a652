"""load_image: every common file variant in, RGB uint8 out; every bad file becomes one clear error."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from uvaug.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    MissingAlphaError,
    load_image,
    load_rgba,
)

# Any warning (Pillow's palette/bomb warnings, unclosed files reported by pytest) is a failure.
pytestmark = pytest.mark.filterwarnings("error")


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), (xx + yy) % 256], axis=2).astype(
        np.uint8
    )


def _assert_rgb(arr: np.ndarray, shape: tuple[int, int]) -> None:
    assert arr.dtype == np.uint8
    assert arr.shape == (*shape, 3)
    assert arr.flags.c_contiguous
    assert not arr.flags.writeable  # one contract on every path: copy before modifying


def _load_error(path: Path, **kwargs: int) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_constants() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} == IMAGE_EXTENSIONS
    assert DEFAULT_MAX_PIXELS == 100_000_000


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_rgb_roundtrip(tmp_path: Path, suffix: str) -> None:
    rgb = _gradient()
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    arr = load_image(path)
    _assert_rgb(arr, rgb.shape[:2])
    np.testing.assert_array_equal(arr, rgb)


def test_jpeg_and_str_path(tmp_path: Path) -> None:
    rgb = _gradient()
    path = tmp_path / "img.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    arr = load_image(str(path))
    _assert_rgb(arr, rgb.shape[:2])
    assert np.abs(arr.astype(int) - rgb).mean() < 3


def test_grayscale(tmp_path: Path) -> None:
    gray = _gradient()[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    arr = load_image(tmp_path / "g.png")
    _assert_rgb(arr, gray.shape)
    for channel in range(3):
        np.testing.assert_array_equal(arr[:, :, channel], gray)


def test_gray_alpha(tmp_path: Path) -> None:
    gray = _gradient()[:, :, 0]
    alpha = np.zeros_like(gray)  # fully transparent: alpha must be dropped, not composited
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    arr = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(arr, np.repeat(gray[:, :, None], 3, axis=2))


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgb = _gradient()
    alpha = np.full(rgb.shape[:2], 10, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), rgb)


@pytest.mark.parametrize("transparency", [None, 1, bytes([255, 0, 128])])
def test_palette(tmp_path: Path, transparency: int | bytes | None) -> None:
    indices = np.array([[0, 1, 2, 1]], np.uint8)
    im = Image.fromarray(indices, "P")
    im.putpalette([200, 10, 20, 0, 255, 0, 5, 6, 7] + [0] * (256 - 3) * 3)
    extra = {} if transparency is None else {"transparency": transparency}
    im.save(tmp_path / "p.png", **extra)
    arr = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(arr[0], [[200, 10, 20], [0, 255, 0], [5, 6, 7], [0, 255, 0]])


def test_load_rgba_keeps_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([_gradient(), np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    arr = load_rgba(tmp_path / "rgba.png")
    np.testing.assert_array_equal(arr, rgba)
    assert arr.dtype == np.uint8 and not arr.flags.writeable

    gray = _gradient()[:, :, 0]
    Image.fromarray(np.dstack([gray, 255 - gray]), "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_rgba(tmp_path / "la.png"), np.dstack([gray, gray, gray, 255 - gray]))

    im = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    im.putpalette([200, 10, 20, 0, 255, 0] + [0] * 254 * 3)
    im.save(tmp_path / "p.png", transparency=1)
    np.testing.assert_array_equal(load_rgba(tmp_path / "p.png")[0], [[200, 10, 20, 255], [0, 255, 0, 0]])


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16"])
def test_load_rgba_refuses_images_without_alpha(tmp_path: Path, mode: str) -> None:
    Image.fromarray(_gradient()).convert(mode).save(tmp_path / "no_alpha.png")
    with pytest.raises(MissingAlphaError, match=f"no alpha channel \\(mode {mode}"):
        load_rgba(tmp_path / "no_alpha.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_rgba(tmp_path / "empty.png")


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    rgb[:, 16:] = (0, 0, 255)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as probe:
        assert probe.mode == "CMYK"
    arr = load_image(tmp_path / "cmyk.jpg")
    _assert_rgb(arr, (16, 32))
    assert np.abs(arr[4:12, 2:12].astype(int) - (255, 0, 0)).max() < 12
    assert np.abs(arr[4:12, 20:30].astype(int) - (0, 0, 255)).max() < 12


def test_ycbcr_tiff(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4), (10, 200, 30)).convert("YCbCr").save(tmp_path / "y.tif")
    assert np.abs(load_image(tmp_path / "y.tif")[0, 0].astype(int) - (10, 200, 30)).max() <= 3


def test_one_bit(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 1, 1, 0]], bool)).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as probe:
        assert probe.mode == "1"
    np.testing.assert_array_equal(load_image(tmp_path / "b.png")[0, :, 1], [0, 255, 255, 0])


_SAMPLES_16 = np.array([[0, 255, 256, 32768, 65535]], np.uint16)
_EXPECTED_8 = [0, 0, 1, 128, 255]


def test_gray16_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    Image.fromarray(_SAMPLES_16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as probe:
        assert probe.mode.startswith("I")
    arr = load_image(tmp_path / "g16.png")
    _assert_rgb(arr, _SAMPLES_16.shape)
    np.testing.assert_array_equal(arr[0, :, 0], _EXPECTED_8)
    np.testing.assert_array_equal(arr[0, :, 2], _EXPECTED_8)


def test_gray16_written_by_opencv(tmp_path: Path) -> None:
    assert cv2.imwrite(str(tmp_path / "g16cv.png"), _SAMPLES_16)
    np.testing.assert_array_equal(load_image(tmp_path / "g16cv.png")[0, :, 1], _EXPECTED_8)


def test_gray16_big_endian_tiff(tmp_path: Path) -> None:
    im = Image.frombytes("I;16B", (5, 1), _SAMPLES_16.astype(">u2").tobytes())
    im.save(tmp_path / "g16b.tif")
    with Image.open(tmp_path / "g16b.tif") as probe:
        assert probe.mode == "I;16B"
    np.testing.assert_array_equal(load_image(tmp_path / "g16b.tif")[0, :, 0], _EXPECTED_8)


def test_int32_gray(tmp_path: Path) -> None:
    # 16-bit data in Pillow's 32-bit "I" container is scaled as 16-bit ...
    Image.fromarray(_SAMPLES_16.astype(np.int32)).save(tmp_path / "i16.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "i16.tif")[0, :, 0], _EXPECTED_8)
    # ... genuinely 32-bit data by its 31-bit positive range; negatives clip to black.
    wide = np.array([[-7, 0, 2**30, 2**31 - 1]], np.int32)
    Image.fromarray(wide).save(tmp_path / "i32.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "i32.tif")[0, :, 0], [0, 0, 128, 255])


def test_rgb16_png_written_by_opencv(tmp_path: Path) -> None:
    bgr16 = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4000).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), bgr16)
    arr = load_image(tmp_path / "rgb16.png")
    _assert_rgb(arr, (4, 5))
    np.testing.assert_array_equal(arr, (bgr16 >> 8).astype(np.uint8)[:, :, ::-1])


def test_float_tiff(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.5, 1.0, np.nan, -1.0]], np.float32)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    with Image.open(tmp_path / "unit.tif") as probe:
        assert probe.mode == "F"
    np.testing.assert_array_equal(load_image(tmp_path / "unit.tif")[0, :, 0], [0, 128, 255, 0, 0])
    # Values beyond 1 are scaled by their maximum instead of saturating.
    wide = np.array([[0.0, 250.0, 1000.0, np.inf]], np.float32)
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "wide.tif")[0, :, 0], [0, 64, 255, 255])


def test_float_rgb_tiff_that_pillow_cannot_read(tmp_path: Path) -> None:
    bgr = np.zeros((6, 8, 3), np.float32)
    bgr[:, :, 2] = 1.0  # red
    bgr[:, :4, 1] = 0.5
    assert cv2.imwrite(str(tmp_path / "f32rgb.tif"), bgr)
    arr = load_image(tmp_path / "f32rgb.tif")
    _assert_rgb(arr, (6, 8))
    np.testing.assert_array_equal(arr[0, 0], [255, 128, 0])
    np.testing.assert_array_equal(arr[0, 7], [255, 0, 0])
    assert _load_error(tmp_path / "f32rgb.tif", max_pixels=47).startswith("image too large: 8x6")


def test_multi_frame_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "anim.gif") as probe:
        assert probe.n_frames == 2
    np.testing.assert_array_equal(load_image(tmp_path / "anim.gif")[0, 0], [255, 0, 0])


# Stored image is 48 wide x 32 tall with a 12x12 red block in its top-left corner. EXIF
# orientation says how to display it; where the block must end up after load_image applies it:
@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [
        (1, (32, 48), "top-left"),
        (3, (32, 48), "bottom-right"),  # rotate 180
        (6, (48, 32), "top-right"),  # rotate 90 clockwise to display
        (8, (48, 32), "bottom-left"),  # rotate 90 counter-clockwise to display
        (2, (32, 48), "top-right"),  # mirror horizontally
    ],
)
def test_exif_orientation(tmp_path: Path, orientation: int, shape: tuple[int, int], corner: str) -> None:
    stored = np.full((32, 48, 3), 128, np.uint8)
    stored[:12, :12] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, subsampling=0, exif=exif)

    arr = load_image(path)
    _assert_rgb(arr, shape)
    rows = slice(2, 10) if corner.startswith("top") else slice(-10, -2)
    cols = slice(2, 10) if corner.endswith("left") else slice(-10, -2)
    assert np.abs(arr[rows, cols].astype(int) - (255, 0, 0)).max() < 30, f"red marker not at {corner}"
    assert np.abs(arr[arr.shape[0] // 2, arr.shape[1] // 2].astype(int) - 128).max() < 10


def test_unicode_and_space_in_name(tmp_path: Path) -> None:
    path = tmp_path / "顔 写真 ü 1.png"
    Image.fromarray(_gradient()).save(path)
    np.testing.assert_array_equal(load_image(path), _gradient())


# --- files that are not usable images -----------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _load_error(tmp_path / "empty.jpg") == "empty file"


def test_text_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "page.jpg").write_text("<html><body>404 Not Found</body></html>\n")
    assert _load_error(tmp_path / "page.jpg") == "not an image (unrecognised format)"


def test_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(4096))
    assert _load_error(tmp_path / "noise.png") == "not an image (unrecognised format)"


def test_truncated_jpeg(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "cut.jpg"
    Image.fromarray(noise).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _load_error(path).startswith("corrupt or truncated image: ")


def test_corrupt_png_data(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    Image.fromarray(_gradient()).save(path)
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = bytes(32)  # clobber the compressed stream, header intact
    path.write_bytes(bytes(data))
    assert _load_error(path).startswith("corrupt or truncated image: ")


def test_missing_file(tmp_path: Path) -> None:
    assert _load_error(tmp_path / "nope.jpg") == "file not found"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    assert _load_error(tmp_path / "dir.jpg") == "is a directory"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, non-root")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(_gradient()).save(path)
    path.chmod(0)
    try:
        assert _load_error(path) == "permission denied"
    finally:
        path.chmod(0o644)


# --- the pixel limit -----------------------------------------------------------------------------


def test_max_pixels_limit(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(_gradient(10, 20)).save(path)
    assert load_image(path, max_pixels=200).shape == (10, 20, 3)  # exactly at the limit is fine
    message = _load_error(path, max_pixels=199)
    assert message == "image too large: 20x10 = 0.0 MP (limit 0.0 MP)"


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A valid tiny PNG whose IHDR (with a correct CRC) claims ``width`` x ``height``."""
    Image.fromarray(_gradient(4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_huge_header_rejected_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _png_claiming_size(path, 100_000, 100_000)  # 10 gigapixels: decoding would need 30 GB
    start = time.perf_counter()
    message = _load_error(path)
    assert time.perf_counter() - start < 1.0
    assert message == "image too large: 10000.0 MP (limit 100.0 MP)"


def test_large_header_reports_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _png_claiming_size(path, 12_000, 9_000)  # 108 MP: over our limit, under Pillow's hard limit
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow only warns; our own check rejects
        message = _load_error(path)
    assert message == "image too large: 12000x9000 = 108.0 MP (limit 100.0 MP)"


def test_bomb_warning_as_error_is_still_an_image_load_error(tmp_path: Path) -> None:
    # Under this module's "error" filter Pillow's DecompressionBombWarning raises inside open().
    path = tmp_path / "big.png"
    _png_claiming_size(path, 12_000, 9_000)
    assert _load_error(path) == "image too large: 108.0 MP (limit 100.0 MP)"


def test_pillow_global_limit_never_blocks_images_under_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow: warn above 100, refuse above 200
    path = tmp_path / "img.png"
    Image.fromarray(_gradient(24, 32)).save(path)  # 768 pixels
    np.testing.assert_array_equal(load_image(path, max_pixels=1000), _gradient(24, 32))
    assert Image.MAX_IMAGE_PIXELS >= 1000  # raised to our limit, never lowered
