"""Headless OpenGL platform choice for pyrender: EGL first, OSMesa where EGL is missing.

PyOpenGL binds its platform at first import, so each candidate is probed in a short subprocess; the winner is
exported as ``PYOPENGL_PLATFORM`` before any rendering code imports OpenGL.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from functools import cache

PLATFORMS = ("egl", "osmesa")
#: The shared library each platform loads, and the Debian/Ubuntu package that provides it.
LIBRARIES = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}
INSTALL_HINT = (
    "no headless OpenGL platform works: install EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) "
    "or OSMesa (apt-get install libosmesa6)"
)

_PROBE = """
import pyrender, numpy as np, trimesh
r = pyrender.OffscreenRenderer(16, 16)
s = pyrender.Scene()
s.add(pyrender.Mesh.from_trimesh(trimesh.creation.box()))
s.add(pyrender.OrthographicCamera(1, 1), pose=np.array([[1,0,0,0],[0,1,0,0],[0,0,1,3],[0,0,0,1.]]))
d = r.render(s, flags=pyrender.RenderFlags.DEPTH_ONLY)
r.delete()
import OpenGL.GL as gl
print("ok", float(d.max()))
"""


@cache
def probe_platform(name: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Whether pyrender renders offscreen with ``PYOPENGL_PLATFORM=name``; the reason when it does not."""
    library, package = LIBRARIES[name]
    if ctypes.util.find_library(library) is None:
        return False, f"lib{library} not found (Debian/Ubuntu: apt-get install {package})"
    env = {**os.environ, "PYOPENGL_PLATFORM": name}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if proc.returncode == 0 and proc.stdout.startswith("ok"):
        return True, "renders"
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"exit status {proc.returncode}"


def select_platform() -> str | None:
    """The platform to use: $PYOPENGL_PLATFORM if set, else the first of EGL, OSMesa that works."""
    if os.environ.get("PYOPENGL_PLATFORM"):
        return os.environ["PYOPENGL_PLATFORM"]
    for name in PLATFORMS:
        if probe_platform(name)[0]:
            os.environ["PYOPENGL_PLATFORM"] = name
            return name
    return None
