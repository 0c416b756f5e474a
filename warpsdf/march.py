"""Forward sphere tracing inside the bounding sphere (no tape, DESIGN §6).

Every ray is clipped to the bounding sphere of radius ``bound_radius`` around
the origin. It starts at the entry point (or at its origin, if that is
inside) and steps by the SDF value until the SDF drops below ``hit_epsilon``
(a hit), the steps run out, or it passes the back wall:

* ``clip_back = true``: a ray that reaches the back wall without a hit is a
  miss. This is what cuts a neural field off at the bound.
* ``clip_back = false``: the ray marches on past the wall, up to
  ``NOCLIP_EXTRA_BOUNDS`` bound radii, so whatever the field holds behind the
  object shows (the "missing back wall" artefact).

A hit is polished with a few guarded Newton steps along the ray, so hit points
sit on the surface far more tightly than ``hit_epsilon`` even at grazing
angles, and gets its normal (``Polish.NEWTON``, the default). A march whose
hits only decide a hard mask (a silhouette-only fit: :func:`polish_for`) asks
for ``Polish.NONE`` and skips that per-hit work, about 24 field evaluations a
hit. Per ray the marcher also records the smallest SDF value it saw and where
(the fit's soft silhouette needs it).

A fit with ``march.gradient = "unrolled"`` (the naive differentiable marcher
of the missing-back-wall study) asks the march to keep every sample
(:class:`UnrolledSteps`): a ray's end distance t_K = t_0 + sum_k f(x_k; theta)
is then differentiated through each step by a reverse sweep of its own
(:mod:`warpsdf.unrolled`), because Warp does not
replay the march's dynamic loop on the tape. Such a march is not polished,
and with an open back wall a ray that steps past the far limit
(``NOCLIP_EXTRA_BOUNDS``) ends where that step put it, not clamped back to
the limit (whose distance would be a constant).

Whether a ray enters the bound is explicit: ``min_sdf`` is ``FAR_SDF`` (+inf)
exactly for the rays that never enter it, a value no ray inside can report
(its smallest SDF starts at ``MAX_SEEN_SDF`` and only falls). Every ray that
enters the bound counts in the loss with its real SDF, however large: a field
that flew away from the target has a large loss, not none.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.fields.base import Field, FieldFunctions
from warpsdf.scene import POINT_MODES, MarchConfig, MarchGradient, SupervisionConfig

# How far past the back wall a ray may march with clip_back = false, in bound radii.
NOCLIP_EXTRA_BOUNDS = 4.0
# Newton polishing steps after a hit; each is kept only if it reduces |sdf|.
POLISH_STEPS = 4
# min_sdf of a ray that never enters the bounding sphere: +inf, which no ray in
# the bound can report (see MAX_SEEN_SDF). In kernels: wp.inf.
FAR_SDF = math.inf
# Where an in-bound ray's smallest SDF starts (finite, below FAR_SDF): a ray
# whose every sample is larger (a field that flew away) reports this.
MAX_SEEN_SDF = 1.0e38


@wp.func
def bound_interval(origin: wp.vec3, direction: wp.vec3, bound_radius: float) -> wp.vec2:
    """Entry and exit distances of a unit-direction ray through the sphere of
    radius ``bound_radius`` at the origin; (1, 0) (empty) when it misses.
    The entry is clamped to 0 when the origin is inside."""
    b = wp.dot(origin, direction)
    c = wp.dot(origin, origin) - bound_radius * bound_radius
    disc = b * b - c
    if disc <= 0.0:
        return wp.vec2(1.0, 0.0)
    s = wp.sqrt(disc)
    t_exit = -b + s
    if t_exit <= 0.0:
        return wp.vec2(1.0, 0.0)
    return wp.vec2(wp.max(-b - s, 0.0), t_exit)


class BackWall(IntEnum):
    """[march] clip_back inside the kernels: what the bound's back wall does."""

    OPEN = 0  # clip_back = false: the ray marches on past it
    CLIP = 1  # clip_back = true: it ends the ray (a miss)


def back_wall(clip_back: bool) -> BackWall:
    return BackWall.CLIP if clip_back else BackWall.OPEN


class Polish(IntEnum):
    """What the marcher does at a hit, inside the kernels."""

    # the hit stays where the SDF first fell below hit_epsilon; no normal and no
    # grad f . d (both 0): for hits that only decide a hard mask
    NONE = 0
    # POLISH_STEPS guarded Newton steps onto f = 0, then the normal and grad f . d
    # there: for exact points (XYZ and depth terms, renders, metrics, exports)
    NEWTON = 1


class GradientCode(IntEnum):
    """[march] gradient inside the kernels (scene.MarchGradient)."""

    IMPLICIT = 0  # the hit point, re-expressed implicitly; misses have none
    UNROLLED = 1  # every ray's end, through each step (UnrolledSteps, record_unrolled)


def gradient_code(gradient: MarchGradient) -> GradientCode:
    return GradientCode[MarchGradient(gradient).name]


def polish_for(
    supervision: SupervisionConfig, gradient: MarchGradient = MarchGradient.IMPLICIT
) -> Polish:
    """The one rule for a fit's march: exact hit points only where a supervised
    term reads them (xyz, depth); a silhouette-only fit uses the least-SDF value
    of misses and hit/miss alone (:func:`warpsdf.losses.ray_loss_kernel`). A
    march differentiated through its steps (``MarchGradient.UNROLLED``) ends
    where its last step put it: no polish."""
    if MarchGradient(gradient) is MarchGradient.UNROLLED:
        return Polish.NONE
    return Polish.NEWTON if POINT_MODES & set(supervision.mode) else Polish.NONE


@wp.func
def far_limit(t_exit: float, clip_back: int, bound_radius: float) -> float:
    """How far a ray looks: the back wall, or with ``BackWall.OPEN`` up to
    NOCLIP_EXTRA_BOUNDS bound radii past it (world units)."""
    if clip_back == int(BackWall.OPEN):
        return t_exit + NOCLIP_EXTRA_BOUNDS * bound_radius
    return t_exit


@wp.func
def closest_approach(origin: wp.vec3, direction: wp.vec3) -> float:
    """Distance along the ray to its point nearest the origin (>= 0): where a ray
    that misses reports its point."""
    return wp.max(-wp.dot(origin, direction), 0.0)


@functools.cache
def march_kernel(functions: FieldFunctions) -> wp.Kernel:
    """The sphere-tracing kernel for one field kind (built once, cached).

    Written in lockstep form so that collective field kinds (the tiled MLP,
    ``functions.block_dim > 1``) can use it: every thread of a block calls the
    field the same number of times, and loops end on block-uniform conditions
    (``block_any``). A thread whose ray is finished keeps evaluating at its last
    point and ignores the value. With ``block_dim`` 1 this is the plain
    per-ray loop that stops as soon as its ray is done. ``evals`` counts the
    evaluations the ray itself needed, not the lockstep ones it idled through,
    so the benchmarks' FLOP floor stays the algorithm's."""
    sdf = functions.sdf
    grad = functions.grad
    grad_cost = functions.grad_cost
    block_any = functions.block_any

    @wp.kernel(enable_backward=False, module="unique", name=f"march_rays_kernel_{functions.name}")
    def march_rays_kernel(
        count: int,  # R
        origins: wp.array(dtype=wp.vec3),  # (R,) world units
        directions: wp.array(dtype=wp.vec3),  # (R,) unit vectors
        params: wp.array(dtype=float),  # (P,) field parameters (Field.kernel_params)
        meta: wp.array(dtype=float),  # field sizes and constants
        bound_radius: float,  # world units
        clip_back: int,  # a BackWall
        max_steps: int,
        hit_epsilon: float,  # world units
        polish: int,  # a Polish
        hit_t_out: wp.array(dtype=float),  # (R,) distance to the hit; -1 = miss
        points_out: wp.array(dtype=wp.vec3),  # (R,) hit point (last sample on a miss)
        normals_out: wp.array(dtype=wp.vec3),  # (R,) unit normal at a hit; 0: miss, Polish.NONE
        min_sdf_out: wp.array(dtype=float),  # (R,) smallest SDF seen; FAR_SDF (inf): outside
        min_t_out: wp.array(dtype=float),  # (R,) distance where it was seen
        grad_dot_dir_out: wp.array(dtype=float),  # (R,) (raw grad f at a hit) . dir; 0 likewise
        evals_out: wp.array(dtype=int),  # (R,) SDF evaluations the ray needed (work counting)
        record_steps: int,  # 1: write the two arrays below (UnrolledSteps); 0: leave them
        step_points_out: wp.array(dtype=wp.vec3),  # (R * max_steps,) sample k of ray r at
        # r * max_steps + k (world units); entries past the ray's count are not written
        step_count_out: wp.array(dtype=int),  # (R,) samples its end point sums (UnrolledSteps)
    ):
        """One thread per ray (dim = R rounded up to whole blocks; surplus threads
        march the last ray and write nothing). Not differentiable (runs outside
        the tape). Writes each output element exactly once (the step arrays only
        with ``record_steps``)."""
        tid = wp.tid()
        r = wp.min(tid, count - 1)
        o = origins[r]
        d = directions[r]
        interval = bound_interval(o, d, bound_radius)
        t_enter = interval[0]
        t_exit = interval[1]
        inside = wp.where(t_enter <= t_exit, 1, 0)  # 0: the ray misses the bound
        t_far = far_limit(t_exit, clip_back, bound_radius)
        t = t_enter
        if inside == 0:
            t = closest_approach(o, d)  # for the outputs
            t_far = t
        active = inside
        hit = int(0)
        passed = int(0)  # 1: the ray stepped past the far limit
        min_sdf = float(MAX_SEEN_SDF)
        if inside == 0:
            min_sdf = wp.inf  # FAR_SDF: the ray never enters the bound
        min_t = t
        f = float(0.0)
        evals = int(0)
        for _step in range(max_steps):
            if block_any(active) == 0:
                break
            f_new = sdf(params, meta, o + d * t)
            if active == 1:
                if record_steps == 1 and tid < count:
                    step_points_out[r * max_steps + evals] = o + d * t
                evals += 1
                f = f_new
                if f < min_sdf or wp.isnan(f):
                    min_sdf = f
                    min_t = t
                if f < hit_epsilon:
                    hit = 1
                    active = 0
                elif wp.isnan(f):
                    active = 0  # a broken field: the ray ends, min_sdf shows the NaN
                else:
                    t = t + f
                    if t > t_far:
                        active = 0
                        passed = 1
        # where a miss ends: at the far limit, except in an unrolled march with an
        # open back wall (the naive marcher, which has no wall): there a ray that
        # stepped past the far limit ends where that step put it, not clamped back
        t_end = wp.min(t, t_far)
        if record_steps == 1 and tid < count:
            # the samples whose values sum to the end point's distance: a hit's
            # t_K = t_0 + sum_{k < K-1} f_k (its own sample stepped no further);
            # a ray out of steps (or past the open wall's limit) also adds its
            # last one; an end at the back wall (a constant), a NaN or a ray
            # outside the bound sums none
            n_sum = int(0)
            if hit == 1:
                n_sum = evals - 1
            elif active == 1 or (passed == 1 and clip_back == int(BackWall.OPEN)):
                n_sum = evals
                t_end = t
            step_count_out[r] = n_sum
        if polish == int(Polish.NONE):
            # the hit as found: f < hit_epsilon, the least SDF seen (so min_t = t)
            if tid < count:
                hit_t_out[r] = wp.where(hit == 1, t, -1.0)
                points_out[r] = o + d * t_end
                normals_out[r] = wp.vec3(0.0)
                min_sdf_out[r] = min_sdf
                min_t_out[r] = min_t
                grad_dot_dir_out[r] = 0.0
                evals_out[r] = evals
            return
        if block_any(hit) != 0:
            # Newton steps along the ray on f(t) = 0, with the slope kept away
            # from zero (grazing rays) and each step kept only if it reduces |f|.
            for _k in range(POLISH_STEPS):
                slope = wp.min(wp.dot(grad(params, meta, o + d * t), d), -0.01)
                t_new = t - f / slope
                ok = hit == 1 and t_new >= t_enter and t_new <= t_far
                f_new = sdf(params, meta, o + d * wp.where(ok, t_new, t))
                evals += hit * (grad_cost + 1)
                if ok and wp.abs(f_new) < wp.abs(f):
                    t = t_new
                    f = f_new
            g = grad(params, meta, o + d * t)
            evals += hit * grad_cost
            if hit == 1:
                if tid < count:
                    x = o + d * t
                    hit_t_out[r] = t
                    points_out[r] = x
                    normals_out[r] = wp.normalize(g)
                    min_sdf_out[r] = wp.min(min_sdf, f)
                    min_t_out[r] = t
                    grad_dot_dir_out[r] = wp.dot(g, d)
                    evals_out[r] = evals
                return
        if tid < count:
            hit_t_out[r] = -1.0
            points_out[r] = o + d * t_end
            normals_out[r] = wp.vec3(0.0)
            min_sdf_out[r] = min_sdf
            min_t_out[r] = min_t
            grad_dot_dir_out[r] = 0.0
            evals_out[r] = evals

    return march_rays_kernel


@dataclass
class RayHits:
    """Per-ray results, all (R,) Warp arrays on one device.

    ``hit_t`` is -1 for a miss. ``points`` and ``normals`` are world-space.
    ``min_sdf`` is ``FAR_SDF`` (+inf) exactly for rays that never enter the
    bound, and finite for every other ray.
    ``grad_dot_dir`` is the raw SDF gradient at the hit dotted with the ray
    direction (the denominator of the implicit hit point). ``evals`` counts the
    SDF evaluations each ray cost (a gradient counts as ``grad_cost``).
    With :attr:`Polish.NONE` a hit is the first sample below ``hit_epsilon``
    (``min_sdf`` is its value and ``min_t`` its distance, as for a miss) and
    ``normals`` and ``grad_dot_dir`` are 0 for every ray.
    """

    hit_t: wp.array
    points: wp.array
    normals: wp.array
    min_sdf: wp.array
    min_t: wp.array
    grad_dot_dir: wp.array
    evals: wp.array

    @classmethod
    def allocate(cls, count: int, device) -> RayHits:
        return cls(*(wp.empty(count, dtype=t, device=device) for t in _RAY_HIT_DTYPES))

    def outputs(self) -> list[wp.array]:
        """The arrays in the order the tracing kernels write them (field order)."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def numpy(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name).numpy() for f in dataclasses.fields(self)}


# element types of RayHits' arrays, in field order
_RAY_HIT_DTYPES = (float, wp.vec3, wp.vec3, float, float, float, int)


def bound_args(config: MarchConfig) -> list:
    """The launch arguments that say where rays live: the bound's radius
    (world units) and what its back wall does (a :class:`BackWall`)."""
    return [float(config.bound_radius), int(back_wall(config.clip_back))]


@dataclass
class UnrolledSteps:
    """A march's samples, kept for gradients through every step
    (``march.gradient = "unrolled"``, :func:`warpsdf.unrolled.record_unrolled`).

    Sample k of ray r sits at ``points[r * max_steps + k]`` (world units);
    ``count[r]`` says how many samples the ray's end point sums: its distance is
    t_K = t_0 + sum_{k < count} f(x_k), with t_0 the bound's entry (a constant).
    ``weights`` (R * max_steps,) is the reverse sweep's scratch: the adjoint of
    each sample's SDF value."""

    points: wp.array
    count: wp.array
    weights: wp.array
    max_steps: int

    @classmethod
    def allocate(cls, rays: int, max_steps: int, device) -> UnrolledSteps:
        return cls(
            points=wp.zeros(rays * max_steps, dtype=wp.vec3, device=device),
            count=wp.zeros(rays, dtype=int, device=device),
            weights=wp.zeros(rays * max_steps, dtype=float, device=device),
            max_steps=max_steps,
        )

    def check(self, rays: int, max_steps: int) -> None:
        """Raise unless these arrays hold ``rays`` rays of ``max_steps`` samples."""
        if self.max_steps != max_steps or self.count.shape[0] < rays:
            raise ValueError(
                f"UnrolledSteps hold {self.count.shape[0]} rays of {self.max_steps} samples; "
                f"this march has {rays} rays of {max_steps}"
            )

    def launch_args(self) -> list:
        """The march kernel's last three arguments: record, then the two arrays."""
        return [1, self.points, self.count]


def march(
    field: Field,
    origins: wp.array,
    directions: wp.array,
    config: MarchConfig,
    out: RayHits | None = None,
    polish: Polish = Polish.NEWTON,
    steps: UnrolledSteps | None = None,
) -> RayHits:
    """Sphere-trace ``field`` along the rays. ``out`` is reused if given;
    ``polish`` says what a hit gets (:class:`Polish`; :func:`polish_for` picks
    it for a fit). ``steps`` (its ``max_steps`` must be ``config.max_steps``)
    keeps every sample for :func:`warpsdf.unrolled.record_unrolled`."""
    n = origins.shape[0]
    out = out or RayHits.allocate(n, field.device)
    if steps is not None:
        steps.check(n, config.max_steps)
        if polish is not Polish.NONE:
            raise ValueError("an unrolled march ends where its last step put it: Polish.NONE")
    # not recording: the kernel leaves its step arrays alone, so any of their
    # types will do (no allocation, which a captured graph could not replay)
    step_args = [0, out.points, out.evals] if steps is None else steps.launch_args()
    field.functions.launch(
        march_kernel(field.functions),
        n,
        inputs=[
            origins,
            directions,
            field.kernel_params(),
            field.meta,
            *bound_args(config),
            int(config.max_steps),
            float(config.hit_epsilon),
            int(polish),
        ],
        outputs=[*out.outputs(), *step_args],
        device=field.device,
    )
    return out
