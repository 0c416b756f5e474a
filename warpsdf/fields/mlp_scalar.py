"""The scalar kernels' functions of the MLP field (:mod:`warpsdf.fields.mlp_core`):
one point per thread, on the flat ``params`` itself.

The value is :func:`~warpsdf.fields.mlp_core.mlp_forward`; the parameter
gradient is written by hand (the kept forward pass, then back through the
layers with :func:`~warpsdf.fields.mlp_core.activation_slope`, the activation
read from ``meta``, one atomic add per weight and point); the spatial gradient is the
tetrahedral finite difference of the field (``fd_gradient``), which the
eikonal term of the fit also uses, so no double backward is needed.

The backward is built per input :class:`~warpsdf.fields.mlp_core.Encoding`
(:func:`network_backward`): with an encoding that has parameters (the hash
grid) it carries the gradient on through the first layer to the features,
d L / d feature = W_0^T dz_0, and hands it to the encoding's own backward; the
same pass without the weight updates gives d f / d feature for an analytic
spatial gradient (:func:`network_feature_grad`).

Widths up to 64 run by default on the tiled kernels of
:mod:`warpsdf.fields.mlp_tiled` (the same network, a block of points per tile
product); these serve every width and are the reference the tiled ones are
tested against.
"""

from __future__ import annotations

import functools

import warp as wp

from warpsdf.fields.base import FieldFunctions, fd_gradient
from warpsdf.fields.mlp_core import (
    FOURIER,
    Encoding,
    activation,
    activation_slope,
    mlp_forward,
    network_forward,
    unpack_meta,
    vec_features,
    vec_width,
    wp_layer_offset,
)


@wp.func
def sdf_mlp(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """The MLP's value at x (world units); ``params`` (P,) is the flat layout,
    ``meta`` :func:`~warpsdf.fields.mlp_core.mlp_meta`. Forward only (its
    parameter gradient is :func:`backward_mlp`)."""
    value, _zs = mlp_forward(params, meta, x)
    return value


def _backprop(encoding: Encoding, weights: bool) -> wp.Function:
    """Back through the network on ``encoding``'s features, written once. With
    ``weights`` it is the parameter backward (atomic adds into the weights, then
    the encoding's backward with d L / d features); without, it only returns
    d f / d features (``adj`` 1, nothing written)."""
    inputs = encoding.features
    forward_kept = network_forward(encoding, True)
    to_features = encoding.has_params or not weights
    encoding_backward = encoding.backward
    with_encoding_backward = encoding.has_params and weights

    @wp.func
    def backprop(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                 adj: float, grad_params: wp.array(dtype=float)) -> vec_features:  # fmt: skip
        """grad_params (P,) += adj * d f(x) / d params, in the flat layout (atomic
        adds; weights of units whose gradient is 0 are skipped), when built with
        weights; returns adj * d f / d features (entries past n_in are 0; all 0
        when the encoding has no parameters and weights are written). The
        pre-activations come from the kept forward pass; the features and each
        layer's input are recomputed here (a helper taking them as vector
        arguments would copy them by value)."""
        n_in, width, layers, scale, act = unpack_meta(meta)
        feat, base = inputs(params, meta, x, 0)
        _value, zs = forward_kept(params, meta, x)
        # output layer: f = w_out . a_{layers-1} + b_out
        off_out = base + wp_layer_offset(layers, n_in, width)
        last = (layers - 1) * width
        g = vec_width()  # dL / d a of the layer being visited
        for i in range(width):
            if wp.static(weights):
                wp.atomic_add(grad_params, off_out + i, adj * activation(zs[last + i], scale, act))
            g[i] = adj * params[off_out + i]
        if wp.static(weights):
            wp.atomic_add(grad_params, off_out + width, adj)
        d_features = vec_features()
        # hidden layers, last to first
        for step in range(layers):
            layer = layers - 1 - step
            off = base + wp_layer_offset(layer, n_in, width)
            fan_in = wp.where(layer == 0, n_in, width)
            dz = vec_width()  # dL / d z_layer
            for j in range(width):
                dz[j] = g[j] * activation_slope(zs[layer * width + j], scale, act)
            if wp.static(weights):
                inp = vec_width()  # the layer's input: the features, or act(z_{layer-1})
                if layer == 0:
                    for i in range(n_in):
                        inp[i] = feat[i]
                else:
                    for i in range(width):
                        inp[i] = activation(zs[(layer - 1) * width + i], scale, act)
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
            elif wp.static(to_features):
                for i in range(n_in):  # dL / d features = W_0^T dz_0
                    s = float(0.0)
                    for j in range(width):
                        s += params[off + j * n_in + i] * dz[j]
                    d_features[i] = s
        if wp.static(with_encoding_backward):
            encoding_backward(params, meta, x, 0, d_features, grad_params)
        return d_features

    return backprop


@functools.cache
def network_backward(encoding: Encoding) -> wp.Function:
    """``backward(params, meta, x, adj, grad_params)`` of the network on
    ``encoding`` (a field kind's parameter backward; its return value, the
    features' gradient, may be ignored)."""
    return _backprop(encoding, weights=True)


@functools.cache
def network_feature_grad(encoding: Encoding) -> wp.Function:
    """``feature_grad(params, meta, x, adj, grad_params) -> vec_features``:
    adj * d f / d features at x, nothing written (``grad_params`` unused)."""
    return _backprop(encoding, weights=False)


backward_mlp = network_backward(FOURIER)

SCALAR_FUNCTIONS = FieldFunctions("mlp", sdf_mlp, fd_gradient(sdf_mlp), backward_mlp)
