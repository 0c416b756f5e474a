"""Neural SDF: an MLP on Fourier features with softplus activations.

    features(x) = [x, sin(2^l pi x), cos(2^l pi x) for l < L]      (3 + 6 L values)
    a_0 = softplus(W_0 features + b_0), a_l = softplus(W_l a_{l-1} + b_l)
    f(x) = w_out . a_{layers-1} + b_out

meta = [L (Fourier frequencies), width, layers, softplus beta]. params holds,
layer by layer, W (width x inputs, row-major) then b, and finally w_out, b_out.
Geometric initialisation (IDR / SAL) makes the field start as the sphere
|x| = init_radius. One compiled kernel serves every width up to MAX_WIDTH,
depth up to MAX_LAYERS and frequency count up to MAX_FREQUENCIES.

The parameter gradient is written by hand (backward through the layers, one
atomic add per weight and point); the spatial gradient is the tetrahedral
finite difference of the field (``fd_gradient``), which the eikonal term of
the fit also uses, so no double backward is needed.

These are the scalar kernels (one point per thread). Widths up to 64 run by
default on the tiled kernels of :mod:`warpsdf.fields.mlp_tiled` (the same
network, a block of points per tile product); :class:`MLPField` picks them.
"""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpsdf.fields.base import Field, FieldFunctions, fd_gradient
from warpsdf.limits import MAX_FREQUENCIES, MAX_LAYERS, MAX_WIDTH
from warpsdf.scene import MLPKernels

SOFTPLUS_BETA = 100.0

vec_width = wp.types.vector(length=MAX_WIDTH, dtype=float)
vec_features = wp.types.vector(length=3 + 6 * MAX_FREQUENCIES, dtype=float)
vec_layers = wp.types.vector(length=MAX_WIDTH * MAX_LAYERS, dtype=float)


def num_inputs(frequencies: int) -> int:
    return 3 + 6 * frequencies


def num_params(frequencies: int, width: int, layers: int) -> int:
    n_in = num_inputs(frequencies)
    return width * n_in + width + (layers - 1) * (width * width + width) + width + 1


@wp.func
def softplus(z: float, beta: float) -> float:
    bz = beta * z
    if bz > 20.0:
        return z
    return wp.log(1.0 + wp.exp(bz)) / beta


@wp.func
def softplus_slope(z: float, beta: float) -> float:
    return 1.0 / (1.0 + wp.exp(-beta * z))


@wp.func
def fourier_features(x: wp.vec3, frequencies: int) -> vec_features:
    feat = vec_features()
    feat[0] = x[0]
    feat[1] = x[1]
    feat[2] = x[2]
    omega = float(wp.pi)
    for k in range(frequencies):
        base = 3 + 6 * k
        feat[base + 0] = wp.sin(omega * x[0])
        feat[base + 1] = wp.sin(omega * x[1])
        feat[base + 2] = wp.sin(omega * x[2])
        feat[base + 3] = wp.cos(omega * x[0])
        feat[base + 4] = wp.cos(omega * x[1])
        feat[base + 5] = wp.cos(omega * x[2])
        omega = omega * 2.0
    return feat


@wp.func
def layer_offset(layer: int, n_in: int, width: int) -> int:
    """Index of W_layer in params (layer == layers gives w_out)."""
    if layer == 0:
        return 0
    return width * n_in + width + (layer - 1) * (width * width + width)


@wp.func
def sdf_mlp(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """The MLP's value at x (world units). Forward only."""
    frequencies = int(meta[0])
    width = int(meta[1])
    layers = int(meta[2])
    beta = meta[3]
    n_in = 3 + 6 * frequencies
    feat = fourier_features(x, frequencies)
    a = vec_width()
    for j in range(width):
        z = params[width * n_in + j]
        for i in range(n_in):
            z += params[j * n_in + i] * feat[i]
        a[j] = softplus(z, beta)
    for layer in range(1, layers):
        off = layer_offset(layer, n_in, width)
        nxt = vec_width()
        for j in range(width):
            z = params[off + width * width + j]
            for i in range(width):
                z += params[off + j * width + i] * a[i]
            nxt[j] = softplus(z, beta)
        a = nxt
    off = layer_offset(layers, n_in, width)
    out = params[off + width]
    for i in range(width):
        out += params[off + i] * a[i]
    return out


@wp.func
def backward_mlp(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                 adj: float, grad_params: wp.array(dtype=float)):  # fmt: skip
    """grad_params += adj * d f(x) / d params (forward pass kept in registers,
    then back through the layers)."""
    frequencies = int(meta[0])
    width = int(meta[1])
    layers = int(meta[2])
    beta = meta[3]
    n_in = 3 + 6 * frequencies
    feat = fourier_features(x, frequencies)
    # forward, keeping every pre-activation
    zs = vec_layers()
    a = vec_width()
    for j in range(width):
        z = params[width * n_in + j]
        for i in range(n_in):
            z += params[j * n_in + i] * feat[i]
        zs[j] = z
        a[j] = softplus(z, beta)
    for layer in range(1, layers):
        off = layer_offset(layer, n_in, width)
        nxt = vec_width()
        for j in range(width):
            z = params[off + width * width + j]
            for i in range(width):
                z += params[off + j * width + i] * a[i]
            zs[layer * width + j] = z
            nxt[j] = softplus(z, beta)
        a = nxt
    # output layer
    off_out = layer_offset(layers, n_in, width)
    g = vec_width()
    for i in range(width):
        wp.atomic_add(grad_params, off_out + i, adj * a[i])
        g[i] = adj * params[off_out + i]
    wp.atomic_add(grad_params, off_out + width, adj)
    # hidden layers, last to first
    for step in range(layers):
        layer = layers - 1 - step
        off = layer_offset(layer, n_in, width)
        dz = vec_width()
        for j in range(width):
            dz[j] = g[j] * softplus_slope(zs[layer * width + j], beta)
        if layer == 0:
            for j in range(width):
                if dz[j] != 0.0:
                    for i in range(n_in):
                        wp.atomic_add(grad_params, j * n_in + i, dz[j] * feat[i])
                    wp.atomic_add(grad_params, width * n_in + j, dz[j])
        else:
            prev = vec_width()
            for i in range(width):
                prev[i] = softplus(zs[(layer - 1) * width + i], beta)
            for j in range(width):
                if dz[j] != 0.0:
                    for i in range(width):
                        wp.atomic_add(grad_params, off + j * width + i, dz[j] * prev[i])
                    wp.atomic_add(grad_params, off + width * width + j, dz[j])
            nxt_g = vec_width()
            for i in range(width):
                s = float(0.0)
                for j in range(width):
                    s += params[off + j * width + i] * dz[j]
                nxt_g[i] = s
            g = nxt_g


MLP_FUNCTIONS = FieldFunctions("mlp", sdf_mlp, fd_gradient(sdf_mlp), backward_mlp)


def geometric_init(
    frequencies: int, width: int, layers: int, init_radius: float, rng: np.random.Generator
) -> np.ndarray:
    """IDR's geometric initialisation: the field starts close to |x| - init_radius.
    Weights on the Fourier features start at zero."""
    n_in = num_inputs(frequencies)
    chunks = []
    std = math.sqrt(2.0) / math.sqrt(width)
    w0 = np.zeros((width, n_in))
    w0[:, :3] = rng.normal(0.0, std, size=(width, 3))
    chunks += [w0.ravel(), np.zeros(width)]
    for _ in range(layers - 1):
        chunks += [rng.normal(0.0, std, size=(width, width)).ravel(), np.zeros(width)]
    w_out = rng.normal(math.sqrt(math.pi) / math.sqrt(width), 1e-4, size=width)
    chunks += [w_out, np.array([-init_radius])]
    params = np.concatenate(chunks).astype(np.float32)
    assert params.size == num_params(frequencies, width, layers)
    return params


class MLPField(Field):
    """A neural SDF; ``params`` requires grad so it can be fitted.

    ``params`` always holds the flat layout above (what Adam updates and
    checkpoints store). With the tiled kernels the marcher and evaluations read a
    padded copy, refreshed by :meth:`kernel_params`, and the parameter backward
    comes back into ``params.grad`` through :meth:`backward_into`.
    ``kernels`` picks them (:class:`warpsdf.scene.MLPKernels`); ``block_dim``
    (tiled only) overrides the points per block: 32 on a GPU, 1 on the CPU
    (more there needs ``wp.config.enable_cpu_blocks``)."""

    functions = MLP_FUNCTIONS

    def __init__(self, params: np.ndarray, frequencies: int, width: int, layers: int, device=None,
                 kernels: MLPKernels = MLPKernels.AUTO, block_dim: int | None = None):  # fmt: skip
        if not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"MLP width must be in [1, {MAX_WIDTH}], got {width}")
        if not 1 <= layers <= MAX_LAYERS:
            raise ValueError(f"MLP layers must be in [1, {MAX_LAYERS}], got {layers}")
        if not 0 <= frequencies <= MAX_FREQUENCIES:
            raise ValueError(f"Fourier frequencies must be in [0, {MAX_FREQUENCIES}]")
        params = np.asarray(params, np.float32).reshape(-1)
        if params.size != num_params(frequencies, width, layers):
            raise ValueError("MLP parameter count does not match its sizes")
        self.frequencies, self.width, self.layers = frequencies, width, layers
        super().__init__(
            wp.array(params, dtype=float, device=device, requires_grad=True),
            wp.array(
                [float(frequencies), float(width), float(layers), SOFTPLUS_BETA],
                dtype=float, device=device,
            ),
        )  # fmt: skip
        self.kernels = self._choose_kernels(MLPKernels(kernels), block_dim)

    def _choose_kernels(self, kernels: MLPKernels, block_dim: int | None) -> MLPKernels:
        from warpsdf.fields import mlp_tiled  # (it builds on this module)

        bucket = mlp_tiled.width_bucket(self.width)
        too_big = ""
        if bucket is not None and self.device.is_cuda:
            need = mlp_tiled.TILE_SHARED_BYTES[bucket]
            have = self.device.max_shared_memory_per_block
            if need > have:
                too_big = (
                    f"the tiled MLP kernels for width {self.width} need {need} bytes of shared "
                    f"memory per block; {self.device.name} has {have}"
                )
                if kernels is MLPKernels.AUTO:
                    bucket = None  # the scalar kernels
        if kernels is MLPKernels.AUTO:
            # tiled on the CPU too: with one thread per block it is still 2.5x
            # faster than the scalar kernels there (BENCHMARKS.md)
            kernels = MLPKernels.SCALAR if bucket is None else MLPKernels.TILED
        if kernels is MLPKernels.SCALAR:
            return kernels
        if too_big:
            raise ValueError(f"{too_big} (use the scalar kernels)")
        if bucket is None:
            raise ValueError(
                f"the tiled MLP kernels take widths up to {mlp_tiled.TILE_WIDTHS[-1]}, "
                f"got {self.width} (use the scalar kernels)"
            )
        if block_dim is None:
            block_dim = mlp_tiled.CUDA_TILE_BLOCK if self.device.is_cuda else 1
        if self.device.is_cuda and block_dim % 32:
            raise ValueError(f"tiled MLP block_dim on a GPU must be whole warps, got {block_dim}")
        cpu_blocks = self.device.is_cpu and not wp.config.enable_cpu_blocks
        if block_dim < 1 or (block_dim > 1 and cpu_blocks):
            raise ValueError(
                f"tiled MLP block_dim {block_dim} on the CPU needs wp.config.enable_cpu_blocks"
            )
        self.functions = mlp_tiled.tiled_functions(bucket, block_dim)
        self._bucket = bucket
        size = mlp_tiled.padded_size(bucket, self.layers)
        self._padded = wp.zeros(size, dtype=float, device=self.device)
        self._padded_grad = wp.zeros(size, dtype=float, device=self.device)
        return kernels

    def kernel_params(self) -> wp.array:
        if self.kernels is MLPKernels.SCALAR:
            return self.params
        from warpsdf.fields.mlp_tiled import pack_mlp_kernel

        wp.launch(
            pack_mlp_kernel,
            dim=self._padded.shape[0],
            inputs=[self.params, self.meta, self._bucket],
            outputs=[self._padded],
            device=self.device,
            record_tape=False,
        )
        return self._padded

    def backward_into(self, points: wp.array, adj_values: wp.array) -> None:
        if self.kernels is MLPKernels.SCALAR:
            super().backward_into(points, adj_values)
            return
        from warpsdf.fields.base import backward_kernel
        from warpsdf.fields.mlp_tiled import unpack_grad_kernel

        f = self.functions
        self._padded_grad.zero_()
        # the padded copy still holds the parameters of the forward pass
        f.launch(
            backward_kernel(f),
            points.shape[0],
            inputs=[self._padded, self.meta, points, adj_values],
            outputs=[self._padded_grad],
            device=self.device,
        )
        wp.launch(
            unpack_grad_kernel,
            dim=self._padded.shape[0],
            inputs=[self._padded_grad, self.meta, self._bucket],
            outputs=[self.params.grad],
            device=self.device,
        )
