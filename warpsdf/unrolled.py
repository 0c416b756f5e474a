"""Gradients through every step of a march (``march.gradient = "unrolled"``,
the naive differentiable marcher of the missing-back-wall study, README
"The missing back wall").

A ray's samples obey t_{k+1} = t_k + f(o + d t_k; theta) from the bound's
entry t_0 (a constant), so its end distance t_K = t_0 + sum_k f(x_k; theta)
depends on the parameters through every sample. Warp does not replay the
march's dynamic loop on the tape, so the march keeps its samples
(:class:`warpsdf.march.UnrolledSteps`) and the backward is written here: a
reverse sweep of its own (:func:`unrolled_sweep_kernel`), then the field's own
parameter backward at the samples (:func:`unrolled_backward`), recorded on a
tape by :func:`record_unrolled`.
"""

from __future__ import annotations

import functools

import warp as wp

from warpsdf.fields.base import Field, FieldFunctions
from warpsdf.march import UnrolledSteps


@functools.cache
def unrolled_sweep_kernel(functions: FieldFunctions) -> wp.Kernel:
    """The reverse sweep of a march differentiated through every step, for one
    field kind (built once, cached).

    A ray's samples obey t_{k+1} = t_k + f(o + d t_k; theta), so with a = dL/dt
    carried backwards from the end point, sample k's value gets a_{k+1} (its
    step's adjoint) and the distance before it a_k = a_{k+1} (1 + grad f(x_k) . d).
    Lockstep form, as :func:`march_kernel` (collective kinds call ``grad`` the
    same number of times on every thread of a block)."""
    grad = functions.grad
    block_any = functions.block_any

    @wp.kernel(
        enable_backward=False, module="unique", name=f"unrolled_sweep_kernel_{functions.name}"
    )
    def unrolled_sweep(
        count: int,  # R
        params: wp.array(dtype=float),  # (P,) field parameters (Field.kernel_params)
        meta: wp.array(dtype=float),  # field sizes and constants
        directions: wp.array(dtype=wp.vec3),  # (R,) unit ray directions
        step_points: wp.array(dtype=wp.vec3),  # (R * S,) the march's samples (UnrolledSteps)
        step_count: wp.array(dtype=int),  # (R,) samples each end point sums
        adj_end_t: wp.array(dtype=float),  # (R,) dL / d t_K, the end point's distance
        max_steps: int,  # S
        weights_out: wp.array(dtype=float),  # (R * S,) dL / d f(x_k); 0 past a ray's count
    ):
        """One thread per ray (dim = R rounded up to whole blocks; surplus threads
        sweep the last ray and write nothing). Not differentiable: its output is
        the adjoint that :meth:`Field.backward_into` turns into the parameter
        gradient. Writes every element of ``weights_out`` once."""
        tid = wp.tid()
        r = wp.min(tid, count - 1)
        n = step_count[r]
        d = directions[r]
        a = adj_end_t[r]
        base = r * max_steps
        if tid < count:
            for k in range(n, max_steps):
                weights_out[base + k] = 0.0
        live = wp.where(n > 0 and a != 0.0, 1, 0)
        if block_any(live) == 0:
            if tid < count:
                for k in range(n):
                    weights_out[base + k] = 0.0
            return
        for step in range(max_steps):
            k = max_steps - 1 - step
            if block_any(wp.where(k < n, 1, 0)) != 0:
                x = step_points[base + wp.clamp(k, 0, wp.max(n - 1, 0))]
                g = grad(params, meta, x)
                if k < n and tid < count:
                    weights_out[base + k] = a
                    a = a * (1.0 + wp.dot(g, d))

    return unrolled_sweep


def unrolled_backward(field: Field, directions: wp.array, steps: UnrolledSteps,
                      adj_end_t: wp.array) -> None:  # fmt: skip
    """``field.params.grad += sum_r adj_end_t[r] d t_K(r) / d params``, through
    every sample of the last march that recorded ``steps``: the reverse sweep
    (:func:`unrolled_sweep_kernel`), then the field's own parameter backward
    at the samples, weighted by their adjoints."""
    n = directions.shape[0]
    steps.check(n, steps.max_steps)
    field.functions.launch(
        unrolled_sweep_kernel(field.functions),
        n,
        inputs=[
            field.kernel_params(),
            field.meta,
            directions,
            steps.points,
            steps.count,
            adj_end_t,
            int(steps.max_steps),
        ],
        outputs=[steps.weights],
        device=field.device,
        record_tape=False,
    )
    field.backward_into(steps.points[: n * steps.max_steps], steps.weights[: n * steps.max_steps])


def record_unrolled(field: Field, directions: wp.array, steps: UnrolledSteps,
                    end_dt: wp.array, tape: wp.Tape) -> None:  # fmt: skip
    """Record on ``tape`` that ``end_dt`` (R,) is the change of each ray's end
    distance t_K with the field's parameters, differentiated through every
    step of the march that filled ``steps`` (the naive differentiable marcher
    of ``march.gradient = "unrolled"``). Its value is 0: a loss adds it to the
    end point's constant distance, and ``end_dt.grad`` flows back through
    :func:`unrolled_backward`. Record it before the loss that reads it."""
    end_dt.zero_()

    def backward() -> None:
        unrolled_backward(field, directions, steps, end_dt.grad)

    tape.record_func(backward, arrays=[field.params, end_dt])
