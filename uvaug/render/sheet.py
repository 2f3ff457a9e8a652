"""Contact sheets: one image showing every input face (rows) at every rendered view (columns).

A sheet is how a user checks a render run at a glance: wrong pose signs, failed faces and texture seams all
show up side by side. Layout: a white margin with the row labels on the left (:data:`ROW_LABEL_WIDTH`) and
the column labels on top (:data:`HEADER_HEIGHT`), then a ``cell`` x ``cell`` square per face and view. Each
image is scaled to fit its cell (aspect kept) on a neutral grey; a ``None`` (missing or failed render) is a
light grey box with a cross; transparent parts of RGBA images show a checkerboard. A cell may carry a short
mark in its lower left corner (white on dark), such as ``mirror`` on views rendered from the mirrored photo.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from uvaug.io import write_image_atomic

__all__ = [
    "BACKGROUND",
    "CELL_BACKGROUND",
    "CHECKER",
    "HEADER_HEIGHT",
    "MAX_SHEET_SIDE",
    "MISSING_CROSS",
    "MISSING_FILL",
    "ROW_LABEL_WIDTH",
    "TEXT_COLOUR",
    "SheetTooLargeError",
    "contact_sheet",
    "rows_per_sheet",
    "write_contact_sheet",
]

ROW_LABEL_WIDTH = 200  # left margin, px: about 24 characters per line, wrapped over up to the cell's height
HEADER_HEIGHT = 40  # top margin, px: two lines of column label
#: Largest sheet side: WebP cannot encode more than 16383 px, and a square sheet this big is already 800 MB.
MAX_SHEET_SIDE = 16383
MIN_CELL = 32

BACKGROUND = 255  # margins and gutters between cells
TEXT_COLOUR = (20, 20, 20)
CELL_BACKGROUND = 128  # neutral grey around an image that does not fill its cell
MISSING_FILL = 210
MISSING_CROSS = 110
CHECKER = (235, 185)  # light and dark squares behind transparent pixels
CHECKER_SQUARE = 8
GUTTER = 2  # px of background kept free on each side of a cell, so neighbouring images stay apart

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_THICKNESS = 1
_LINE_GAP = 5
_BREAKS = (" ", "/", "_-.")  # where to wrap a label, best first


class SheetTooLargeError(ValueError):
    """The sheet would exceed :data:`MAX_SHEET_SIDE`; split the rows over sheets or use smaller cells."""


def rows_per_sheet(cell: int = 160) -> int:
    """How many rows fit on one sheet at this cell size (callers split longer runs into several sheets)."""
    return (MAX_SHEET_SIDE - HEADER_HEIGHT) // cell


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
    column_labels: Sequence[str],
    cell: int = 160,
    marks: Mapping[tuple[int, int], str] | None = None,
) -> np.ndarray:
    """RGB ``uint8`` grid of ``rows`` (label, one image or ``None`` per column) under ``column_labels``.

    The result is ``HEADER_HEIGHT + len(rows) * cell`` by ``ROW_LABEL_WIDTH + len(column_labels) * cell``.
    Images may be gray, RGB or RGBA ``uint8`` of any size. Labels are ASCII (others show as ``?``), wrapped
    and, if still too long, shortened in the middle (``celebrity_na..001_01.jpg``), keeping the file name's
    end. ``marks`` maps (row, column) to a short text drawn in that cell's lower left corner. Raises
    :class:`ValueError` for an empty grid, a row of the wrong length or an unusable image, and
    :class:`SheetTooLargeError` when a side would exceed :data:`MAX_SHEET_SIDE`.
    """
    if cell < MIN_CELL:
        raise ValueError(f"cell must be at least {MIN_CELL} px, got {cell}")
    n_rows, n_cols = len(rows), len(column_labels)
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"a contact sheet needs at least one row and one column, got {n_rows}x{n_cols}")
    height, width = HEADER_HEIGHT + n_rows * cell, ROW_LABEL_WIDTH + n_cols * cell
    if max(height, width) > MAX_SHEET_SIDE:
        raise SheetTooLargeError(
            f"contact sheet of {n_rows} rows x {n_cols} columns would be {width}x{height} px, more than "
            f"{MAX_SHEET_SIDE} px a side; use at most {rows_per_sheet(cell)} rows per sheet or a smaller cell"
        )
    for label, images in rows:
        if len(images) != n_cols:
            raise ValueError(f"row {label!r} has {len(images)} images for {n_cols} columns")

    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    inner = cell - 2 * GUTTER
    for c, label in enumerate(column_labels):
        x0 = ROW_LABEL_WIDTH + c * cell
        _draw_text(sheet, label, (x0 + GUTTER, 0, inner, HEADER_HEIGHT - GUTTER), centre=True, bottom=True)
    for r, (label, images) in enumerate(rows):
        y0 = HEADER_HEIGHT + r * cell
        _draw_text(sheet, label, (GUTTER + 4, y0 + GUTTER, ROW_LABEL_WIDTH - 2 * GUTTER - 8, inner))
        for c, image in enumerate(images):
            x0 = ROW_LABEL_WIDTH + c * cell
            target = sheet[y0 + GUTTER : y0 + GUTTER + inner, x0 + GUTTER : x0 + GUTTER + inner]
            try:
                target[:] = _missing_cell(inner) if image is None else _fit_cell(image, inner)
            except ValueError as exc:
                raise ValueError(f"row {label!r}, column {column_labels[c]!r}: {exc}") from None
            mark = (marks or {}).get((r, c))
            if mark:
                _draw_mark(target, mark)
    return sheet


def write_contact_sheet(
    path: str | os.PathLike[str],
    rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
    column_labels: Sequence[str],
    cell: int = 160,
    jpeg_quality: int = 90,
    marks: Mapping[tuple[int, int], str] | None = None,
) -> Path:
    """Build a :func:`contact_sheet` and write it atomically (format by suffix); return the path."""
    target = Path(path)
    sheet = contact_sheet(rows, column_labels, cell=cell, marks=marks)
    write_image_atomic(target, sheet, jpeg_quality=jpeg_quality)
    return target


#: A cell mark: white text on a box this dark, blended over the image at this opacity.
MARK_BOX, MARK_OPACITY = 30, 0.7


def _draw_mark(cell: np.ndarray, text: str) -> None:
    """``text`` in the lower left corner of a cell (in place), readable on any image."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    (width, cap), base = cv2.getTextSize(ascii_text, _FONT, _FONT_SCALE, _THICKNESS)
    pad = 3
    height = cap + base + 2 * pad
    box = cell[cell.shape[0] - height :, : min(width + 2 * pad, cell.shape[1])]
    box[:] = np.rint(box * (1.0 - MARK_OPACITY) + MARK_BOX * MARK_OPACITY).astype(np.uint8)
    origin = (pad, cell.shape[0] - pad - base)
    cv2.putText(cell, ascii_text, origin, _FONT, _FONT_SCALE, (255, 255, 255), _THICKNESS, cv2.LINE_AA)


def _fit_cell(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled to fit a ``size`` square (aspect kept), centred on grey, alpha over a checkerboard."""
    rgb, alpha = _split_channels(image)
    h, w = rgb.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.full((size, size, 3), CELL_BACKGROUND, np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    if alpha is None:
        out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(rgb, (nw, nh), interpolation=interpolation)
        return out
    # Premultiplied before scaling: RGB under transparent pixels (often black) must not bleed into edges.
    a = alpha.astype(np.float32) / 255.0
    premultiplied = cv2.resize(rgb.astype(np.float32) * a[..., None], (nw, nh), interpolation=interpolation)
    a = cv2.resize(a, (nw, nh), interpolation=interpolation)[..., None]
    composite = premultiplied + (1.0 - a) * _checkerboard(nh, nw)[..., None]
    out[y0 : y0 + nh, x0 : x0 + nw] = np.clip(np.rint(composite), 0, 255).astype(np.uint8)
    return out


def _split_channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 samples, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"expected a non-empty gray, RGB or RGBA image, got shape {image.shape}")
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3]), np.ascontiguousarray(image[..., 3])
    return np.ascontiguousarray(image), None


def _checkerboard(h: int, w: int) -> np.ndarray:
    """Float (h, w) of :data:`CHECKER` squares, anchored at the image's top-left corner."""
    parity = (np.arange(h)[:, None] // CHECKER_SQUARE + np.arange(w)[None, :] // CHECKER_SQUARE) % 2
    return np.where(parity == 0, CHECKER[0], CHECKER[1]).astype(np.float32)


def _missing_cell(size: int) -> np.ndarray:
    """Light grey square with a border and a cross: no image for this face and view."""
    out = np.full((size, size, 3), MISSING_FILL, np.uint8)
    colour = (MISSING_CROSS,) * 3
    thickness = max(1, size // 80)
    cv2.rectangle(out, (0, 0), (size - 1, size - 1), colour, thickness)
    cv2.line(out, (0, 0), (size - 1, size - 1), colour, thickness + 1, cv2.LINE_AA)
    cv2.line(out, (0, size - 1), (size - 1, 0), colour, thickness + 1, cv2.LINE_AA)
    return out


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, _THICKNESS)[0][0]


def _shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to fit ``width`` px; the tail (usually the file name) keeps more."""
    if _text_width(text) <= width:
        return text
    for keep in range(len(text) - 1, 0, -1):
        head = keep // 3
        candidate = f"{text[:head]}..{text[len(text) - (keep - head) :]}"
        if _text_width(candidate) <= width:
            return candidate
    return ".." if _text_width("..") <= width else ""


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Greedy wrap into at most ``max_lines`` lines, after a space, slash or other separator if possible."""
    lines: list[str] = []
    rest = text.strip()
    while rest and len(lines) < max_lines:
        if _text_width(rest) <= width or len(lines) == max_lines - 1:
            lines.append(_shorten(rest, width))
            break
        fit = 1
        while fit < len(rest) and _text_width(rest[: fit + 1]) <= width:
            fit += 1
        for separators in _BREAKS:  # the best separator that keeps at least half a line
            cut = max(rest.rfind(ch, 0, fit) for ch in separators) + 1
            if cut > fit // 2:
                fit = cut
                break
        lines.append(rest[:fit].rstrip())
        rest = rest[fit:].lstrip()
    return lines


def _draw_text(
    sheet: np.ndarray, text: str, box: tuple[int, int, int, int], centre: bool = False, bottom: bool = False
) -> None:
    """``text`` wrapped into ``box`` (x, y, width, height), centred vertically or at the ``bottom``."""
    x, y, width, height = box
    ascii_text = text.encode("ascii", "replace").decode("ascii")  # OpenCV 4 (Hershey fonts) draws only ASCII
    (_, cap), base = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, _THICKNESS)
    line_height = cap + base + _LINE_GAP
    lines = _wrap(ascii_text, width, max(1, (height + _LINE_GAP) // line_height))
    block = len(lines) * line_height - _LINE_GAP
    top = y + height - block if bottom else y + (height - block) // 2
    for i, line in enumerate(lines):
        dx = (width - _text_width(line)) // 2 if centre else 0
        origin = (x + dx, top + i * line_height + cap)
        cv2.putText(sheet, line, origin, _FONT, _FONT_SCALE, TEXT_COLOUR, _THICKNESS, cv2.LINE_AA)
