"""Turned faces shown turned the other way: from the photo itself, or from its mirror image (``--mirror``).

    python benchmarks/render_turned_faces.py [--data ../shared/data/aflw2000-dev] [--limit N]

UTKFace's chips are nearly frontal, so ``render_pose_fidelity.py`` hardly ever asks a face to turn through
more than 60 degrees. Real datasets hold turned faces, and a face turned 30 degrees to its left, asked at 45
to its right, must either turn through 75 degrees or be shown as its mirror image turned 15
(``RenderOptions.mirror_beyond``, ``uvaug render --mirror/--no-mirror``). This benchmark takes the AFLW2000-3D
dev faces annotated at abs(yaw) 20-50 and abs(pitch) under 20 whose fit reads at least 15 degrees of yaw,
completes their UV maps with the shipped model, renders each whole photo at 30, 45 and 60 degrees to the
other side, both ways, and fits each render again: the share re-detected and the mean absolute error between
asked and measured yaw, by asked abs(yaw). The first ``--limit`` such faces (default: all).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from fit_pose_aflw import nearest_centre, read_annotations

from uvaug.complete.run import create_completer
from uvaug.fit.fitter import create_fitter
from uvaug.io import load_image
from uvaug.render.grid import View
from uvaug.render.run import MIRROR_BEYOND, MIRROR_MIN_SAVING, FaceViews, RenderOptions

TARGETS = (30.0, 45.0, 60.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2] / "shared/data/aflw2000-dev"
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / "annotations.csv").is_file():
        ap.error(f"no annotations.csv in {args.data}")

    annotations, angles = read_annotations(args.data)  # pitch, yaw, roll
    turned = (np.abs(angles[:, 1]) >= 20) & (np.abs(angles[:, 1]) <= 50) & (np.abs(angles[:, 0]) < 20)
    rows = [row for row, keep in zip(annotations, turned, strict=True) if keep]
    fitter, completer = create_fitter(), create_completer("model")
    modes = {"turned": RenderOptions(views=(), mirror_beyond=None), "mirror": RenderOptions(views=())}
    # (mode, asked abs(yaw)) -> measured yaw errors, None where no face was found again
    results: dict[tuple[str, float], list[float | None]] = {(m, t): [] for m in modes for t in TARGETS}
    mirrored = {t: 0 for t in TARGETS}
    faces, start = 0, time.perf_counter()
    for row in rows:
        image = load_image(args.data / "images" / row["image"])
        found = fitter(image)
        if not found:
            continue
        face = nearest_centre(found, image.shape)
        if abs(face.fit.yaw) < 15:
            continue
        faces += 1
        views = FaceViews(face.fit, completer(face.uv[None])[0], image)
        for target in TARGETS:
            view = View(-float(np.sign(face.fit.yaw)) * target, 0.0)
            for mode, options in modes.items():
                render, was_mirrored = views.render(view, options)
                mirrored[target] += int(was_mirrored)
                refit = fitter(np.ascontiguousarray(render))
                error = abs(nearest_centre(refit, render.shape).fit.yaw - view.yaw) if refit else None
                results[mode, target].append(error)
        if args.limit and faces >= args.limit:
            break
    seconds = time.perf_counter() - start
    print(f"AFLW2000-3D dev: {faces} turned faces (annotated abs(yaw) 20-50), {seconds:.0f} s")
    print(
        f"mirror: views turning over {MIRROR_BEYOND:g} degrees of yaw use the mirrored photo when it saves "
        f"at least {MIRROR_MIN_SAVING:g}; turned: every view turns the photo itself\n"
    )
    print(f"{'asked':>6} {'mode':>7} {'views':>6} {'mirrored':>9} {'redetect':>9} {'yaw MAE':>8}")
    for target in TARGETS:
        for mode in modes:
            errors = results[mode, target]
            seen = [e for e in errors if e is not None]
            rate = len(seen) / len(errors) if errors else float("nan")
            mae = float(np.mean(seen)) if seen else float("nan")
            count = mirrored[target] if mode == "mirror" else 0
            print(f"{target:>6.0f} {mode:>7} {len(errors):>6} {count:>9} {rate:>9.1%} {mae:>8.2f}")


if __name__ == "__main__":
    main()
