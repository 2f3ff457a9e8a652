"""Mesh topology helpers shared by the fit stage (the pose fit's silhouette) and the render stage (the face's
outline in the head scene): the ordered boundary loop and area-weighted vertex normals."""

from __future__ import annotations

import numpy as np


def boundary_loop(triangles: np.ndarray) -> np.ndarray:
    """Vertex indices of a disc-shaped mesh's outer boundary, in order around it."""
    tris = np.asarray(triangles)
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = uniq[counts == 1]
    neighbours: dict[int, list[int]] = {}
    for a, b in boundary:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    start = int(boundary[0, 0])
    loop, prev = [start], None
    while True:
        nxt = next(n for n in neighbours[loop[-1]] if n != prev)
        if nxt == start:
            return np.asarray(loop, np.int64)
        prev = loop[-1]
        loop.append(nxt)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals; they point to the side from which the triangles wind
    counter-clockwise."""
    v = np.asarray(vertices, np.float64)
    tris = np.asarray(triangles)
    face = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, tris[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
