"""The hash-grid field: a sphere plus a small network on a multiresolution hash
encoding (instant-ngp),

    f(x) = |x| - r + MLP(encoding(x)),

r = ``model.init_radius``. The encoding is :mod:`warpsdf.fields.hash_encoding`;
the network is the MLP of :mod:`warpsdf.fields.mlp_core` on those features
(its scalar kernels, :mod:`warpsdf.fields.mlp_scalar`, or its tiled ones,
:mod:`warpsdf.fields.mlp_tiled`). ``params`` is one flat array: the levels'
tables, then the network in the MLP's flat layout (:func:`hashgrid_init`).

It starts as the sphere: the tables hold uniform values in [-1e-4, 1e-4], the
output layer's weights are small and its bias cancels the network's value at a
zero encoding, so f = |x| - r to about 1e-5.

Coarse to fine (:meth:`HashGridField.stage_starts`): the first levels are
active from the start and the others switch on one at a time, evenly over the
first ``model.coarse_to_fine`` of the fit. An inactive level's features are 0
(a count in ``meta``), so its entries get no gradient and Adam leaves them
alone; the parameter array never changes size, so Adam's state, checkpoints and
a captured CUDA graph stay valid, and the active count is a function of the
iteration alone (a resume at the same total continues bit-identically).

Gradients: the parameter backward is the network's, carried on to the
features and scattered into the 8 corner entries of every active level
(:func:`warpsdf.fields.hash_encoding.hash_backward`). The spatial gradient is
analytic on the scalar kernels (the network's d f / d features, then the
trilinear weights' derivatives: about 3 encodings' work) and the tetrahedral
finite difference on the tiled ones (4 evaluations).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import warp as wp

from warpsdf.fields import mlp_tiled
from warpsdf.fields.base import Field, FieldFunctions, backward_kernel, fd_gradient
from warpsdf.fields.hash_encoding import (
    HASH,
    META_ACTIVE,
    META_RADIUS,
    HashGridSpec,
    hash_meta,
    hash_spatial,
    init_table,
)
from warpsdf.fields.mlp_core import SOFTPLUS_BETA, layer_offset, network_forward
from warpsdf.fields.mlp_scalar import network_backward, network_feature_grad
from warpsdf.limits import (
    MAX_ENCODING_INPUTS,
    MAX_HASH_FEATURES,
    MAX_HASH_LEVELS,
    MAX_HASH_LOG2_SIZE,
    MAX_HASH_RESOLUTION,
    MAX_LAYERS,
    MAX_WIDTH,
    MIN_HASH_LOG2_SIZE,
)
from warpsdf.scene import MLPKernels

# Spread of the output layer's initial weights: small, so the network starts
# close to a constant (the bias cancels it) whatever the encoding learns first.
OUT_INIT_STD = 1e-2


def network_size(spec: HashGridSpec) -> int:
    """Floats of the network on the encoding (the MLP's flat layout)."""
    return layer_offset(spec.layers, spec.n_in, spec.width) + spec.width + 1


def num_params(spec: HashGridSpec) -> int:
    """Length of the flat parameter array: the tables, then the network."""
    return spec.table_size + network_size(spec)


def hashgrid_init(spec: HashGridSpec, rng: np.random.Generator) -> np.ndarray:
    """The flat (P,) float32 parameters of the field at its start, the sphere:
    tables near 0, hidden layers He-initialised with zero biases, the output
    weights small and the output bias cancelling the network's value at a zero
    encoding."""
    chunks = [init_table(spec, rng).astype(np.float64)]
    fan_in = spec.n_in
    for _ in range(spec.layers):
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(spec.width, fan_in))
        chunks += [w.ravel(), np.zeros(spec.width)]
        fan_in = spec.width
    w_out = rng.normal(0.0, OUT_INIT_STD, size=spec.width)
    # the hidden units at a zero encoding (float64), which b_out cancels
    a = np.zeros(spec.n_in)
    for k in range(spec.layers):
        w, b = chunks[1 + 2 * k].reshape(spec.width, -1), chunks[2 + 2 * k]
        a = np.logaddexp(0.0, SOFTPLUS_BETA * (w @ a + b)) / SOFTPLUS_BETA
    chunks += [w_out, np.array([-w_out @ a])]
    params = np.concatenate(chunks).astype(np.float32)
    assert params.size == num_params(spec)
    return params


def check_spec(spec: HashGridSpec) -> None:
    """The sizes one compiled kernel supports (warpsdf.limits), else ValueError."""
    bounds = {
        "levels": (spec.levels, 1, MAX_HASH_LEVELS),
        "features": (spec.features, 1, MAX_HASH_FEATURES),
        "log2_size": (spec.log2_size, MIN_HASH_LOG2_SIZE, MAX_HASH_LOG2_SIZE),
        "base_resolution": (spec.base_resolution, 1, spec.max_resolution),
        "max_resolution": (spec.max_resolution, spec.base_resolution, MAX_HASH_RESOLUTION),
        "network inputs (levels x features)": (spec.n_in, 1, MAX_ENCODING_INPUTS),
        "width": (spec.width, 1, MAX_WIDTH),
        "layers": (spec.layers, 1, MAX_LAYERS),
    }
    for name, (value, low, high) in bounds.items():
        if not low <= value <= high:
            raise ValueError(f"hash grid {name} must be in [{low}, {high}], got {value}")


# ---------------------------------------------------------------------------
# Field functions
# ---------------------------------------------------------------------------


@wp.func
def sphere_prior(meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """|x| - r, r = meta[META_RADIUS] (world units)."""
    return wp.length(x) - meta[META_RADIUS]


@wp.func
def sphere_prior_grad(x: wp.vec3) -> wp.vec3:
    """d |x| / d x (0 at the origin)."""
    n = wp.length(x)
    if n > 0.0:
        return x / n
    return wp.vec3(0.0)


_network_value = network_forward(HASH, False)
_feature_grad = network_feature_grad(HASH)
backward_hashgrid = network_backward(HASH)


@wp.func
def sdf_hashgrid(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """f(x) (world units) on the flat layout: the sphere plus the network.
    Forward only (its parameter gradient is ``backward_hashgrid``)."""
    value, _zs = _network_value(params, meta, x)
    return sphere_prior(meta, x) + value


@wp.func
def grad_hashgrid(
    params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3
) -> wp.vec3:
    """The analytic d f / d x: the sphere's, plus the network's gradient with
    respect to its features taken through the encoding's trilinear weights."""
    d_features = _feature_grad(params, meta, x, 1.0, params)
    return sphere_prior_grad(x) + hash_spatial(params, meta, x, 0, d_features)


SCALAR_FUNCTIONS = FieldFunctions(
    "hashgrid", sdf_hashgrid, grad_hashgrid, backward_hashgrid, grad_cost=3
)


@functools.cache
def tiled_functions(width_p: int, block_dim: int) -> FieldFunctions:
    """The collective field functions on the tiled network for one width bucket
    and block size (built once)."""
    net = mlp_tiled.tiled_network(width_p, block_dim, HASH)
    network_value = net.sdf

    @wp.func
    def sdf_hashgrid_tiled(
        params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3
    ) -> float:
        """f(x) for every thread of the block (collective); ``params`` is the
        padded network followed by the tables."""
        return sphere_prior(meta, x) + network_value(params, meta, x)

    return FieldFunctions(
        f"hashgrid_tiled_w{width_p}_b{block_dim}",
        sdf_hashgrid_tiled,
        fd_gradient(sdf_hashgrid_tiled),
        net.backward,
        block_dim=block_dim,
        block_any=net.block_any,
    )


# ---------------------------------------------------------------------------
# Coarse-to-fine schedule
# ---------------------------------------------------------------------------


def start_levels(levels: int) -> int:
    """Levels active from the first step: the coarsest quarter (at least one)."""
    return max(1, levels // 4)


def level_starts(levels: int, coarse_to_fine: float, total: int) -> list[int]:
    """The iteration (0-based) at which each level switches on, in a fit of
    ``total`` steps: 0 for the first :func:`start_levels`, then evenly up to
    S = round(coarse_to_fine * total), kept below ``total`` so the finest level
    trains at least one step."""
    first = start_levels(levels)
    span = min(int(round(coarse_to_fine * total)), max(total - 1, 0))
    rest = levels - first
    return [0] * first + [(k * span + rest - 1) // rest for k in range(1, rest + 1)]


# ---------------------------------------------------------------------------
# The field
# ---------------------------------------------------------------------------


class HashGridField(Field):
    """A hash-grid SDF; ``params`` requires grad so it can be fitted.

    ``params`` is the flat layout (tables, then network). With the tiled
    kernels the network is read from a padded copy refreshed by
    :meth:`kernel_params`: one buffer holds [padded network | tables | flat
    network], ``params`` is its view from the tables on and the kernels' array
    its view up to the flat network, so the tables are shared, never copied
    (and likewise their gradient). ``coarse_to_fine`` (a fraction of the fit)
    sets the stage schedule; a new field has every level active."""

    functions = SCALAR_FUNCTIONS

    def __init__(self, params: np.ndarray, spec: HashGridSpec, *, coarse_to_fine: float = 0.0,
                 device=None, kernels: MLPKernels = MLPKernels.AUTO,
                 block_dim: int | None = None):  # fmt: skip
        check_spec(spec)
        params = np.asarray(params, np.float32).reshape(-1)
        if params.size != num_params(spec):
            raise ValueError("hash-grid parameter count does not match its sizes")
        self.spec = spec
        self.coarse_to_fine = float(coarse_to_fine)
        device = wp.get_device(device)
        self.kernels, bucket = self._choose_kernels(MLPKernels(kernels), device, block_dim)
        pad = 0 if bucket is None else mlp_tiled.padded_size(bucket, spec.layers)
        table = spec.table_size
        self._buffer = wp.zeros(pad + params.size, dtype=float, device=device)
        self._grad_buffer = wp.zeros(pad + params.size, dtype=float, device=device)
        flat = self._buffer[pad:]
        flat.assign(params)
        flat.grad = self._grad_buffer[pad:]
        self._meta_host = np.array(hash_meta(spec, spec.levels), np.float32)
        super().__init__(flat, wp.array(self._meta_host, dtype=float, device=device))
        self._bucket = bucket
        if bucket is not None:
            self._padded = self._buffer[: pad + table]
            self._padded_grad = self._grad_buffer[: pad + table]
            self._padded_network = self._buffer[:pad]
            self._padded_network_grad = self._grad_buffer[:pad]
            self._network = self._buffer[pad + table :]
            self._network_grad = self._grad_buffer[pad + table :]

    def _choose_kernels(self, kernels: MLPKernels, device, block_dim: int | None):
        """(kernels, width bucket or None) and this kind's functions."""
        bucket = mlp_tiled.width_bucket(self.spec.width)
        if kernels is MLPKernels.AUTO:
            # the CPU: the scalar kernels (as fast at these widths, with the
            # analytic spatial gradient); a GPU: block-level weight gradients
            tiled = device.is_cuda and bucket is not None
            if tiled:  # the MLP's tiles, plus the features' gradient in the backward
                need = mlp_tiled.TILE_SHARED_BYTES[bucket]
                tiled = need < device.max_shared_memory_per_block
            kernels = MLPKernels.TILED if tiled else MLPKernels.SCALAR
        if kernels is MLPKernels.SCALAR:
            return kernels, None
        if bucket is None:
            raise ValueError(
                f"the tiled kernels take widths up to {mlp_tiled.TILE_WIDTHS[-1]}, "
                f"got {self.spec.width} (use the scalar kernels)"
            )
        block_dim = mlp_tiled.check_block_dim(device, block_dim)
        self.functions = tiled_functions(bucket, block_dim)
        return kernels, bucket

    # ------------------------------------------------------------ kernels

    def kernel_params(self) -> wp.array:
        if self._bucket is None:
            return self.params
        mlp_tiled.pack_network(self._network, self.meta, self._bucket, self._padded_network)
        return self._padded

    def backward_into(self, points: wp.array, adj_values: wp.array) -> None:
        if self._bucket is None:
            super().backward_into(points, adj_values)
            return
        f = self.functions
        self._padded_network_grad.zero_()  # the tables' part is params.grad itself
        f.launch(
            backward_kernel(f),
            points.shape[0],
            inputs=[self._padded, self.meta, points, adj_values],
            outputs=[self._padded_grad],
            device=self.device,
        )
        mlp_tiled.unpack_network_grad(
            self._padded_network_grad, self.meta, self._bucket, self._network_grad
        )

    # ------------------------------------------------ coarse-to-fine stages

    @property
    def active_levels(self) -> int:
        """Levels the kernels currently use (the rest give 0)."""
        return int(self._meta_host[META_ACTIVE])

    def set_active_levels(self, count: int) -> None:
        """Switch the first ``count`` levels on and the rest off (meta's contents
        change, not its identity)."""
        if not 1 <= count <= self.spec.levels:
            raise ValueError(f"active levels must be in [1, {self.spec.levels}], got {count}")
        if count != self.active_levels:
            self._meta_host[META_ACTIVE] = float(count)
            self.meta.assign(self._meta_host)

    def stage_starts(self, total: int) -> tuple[int, ...]:
        return _stage_starts(self.spec.levels, self.coarse_to_fine, total)

    def enter_stage(self, iteration: int, total: int, optimizer, *, resample: bool) -> None:
        starts = level_starts(self.spec.levels, self.coarse_to_fine, total)
        self.set_active_levels(sum(1 for s in starts if s <= iteration))


@functools.lru_cache(maxsize=64)
def _stage_starts(levels: int, coarse_to_fine: float, total: int) -> tuple[int, ...]:
    """The iterations where a level switches on (the Fitter asks every step)."""
    return tuple(sorted({s for s in level_starts(levels, coarse_to_fine, total) if s > 0}))
