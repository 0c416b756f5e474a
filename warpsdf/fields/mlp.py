"""The MLP field: a neural SDF, :class:`MLPField`, on one of two sets of kernels.

The network (Fourier features, softplus or sine activations, the flat parameter
layout, initialisation, the forward pass) lives in :mod:`warpsdf.fields.mlp_core`; the
scalar kernels' functions (one point per thread) in
:mod:`warpsdf.fields.mlp_scalar`; the tiled ones (a thread block of points per
tile matrix product, a padded copy of the parameters) in
:mod:`warpsdf.fields.mlp_tiled`. ``MLPField`` owns the parameters and picks the
kernels (``[model] kernels = auto | tiled | scalar``).

The core's host-side names are re-exported here, where the rest of the package
reaches the MLP.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from warpsdf.fields import mlp_tiled
from warpsdf.fields.base import Field, backward_kernel
from warpsdf.fields.mlp_core import activation_code, mlp_meta, num_params
from warpsdf.fields.mlp_scalar import SCALAR_FUNCTIONS
from warpsdf.limits import MAX_FREQUENCIES, MAX_LAYERS, MAX_WIDTH
from warpsdf.scene import MLPKernels, ModelActivation


class MLPField(Field):
    """A neural SDF; ``params`` requires grad so it can be fitted.

    ``params`` always holds the flat layout above (what Adam updates and
    checkpoints store). With the tiled kernels the marcher and evaluations read a
    padded copy, refreshed by :meth:`kernel_params`, and the parameter backward
    comes back into ``params.grad`` through :meth:`backward_into`.
    ``kernels`` picks them (:class:`warpsdf.scene.MLPKernels`); ``block_dim``
    (tiled only) overrides the points per block: 32 on a GPU, 1 on the CPU
    (more there needs ``wp.config.enable_cpu_blocks``). ``activation``
    (:class:`warpsdf.scene.ModelActivation`) is the hidden layers'
    activation; it goes into ``meta`` (the scalar kernels read it there) and
    picks the tiled kernels' variant."""

    functions = SCALAR_FUNCTIONS

    def __init__(self, params: np.ndarray, frequencies: int, width: int, layers: int, device=None,
                 kernels: MLPKernels = MLPKernels.AUTO, block_dim: int | None = None,
                 activation: ModelActivation = ModelActivation.SOFTPLUS):  # fmt: skip
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
        self.activation = ModelActivation(activation)
        code = activation_code(self.activation)
        super().__init__(
            wp.array(params, dtype=float, device=device, requires_grad=True),
            wp.array(mlp_meta(frequencies, width, layers, code), dtype=float, device=device),
        )
        self.kernels = self._choose_kernels(MLPKernels(kernels), block_dim)

    def _choose_kernels(self, kernels: MLPKernels, block_dim: int | None) -> MLPKernels:
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
        block_dim = mlp_tiled.check_block_dim(self.device, block_dim)
        code = activation_code(self.activation)
        self.functions = mlp_tiled.tiled_functions(bucket, block_dim, code)
        self._bucket = bucket
        size = mlp_tiled.padded_size(bucket, self.layers)
        self._padded = wp.zeros(size, dtype=float, device=self.device)
        self._padded_grad = wp.zeros(size, dtype=float, device=self.device)
        return kernels

    def kernel_params(self) -> wp.array:
        if self.kernels is MLPKernels.SCALAR:
            return self.params
        mlp_tiled.pack_network(self.params, self.meta, self._bucket, self._padded)
        return self._padded

    def backward_into(self, points: wp.array, adj_values: wp.array) -> None:
        if self.kernels is MLPKernels.SCALAR:
            super().backward_into(points, adj_values)
            return
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
        mlp_tiled.unpack_network_grad(self._padded_grad, self.meta, self._bucket, self.params.grad)
