"""``uvaug doctor``: what this environment can run, in one table."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess

from rich.table import Table

from uvaug import __version__
from uvaug.cli.console import console


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""


def _checks() -> list[tuple[str, bool | None, str]]:
    """(what, ok or None for information, detail) rows."""
    rows: list[tuple[str, bool | None, str]] = [
        ("uvaug", None, f"{__version__} on Python {platform.python_version()} ({platform.machine()})"),
    ]
    from uvaug.assets import SHIPPED, ModelError, model_path

    for name in SHIPPED:
        try:
            rows.append((f"model {name}", True, f"{model_path(name)} (sha256 verified)"))
        except ModelError as exc:
            rows.append((f"model {name}", False, str(exc)))

    try:
        from uvaug.fit.bundle import default_bundle
        from uvaug.fit.litert import make_interpreter

        make_interpreter(default_bundle().detector_tflite)
        rows.append(("LiteRT", True, f"ai-edge-litert {_version('ai-edge-litert')}, detector loads"))
    except Exception as exc:
        rows.append(("LiteRT", False, f"{type(exc).__name__}: {exc}"))

    from uvaug.gl import PLATFORMS, probe_platform

    chosen = os.environ.get("PYOPENGL_PLATFORM")
    working = []
    for name in PLATFORMS:
        ok, why = probe_platform(name)
        working += [name] if ok else []
        rows.append((f"GL {name}", ok, why))
    detail = f"{chosen} (from PYOPENGL_PLATFORM)" if chosen else (working[0] if working else "none")
    rows.append(("GL platform for rendering", bool(chosen or working), detail))

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        build = "onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime"
        rows.append(("ONNX Runtime", True, f"{build} {ort.__version__}: {', '.join(providers)}"))
    except Exception as exc:
        rows.append(("ONNX Runtime", False, f"{type(exc).__name__}: {exc}"))

    gpu = "none"
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        gpu = proc.stdout.strip().replace("\n", "; ") or "nvidia-smi found no GPU"
    try:
        import torch

        cuda = (
            f"torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}"
        )
    except Exception as exc:
        cuda = f"torch missing ({type(exc).__name__})"
    rows.append(("GPU", None, f"{gpu}; {cuda}"))
    return rows


def doctor_command() -> None:
    """Report models, LiteRT, the OpenGL platform, ONNX Runtime providers and the GPU."""
    table = Table(title="uvaug doctor", title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    rows = _checks()
    for what, ok, detail in rows:
        mark = "[green]ok[/]" if ok else ("[dim]-[/]" if ok is None else "[red]FAIL[/]")
        table.add_row(what, mark, detail)
    console.print(table)
