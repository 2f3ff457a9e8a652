"""``--yaw``/``--pitch`` specs, the pose grid and per-view file names (uvaug.render.grid)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uvaug.render.grid import (
    MAX_ANGLES,
    GridError,
    View,
    parse_angles,
    pose_grid,
    sample_views,
    view_output_name,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("-60:60:15", (-60, -45, -30, -15, 0, 15, 30, 45, 60)),
        ("60:-60:-15", (60, 45, 30, 15, 0, -15, -30, -45, -60)),
        ("0:50:20", (0, 20, 40)),  # STOP only when it lies on the grid
        ("0:95:10", (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)),  # STOP beyond 90 is fine when not reached
        ("-7.5:7.5:2.5", (-7.5, -5, -2.5, 0, 2.5, 5, 7.5)),
        ("0:0.3:0.1", (0, 0.1, 0.2, 0.3)),  # 0.3 / 0.1 < 3 in floating point
        ("0:1:0.1", (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1)),
        (" -90 : 90 : 90 ", (-90, 0, 90)),
        ("20:20:5", (20,)),
        ("-45,0,45", (-45, 0, 45)),
        ("-45, 0 , 45", (-45, 0, 45)),
        ("30,-30,30,0,-30", (30, -30, 0)),  # repeats dropped, first order kept
        ("0, 0.0, -0", (0,)),
        ("30", (30,)),
        ("-12.5", (-12.5,)),
    ],
)
def test_parse_angles(spec, expected):
    assert parse_angles(spec) == tuple(float(v) for v in expected)


def test_parse_angles_gives_no_negative_zero():
    for spec in ("-0", "10:-10:-10", "-0.0000001"):
        assert 0.0 in parse_angles(spec)
        assert all(math.copysign(1.0, v) == 1.0 for v in parse_angles(spec) if v == 0)


@pytest.mark.parametrize(
    ("spec", "name", "message"),
    [
        ("a:b", "yaw", "--yaw: malformed angle spec 'a:b' (use START:STOP:STEP or a comma list)"),
        ("0:60", "yaw", "--yaw: malformed angle spec '0:60' (use START:STOP:STEP or a comma list)"),
        ("0:60:15:1", "yaw", "--yaw: malformed angle spec '0:60:15:1' (use START:STOP:STEP or a comma list)"),
        ("-45,,45", "yaw", "--yaw: malformed angle spec '-45,,45' (use START:STOP:STEP or a comma list)"),
        ("0:10:5,20", "yaw", "--yaw: malformed angle spec '0:10:5,20' (use START:STOP:STEP or a comma list)"),
        ("nan", "pitch", "--pitch: malformed angle spec 'nan' (use START:STOP:STEP or a comma list)"),
        ("0:inf:1", "yaw", "--yaw: malformed angle spec '0:inf:1' (use START:STOP:STEP or a comma list)"),
        ("-60:60:0", "yaw", "--yaw: step must not be 0"),
        ("60:-60:15", "pitch", "--pitch: step goes the wrong way (60:-60:15)"),
        ("-60:60:-15", "yaw", "--yaw: step goes the wrong way (-60:60:-15)"),
        ("95", "yaw", "--yaw: angle 95 is beyond +-90 degrees"),
        ("0,-90.5", "pitch", "--pitch: angle -90.5 is beyond +-90 degrees"),
        ("90.000001", "yaw", "--yaw: angle 90.000001 is beyond +-90 degrees"),
        ("-100:0:10", "yaw", "--yaw: angle -100 is beyond +-90 degrees"),
        ("", "yaw", "--yaw: empty"),
        ("   ", "pitch", "--pitch: empty"),
        ("-60:60:0.1", "yaw", f"--yaw: 1201 angles is more than {MAX_ANGLES}; use a coarser step"),
        ("0:1:0.001", "--pitch", f"--pitch: 1001 angles is more than {MAX_ANGLES}; use a coarser step"),
    ],
)
def test_parse_angles_errors(spec, name, message):
    with pytest.raises(GridError) as caught:
        parse_angles(spec, name)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)  # callers that only know ValueError still catch it


def test_grid_size_cap_is_inclusive_and_applies_to_lists():
    assert len(parse_angles("0:89.91:0.09")) == MAX_ANGLES
    with pytest.raises(GridError, match="1001 angles"):
        parse_angles("0:90:0.09")
    with pytest.raises(GridError, match="1001 angles"):
        parse_angles(",".join(f"{i * 0.01:.2f}" for i in range(MAX_ANGLES + 1)))


def test_huge_range_is_refused_before_it_is_built():
    # Building 9e10 angles would fail with MemoryError (or swap) instead of this message.
    with pytest.raises(GridError, match="90000000001 angles is more than"):
        parse_angles("0:90:1e-9")


@pytest.mark.parametrize(
    ("yaw", "pitch", "tag"),
    [
        (30, -10, "_y+30_p-10"),
        (0, 0, "_y+00_p+00"),
        (-0.0, -0.0, "_y+00_p+00"),
        (-5, 20, "_y-05_p+20"),
        (90, -90, "_y+90_p-90"),
        (7.5, 0, "_y+07.5_p+00"),
        (-12.25, 2.5, "_y-12.25_p+02.5"),
        (0.1 + 0.2, 0, "_y+00.3_p+00"),
    ],
)
def test_view_tag(yaw, pitch, tag):
    assert View(yaw, pitch).tag == tag
    assert View(yaw, pitch).label == tag[1:].replace("_", " ")


def test_tags_are_distinct_over_a_fine_grid():
    views = pose_grid(parse_angles("-90:90:2.5"), parse_angles("-30:30:7.5"))
    assert len({v.tag for v in views}) == len(views) == 73 * 9


def test_pose_grid_is_yaw_major_product():
    views = pose_grid((-30.0, 0.0, 30.0), (10.0, -10.0))
    assert views == [
        View(-30, 10),
        View(-30, -10),
        View(0, 10),
        View(0, -10),
        View(30, 10),
        View(30, -10),
    ]
    assert pose_grid((0.0,), ()) == []


def test_view_output_name():
    view = View(30, -10)
    assert view_output_name("n000002/0001_01", 0, view, "jpg") == "n000002/0001_01_y+30_p-10.jpg"
    assert view_output_name("img", 2, view, "png") == "img.f2_y+30_p-10.png"
    assert view_output_name("img", 0, View(-7.5, 0), ".webp") == "img_y-07.5_p+00.webp"
    with pytest.raises(ValueError, match="face index"):
        view_output_name("img", -1, view, "png")
    with pytest.raises(ValueError, match="extension"):
        view_output_name("img", 0, view, "")


GRID = pose_grid(parse_angles("-75:75:5"), parse_angles("-20:20:10"))  # 31 x 5 = 155 views


def test_sample_views_draws_a_subset_in_grid_order_the_same_every_time():
    drawn = sample_views(GRID, 3, "people/a.jpg#0", seed=0)
    assert len(drawn) == 3 and len(set(drawn)) == 3
    assert [GRID.index(v) for v in drawn] == sorted(GRID.index(v) for v in drawn)
    assert sample_views(GRID, 3, "people/a.jpg#0", seed=0) == drawn
    assert sample_views(tuple(GRID), 3, "people/a.jpg#0", seed=0) == drawn


def test_sample_views_differ_between_faces_and_seeds():
    draws = {sample_views(GRID, 2, f"id{k}/img.jpg#0") for k in range(200)}
    # 200 faces drawing 2 of 155 views: nearly every face gets its own pair
    assert len(draws) > 190
    # ... and every view is used about equally (400 draws over 155 views: no view more than ~4x the mean)
    counts = np.bincount([GRID.index(v) for d in draws for v in d], minlength=len(GRID))
    assert (counts > 0).sum() > 0.8 * len(GRID) and counts.max() <= 10
    assert sample_views(GRID, 3, "a.jpg#0", seed=1) != sample_views(GRID, 3, "a.jpg#0", seed=0)
    assert sample_views(GRID, 3, "a.jpg#1") != sample_views(GRID, 3, "a.jpg#0")


def test_sample_views_all_or_error():
    assert sample_views(GRID, None, "a.jpg#0") == tuple(GRID)
    assert sample_views(GRID[:4], 4, "a.jpg#0") == tuple(GRID[:4])
    assert sample_views(GRID[:4], 9, "a.jpg#0") == tuple(GRID[:4])
    with pytest.raises(ValueError, match="at least 1 view"):
        sample_views(GRID, 0, "a.jpg#0")
