"""The one field interface that the marcher, renderer, losses and export share.

A field is two ``@wp.func`` with the same signature, plus its data:

    sdf(params: wp.array(dtype=float), meta: wp.array(dtype=int), x: wp.vec3) -> float
    grad(params, meta, x) -> wp.vec3          # spatial gradient, d sdf / d x

``params`` is a flat float array (the differentiable parameters: sphere
centres and radii, MLP weights; or primitive records for analytic shapes) and
``meta`` a small int array of sizes (counts, widths). Kernels are built once
per field *kind* from these functions (see :func:`warpsdf.march.march_kernel`),
so changing sizes never recompiles anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import warp as wp


@dataclass(frozen=True)
class FieldFunctions:
    """The Warp functions that define a field kind. ``name`` keys kernel caches."""

    name: str
    sdf: wp.Function
    grad: wp.Function


class Field:
    """A field instance: its functions and its arrays on one device."""

    functions: FieldFunctions

    def __init__(self, params: wp.array, meta: wp.array):
        self.params = params
        self.meta = meta

    @property
    def device(self) -> wp.context.Device:
        return self.params.device


# Step of the finite-difference gradient, world units. float32 SDF values of
# order 1 keep about 1e-7 absolute precision, so this gives normals good to ~1e-3.
FD_GRADIENT_STEP = 5e-4


def fd_gradient(sdf: wp.Function) -> wp.Function:
    """A ``grad`` for fields without a closed form: the tetrahedral central
    difference, 4 SDF evaluations, error O(h^2)."""

    @wp.func
    def grad(params: wp.array(dtype=float), meta: wp.array(dtype=int), x: wp.vec3) -> wp.vec3:
        h = float(FD_GRADIENT_STEP)
        k0 = wp.vec3(1.0, -1.0, -1.0)
        k1 = wp.vec3(-1.0, -1.0, 1.0)
        k2 = wp.vec3(-1.0, 1.0, -1.0)
        k3 = wp.vec3(1.0, 1.0, 1.0)
        g = (
            k0 * sdf(params, meta, x + k0 * h)
            + k1 * sdf(params, meta, x + k1 * h)
            + k2 * sdf(params, meta, x + k2 * h)
            + k3 * sdf(params, meta, x + k3 * h)
        )
        return g / (4.0 * h)

    return grad
