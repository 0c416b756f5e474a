"""The neural SDF of :mod:`warpsdf.fields.mlp_core`, evaluated a thread block at a
time with Warp's tile API (``tile_matmul``), for the GPU.

The scalar kernels in :mod:`warpsdf.fields.mlp_scalar` run one point per thread: each
thread reads every weight, and the parameter backward does one atomic add per
thread per weight. Here a block of ``block_dim`` threads stacks its points'
features as the columns of a tile and pushes the whole block through each layer
with one matrix product; the weight gradient of a block is one tile product and
one ``tile_atomic_add`` per weight. The maths is the same network, so values and
gradients match the scalar path to rounding (tests compare them).

Tile shapes must be compile-time constants, while widths live in ``meta`` and
must not recompile anything, so the kernels work on a zero-padded copy of the
parameters (``padded``), built for a *width bucket* (32 or 64 units) and
refreshed from the flat ``params`` by one small kernel before each use:

    W0   (width_p x TILE_INPUTS)  row-major; column TILE_INPUTS - 1 holds b0 (the
                                   feature vector ends with a constant 1)
    per hidden layer l >= 1:  W_l (width_p x width_p), then b_l (width_p)
    w_out (width_p), then b_out

Padded units get weights 0 and a bias that makes their activation exactly 0
(:func:`pad_bias`): ``PAD_BIAS`` for softplus (whose slope is 0 there too),
0 for sine (sin 0 = 0; its slope omega0 meets an upstream gradient that is 0,
since the padded unit's outgoing weights are). So they change neither the value
nor any real gradient. ``tile_map`` takes a unary function, so the functions
are built per activation (:func:`tile_activation`), as they are per width
bucket; the packing kernels read the activation from ``meta``.
Gradients come back into the flat ``params.grad`` through the same index map.
An input encoding with parameters (the hash grid's table, see
:class:`~warpsdf.fields.mlp_core.Encoding`) is read from the padded array after
the network, at ``padded_size(width_p, layers)``, and its gradient goes there in
the padded gradient (:func:`tiled_network`); its owner keeps that part of both
arrays shared with the flat ones (no copies).
``block_dim`` is 1 on the CPU (where Warp runs one thread per block) unless
``wp.config.enable_cpu_blocks`` is set, which tests use to run real blocks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

import warp as wp

from warpsdf.fields.base import FieldFunctions, fd_gradient
from warpsdf.fields.mlp_core import (
    ACTIVATION_SCALE,
    FOURIER,
    META_ACTIVATION,
    ActivationCode,
    Encoding,
    activation,
    activation_slope,
    num_inputs,
    unpack_meta,
    vec_features,
    wp_layer_offset,
)
from warpsdf.limits import MAX_FREQUENCIES, MAX_TILED_WIDTH

# Padded input features: num_inputs(MAX_FREQUENCIES) = 63 real ones, then a constant 1.
TILE_INPUTS = 64
assert num_inputs(MAX_FREQUENCIES) < TILE_INPUTS
# Width buckets: a width runs in the smallest bucket that holds it. Wider
# networks use the scalar kernels: at 128 the tiles of the backward outgrow a
# block's shared memory (Warp's 256 KiB CPU arena overflowed).
TILE_WIDTHS = (32, MAX_TILED_WIDTH)
# Threads (points) per block on the GPU.
CUDA_TILE_BLOCK = 32
# Shared memory per block the largest tiled kernel (the backward) needs at
# CUDA_TILE_BLOCK, by width bucket, read from Warp 1.19's generated CUDA code
# (the march and evaluation need 66,176 and 33,152 bytes). An H100/H200 block
# may have 227 KiB; an A100 163 KiB; sm_86/89 cards 99 KiB.
TILE_SHARED_BYTES = {32: 82_944, 64: 190_208}
# The bias of padded softplus units: softplus(PAD_BIAS) and its slope are
# exactly 0 in float32 (a padded sine unit's is 0: :func:`pad_bias`).
PAD_BIAS = -1.0e4

vec_tile_inputs = wp.types.vector(length=TILE_INPUTS, dtype=float)


class PadFill(IntEnum):
    """What a padded entry holds when it has no source in the flat parameters
    (:func:`padded_source` returns these, negative, instead of an index)."""

    ZERO = -1  # a padded weight
    BIAS = -2  # a padded unit's bias: pad_bias(activation)


def width_bucket(width: int) -> int | None:
    """The padded width the tiled kernels use for ``width`` (None: too wide)."""
    for w in TILE_WIDTHS:
        if width <= w:
            return w
    return None


def padded_size(width_p: int, layers: int) -> int:
    """Floats in the padded parameter array."""
    return width_p * TILE_INPUTS + (layers - 1) * (width_p * width_p + width_p) + width_p + 1


@wp.func
def padded_source(k: int, meta: wp.array(dtype=float), width_p: int) -> int:
    """Where padded entry ``k`` (of a network with sizes ``meta``, in width bucket
    ``width_p``) comes from in the flat parameters: an index, or a negative
    :class:`PadFill` code. Integer arithmetic only."""
    n_in, width, layers, _scale, _act = unpack_meta(meta)
    ki = TILE_INPUTS
    if k < width_p * ki:  # W0 with b0 in its last column
        j = k // ki
        i = k - j * ki
        if j >= width:
            return wp.where(i == ki - 1, int(PadFill.BIAS), int(PadFill.ZERO))
        if i == ki - 1:
            return width * n_in + j
        if i < n_in:
            return j * n_in + i
        return int(PadFill.ZERO)
    k = k - width_p * ki
    for layer in range(1, layers):
        flat = wp_layer_offset(layer, n_in, width)
        if k < width_p * width_p:
            j = k // width_p
            i = k - j * width_p
            if j < width and i < width:
                return flat + j * width + i
            return int(PadFill.ZERO)
        k = k - width_p * width_p
        if k < width_p:
            if k < width:
                return flat + width * width + k
            return int(PadFill.BIAS)
        k = k - width_p
    flat = wp_layer_offset(layers, n_in, width)
    if k < width_p:  # w_out
        if k < width:
            return flat + k
        return int(PadFill.ZERO)
    return flat + width  # b_out


@wp.func
def pad_bias(code: int) -> float:
    """The bias of a padded unit, whose activation must be exactly 0 (``code``
    an :class:`~warpsdf.fields.mlp_core.ActivationCode`): PAD_BIAS for softplus,
    0 for sine."""
    if code == int(ActivationCode.SINE):
        return 0.0
    return PAD_BIAS


@wp.kernel
def pack_mlp_kernel(
    params: wp.array(dtype=float),  # (P,) flat MLP parameters (see warpsdf.fields.mlp_core)
    meta: wp.array(dtype=float),  # the network's meta, NETWORK_META header first
    width_p: int,  # the width bucket
    padded_out: wp.array(dtype=float),  # (padded_size,) the tiled kernels' copy
):
    """One thread per padded entry (dim = padded_size). Not differentiable
    (gradients come back through :func:`unpack_grad_kernel`)."""
    k = wp.tid()
    src = padded_source(k, meta, width_p)
    v = float(0.0)
    if src >= 0:
        v = params[src]
    elif src == int(PadFill.BIAS):
        v = pad_bias(int(meta[META_ACTIVATION]))
    padded_out[k] = v


@wp.kernel
def unpack_grad_kernel(
    padded_grad: wp.array(dtype=float),  # (padded_size,) gradient in the padded layout
    meta: wp.array(dtype=float),  # the network's meta, NETWORK_META header first
    width_p: int,  # the width bucket
    params_grad_out: wp.array(dtype=float),  # (P,) flat gradient, accumulated (+=)
):
    """One thread per padded entry (dim = padded_size); each flat entry has
    exactly one source, so no atomics."""
    k = wp.tid()
    src = padded_source(k, meta, width_p)
    if src >= 0:
        params_grad_out[src] = params_grad_out[src] + padded_grad[k]


def check_block_dim(device, block_dim: int | None) -> int:
    """The tiled kernels' block size on ``device`` (None: its default): whole
    warps on a GPU; more than 1 on the CPU only with ``enable_cpu_blocks``."""
    if block_dim is None:
        block_dim = CUDA_TILE_BLOCK if device.is_cuda else 1
    if device.is_cuda and block_dim % 32:
        raise ValueError(f"tiled MLP block_dim on a GPU must be whole warps, got {block_dim}")
    if block_dim < 1 or (block_dim > 1 and device.is_cpu and not wp.config.enable_cpu_blocks):
        raise ValueError(
            f"tiled MLP block_dim {block_dim} on the CPU needs wp.config.enable_cpu_blocks"
        )
    return block_dim


def pack_network(params: wp.array, meta: wp.array, width_p: int, padded: wp.array) -> None:
    """Refresh ``padded`` (the tiled kernels' copy) from the flat network
    ``params`` (:func:`pack_mlp_kernel`); not recorded on a tape."""
    wp.launch(
        pack_mlp_kernel, dim=padded.shape[0], inputs=[params, meta, width_p],
        outputs=[padded], device=padded.device, record_tape=False,
    )  # fmt: skip


def unpack_network_grad(
    padded_grad: wp.array, meta: wp.array, width_p: int, params_grad: wp.array
) -> None:
    """``params_grad += padded_grad`` mapped back to the flat layout
    (:func:`unpack_grad_kernel`)."""
    wp.launch(
        unpack_grad_kernel, dim=padded_grad.shape[0], inputs=[padded_grad, meta, width_p],
        outputs=[params_grad], device=padded_grad.device,
    )  # fmt: skip


def _tile_features(encoding: Encoding) -> wp.Function:
    inputs = encoding.features

    @wp.func
    def tile_features(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                      table_base: int) -> vec_tile_inputs:  # fmt: skip
        """The encoding's features at x (world units), zero-padded, with a
        constant 1 last (it multiplies b0). Not differentiated."""
        real, _base = inputs(params, meta, x, table_base)
        feat = vec_tile_inputs()
        for i in range(int(meta[0])):
            feat[i] = real[i]
        feat[TILE_INPUTS - 1] = 1.0
        return feat

    return tile_features


@wp.func
def same_int(v: int) -> int:
    """The identity, for ``tile_map`` (see ``block_any_tiled``)."""
    return v


@dataclass(frozen=True)
class TileActivation:
    """An activation as the unary and binary functions ``tile_map`` takes."""

    forward: wp.Function  # z -> act(z)
    gate: wp.Function  # (g, z) -> g act'(z): the upstream gradient back through it


@functools.cache
def tile_activation(code: ActivationCode) -> TileActivation:
    """``code``'s activation at its fixed scale (SOFTPLUS_BETA or SIREN_OMEGA0),
    through :func:`~warpsdf.fields.mlp_core.activation` and
    :func:`~warpsdf.fields.mlp_core.activation_slope` (compile-time constants
    here, so the branch folds away). Built once per activation."""
    c = int(code)
    scale = float(ACTIVATION_SCALE[ActivationCode(code)])

    @wp.func
    def act_fixed(z: float) -> float:
        """The activation of z at the fixed scale."""
        return activation(z, scale, c)

    @wp.func
    def gate(g: float, z: float) -> float:
        """Back through the activation: the upstream gradient times its slope at z."""
        return g * activation_slope(z, scale, c)

    return TileActivation(act_fixed, gate)


@dataclass(frozen=True)
class TiledNetwork:
    """The collective functions of one network (see :func:`tiled_network`)."""

    sdf: wp.Function  # (padded, meta, x) -> the network's value at x
    backward: wp.Function  # (padded, meta, x, adj, padded_grad): += adj d value / d params
    block_any: wp.Function  # (flag) -> non-zero on every thread when on any


@functools.cache
def tiled_functions(
    width_p: int, block_dim: int, act: ActivationCode = ActivationCode.SOFTPLUS
) -> FieldFunctions:
    """The collective field functions of the Fourier-feature MLP for one width
    bucket, block size and activation (built once; each is one set of kernels)."""
    net = tiled_network(width_p, block_dim, FOURIER, act)
    return FieldFunctions(
        f"mlp_tiled{_activation_tag(act)}_w{width_p}_b{block_dim}",
        net.sdf,
        fd_gradient(net.sdf),
        net.backward,
        block_dim=block_dim,
        block_any=net.block_any,
    )


def _activation_tag(act: ActivationCode) -> str:
    """The part of a kernel-cache name that tells the activation ("" for softplus,
    whose kernels keep their names)."""
    act = ActivationCode(act)
    return "" if act is ActivationCode.SOFTPLUS else f"_{act.name.lower()}"


@functools.cache
def tiled_network(
    width_p: int,
    block_dim: int,
    encoding: Encoding,
    act: ActivationCode = ActivationCode.SOFTPLUS,
) -> TiledNetwork:
    """The collective functions of the network on ``encoding``'s features, for
    one width bucket, block size and activation (:func:`tile_activation`; the
    ``meta`` they are launched with must name the same one). An encoding with
    parameters finds them in the padded array at ``padded_size(width_p,
    layers)``; its backward gets d L / d features = W_0^T dz_0 (one more tile
    product) per thread."""
    # tile shapes must be compile-time constants: closure ints
    WP = width_p
    B = block_dim
    KI = TILE_INPUTS
    WK = WP * KI
    WW = WP * WP
    tile_features = _tile_features(encoding)
    has_params = encoding.has_params
    encoding_backward = encoding.backward
    tile_act = tile_activation(ActivationCode(act))
    act_fixed = tile_act.forward
    gate = tile_act.gate

    @wp.func
    def table_base(meta: wp.array(dtype=float)) -> int:
        """Where an encoding's parameters start in the padded array."""
        layers = int(meta[2])
        return WK + (layers - 1) * (WW + WP) + WP + 1

    @wp.func
    def hidden_z(params: wp.array(dtype=float), off: int, a: wp.tile(dtype=float, shape=(WP, B))):
        """W a + b for the hidden layer stored at ``off`` (W then b): (WP, B)."""
        w = wp.tile_reshape(wp.tile_load(params, shape=(WW,), offset=(off,)), shape=(WP, WP))
        b = wp.tile_reshape(wp.tile_load(params, shape=(WP,), offset=(off + WW,)), shape=(WP, 1))
        return wp.tile_matmul(w, a) + wp.tile_broadcast(b, shape=(WP, B))

    @wp.func
    def sdf_mlp_tiled(
        params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3
    ) -> float:
        """The MLP at x (world units), for every thread of the block at once
        (collective). ``params`` is the padded copy. Forward only (its parameter
        gradient is ``backward_mlp_tiled``)."""
        layers = int(meta[2])
        X = wp.tile(tile_features(params, meta, x, table_base(meta)))  # (KI, B): a column each
        w0 = wp.tile_reshape(wp.tile_load(params, shape=(WK,), offset=(0,)), shape=(WP, KI))
        a = wp.tile_map(act_fixed, wp.tile_matmul(w0, X))
        off = int(WK)
        for _l in range(layers - 1):
            a = wp.tile_map(act_fixed, hidden_z(params, off, a))
            off = off + WW + WP
        w_out = wp.tile_reshape(wp.tile_load(params, shape=(WP,), offset=(off,)), shape=(1, WP))
        out = wp.untile(wp.tile_matmul(w_out, a))  # (1,) per thread
        return out[0] + params[off + WP]

    @wp.func
    def backward_mlp_tiled(params: wp.array(dtype=float), meta: wp.array(dtype=float),
                           x: wp.vec3, adj: float, grad_params: wp.array(dtype=float)):  # fmt: skip
        """grad_params (padded_size,) += sum over the block of adj * d f(x) / d params,
        in the padded layout (collective; one tile_atomic_add per weight and block).
        Hidden activations are recomputed per layer rather than stored, since the
        layer count is dynamic."""
        layers = int(meta[2])
        X = wp.tile(tile_features(params, meta, x, table_base(meta)))  # (KI, B)
        w0 = wp.tile_reshape(wp.tile_load(params, shape=(WK,), offset=(0,)), shape=(WP, KI))
        z0 = wp.tile_matmul(w0, X)
        a = wp.tile_map(act_fixed, z0)
        off = int(WK)
        for _l in range(layers - 1):
            a = wp.tile_map(act_fixed, hidden_z(params, off, a))
            off = off + WW + WP
        # output layer: f = w_out . a + b_out
        adj_row = wp.tile_reshape(wp.tile(adj), shape=(1, B))
        w_out = wp.tile_reshape(wp.tile_load(params, shape=(WP,), offset=(off,)), shape=(1, WP))
        d_w_out = wp.tile_matmul(adj_row, wp.tile_transpose(a))  # (1, WP)
        wp.tile_atomic_add(grad_params, wp.tile_reshape(d_w_out, shape=(WP,)), offset=(off,))
        wp.tile_atomic_add(grad_params, wp.tile_sum(wp.tile(adj)), offset=(off + WP,))
        g = wp.tile_matmul(wp.tile_transpose(w_out), adj_row)  # (WP, B): dL/d a
        ones = wp.tile_ones(shape=(B, 1), dtype=float)
        # hidden layers, last to first
        for step in range(layers - 1):
            layer = layers - 1 - step
            a_prev = wp.tile_map(act_fixed, z0)
            off = int(WK)
            for _k in range(layer - 1):
                a_prev = wp.tile_map(act_fixed, hidden_z(params, off, a_prev))
                off = off + WW + WP
            # layer l's W, loaded once for z and for the gradient passed down
            w = wp.tile_reshape(wp.tile_load(params, shape=(WW,), offset=(off,)), shape=(WP, WP))
            b = wp.tile_load(params, shape=(WP,), offset=(off + WW,))
            z = wp.tile_matmul(w, a_prev) + wp.tile_broadcast(
                wp.tile_reshape(b, shape=(WP, 1)), shape=(WP, B)
            )
            dz = wp.tile_map(gate, g, z)  # (WP, B): dL/d z
            d_w = wp.tile_matmul(dz, wp.tile_transpose(a_prev))  # (WP, WP)
            wp.tile_atomic_add(grad_params, wp.tile_reshape(d_w, shape=(WW,)), offset=(off,))
            d_b = wp.tile_matmul(dz, ones)  # (WP, 1)
            wp.tile_atomic_add(grad_params, wp.tile_reshape(d_b, shape=(WP,)), offset=(off + WW,))
            g = wp.tile_matmul(wp.tile_transpose(w), dz)
        # first layer (b0 is W0's last column, fed by the constant feature)
        dz0 = wp.tile_map(gate, g, z0)
        d_w0 = wp.tile_matmul(dz0, wp.tile_transpose(X))  # (WP, KI)
        wp.tile_atomic_add(grad_params, wp.tile_reshape(d_w0, shape=(WK,)), offset=(0,))
        if wp.static(has_params):
            d_x = wp.untile(wp.tile_matmul(wp.tile_transpose(w0), dz0))  # (KI,) per thread
            d_features = vec_features()
            for i in range(int(meta[0])):
                d_features[i] = d_x[i]
            encoding_backward(params, meta, x, table_base(meta), d_features, grad_params)

    @wp.func
    def block_any_tiled(flag: int) -> int:
        """Non-zero on every thread of the block when ``flag`` is on any (collective).
        The sum goes through a register tile: extracting from it synchronises the
        block, so the next collective call cannot overwrite the shared sum while a
        later warp still reads it (a race with blocks of more than one warp)."""
        return wp.tile_extract(wp.tile_map(same_int, wp.tile_sum(wp.tile(flag))), 0)

    return TiledNetwork(sdf_mlp_tiled, backward_mlp_tiled, block_any_tiled)
