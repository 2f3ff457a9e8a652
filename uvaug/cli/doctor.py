"""``uvaug doctor``: what this environment can run, in one table."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shutil
import subprocess

import typer
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

    rows += _gl_rows()

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        build = "onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime"
        rows.append(("ONNX Runtime", True, f"{build} {ort.__version__}: {', '.join(providers)}"))
    except Exception as exc:
        rows.append(("ONNX Runtime", False, f"{type(exc).__name__}: {exc}"))
    rows.append(_completion_row())

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


def _gl_rows() -> list[tuple[str, bool | None, str]]:
    """A row per headless GL platform and one for the platform rendering will use.

    A platform that does not work fails the check only when rendering would use it (or nothing works):
    OSMesa missing beside a working EGL is information, not a fault.
    """
    from uvaug.gl import INSTALL_HINT, PLATFORMS, probe_platform

    chosen = os.environ.get("PYOPENGL_PLATFORM")
    probes = {name: probe_platform(name) for name in PLATFORMS}
    working = [name for name, (ok, _) in probes.items() if ok]
    used = chosen or (working[0] if working else None)
    rows: list[tuple[str, bool | None, str]] = []
    for name, (ok, why) in probes.items():
        needed = ok or used is None or name == used
        rows.append((f"GL {name}", ok if needed else None, why if needed else f"{why}; not needed"))
    if used is None:
        rows.append(("GL platform for rendering", False, INSTALL_HINT))
    elif used not in probes:
        rows.append(("GL platform for rendering", None, f"{used} (from PYOPENGL_PLATFORM; not probed)"))
    else:
        detail = f"{used} (from PYOPENGL_PLATFORM)" if chosen else used
        if not probes[used][0]:
            detail += (
                f" does not render; unset PYOPENGL_PLATFORM or set it to {working[0]}"
                if working
                else f" does not render; {INSTALL_HINT}"
            )
        rows.append(("GL platform for rendering", probes[used][0], detail))
    return rows


def _completion_row() -> tuple[str, bool | None, str]:
    """Where ``uvaug complete`` runs the shipped model by default: ONNX Runtime lists the CUDA provider
    whenever its GPU build is installed, so only a session that starts on it says a GPU will be used."""
    try:
        from uvaug.complete.onnx_runtime import OnnxCompleter

        completer = OnnxCompleter(device="auto")
    except Exception as exc:
        return ("completion device", False, f"{type(exc).__name__}: {exc}")
    return (
        "completion device",
        True,
        f"{completer.device} (session providers: {', '.join(completer.providers)})",
    )


def doctor_command() -> None:
    """Report models, LiteRT, the OpenGL platform, ONNX Runtime providers and the GPU; exit status 1 when a
    check fails."""
    table = Table(title="uvaug doctor", title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    rows = _checks()
    for what, ok, detail in rows:
        mark = "[green]ok[/]" if ok else ("[dim]-[/]" if ok is None else "[red]FAIL[/]")
        table.add_row(what, mark, detail)
    console.print(table)
    failed = [what for what, ok, _ in rows if ok is False]
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed:[/] {', '.join(failed)}", highlight=False)
        raise typer.Exit(1)
