"""The fitted face as a textured 3D mesh file (GLB) that any viewer opens."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from uvaug.artifacts import FaceFit
from uvaug.fit.bundle import default_bundle
from uvaug.fit.pose import FLIP_YZ


@dataclass(frozen=True)
class MeshTopology:
    triangles: np.ndarray  # (898, 3) int32, counter-clockwise seen from the front
    uvs: np.ndarray  # (468, 2) float32, v grows downwards (image convention)


@cache
def mesh_topology() -> MeshTopology:
    """Triangles and UVs shared by every fitted face (the canonical mesh's)."""
    g = default_bundle().geometry
    return MeshTopology(triangles=g.triangles, uvs=g.uvs)


def mesh_glb(fit: FaceFit, uv_rgba: np.ndarray) -> bytes:
    """Binary glTF of the fitted mesh textured with its UV map.

    Vertices are converted from photo pixels to centimetres in a y-up frame centred on the face, so the model
    shows the face with the head pose it has in the photo.
    """
    import trimesh
    from PIL import Image

    topo = mesh_topology()
    verts = np.asarray(fit.vertices, np.float64)
    verts = (verts - verts.mean(0)) @ FLIP_YZ / fit.scale
    uv = topo.uvs.astype(np.float64).copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # glTF through trimesh: v up
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(uv_rgba, "RGBA"),
        alphaMode="MASK",
        alphaCutoff=0.5,
        metallicFactor=0.0,
        roughnessFactor=1.0,
        doubleSided=False,
    )
    mesh = trimesh.Trimesh(
        vertices=verts,
        faces=topo.triangles,
        process=False,
        visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
    )
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh))
