"""The PyTorch peer computes the same algorithm: same loss at the same
parameters and rays, and nearly the same trajectory. Skipped without torch
(an optional, benchmark-only dependency: pip install -e '.[bench]')."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import peer  # noqa: E402
from benchmarks.torch_peer import TorchPeer  # noqa: E402
from tests.conftest import SCENES  # noqa: E402
from warpsdf.camera import rays_for  # noqa: E402
from warpsdf.fit import Fitter, mask_alpha  # noqa: E402
from warpsdf.scene import load_scene  # noqa: E402

CASES = {
    "spheres": ("two_spheres_silhouette.toml", ["cameras.resolution=[24, 24]"]),
    "mlp_xyz": (
        "two_spheres_xyz.toml",
        [
            "cameras.resolution=[16, 16]",
            "model.hidden=8",
            "model.fourier_frequencies=2",
            "optim.eikonal_samples=0",
            "cameras.jitter=0.0",
        ],
    ),
    "mlp_xyz_sine": (
        "two_spheres_xyz.toml",
        [
            "cameras.resolution=[16, 16]",
            "model.hidden=8",
            "model.activation=sine",
            "model.init=random",
            "model.fourier_frequencies=0",
            "optim.eikonal_samples=0",
            "cameras.jitter=0.0",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_peer_loss_matches_warpsdf(case):
    path, overrides = CASES[case]
    scene = load_scene(SCENES / path, overrides)
    fitter = Fitter.from_scene(scene, "cpu")
    peer_fit = TorchPeer(fitter)
    fitter.draw()
    alpha = mask_alpha(scene, 0)
    expected = fitter.loss(alpha)
    origins, dirs = rays_for(fitter.cameras)
    got = peer_fit.loss(torch.tensor(origins), torch.tensor(dirs), alpha)
    assert float(got.detach()) == pytest.approx(expected, rel=1e-4)
    got.backward()
    np.testing.assert_allclose(
        peer_fit.field.params.grad.numpy(), fitter.field.params.grad.numpy(), rtol=2e-2, atol=1e-6
    )


def test_peer_follows_the_same_sphere_trajectory():
    scene = load_scene(SCENES / "two_spheres_silhouette.toml", ["cameras.resolution=[24, 24]"])
    fitter = Fitter.from_scene(scene, "cpu")
    peer_fit = TorchPeer(fitter)
    for _ in range(10):
        fitter.step()
        peer_fit.step()
    # Adam turns the near-zero z gradients (the views are symmetric in z) into
    # full-size steps of either sign, so float noise moves z by up to ~lr per step.
    np.testing.assert_allclose(
        peer_fit.field.params.detach().numpy(), fitter.field.params.numpy(), atol=1e-2
    )


def test_peer_benchmark_prints_json(capsys):
    args = ["--case", "spheres", "--iterations", "1", "--override", "cameras.resolution=[8, 8]"]
    assert peer.main(args) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["warpsdf_ms_per_iteration"] > 0 and line["torch_ms_per_iteration"] > 0
    assert line["speedup_over_torch"] > 0 and line["torch_version"]


def test_peer_refuses_what_it_does_not_implement(device):
    """The missing back wall's whole-image xyz term and unrolled march have no
    peer: it says so in one line rather than timing another computation."""
    noclip = SCENES / "two_spheres_xyz_noclip.toml"
    small = ["cameras.resolution=[8, 8]"]
    for sets, key in (([], "supervision.background"),
                      (["supervision.background=none", "march.gradient=unrolled"],
                       "march.gradient")):  # fmt: skip
        fitter = Fitter.from_scene(load_scene(noclip, [*small, *sets]), device)
        with pytest.raises(ValueError, match=key):
            TorchPeer(fitter)
