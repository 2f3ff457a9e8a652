"""Geometry of a head turning inside its own photo.

Everything is expressed in the GL frame, which is the y-up camera frame of :mod:`uvaug.fit.pose`: x right,
y up, z towards the viewer, in photo pixels (``gl = photo * (1, -1, -1)``). A view is a rotation of the head
about the face's centre, so the face stays where the photo had it (as if the camera followed the turning
head; face crops stay framed):

* the face mesh turns rigidly (it is textured with its UV map);
* a background mesh, textured with the photo itself, is spanned by anchor points: the face contour (turning
  with the face), a ring just outside it for hair, ears and neck (turning with the head, at the depth of the
  sides of a head, behind the face, or on the cranium above the forehead), two wider rings that turn half
  as much, and a frame far outside the photo (fixed). Its triangles stretch over whatever the turned head
  uncovers, so the picture has no holes, and hair and ears move with the face instead of staying behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.spatial import Delaunay
from scipy.spatial.transform import Rotation, Slerp

from uvaug.artifacts import FaceFit
from uvaug.fit.mesh import mesh_topology
from uvaug.fit.pose import angles_from_rotation, rotation_from_angles
from uvaug.fit.topology import boundary_loop

TO_GL = np.array([1.0, -1.0, -1.0])
#: Centre of a view's rotation in canonical-mesh centimetres: the face's centroid (on the midline, on the
#: face's surface, which spans z = -2.4..7.6 cm with the nose tip in front), so the face keeps its place in
#: the photo. Turning about the neck instead (0, -1, -4.5) moved the face by ~1/4 of its height at yaw 45 or
#: pitch 20, out of tight crops: on 40 UTKFace train chips re-detection at abs(yaw) <= 45 was 88.7% (98.8%
#: about the centroid) and pitch MAE 4.8 degrees (2.8), the forehead leaving the frame at pitch +20.
TURN_CENTRE_CANONICAL = np.array([0.0, -0.68, 4.16])
#: Depth (canonical cm) of the background rings around the face: that of the sides of a head, behind the face.
SIDE_DEPTH_CANONICAL = np.array([0.0, -1.0, -4.5])
#: Anchor rings: (scale of the contour about the face centre, share of the head rotation they follow). The
#: third moves with the second: it only bounds the band in which the renderer may show a defocused photo
#: (:data:`DEFOCUS_RINGS`), so that the large triangles out to the photo's fixed frame always stay sharp.
RINGS = ((1.35, 1.0), (2.1, 0.5), (2.35, 0.5))
#: The rings (1-based, as :attr:`HeadScene.anchor_ring` numbers them) whose anchors may fade to the defocused
#: photo where the background stretches.
DEFOCUS_RINGS = (1, 2)
#: Curvature (1/cm) of the cylinder the fitted mesh is wrapped onto: each vertex moves away from the viewer by
#: DEPTH_WRAP * x^2 (x: its distance from the face's midline in cm). The landmark model's mesh is too flat
#: from side to side: unwrapped, turned faces read back less turned than asked (by the same fitter, which
#: read real AFLW2000 photos within 2 degrees up to 50 degrees, but 4 short at 50-55 and 7 at 55-65, when
#: this was tuned; within 3.5 up to 60 and 5 short at 60-65 since its silhouette-aware pose fit:
#: ``benchmarks/fit_pose_aflw.py``'s last table). The added depth turns with the view's change of yaw
#: only (:meth:`HeadScene.wrap_turn`): turned with pitch too, it made pitch renders overshoot by about half.
#: Chosen on 40 UTKFace *train* faces (render at yaw -45..45 x pitch -20, 0, 20 with completed textures,
#: re-fit; views turning about the face's centre): yaw MAE for abs(yaw) <= 45 was 3.78 / 3.14 / 2.74 / 2.82 /
#: 3.16 degrees at 0.03 / 0.04 / 0.05 / 0.06 / 0.08 (pitch MAE 2.8-3.2 throughout); at 0.08 yaw 30 already
#: overshoots while yaw 45 still reads ~5 low, as the fitter also reads real AFLW2000 photos at 35-55 degrees
#: (3-5 low). With the pitch turning the added depth as well, pitch 0 at yaw 30 read 3 degrees low and pitch
#: MAE rose from 4.8 to 5.4 (neck pivot). `benchmarks/render_pose_fidelity.py` measures the result on
#: held-out (val) faces.
DEPTH_WRAP = 0.05
#: The cranium as an ellipsoid in canonical-mesh cm (centre, semi-axes): 15.6 cm broad, 25 cm high, 21 cm
#: long, 0.25 cm behind the hairline (the contour's top, y 8.3, z 4.5). Ring anchors whose line of sight meets
#: its upper front (above CRANIUM_FROM_Y and in front of its centre) take its depth, so the top of the head
#: rounds back from the forehead; at SIDE_DEPTH_CANONICAL, as all anchors were, it dropped 9 cm at once and
#: views tilted chin up showed a head cut off flat at the forehead. Lower down the ellipsoid is left out:
#: beside a turned face's temples it lies in front of the cheek, while the photo there shows what lies
#: behind the head. (Beside a frontal face and below it the rings lie outside the cranium's outline anyway.)
CRANIUM = (np.array([0.0, 1.0, -4.35]), np.array([7.8, 12.6, 10.5]))
#: Height (canonical cm) from which the cranium shapes the rings: the top of the contour at the temples.
CRANIUM_FROM_Y = 6.5
BORDER_POINTS_PER_SIDE = 8


@cache
def contour_loop() -> np.ndarray:
    """Vertex indices of the face mesh's outer boundary, in order around the face."""
    return boundary_loop(mesh_topology().triangles)


def view_angles(fit: FaceFit, yaw: float, pitch: float, relative: bool = False) -> tuple[float, float]:
    """The absolute (yaw, pitch) a view asks for: as given, or ``relative`` offsets from the fit."""
    return (fit.yaw + yaw, fit.pitch + pitch) if relative else (yaw, pitch)


def target_rotation(fit: FaceFit, yaw: float, pitch: float, relative: bool = False) -> np.ndarray:
    """The head's rotation in a view: absolute yaw/pitch (the photo's roll kept) or offsets from the fit."""
    return rotation_from_angles(*view_angles(fit, yaw, pitch, relative), fit.roll)


def rigid(rotation: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """4x4 matrix rotating about ``pivot`` (GL frame)."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = pivot - rotation @ pivot
    return m


@dataclass(frozen=True)
class HeadScene:
    """A fitted face and its photo, ready to be turned; all coordinates in the GL frame."""

    face_vertices: np.ndarray  # (468, 3) as fitted
    face_wrap: np.ndarray  # (468, 3) depth added to the fitted mesh (see DEPTH_WRAP), at the photo's pose
    face_uv: np.ndarray  # (468, 2) texture coordinates (v up)
    face_triangles: np.ndarray  # (898, 3)
    pivot: np.ndarray  # (3,) the point a view turns about: the face's centre (TURN_CENTRE_CANONICAL)
    fit_rotation: np.ndarray  # (3, 3) the head's rotation in the photo
    anchors: np.ndarray  # (A, 3) background anchor points
    anchor_share: np.ndarray  # (A,) share of the head rotation each anchor follows, 0..1
    anchor_vertex: np.ndarray  # (A,) the face vertex an anchor is glued to (the contour), else -1
    anchor_ring: np.ndarray  # (A,) 0 for the contour, k for the k-th of RINGS, -1 for the fixed frame
    anchor_uv: np.ndarray  # (A, 2) texture coordinates into the photo (v up)
    anchor_triangles: np.ndarray  # (B, 3)
    image_size: tuple[int, int]  # height, width

    def wrap_turn(self, rotation: np.ndarray) -> np.ndarray:
        """The rotation the added depth follows: the view's change of yaw, not of pitch (see DEPTH_WRAP)."""
        _, pitch, roll = angles_from_rotation(self.fit_rotation)
        yaw = angles_from_rotation(rotation)[0]
        return rotation_from_angles(yaw, pitch, roll) @ self.fit_rotation.T

    def head_matrix(self, rotation: np.ndarray) -> np.ndarray:
        """4x4 pose that turns the face from its photo pose to ``rotation`` (GL frame)."""
        return rigid(rotation @ self.fit_rotation.T, self.pivot)

    def face_at(self, rotation: np.ndarray) -> np.ndarray:
        """(468, 3) face vertices turned to ``rotation``, with the added depth turned by :meth:`wrap_turn`."""
        m = self.head_matrix(rotation)
        return self.face_vertices @ m[:3, :3].T + m[:3, 3] + self.face_wrap @ self.wrap_turn(rotation).T

    def anchors_at(self, rotation: np.ndarray, face: np.ndarray | None = None) -> np.ndarray:
        """(A, 3) background anchors, each following its share of the turn; the contour stays glued to the
        face (whose added depth turns differently, see :meth:`wrap_turn`), so no gap opens between them.
        ``face``: :meth:`face_at` of the same ``rotation``, when the caller already has it."""
        delta = rotation @ self.fit_rotation.T
        shares = np.unique(self.anchor_share)
        turns = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([np.eye(3), delta])))(shares).as_matrix()
        out = self.anchors.copy()
        for share, turn in zip(shares, turns, strict=True):
            sel = self.anchor_share == share
            out[sel] = (self.anchors[sel] - self.pivot) @ turn.T + self.pivot
        glued = self.anchor_vertex >= 0
        face = self.face_at(rotation) if face is None else face
        out[glued] = face[self.anchor_vertex[glued]]
        return out

    def background_stretch(self, anchors: np.ndarray) -> np.ndarray:
        """(B,) how much each background triangle magnifies the photo in a view: the larger singular value
        of the affine map from the triangle at the photo's pose to its projection among ``anchors``
        (:meth:`anchors_at`). Triangles that stretch over what the turned head uncovers read well above 1."""
        tri = self.anchor_triangles
        rest, view = self.anchors[:, :2], anchors[:, :2]
        source = np.stack([rest[tri[:, 1]] - rest[tri[:, 0]], rest[tri[:, 2]] - rest[tri[:, 0]]], -1)
        target = np.stack([view[tri[:, 1]] - view[tri[:, 0]], view[tri[:, 2]] - view[tri[:, 0]]], -1)
        det = np.linalg.det(source)
        usable = np.abs(det) > 1e-9
        affine = np.zeros_like(source)
        affine[usable] = target[usable] @ np.linalg.inv(source[usable])
        # singular values of 2x2 matrices in closed form: s1^2 + s2^2 = |A|_F^2, s1 * s2 = |det A|
        frobenius = (affine**2).sum((1, 2))
        area = np.linalg.det(affine)
        return np.sqrt(0.5 * (frobenius + np.sqrt(np.maximum(frobenius**2 - 4 * area**2, 0.0))))


def wrap_depth(vertices_gl: np.ndarray, fit: FaceFit, curvature: float) -> np.ndarray:
    """(N, 3) offsets pushing GL-frame vertices away from the viewer by ``curvature * x**2`` (x: face-frame cm
    from the midline).

    The push is along the viewing direction, so the face at its photo pose projects exactly as fitted.
    """
    linear, offset = _canonical_to_gl_affine(fit)
    canonical_x = np.linalg.solve(linear, (vertices_gl - offset).T)[0]
    out = np.zeros_like(vertices_gl)
    out[:, 2] = -curvature * canonical_x**2 * float(fit.scale)
    return out


def cranium_depth(fit: FaceFit, xy: np.ndarray) -> np.ndarray:
    """(N,) GL depth of the cranium (:data:`CRANIUM`) seen at GL points ``xy`` (N, 2) in the photo: where
    the line of sight meets its upper front; -inf elsewhere (see :data:`CRANIUM_FROM_Y`)."""
    linear, offset = _canonical_to_gl_affine(fit)
    inverse = np.linalg.inv(linear)
    centre, axes = CRANIUM
    # canonical point along the line of sight: start + z * direction
    start = (np.column_stack([xy, np.zeros(len(xy))]) - offset) @ inverse.T
    direction = inverse[:, 2]
    a = ((direction / axes) ** 2).sum()
    b = 2 * (((start - centre) * direction) / axes**2).sum(1)
    c = (((start - centre) / axes) ** 2).sum(1) - 1
    disc = b**2 - 4 * a * c
    front = (-b + np.sqrt(np.maximum(disc, 0.0))) / (2 * a)  # a > 0: the larger root, nearer the camera
    hit = start + front[:, None] * direction
    above = (hit[:, 1] >= CRANIUM_FROM_Y) & (hit[:, 2] >= centre[2])
    return np.where((disc >= 0) & above, front, -np.inf)


def _canonical_to_gl_affine(fit: FaceFit) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) linear part and (3,) offset of the map from canonical-mesh cm to the GL frame (photo px)."""
    transform = np.asarray(fit.transform, np.float64)
    return transform[:, :3] * TO_GL[:, None], transform[:, 3] * TO_GL


def canonical_to_gl(fit: FaceFit, point: np.ndarray) -> np.ndarray:
    """(3,) a canonical-mesh point (cm) where the fitted face has it, in the GL frame."""
    linear, offset = _canonical_to_gl_affine(fit)
    return linear @ np.asarray(point, np.float64) + offset


def build_head_scene(fit: FaceFit, depth_wrap: float = DEPTH_WRAP) -> HeadScene:
    height, width = (int(v) for v in fit.image_size)
    topo = mesh_topology()
    fitted = np.asarray(fit.vertices, np.float64) * TO_GL
    wrap = wrap_depth(fitted, fit, depth_wrap)
    face = fitted + wrap  # the photo's pose: the contour and anchors sit on the wrapped face
    pivot = canonical_to_gl(fit, TURN_CENTRE_CANONICAL)
    side_depth = float(canonical_to_gl(fit, SIDE_DEPTH_CANONICAL)[2])
    face_uv = np.column_stack([topo.uvs[:, 0], 1.0 - topo.uvs[:, 1]])

    contour = face[contour_loop()]
    centre = contour[:, :2].mean(0)
    points, shares = [contour], [np.ones(len(contour))]
    vertices, rings = [contour_loop()], [np.zeros(len(contour))]
    for ring_number, (scale, share) in enumerate(RINGS, start=1):
        # Rings may reach past the photo (tight face crops). Clamping them to its border would fold their
        # triangles; unclamped, the texture is sampled clamp-to-edge there and the camera sees only the photo.
        spread = centre + (contour[:, :2] - centre) * scale
        ring = np.column_stack([spread, np.maximum(cranium_depth(fit, spread), side_depth)])
        points.append(ring)
        shares.append(np.full(len(ring), share))
        vertices.append(np.full(len(ring), -1))
        rings.append(np.full(len(ring), ring_number))
    # The fixed frame, well outside the photo and the rings, so that turned rings always stay inside it.
    ring_xy = np.concatenate(points[1:])[:, :2]
    margin = float(max(width, height))
    x0, x1 = min(0.0, ring_xy[:, 0].min()) - margin, max(float(width), ring_xy[:, 0].max()) + margin
    y0, y1 = min(-float(height), ring_xy[:, 1].min()) - margin, max(0.0, ring_xy[:, 1].max()) + margin
    t = np.linspace(0, 1, BORDER_POINTS_PER_SIDE, endpoint=False)
    border_xy = np.concatenate(
        [
            np.column_stack([x0 + t * (x1 - x0), np.full_like(t, y1)]),
            np.column_stack([np.full_like(t, x1), y1 - t * (y1 - y0)]),
            np.column_stack([x1 - t * (x1 - x0), np.full_like(t, y0)]),
            np.column_stack([np.full_like(t, x0), y0 + t * (y1 - y0)]),
        ]
    )
    points.append(np.column_stack([border_xy, np.full(len(border_xy), side_depth)]))
    shares.append(np.zeros(len(border_xy)))
    vertices.append(np.full(len(border_xy), -1))
    rings.append(np.full(len(border_xy), -1))
    anchors, anchor_share = np.concatenate(points), np.concatenate(shares)
    anchor_vertex, anchor_ring = np.concatenate(vertices), np.concatenate(rings)
    # Coinciding anchors (degenerate contours) would break the triangulation: keep one of each.
    _, keep = np.unique(np.round(anchors[:, :2], 3), axis=0, return_index=True)
    keep = np.sort(keep)
    anchors, anchor_share, anchor_vertex = anchors[keep], anchor_share[keep], anchor_vertex[keep]
    anchor_ring = anchor_ring[keep]

    tri = Delaunay(anchors[:, :2]).simplices
    # The face mesh covers the inside of its contour; drop background triangles there.
    n_contour = len(contour)
    inside = (tri < n_contour).all(1) & _inside_polygon(anchors[tri].mean(1)[:, :2], contour[:, :2])
    tri = tri[~inside]
    # Counter-clockwise seen from the viewer, like the face mesh.
    a, b, c = (anchors[tri[:, k], :2] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri[cross < 0] = tri[cross < 0][:, ::-1]

    # texture coordinates of the photo: its pixel (column c, row r) is centred on the photo point (c, r)
    anchor_uv = np.column_stack([(anchors[:, 0] + 0.5) / width, 1.0 + (anchors[:, 1] - 0.5) / height])
    return HeadScene(
        face_vertices=fitted,
        face_wrap=wrap,
        face_uv=face_uv,
        face_triangles=topo.triangles,
        pivot=pivot,
        fit_rotation=np.asarray(fit.rotation, np.float64),
        anchors=anchors,
        anchor_share=anchor_share,
        anchor_vertex=anchor_vertex.astype(np.int64),
        anchor_ring=anchor_ring.astype(np.int64),
        anchor_uv=anchor_uv,
        anchor_triangles=tri.astype(np.int32),
        image_size=(height, width),
    )


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points and edges."""
    x, y = points[:, :1], points[:, 1:]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-12, y1 - y0) + x0)
    return crosses.sum(1) % 2 == 1
