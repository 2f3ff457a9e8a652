"""Offscreen rendering of turned heads with pyrender: one GL context per process, one scene per face.

Rendering is unlit (the photo's own shading is in the textures) and orthographic, matching the
weak-perspective fit, so a face rendered at its own pose lands on its own pixels. A :class:`Camera` is a
rotated rectangle of the photo plane: the whole photo, or the window that maps five facial points onto the
ArcFace template, in which case the aligned crop is rendered directly at its final size.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from uvaug.gl import INSTALL_HINT, select_platform
from uvaug.render.scene import DEFOCUS_RINGS, HeadScene
from uvaug.render.texture import Outline, outline_alpha, pad_colours, vertex_facing

Background = Literal["photo", "black", "none"]


class RenderError(RuntimeError):
    """No GL platform works, or the GL context failed."""


@dataclass(frozen=True)
class Camera:
    """A window onto the photo plane: centre (photo px), rotation (rad, counter-clockwise in GL), half-extents
    (photo px) and output size (px)."""

    center: tuple[float, float]
    angle: float
    half_width: float
    half_height: float
    width: int
    height: int

    @classmethod
    def whole_photo(cls, height: int, width: int) -> Camera:
        # Photo coordinates put pixel centres on integers (as OpenCV and the fit do), so the photo spans
        # -0.5 .. width - 0.5 and its centre is (width - 1) / 2.
        return cls(((width - 1) / 2, (height - 1) / 2), 0.0, width / 2, height / 2, width, height)

    @classmethod
    def from_similarity(cls, matrix: np.ndarray, width: int, height: int) -> Camera:
        """The window that a 2x3 similarity (photo px -> output px, y down) maps onto the output image."""
        a, b = matrix[0, 0], matrix[1, 0]
        scale = float(np.hypot(a, b))
        angle = float(np.arctan2(b, a))
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
        center = inverse @ [(width - 1) / 2, (height - 1) / 2, 1]  # pixel centres on integers, both sides
        return cls(
            (float(center[0]), float(center[1])), angle, width / 2 / scale, height / 2 / scale, width, height
        )

    def pose(self, depth: float) -> np.ndarray:
        """4x4 camera-to-world pose in the GL frame, looking down -z from ``depth``."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        m = np.eye(4)
        m[:2, :2] = [[c, -s], [s, c]]
        m[:3, 3] = [self.center[0], -self.center[1], depth]
        return m


class HeadRenderer:
    """Renders one :class:`HeadScene` at any rotation; build one per face, reuse it for all its views."""

    def __init__(
        self,
        head: HeadScene,
        face_texture: np.ndarray,
        photo: np.ndarray | None,
        defocus: bool = True,
        outline: Outline | None = None,
    ):
        """``defocus``: show a defocused photo where the background stretches over what the turned head
        uncovers (see :meth:`_add_background`); off, the sharp photo is stretched there. ``outline``: the
        photo's colours drawn over the face's edge while the view keeps that surface grazing
        (:mod:`uvaug.render.texture`)."""
        import pyrender

        self._pyrender = pyrender
        self.head = head
        self.scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[1.0, 1.0, 1.0])
        self.face_material = _textured(pyrender, pad_colours(face_texture))
        self.outline_material = self._outline_triangles = self._photo_facing = None
        if outline is not None:
            self.outline_material = _material(pyrender, _texture(pyrender, outline.texture), blend=True)
            self._outline_triangles = head.face_triangles[outline.triangles]
            self._photo_facing = vertex_facing(head.face_at(head.fit_rotation))
        self.face_uv = head.face_uv.astype(np.float32)
        self.photo_material = self.photo_uv = self._photo = None
        self._fading_photo_material = self._soft_material = None
        self.defocus = defocus
        if photo is not None:
            margin = photo_margin(head)
            self._photo = extend_photo(photo, margin)
            texture = _texture(pyrender, self._photo)
            self.photo_material = _material(pyrender, texture)
            self._fading_photo_material = _material(pyrender, texture, blend=True)
            # the anchors' texture coordinates in the extended photo (the photo sits inside its margin)
            size = np.array(head.image_size[::-1], np.float64)  # width, height
            self.photo_uv = ((head.anchor_uv * size + margin) / (size + 2 * margin)).astype(np.float32)
        # Only the inner rings may fade to the defocused photo: the contour meets the face sharp, and past
        # them the photo is only moved, not smeared (large photos keep their background sharp).
        self._fading_vertices = np.isin(head.anchor_ring, DEFOCUS_RINGS)
        # Triangles glued to the contour stretch with the face's own turn (chin, jaw), not over what the
        # head uncovers: they do not call for the defocused photo.
        self._glued_triangles = (head.anchor_vertex[head.anchor_triangles] >= 0).any(1)
        self._view_nodes: list = []
        self.camera = pyrender.OrthographicCamera(xmag=1.0, ymag=1.0)
        self.camera_node = self.scene.add(self.camera)

    def render(
        self,
        rotation: np.ndarray,
        camera: Camera,
        background: Background = "photo",
        face: np.ndarray | None = None,
    ) -> np.ndarray:
        """RGB uint8 (or RGBA for ``background="none"``) image of the head turned to ``rotation``.
        ``face``: :meth:`HeadScene.face_at` of the same rotation, when the caller already has it."""
        for node in self._view_nodes:
            self.scene.remove_node(node)
        # The face's vertices are placed per view (the added depth turns with yaw only), so its mesh is
        # rebuilt per view; the textures are uploaded once and shared.
        face = self.head.face_at(rotation) if face is None else face
        self._view_nodes = [self._add_mesh(face, self.face_uv, self.head.face_triangles, self.face_material)]
        if self.outline_material is not None:
            self._add_outline(face)
        geometry = [face]
        if background == "photo":
            if self.photo_material is None:
                raise ValueError("background 'photo' needs the photo")
            anchors = behind_the_face(self.head.anchors_at(rotation, face), face)
            geometry.append(anchors - (0.0, 0.0, DEFOCUS_LAYER_GAP))
            self._add_background(anchors)
        # Clip planes around the turned geometry: parts that swing backwards must stay inside the far plane.
        z = np.concatenate(geometry)[:, 2]
        depth = float(z.max()) + 10.0
        self.camera.xmag, self.camera.ymag = camera.half_width, camera.half_height
        self.camera.znear, self.camera.zfar = 1.0, float(depth - z.min()) + 10.0
        self.scene.set_pose(self.camera_node, camera.pose(depth))
        color = gl_context().render(self.scene, camera.width, camera.height)
        if background == "none":
            if self.outline_material is not None:
                # blending the outline over the face blended its alpha too: the face is opaque wherever drawn
                color = np.array(color)
                color[..., 3][color[..., 3] > 0] = 255
            return color
        return np.ascontiguousarray(color[..., :3])

    def _add_outline(self, face: np.ndarray) -> None:
        """The outline texture over the face, each vertex's share fading as the view turns it to the camera
        (:func:`uvaug.render.texture.outline_alpha`); just in front of the face (orthographic: it covers the
        same pixels), so it wins the depth test."""
        alpha = outline_alpha(vertex_facing(face), self._photo_facing)
        triangles = self._outline_triangles[(alpha[self._outline_triangles] > 0).any(1)]
        if not len(triangles):
            return
        colours = np.ones((len(face), 4), np.float32)
        colours[:, 3] = alpha
        front = face + np.array([0.0, 0.0, OUTLINE_LAYER_GAP])
        node = self._add_mesh(front, self.face_uv, triangles, self.outline_material, colours)
        self._view_nodes.append(node)

    def _add_background(self, anchors: np.ndarray) -> None:
        """The photo around the turned face. Where background triangles stretch (over what the turned head
        uncovers), a defocused copy of the photo shows instead of the sharp one, so that a narrow strip of
        hair, clothes or the photo's border smeared across the gap reads as out-of-focus background, not as
        streaks: the defocused mesh lies just behind the sharp one, which fades out per vertex (alpha
        blending), so the textures stay uploaded once per face. Views that stretch nothing draw one mesh."""
        triangles = self.head.anchor_triangles
        vertex_weight = self._fading_weights(anchors) if self.defocus else None
        if vertex_weight is None or not vertex_weight.any():
            self._view_nodes.append(self._add_mesh(anchors, self.photo_uv, triangles, self.photo_material))
            return
        if self._soft_material is None:
            self._soft_material = _textured(self._pyrender, soften(self._photo, self.head))
        # Only triangles with a fading corner need the two layers; the rest (most of the picture's area, which
        # a software rasteriser pays for per layer) is drawn once, and meets them where their alpha is 1.
        fading = (vertex_weight[triangles] > 0).any(1)
        self._view_nodes.append(
            self._add_mesh(anchors, self.photo_uv, triangles[~fading], self.photo_material)
        )
        behind = anchors - (0.0, 0.0, DEFOCUS_LAYER_GAP)
        self._view_nodes.append(self._add_mesh(behind, self.photo_uv, triangles[fading], self._soft_material))
        alpha = np.ones((len(anchors), 4), np.float32)
        alpha[:, 3] = 1.0 - vertex_weight
        self._view_nodes.append(
            self._add_mesh(anchors, self.photo_uv, triangles[fading], self._fading_photo_material, alpha)
        )

    def _fading_weights(self, anchors: np.ndarray) -> np.ndarray:
        """(A,) share of the defocused photo at each anchor in this view: the most any of its triangles (not
        glued to the contour) calls for, on the fading rings only."""
        triangles = self.head.anchor_triangles
        weight = stretch_weight(self.head.background_stretch(anchors))
        weight[self._glued_triangles] = 0.0
        vertex_weight = np.zeros(len(anchors))
        np.maximum.at(vertex_weight, triangles.ravel(), np.repeat(weight, 3))
        vertex_weight[~self._fading_vertices] = 0.0
        return vertex_weight

    def _add_mesh(
        self,
        positions: np.ndarray,
        uv: np.ndarray,
        triangles: np.ndarray,
        material,
        colours: np.ndarray | None = None,
    ):
        """A textured triangle mesh added to the scene (``colours``: RGBA per vertex, multiplying the
        texture); its node."""
        pyrender = self._pyrender
        prim = pyrender.Primitive(
            positions=positions.astype(np.float32),
            texcoord_0=uv,
            color_0=colours,
            indices=triangles,
            material=material,
        )
        return self.scene.add(pyrender.Mesh([prim]))


#: Depth (photo px) between the face's farthest point and the nearest background when they would overlap.
BACKGROUND_GAP = 1.0


def behind_the_face(anchors: np.ndarray, face: np.ndarray) -> np.ndarray:
    """``anchors`` moved straight back (the camera is orthographic: they project where they did) until the
    whole background lies behind the face, so that the photo's surroundings never hide it. Between them they
    keep their depth order. Where a view turns the photo's hidden side into sight, the band glued to that
    side's contour folded over the revealed cheek and drew a crescent of wall over it (a face photographed
    at yaw -35 and turned to +10 lost up to 6 pixels of its far cheek)."""
    shift = float(anchors[:, 2].max() - face[:, 2].min()) + BACKGROUND_GAP
    return anchors - (0.0, 0.0, max(shift, 0.0))


#: Magnification (:meth:`HeadScene.background_stretch`) from which a background triangle starts to show the
#: defocused photo, and from which it shows only that.
STRETCH_SHARP, STRETCH_SOFT = 1.2, 2.0
#: Blur of the defocused photo, as a share of the face's width.
SOFT_BLUR = 0.2
#: How far (photo px) the defocused background lies behind the sharp one it shows through.
DEFOCUS_LAYER_GAP = 0.5
#: How far (photo px) the outline texture lies in front of the face it is drawn over.
OUTLINE_LAYER_GAP = 0.5


def stretch_weight(stretch: np.ndarray) -> np.ndarray:
    """(B,) share of the defocused photo per background triangle, from its magnification in the view."""
    return np.clip((stretch - STRETCH_SHARP) / (STRETCH_SOFT - STRETCH_SHARP), 0.0, 1.0)


def soften(photo: np.ndarray, head: HeadScene) -> np.ndarray:
    """The (extended) photo, defocused by :data:`SOFT_BLUR` of the face's width."""
    contour = head.anchors[head.anchor_vertex >= 0][:, :2]
    sigma = max(1.0, SOFT_BLUR * float(np.ptp(contour[:, 0])))
    # A wide blur is smooth: run it on a grid about sigma / 3 times coarser (a face costs ~1 ms, not ~80).
    factor = max(1, int(sigma / 3))
    size = (photo.shape[1], photo.shape[0])
    small = cv2.resize(photo, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / factor, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)


#: Pixels past the photo's border over which its repeated border pixels fade into their blur.
SHARP_EDGE = 12


def extend_photo(photo: np.ndarray, margin: int) -> np.ndarray:
    """The photo with ``margin`` pixels around it that continue it plausibly.

    Turned heads and aligned crops of tightly cropped photos (UTKFace's 200x200 chips) look past the photo's
    border. The margin repeats the border's pixels outwards and blurs them more the further they lie from it
    (fully from :data:`SHARP_EDGE` pixels on), so what shows there is a soft continuation of the photo's
    colours: not the long streaks of a repeated border row (clamp-to-edge), nor, as a mirror would give,
    copies of the eyes above the hair.
    """
    if margin <= 0:
        return photo
    height, width = photo.shape[:2]
    extended = cv2.copyMakeBorder(photo, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    size = (extended.shape[1], extended.shape[0])
    # The wide blur and the blend weights are smooth: compute both on a grid `factor` times coarser.
    factor = max(1, margin // 16)
    small = cv2.resize(extended, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(
        cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, margin / (4 * factor))), size, cv2.INTER_LINEAR
    )
    rows = (np.arange(small.shape[0], dtype=np.float32) + 0.5) * (size[1] / small.shape[0]) - margin
    cols = (np.arange(small.shape[1], dtype=np.float32) + 0.5) * (size[0] / small.shape[1]) - margin
    beyond_y = np.maximum(np.maximum(-rows, rows - height), 0)  # pixels beyond the photo, 0 inside
    beyond_x = np.maximum(np.maximum(-cols, cols - width), 0)
    weight = np.clip(np.hypot(beyond_y[:, None], beyond_x[None, :]) / min(SHARP_EDGE, margin), 0.0, 1.0)
    weight = cv2.resize(weight, size, interpolation=cv2.INTER_LINEAR)
    out = cv2.blendLinear(extended, blurred, 1.0 - weight, weight)
    out[margin : margin + height, margin : margin + width] = photo  # the photo itself, untouched
    return out


#: The widest margin added: past it the texture's clamp-to-edge repeats the margin's outer, fully blurred
#: pixels, which look the same as a wider margin would, at a fraction of the texture size.
MAX_MARGIN = 48


#: The narrowest margin: however far inside the photo the rings lie, a turned head pulls the background
#: between them and the fixed frame along, so the photo's border moves inwards and the view looks past it.
#: From this wide on, what shows there is the margin's fully blurred part, not the border's repeated pixels.
MIN_MARGIN = 2 * SHARP_EDGE


def photo_margin(head: HeadScene) -> int:
    """How far past the photo's border the moving background can look (at least :data:`MIN_MARGIN`, at most
    :data:`MAX_MARGIN`): the turning anchor rings reach beyond it (tight crops), and an aligned crop's window
    is about as wide as the outer ring."""
    height, width = head.image_size
    rings = head.anchors[head.anchor_share > 0][:, :2] * np.array([1.0, -1.0])  # photo pixels, y down
    (x0, y0), (x1, y1) = rings.min(0), rings.max(0)
    reach = max(-x0, -y0, x1 - width, y1 - height, 0.0)
    wanted = reach + 0.25 * max(x1 - x0, y1 - y0) if reach > 0 else 0.0
    return int(min(max(wanted, MIN_MARGIN), MAX_MARGIN))


def _opaque(image: np.ndarray) -> np.ndarray:
    """RGBA of an RGB image: RGB rows of a width that is not a multiple of 4 bytes would be read skewed (GL
    unpack alignment 4)."""
    if image.shape[2] == 4:
        return image
    return np.dstack([image, np.full(image.shape[:2], 255, image.dtype)])


def _textured(pyrender, image: np.ndarray):
    """An unlit, alpha-masked material showing ``image``."""
    return _material(pyrender, _texture(pyrender, image))


def _texture(pyrender, image: np.ndarray):
    clamp = 33071  # GL_CLAMP_TO_EDGE: geometry past the (extended) photo takes its blurred border colours
    return pyrender.Texture(
        source=np.ascontiguousarray(_opaque(image)),
        source_channels="RGBA",
        sampler=pyrender.Sampler(wrapS=clamp, wrapT=clamp),
    )


def _material(pyrender, texture, blend: bool = False):
    """An unlit material showing ``texture``: alpha masked, or with ``blend`` alpha-blended over what lies
    behind it (materials sharing a texture upload it once)."""
    return pyrender.MetallicRoughnessMaterial(
        baseColorTexture=texture,
        metallicFactor=0.0,
        roughnessFactor=1.0,
        alphaMode="BLEND" if blend else "MASK",
        alphaCutoff=None if blend else 0.5,
    )


class _GLContext:
    """The process's offscreen renderer, resized as needed (creating a context costs ~100 ms)."""

    def __init__(self) -> None:
        platform = select_platform()
        if platform is None:
            raise RenderError(INSTALL_HINT)
        import pyrender

        self.pyrender = pyrender
        try:
            self.renderer = pyrender.OffscreenRenderer(64, 64)
        except Exception as exc:  # the platform probed fine but this process cannot get a context
            raise RenderError(
                f"cannot create an OpenGL context with {platform}: {exc}. {INSTALL_HINT}"
            ) from exc

    def render(self, scene, width: int, height: int) -> np.ndarray:
        r = self.renderer
        if (r.viewport_width, r.viewport_height) != (width, height):
            r.viewport_width, r.viewport_height = width, height
        flags = self.pyrender.RenderFlags
        color, _ = r.render(scene, flags=flags.FLAT | flags.RGBA | flags.SKIP_CULL_FACES)
        return color


_CONTEXT: _GLContext | None = None


def gl_context() -> _GLContext:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = _GLContext()
        atexit.register(release_gl_context)
    return _CONTEXT


def release_gl_context() -> None:
    """Free the process's GL context. Run at exit: left to the interpreter's teardown, PyOpenGL fails to
    release it and prints its internals on the way out."""
    global _CONTEXT
    if _CONTEXT is not None:
        context, _CONTEXT = _CONTEXT, None
        context.renderer.delete()
