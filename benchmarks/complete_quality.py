"""Completion quality per target-yaw bin: no completion (mean colour), the symmetric baseline, and models.

    python benchmarks/complete_quality.py --fit FIT_DIR [--model NAME=FILE.onnx ...] [--limit N]

FIT_DIR is a `uvaug fit` output of ``../shared/data/utkface/images`` (``uvaug fit`` it first; the model
card's figures use ``--min-facing 0.2``, the fit's default when the model was trained). Only the
faces listed in ``splits/val.txt`` are used (held out from training). For each target-yaw bin (30-45, 45-60,
60-75, 75-90 degrees, either side, pitch +-30) every val face gets one fixed-seed self-occlusion mask
(:class:`uvaug.complete.pairs.SelfOcclusionPairs`, seed 7 + bin): the UV map's texels that the fitted mesh
would not show at that pose are hidden. Scores are those of training validation
(:func:`uvaug.complete.train.region_scores`): PSNR and SSIM over texels that were seen in the photo but
hidden by the mask, per map, averaged. Several ``--model`` entries make an ablation table. The symmetric
baseline and the models are scored as ``uvaug complete`` writes them, their seams blended
(:mod:`uvaug.complete.seams`); ``--no-seam-blend`` scores them without.

A second table scores the same outputs over whole maps: every texel the photo showed, the known ones (kept
exactly by every method) included. That is how whole-map inpainting figures such as the paper's are usually
given; it is easier than the hidden texels alone, the more so the less a bin hides.

A third table measures how soft each fill is (:func:`detail_ratio`): the fine structure in the filled texels
against the photo's own there, 1 meaning as much as the photo (right or wrong: a mirrored copy scores about
1 whatever it copies). PSNR rewards a blurred fill over a sharp one that is slightly off; this shows the
price.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from common import add_utkface_argument, utkface_names

from uvaug.complete.onnx_runtime import OnnxCompleter
from uvaug.complete.pairs import SelfOcclusionPairs, training_faces
from uvaug.complete.symmetric import complete_symmetric
from uvaug.complete.train import hidden_and_whole_scores

BINS = ((30, 45), (45, 60), (60, 75), (75, 90))


BATCH = 16  # maps per model call


def mean_colour(source: np.ndarray) -> np.ndarray:
    known = source[..., 3] >= 128
    out = source[..., :3].copy()
    out[~known] = source[..., :3][known].mean(0).astype(np.uint8) if known.any() else 128
    return out


#: Texels next to a hole's rim are left out of :func:`detail_ratio`: the rim's step in colour is no detail.
DETAIL_MARGIN = 2


def detail_ratio(completed_rgb: np.ndarray, source: np.ndarray, target: np.ndarray) -> float | None:
    """Mean absolute Laplacian of the luminance over the seen-but-hidden texels (``DETAIL_MARGIN`` texels in
    from the hole's rim), the fill's over the photo's; None where too few texels are left."""
    hidden = ((target[..., 3] >= 128) & (source[..., 3] < 128)).astype(np.uint8)
    side = 2 * DETAIL_MARGIN + 1
    inner = cv2.erode(hidden, np.ones((side, side), np.uint8)).astype(bool)
    if inner.sum() < 50:
        return None

    def fine(rgb: np.ndarray) -> float:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))[inner].mean())

    return fine(completed_rgb) / max(fine(target[..., :3]), 1e-6)


def score_bins(
    faces: list,
    completers: dict[str, Callable[[np.ndarray], np.ndarray]],
    report: Callable[[str], None] = print,
    seam_blend: bool = True,
) -> dict[str, list[tuple[float, float]]]:
    """Score mean colour, the symmetric baseline (its seams blended or not) and ``completers`` on every bin;
    print a row per bin.

    Returns per method the (PSNR, SSIM) means per bin, in :data:`BINS` order."""
    methods = ["mean colour", "symmetric", *completers]
    report(f"{'target |yaw|':>13} {'hidden':>7}" + "".join(f" {m:>20}" for m in methods))
    timings: dict[str, float] = dict.fromkeys(methods, 0.0)
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    whole_rows, detail_rows = [], []
    for low, high in BINS:
        pairs = SelfOcclusionPairs(faces, seed=7 + low, yaw_range=(low, high))
        data = [pairs[i] for i in range(len(pairs))]
        sources = np.stack([s for s, _ in data])
        hidden = np.mean(
            [((t[..., 3] >= 128) & (s[..., 3] < 128)).sum() / (t[..., 3] >= 128).sum() for s, t in data]
        )
        outputs = {}
        start = time.perf_counter()
        outputs["mean colour"] = np.stack([mean_colour(s) for s in sources])
        timings["mean colour"] += time.perf_counter() - start
        start = time.perf_counter()
        outputs["symmetric"] = complete_symmetric(sources, seam_blend=seam_blend)[..., :3]
        timings["symmetric"] += time.perf_counter() - start
        for name, completer in completers.items():
            start = time.perf_counter()
            # in batches: ONNX Runtime's arena grows with the batch (200 maps in one call take ~20 GB)
            outputs[name] = np.concatenate(
                [completer(sources[i : i + BATCH])[..., :3] for i in range(0, len(sources), BATCH)]
            )
            timings[name] += time.perf_counter() - start
        row = whole_row = detail_row = f"{low:>6}-{high:<6} {hidden:>7.1%}"
        for name in methods:
            both = [hidden_and_whole_scores(outputs[name][i], s, t) for i, (s, t) in enumerate(data)]
            scores = np.array([hidden for hidden, _ in both if hidden is not None])
            psnr, ssim = float(scores[:, 0].mean()), float(scores[:, 1].mean())
            results[name].append((psnr, ssim))
            row += f" {psnr:>11.2f} / {ssim:.3f}"
            whole = np.array([whole for _, whole in both if whole is not None])
            whole_row += f" {whole[:, 0].mean():>11.2f} / {whole[:, 1].mean():.3f}"
            ratios = [detail_ratio(outputs[name][i], s, t) for i, (s, t) in enumerate(data)]
            detail_row += f" {np.mean([r for r in ratios if r is not None]):>20.2f}"
        report(row)
        whole_rows.append(whole_row)
        detail_rows.append(detail_row)
    report("whole maps (every texel the photo showed, known ones included):")
    for whole_row in whole_rows:
        report(whole_row)
    report("fine detail of the fill over the photo's, on the hidden texels (1 = as much as the photo):")
    for detail_row in detail_rows:
        report(detail_row)
    total = len(faces) * len(BINS)
    report(
        f"maps/s (1 process, batches of {BATCH}): "
        + ", ".join(f"{m} {total / max(t, 1e-9):.1f}" for m, t in timings.items())
    )
    return results


def val_faces(fit: Path, data: Path, limit: int) -> list:
    """The near-frontal fitted faces of the UTKFace val split (the first ``limit``; 0: all)."""
    return training_faces(fit, names=utkface_names(data, None))[: limit or None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", type=Path, required=True, help="uvaug fit output of the UTKFace images")
    add_utkface_argument(ap)
    ap.add_argument("--model", action="append", default=[], help="NAME=FILE.onnx (repeatable)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N val faces")
    ap.add_argument(
        "--no-seam-blend",
        dest="seam_blend",
        action="store_false",
        help="score the symmetric baseline and the models without seam blending (uvaug.complete.seams)",
    )
    args = ap.parse_args()

    faces = val_faces(args.fit, args.data, args.limit)
    completers = {}
    for entry in args.model:
        name, _, path = entry.partition("=")
        completers[name] = OnnxCompleter(path, device="cpu", seam_blend=args.seam_blend)
    print(
        f"{len(faces)} near-frontal UTKFace val faces from {args.fit}; PSNR dB / SSIM over seen-but-hidden "
        "texels"
    )
    score_bins(faces, completers, seam_blend=args.seam_blend)


if __name__ == "__main__":
    main()
