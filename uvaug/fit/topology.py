"""Mesh topology helpers shared by the fit stage (the pose fit's silhouette) and the render stage (the face's
outline in the head scene): the ordered boundary loop and area-weighted vertex normals."""

from __future__ import annotations

import numpy as np
from scipy import sparse


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


def triangle_incidence(triangles: np.ndarray, vertex_count: int) -> sparse.csr_matrix:
    """(V, T) vertex-triangle incidence: ``incidence @ per-triangle values`` sums them at each vertex."""
    tris = np.asarray(triangles)
    return sparse.csr_matrix(
        (np.ones(tris.size), (tris.ravel(), np.repeat(np.arange(len(tris)), 3))),
        shape=(vertex_count, len(tris)),
    )


def vertex_normals(
    vertices: np.ndarray, triangles: np.ndarray, incidence: sparse.csr_matrix | None = None
) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals; they point to the side from which the triangles wind
    counter-clockwise (for a front-facing face in photo coordinates: -z). ``incidence``: the mesh's
    :func:`triangle_incidence`, to reuse across calls. Computed in the vertices' own precision."""
    v = np.asarray(vertices)[triangles]
    if incidence is None:
        incidence = triangle_incidence(triangles, len(vertices))
    normals = incidence @ np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return normals / np.maximum(np.sqrt((normals**2).sum(1, keepdims=True)), 1e-12)
