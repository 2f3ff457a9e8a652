"""Contact sheets of inputs by rendered views (uvaug.render.sheet)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from uvaug.render.sheet import (
    BACKGROUND,
    CELL_BACKGROUND,
    CHECKER,
    GUTTER,
    HEADER_HEIGHT,
    MISSING_CROSS,
    MISSING_FILL,
    ROW_LABEL_WIDTH,
    TEXT_COLOUR,
    SheetTooLargeError,
    contact_sheet,
    rows_per_sheet,
    write_contact_sheet,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(colour: tuple[int, ...], h: int = 50, w: int = 50) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, len(colour))).copy()


def cell_of(sheet: np.ndarray, row: int, col: int, cell: int) -> np.ndarray:
    """The drawable part of one cell (inside the gutters)."""
    y0, x0 = HEADER_HEIGHT + row * cell + GUTTER, ROW_LABEL_WIDTH + col * cell + GUTTER
    return sheet[y0 : y0 + cell - 2 * GUTTER, x0 : x0 + cell - 2 * GUTTER]


def centre(region: np.ndarray) -> np.ndarray:
    return region[region.shape[0] // 2, region.shape[1] // 2]


def test_dimensions_and_type():
    rows = [("a.jpg", [solid(RED)] * 3), ("b.jpg", [None] * 3)]
    sheet = contact_sheet(rows, ["y-30 p+00", "y+00 p+00", "y+30 p+00"], cell=64)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (HEADER_HEIGHT + 2 * 64, ROW_LABEL_WIDTH + 3 * 64, 3)


def test_each_cell_shows_its_image():
    rows = [("r0", [solid(RED), solid(GREEN), solid(BLUE)]), ("r1", [solid(BLUE), solid(RED), solid(GREEN)])]
    sheet = contact_sheet(rows, ["a", "b", "c"], cell=80)
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            np.testing.assert_array_equal(centre(cell_of(sheet, r, c, 80)), image[0, 0])


def test_a_marked_cell_shows_its_mark_in_the_lower_left_corner():
    grey = solid((128, 128, 128))
    sheet = contact_sheet([("r0", [grey, grey])], ["a", "b"], cell=120, marks={(0, 1): "mirror"})
    plain, marked = cell_of(sheet, 0, 0, 120), cell_of(sheet, 0, 1, 120)
    assert (plain == 128).all()
    corner = marked[-14:, :40]
    assert (corner < 128).mean() > 0.5 and (corner > 200).any()  # white text on a dark box
    np.testing.assert_array_equal(marked[:-25], plain[:-25])  # the rest of the image is untouched
    assert (marked[:, 70:] == 128).all()


def test_image_is_fitted_keeping_aspect_on_grey():
    tall = solid(RED, h=200, w=50)  # 4:1, so it fills the height and a quarter of the width
    region = cell_of(contact_sheet([("tall", [tall])], ["v"], cell=100), 0, 0, 100)
    inner = region.shape[0]
    red = np.all(region == RED, axis=2)
    assert red[:, inner // 2].all()  # full height
    assert abs(red[inner // 2].sum() - inner / 4) <= 1  # a quarter of the width
    np.testing.assert_array_equal(region[inner // 2, 0], (CELL_BACKGROUND,) * 3)
    np.testing.assert_array_equal(region[inner // 2, -1], (CELL_BACKGROUND,) * 3)


def test_gray_and_single_channel_images_are_shown_as_gray():
    gray = np.full((30, 40), 30, np.uint8)
    sheet = contact_sheet([("g", [gray, gray[..., None]])], ["a", "b"], cell=64)
    for c in range(2):
        np.testing.assert_array_equal(centre(cell_of(sheet, 0, c, 64)), (30, 30, 30))


def test_missing_cell_is_a_crossed_grey_box():
    cell = 120
    region = cell_of(contact_sheet([("x", [solid(RED), None])], ["a", "b"], cell=cell), 0, 1, cell)
    inner = region.shape[0]
    assert (region[..., 0] == region[..., 1]).all() and (region[..., 1] == region[..., 2]).all()  # grey
    np.testing.assert_array_equal(centre(region), (MISSING_CROSS,) * 3)  # where the diagonals cross
    q = inner // 4
    for y, x in [(q, q), (q, inner - 1 - q), (inner - 1 - q, q), (inner - 1 - q, inner - 1 - q)]:
        np.testing.assert_array_equal(region[y, x], (MISSING_CROSS,) * 3)  # on a diagonal
    for y, x in [(inner // 2, q), (q, inner // 2)]:
        np.testing.assert_array_equal(region[y, x], (MISSING_FILL,) * 3)  # between the arms


def test_transparent_pixels_show_a_checkerboard():
    half = np.zeros((64, 64, 4), np.uint8)
    half[:, :32] = (*RED, 255)  # left half opaque red, right half fully transparent
    region = cell_of(contact_sheet([("rgba", [half])], ["a"], cell=68), 0, 0, 68)  # 64 px inside: 1:1
    np.testing.assert_array_equal(region[:, :32].reshape(-1, 3), np.tile(RED, (64 * 32, 1)))
    right = region[:, 32:]
    assert set(np.unique(right)) == set(CHECKER)
    assert (right[..., 0] == right[..., 2]).all()
    assert not (right == right[0, 0]).all()  # both squares visible, not one flat tone


def test_scaled_rgba_edges_do_not_darken():
    # Transparent pixels are black underneath; scaling without premultiplied alpha would blend that black
    # into the edge of the white shape, leaving pixels darker than anything in the image or the checkerboard.
    image = np.zeros((301, 301, 4), np.uint8)
    cv2.circle(image, (150, 150), 100, (255, 255, 255, 255), -1)
    region = cell_of(contact_sheet([("circle", [image])], ["a"], cell=100), 0, 0, 100)
    assert region.min() >= min(CHECKER) - 1


def test_labels_are_drawn_in_the_margins():
    sheet = contact_sheet([("photo_001.jpg", [None, None]), ("", [None, None])], ["y-30 p+00", ""], cell=96)
    row0 = sheet[HEADER_HEIGHT : HEADER_HEIGHT + 96, :ROW_LABEL_WIDTH]
    row1 = sheet[HEADER_HEIGHT + 96 :, :ROW_LABEL_WIDTH]
    head0 = sheet[:HEADER_HEIGHT, ROW_LABEL_WIDTH : ROW_LABEL_WIDTH + 96]
    head1 = sheet[:HEADER_HEIGHT, ROW_LABEL_WIDTH + 96 :]
    assert (row0 < 100).any() and (head0 < 100).any()  # dark text
    # Anti-aliased: edge pixels blend text and background instead of being one or the other.
    assert np.isin(row0, [TEXT_COLOUR[0], BACKGROUND], invert=True).mean() > 0.005
    assert (row1 == 255).all() and (head1 == 255).all()  # empty labels leave the margin blank


def test_long_and_non_ascii_labels_stay_in_their_margin():
    label = "a_very_long_identity_folder_name/and_an_even_longer_file_name_0001.jpg face 2 " * 3
    sheet = contact_sheet([(label, [solid(RED)]), ("Zoë Ångström.jpg", [solid(RED)])], [label], cell=64)
    margin = sheet[HEADER_HEIGHT:, :ROW_LABEL_WIDTH]
    assert (margin < 100).any()
    assert (sheet[HEADER_HEIGHT:, ROW_LABEL_WIDTH - GUTTER : ROW_LABEL_WIDTH + GUTTER] == 255).all()
    assert (sheet[:HEADER_HEIGHT, :ROW_LABEL_WIDTH] == 255).all()  # header text stays above its column
    assert (sheet[:HEADER_HEIGHT, ROW_LABEL_WIDTH + 64 - GUTTER :] == 255).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="row 'a' has 1 images for 2 columns"):
        contact_sheet([("a", [None])], ["x", "y"])
    with pytest.raises(ValueError, match="at least one row and one column"):
        contact_sheet([], ["x"])
    with pytest.raises(ValueError, match="at least one row and one column"):
        contact_sheet([("a", [])], [])
    with pytest.raises(ValueError, match="cell must be at least"):
        contact_sheet([("a", [None])], ["x"], cell=8)
    with pytest.raises(ValueError, match="row 'a', column 'x': expected uint8 samples, got float32"):
        contact_sheet([("a", [np.zeros((8, 8, 3), np.float32)])], ["x"])
    with pytest.raises(ValueError, match=r"column 'x': expected a non-empty .* shape \(8, 8, 2\)"):
        contact_sheet([("a", [np.zeros((8, 8, 2), np.uint8)])], ["x"])


def test_sheet_size_is_bounded():
    cell = 256
    fits = rows_per_sheet(cell)
    assert contact_sheet([("r", [None])] * fits, ["v"], cell=cell).shape[0] == HEADER_HEIGHT + fits * cell
    with pytest.raises(SheetTooLargeError, match=f"use at most {fits} rows per sheet"):
        contact_sheet([("r", [None])] * (fits + 1), ["v"], cell=cell)
    with pytest.raises(SheetTooLargeError, match="more than 16383 px a side"):
        contact_sheet([("r", [None] * 64)], ["v"] * 64, cell=cell)


def test_write_contact_sheet_round_trips(tmp_path):
    rows = [("a", [solid(RED), None]), ("b", [solid(GREEN, 20, 90), solid((0, 0, 255, 128))])]
    path = write_contact_sheet(tmp_path / "sheets" / "sheet.png", rows, ["v0", "v1"], cell=48)
    assert path == tmp_path / "sheets" / "sheet.png"
    written = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, contact_sheet(rows, ["v0", "v1"], cell=48))
    assert [p.name for p in path.parent.iterdir()] == ["sheet.png"]  # no temporary file left behind
