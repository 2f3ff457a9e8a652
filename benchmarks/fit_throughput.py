"""Throughput of ``uvaug fit`` on UTKFace: images per second through the real ``fit_inputs`` path.

    python benchmarks/fit_throughput.py [--data ../shared/data/utkface] [--limit 1000] [--workers 1 2]

Inputs are the first ``--limit`` names of ``splits/val.txt``, then ``splits/train.txt``, read from ``images/``
(200x200 JPEG crops) through a list file, as ``uvaug fit list.txt`` would. For each worker count in turn, one
``fit_inputs`` call fits them into a fresh temporary output folder, writing everything a user run writes (UV
map PNG and fit ``.npz`` per face, ``manifest.jsonl``); the folder is deleted afterwards.

Reported per worker count: wall time of the whole call (worker pool start-up, model loading, decoding and
manifest compaction included) and images/s from it; the steady-state rate, which leaves out the first 5% of
results (start-up) and counts images per second between the ``on_result`` callbacks that follow; faces fitted
and the per-image statuses. Only the images and their order are fixed: the rates depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from common import add_utkface_argument, steady_rate, utkface_names, write_image_list

from uvaug.fit.run import fit_inputs
from uvaug.io import discover_inputs

WARMUP_FRACTION = 0.05


def run_once(list_file: Path, workers: int) -> dict[str, object]:
    items = discover_inputs(list_file)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"uvaug-fit-w{workers}-") as out:
        start = time.perf_counter()
        report = fit_inputs(
            items, out, workers=workers, on_result=lambda _records: stamps.append(time.perf_counter())
        )
        wall = time.perf_counter() - start
    steady = steady_rate(stamps, WARMUP_FRACTION)
    return {
        "workers": workers,
        "images": report.processed,
        "seconds": wall,
        "rate": report.processed / wall,
        "steady": steady,
        "faces": report.faces,
        "statuses": ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=1000, help="number of images (default 1000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run, in turn")
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        ap.error(f"no images/ folder in {args.data}")
    if args.limit < 1 or min(args.workers) < 1:
        ap.error("--limit and --workers must be at least 1")

    names = utkface_names(args.data, args.limit, ("val.txt", "train.txt"))
    print(
        f"{len(names)} UTKFace images from {args.data}; {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    header = "workers  images  seconds  images/s  steady/s  faces  statuses"  # names as wide as the columns
    rows = []
    with tempfile.TemporaryDirectory(prefix="uvaug-fit-inputs-") as tmp:
        list_file = write_image_list(Path(tmp) / "images.txt", args.data, names)
        for workers in args.workers:
            r = run_once(list_file, workers)
            rows.append(
                f"{r['workers']:>7}  {r['images']:>6}  {r['seconds']:>7.2f}  {r['rate']:>8.1f}  "
                f"{r['steady']:>8.1f}  {r['faces']:>5}  {r['statuses']}"
            )
            print(f"  done: {workers} worker(s)", flush=True)
    print()
    print(header)
    print("\n".join(rows))
    print(f"\nimages/s: whole fit_inputs call; steady/s: after the first {WARMUP_FRACTION:.0%} of results")


if __name__ == "__main__":
    main()
