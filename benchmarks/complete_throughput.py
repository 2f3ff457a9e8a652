"""Throughput of ``uvaug complete`` on real UV maps: maps per second through ``complete_inputs``.

    python benchmarks/complete_throughput.py [--data ../shared/data/utkface] [--limit 1000] [--workers 1 2]
                                             [--model FILE.onnx --batch-size 16 --device auto]

The UV maps are real ones: the first ``--limit`` names of UTKFace's ``splits/val.txt``, then
``splits/train.txt``, are fitted once (``fit_inputs``, 256x256 maps) into a temporary fit output. Then, for
each worker count, ``complete_inputs`` completes that fit output with the symmetric baseline (and, with
``--model``, with that ONNX model) into a fresh temporary folder, writing everything a user run writes
(completed PNG per map, ``manifest.jsonl``).

Reported per run: wall time of the whole call (worker pool start-up, PNG decoding and encoding, manifest
included), maps/s from it, and the steady-state rate after the first 5% of results. Also the in-memory time
of ``complete_symmetric`` alone per map (one core, no I/O), and the mean known fraction of the maps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
from common import add_utkface_argument, steady_rate, utkface_names

from uvaug.complete.maps import load_uv_map
from uvaug.complete.run import complete_inputs, create_completer, discover_uv_maps
from uvaug.complete.symmetric import complete_symmetric
from uvaug.fit.run import fit_inputs
from uvaug.io import InputItem

WARMUP_FRACTION = 0.05


def run_once(items: list[InputItem], completer, workers: int, batch_size: int) -> dict[str, object]:
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="uvaug-complete-") as out:
        start = time.perf_counter()
        report = complete_inputs(
            items,
            out,
            completer,
            workers=workers,
            batch_size=batch_size,
            on_result=lambda _records: stamps.append(time.perf_counter()),
        )
        wall = time.perf_counter() - start
    steady = steady_rate(stamps, WARMUP_FRACTION)
    return {
        "maps": report.processed,
        "seconds": wall,
        "rate": report.processed / wall,
        "steady": steady,
        "statuses": ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())),
    }


def in_memory_ms(items: list[InputItem], limit: int = 200) -> tuple[float, float]:
    """Mean milliseconds of ``complete_symmetric`` per map (no I/O), and the maps' mean known fraction."""
    from uvaug.complete.maps import known_fraction

    maps = [load_uv_map(item.path) for item in items[:limit]]
    complete_symmetric(maps[0])  # layout tables
    start = time.perf_counter()
    for rgba in maps:
        complete_symmetric(rgba)
    return (time.perf_counter() - start) / len(maps) * 1000, float(np.mean([known_fraction(m) for m in maps]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=1000, help="number of photos to fit (default 1000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run, in turn")
    ap.add_argument("--model", type=Path, help="also time this ONNX completion model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        ap.error(f"no images/ folder in {args.data}")

    names = utkface_names(args.data, args.limit, ("val.txt", "train.txt"))
    print(
        f"{len(names)} UTKFace photos from {args.data}; {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    completers = [("symmetric", create_completer("symmetric"))]
    if args.model:
        model = create_completer("model", args.model, device=args.device)
        completers.append((f"model ({model.device})", model))
    rows = []
    with tempfile.TemporaryDirectory(prefix="uvaug-complete-fit-") as tmp:
        images = args.data.resolve() / "images"
        photos = [InputItem(images / name, PurePosixPath(name)) for name in names]
        fit_inputs(photos, Path(tmp) / "fit", workers=max(args.workers))
        items = discover_uv_maps(Path(tmp) / "fit")
        ms, known = in_memory_ms(items)
        print(
            f"{len(items)} UV maps (256x256, mean known fraction {known:.2f}); complete_symmetric alone: "
            f"{ms:.1f} ms per map = {1000 / ms:.0f} maps/s on one core"
        )
        for name, completer in completers:
            for workers in args.workers:
                r = run_once(items, completer, workers, args.batch_size)
                rows.append(
                    f"{name:<16}  {workers:>7}  {r['maps']:>5}  {r['seconds']:>7.2f}  {r['rate']:>6.1f}  "
                    f"{r['steady']:>8.1f}  {r['statuses']}"
                )
                print(f"  done: {name}, {workers} worker(s)", flush=True)
    print()
    print("method            workers   maps  seconds  maps/s  steady/s  statuses")
    print("\n".join(rows))
    print(f"\nmaps/s: whole complete_inputs call; steady/s: after the first {WARMUP_FRACTION:.0%} of results")


if __name__ == "__main__":
    main()
