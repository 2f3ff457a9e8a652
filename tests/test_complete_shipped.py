"""The shipped completion model: it loads (checksum verified) and really completes a face it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from uvaug.assets import SHIPPED
from uvaug.complete.onnx_runtime import DEFAULT_MODEL, OnnxCompleter
from uvaug.complete.pairs import visible_at
from uvaug.complete.symmetric import complete_symmetric

pytestmark = pytest.mark.skipif(DEFAULT_MODEL not in SHIPPED, reason="this version ships no completion model")


@pytest.mark.parametrize("yaw", [-45.0, 45.0])
def test_the_shipped_model_restores_texels_a_head_turn_hides(fitter, astronaut, psnr, yaw: float):
    """The training task on a photo outside the training data (the astronaut): hide the seen texels the
    fitted face would not show turned to ``yaw``; the model must keep known texels, fill the hidden ones,
    and rebuild them better than the symmetric baseline and far better than a mean-colour fill."""
    (face,) = fitter(astronaut)
    uv = face.uv
    hidden = (uv[..., 3] == 255) & ~visible_at(face.fit, yaw, 0.0, uv.shape[0])
    assert hidden.sum() > 5000
    masked = uv.copy()
    masked[hidden] = 0
    completed = OnnxCompleter(None, device="cpu")(masked[None])[0]
    known = masked[..., 3] == 255
    assert np.array_equal(completed[..., :3][known], masked[..., :3][known])
    assert (completed[..., 3][hidden] == 255).all()
    truth = uv[..., :3][hidden]
    model = psnr(completed[..., :3][hidden], truth)
    symmetric = psnr(complete_symmetric(masked)[..., :3][hidden], truth)
    mean_fill = psnr(np.broadcast_to(masked[..., :3][known].mean(0), truth.shape), truth)
    assert model > symmetric + 1.0 and model > mean_fill + 3.0, (model, symmetric, mean_fill)
