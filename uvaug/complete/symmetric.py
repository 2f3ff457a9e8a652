"""The classical completion baseline: mirror the other half of the face, then fill what is left smoothly.

The UV layout is left-right symmetric about u = 0.5 on the texel grid (texel column j mirrors to W-1-j), so a
texel the photo did not show usually has a mirror twin on the other cheek that it did show, and faces are
close enough to symmetric that the twin's colour is a good guess. Copies are scaled by one gain per half and
channel (:func:`side_gains`), so a face lit from one side does not get its bright cheek pasted onto the dark
side. One gain per half cannot match the local shading along the rim, so the copies meet the photo's
texels with a step in colour; :mod:`uvaug.complete.seams` removes it with an offset that fades within a few
texels of the rim (+2.1 dB at target yaw 30-45 on train faces), rather than blending the rim's texels (seen
at the most grazing angle, the least reliable ones) over the whole copied region.

What neither side shows (under the chin, behind the jaw of a profile) gets the membrane (harmonic) fill: the
colour field that is the average of its four neighbours at every hole texel, i.e. the smoothest surface that
meets the hole's whole rim. It is solved exactly, as one sparse linear system per map with the three colour
channels as right-hand sides (sparse LU). Only the face's texels take part (Neumann at the layout's border),
so the black outside the layout never bleeds in, as it would with ``cv2.inpaint`` on the square, and a hole
of any size is filled. After mirroring, the holes of a fitted photo are bands of about 5,000 texels along the
face's border at 256x256: about 6 ms for the solve and 11 ms for the whole completion on one core; a map that
knows almost nothing (38,000 holes) takes about 0.12 s. Pull-push pyramids with relaxation and Jacobi-
preconditioned conjugate gradients were no faster at equal accuracy on these hole shapes, and a direct solve
has no iteration counts or tolerances to tune.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import linalg

from uvaug.complete.maps import as_batch, face_texels, finish
from uvaug.complete.seams import blend_seams
from uvaug.complete.tensors import known_mask

#: Fewest texels seen on both sides that :func:`side_gains` measures a half's exposure from (about 2% of the
#: face at 256x256), and the range a gain is held to (a measurement outside it is a failure, not light).
MIN_GAIN_TEXELS = 800
GAIN_RANGE = (0.5, 2.0)
#: Colour of a face with no known texel at all (nothing to extend).
FALLBACK_GREY = 128.0
#: Tikhonov weight tying every hole texel to the mean known colour: negligible where a hole meets known
#: texels (under 0.01 grey levels), and it makes a hole region that touches none come out that colour
#: instead of leaving the system singular.
_ANCHOR = 1e-9
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


class SymmetricCompleter:
    """The baseline as a completer for :func:`uvaug.complete.run.complete_inputs` (stateless: it pickles)."""

    method = "symmetric"
    model: str | None = None
    batched = False  # CPU-bound NumPy and SciPy: one map per job, in worker processes

    def __call__(self, rgba: np.ndarray) -> np.ndarray:
        return complete_symmetric(rgba)


def complete_symmetric(
    rgba: np.ndarray, mirror: bool = True, match_exposure: bool = True, seam_blend: bool = True
) -> np.ndarray:
    """Complete square RGBA UV maps, (N, S, S, 4) or one (S, S, 4) uint8, returning the same shape.

    Unknown texels (alpha below 128) take their mirror twin's colour where the twin is known (``mirror``),
    scaled by :func:`side_gains` (``match_exposure``); the rest are filled harmonically; then the filled
    texels are blended into the known ones along the rim (``seam_blend``, :mod:`uvaug.complete.seams`).
    Known texels keep their RGB exactly. Every texel of the face comes out with alpha 255
    (:func:`uvaug.complete.maps.finish`).
    """
    batch, single = as_batch(rgba)
    known = known_mask(batch)
    face = face_texels(known)
    out = batch.copy()
    have = known
    if mirror:
        twin = known[:, :, ::-1] & ~known & face
        have = known | twin
    for i in range(len(batch)):
        if mirror and twin[i].any():
            mirrored = batch[i, :, ::-1, :3]
            gains = side_gains(batch[i]) if match_exposure else np.ones((2, 3))
            side = np.arange(batch.shape[2]) >= batch.shape[2] // 2  # False: left half, True: right half
            ys, xs = np.nonzero(twin[i])
            out[i, ys, xs, :3] = np.clip(np.rint(mirrored[ys, xs] * gains[side[xs].astype(int)]), 0, 255)
        holes, colours = _harmonic_holes(out[i, ..., :3], have[i], face[i])
        out[i, holes, :3] = np.clip(np.rint(colours), 0, 255)
        if seam_blend:
            blended = blend_seams(out[i, ..., :3], known[i], face[i])
            out[i, ..., :3] = np.clip(np.rint(blended), 0, 255)
    finish(out, batch)
    return out[0] if single else out


def side_gains(rgba: np.ndarray) -> np.ndarray:
    """(2, 3) colour gains for texels copied into the left and the right half of one map (S, S, 4).

    A face lit from one side has one bright and one dark cheek, and a plain copy pastes the bright cheek onto
    the dark side. Where the photo shows both twins (usually a band around the nose), the per-channel median
    of texel / twin on each half measures that difference; copies into that half are scaled by it. A half
    with fewer than :data:`MIN_GAIN_TEXELS` such texels (a profile, a half hidden entirely) keeps gain 1.
    """
    known = known_mask(rgba[None])[0]
    both = known & known[:, ::-1]
    rgb, mirrored = rgba[..., :3], rgba[:, ::-1, :3]
    gains = np.ones((2, 3))
    width = rgba.shape[1]
    for half, columns in enumerate((slice(0, width // 2), slice(width // 2, width))):
        texels = both[:, columns]
        if texels.sum() >= MIN_GAIN_TEXELS:
            # +1: black texels must not divide by zero
            ratio = (rgb[:, columns][texels] + 1.0) / (mirrored[:, columns][texels] + 1.0)
            gains[half] = np.clip(np.median(ratio, axis=0), *GAIN_RANGE)
    return gains


def harmonic_fill(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Fill ``values`` (H, W, C) on the holes ``domain & ~known`` ((H, W) bool each) harmonically.

    Each hole texel becomes the mean of its 4-neighbours inside ``domain``; known texels and texels outside
    ``domain`` are returned unchanged (as float64) and texels outside ``domain`` do not take part. Holes are
    filled with the mean known colour where no known texel reaches them, and with :data:`FALLBACK_GREY` when
    there is no known texel at all.
    """
    out = np.array(values, np.float64)
    holes, colours = _harmonic_holes(out, known, domain)
    out[holes] = colours
    return out


def _harmonic_holes(
    values: np.ndarray, known: np.ndarray, domain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The hole mask and the harmonic colours (holes, C) of its texels in row-major order."""
    known = known & domain
    holes = domain & ~known
    ys, xs = np.nonzero(holes)
    count, channels = len(ys), values.shape[-1]
    if count == 0:
        return holes, np.zeros((0, channels))
    known_values = values[known]
    if len(known_values) == 0:
        return holes, np.full((count, channels), FALLBACK_GREY)
    height, width = holes.shape
    index = np.full((height, width), -1, np.int64)
    index[ys, xs] = np.arange(count)

    degree = np.full(count, _ANCHOR)
    rhs = np.broadcast_to(_ANCHOR * known_values.mean(axis=0), (count, channels)).copy()
    rows, cols = [np.arange(count)], [np.arange(count)]
    for dy, dx in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        valid = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        ny, nx = np.where(valid, ny, 0), np.where(valid, nx, 0)
        in_domain = valid & domain[ny, nx]
        degree += in_domain
        neighbour = index[ny, nx]
        hole_neighbour = in_domain & (neighbour >= 0)
        rows.append(np.flatnonzero(hole_neighbour))
        cols.append(neighbour[hole_neighbour])
        known_neighbour = in_domain & (neighbour < 0)
        rhs[known_neighbour] += values[ny[known_neighbour], nx[known_neighbour]]
    data = [degree, *(-np.ones(len(r)) for r in rows[1:])]
    system = sparse.csc_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count)
    )
    # Symmetric and diagonally dominant: no pivoting, a fill-reducing ordering of A + A^T.
    lu = linalg.splu(
        system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    return holes, lu.solve(rhs)
