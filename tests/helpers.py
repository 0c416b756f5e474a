"""Helpers that several test files share; a file's own helpers stay in it.

* Field checks (``test_fields``, ``test_mlp``): the spatial gradient a field's
  kernels compute, the parameter gradient through
  :func:`warpsdf.fields.base.evaluate` on a tape, Warp's float32 forward pass
  as a weighted sum, random points in a ball, and the MLP's parameter groups.
* Spheres and their exact hits (``test_march``, ``test_render``,
  ``test_targets``): scene specs of a few spheres, the closed-form ray–sphere
  intersection, the back-wall scene, and the hit tolerances.
* The tiny run (``test_fit_run``, ``test_optim``): a shipped scene shrunk to
  12x12 pixels and a width-8 MLP.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import warp as wp

from tests.conftest import SCENES
from warpsdf.camera import Camera
from warpsdf.fields.base import Field, evaluate
from warpsdf.fields.mlp_core import (
    SIREN_OMEGA0,
    SOFTPLUS_BETA,
    ActivationCode,
    num_inputs,
    num_params,
)
from warpsdf.scene import ShapeSpec, ShapeType, load_scene

# ---------------------------------------------------------------------------
# Field checks
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


def random_points(rng: np.random.Generator, n: int, radius: float = 0.9) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v * radius * rng.uniform(0.05, 1.0, size=(n, 1)) ** (1.0 / 3.0)


def mlp_numpy(params, frequencies: int, width: int, layers: int, x: np.ndarray,
              activation: ActivationCode = ActivationCode.SOFTPLUS) -> np.ndarray:  # fmt: skip
    """Slow reference of the MLP (module docstring of warpsdf.fields.mlp_core),
    float64, with either activation."""
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
        z = a @ w.T + b
        if ActivationCode(activation) is ActivationCode.SINE:
            a = np.sin(SIREN_OMEGA0 * z)
        else:
            a = np.logaddexp(0.0, SOFTPLUS_BETA * z) / SOFTPLUS_BETA
        fan_in = width
    assert offset + width + 1 == p.size
    return a @ p[offset : offset + width] + p[offset + width]


def central_differences(loss, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The gradient of a float64 ``loss(theta)`` by central differences, one
    parameter at a time (effectively exact for the float64 references)."""
    theta = np.asarray(theta, np.float64)
    out = np.empty_like(theta)
    for j in range(theta.size):
        tp, tm = theta.copy(), theta.copy()
        tp[j] += h
        tm[j] -= h
        out[j] = (loss(tp) - loss(tm)) / (2 * h)
    return out


def mlp_param_grad_numpy(
    params, dims: tuple[int, int, int], x: np.ndarray, adj: np.ndarray,
    activation: ActivationCode = ActivationCode.SOFTPLUS,
) -> np.ndarray:  # fmt: skip
    """d sum_i adj_i f(x_i) / d params of the float64 reference (:func:`mlp_numpy`).
    ``dims``: (frequencies, width, layers)."""
    return central_differences(lambda p: adj @ mlp_numpy(p, *dims, x, activation), params)


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


# ---------------------------------------------------------------------------
# Exact sphere hits
# ---------------------------------------------------------------------------

# Tolerances per output (world units). The marcher polishes hits with Newton
# steps, so hit points are far tighter than hit_epsilon; 2e-3 leaves room for
# float32.
XYZ_TOL = 2e-3
DEPTH_TOL = 2e-3

TWO_SPHERES = (((-0.35, 0.0, 0.0), 0.3), ((0.4, 0.1, 0.0), 0.25))


def sphere_specs(spheres) -> list[ShapeSpec]:
    return [ShapeSpec(type=ShapeType.SPHERE, center=c, radius=r) for c, r in spheres]


def exact_hits(origins: np.ndarray, dirs: np.ndarray, spheres) -> dict[str, np.ndarray]:
    """Closed-form nearest ray–sphere intersection (float64) for a union of spheres.

    Returns t (inf for a miss), the sphere index hit (-1), and ``graze``: True
    where the ray passes within ``2e-3`` of a sphere's surface before (or
    without) its first hit -- the silhouette rays, where sphere tracing with
    hit_epsilon may legitimately stop on the grazed sphere.
    """
    o = np.asarray(origins, np.float64)
    d = np.asarray(dirs, np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    t_best = np.full(len(o), np.inf)
    which = np.full(len(o), -1)
    closest = []
    for k, (c, r) in enumerate(spheres):
        oc = o - np.asarray(c, np.float64)
        b = (oc * d).sum(1)
        disc = b * b - ((oc * oc).sum(1) - r * r)
        s = np.sqrt(np.maximum(disc, 0.0))
        t0, t1 = -b - s, -b + s
        t = np.where(t0 > 0, t0, t1)
        t = np.where((disc >= 0) & (t > 0), t, np.inf)
        better = t < t_best
        t_best = np.where(better, t, t_best)
        which = np.where(better, k, which)
        gap = np.linalg.norm(oc + b[:, None] * d, axis=1) - r  # closest approach - radius
        closest.append((-b, gap))
    graze = np.zeros(len(o), bool)
    for t_close, gap in closest:
        graze |= (np.abs(gap) < 2e-3) & (t_close <= t_best + 1e-9)
    return {"t": t_best, "which": which, "graze": graze}


# A small sphere inside the unit bound, and a large one wholly outside it behind.
BACK_WALL_SPHERES = (((0.0, 0.0, 0.0), 0.3), ((0.0, 0.0, -2.2), 1.0))
BACK_WALL_EYE = (0.0, 0.0, 2.5)


def back_wall_pixels(cam: Camera) -> dict[str, np.ndarray]:
    """Per pixel: exact hits of each sphere alone, and which pixels see only the far one."""
    origins, dirs = cam.rays()
    near = exact_hits(origins, dirs, BACK_WALL_SPHERES[:1])
    far = exact_hits(origins, dirs, BACK_WALL_SPHERES[1:])
    both = exact_hits(origins, dirs, BACK_WALL_SPHERES)
    only_far = ~np.isfinite(near["t"]) & np.isfinite(far["t"])
    return {"near": near, "far": far, "only_far": only_far, "graze": both["graze"]}


# ---------------------------------------------------------------------------
# The tiny run
# ---------------------------------------------------------------------------

# The CLI as a real process (for signals, exit codes and what reaches stderr).
WARPSDF_COMMAND = (sys.executable, "-c", "from warpsdf.cli.main import app; app()")

SPHERES_SCENE = SCENES / "two_spheres_silhouette.toml"
# 12x12 pixels, a width-8 MLP, short marches and small outputs (the step-loop
# tests keep the default snapshot and checkpoint boundaries: TINY_STEP)
TINY_STEP = (
    "cameras.resolution=[12, 12]",
    "model.hidden=8",
    "model.fourier_frequencies=1",
    "march.max_steps=24",
    "output.mesh_resolution=16",
    "output.heldout_views=2",
    "optim.eikonal_samples=16",
)
TINY = (
    *TINY_STEP,
    "output.final_scale=2",
    "output.snapshot_every=2",
    "output.checkpoint_every=3",
)


def tiny_scene(path: Path = SPHERES_SCENE, *extra: str):
    """The scene file with TINY and then ``extra`` applied as overrides."""
    return load_scene(path, [*TINY, *extra])


def write_small_image_folder(folder: Path) -> Path:
    """A valid three-camera image folder of small views (no Warp: the images
    are drawn) in ``folder``; returns its cameras.json."""
    from warpsdf.targets import write_image_views
    from warpsdf.targets.views import TargetView

    views = []
    for k, eye in enumerate([(0.0, 0.0, 2.5), (2.5, 0.0, 0.0), (0.0, 1.0, 2.0)]):
        cam = Camera(eye, width=12 + k, height=10)
        mask = np.zeros((10, 12 + k), bool)
        mask[3:7, 4:8] = True
        xyz = np.where(mask[..., None], np.float32([0.25, -0.5, 0.75]), np.float32(0))
        depth = np.where(mask, 2.0, np.inf).astype(np.float32)
        views.append(TargetView(cam, mask, xyz, depth))
    return write_image_views(views, folder)
