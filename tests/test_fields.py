"""Field values and gradients against slow references and finite differences
(STYLE "Tests, in layers" 1 and 2).

* Closed forms: the sphere set against a numpy log-sum-exp smooth minimum, the
  MLP against a plain numpy forward pass, geometric initialisation.
* Gradients of every differentiable piece, each with a random upstream
  gradient (never only ``sum()``): the spatial gradient of each field kind,
  the parameter backward behind :func:`warpsdf.fields.base.evaluate`, the two
  loss kernels (``warp.autograd.gradcheck`` plus a numpy reference of their
  values), and a directional check on a whole small render through
  :class:`warpsdf.fit.Fitter`.

Tolerances are per output and per scenario (Mitsuba style): float64
references are held tightly; float32 finite differences of Warp's own forward
pass are held to what float32 allows; whole renders whose silhouettes move are
held more loosely, and say why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import warp as wp
import warp.autograd

from tests.conftest import SCENES
from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON, Field, evaluate
from warpsdf.fields.mlp import SOFTPLUS_BETA, MLPField, geometric_init, num_inputs, num_params
from warpsdf.fields.spheres import SPHERE_RECORD, SphereSetField
from warpsdf.fit import Fitter
from warpsdf.losses import (
    MIN_GRAD_DOT_DIR,
    NUM_TERMS,
    Term,
    eikonal_loss_kernel,
    ray_loss_kernel,
)
from warpsdf.march import FAR_SDF
from warpsdf.scene import MLPKernels, load_scene

# ---------------------------------------------------------------------------
# Helpers: Warp launches and slow numpy references
# ---------------------------------------------------------------------------


@functools.cache
def _spatial_grad_kernel(functions) -> wp.Kernel:
    """grads_out[i] = functions.grad(points[i]), the gradient the marcher uses."""
    grad = functions.grad

    @wp.kernel(enable_backward=False, module="unique", name=f"test_spatial_grad_{functions.name}")
    def spatial_grad_kernel(
        count: int,
        params: wp.array(dtype=float),
        meta: wp.array(dtype=float),
        points: wp.array(dtype=wp.vec3),
        grads_out: wp.array(dtype=wp.vec3),
    ):
        i = wp.tid()
        g = grad(params, meta, points[wp.min(i, count - 1)])  # collective kinds: every thread
        if i < count:
            grads_out[i] = g

    return spatial_grad_kernel


def spatial_grad(field: Field, points: np.ndarray) -> np.ndarray:
    pts = wp.array(np.asarray(points, np.float32), dtype=wp.vec3, device=field.device)
    out = wp.empty(len(points), dtype=wp.vec3, device=field.device)
    field.functions.launch(
        _spatial_grad_kernel(field.functions),
        len(points),
        inputs=[field.kernel_params(), field.meta, pts],
        outputs=[out],
        device=field.device,
    )
    return out.numpy().astype(np.float64)


def param_grad(field: Field, points: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """d/dθ sum_i adj_i f(x_i; θ) through evaluate() on a tape, as the fit does."""
    device = field.device
    pts = wp.array(np.asarray(points, np.float32), dtype=wp.vec3, device=device)
    values = wp.zeros(len(points), dtype=float, device=device, requires_grad=True)
    detached = wp.zeros(len(points), dtype=float, device=device)
    field.params.grad.zero_()
    tape = wp.Tape()
    with tape:
        evaluate(field, pts, values, detached, tape=tape)
    np.testing.assert_array_equal(values.numpy(), detached.numpy())
    tape.backward(grads={values: wp.array(np.asarray(adj, np.float32), dtype=float, device=device)})
    grad = field.params.grad.numpy().astype(np.float64)
    field.params.grad.zero_()
    return grad


def weighted_sum(field: Field, params: np.ndarray, points: np.ndarray, adj: np.ndarray) -> float:
    """sum_i adj_i f(x_i; params) with Warp's float32 forward pass (float64 sum)."""
    field.params.assign(np.asarray(params, np.float32))
    return float(np.dot(adj, field.values(points).astype(np.float64)))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def spheres_numpy(centers, radii, k: float, x: np.ndarray) -> np.ndarray:
    """Slow reference: -k log sum_i exp(-d_i / k), or min_i d_i for k = 0 (float64)."""
    d = np.linalg.norm(x[:, None, :] - np.asarray(centers)[None], axis=2) - np.asarray(radii)
    if k == 0.0:
        return d.min(axis=1)
    return -k * np.log(np.exp(-d / k).sum(axis=1))


def spheres_param_grad_numpy(centers, radii, k: float, x: np.ndarray, adj: np.ndarray):
    """Closed-form d/dθ sum_i adj_i f(x_i) of the reference (softmax weights)."""
    rel = x[:, None, :] - np.asarray(centers)[None]  # (N, S, 3)
    dist = np.linalg.norm(rel, axis=2)
    d = dist - np.asarray(radii)
    if k == 0.0:
        w = (d == d.min(axis=1, keepdims=True)).astype(np.float64)
    else:
        z = np.exp(-(d - d.min(axis=1, keepdims=True)) / k)
        w = z / z.sum(axis=1, keepdims=True)
    grad_c = -(adj[:, None, None] * w[..., None] * rel / dist[..., None]).sum(axis=0)
    grad_r = -(adj[:, None] * w).sum(axis=0)
    return np.concatenate([grad_c, grad_r[:, None]], axis=1).reshape(-1)


def mlp_numpy(params, frequencies: int, width: int, layers: int, x: np.ndarray) -> np.ndarray:
    """Slow reference of the MLP (module docstring of warpsdf.fields.mlp), float64."""
    p = np.asarray(params, np.float64)
    x = np.asarray(x, np.float64)
    feats = [x]
    for level in range(frequencies):
        omega = np.pi * 2.0**level
        feats += [np.sin(omega * x), np.cos(omega * x)]
    a = np.concatenate(feats, axis=1)
    n_in = num_inputs(frequencies)
    offset, fan_in = 0, n_in
    for _ in range(layers):
        w = p[offset : offset + width * fan_in].reshape(width, fan_in)
        b = p[offset + width * fan_in : offset + width * fan_in + width]
        offset += width * fan_in + width
        a = np.logaddexp(0.0, SOFTPLUS_BETA * (a @ w.T + b)) / SOFTPLUS_BETA
        fan_in = width
    assert offset + width + 1 == p.size
    return a @ p[offset : offset + width] + p[offset + width]


def mlp_groups(frequencies: int, width: int, layers: int) -> dict[str, slice]:
    """The parameter slices of each layer: weights and biases, Fourier weights apart."""
    n_in = num_inputs(frequencies)
    groups = {}
    w0 = np.arange(width * n_in).reshape(width, n_in)
    groups["layer0.W[xyz]"] = w0[:, :3].ravel()
    if frequencies:
        groups["layer0.W[fourier]"] = w0[:, 3:].ravel()
    offset = width * n_in
    groups["layer0.b"] = np.arange(offset, offset + width)
    offset += width
    for layer in range(1, layers):
        groups[f"layer{layer}.W"] = np.arange(offset, offset + width * width)
        groups[f"layer{layer}.b"] = np.arange(
            offset + width * width, offset + width * width + width
        )
        offset += width * width + width
    groups["out.w"] = np.arange(offset, offset + width)
    groups["out.b"] = np.array([offset + width])
    assert offset + width + 1 == num_params(frequencies, width, layers)
    return groups


def random_points(rng: np.random.Generator, n: int, radius: float = 0.9) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v * radius * rng.uniform(0.05, 1.0, size=(n, 1)) ** (1.0 / 3.0)


# ---------------------------------------------------------------------------
# Sphere set
# ---------------------------------------------------------------------------

SPHERES = (
    np.array([[-0.35, 0.0, 0.0], [0.4, 0.1, 0.0], [0.05, -0.3, 0.2]]),
    np.array([0.3, 0.25, 0.15]),
)


def sphere_points(k: float, n: int = 40, seed: int = 0) -> np.ndarray:
    """Random points away from the centres (|grad| is singular there) and, for
    the hard minimum, away from ties between spheres (its kinks)."""
    centers, radii = SPHERES
    rng = np.random.default_rng(seed)
    x = random_points(rng, 8 * n, 1.0)
    dist = np.linalg.norm(x[:, None] - centers[None], axis=2)
    d = np.sort(dist - radii, axis=1)
    keep = dist.min(axis=1) > 0.05
    if k == 0.0:
        keep &= d[:, 1] - d[:, 0] > 0.05
    x = x[keep][:n]
    assert len(x) == n
    return x


@pytest.mark.parametrize("k", [0.0, 0.02, 0.1])
def test_sphere_set_values_match_log_sum_exp(device, k):
    centers, radii = SPHERES
    field = SphereSetField(centers, radii, k, device=device)
    x = random_points(np.random.default_rng(1), 64, 1.0)
    got = field.values(x)
    want = spheres_numpy(centers, radii, k, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    # the smooth minimum lies below the hard one by at most k log(count)
    hard = spheres_numpy(centers, radii, 0.0, x)
    assert np.all(got <= hard + 1e-6)
    assert np.all(got >= hard - k * np.log(len(radii)) - 1e-6)


def test_sphere_set_packing(device):
    centers, radii = SPHERES
    field = SphereSetField(centers, radii, 0.05, device=device)
    assert field.count == 3 and field.num_params == 3 * SPHERE_RECORD
    c, r = field.centers_radii()
    np.testing.assert_allclose(c, centers, atol=1e-7)
    np.testing.assert_allclose(r, radii, atol=1e-7)
    # exactly on a single sphere's surface, the hard minimum is zero
    one = SphereSetField(centers[:1], radii[:1], 0.0, device=device)
    on_surface = centers[0] + radii[0] * np.eye(3)
    np.testing.assert_allclose(one.values(on_surface), 0.0, atol=1e-6)


@pytest.mark.parametrize("k", [0.0, 0.05])
def test_sphere_set_spatial_gradient_matches_central_differences(device, k):
    centers, radii = SPHERES
    field = SphereSetField(centers, radii, k, device=device)
    x = sphere_points(k)
    h = 1e-3
    fd = np.stack(
        [
            (field.values(x + h * e).astype(np.float64) - field.values(x - h * e)) / (2 * h)
            for e in np.eye(3)
        ],
        axis=1,
    )
    got = spatial_grad(field, x)
    # float32 values (~1e-7) over 2h, plus h^2 f''' / 6 with f''' ~ 1/k^2
    np.testing.assert_allclose(got, fd, rtol=0, atol=2e-3)
    # a hard minimum of distances is an exact distance: |grad f| = 1
    if k == 0.0:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [0.0, 0.02, 0.1])
def test_sphere_set_parameter_gradient(device, k):
    """Per parameter: the hand-written backward against central differences of
    sum(adj * f) (Warp's float32 forward) and against the closed form (float64)."""
    centers, radii = SPHERES
    field = SphereSetField(centers, radii, k, device=device)
    x = sphere_points(k, seed=2)
    adj = np.random.default_rng(3).normal(size=len(x))
    got = param_grad(field, x, adj)

    exact = spheres_param_grad_numpy(centers, radii, k, x, adj)
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5)

    theta = field.params.numpy().astype(np.float64)
    eps = 1e-3
    fd = np.empty_like(theta)
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = eps
        fd[j] = (
            weighted_sum(field, theta + step, x, adj) - weighted_sum(field, theta - step, x, adj)
        ) / (2 * eps)
    field.params.assign(theta.astype(np.float32))
    # float32 values: sqrt(N) * 1e-7 / 2eps ~ 3e-4 of noise on gradients of order 1
    np.testing.assert_allclose(got, fd, rtol=1e-2, atol=2e-3)
    assert np.abs(got).min() > 0 or k == 0.0  # the softmax reaches every sphere


# ---------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------


def noisy_mlp(frequencies: int, width: int, layers: int, seed: int = 0, noise: float = 0.1):
    """Geometric init plus noise on every weight, so every path (the Fourier
    weights and the biases included, which start at zero) is exercised."""
    rng = np.random.default_rng(seed)
    params = geometric_init(frequencies, width, layers, 0.5, rng)
    return (params + noise * rng.normal(size=params.shape)).astype(np.float32)


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
    h = 1e-6
    exact = np.empty_like(theta)
    for j in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[j] += h
        tm[j] -= h
        exact[j] = adj @ (mlp_numpy(tp, *dims, x) - mlp_numpy(tm, *dims, x)) / (2 * h)
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


# ---------------------------------------------------------------------------
# Loss kernels: numpy reference of the values, gradcheck of the gradients
# ---------------------------------------------------------------------------


def _softplus(z):
    return np.logaddexp(0.0, z)


def ray_loss_numpy(
    values, detached, points, dirs, hit_t, min_sdf, grad_dot_dir, mask, xyz, depth,
    alpha, weights, silhouette_mse, point_mse,
):  # fmt: skip
    """Slow reference of warpsdf.losses.ray_loss_kernel (module docstring), float64."""
    terms = np.zeros(NUM_TERMS)
    n = len(values)
    for r in range(n):
        if min_sdf[r] >= 0.5 * FAR_SDF:
            continue
        f, y = values[r], mask[r]
        if hit_t[r] >= 0 and y > 0.5:
            gd = min(grad_dot_dir[r], -MIN_GRAD_DOT_DIR)
            dt = -(f - detached[r]) / gd
            x = points[r] + dirs[r] * dt
            e = x - xyz[r]
            terms[Term.XYZ] += (e @ e / 3 if point_mse else np.abs(e).mean()) / n
            de = hit_t[r] + dt - depth[r]
            terms[Term.DEPTH] += (de * de if point_mse else abs(de)) / n
        else:
            if silhouette_mse:
                m = 1 / (1 + np.exp(alpha * f))
                e = (m - y) ** 2
            else:
                e = (y * _softplus(alpha * f) + (1 - y) * _softplus(-alpha * f)) / alpha
            terms[Term.SILHOUETTE] += e / n
    w = weights
    loss = w[0] * terms[Term.SILHOUETTE] + w[1] * terms[Term.XYZ] + w[2] * terms[Term.DEPTH]
    return terms, loss


def ray_loss_inputs(rng: np.random.Generator):
    """One ray of each kind: hit & object (xyz/depth), hit & background, miss &
    object, miss & background, a grazing hit (clamped slope) and a ray outside
    the bound. SDF values keep clear of zero, where the L1 terms have kinks."""
    hit_t = np.array([2.0, 2.2, -1, -1, 1.9, 2.1, -1, 2.3], np.float32)
    mask = np.array([1, 1, 1, 0, 0, 1, 1, 1], np.float32)
    n = len(hit_t)
    values = rng.choice([-1, 1], n) * rng.uniform(0.01, 0.06, n)
    min_sdf = np.where(hit_t >= 0, 0.0, 0.03)
    min_sdf[6] = FAR_SDF
    d = rng.normal(size=(n, 3))
    gd = rng.uniform(-1.0, -0.2, n)
    gd[5] = -0.03  # grazing: |grad f . d| < MIN_GRAD_DOT_DIR
    return {
        "values": values.astype(np.float32),
        "detached": (values + rng.uniform(-0.02, 0.02, n)).astype(np.float32),
        "points": rng.normal(size=(n, 3)).astype(np.float32),
        "dirs": (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32),
        "hit_t": hit_t,
        "min_sdf": min_sdf.astype(np.float32),
        "grad_dot_dir": gd.astype(np.float32),
        "mask": mask,
        "xyz": rng.normal(size=(n, 3)).astype(np.float32),
        "depth": rng.uniform(1.5, 2.5, n).astype(np.float32),
    }


def _ray_loss_launch_args(data, device, alpha, weights, silhouette_mse, point_mse):
    def arr(key, dtype=float, grad=False):
        return wp.array(data[key], dtype=dtype, device=device, requires_grad=grad)

    n = len(data["values"])
    inputs = [
        arr("values", grad=True), arr("detached"), arr("points", wp.vec3), arr("dirs", wp.vec3),
        arr("hit_t"), arr("min_sdf"), arr("grad_dot_dir"), arr("mask"), arr("xyz", wp.vec3),
        arr("depth"),
        wp.array([alpha], dtype=float, device=device),  # a one-entry alpha schedule ...
        wp.zeros(1, dtype=int, device=device),  # ... read at iteration 0
        1.0 / n, *map(float, weights), int(silhouette_mse), int(point_mse),
    ]  # fmt: skip
    outputs = [
        wp.zeros(NUM_TERMS, dtype=float, device=device, requires_grad=True),
        wp.zeros(1, dtype=float, device=device, requires_grad=True),
    ]
    return inputs, outputs


@pytest.mark.parametrize("silhouette_mse", [0, 1], ids=["bce", "mse"])
@pytest.mark.parametrize("point_mse", [0, 1], ids=["l1", "l2"])
def test_ray_loss_kernel_values_and_gradient(device, silhouette_mse, point_mse):
    data = ray_loss_inputs(np.random.default_rng(11))
    alpha, weights = 30.0, (1.0, 0.7, 0.3)
    inputs, outputs = _ray_loss_launch_args(data, device, alpha, weights, silhouette_mse, point_mse)
    wp.launch(ray_loss_kernel, dim=len(data["values"]), inputs=inputs, outputs=outputs)
    terms, loss = ray_loss_numpy(
        *(data[k].astype(np.float64) for k in list(data)), alpha, weights,
        silhouette_mse, point_mse,
    )  # fmt: skip
    np.testing.assert_allclose(outputs[0].numpy(), terms, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(outputs[1].numpy()[0], loss, rtol=1e-5, atol=1e-7)
    assert terms[Term.XYZ] > 0 and terms[Term.DEPTH] > 0 and terms[Term.SILHOUETTE] > 0

    # d terms / d values and d loss / d values by autodiff against central differences
    for out in outputs:
        out.zero_()
    ok = warp.autograd.gradcheck(
        ray_loss_kernel,
        dim=len(data["values"]),
        inputs=inputs,
        outputs=outputs,
        eps=1e-3,
        atol=1e-3,
        rtol=1e-2,
        raise_exception=False,
        input_output_mask=[("values", "terms_out"), ("values", "loss_out")],
        device=device,
    )
    assert ok, "ray_loss_kernel: autodiff and finite differences disagree (table above)"


def test_ray_loss_gradient_with_random_upstream(device):
    """Through evaluate(): a random upstream gradient on every loss term reaches
    the sphere parameters as the chain rule says (float64 reference)."""
    rng = np.random.default_rng(12)
    data = ray_loss_inputs(rng)
    alpha, weights = 30.0, (1.0, 0.7, 0.3)
    inputs, outputs = _ray_loss_launch_args(data, device, alpha, weights, 0, 1)
    values = inputs[0]
    n = len(data["values"])
    # d sum(up * terms) / d values via the tape
    up = rng.normal(size=NUM_TERMS)
    tape = wp.Tape()
    with tape:
        wp.launch(ray_loss_kernel, dim=n, inputs=inputs, outputs=outputs, device=device)
    tape.backward(
        grads={
            outputs[0]: wp.array(up.astype(np.float32), dtype=float, device=device),
            outputs[1]: wp.zeros(1, dtype=float, device=device),
        }
    )
    got = values.grad.numpy().astype(np.float64)

    def upstream(v):
        d = {k: a.astype(np.float64) for k, a in data.items()}
        d["values"] = v
        terms, _ = ray_loss_numpy(*d.values(), alpha, weights, 0, 1)
        return up @ terms

    v0 = data["values"].astype(np.float64)
    h = 1e-7
    want = np.array([(upstream(v0 + h * e) - upstream(v0 - h * e)) / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert got[6] == 0.0  # the ray outside the bound teaches nothing


def eikonal_inputs(rng: np.random.Generator, gradients: np.ndarray) -> np.ndarray:
    """SDF values at the four tetrahedron points around E samples of a locally
    linear field f(x_i + h k) = c_i + h g_i . k (plus a little curvature)."""
    tetra = np.asarray(TETRAHEDRON) * FD_GRADIENT_STEP
    c = rng.uniform(-0.01, 0.01, size=(len(gradients), 1))
    values = c + gradients @ tetra.T + 1e-3 * (tetra**2).sum(axis=1)
    return values.reshape(-1)


def test_eikonal_loss_kernel_values_and_gradient(device):
    rng = np.random.default_rng(13)
    grads = rng.normal(size=(6, 3))
    grads *= rng.uniform(0.4, 1.8, size=(6, 1)) / np.linalg.norm(grads, axis=1, keepdims=True)
    values = eikonal_inputs(rng, grads)
    e = len(grads)
    weight = 0.3
    vals = wp.array(values.astype(np.float32), dtype=float, device=device, requires_grad=True)
    terms = wp.zeros(NUM_TERMS, dtype=float, device=device, requires_grad=True)
    loss = wp.zeros(1, dtype=float, device=device, requires_grad=True)
    wp.launch(eikonal_loss_kernel, dim=e, inputs=[vals, 1.0 / e, weight], outputs=[terms, loss])
    # the tetrahedral difference of a linear field is exact: the term is mean (|g| - 1)^2
    want = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
    assert terms.numpy()[Term.EIKONAL] == pytest.approx(want, rel=1e-3)
    assert loss.numpy()[0] == pytest.approx(weight * want, rel=1e-3)
    assert np.count_nonzero(terms.numpy()) == 1

    terms.zero_()
    loss.zero_()
    # values are ~1e-3 and their differences are divided by 4h = 2e-3: a small
    # step keeps the central difference in its linear range
    ok = warp.autograd.gradcheck(
        eikonal_loss_kernel,
        dim=e,
        inputs=[vals, 1.0 / e, weight],
        outputs=[terms, loss],
        eps=1e-5,
        atol=1e-2,
        rtol=1e-2,
        raise_exception=False,
        input_output_mask=[("values", "terms_out"), ("values", "loss_out")],
        device=device,
    )
    assert ok, "eikonal_loss_kernel: autodiff and finite differences disagree (table above)"


# ---------------------------------------------------------------------------
# A whole small render: directional derivative of Fitter.loss
# ---------------------------------------------------------------------------

TINY_FIT = (
    "cameras.resolution=[12, 12]",
    "cameras.jitter=0.0",
    "model.hidden=8",
    "model.fourier_frequencies=1",
    "optim.eikonal_samples=16",
)

# Two spheres inside the targets' two balls (centres (-0.35, 0, 0) r 0.3 and
# (0.4, 0.1, 0) r 0.25), so the prediction's silhouette lies inside the target's
# in every view.
SPHERES_INSIDE = np.array([-0.36, -0.02, 0.03, 0.22, 0.37, 0.12, 0.01, 0.17], np.float32)


def convex_mlp(layers: int, center=(-0.35, 0.0, 0.0), radius=0.2, noise=0.02, seed=0):
    """A width-8, one-frequency MLP that is a rounded convex polyhedron inside
    the targets' left ball: f(x) = c sum_j softplus(w_j . (x - center)) - radius
    with w_j the 8 cube diagonals (|grad f| in [0.83, 0.96], so sphere tracing
    never overshoots), identity hidden layers, and a little noise on every
    weight (Fourier weights included) so that every parameter matters."""
    width, frequencies = 8, 1
    rng = np.random.default_rng(seed)
    dirs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)
    w0 = np.zeros((width, num_inputs(frequencies)))
    w0[:, :3] = dirs
    chunks = [(w0 + noise * rng.normal(size=w0.shape)).ravel(), -dirs @ np.asarray(center)]
    for _ in range(layers - 1):
        chunks += [(np.eye(width) + noise * rng.normal(size=(width, width))).ravel()]
        chunks += [np.zeros(width)]
    chunks += [1 / 2.4 + noise * rng.normal(size=width), [-radius]]
    return np.concatenate(chunks).astype(np.float32)


@dataclass(frozen=True)
class RenderScenario:
    """One directional gradient check of a whole render (Mitsuba style)."""

    name: str
    scene: str
    overrides: tuple[str, ...]
    params: Callable[[], np.ndarray]
    eps: float  # parameter step of the central difference
    # |<grad L, v> - FD| <= tol * rms(grad L), rms = |grad L| / sqrt(P): the
    # typical size of a directional derivative along a random unit v. Scenarios
    # with a silhouette term measure 0.05-0.15 whatever eps (a systematic error,
    # not noise), those without one below 0.02.
    tol: float
    why: str


RENDER_SCENARIOS = [
    RenderScenario(
        "spheres-silhouette",
        "two_spheres_silhouette.toml",
        (),
        lambda: SPHERES_INSIDE,
        eps=3e-4,
        tol=0.25,
        why="silhouettes move: the soft mask uses the least SDF among the marcher's "
        "samples, which move with the parameters too (about 10% of rms measured)",
    ),
    RenderScenario(
        "spheres-xyz",
        "two_spheres_xyz.toml",
        ('model.kind="spheres"', 'model.init="grid"', "model.smooth_k=0.05"),
        lambda: SPHERES_INSIDE,
        eps=3e-4,
        tol=0.25,
        why="xyz on hit rays (implicit hit point: exact) plus silhouettes that move",
    ),
    RenderScenario(
        "spheres-xyz-smooth",
        "two_spheres_xyz.toml",
        (
            'model.kind="spheres"',
            'model.init="grid"',
            "model.smooth_k=0.05",
            'supervision.mode=["xyz", "silhouette"]',
            "supervision.weights={xyz = 1.0, silhouette = 0.0}",
        ),
        lambda: SPHERES_INSIDE,
        eps=3e-4,
        tol=0.03,
        why="no silhouette term: implicit hit points and the eikonal term, both smooth",
    ),
    RenderScenario(
        "mlp-xyz",
        "two_spheres_xyz.toml",
        ("model.layers=1",),
        lambda: convex_mlp(1),
        eps=1e-3,
        tol=0.25,
        why="xyz, eikonal and moving silhouettes (least-SDF samples move)",
    ),
    RenderScenario(
        "mlp-xyz-smooth",
        "two_spheres_xyz.toml",
        (
            "model.layers=3",
            'supervision.mode=["xyz", "silhouette"]',
            "supervision.weights={xyz = 1.0, silhouette = 0.0}",
        ),
        lambda: convex_mlp(3),
        eps=4e-3,
        tol=0.05,
        why="implicit hit points (exact to 1e-3) and the eikonal term, whose float32 values "
        "divided by 4h = 2e-3 make the difference noisy below eps ~ 3e-3 (2% measured)",
    ),
    RenderScenario(
        "mlp-silhouette",
        "two_spheres_silhouette.toml",
        ('model.kind="mlp"', 'model.init="sphere"', "model.layers=3"),
        lambda: convex_mlp(3),
        eps=3e-4,
        tol=0.25,
        why="8 views of moving silhouettes (least-SDF samples move)",
    ),
]


def _directional_check(fitter: Fitter, alpha: float, eps: float, seeds=range(4)):
    """(grad L . v, (L(θ+εv) - L(θ-εv)) / 2ε) for random unit v, the rms of
    grad L, and how many rays changed hit/miss under the steps."""
    fitter.draw()
    fitter.loss(alpha)
    grad = fitter.field.params.grad.numpy().astype(np.float64).copy()
    theta = fitter.field.params.numpy().copy()
    hits = fitter._hits.hit_t.numpy() >= 0
    results, switched = [], 0
    for seed in seeds:
        v = unit(np.random.default_rng(1000 + seed).normal(size=theta.shape))
        losses = []
        for sign in (1, -1):
            fitter.field.params.assign((theta + sign * eps * v).astype(np.float32))
            losses.append(fitter.loss(alpha, backward=False))
            switched += int(np.sum((fitter._hits.hit_t.numpy() >= 0) != hits))
        results.append((grad @ v, (losses[0] - losses[1]) / (2 * eps)))
    fitter.field.params.assign(theta)
    return grad, np.array(results), switched


@pytest.mark.parametrize("sc", RENDER_SCENARIOS, ids=lambda s: s.name)
def test_render_loss_directional_derivative(device, sc: RenderScenario):
    scene = load_scene(SCENES / sc.scene, [*TINY_FIT, *sc.overrides])
    fitter = Fitter(scene, device)
    fitter.field.params.assign(sc.params())
    alpha = 100.0
    fitter.draw()
    fitter.loss(alpha)

    # The scenario is what it claims: the IDR soft mask's gradient on rays that
    # the prediction hits but the target misses is a surrogate (the loss is flat
    # there: f = 0 at a hit), and the loss clamps grazing slopes; neither occurs.
    hit = fitter._hits.hit_t.numpy() >= 0
    on_object = fitter._mask.numpy() > 0.5
    assert not np.any(hit & ~on_object), "prediction must lie inside the target"
    assert np.all(fitter._hits.grad_dot_dir.numpy()[hit] <= -MIN_GRAD_DOT_DIR), "grazing hit"
    assert np.abs(fitter._detached.numpy()[hit]).max() < 1e-5, "hits must lie on the surface"
    assert np.any(hit & on_object) and np.any(~hit & on_object)

    grad, results, switched = _directional_check(fitter, alpha, sc.eps)
    rms = np.linalg.norm(grad) / np.sqrt(grad.size)
    errors = np.abs(results[:, 0] - results[:, 1]) / rms
    assert switched == 0, f"{sc.name}: eps {sc.eps} flips {switched} rays between hit and miss"
    assert errors.max() <= sc.tol, (
        f"{sc.name}: <grad L, v> vs central difference (columns) {results.tolist()}; "
        f"errors {errors.round(3).tolist()} x rms {rms:.3g} exceed {sc.tol} ({sc.why})"
    )


@pytest.mark.parametrize(
    ("scene_file", "overrides"),
    [
        ("two_spheres_silhouette.toml", ()),
        ("two_spheres_xyz.toml", ("model.layers=3",)),
        ("two_spheres_silhouette.toml", ('model.kind="mlp"', 'model.init="sphere"')),
    ],
    ids=["spheres", "mlp-xyz", "mlp-silhouette"],
)
def test_render_gradient_reaches_every_parameter_group(device, scene_file, overrides):
    """From the scene's own initial state, the loss gradient reaches sphere
    centres and radii, and every MLP layer's weights and biases."""
    scene = load_scene(SCENES / scene_file, [*TINY_FIT, *overrides])
    fitter = Fitter(scene, device)
    fitter.draw()
    loss = fitter.loss(float(scene.optim.mask_alpha[0]))
    assert np.isfinite(loss) and loss > 0
    grad = fitter.field.params.grad.numpy()
    assert np.isfinite(grad).all()
    m = scene.model
    if m.kind.value == "spheres":
        per_sphere = np.abs(grad.reshape(-1, SPHERE_RECORD))
        assert np.all(per_sphere[:, :3].max(axis=1) > 0), "a sphere centre gets no gradient"
        assert np.all(per_sphere[:, 3] > 0), "a radius gets no gradient"
    else:
        for name, index in mlp_groups(m.fourier_frequencies, m.hidden, m.layers).items():
            assert np.abs(grad[index]).max() > 0, f"no gradient reaches {name}"
