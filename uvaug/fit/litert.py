"""One place that creates LiteRT interpreters, so thread count and delegate choice stay consistent."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ai_edge_litert.interpreter import Interpreter


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide the runtime's "Created TensorFlow Lite XNNPACK delegate" line, printed from C++ to fd 2.

    Errors still surface as Python exceptions with their messages.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, notebooks)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def make_interpreter(model: bytes, threads: int = 1, batch: int = 1) -> Interpreter:
    """An allocated interpreter for a tflite model held in memory.

    One thread by default: uvaug parallelises over images with worker processes, which scales better on
    small models than intra-op threads.
    """
    with _quiet_native_stderr():
        interp = Interpreter(model_content=model, num_threads=threads)
        if batch != 1:
            detail = interp.get_input_details()[0]
            interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interp.allocate_tensors()
    return interp
