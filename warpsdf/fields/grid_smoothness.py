"""The voxel grid's smoothness term: its kernels (the field is
:mod:`warpsdf.fields.grid`, whose lattice layout and ``meta = [n, b]`` these read).

The smoothness regulariser (:meth:`GridField.regularize`, the loss term
``smoothness``): (Δ_h f)^2, Δ_h the 7-point discrete Laplacian in 1/world
units, summed over the *sites*, the interior lattice points inside the
bound's ball whose value is within SMOOTHNESS_BAND_CELLS cells of 0, each
weighted by its share of the surface, h^3 / (2 SMOOTHNESS_BAND_CELLS h). For an
SDF this approximates the surface integral of (Δf)^2 = (k_1 + k_2)^2 (k_i the
principal curvatures): 4x the Willmore energy, 16 pi on any sphere, so a
weight means the same at every resolution and every scale. It penalises
bumps, speckles and holes (curvature), not slope, and only near the surface,
where the renders look. Every site, every step: a term evaluated at a random
few lattice points would give each value a gradient now and then, which Adam
(each value's step normalised by its own gradient history) turns into
lr-sized jumps, noise (measured: the IoU of a fit fell from 0.72 to 0.38). For
the same reason a grid's default eikonal weight is 0 (its random points).
"""

from __future__ import annotations

import warp as wp

# The band: lattice points whose value is within this many cells of 0 (near
# the surface, for an SDF).
SMOOTHNESS_BAND_CELLS = 3


@wp.func
def smoothness_site(params: wp.array(dtype=float), meta: wp.array(dtype=float), p: int) -> int:
    """Whether lattice entry ``p`` is a site of the smoothness term: an interior
    point of the active lattice (indices 1 .. n - 1 on each axis) inside the
    bound's ball whose value is within SMOOTHNESS_BAND_CELLS h of 0. 0 also for
    entries past the active lattice."""
    n = int(meta[0])
    s = n + 1
    if p >= s * s * s:
        return 0
    h = 2.0 * meta[1] / float(n)
    if wp.abs(params[p]) >= float(SMOOTHNESS_BAND_CELLS) * h:
        return 0
    i = p // (s * s)
    j = (p // s) % s
    k = p % s
    if i < 1 or j < 1 or k < 1 or i >= n or j >= n or k >= n:
        return 0
    half = float(n) * 0.5
    r = wp.vec3(float(i) - half, float(j) - half, float(k) - half)
    return wp.where(wp.dot(r, r) <= half * half, 1, 0)


@wp.func
def site_area(meta: wp.array(dtype=float)) -> float:
    """A site's share of the surface, world units^2: its cell volume h^3 over
    the band's thickness 2 SMOOTHNESS_BAND_CELLS h (for an SDF)."""
    h = 2.0 * meta[1] / meta[0]
    return h * h / (2.0 * float(SMOOTHNESS_BAND_CELLS))


@wp.kernel(enable_backward=False)
def smoothness_kernel(
    params: wp.array(dtype=float),  # (P,) grid values, world units
    meta: wp.array(dtype=float),  # (GRID_META,) [n, b]
    weight: float,  # the term's loss weight
    term: int,  # index of the term in terms_out
    laplacian_out: wp.array(dtype=float),  # (P - 1,) Δ_h f at each site, 0 elsewhere, 1/world units
    terms_out: wp.array(dtype=float),  # (T,) unweighted terms, accumulated (sum of (Δ_h f)^2 dA)
    loss_out: wp.array(dtype=float),  # (1,) weighted loss, accumulated
):
    """One thread per lattice entry of the finest stage (dim = P - 1; entries
    that are not sites write 0). Its gradient is
    :func:`smoothness_backward_kernel` (recorded by :meth:`GridField.regularize`),
    which reads ``laplacian_out``."""
    p = wp.tid()
    lap = float(0.0)
    if smoothness_site(params, meta, p) != 0:
        n = int(meta[0])
        s = n + 1
        h = 2.0 * meta[1] / float(n)
        total = (
            params[p - 1] + params[p + 1] + params[p - s] + params[p + s]
            + params[p - s * s] + params[p + s * s]
        )  # fmt: skip
        lap = (total - 6.0 * params[p]) / (h * h)
        e = lap * lap * site_area(meta)
        wp.atomic_add(terms_out, term, e)
        wp.atomic_add(loss_out, 0, weight * e)
    laplacian_out[p] = lap


@wp.kernel(enable_backward=False)
def smoothness_backward_kernel(
    meta: wp.array(dtype=float),  # (GRID_META,) [n, b]
    weight: float,
    term: int,
    laplacian: wp.array(dtype=float),  # (P - 1,) the forward's Δ_h f, 0 off the sites
    terms_grad: wp.array(dtype=float),  # (T,) dL / d terms
    loss_grad: wp.array(dtype=float),  # (1,) dL / d loss
    params_grad_out: wp.array(dtype=float),  # (P,) accumulated (7 atomic adds per site)
):
    """One thread per lattice entry of the finest stage (dim = P - 1); sites
    scatter d (Δ_h f)^2 dA / d f = 2 dA Δ_h f / h^2 to their 6 neighbours and
    -6 times that to themselves (the site set is held fixed: no gradient
    through the band's edge)."""
    p = wp.tid()
    lap = laplacian[p]
    if lap == 0.0:
        return
    n = int(meta[0])
    s = n + 1
    h = 2.0 * meta[1] / float(n)
    adj = weight * loss_grad[0] + terms_grad[term]
    g = adj * 2.0 * site_area(meta) * lap / (h * h)
    wp.atomic_add(params_grad_out, p - 1, g)
    wp.atomic_add(params_grad_out, p + 1, g)
    wp.atomic_add(params_grad_out, p - s, g)
    wp.atomic_add(params_grad_out, p + s, g)
    wp.atomic_add(params_grad_out, p - s * s, g)
    wp.atomic_add(params_grad_out, p + s * s, g)
    wp.atomic_add(params_grad_out, p, -6.0 * g)
