"""Ablation of the completion generator: each of the paper's parts taken out, at the same training budget.

    python benchmarks/complete_ablation.py --fit FIT_DIR -o RUNS [--epochs 2] [--steps 500] [--limit 200]
        [--lr-decay-epochs 0]

Trains four generators with the shipped model's recipe (``models/uv_completion.md``: UTKFace train split,
batch 4, 500 steps per epoch, reconstruction losses, seed 0) for the same number of epochs:

* ``full``: the Attention ResCUNet as shipped;
* ``no-attention``: skips passed as they are, no additive attention gates;
* ``no-fusion``: no trainable scalar fusion of the first U-Net's decoder into the second's skips (the two
  U-Nets are coupled only through the first one's output image);
* ``single-unet``: one residual attention U-Net (its output also takes the auxiliary loss).

Each run lives in ``RUNS/<variant>`` and resumes there, so an interrupted ablation continues where it
stopped, and calling it again with more ``--epochs`` (and ``--lr-decay-epochs``, the shipped recipe's
annealing) extends every variant by the same steps. Every variant's *last* checkpoint (equal steps, not the
best epoch) is exported to ONNX and scored per target-yaw bin exactly as ``complete_quality.py`` scores the
shipped model (fixed-seed masks on the val split, PSNR/SSIM over seen-but-hidden texels).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from common import add_utkface_argument
from complete_quality import BINS, score_bins, val_faces

from uvaug.complete.network import AttentionResCUNet, GeneratorConfig
from uvaug.complete.onnx_runtime import OnnxCompleter
from uvaug.complete.train import (
    LAST,
    TrainConfig,
    TrainEvent,
    export_checkpoint,
    split_names,
    train,
)

VARIANTS: dict[str, GeneratorConfig] = {
    "full": GeneratorConfig(),
    "no-attention": GeneratorConfig(attention=False),
    "no-fusion": GeneratorConfig(scalar_fusion=False),
    "single-unet": GeneratorConfig(coupled=False),
}


def recipe(
    generator: GeneratorConfig, epochs: int, steps: int, threads: int | None, lr_decay_epochs: int = 0
) -> TrainConfig:
    """The shipped model's training settings (see its model card) with another generator."""
    base = TrainConfig()
    loss = dataclasses.replace(base.loss, adversarial_global=0.0, adversarial_local=0.0)
    return dataclasses.replace(
        base,
        generator=generator,
        loss=loss,
        batch_size=4,
        epochs=epochs,
        lr_decay_epochs=lr_decay_epochs,
        steps_per_epoch=steps,
        max_val=200,
        seed=0,
        workers=1,
        device="cpu",
        threads=threads,
    )


def train_variant(name: str, config: TrainConfig, fit: Path, data: Path, run: Path) -> Path:
    """Train (or resume) one variant up to ``config.epochs``; returns its exported ONNX model."""
    if not ((run / LAST).is_file() and _epochs_done(run) >= config.epochs):
        split = split_names(fit, data / "splits" / "train.txt", data / "splits" / "val.txt", config.frontal)

        def on_progress(event: TrainEvent) -> None:
            if event.kind == "epoch" and event.row:
                row = event.row
                print(
                    f"  {name} epoch {event.epoch}/{event.epochs}: loss {row['loss_g']:.4f}, val PSNR "
                    f"{row['val_psnr']:.2f} dB, {row['samples_per_s']:.1f} samples/s",
                    flush=True,
                )

        train(config, fit, run, split.train, split.val, resume=True, on_progress=on_progress)
    model = run / "last.onnx"
    if not model.is_file() or model.stat().st_mtime < (run / LAST).stat().st_mtime:
        export_checkpoint(run / LAST, model)
    return model


def _epochs_done(run: Path) -> int:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        return 0
    return max(len(metrics.read_text().strip().splitlines()) - 1, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", type=Path, required=True, help="uvaug fit output of the UTKFace images")
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder of the variants' runs")
    add_utkface_argument(ap)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per variant")
    ap.add_argument("--steps", type=int, default=500, help="steps per epoch (the shipped recipe: 500)")
    ap.add_argument(
        "--lr-decay-epochs", type=int, default=0, help="anneal the learning rates over the last N epochs"
    )
    ap.add_argument("--limit", type=int, default=200, help="val faces to score (0: all)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for training")
    ap.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these (repeatable)")
    args = ap.parse_args()

    names = args.variant or list(VARIANTS)
    models: dict[str, Path] = {}
    for name in names:
        generator = VARIANTS[name]
        params = sum(p.numel() for p in AttentionResCUNet(generator).parameters())
        print(f"{name}: {params / 1e6:.2f} M parameters", flush=True)
        start = time.perf_counter()
        config = recipe(generator, args.epochs, args.steps, args.threads, args.lr_decay_epochs)
        models[name] = train_variant(name, config, args.fit, args.data, args.output / name)
        print(f"  {name}: ready in {time.perf_counter() - start:.0f} s -> {models[name]}", flush=True)

    faces = val_faces(args.fit, args.data, args.limit)
    print(
        f"\n{len(faces)} near-frontal UTKFace val faces; each variant's last checkpoint after "
        f"{args.epochs} x {args.steps} steps of batch 4 (learning rates annealed over the last "
        f"{args.lr_decay_epochs} epochs); PSNR dB / SSIM over seen-but-hidden texels"
    )
    completers = {name: OnnxCompleter(path, device="cpu") for name, path in models.items()}
    results = score_bins(faces, completers)
    if "full" in results:
        print("\nPSNR change against the full model, per bin (negative: the part earns its place)")
        print(f"{'variant':>14}" + "".join(f" {f'{lo}-{hi}':>8}" for lo, hi in BINS) + f" {'mean':>8}")
        for name in names:
            if name == "full":
                continue
            deltas = [v[0] - f[0] for v, f in zip(results[name], results["full"], strict=True)]
            mean = sum(deltas) / len(deltas)
            print(f"{name:>14}" + "".join(f" {d:>+8.2f}" for d in deltas) + f" {mean:>+8.2f}")


if __name__ == "__main__":
    main()
