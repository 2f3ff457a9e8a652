"""Pose fidelity of ``uvaug render``: does a face rendered at (yaw, pitch) read back at that pose?

    python benchmarks/render_pose_fidelity.py [--data ../shared/data/utkface] [--limit 100]
                                              [--uv-method model|symmetric|incomplete] [--split val]
                                              [--workers N]

The first ``--limit`` names of UTKFace's ``splits/val.txt`` (200x200 crops; ``--split train``, for tuning:
every 20th name of the train split) are fitted with ``fit_inputs`` into a temporary folder (the largest face
per image, default options). Every fitted face is then rendered through the real ``plan_render`` /
``render_fits`` path as a whole photo with ``--background photo``, at absolute poses yaw -60..60 step 15 by
pitch -20, 0, 20 (27 views), and each rendered image is fitted again by the same fitter (``fit_inputs`` on the
render folder, the largest face). Measured minus asked angles give, per requested view: views rendered, the
fraction in which a face is detected again, and the mean absolute and mean signed error of yaw and pitch
(signed: measured - asked; a negative yaw bias at positive yaw means the render reads less turned than
asked). Rows aggregated by |yaw| (0-45: |yaw| <= 45; 45-60) and over all views follow, and the least-squares
gain of measured on asked yaw.

Texture (``--uv-method``): ``model`` (default) completes each UV map with the shipped network, as ``uvaug
pipeline`` does; ``symmetric`` with the mirror-and-fill baseline; ``incomplete`` renders the fit's own maps,
as ``uvaug render`` without ``--uv`` does, where unseen parts show as holes (lower re-detection at large yaw).
Views far from a turned face are rendered from the mirrored photo, as ``uvaug render`` does by default
(``RenderOptions.mirror_beyond``); ``--no-mirror`` turns every view from the photo itself. The scores depend
only on the images and the code, not the machine.

The fitter reads real heads turned far as less turned than they are, and more so when the face fills the
picture, as in these chips; a perfect render would inherit that. So, when AFLW2000-3D dev is at hand
(``--aflw``, ../shared/data/aflw2000-dev by default; ``--aflw none`` skips it), its centre crops
(``--aflw-crop`` of each image's side, 0.5 by default: about the face's outline) are fitted by the same
fitter, and a last table sets what the renders read at each asked abs(yaw) beside what real faces annotated
within +-3 degrees of it read: renders that turn as far as real heads read the same.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from common import add_utkface_argument, utkface_names, write_image_list
from fit_pose_aflw import yaw_readings

from uvaug.complete.run import create_completer
from uvaug.fit.run import fit_inputs
from uvaug.io import MANIFEST_NAME, discover_inputs, load_rgba, read_manifest, write_image_atomic
from uvaug.render.grid import pose_grid
from uvaug.render.run import MIRROR_BEYOND, RenderOptions, plan_render, render_fits
from uvaug.runner import available_cores

YAWS = tuple(float(y) for y in range(-60, 61, 15))
PITCHES = (-20.0, 0.0, 20.0)
YAW_BINS = (("0-45", 45.0), ("45-60", 60.0))  # label, largest |yaw|: the first bin takes |yaw| <= 45


def choose_texture(method: str, fits: Path, uv_out: Path) -> tuple[Path | None, str]:
    """The ``--uv`` folder to render with (None: the fit's own maps) and a line saying which texture it is."""
    if method == "incomplete":
        return None, "the fit's own incomplete UV maps (unseen texels render as holes)"
    completer = create_completer(method)
    names = [str(r["uv"]) for r in read_manifest(fits / MANIFEST_NAME) if r["status"] == "ok"]
    for start in range(0, len(names), 8):
        batch = names[start : start + 8]
        maps = completer(np.stack([load_rgba(fits / name) for name in batch]))
        for name, completed in zip(batch, maps, strict=True):
            write_image_atomic(uv_out / name, completed)
    return uv_out, f"UV maps completed by --method {method}"


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def score_row(label: str, rows: list[tuple[float, float, float, float] | None]) -> str:
    """One table line from (asked yaw, asked pitch, measured yaw, measured pitch) or None (not detected)."""
    found = [r for r in rows if r is not None]
    yaw_err = [m - a for a, _, m, _ in found]
    pitch_err = [m - a for _, a, _, m in found]
    rate = len(found) / len(rows) if rows else float("nan")
    yaw_mae, pitch_mae = mean(map(abs, yaw_err)), mean(map(abs, pitch_err))
    return (
        f"{label:<12}  {len(rows):>5}  {rate:>9.1%}  {yaw_mae:>7.2f}  {mean(yaw_err):>+8.2f}  "
        f"{pitch_mae:>9.2f}  {mean(pitch_err):>+10.2f}"
    )


def binned(by_view: dict[tuple[float, float], list]) -> dict[str, list]:
    """Every view's rows pooled by |yaw| into :data:`YAW_BINS` (each view goes to the first bin it fits)."""
    bins: dict[str, list] = {label: [] for label, _ in YAW_BINS}
    for (yaw, _), rows in by_view.items():
        label = next((label for label, top in YAW_BINS if abs(yaw) <= top), None)
        if label is not None:
            bins[label].extend(rows)
    return bins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=100, help="first N names of splits/val.txt (default 100)")
    ap.add_argument("--uv-method", choices=("model", "symmetric", "incomplete"), default="model")
    ap.add_argument("--split", choices=("val", "train"), default="val", help="train: for tuning")
    ap.add_argument("--workers", type=int, default=available_cores(), help="default: CPU cores")
    ap.add_argument("--no-mirror", action="store_true", help="turn every view from the photo itself")
    aflw = Path(__file__).resolve().parents[2] / "shared/data/aflw2000-dev"
    ap.add_argument("--aflw", default=str(aflw), help="AFLW2000-3D dev folder (real faces' readings) or none")
    ap.add_argument("--aflw-crop", type=float, default=0.5, help="centre square, this share of the side")
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        ap.error(f"no images/ folder in {args.data}")
    if args.limit < 1 or args.workers < 1:
        ap.error("--limit and --workers must be at least 1")

    if args.split == "val":
        names = utkface_names(args.data, args.limit)
    else:  # spread over the split rather than its first names
        names = utkface_names(args.data, 20 * args.limit, ("train.txt",))[::20][: args.limit]
    print(
        f"{len(names)} UTKFace {args.split} images from {args.data}; {args.workers} worker(s), "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        flush=True,
    )
    mirror_beyond = None if args.no_mirror else MIRROR_BEYOND
    options = RenderOptions(
        views=tuple(pose_grid(YAWS, PITCHES)), background="photo", mirror_beyond=mirror_beyond
    )
    with tempfile.TemporaryDirectory(prefix="uvaug-pose-fidelity-") as tmp_name:
        tmp = Path(tmp_name)
        list_file = write_image_list(tmp / "inputs.txt", args.data, names)

        start = time.perf_counter()
        fit_report = fit_inputs(discover_inputs(list_file), tmp / "fits", workers=args.workers)
        print(f"fit: {fit_report.faces} faces in {time.perf_counter() - start:.1f} s", flush=True)

        uv_dir, texture = choose_texture(args.uv_method, tmp / "fits", tmp / "uv")
        print(f"texture: {texture}", flush=True)

        start = time.perf_counter()
        renders = tmp / "render"
        plan = plan_render(tmp / "fits", renders, options, uv_dir=uv_dir)
        render_fits(plan, renders, options, workers=args.workers)
        rendered = read_manifest(renders / MANIFEST_NAME)
        ok = [r for r in rendered if r["status"] == "ok"]
        seconds = time.perf_counter() - start
        mirrored = sum(bool(r.get("mirrored")) for r in ok)
        print(
            f"render: {len(ok)} views ({len(rendered) - len(ok)} errors, {mirrored} from the mirrored photo) "
            f"in {seconds:.1f} s",
            flush=True,
        )

        start = time.perf_counter()
        fit_inputs(discover_inputs(renders), tmp / "refit", workers=args.workers)
        refit = {
            str(r["input"]): r
            for r in read_manifest(tmp / "refit" / MANIFEST_NAME)
            if r["status"] == "ok" and r["face"] == 0
        }
        print(f"re-fit: {len(refit)} of {len(ok)} views in {time.perf_counter() - start:.1f} s", flush=True)

    # One entry per rendered view: (asked yaw, asked pitch, measured yaw, measured pitch), None if not found.
    by_view: dict[tuple[float, float], list[tuple[float, float, float, float] | None]] = {}
    for rec in ok:
        asked = (float(rec["yaw"]), float(rec["pitch"]))
        found = refit.get(str(rec["output"]))
        row = None if found is None else (*asked, float(found["yaw"]), float(found["pitch"]))
        by_view.setdefault(asked, []).append(row)

    print()
    print("yaw, pitch     views  redetect  yaw MAE  yaw bias  pitch MAE  pitch bias")
    for view in options.views:
        print(score_row(f"{view.yaw:+4.0f}, {view.pitch:+3.0f}", by_view.get((view.yaw, view.pitch), [])))
    print()
    for label, rows in binned(by_view).items():
        print(score_row(f"|yaw| {label}", rows))
    everything = [r for rs in by_view.values() for r in rs]
    print(score_row("all", everything))
    pairs = np.array([(r[0], r[2]) for r in everything if r is not None])
    if len(pairs) > 1:
        gain = float(np.polyfit(pairs[:, 0], pairs[:, 1], 1)[0])
        print(f"\nyaw gain (least-squares slope of measured on asked yaw, all views): {gain:.3f}")
    print(f"texture: {texture}; bias = mean(measured - asked); MAE and bias over re-detected views")
    if args.aflw != "none":
        compare_with_real_faces(by_view, Path(args.aflw), args.aflw_crop)


#: Real faces annotated within this many degrees of an asked abs(yaw) stand for it.
REAL_WINDOW = 3.0


def compare_with_real_faces(by_view: dict[tuple[float, float], list], aflw: Path, crop: float) -> None:
    """What renders read at each asked abs(yaw) beside what real faces turned as far read."""
    if not (aflw / "annotations.csv").is_file():
        print(f"\nno AFLW2000-3D at {aflw}: real faces' readings skipped")
        return
    annotated, read = yaw_readings(aflw, crop)
    print(
        f"\nabs(yaw) read by the fitter: renders, and real faces (AFLW2000-3D dev, centre crops {crop:g} of "
        f"the side) annotated within +-{REAL_WINDOW:g} degrees of the asked yaw"
    )
    print("asked  renders  read   real faces  read   renders - real")
    for asked in sorted({abs(yaw) for yaw, _ in by_view}):
        rows = [r for (yaw, _), rs in by_view.items() if abs(yaw) == asked for r in rs if r is not None]
        render = mean(np.sign(r[0]) * r[2] if r[0] else abs(r[2]) for r in rows)
        near = np.abs(annotated - asked) <= REAL_WINDOW
        real = float(read[near].mean()) if near.any() else float("nan")
        count = int(near.sum())
        gap = render - real
        print(f"{asked:>5.0f}  {len(rows):>7}  {render:>5.1f}  {count:>10}  {real:>5.1f}  {gap:>+14.1f}")


if __name__ == "__main__":
    main()
