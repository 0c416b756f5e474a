"""Starting a field from a signed distance it cannot sample directly.

``model.init = "visual_hull"`` starts a field from the carved hull's signed
distance (:func:`warpsdf.carve.hull_init`). A voxel grid samples it at its
lattice (:func:`warpsdf.fields.factory.grid_params`); a field without a
lattice (a hash grid, an MLP) is *regressed* onto it here, before the fit's
first step: Adam on the mean squared difference (f(x) - s(x))^2 over random
points, through :meth:`warpsdf.fields.base.Field.backward_into`.

Each step draws :data:`PREFIT_POINTS` points: half uniform in the bound's ball
(the distance far from the surface, which sphere tracing steps by), half from a
pool of points within :data:`NEAR_BAND` of the hull's surface (where the
silhouettes will be compared), each jittered by up to the band. The pool is
drawn once, from :data:`POOL_DRAWS` uniform points. The rate follows a cosine
from :data:`PREFIT_LR` to 0 over :data:`PREFIT_STEPS` steps.

Cost: PREFIT_STEPS x (a forward and a backward over PREFIT_POINTS points):
7.5 CPU seconds for the airplane preset at the hash grid's defaults (RMS
difference 0.013 world units afterwards, the hull lattice's step being
0.016). The draws come from the fit's ``rng``, so a fit stays reproducible
from its seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import warp as wp

from warpsdf.fields.base import Field
from warpsdf.fit.guard import NO_DIVERGENCE
from warpsdf.fit.optim import Adam
from warpsdf.sampling import random_in_ball

PREFIT_STEPS = 100
PREFIT_POINTS = 2048
PREFIT_LR = 1e-2
# world units, as a fraction of the bound radius: the near-surface band
NEAR_BAND = 0.05
POOL_DRAWS = 200_000


def near_surface_pool(
    sdf: Callable[[np.ndarray], np.ndarray], bound_radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Points (M, 3) float64 of the bound's ball within ``NEAR_BAND x
    bound_radius`` of the zero set of ``sdf`` (all draws where none is)."""
    points = random_in_ball(rng, POOL_DRAWS, bound_radius)
    near = np.abs(sdf(points)) < NEAR_BAND * bound_radius
    return points[near] if near.any() else points


def prefit_to_sdf(
    field: Field,
    sdf: Callable[[np.ndarray], np.ndarray],
    bound_radius: float,
    rng: np.random.Generator,
    steps: int = PREFIT_STEPS,
    points: int = PREFIT_POINTS,
    lr: float = PREFIT_LR,
) -> list[float]:
    """Regress ``field``'s parameters onto ``sdf`` (world points (N, 3) ->
    signed distances (N,), world units) in place; returns the mean squared
    error of each step (world units^2), measured before its update."""
    device = field.device
    pool = near_surface_pool(sdf, bound_radius, rng)
    band = NEAR_BAND * bound_radius
    half = points // 2
    schedule = [0.5 * lr * (1.0 + math.cos(math.pi * k / max(steps, 1))) for k in range(steps)]
    rates = wp.array(np.asarray(schedule, np.float32), dtype=float, device=device)
    iteration = wp.zeros(1, dtype=int, device=device)
    halt = wp.full(2, NO_DIVERGENCE, dtype=int, device=device)
    adam = Adam(field.params, lazy=field.sparse_gradients)
    x_dev = wp.zeros(points, dtype=wp.vec3, device=device)
    adj_dev = wp.zeros(points, dtype=float, device=device)
    errors = []
    for k in range(steps):
        near = pool[rng.integers(0, len(pool), half)]
        near = near + rng.uniform(-band, band, size=near.shape)
        x = np.concatenate([near, random_in_ball(rng, points - half, bound_radius)])
        diff = field.values(x).astype(np.float64) - sdf(x)
        errors.append(float(np.mean(diff**2)))
        x_dev.assign(x.astype(np.float32))
        adj_dev.assign((2.0 / points * diff).astype(np.float32))
        field.params.grad.zero_()
        field.backward_into(x_dev, adj_dev)
        iteration.assign(np.array([k], np.int32))
        adam.step(field.params.grad, rates, iteration, halt)
    field.params.grad.zero_()
    return errors
