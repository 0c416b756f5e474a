"""The scalar kernels' functions of the MLP field (:mod:`warpsdf.fields.mlp_core`):
one point per thread, on the flat ``params`` itself.

The value is :func:`~warpsdf.fields.mlp_core.mlp_forward`; the parameter
gradient is written by hand (the kept forward pass, then back through the
layers, one atomic add per weight and point); the spatial gradient is the
tetrahedral finite difference of the field (``fd_gradient``), which the
eikonal term of the fit also uses, so no double backward is needed.

Widths up to 64 run by default on the tiled kernels of
:mod:`warpsdf.fields.mlp_tiled` (the same network, a block of points per tile
product); these serve every width and are the reference the tiled ones are
tested against.
"""

from __future__ import annotations

import warp as wp

from warpsdf.fields.base import FieldFunctions, fd_gradient
from warpsdf.fields.mlp_core import (
    fourier_features,
    mlp_forward,
    mlp_forward_kept,
    softplus,
    softplus_slope,
    unpack_meta,
    vec_width,
    wp_layer_offset,
    wp_num_inputs,
)


@wp.func
def sdf_mlp(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """The MLP's value at x (world units); ``params`` (P,) is the flat layout,
    ``meta`` :func:`~warpsdf.fields.mlp_core.mlp_meta`. Forward only (its
    parameter gradient is :func:`backward_mlp`)."""
    value, _zs = mlp_forward(params, meta, x)
    return value


@wp.func
def backward_mlp(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                 adj: float, grad_params: wp.array(dtype=float)):  # fmt: skip
    """grad_params (P,) += adj * d f(x) / d params, in the flat layout (atomic
    adds; weights of units whose gradient is 0 are skipped). The pre-activations
    come from the kept forward pass; the features and each layer's input are
    recomputed here (a helper taking them as vector arguments would copy them
    by value)."""
    frequencies, width, layers, beta = unpack_meta(meta)
    n_in = wp_num_inputs(frequencies)
    feat = fourier_features(x, frequencies)
    _value, zs = mlp_forward_kept(params, meta, x)
    # output layer: f = w_out . a_{layers-1} + b_out
    off_out = wp_layer_offset(layers, n_in, width)
    last = (layers - 1) * width
    g = vec_width()  # dL / d a of the layer being visited
    for i in range(width):
        wp.atomic_add(grad_params, off_out + i, adj * softplus(zs[last + i], beta))
        g[i] = adj * params[off_out + i]
    wp.atomic_add(grad_params, off_out + width, adj)
    # hidden layers, last to first
    for step in range(layers):
        layer = layers - 1 - step
        off = wp_layer_offset(layer, n_in, width)
        fan_in = wp.where(layer == 0, n_in, width)
        dz = vec_width()  # dL / d z_layer
        for j in range(width):
            dz[j] = g[j] * softplus_slope(zs[layer * width + j], beta)
        inp = vec_width()  # the layer's input: the features, or softplus(z_{layer-1})
        if layer == 0:
            for i in range(n_in):
                inp[i] = feat[i]
        else:
            for i in range(width):
                inp[i] = softplus(zs[(layer - 1) * width + i], beta)
        for j in range(width):
            if dz[j] != 0.0:
                for i in range(fan_in):
                    wp.atomic_add(grad_params, off + j * fan_in + i, dz[j] * inp[i])
                wp.atomic_add(grad_params, off + width * fan_in + j, dz[j])
        if layer > 0:
            below = vec_width()  # dL / d a_{layer-1} = W_layer^T dz
            for i in range(width):
                s = float(0.0)
                for j in range(width):
                    s += params[off + j * width + i] * dz[j]
                below[i] = s
            g = below


SCALAR_FUNCTIONS = FieldFunctions("mlp", sdf_mlp, fd_gradient(sdf_mlp), backward_mlp)
