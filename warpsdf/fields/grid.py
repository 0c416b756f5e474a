"""Dense voxel-grid field: SDF values on a lattice, trilinear in between.

The lattice covers the bound's cube [-b, b]^3 (b = ``march.bound_radius``) with
``n`` cells a side: (n + 1)^3 values at the points ``-b + (i, j, k) h``,
``h = 2b / n`` (world units). A point x is clamped into the cube, written in
lattice units ``u = (x + b) / h`` in [0, n]^3, and f(x) is the trilinear
interpolation of the 8 values at the corners of its cell (8 reads). Inside a
cell the spatial gradient is the trilinear derivative (exact, the same 8
reads: ``grad_cost = 1``); along an axis on which x was clamped it is 0. The
parameter backward scatters ``adj`` times the 8 trilinear weights (8 atomic
adds).

Coarse to fine (``[model] grid_resolution = [n_0, n_1, ...]``, ``coarse_to_fine
= c``): stage k starts at iteration ``floor(k c T / (S - 1))`` of a fit of T
steps (S stages; the finest starts at c T, the coarser ones share [0, c T)
evenly). ``params`` is allocated once for the finest lattice, so Adam's
arrays, checkpoints and a captured step graph never change size:

    params = [values of the active (n + 1)^3 lattice, index (i (n+1) + j) (n+1) + k,
              0 ... 0 (unused), n]

The last entry is the *layout tag*, the active ``n``: it travels with the
parameters (a checkpoint says which lattice it holds) and is never
differentiated (its gradient is always 0, so Adam leaves it exactly as it is).
``meta = [n, b]`` is its device copy that the kernels read. Entering a stage
(:meth:`GridField.enter_stage`) resamples the current values trilinearly onto
the new lattice in the same array (through a temporary copy of the old
values; exact where the old field is trilinear on each new cell, e.g. when
n_1 is a multiple of n_0) and resets Adam (:meth:`warpsdf.fit.optim.Adam.reset`):
a value's moments belong to a lattice point that no longer exists, and
interpolated second moments, accumulated over cells 8 times the volume, would
damp the new values' first updates (DVGO and Plenoxels likewise restart their
optimiser when the grid is upsampled).

The smoothness term (:meth:`GridField.regularize`, the loss term ``smoothness``):
the squared discrete Laplacian over the surface, :mod:`warpsdf.fields.grid_smoothness`.
"""

from __future__ import annotations

import itertools

import numpy as np
import warp as wp

from warpsdf.fields.base import Field, FieldFunctions
from warpsdf.fields.grid_smoothness import smoothness_backward_kernel, smoothness_kernel

GRID_META = 2  # meta = [n (cells a side of the active lattice), b (half extent, world units)]


# ---------------------------------------------------------------------------
# Lattice functions
# ---------------------------------------------------------------------------


@wp.func
def lattice_coords(meta: wp.array(dtype=float), x: wp.vec3) -> wp.vec3:
    """x clamped into [-b, b]^3, in lattice units u = (x + b) / h, in [0, n]^3."""
    n = meta[0]
    b = meta[1]
    s = n / (2.0 * b)
    return wp.vec3(
        (wp.clamp(x[0], -b, b) + b) * s,
        (wp.clamp(x[1], -b, b) + b) * s,
        (wp.clamp(x[2], -b, b) + b) * s,
    )


@wp.func
def cell_of(n: int, u: float) -> int:
    """The cell (0 .. n - 1) holding lattice coordinate u in [0, n]; u = n lies
    in the last cell, at its far corner."""
    return wp.min(int(u), n - 1)


@wp.func
def trilinear(values: wp.array(dtype=float), n: int, u: wp.vec3) -> float:
    """The interpolated value at lattice coordinates ``u`` in [0, n]^3 of the
    (n + 1)^3 ``values`` (lerp along z, then y, then x)."""
    i = cell_of(n, u[0])
    j = cell_of(n, u[1])
    k = cell_of(n, u[2])
    tx = u[0] - float(i)
    ty = u[1] - float(j)
    tz = u[2] - float(k)
    s = n + 1
    o = (i * s + j) * s + k
    c00 = wp.lerp(values[o], values[o + 1], tz)
    c01 = wp.lerp(values[o + s], values[o + s + 1], tz)
    c10 = wp.lerp(values[o + s * s], values[o + s * s + 1], tz)
    c11 = wp.lerp(values[o + s * s + s], values[o + s * s + s + 1], tz)
    return wp.lerp(wp.lerp(c00, c01, ty), wp.lerp(c10, c11, ty), tx)


@wp.func
def sdf_grid(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """Trilinear SDF value at x (world units), x clamped into the cube. Its
    parameter gradient is :func:`backward_grid` (recorded by ``evaluate``), never
    Warp's own adjoint."""
    return trilinear(params, int(meta[0]), lattice_coords(meta, x))


@wp.func
def grad_grid(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> wp.vec3:
    """d f / d x of :func:`sdf_grid`: the trilinear derivative times 1/h inside
    the cube; 0 along an axis on which x lies outside it (the clamp)."""
    n = int(meta[0])
    b = meta[1]
    u = lattice_coords(meta, x)
    i = cell_of(n, u[0])
    j = cell_of(n, u[1])
    k = cell_of(n, u[2])
    tx = u[0] - float(i)
    ty = u[1] - float(j)
    tz = u[2] - float(k)
    s = n + 1
    o = (i * s + j) * s + k
    v000 = params[o]
    v001 = params[o + 1]
    v010 = params[o + s]
    v011 = params[o + s + 1]
    v100 = params[o + s * s]
    v101 = params[o + s * s + 1]
    v110 = params[o + s * s + s]
    v111 = params[o + s * s + s + 1]
    c00 = wp.lerp(v000, v001, tz)
    c01 = wp.lerp(v010, v011, tz)
    c10 = wp.lerp(v100, v101, tz)
    c11 = wp.lerp(v110, v111, tz)
    dx = wp.lerp(c10, c11, ty) - wp.lerp(c00, c01, ty)
    dy = wp.lerp(c01 - c00, c11 - c10, tx)
    dz = wp.lerp(wp.lerp(v001 - v000, v011 - v010, ty), wp.lerp(v101 - v100, v111 - v110, ty), tx)
    inv_h = float(n) / (2.0 * b)
    return wp.vec3(
        wp.where(wp.abs(x[0]) <= b, dx * inv_h, 0.0),
        wp.where(wp.abs(x[1]) <= b, dy * inv_h, 0.0),
        wp.where(wp.abs(x[2]) <= b, dz * inv_h, 0.0),
    )


@wp.func
def backward_grid(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                  adj: float, grad_params: wp.array(dtype=float)):  # fmt: skip
    """grad_params[corner] += adj * its trilinear weight, for the 8 corners of
    x's cell (the weights sum to 1)."""
    n = int(meta[0])
    u = lattice_coords(meta, x)
    i = cell_of(n, u[0])
    j = cell_of(n, u[1])
    k = cell_of(n, u[2])
    tx = u[0] - float(i)
    ty = u[1] - float(j)
    tz = u[2] - float(k)
    s = n + 1
    o = (i * s + j) * s + k
    a0 = adj * (1.0 - tx)
    a1 = adj * tx
    a00 = a0 * (1.0 - ty)
    a01 = a0 * ty
    a10 = a1 * (1.0 - ty)
    a11 = a1 * ty
    wp.atomic_add(grad_params, o, a00 * (1.0 - tz))
    wp.atomic_add(grad_params, o + 1, a00 * tz)
    wp.atomic_add(grad_params, o + s, a01 * (1.0 - tz))
    wp.atomic_add(grad_params, o + s + 1, a01 * tz)
    wp.atomic_add(grad_params, o + s * s, a10 * (1.0 - tz))
    wp.atomic_add(grad_params, o + s * s + 1, a10 * tz)
    wp.atomic_add(grad_params, o + s * s + s, a11 * (1.0 - tz))
    wp.atomic_add(grad_params, o + s * s + s + 1, a11 * tz)


GRID_FUNCTIONS = FieldFunctions("grid", sdf_grid, grad_grid, backward_grid, grad_cost=1)


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------


@wp.kernel(enable_backward=False)
def resample_grid_kernel(
    source: wp.array(dtype=float),  # ((n_src + 1)^3,) the old lattice's values, world units
    n_src: int,  # cells a side of the old lattice
    n_dst: int,  # cells a side of the new lattice
    params_out: wp.array(dtype=float),  # (P,) the field's params, rewritten whole
):
    """One thread per entry of ``params`` (dim = P). Not differentiable. Entry
    (i, j, k) of the new lattice gets the old field's trilinear value at the
    same point (lattice coordinates (i, j, k) n_src / n_dst, computed from the
    integers, so nested lattices land exactly on old points and cell faces);
    entries past the new lattice become 0 and the last one the layout tag n_dst."""
    p = wp.tid()
    last = params_out.shape[0] - 1
    s = n_dst + 1
    if p == last:
        params_out[p] = float(n_dst)
    elif p >= s * s * s:
        params_out[p] = 0.0
    else:
        i = p // (s * s)
        j = (p // s) % s
        k = p % s
        d = float(n_dst)
        u = wp.vec3(float(i * n_src) / d, float(j * n_src) / d, float(k * n_src) / d)
        params_out[p] = trilinear(source, n_src, u)


# ---------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------


def grid_param_count(finest: int) -> int:
    """Flat parameters of a grid whose finest stage has ``finest`` cells a side:
    its (finest + 1)^3 values and the layout tag."""
    return (finest + 1) ** 3 + 1


def lattice_points(n: int, bound: float) -> np.ndarray:
    """The (n + 1)^3 lattice points of ``n`` cells a side over [-bound, bound]^3,
    ((n + 1)^3, 3) float64, in the order of ``params``."""
    axis = -bound + np.arange(n + 1) * (2.0 * bound / n)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def pack_grid(values: np.ndarray, n: int, finest: int) -> np.ndarray:
    """A params array (:func:`grid_param_count` of ``finest``) holding the
    (n + 1)^3 ``values`` of an ``n``-cell lattice and its layout tag."""
    params = np.zeros(grid_param_count(finest), np.float32)
    params[: (n + 1) ** 3] = np.asarray(values, np.float32).reshape(-1)
    params[-1] = n
    return params


def stage_starts(total: int, count: int, fraction: float) -> tuple[int, ...]:
    """The 0-based iteration at which each of ``count`` stages starts in a fit of
    ``total`` steps: stage k at floor(k fraction total / (count - 1)), so stage 0
    starts at 0 and the last at floor(fraction total)."""
    if count == 1:
        return (0,)
    return tuple(int(k * fraction * total // (count - 1)) for k in range(count))


class GridField(Field):
    """A voxel-grid SDF; ``params`` requires grad so it can be fitted.

    ``resolutions``: cells a side of each coarse-to-fine stage, increasing;
    ``coarse_to_fine``: the fraction of the fit after which the last starts
    (see the module docstring). ``params`` holds the layout of one of the
    stages (its tag says which)."""

    functions = GRID_FUNCTIONS
    sparse_gradients = True  # a value sees the few points in its 8 cells

    def __init__(self, params: np.ndarray, resolutions: tuple[int, ...], bound: float,
                 coarse_to_fine: float = 0.0, device=None):  # fmt: skip
        resolutions = tuple(int(n) for n in resolutions)
        if not resolutions or any(b <= a for a, b in itertools.pairwise(resolutions)):
            raise ValueError(f"grid resolutions must increase, got {list(resolutions)}")
        if resolutions[0] < 2:
            raise ValueError(f"a grid needs at least 2 cells a side, got {resolutions[0]}")
        params = np.asarray(params, np.float32).reshape(-1)
        if params.size != grid_param_count(resolutions[-1]):
            raise ValueError("grid parameter count does not match its finest resolution")
        tag = float(params[-1])
        if tag not in resolutions:
            raise ValueError(
                f"grid parameters hold a lattice of {tag:g} cells a side, not one of "
                f"{list(resolutions)}"
            )
        self.resolutions = resolutions
        self.bound = float(bound)
        self.coarse_to_fine = float(coarse_to_fine)
        self.resolution = int(tag)  # the host's copy of the layout tag
        super().__init__(
            wp.array(params, dtype=float, device=device, requires_grad=True),
            wp.array([tag, self.bound], dtype=float, device=device),
        )
        # Δ_h f per lattice entry, from the smoothness term's forward to its backward
        self._laplacian = wp.zeros(params.size - 1, dtype=float, device=device)

    # ------------------------------------------------ coarse-to-fine stages

    def stage_starts(self, total: int) -> tuple[int, ...]:
        starts = stage_starts(total, len(self.resolutions), self.coarse_to_fine)
        return tuple(sorted({s for s in starts if s > 0}))

    def stage_resolution(self, iteration: int, total: int) -> int:
        """Cells a side of the stage that holds at ``iteration`` (the last stage
        whose start is at or before it)."""
        starts = stage_starts(total, len(self.resolutions), self.coarse_to_fine)
        return max(
            n for n, start in zip(self.resolutions, starts, strict=True) if start <= iteration
        )

    def enter_stage(self, iteration: int, total: int, optimizer, *, resample: bool) -> None:
        """Bring ``params`` to the stage of ``iteration``. The lattice they hold is
        the host's copy of the tag (``resample``) or the tag itself, read back
        (a fresh field or a loaded checkpoint: on a resume with another
        ``optim.iterations`` it may be another stage's). When it differs, the
        values are resampled onto the stage's lattice and ``optimizer`` (an
        :class:`~warpsdf.fit.optim.Adam` over ``params``, or None) restarts."""
        target = self.stage_resolution(iteration, total)
        if not resample:  # the parameters may have been assigned: meta follows their tag
            self.resolution = int(self.params[self.num_params - 1 :].numpy()[0])
            self.meta.assign(np.array([self.resolution, self.bound], np.float32))
        if self.resolution != target:
            self.resample(target)
            if optimizer is not None:
                optimizer.reset()

    def resample(self, n: int) -> None:
        """Trilinearly resample the values onto the ``n``-cell lattice, in place
        (the old values go through a temporary copy); sets the tag and ``meta``."""
        old = self.resolution
        source = wp.clone(self.params[: (old + 1) ** 3], requires_grad=False)
        wp.launch(
            resample_grid_kernel,
            dim=self.num_params,
            inputs=[source, old, n],
            outputs=[self.params],
            device=self.device,
        )
        self.meta.assign(np.array([n, self.bound], np.float32))
        self.resolution = n

    # ------------------------------------------------ smoothness term

    def regularize(self, weight: float, iteration: wp.array, term: int, terms_out: wp.array,
                   loss_out: wp.array, tape: wp.Tape | None = None) -> None:  # fmt: skip
        """The smoothness term (:mod:`warpsdf.fields.grid_smoothness`): ``weight``
        x its value to ``loss_out``, the value to ``terms_out[term]``; with a
        tape, its backward adds the gradient to ``params.grad``. Two launches
        over the finest lattice's entries (idle past the active lattice), the
        same every step: capturable."""
        if weight <= 0.0:
            return
        dim = self.num_params - 1
        wp.launch(
            smoothness_kernel,
            dim=dim,
            inputs=[self.params, self.meta, float(weight), int(term)],
            outputs=[self._laplacian, terms_out, loss_out],
            device=self.device,
            record_tape=False,
        )
        if tape is None:
            return

        def backward() -> None:
            wp.launch(
                smoothness_backward_kernel,
                dim=dim,
                inputs=[
                    self.meta, float(weight), int(term), self._laplacian, terms_out.grad,
                    loss_out.grad,
                ],
                outputs=[self.params.grad],
                device=self.device,
            )  # fmt: skip

        tape.record_func(backward, arrays=[self.params, terms_out, loss_out])

    def values_at_lattice(self) -> np.ndarray:
        """The active lattice's values, (n + 1, n + 1, n + 1) indexed [i, j, k]."""
        s = self.resolution + 1
        return self.params.numpy()[: s**3].reshape(s, s, s).copy()
