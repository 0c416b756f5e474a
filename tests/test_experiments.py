"""Experiments: the claims the README makes about the shipped experiment
scenes (the learning-rate sweep's are in test_sweep.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SCENES
from warpsdf.fit import Fitter
from warpsdf.scene import load_scene

# ---------------------------------------------------------------------------
# What the README says the experiment scenes show
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "grows"), [("spheres_bloat", False), ("spheres_shrink", True)])
def test_bloating_and_shrinking_spheres(name, grows, device):
    """As documented: the full scene, 300 iterations, 8 views at 64x64."""
    scene = load_scene(SCENES / f"{name}.toml")
    fitter = Fitter.from_scene(scene, device)
    start = fitter.field.centers_radii()[1].copy()
    history = []
    while fitter.iteration < scene.optim.iterations:
        fitter.step()
        history.append(fitter.field.centers_radii()[1].mean())
    end = fitter.field.centers_radii()[1]
    final = np.sort(end)
    np.testing.assert_allclose(final, [0.25, 0.3], atol=0.02)
    if grows:
        assert start.max() == pytest.approx(0.1) and history[30] > 0.1
    else:
        assert start.min() == pytest.approx(0.6) and history[30] < 0.6


def _twitch(name: str, device: str, *extra: str) -> tuple[float, float]:
    """Mean |change| of the per-step mask MSE over the second half of a quick
    run, and the final mask MSE (the README's CPU-sized command)."""
    scene = load_scene(
        SCENES / f"{name}.toml",
        ["cameras.resolution=[32, 32]", "cameras.count=8", "optim.batch_rays=0",
         "optim.iterations=200", *extra],
    )  # fmt: skip
    fitter = Fitter.from_scene(scene, device)
    mse = []
    while fitter.iteration < scene.optim.iterations:
        mse.append(fitter.step().mask_mse)
    half = np.array(mse[len(mse) // 2 :])
    return float(np.abs(np.diff(half)).mean()), float(half[-10:].mean())


@pytest.mark.slow
def test_small_fast_airplane_twitches_and_large_runs_clean(device):
    twitchy, _ = _twitch("airplane_small_fast", device)
    clean, clean_mse = _twitch("airplane_large", device, "model.hidden=32")
    assert twitchy > 3.0 * clean, (twitchy, clean)
    assert clean_mse < 0.06
