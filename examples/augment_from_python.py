"""Pose-augment a folder from Python: the library call behind ``uvaug pipeline``.

    python examples/augment_from_python.py IMAGES OUT [--ray]

Writes OUT/<identity>/<image>_y-45_p+00.jpg ... (112x112 ArcFace-aligned crops at five yaws) plus the
manifest, report.json and sheet.png, and prints the counts per status. Rerunning continues where it stopped.
"""

from __future__ import annotations

import sys

from uvaug.pipeline import PipelineOptions, run_pipeline
from uvaug.render.grid import pose_grid
from uvaug.render.run import RenderOptions


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    images, out = sys.argv[1], sys.argv[2]
    views = tuple(pose_grid([-45.0, -20.0, 0.0, 20.0, 45.0], [0.0]))
    options = PipelineOptions(render=RenderOptions(views=views, align="arcface"), include_original=True)
    executor = "ray" if "--ray" in sys.argv[3:] else "local"
    report = run_pipeline(images, out, options, executor=executor)
    print(f"{report.processed} inputs in {report.seconds:.1f} s ({report.rate:.1f} img/s) on {executor}")
    for status, count in sorted(report.statuses.items()):
        print(f"  {status}: {count}")
    for reason, count in sorted(report.reasons.items()):
        print(f"    {reason}: {count}")


if __name__ == "__main__":  # worker processes re-import this module (forkserver): keep the run in main()
    main()
