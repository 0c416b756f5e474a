"""Loss kernels, recorded on the tape (Warp differentiates them).

Each reads SDF values that :func:`warpsdf.fields.base.evaluate` produced on
the tape, so their gradient flows on into the field parameters.

Terms (index into the ``terms`` array, unweighted, each a mean):
  0 silhouette: soft mask m = sigmoid(-alpha f(x_min)) against the target mask,
    on rays that are not hits in both prediction and target (IDR), leaving out
    background rays whose soft mask is below SOFT_MASK_FLOOR (see there);
  1 xyz: |x(theta) - x*| on rays both hit, with the implicit hit point
    x(theta) = x0 - d (f(x0; theta) - f0) / (grad f(x0) . d); with a
    background (BackgroundCode other than NONE) also on predicted hits on the
    target's background: |clip(x(theta)) - b|, clip to [-1, 1] per axis (the
    XYZ image's range), b black (-1, -1, -1) or the ray's exit point on the
    bound's back wall (backdrop). Those rays then leave the silhouette term.
    With ``march.gradient = "unrolled"`` x(theta) is differentiated through
    every march step instead (unrolled.record_unrolled), and with a background
    a predicted miss's end point, clipped, meets its target pixel too;
  2 depth: |t(theta) - t*| on rays both hit;
  3 eikonal: (|grad f| - 1)^2 at random points, grad f by finite differences;
  4 smoothness: the field kind's own regulariser (:meth:`warpsdf.fields.base.Field.regularize`:
    the grid's mean squared discrete Laplacian; 0 for kinds without one).
``loss`` is the weighted sum that the tape differentiates.
"""

from __future__ import annotations

import math
from enum import IntEnum

import warp as wp

from warpsdf.fields.base import Field, evaluate, record_backward, tetrahedral_gradient
from warpsdf.march import GradientCode, Polish, RayHits
from warpsdf.scene import Background, PointLoss, SilhouetteLoss


class Term(IntEnum):
    SILHOUETTE = 0
    XYZ = 1
    DEPTH = 2
    EIKONAL = 3
    SMOOTHNESS = 4


class SilhouetteCode(IntEnum):
    """[supervision] silhouette_loss inside the kernels."""

    BCE = 0  # binary cross-entropy of the soft mask, divided by alpha
    MSE = 1  # squared error of the soft mask


class BackgroundCode(IntEnum):
    """[supervision] background inside the kernels (scene.Background)."""

    NONE = 0  # background pixels: silhouette term only
    BLACK = 1  # a predicted hit there: xyz term against (-1, -1, -1)
    BACKDROP = 2  # ... against the ray's exit point on the bound's back wall


class PointCode(IntEnum):
    """[supervision] xyz_loss (points and depth) inside the kernels."""

    L1 = 0
    MSE = 1


def silhouette_loss_code(loss: SilhouetteLoss) -> SilhouetteCode:
    return SilhouetteCode[SilhouetteLoss(loss).name]


def point_loss_code(loss: PointLoss) -> PointCode:
    return PointCode[PointLoss(loss).name]


def background_code(background: Background) -> BackgroundCode:
    return BackgroundCode[Background(background).name]


NUM_TERMS = len(Term)
TERM_NAMES = tuple(t.name.lower() for t in Term)

# |grad f . d| is clamped to at least this when differentiating the hit point,
# so grazing hits do not blow up the gradient.
MIN_GRAD_DOT_DIR = 0.1

# A background ray (target mask 0) whose soft mask sigmoid(-alpha f) is below
# this, i.e. alpha f > SOFT_MASK_CUT, is left out of the silhouette term: its
# term is below SOFT_MASK_FLOOR / alpha (BCE; its square for MSE) and its
# gradient below SOFT_MASK_FLOOR of the largest a ray can have, and leaving it
# out leaves its adjoint exactly 0, so the field's backward skips it
# (fields/base.backward_kernel). Measured on the mlp benchmark case at alpha 50:
# 43% of the rays, 0.04% of the adjoints' total magnitude; as alpha anneals
# upwards, every ray more than SOFT_MASK_CUT / alpha outside the silhouette.
SOFT_MASK_FLOOR = 1e-3
SOFT_MASK_CUT = math.log(1.0 / SOFT_MASK_FLOOR - 1.0)  # 6.9068


@wp.func
def softplus0(z: float) -> float:
    """log(1 + e^z), stable for any z. Written with a branch rather than
    max(z, 0) + log(1 + e^-|z|): Warp's adjoints of max and abs at z = 0 (a hit
    point with f exactly 0 is common) would give the derivative the wrong sign."""
    if z > 0.0:
        return z + wp.log(1.0 + wp.exp(-z))
    return wp.log(1.0 + wp.exp(z))


@wp.func
def scheduled(schedule: wp.array(dtype=float), iteration: wp.array(dtype=int)) -> float:
    """``schedule[iteration[0]]``: a per-iteration constant read on the device,
    so that a captured graph replays each step with its own value."""
    return schedule[iteration[0]]


@wp.func_grad(scheduled)
def adj_scheduled(schedule: wp.array(dtype=float), iteration: wp.array(dtype=int), adj_ret: float):
    """A schedule is a constant of the fit: no gradient flows into it. (Warp's
    own adjoint of the array read costs as much again as the rest of the loss
    kernel's backward on the CPU.)"""
    pass


@wp.func
def point_error(e: wp.vec3, code: int) -> float:
    """Mean over the axes of |e| (PointCode.L1) or e^2 (PointCode.MSE)."""
    if code == int(PointCode.MSE):
        return wp.dot(e, e) / 3.0
    return (wp.abs(e[0]) + wp.abs(e[1]) + wp.abs(e[2])) / 3.0


@wp.func
def clip_unit(x: wp.vec3) -> wp.vec3:
    """x clipped to [-1, 1] per axis, the range of an XYZ image (zero gradient
    outside it)."""
    return wp.vec3(wp.clamp(x[0], -1.0, 1.0), wp.clamp(x[1], -1.0, 1.0), wp.clamp(x[2], -1.0, 1.0))


@wp.func
def background_point(x: wp.vec3, d: wp.vec3, bound_radius: float, background: int) -> wp.vec3:
    """What a target background pixel shows (world units): black (-1, -1, -1),
    or for BackgroundCode.BACKDROP the exit point on the bound's back wall of the
    line through x (a point of the ray) along the unit direction d. A constant:
    x and d come from the march."""
    if background == int(BackgroundCode.BACKDROP):
        b = wp.dot(x, d)
        c = wp.dot(x, x) - bound_radius * bound_radius
        t = -b + wp.sqrt(wp.max(b * b - c, 0.0))
        return clip_unit(x + d * t)
    return wp.vec3(-1.0, -1.0, -1.0)


@wp.kernel
def ray_loss_kernel(
    values: wp.array(dtype=float),  # (R,) f(theta) at each ray's sample point; differentiable
    detached: wp.array(dtype=float),  # (R,) the same values as constants (f0)
    directions: wp.array(dtype=wp.vec3),  # (R,) unit ray directions
    end_points: wp.array(dtype=wp.vec3),  # (R,) where each march ended (RayHits.points)
    end_dt: wp.array(dtype=float),  # (R,) GradientCode.UNROLLED: the end distance's change
    # with the parameters (value 0, unrolled.record_unrolled); differentiable
    hit_t: wp.array(dtype=float),  # (R,) predicted hit distance, -1 = miss (from the march)
    min_sdf: wp.array(dtype=float),  # (R,) FAR_SDF (+inf) marks rays that miss the bound
    grad_dot_dir: wp.array(dtype=float),  # (R,) grad f(x0) . d at the hit (from the march)
    target_mask: wp.array(dtype=float),  # (R,) 1 on the object, 0 off
    target_xyz: wp.array(dtype=wp.vec3),  # (R,) target surface point (world units)
    target_depth: wp.array(dtype=float),  # (R,) target ray distance (world units)
    alpha_schedule: wp.array(dtype=float),  # (S,) soft-mask sharpness per iteration, 1/world units
    iteration: wp.array(dtype=int),  # (1,) 0-based iteration; indexes alpha_schedule
    ray_weight: wp.array(dtype=float),  # (R,) each ray's share of a term's mean: 1 / R, or
    # focused sampling's importance weights (warpsdf.fit.focus); constants
    w_silhouette: float,  # loss weights (0 switches a term off)
    w_xyz: float,
    w_depth: float,
    silhouette_code: int,  # a SilhouetteCode
    point_code: int,  # a PointCode (points and depth)
    background: int,  # a BackgroundCode: what predicted hits on the target's background meet
    bound_radius: float,  # world units (BackgroundCode.BACKDROP's back wall)
    gradient: int,  # a march.GradientCode: how a ray's end point is differentiated
    terms_out: wp.array(dtype=float),  # (NUM_TERMS,) unweighted means, accumulated
    loss_out: wp.array(dtype=float),  # (1,) weighted sum, accumulated
):
    """One thread per ray (dim = R). Differentiable w.r.t. ``values`` and
    ``end_dt``. The sharpness comes from a device array indexed by a device
    counter, so a captured CUDA graph replays each step with its own alpha.

    A hit's point and distance move with the parameters by dt: implicitly,
    -(f - f0) / (grad f . d) (GradientCode.IMPLICIT), or through every step
    of the march, ``end_dt`` (GradientCode.UNROLLED; the march was not
    polished, so its end point is the hit's sample). Unrolled, a predicted
    miss has an end point that moves too: with a background, its clipped XYZ
    meets the target pixel (the surface point, or the background colour) in
    the xyz term, and the silhouette term still sees it."""
    r = wp.tid()
    if min_sdf[r] == wp.inf:
        return  # FAR_SDF: the ray never enters the bound, nothing to learn from it
    # every ray in the bound counts, with its real SDF however large (march.py)
    inv_count = ray_weight[r]
    alpha = scheduled(alpha_schedule, iteration)
    y = target_mask[r]
    f = values[r]
    pred_hit = hit_t[r] >= 0.0
    unrolled = gradient == int(GradientCode.UNROLLED)
    dt = end_dt[r]
    if not unrolled and pred_hit:
        gd = wp.min(grad_dot_dir[r], -MIN_GRAD_DOT_DIR)
        dt = -(f - detached[r]) / gd
    x = end_points[r] + directions[r] * dt  # the ray's end, moving with the parameters
    if pred_hit and y > 0.5:
        if w_xyz > 0.0:
            e = point_error(x - target_xyz[r], point_code)
            wp.atomic_add(terms_out, int(Term.XYZ), e * inv_count)
            wp.atomic_add(loss_out, 0, w_xyz * e * inv_count)
        if w_depth > 0.0:
            de = hit_t[r] + dt - target_depth[r]
            e = wp.where(point_code == int(PointCode.MSE), de * de, wp.abs(de))
            wp.atomic_add(terms_out, int(Term.DEPTH), e * inv_count)
            wp.atomic_add(loss_out, 0, w_depth * e * inv_count)
        return
    if background != int(BackgroundCode.NONE) and w_xyz > 0.0 and (pred_hit or unrolled):
        # the whole image: the prediction's pixel (a hit; unrolled, any march's
        # end) against the target's (a background colour, or its surface point)
        b = background_point(end_points[r], directions[r], bound_radius, background)
        if y > 0.5:
            b = target_xyz[r]
        e = point_error(clip_unit(x) - b, point_code)
        wp.atomic_add(terms_out, int(Term.XYZ), e * inv_count)
        wp.atomic_add(loss_out, 0, w_xyz * e * inv_count)
        if pred_hit:
            return  # a hit on the background: the xyz term alone
    if w_silhouette > 0.0:
        if y <= 0.5 and alpha * f > SOFT_MASK_CUT:
            return  # soft mask below SOFT_MASK_FLOOR on the background: left out
        if silhouette_code == int(SilhouetteCode.MSE):
            m = 1.0 / (1.0 + wp.exp(alpha * f))
            e = (m - y) * (m - y)
        else:
            e = (y * softplus0(alpha * f) + (1.0 - y) * softplus0(-alpha * f)) / alpha
        wp.atomic_add(terms_out, int(Term.SILHOUETTE), e * inv_count)
        wp.atomic_add(loss_out, 0, w_silhouette * e * inv_count)


@wp.kernel
def eikonal_loss_kernel(
    values: wp.array(dtype=float),  # (4E,) f at x_i + h k_j, 4 tetrahedron points per sample
    inv_count: float,  # 1 / E
    weight: float,
    terms_out: wp.array(dtype=float),  # (NUM_TERMS,) accumulated
    loss_out: wp.array(dtype=float),  # (1,) accumulated
):
    """One thread per sample (dim = E). Differentiable w.r.t. ``values``."""
    i = wp.tid()
    g = tetrahedral_gradient(
        values[4 * i + 0], values[4 * i + 1], values[4 * i + 2], values[4 * i + 3]
    )
    e = (wp.length(g) - 1.0) * (wp.length(g) - 1.0)
    wp.atomic_add(terms_out, int(Term.EIKONAL), e * inv_count)
    wp.atomic_add(loss_out, 0, weight * e * inv_count)


@wp.kernel(enable_backward=False)
def sample_points_kernel(
    origins: wp.array(dtype=wp.vec3),  # (R,) world units
    directions: wp.array(dtype=wp.vec3),  # (R,) unit vectors
    min_t: wp.array(dtype=float),  # (R,) distance of the least SDF (the hit, for hits)
    points_out: wp.array(dtype=wp.vec3),  # (R,) o + d * min_t
):
    """One thread per ray (dim = R). Not differentiable (the points are constants)."""
    r = wp.tid()
    points_out[r] = origins[r] + directions[r] * min_t[r]


@wp.kernel(enable_backward=False)
def marched_values_kernel(
    min_sdf: wp.array(dtype=float),  # (R,) the march's least SDF, at o + d min_t; FAR_SDF: outside
    values_out: wp.array(dtype=float),  # (R,) f at each ray's sample point; 0 outside the bound
    detached_out: wp.array(dtype=float),  # (R,) the same values, as constants
):
    """One thread per ray (dim = R). Not differentiable here: the gradient of
    ``values_out`` is the field's own backward (:func:`sample_values`)."""
    r = wp.tid()
    f = min_sdf[r]
    if f == wp.inf:
        f = 0.0  # FAR_SDF: the ray never enters the bound, the loss skips it
    values_out[r] = f
    detached_out[r] = f


def sample_values(
    field: Field,
    hits: RayHits,
    points: wp.array,
    values_out: wp.array,
    detached_out: wp.array,
    tape: wp.Tape,
    polish: Polish,
) -> None:
    """The field at each ray's sample point (``points``: o + d min_t from
    :func:`sample_points_kernel`) into ``values_out``, on ``tape``. A march
    without polish already evaluated the field at exactly that point (its least
    SDF, hits included): the values are copied from it rather than evaluated a
    second time, and the tape gets the same custom backward at ``points``.
    Polished hits moved past their last sample, so a polished march's points
    are evaluated."""
    if polish is Polish.NONE:
        wp.launch(
            marched_values_kernel,
            dim=points.shape[0],
            inputs=[hits.min_sdf],
            outputs=[values_out, detached_out],
            device=field.device,
            record_tape=False,
        )
        record_backward(field, points, values_out, tape)
    else:
        evaluate(field, points, values_out, detached_out, tape)
