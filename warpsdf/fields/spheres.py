"""Sphere-set field: f(x) = smooth-min_i (|x - c_i| - r_i).

params = [c_0x, c_0y, c_0z, r_0, c_1x, ...] (4 floats per sphere, world units);
meta = [count, k]. The smooth minimum is the log-sum-exp one,
``-k log sum_i exp(-d_i / k)``, symmetric in the spheres, with a closed-form
gradient (softmax weights); k = 0 is the hard minimum.
"""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpsdf.fields.base import Field, FieldFunctions
from warpsdf.sampling import random_in_ball

SPHERE_RECORD = 4
_EPS = 1.0e-9


@wp.func
def sphere_distance(params: wp.array(dtype=float), s: int, x: wp.vec3) -> float:
    o = s * SPHERE_RECORD
    return wp.length(x - wp.vec3(params[o], params[o + 1], params[o + 2])) - params[o + 3]


@wp.func
def min_sphere_distance(params: wp.array(dtype=float), n: int, x: wp.vec3) -> float:
    m = float(1.0e30)
    for s in range(n):
        m = wp.min(m, sphere_distance(params, s, x))
    return m


@wp.func
def _softmax_total(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                   m: float) -> float:  # fmt: skip
    k = meta[1]
    total = float(0.0)
    if k > 0.0:
        for s in range(int(meta[0])):
            total += wp.exp(-(sphere_distance(params, s, x) - m) / k)
    return total


@wp.func
def sdf_spheres(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """Smooth minimum of the sphere distances (world units)."""
    n = int(meta[0])
    k = meta[1]
    m = min_sphere_distance(params, n, x)
    if k <= 0.0:
        return m
    return m - k * wp.log(_softmax_total(params, meta, x, m))


@wp.func
def sphere_weight(params: wp.array(dtype=float), meta: wp.array(dtype=float), s: int, x: wp.vec3,
                  m: float, total: float) -> float:  # fmt: skip
    """d f / d d_s: the softmax weight of sphere s (one-hot on the nearest for k = 0)."""
    k = meta[1]
    d = sphere_distance(params, s, x)
    if k <= 0.0:
        return wp.where(d == m, 1.0, 0.0)
    return wp.exp(-(d - m) / k) / total


@wp.func
def grad_spheres(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> wp.vec3:
    """Spatial gradient: sum_s w_s (x - c_s) / |x - c_s|."""
    n = int(meta[0])
    m = min_sphere_distance(params, n, x)
    total = _softmax_total(params, meta, x, m)
    g = wp.vec3(0.0)
    for s in range(n):
        o = s * SPHERE_RECORD
        rel = x - wp.vec3(params[o], params[o + 1], params[o + 2])
        w = sphere_weight(params, meta, s, x, m, total)
        g += rel * (w / wp.max(wp.length(rel), _EPS))
    return g


@wp.func
def backward_spheres(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                     adj: float, grad_params: wp.array(dtype=float)):  # fmt: skip
    """grad c_s += -adj w_s (x - c_s) / |x - c_s|; grad r_s += -adj w_s."""
    n = int(meta[0])
    m = min_sphere_distance(params, n, x)
    total = _softmax_total(params, meta, x, m)
    for s in range(n):
        o = s * SPHERE_RECORD
        w = sphere_weight(params, meta, s, x, m, total)
        if w > 0.0:
            rel = x - wp.vec3(params[o], params[o + 1], params[o + 2])
            u = rel / wp.max(wp.length(rel), _EPS)
            wp.atomic_add(grad_params, o, -adj * w * u[0])
            wp.atomic_add(grad_params, o + 1, -adj * w * u[1])
            wp.atomic_add(grad_params, o + 2, -adj * w * u[2])
            wp.atomic_add(grad_params, o + 3, -adj * w)


SPHERES_FUNCTIONS = FieldFunctions(
    "spheres", sdf_spheres, grad_spheres, backward_spheres, grad_cost=2
)


def grid_centers(count: int, half_extent: float) -> np.ndarray:
    """``count`` centres on a regular lattice filling [-half_extent, half_extent]^3,
    filled along X first (2 spheres sit at -x and +x)."""
    nx = math.ceil(count ** (1.0 / 3.0) - 1e-9)
    ny = math.ceil(math.sqrt(count / nx) - 1e-9)
    nz = math.ceil(count / (nx * ny))

    def axis(n: int) -> np.ndarray:
        return (np.arange(n) + 0.5) / n * 2.0 * half_extent - half_extent

    grid = np.stack(np.meshgrid(axis(nx), axis(ny), axis(nz), indexing="ij"), -1).reshape(-1, 3)
    order = np.lexsort((grid[:, 0], grid[:, 1], grid[:, 2]))
    return grid[order][:count]


def random_centers(count: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` centres uniform in the ball of ``radius``."""
    return random_in_ball(rng, count, radius)


class SphereSetField(Field):
    """A set of spheres; ``params`` requires grad so it can be fitted."""

    functions = SPHERES_FUNCTIONS

    def __init__(self, centers: np.ndarray, radii: np.ndarray, smooth_k: float, device=None):
        centers = np.asarray(centers, np.float32).reshape(-1, 3)
        radii = np.asarray(radii, np.float32).reshape(-1)
        if len(centers) != len(radii) or len(radii) == 0:
            raise ValueError("a sphere set needs as many radii as centres, at least one")
        packed = np.concatenate([centers, radii[:, None]], axis=1).reshape(-1)
        super().__init__(
            wp.array(packed, dtype=float, device=device, requires_grad=True),
            wp.array([float(len(radii)), float(smooth_k)], dtype=float, device=device),
        )

    @property
    def count(self) -> int:
        return int(self.params.shape[0] // SPHERE_RECORD)

    def centers_radii(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params.numpy().reshape(-1, SPHERE_RECORD)
        return p[:, :3].copy(), p[:, 3].copy()
