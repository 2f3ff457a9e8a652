"""Throughput of ``uvaug render``: views per second through the real ``render_fits`` path.

    python benchmarks/render_throughput.py [--data ../shared/data/utkface] [--limit 50] [--workers 1 2]
                                           [--yaw -60:60:15] [--repeat 3]

The first ``--limit`` names of UTKFace's ``splits/val.txt`` (200x200 crops) are fitted once with
``fit_inputs`` (untimed). Each fitted face is then rendered at every ``--yaw`` (pitch 0; 9 views by default)
in two modes: (a) aligned crops, ``--align arcface --size 112``, and (b) full-size renders, the whole photo
(200x200 here) with ``--background photo``. Each mode and worker count runs in a fresh process (as a user's
``uvaug render`` would: the GL context, about 2 s to create, is made per process and cached within one),
into a fresh output folder, writing what a user run writes (JPEG per view, ``manifest.jsonl``).

Reported per run: wall time of ``plan_render`` + ``render_fits`` (worker pool and GL start-up, texture and
photo decoding, JPEG encoding and manifest writes included) and views/s from it; the steady rate, which
leaves out the faces finished in the first 10% of results (start-up) and counts views per second between the
``on_result`` callbacks that follow; and when the first face was done. Only the faces, views and their order
are fixed: the rates depend on the machine. Each configuration runs ``--repeat`` times, interleaved, and the
fastest run (by wall time) is reported, which keeps out most of the noise of other work on the machine; the
load average before and after is printed so that a busy machine shows.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
from common import add_utkface_argument, steady_rate, utkface_names, write_image_list

from uvaug.fit.run import fit_inputs
from uvaug.io import discover_inputs
from uvaug.render.grid import parse_angles, pose_grid
from uvaug.render.run import RenderOptions, plan_render, render_fits

WARMUP_FRACTION = 0.10
MODES = {
    "aligned 112": {"align": "arcface", "size": 112},
    "full photo": {"align": "none"},
}


def measure(fits: str, mode: str, yaws: tuple[float, ...], workers: int, results: mp.Queue) -> None:
    """One timed render run (in its own process, so each run pays its own GL and pool start-up)."""
    options = RenderOptions(views=tuple(pose_grid(yaws, [0.0])), **MODES[mode])
    stamps: list[tuple[float, int]] = []  # (time, views done by that face)
    with tempfile.TemporaryDirectory(prefix="uvaug-render-bench-") as out:
        start = time.perf_counter()
        plan = plan_render(Path(fits), Path(out), options)
        report = render_fits(
            plan,
            out,
            options,
            workers=workers,
            on_result=lambda records: stamps.append(
                (time.perf_counter(), sum(r["status"] == "ok" for r in records))
            ),
        )
        wall = time.perf_counter() - start
        sample = next(Path(out).rglob("*.jpg"), None)
        shape = "-"
        if sample is not None:
            h, w = cv2.imread(str(sample)).shape[:2]
            shape = f"{w}x{h}"
    views = sum(n for _, n in stamps)
    steady = steady_rate([t for t, _ in stamps], WARMUP_FRACTION, [n for _, n in stamps])
    results.put(
        {
            "mode": mode,
            "workers": workers,
            "faces": report.processed,
            "views": views,
            "size": shape,
            "seconds": wall,
            "rate": views / wall,
            "steady": steady,
            "first": stamps[0][0] - start if stamps else float("nan"),
            "errors": sum(v for k, v in report.statuses.items() if k != "ok"),
        }
    )


def run_fresh(
    ctx: mp.context.BaseContext, fits: Path, mode: str, yaws: tuple[float, ...], workers: int
) -> dict:
    """:func:`measure` in a new process; its result."""
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(str(fits), mode, yaws, workers, queue))
    proc.start()
    proc.join()  # the result is a small dict: it fits the queue's pipe, so joining first cannot block
    if proc.exitcode != 0:
        raise SystemExit(f"the {mode} run with {workers} worker(s) failed (exit {proc.exitcode})")
    return queue.get(timeout=60)


def load() -> str:
    """1, 5 and 15 minute load averages: above about the core count, other work is competing."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_utkface_argument(ap)
    ap.add_argument("--limit", type=int, default=50, help="first N names of splits/val.txt (default 50)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run, in turn")
    ap.add_argument("--yaw", default="-60:60:15", help="yaw angles, as uvaug render --yaw (default 9 views)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration; the fastest is reported")
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        ap.error(f"no images/ folder in {args.data}")
    if args.limit < 1 or min(args.workers) < 1 or args.repeat < 1:
        ap.error("--limit, --workers and --repeat must be at least 1")
    yaws = parse_angles(args.yaw, "yaw")

    names = utkface_names(args.data, args.limit)
    print(
        f"{len(names)} UTKFace val images from {args.data}, {len(yaws)} yaws; {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        flush=True,
    )
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="uvaug-render-bench-fits-") as tmp_name:
        tmp = Path(tmp_name)
        list_file = write_image_list(tmp / "val.txt", args.data, names)
        fit_report = fit_inputs(discover_inputs(list_file), tmp / "fits", workers=max(args.workers))
        print(f"fitted {fit_report.faces} faces (untimed)", flush=True)
        print(f"load average before: {load()}", flush=True)
        best: dict[tuple[str, int], dict] = {}
        for run in range(args.repeat):
            for mode in MODES:
                for workers in args.workers:
                    result = run_fresh(ctx, tmp / "fits", mode, yaws, workers)
                    key = (mode, workers)
                    if key not in best or result["seconds"] < best[key]["seconds"]:
                        best[key] = result
            print(f"  done: run {run + 1} of {args.repeat}", flush=True)
        print(f"load average after: {load()}", flush=True)
        rows = list(best.values())
    print()
    print("mode         workers  faces  views  size     seconds  views/s  steady/s  first face s  errors")
    for r in rows:
        print(
            f"{r['mode']:<11}  {r['workers']:>7}  {r['faces']:>5}  {r['views']:>5}  {r['size']:<7}  "
            f"{r['seconds']:>7.2f}  {r['rate']:>7.1f}  {r['steady']:>8.1f}  {r['first']:>12.2f}  "
            f"{r['errors']:>6}"
        )
    print(
        f"\nfastest of {args.repeat} run(s) per row; views/s: plan_render + render_fits in a fresh process; "
        f"steady/s: after the first "
        f"{WARMUP_FRACTION:.0%} of faces; first face s: start-up until the first face's views were written"
    )


if __name__ == "__main__":
    main()
