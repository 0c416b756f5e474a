"""The one field interface that the marcher, renderer, losses and export share.

A field kind is a few ``@wp.func`` with the same leading arguments, plus data:

    sdf(params, meta, x) -> float                 # signed distance, world units
    grad(params, meta, x) -> wp.vec3              # spatial gradient d sdf / d x
    backward(params, meta, x, adj, grad_params)   # grad_params += adj * d sdf / d params

``params`` is a flat float array (the parameters: sphere centres and radii,
MLP weights, or primitive records for analytic shapes) and ``meta`` a small
float array of sizes and constants (counts, widths, blend radii), never
differentiated. Kernels are built once per field *kind* from these functions
(:func:`eval_kernel`, :func:`backward_kernel`, and the marcher's
``march_kernel``), so changing sizes never recompiles anything.

Differentiable evaluation (:func:`evaluate`) records a custom backward on a
``wp.Tape``: everything the fit needs (the implicit hit point, the soft
silhouette, the finite-difference eikonal term) is a function of SDF values at
points, so one hand-written parameter backward per field kind serves them all.

Collective field kinds (``block_dim > 1``, the tiled MLP) evaluate a whole
thread block's points together with Warp's tile API: every thread of a block
must call ``sdf``/``grad``/``backward`` the same number of times, so kernels
that use them pad their launch to a multiple of ``block_dim``, keep surplus
threads running on a valid point, and branch only on block-uniform values
(``block_any``). For ordinary kinds ``block_dim`` is 1 and ``block_any(flag)``
is ``flag``, so the same kernel bodies serve both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import warp as wp


@wp.func
def thread_any(flag: int) -> int:
    """``block_any`` of a field kind whose threads work alone: the flag itself."""
    return flag


@dataclass(frozen=True)
class FieldFunctions:
    """The Warp functions that define a field kind. ``name`` keys kernel caches.
    ``backward`` is None for fields that are not fitted (analytic shapes).

    ``block_dim`` > 1 marks a collective kind (see the module docstring);
    ``block_any(flag)`` is then non-zero on every thread of a block when ``flag``
    is non-zero on any of them."""

    name: str
    sdf: wp.Function
    grad: wp.Function
    backward: wp.Function | None = None
    grad_cost: int = 4  # SDF evaluations one grad call costs (4: tetrahedral differences)
    block_dim: int = 1
    block_any: wp.Function = thread_any

    @property
    def collective(self) -> bool:
        """Whether the kind's functions work a block at a time (tile code): its
        kernels must launch with exactly ``block_dim`` threads per block."""
        return self.block_any is not thread_any

    def launch_dim(self, count: int) -> int:
        """Threads to launch for ``count`` items: a whole number of blocks."""
        b = self.block_dim
        return (count + b - 1) // b * b

    def launch(self, kernel: wp.Kernel, count: int, inputs: list, outputs: list, device,
               record_tape: bool = True) -> None:  # fmt: skip
        """Launch one of this kind's kernels over ``count`` items (the kernel takes
        ``count`` as its first input and leaves surplus threads idle)."""
        if count == 0:
            return
        wp.launch(
            kernel,
            dim=self.launch_dim(count),
            inputs=[count, *inputs],
            outputs=outputs,
            device=device,
            block_dim=self.block_dim if self.collective else None,
            record_tape=record_tape,
        )


class Field:
    """A field instance: its functions and its arrays on one device."""

    functions: FieldFunctions
    # Each parameter sees only a few of a step's points (a voxel grid): the fit
    # uses lazy Adam (warpsdf.fit.optim), which leaves a parameter with no
    # gradient in a step alone instead of moving it on its momentum.
    sparse_gradients: bool = False

    def __init__(self, params: wp.array, meta: wp.array):
        self.params = params
        self.meta = meta

    def kernel_params(self) -> wp.array:
        """The parameter array the kernels read (``params`` itself, unless the
        kind keeps a kernel-friendly copy, refreshed here)."""
        return self.params

    # ------------------------------------------------ coarse-to-fine stages

    def stage_starts(self, total: int) -> tuple[int, ...]:
        """The 0-based iterations, in a fit of ``total`` steps, at which the
        field's coarse-to-fine state changes (a grid refines, hash levels switch
        on): :meth:`enter_stage` runs before the step of each. Default: none."""
        return ()

    def enter_stage(self, iteration: int, total: int, optimizer, *, resample: bool) -> None:
        """Set the coarse-to-fine state that holds at ``iteration`` of a fit of
        ``total`` steps. ``resample``: the fit steps into a new stage now (a grid
        upsamples its values, and ``optimizer``'s moments, in place); without it
        the arrays already hold that stage's layout (a fresh field at 0, or a
        checkpoint loaded at ``iteration``). Arrays keep their identity (only
        their contents change), so a captured step graph stays valid.
        Default: nothing to do."""

    # ------------------------------------------------ the kind's own loss term

    def regularize(self, weight: float, iteration: wp.array, term: int, terms_out: wp.array,
                   loss_out: wp.array, tape: wp.Tape | None = None) -> None:  # fmt: skip
        """Add the kind's own regulariser to a step's loss: ``weight`` x its value
        to ``loss_out[0]`` and the unweighted value to ``terms_out[term]``, with
        its parameter gradient recorded on ``tape``. ``iteration`` is the device
        iteration counter (for draws that differ per step). Called inside every
        step, so it must launch the same kernels every time: no allocation, no
        readback (a captured graph replays it). Default: none (the grid's
        smoothness term is one)."""

    def backward_into(self, points: wp.array, adj_values: wp.array) -> None:
        """``params.grad += sum_i adj_values[i] * d sdf(points[i]) / d params``."""
        f = self.functions
        f.launch(
            backward_kernel(f),
            points.shape[0],
            inputs=[self.params, self.meta, points, adj_values],
            outputs=[self.params.grad],
            device=self.device,
        )

    @property
    def device(self) -> wp.context.Device:
        return self.params.device

    @property
    def num_params(self) -> int:
        return self.params.shape[0]

    def values(self, points: np.ndarray) -> np.ndarray:
        """SDF values (N,) at world points (N, 3), no gradients (for tests and export)."""
        pts = wp.array(
            np.asarray(points, np.float32).reshape(-1, 3), dtype=wp.vec3, device=self.device
        )
        out = wp.empty(pts.shape[0], dtype=float, device=self.device)
        detached = wp.empty_like(out)
        evaluate(self, pts, out, detached)
        return out.numpy()


# Step of the finite-difference gradient, world units. float32 SDF values of
# order 1 keep about 1e-7 absolute precision, so this gives normals good to ~1e-3.
FD_GRADIENT_STEP = 5e-4

# The four tetrahedron directions of the finite-difference gradient:
# grad f ~= sum_k k * f(x + h k) / (4 h).
TETRAHEDRON = (
    (1.0, -1.0, -1.0),
    (-1.0, -1.0, 1.0),
    (-1.0, 1.0, -1.0),
    (1.0, 1.0, 1.0),
)


TETRA_0 = wp.constant(wp.vec3(*TETRAHEDRON[0]))
TETRA_1 = wp.constant(wp.vec3(*TETRAHEDRON[1]))
TETRA_2 = wp.constant(wp.vec3(*TETRAHEDRON[2]))
TETRA_3 = wp.constant(wp.vec3(*TETRAHEDRON[3]))


@wp.func
def tetrahedral_gradient(f0: float, f1: float, f2: float, f3: float) -> wp.vec3:
    """grad f from f_j = f(x + FD_GRADIENT_STEP k_j), k_j the TETRAHEDRON
    directions in order. Differentiable w.r.t. the four values (the eikonal
    loss goes through it)."""
    h = float(FD_GRADIENT_STEP)
    return (TETRA_0 * f0 + TETRA_1 * f1 + TETRA_2 * f2 + TETRA_3 * f3) / (4.0 * h)


def fd_gradient(sdf: wp.Function) -> wp.Function:
    """A ``grad`` for fields without a closed form: the tetrahedral central
    difference, 4 SDF evaluations, error O(h^2)."""

    @wp.func
    def grad(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> wp.vec3:
        h = float(FD_GRADIENT_STEP)
        return tetrahedral_gradient(
            sdf(params, meta, x + TETRA_0 * h),
            sdf(params, meta, x + TETRA_1 * h),
            sdf(params, meta, x + TETRA_2 * h),
            sdf(params, meta, x + TETRA_3 * h),
        )

    return grad


@functools.cache
def eval_kernel(functions: FieldFunctions) -> wp.Kernel:
    """values_out[i] = sdf(points[i]) for one field kind (built once, cached)."""
    sdf = functions.sdf

    @wp.kernel(enable_backward=False, module="unique", name=f"eval_field_kernel_{functions.name}")
    def eval_field_kernel(
        count: int,  # N
        params: wp.array(dtype=float),  # (P,) field parameters (Field.kernel_params)
        meta: wp.array(dtype=float),  # field sizes and constants
        points: wp.array(dtype=wp.vec3),  # (N,) world units
        values_out: wp.array(dtype=float),  # (N,) SDF values, world units
        detached_out: wp.array(dtype=float),  # (N,) the same values, outside any gradient
    ):
        """One thread per point (dim = N rounded up to whole blocks; surplus
        threads evaluate the last point and write nothing). Its gradient is
        :func:`backward_kernel`."""
        i = wp.tid()
        f = sdf(params, meta, points[wp.min(i, count - 1)])
        if i < count:
            values_out[i] = f
            detached_out[i] = f

    return eval_field_kernel


@functools.cache
def backward_kernel(functions: FieldFunctions) -> wp.Kernel:
    """params_grad += sum_i adj_values[i] * d sdf(points[i]) / d params."""
    if functions.backward is None:
        raise TypeError(f"field kind {functions.name!r} has no parameter gradient")
    backward = functions.backward
    block_any = functions.block_any

    @wp.kernel(
        enable_backward=False, module="unique", name=f"backward_field_kernel_{functions.name}"
    )
    def backward_field_kernel(
        count: int,  # N
        params: wp.array(dtype=float),  # (P,) field parameters (Field.kernel_params)
        meta: wp.array(dtype=float),  # field sizes and constants
        points: wp.array(dtype=wp.vec3),  # (N,) world units
        adj_values: wp.array(dtype=float),  # (N,) dL / d value
        params_grad_out: wp.array(dtype=float),  # (P,) accumulated (atomic adds)
    ):
        """One thread per point (dim = N rounded up to whole blocks). Blocks whose
        adjoints are all zero skip the work; surplus threads carry a zero adjoint."""
        i = wp.tid()
        j = wp.min(i, count - 1)
        adj = wp.where(i < count, adj_values[j], 0.0)
        if block_any(wp.where(adj != 0.0, 1, 0)) != 0:
            backward(params, meta, points[j], adj, params_grad_out)

    return backward_field_kernel


def evaluate(
    field: Field,
    points: wp.array,
    values_out: wp.array,
    detached_out: wp.array,
    tape: wp.Tape | None = None,
) -> None:
    """SDF values at ``points``. With a ``tape``, ``values_out.grad`` flows back
    into ``field.params.grad`` when the tape is run backwards.
    ``detached_out`` receives the same values, for terms that must treat them
    as constants (the f0 of the implicit hit point)."""
    field.functions.launch(
        eval_kernel(field.functions),
        points.shape[0],
        inputs=[field.kernel_params(), field.meta, points],
        outputs=[values_out, detached_out],
        device=field.device,
        record_tape=False,  # its gradient is the custom backward below
    )
    if tape is not None:
        record_backward(field, points, values_out, tape)


def record_backward(field: Field, points: wp.array, values: wp.array, tape: wp.Tape) -> None:
    """Record on ``tape`` that ``values`` are the field at ``points``, so that
    ``values.grad`` flows into ``field.params.grad`` (the custom backward). For
    values :func:`evaluate` computed, or that a kernel already had (the march's
    least SDF, :func:`warpsdf.losses.sample_values`)."""

    def backward() -> None:
        field.backward_into(points, values.grad)

    tape.record_func(backward, arrays=[field.params, values])
