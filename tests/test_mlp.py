"""The MLP field (:mod:`warpsdf.fields.mlp`, its core and its scalar and
tiled kernels) against a plain numpy forward pass (STYLE "Tests, in layers" 1
and 2).

* Closed forms: sizes are checked, values match the numpy reference with
  either kernel kind, and geometric initialisation is roughly a sphere.
* Gradients: the spatial gradient (the tetrahedral difference the marcher
  uses) against a float64 central difference of the reference; the parameter
  backward behind :func:`warpsdf.fields.base.evaluate`, with a random upstream
  gradient, against float64 central differences of the reference and
  directional differences of Warp's own float32 forward pass, reaching every
  layer's weights and biases.

The tiled kernels against the scalar ones: tests/test_mlp_tiled.py. Tolerances
are per output and per scenario (Mitsuba style), as in tests/test_fields.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tests.helpers import (
    mlp_groups,
    mlp_numpy,
    mlp_param_grad_numpy,
    param_grad,
    random_points,
    spatial_grad,
    unit,
    weighted_sum,
)
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import geometric_init, num_params
from warpsdf.scene import MLPKernels

# ---------------------------------------------------------------------------
# Helpers: the numpy reference
# ---------------------------------------------------------------------------


def noisy_mlp(frequencies: int, width: int, layers: int, seed: int = 0, noise: float = 0.1):
    """Geometric init plus noise on every weight, so every path (the Fourier
    weights and the biases included, which start at zero) is exercised."""
    rng = np.random.default_rng(seed)
    params = geometric_init(frequencies, width, layers, 0.5, rng)
    return (params + noise * rng.normal(size=params.shape)).astype(np.float32)


# ---------------------------------------------------------------------------
# Sizes, values and the geometric init
# ---------------------------------------------------------------------------


def test_mlp_sizes_are_checked():
    params = np.zeros(num_params(1, 8, 2), np.float32)
    with pytest.raises(ValueError, match="parameter count"):
        MLPField(params[:-1], 1, 8, 2, device="cpu")
    with pytest.raises(ValueError, match="width"):
        MLPField(params, 1, 0, 2, device="cpu")


@pytest.mark.parametrize("kernels", list(MLPKernels)[1:])
@pytest.mark.parametrize(
    ("width", "layers", "frequencies"), [(8, 1, 0), (16, 3, 2), (8, 2, 1), (33, 2, 10)]
)
def test_mlp_values_match_numpy(device, width, layers, frequencies, kernels):
    params = noisy_mlp(frequencies, width, layers, seed=4)
    field = MLPField(params, frequencies, width, layers, device=device, kernels=kernels)
    x = random_points(np.random.default_rng(5), 64, 1.0)
    want = mlp_numpy(params, frequencies, width, layers, x)
    # float32 features at 2^9 pi x carry ~1e-4 rad of rounding (10 frequencies)
    tol = 1e-5 if frequencies < 10 else 2e-4
    np.testing.assert_allclose(field.values(x), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("init_radius", [0.3, 0.5])
def test_geometric_init_is_roughly_a_sphere(device, layers, init_radius):
    """IDR's geometric init makes f ~ |x| - r *in expectation* over the weights;
    a width-16 network is a rough sphere, so the radial profile is averaged over
    a few seeds, while the per-seed properties are exact."""
    width, r = 16, init_radius
    dirs = random_points(np.random.default_rng(6), 300, 1.0)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    profiles = []
    for seed in range(5):
        params = geometric_init(2, width, layers, r, np.random.default_rng(seed))
        field = MLPField(params, 2, width, layers, device=device)
        at = {s: field.values(dirs * s * r).astype(np.float64) for s in (0.5, 1.0, 1.5)}
        # value at the origin: -r plus softplus(0) = log(2)/beta per unit
        assert abs(field.values(np.zeros((1, 3)))[0] + r) < 0.2
        # f(s u) ~ s g(u) - r with g >= 0 (ReLU-like units, zero biases, positive
        # output weights): it never falls outwards along a ray, up to the softplus
        # rounding (log(2) / beta = 0.007 per unit) where every unit is off
        slack = 1e-2
        assert np.all(at[0.5] < at[1.0] + slack) and np.all(at[1.0] < at[1.5] + slack)
        # Fourier weights start at zero: the same seed without features is the same field
        plain = MLPField(
            geometric_init(0, width, layers, r, np.random.default_rng(seed)), 0, width, layers,
            device=device,
        )  # fmt: skip
        np.testing.assert_allclose(plain.values(dirs * r), at[1.0], atol=1e-6)
        profiles.append([at[s].mean() for s in (0.5, 1.0, 1.5)])
    inner, on, outer = np.mean(profiles, axis=0)
    assert inner < -0.25 * r and outer > 0.25 * r, (inner, on, outer)
    assert inner < on < outer, (inner, on, outer)
    # the mean profile crosses zero within 30% of init_radius (|x| = s r)
    s = np.interp(0.0, [inner, on, outer], [0.5, 1.0, 1.5])
    assert abs(s - 1.0) < 0.3, (inner, on, outer, s)
    assert abs(on) < min(-inner, outer), (inner, on, outer)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", list(MLPKernels)[1:])
@pytest.mark.parametrize(("width", "layers", "frequencies"), [(8, 1, 0), (16, 3, 2)])
def test_mlp_spatial_gradient(device, width, layers, frequencies, kernels):
    """The tetrahedral finite difference the MLP uses as its ``grad`` against a
    float64 central difference of the numpy reference (O(h^2) apart)."""
    params = noisy_mlp(frequencies, width, layers, seed=7, noise=0.05)
    field = MLPField(params, frequencies, width, layers, device=device, kernels=kernels)
    x = random_points(np.random.default_rng(8), 32)
    h = 1e-6
    want = np.stack(
        [
            (
                mlp_numpy(params, frequencies, width, layers, x + h * e)
                - mlp_numpy(params, frequencies, width, layers, x - h * e)
            )
            / (2 * h)
            for e in np.eye(3)
        ],
        axis=1,
    )
    got = spatial_grad(field, x)
    scale = np.abs(want).max()
    # float32 values over 4h = 2e-3 (~1e-4) and softplus curvature (beta = 100) at h = 5e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-2 * max(scale, 1.0))


@dataclass(frozen=True)
class MLPScenario:
    width: int
    layers: int
    frequencies: int
    kernels: MLPKernels
    # |<grad, v> - FD| <= rtol * |FD| for Warp's float32 forward at eps = 1e-3.
    # The softplus (beta = 100) bends within 0.01 of a kink, so the central
    # difference carries a third-order error (up to 1.2% measured); deeper
    # networks, with more kinks on the path, get more room.
    rtol: float

    @property
    def id(self) -> str:
        return f"w{self.width}-l{self.layers}-f{self.frequencies}-{self.kernels.value}"


MLP_SCENARIOS = [
    MLPScenario(w, layers, f, kernels, rtol=3e-2 if layers == 1 else 5e-2)
    for w in (8, 16)
    for layers in (1, 2, 3)
    for f in (0, 2)
    for kernels in (MLPKernels.SCALAR, MLPKernels.TILED)
]


@pytest.mark.parametrize("sc", MLP_SCENARIOS, ids=lambda s: s.id)
def test_mlp_parameter_gradient(device, sc: MLPScenario):
    params = noisy_mlp(sc.frequencies, sc.width, sc.layers, seed=9)
    field = MLPField(params, sc.frequencies, sc.width, sc.layers, device=device, kernels=sc.kernels)
    rng = np.random.default_rng(10)
    x = random_points(rng, 24)
    adj = rng.normal(size=len(x))
    got = param_grad(field, x, adj)

    # every parameter against a float64 central difference of the numpy
    # reference (effectively exact): only float32 accumulation is left
    theta = params.astype(np.float64)
    dims = (sc.frequencies, sc.width, sc.layers)
    exact = mlp_param_grad_numpy(theta, dims, x, adj)
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5 * np.abs(exact).max())

    # directional differences of Warp's own float32 forward along random v
    eps = 1e-3
    for seed in range(3):
        v = unit(np.random.default_rng(100 + seed).normal(size=theta.shape))
        fd = (
            weighted_sum(field, theta + eps * v, x, adj)
            - weighted_sum(field, theta - eps * v, x, adj)
        ) / (2 * eps)
        assert got @ v == pytest.approx(fd, rel=sc.rtol, abs=1e-3), (seed, got @ v, fd)
    field.params.assign(params)

    for name, index in mlp_groups(*dims).items():
        assert np.abs(got[index]).max() > 0, f"no gradient reaches {name}"
