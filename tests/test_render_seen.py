"""The seen share of a view: how much of the drawn face the photo showed, from the mesh, before rendering.

Checked against the renderer itself: the astronaut's face textured white where her fit saw it and black
elsewhere, rendered for real, shows as much white as the share says.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from uvaug.fit.mirror import mirror_fit, mirror_uv
from uvaug.fit.uv import uv_layout
from uvaug.render.grid import View
from uvaug.render.run import FaceViews, RenderOptions, renders_mirrored
from uvaug.render.seen import SEEN_ALPHA, seen_share, triangle_seen

RELATIVE = RenderOptions(views=(), relative=True, background="none", mirror_beyond=None)


def seen_texture(alpha: np.ndarray) -> np.ndarray:
    """A complete UV map, white where ``alpha`` says seen and black elsewhere."""
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = np.where(alpha >= SEEN_ALPHA, 255, 0)[..., None]
    rgba[..., 3] = np.where(uv_layout(alpha.shape[0]).coverage, 255, 0)
    return rgba


def test_triangle_shares_follow_the_alpha():
    size = 256
    assert np.nanmin(triangle_seen(np.full((size, size), 255, np.uint8))) == 1.0
    assert np.nanmax(triangle_seen(np.zeros((size, size), np.uint8))) == 0.0
    half = np.zeros((size, size), np.uint8)
    half[:, : size // 2] = 255  # one side of the symmetric layout
    shares = triangle_seen(half)
    mirrored = triangle_seen(mirror_uv(half))
    assert np.nanmean(shares) == pytest.approx(0.5, abs=0.05)
    assert np.nanmean(shares + mirrored) == pytest.approx(1.0, abs=0.01)  # each triangle's twin sees the rest
    assert np.isnan(shares).sum() <= 4  # only slivers own no texel at 256


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (30, 0), (60, 0), (-45, 0), (0, 20), (0, -20), (30, 20)])
def test_the_share_is_what_the_rendered_face_shows(astro_face, yaw: int, pitch: int):
    alpha = astro_face.uv[..., 3]
    views = FaceViews(astro_face.fit, seen_texture(alpha), None, seen=alpha)
    rendered = views.render_view(View(float(yaw), float(pitch)), RELATIVE)
    face = rendered.image[..., 3] > 250
    white = float((rendered.image[..., 0][face] > 127).mean())
    # measured: within 0.025 at every view (the mesh estimate also counts what the nose hides)
    assert rendered.seen == pytest.approx(white, abs=0.04)
    assert views.seen_share(View(float(yaw), float(pitch)), RELATIVE) == rendered.seen
    assert views.left_out(View(float(yaw), float(pitch)), RELATIVE) == (False, None)  # no --min-seen
    strict = dataclasses.replace(RELATIVE, min_seen=rendered.seen + 0.01)
    assert views.left_out(View(float(yaw), float(pitch)), strict) == (True, rendered.seen)


def test_the_share_falls_as_the_view_turns_away_from_the_photo(astro_face):
    views = FaceViews(astro_face.fit, astro_face.uv, None, seen=astro_face.uv[..., 3])
    shares = [views.seen_share(View(float(yaw), 0.0), RELATIVE) for yaw in (0, 20, 40, 60)]
    assert shares[0] > 0.85
    assert all(a > b for a, b in itertools.pairwise(shares)), shares
    assert shares[-1] < shares[0] - 0.1


@pytest.fixture(scope="module")
def turned(fitter, astronaut, astro_face):
    """The astronaut's face rendered at yaw +30 in her photo, fitted again: a real fit of a turned face."""
    photo, _ = FaceViews(astro_face.fit, astro_face.uv, astronaut).render(View(30.0, 0.0), RELATIVE)
    (face,) = fitter(np.ascontiguousarray(photo[..., :3]))
    assert face.fit.yaw > 20
    return face


def test_mirrored_views_use_the_mirrored_photos_map(turned):
    fit, alpha = turned.fit, turned.uv[..., 3]
    view, options = View(-45.0, 0.0), RenderOptions(views=())  # far to the other side: from the mirror
    assert renders_mirrored(fit, view, options)
    share = FaceViews(fit, turned.uv, None, seen=alpha).seen_share(view, options)
    flipped = FaceViews(mirror_fit(fit), mirror_uv(turned.uv), None, seen=mirror_uv(alpha))
    alone = RenderOptions(views=(), mirror_beyond=None)
    assert share == pytest.approx(flipped.seen_share(view, alone), abs=1e-9)
    # the mirror shows more of the face at that view than turning the photo itself would
    assert share > FaceViews(fit, turned.uv, None, seen=alpha).seen_share(view, alone) + 0.05


def test_without_the_fits_own_map_the_share_is_unknown(astro_face):
    views = FaceViews(astro_face.fit, astro_face.uv, None)
    assert views.seen_share(View(0.0, 0.0), RELATIVE) is None
    assert views.render_view(View(0.0, 0.0), RELATIVE).seen is None
    assert RenderOptions(views=()).keeps(None)
    assert not RenderOptions(views=(), min_seen=0.5).keeps(None)
    assert RenderOptions(views=(), min_seen=0.5).keeps(0.5)


def test_a_share_needs_a_drawn_face():
    vertices = np.zeros((468, 3))  # every triangle collapsed: nothing drawn
    assert seen_share(vertices, triangle_seen(np.full((256, 256), 255, np.uint8))) == 0.0
