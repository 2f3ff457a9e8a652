"""End-to-end throughput of ``uvaug pipeline``: images/s, time per stage, peak memory, scaling with size.

    python benchmarks/pipeline_throughput.py [--data ../shared/data/utkface] [--sizes 100 1000]
                                             [--workers 2] [--method model] [--model FILE.onnx]
                                             [--executors local ray] [--yaw SPEC] [--pitch SPEC]
                                             [--sample N]

For each size N, the first N names of UTKFace's ``splits/val.txt`` then ``train.txt`` (200x200 crops) are
linked into identity folders (one per UTKFace race label, as a recognition set is laid out) and run through
the real command, ``uvaug pipeline IN -o OUT --align arcface --yaw -60:60:15`` (9 aligned 112x112 views per
image, completion by the shipped model unless ``--method``/``--model`` say otherwise; ``--yaw``, ``--pitch``
and ``--sample`` pass through to the command), in a fresh process
and a fresh output folder: worker start-up, model loading, decoding, JPEG encoding and every manifest line
included. Reported per size: wall time and images/s, views/s, the stages' busy time per item (summed over
workers, from ``report.json``), the peak of the summed resident memory of the whole process tree (sampled
every 0.2 s from /proc) and the largest single process's peak. The last line prints the wall-time ratio of
the largest to the smallest size, which is linear scaling when it equals the size ratio. With
``--executors local ray`` every size also runs through ``--executor ray`` (a local Ray instance started and
stopped by the run itself, so Ray's start-up is in the wall time; its daemons are in the memory figure) and
the last lines print the Ray-to-local wall-time ratio per size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import add_utkface_argument, utkface_names


def tree_rss_mb(session: int) -> float:
    """Summed resident memory (MiB) of every process in session ``session`` (the run and its workers)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != session:  # field 6 of /proc/PID/stat: the session id
                continue
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total / 1024


def run_once(data: Path, names: list[str], workdir: Path, args: argparse.Namespace, executor: str) -> dict:
    src, out = workdir / "in", workdir / "out"
    for name in names:
        race = name.split("_")[2] if name.count("_") >= 3 else "unknown"
        folder = src / f"id_{race}"
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(data / "images" / name, folder / name)
    command = [
        sys.executable,
        "-m",
        "uvaug",
        "pipeline",
        str(src),
        "-o",
        str(out),
        "--align",
        "arcface",
        "--yaw",
        args.yaw,
        "--pitch",
        args.pitch,
        "-w",
        str(args.workers),
        "--method",
        args.method,
        "--executor",
        executor,
    ]
    if args.model:
        command += ["--model", str(args.model)]
    if args.sample:
        command += ["--sample", str(args.sample)]
    peak = [0.0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    report["wall"] = wall
    report["tree_peak_mb"] = peak[0]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_utkface_argument(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--yaw", default="-60:60:15")
    parser.add_argument("--pitch", default="0")
    parser.add_argument("--sample", type=int, default=None, help="views per image drawn from the grid")
    parser.add_argument("--method", default="model", choices=["model", "symmetric"])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--executors", nargs="+", default=["local"], choices=["local", "ray"])
    args = parser.parse_args()
    print(
        f"uvaug pipeline --align arcface --yaw {args.yaw} --pitch {args.pitch}"
        f"{f' --sample {args.sample}' if args.sample else ''} --method {args.method} -w {args.workers}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        "| executor | images | wall s | images/s | views/s | fit ms | complete ms | render ms | "
        "peak RSS (tree) | largest process |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    walls: dict[tuple[str, int], float] = {}
    for size in args.sizes:
        names = utkface_names(args.data, size, ("val.txt", "train.txt"))
        for executor in args.executors:
            with tempfile.TemporaryDirectory(prefix="uvaug-pipeline-bench-") as tmp:
                r = run_once(args.data, names, Path(tmp), args, executor)
            stages = r["stages"]
            walls[executor, size] = r["wall"]
            print(
                f"| {executor} | {size} | {r['wall']:.1f} | {size / r['wall']:.2f} | "
                f"{r['views'] / r['wall']:.1f} | {stages['fit']['ms_per_item']:.1f} | "
                f"{stages['complete']['ms_per_item']:.1f} | {stages['render']['ms_per_item']:.1f} | "
                f"{r['tree_peak_mb']:.0f} MiB | {r['peak_rss_mb']:.0f} MiB |",
                flush=True,
            )
    small, large = min(args.sizes), max(args.sizes)
    for executor in args.executors:
        if large > small:
            print(
                f"{executor}: wall time {large} vs {small} images: "
                f"{walls[executor, large] / walls[executor, small]:.2f}x (linear: {large / small:.1f}x)"
            )
    if len(args.executors) > 1:
        for size in args.sizes:
            print(f"ray / local wall time, {size} images: {walls['ray', size] / walls['local', size]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
