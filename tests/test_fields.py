"""Field values and gradients against slow references and finite differences
(STYLE "Tests, in layers" 1 and 2).

* The sphere set against a numpy log-sum-exp smooth minimum: values, packing,
  the spatial gradient, and the parameter backward behind
  :func:`warpsdf.fields.base.evaluate` with a random upstream gradient (never
  only ``sum()``) against the closed form and central differences.
* A whole small render through :class:`warpsdf.fit.Fitter`: a directional
  check of the loss gradient for sphere sets and MLPs, and the gradient
  reaching every parameter group from a scene's initial state.

The MLP field is tests/test_mlp.py's subject, the loss kernels
tests/test_losses.py's; analytic shapes are checked in tests/test_march.py.

Tolerances are per output and per scenario (Mitsuba style): float64
references are held tightly; float32 finite differences of Warp's own forward
pass are held to what float32 allows; whole renders whose silhouettes move are
held more loosely, and say why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tests.conftest import SCENES
from tests.helpers import mlp_groups, param_grad, random_points, spatial_grad, unit, weighted_sum
from warpsdf.fields.mlp_core import num_inputs
from warpsdf.fields.spheres import SPHERE_RECORD, SphereSetField
from warpsdf.fit import Fitter
from warpsdf.losses import MIN_GRAD_DOT_DIR
from warpsdf.march import Polish, polish_for
from warpsdf.scene import load_scene

# ---------------------------------------------------------------------------
# Helpers: slow numpy references
# ---------------------------------------------------------------------------


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
    hits = fitter.buffers.hits.hit_t.numpy() >= 0
    results, switched = [], 0
    for seed in seeds:
        v = unit(np.random.default_rng(1000 + seed).normal(size=theta.shape))
        losses = []
        for sign in (1, -1):
            fitter.field.params.assign((theta + sign * eps * v).astype(np.float32))
            losses.append(fitter.loss(alpha, backward=False))
            switched += int(np.sum((fitter.buffers.hits.hit_t.numpy() >= 0) != hits))
        results.append((grad @ v, (losses[0] - losses[1]) / (2 * eps)))
    fitter.field.params.assign(theta)
    return grad, np.array(results), switched


@pytest.mark.parametrize("sc", RENDER_SCENARIOS, ids=lambda s: s.name)
def test_render_loss_directional_derivative(device, sc: RenderScenario):
    scene = load_scene(SCENES / sc.scene, [*TINY_FIT, *sc.overrides])
    fitter = Fitter.from_scene(scene, device)
    fitter.field.params.assign(sc.params())
    alpha = 100.0
    fitter.draw()
    fitter.loss(alpha)

    # The scenario is what it claims: the IDR soft mask's gradient on rays that
    # the prediction hits but the target misses is a surrogate (the loss is flat
    # there: f = 0 at a hit), and the loss clamps grazing slopes; neither occurs.
    hit = fitter.buffers.hits.hit_t.numpy() >= 0
    on_object = fitter.inputs.mask.numpy() > 0.5
    assert not np.any(hit & ~on_object), "prediction must lie inside the target"
    grad_dot_dir = fitter.buffers.hits.grad_dot_dir.numpy()
    if polish_for(scene.supervision) is Polish.NEWTON:  # the xyz term reads exact hit points
        assert np.all(grad_dot_dir[hit] <= -MIN_GRAD_DOT_DIR), "grazing hit"
        assert np.abs(fitter.buffers.detached.numpy()[hit]).max() < 1e-5, "hits on the surface"
    else:  # silhouette only: hits inside the target add nothing, unpolished
        assert (grad_dot_dir == 0.0).all()
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
    fitter = Fitter.from_scene(scene, device)
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
