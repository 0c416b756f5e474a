"""Gradients through every march step (``march.gradient = "unrolled"``, the
naive differentiable marcher of the missing-back-wall study, issue 13).

The end distance of a ray is t_K = t_0 + sum_k f(x_k; theta); the reverse
sweep (:func:`warpsdf.unrolled.unrolled_backward`) must give its exact derivative,
checked here against central differences of whole marches, for a field whose
spatial gradient is closed-form (the sphere set) and for the MLP on both sets of
kernels (finite-difference spatial gradient, tiled backward)."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.conftest import SCENES, cli
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import random_init
from warpsdf.fields.spheres import SphereSetField
from warpsdf.fit import Fitter
from warpsdf.march import Polish, UnrolledSteps, march, polish_for
from warpsdf.scene import MarchConfig, MarchGradient, MLPKernels, SupervisionConfig, load_scene
from warpsdf.unrolled import record_unrolled, unrolled_backward

NOCLIP = SCENES / "two_spheres_xyz_noclip.toml"


def camera_rays(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rays from points 2.5 from the origin towards points near it."""
    origins = rng.normal(size=(n, 3))
    origins *= 2.5 / np.linalg.norm(origins, axis=1, keepdims=True)
    aims = rng.uniform(-0.6, 0.6, size=(n, 3))
    dirs = aims - origins
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return origins.astype(np.float32), dirs.astype(np.float32)


def recorded_march(field, origins, dirs, config: MarchConfig):
    """An unrolled march of the rays: (directions on the device, its
    UnrolledSteps, its RayHits)."""
    o = wp.array(origins, dtype=wp.vec3, device=field.device)
    d = wp.array(dirs, dtype=wp.vec3, device=field.device)
    steps = UnrolledSteps.allocate(len(origins), config.max_steps, field.device)
    return d, steps, march(field, o, d, config, polish=Polish.NONE, steps=steps)


def end_distances(field, origins, dirs, config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each ray's end distance (unpolished march), and its hit flag and sample count."""
    _d, steps, hits = recorded_march(field, origins, dirs, config)
    t = np.einsum("ij,ij->i", hits.points.numpy() - origins, dirs).astype(np.float64)
    return t, hits.hit_t.numpy() >= 0.0, steps.count.numpy()


def check_unrolled_gradient(field, config: MarchConfig, seed: int, rays: int = 24) -> None:
    """d t_K(r) / d theta along a random direction, ray by ray: the reverse
    sweep (one backward per ray, its adjoint 1) against central differences of
    two whole marches. Rays whose hit or sample count differs between the
    marches (a discrete change) are left out. Ray by ray, because an unrolled
    march amplifies a step's change by each later (1 + grad f . d): a few rays
    have large, strongly curved end distances that would swamp a sum."""
    rng = np.random.default_rng(seed)
    origins, dirs = camera_rays(rng, rays)
    theta = field.params.numpy().astype(np.float64)
    direction = rng.normal(size=theta.size)
    direction /= np.linalg.norm(direction)
    eps = 1e-3

    def at(params):
        field.params.assign(params.astype(np.float32))
        return end_distances(field, origins, dirs, config)

    t_plus, hit_plus, n_plus = at(theta + eps * direction)
    t_minus, hit_minus, n_minus = at(theta - eps * direction)
    _t0, hit0, n0 = at(theta)
    stable = (hit_plus == hit0) & (hit_minus == hit0) & (n_plus == n0) & (n_minus == n0)
    summed = stable & (n0 > 0)
    assert summed.sum() >= 8, "too few rays with a smooth end distance"
    want = (t_plus - t_minus)[summed] / (2.0 * eps)

    # the march again at theta, recording its samples, then a sweep per ray
    d, steps, _hits = recorded_march(field, origins, dirs, config)
    got = []
    for r in np.flatnonzero(summed):
        field.params.grad.zero_()
        adj = wp.array(np.eye(rays, dtype=np.float32)[r], dtype=float, device=field.device)
        unrolled_backward(field, d, steps, adj)
        got.append(field.params.grad.numpy().astype(np.float64) @ direction)
    assert np.abs(want).max() > 0.05, "the check needs derivatives away from 0"
    np.testing.assert_allclose(got, want, rtol=5e-2, atol=1e-2)


def test_unrolled_gradient_spheres(device):
    """A sphere set (closed-form spatial gradient): rays that hit and rays that
    run out of steps in the bound."""
    rng = np.random.default_rng(1)
    field = SphereSetField(
        rng.uniform(-0.2, 0.2, size=(3, 3)), rng.uniform(0.3, 0.45, 3), 0.05, device=device
    )
    for max_steps in (4, 40):  # most rays out of steps; most hit
        config = MarchConfig(max_steps=max_steps, clip_back=False)
        check_unrolled_gradient(field, config, seed=max_steps)


@pytest.mark.parametrize("kernels", [MLPKernels.SCALAR, MLPKernels.TILED])
def test_unrolled_gradient_mlp(device, kernels):
    """The MLP without geometric initialisation (surfaces anywhere), on both
    sets of kernels: the spatial gradient of the sweep is the tetrahedral
    difference, the parameter backward the kernels' own."""
    rng = np.random.default_rng(2)
    params = random_init(2, 16, 2, rng)
    params[-1] += 0.9  # output bias: positive and negative regions in the bound, not all inside
    field = MLPField(params, 2, 16, 2, device=device, kernels=kernels)
    check_unrolled_gradient(field, MarchConfig(max_steps=6, clip_back=False), seed=3)


def test_sweep_weights_follow_the_recurrence(device):
    """The sweep's per-sample adjoints: the last summed sample gets the end's
    adjoint, each earlier one that times (1 + grad f . d) of the samples after
    it; entries past a ray's count are 0."""
    rng = np.random.default_rng(4)
    centers, radii = np.array([[0.1, 0.0, 0.0]]), np.array([0.4])
    field = SphereSetField(centers, radii, 0.0, device=device)
    origins, dirs = camera_rays(rng, 16)
    config = MarchConfig(max_steps=8)
    d, steps, _hits = recorded_march(field, origins, dirs, config)
    adj = rng.uniform(0.5, 2.0, 16)
    field.params.grad.zero_()
    unrolled_backward(field, d, steps, wp.array(adj.astype(np.float32), dtype=float, device=device))
    weights = steps.weights.numpy().reshape(16, 8)
    points = steps.points.numpy().reshape(16, 8, 3)
    counts = steps.count.numpy()
    assert counts.max() > 1
    for r in range(16):
        a = adj[r]
        for k in reversed(range(counts[r])):
            assert weights[r, k] == pytest.approx(a, rel=1e-4, abs=1e-6)
            g = points[r, k] - centers[0]
            a *= 1.0 + (g / np.linalg.norm(g)) @ dirs[r]
        assert not weights[r, counts[r] :].any()


def test_unrolled_march_is_not_polished():
    sup = SupervisionConfig(mode=("xyz",))
    assert polish_for(sup) is Polish.NEWTON
    assert polish_for(sup, MarchGradient.UNROLLED) is Polish.NONE


def test_unrolled_fit_trains_through_misses(device):
    """One step of the noclip scene with gradients through every step, from a
    small sphere (so most rays miss): rays the prediction misses (their march
    went on past the open back wall) give the field a gradient at the samples
    they stepped on; with implicit gradients they give none."""
    small = (
        "cameras.resolution=[12, 12]", "optim.batch_rays=0", "optim.eikonal_weight=0",
        "model.init=sphere", "model.init_radius=0.3", "model.activation=softplus",
        "model.fourier_frequencies=6",
    )  # fmt: skip
    grads = {}
    for mode in ("implicit", "unrolled"):
        scene = load_scene(NOCLIP, [*small, "supervision.mode=['xyz']", f"march.gradient={mode}"])
        fitter = Fitter.from_scene(scene, device)
        fitter.steps(1)
        misses = fitter.buffers.hits.hit_t.numpy() < 0.0
        assert misses.any()
        grads[mode] = fitter.field.params.grad.numpy().copy()
        if mode == "unrolled":
            weights = fitter.buffers.unrolled.weights.numpy().reshape(misses.size, -1)
            assert np.abs(weights[misses]).sum() > 0.0
    assert np.abs(grads["unrolled"]).sum() > 0.0
    assert not np.allclose(grads["unrolled"], grads["implicit"])


@wp.kernel
def weighted_end_kernel(
    end_dt: wp.array(dtype=float),  # (R,) on the tape
    adj: wp.array(dtype=float),  # (R,) constants
    loss: wp.array(dtype=float),  # (1,)
):
    r = wp.tid()
    wp.atomic_add(loss, 0, adj[r] * end_dt[r])


def test_record_unrolled_on_a_tape(device):
    """record_unrolled's value is 0 and its gradient, through a loss recorded
    after it on the same tape, is the reverse sweep's."""
    rng = np.random.default_rng(6)
    field = SphereSetField(
        rng.uniform(-0.2, 0.2, (2, 3)), np.array([0.3, 0.4]), 0.05, device=device
    )
    origins, dirs = camera_rays(rng, 16)
    config = MarchConfig(max_steps=12, clip_back=False)
    d, steps, _hits = recorded_march(field, origins, dirs, config)
    adj = wp.array(rng.normal(size=16).astype(np.float32), dtype=float, device=device)
    end_dt = wp.full(16, 5.0, dtype=float, device=device, requires_grad=True)
    loss = wp.zeros(1, dtype=float, device=device, requires_grad=True)
    tape = wp.Tape()
    field.params.grad.zero_()
    with tape:
        record_unrolled(field, d, steps, end_dt, tape)
        wp.launch(weighted_end_kernel, dim=16, inputs=[end_dt, adj], outputs=[loss], device=device)
    assert not end_dt.numpy().any() and loss.numpy()[0] == 0.0
    tape.backward(loss=loss)
    got = field.params.grad.numpy().copy()
    field.params.grad.zero_()
    unrolled_backward(field, d, steps, adj)
    np.testing.assert_allclose(got, field.params.grad.numpy(), rtol=1e-6)
    assert np.abs(got).sum() > 0.0


def test_unrolled_samples_are_a_checked_size(tmp_path):
    """Keeping every sample of every ray is a size of its own: past the memory
    budget the scene is refused in one line naming march.max_steps (exit 2),
    before anything is allocated."""
    too_many = (
        "--set", "march.gradient=unrolled", "--set", "march.max_steps=65536",
        "--set", "optim.batch_rays=0", "--set", "cameras.resolution=[4096, 4096]",
    )  # fmt: skip
    result = cli("validate", NOCLIP, *too_many)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "march.max_steps" in line and "unrolled" in line and "noclip" in line
    assert cli("validate", NOCLIP, "--set", "march.gradient=unrolled").exit_code == 0


def test_unrolled_sweep_with_thread_blocks(device, request):
    """The recording march and the reverse sweep in lockstep: the tiled MLP in
    blocks of 4 (on a GPU: its default block) keeps the same samples and gives
    the same gradient as one ray a block, with a partial last block."""
    if not wp.get_device(device).is_cuda:
        request.getfixturevalue("cpu_blocks")
    rng = np.random.default_rng(8)
    params = random_init(1, 16, 2, rng)
    params[-1] += 0.9
    origins, dirs = camera_rays(rng, 19)  # 4 blocks of 4 and a partial one
    config = MarchConfig(max_steps=10, clip_back=False)
    adj = wp.array(rng.normal(size=19).astype(np.float32), dtype=float, device=device)
    results = []
    for block_dim in (1, None if wp.get_device(device).is_cuda else 4):
        field = MLPField(params, 1, 16, 2, device=device, kernels=MLPKernels.TILED,
                         block_dim=block_dim)  # fmt: skip
        d, steps, _hits = recorded_march(field, origins, dirs, config)
        field.params.grad.zero_()
        unrolled_backward(field, d, steps, adj)
        results.append((steps.count.numpy(), steps.points.numpy(), field.params.grad.numpy()))
    (count1, points1, grad1), (count4, points4, grad4) = results
    np.testing.assert_array_equal(count1, count4)
    assert count1.max() > 1
    for r in range(19):  # the samples each ray sums
        n = count1[r]
        np.testing.assert_allclose(points4[r * 10 : r * 10 + n], points1[r * 10 : r * 10 + n],
                                   atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(grad4, grad1, rtol=0, atol=1e-4 * np.abs(grad1).max())


def test_unrolled_needs_a_term_that_reads_end_points():
    """A silhouette-only fit never reads where a ray ended: an unrolled march
    there would train nothing, and the scene is refused in one line."""
    sets = ("march.gradient=unrolled", "supervision.mode=['silhouette']",
            "supervision.background=none", "supervision.weights={silhouette = 1.0}")  # fmt: skip
    result = cli("validate", NOCLIP, *(a for s in sets for a in ("--set", s)))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "march.gradient" in line and "xyz or depth" in line
