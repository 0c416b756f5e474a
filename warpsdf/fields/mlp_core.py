"""The neural SDF's network, written once: features, activations, parameter
layout, initialisation and the forward pass that the scalar kernels use.

    features(x) = [x, sin(2^l pi x), cos(2^l pi x) for l < L]      (3 + 6 L values)
    a_0 = act(W_0 features + b_0), a_l = act(W_l a_{l-1} + b_l)
    f(x) = w_out . a_{layers-1} + b_out

The activation ``act`` is ``model.activation`` (:class:`ActivationCode` in the
kernels, :func:`activation` and its derivative :func:`activation_slope`):

* softplus (the default): log(1 + exp(beta z)) / beta with beta =
  SOFTPLUS_BETA, a smooth ReLU;
* sine (SIREN, Sitzmann et al. 2020): sin(omega0 z) with omega0 =
  SIREN_OMEGA0 on every hidden layer; the output layer stays linear. Its
  field oscillates away from the data (zero crossings anywhere).

``params`` is one flat float array holding, layer by layer, W
(width x fan-in, row-major) then b, and finally w_out, b_out
(:func:`layer_offset`); ``meta = [n_in, width, layers, scale, activation, L]``
(n_in the first layer's inputs, ``scale`` the activation's beta or omega0,
``activation`` an :class:`ActivationCode`, L the Fourier frequencies;
:func:`mlp_meta`, read in kernels by :func:`unpack_meta`). The activation is a
runtime value there: one compiled scalar kernel serves both. Geometric
initialisation (IDR / SAL, :func:`geometric_init`) makes a softplus field start
as the sphere |x| = init_radius; :func:`random_init` starts either activation
without that prior (for sine, SIREN's initialisation). One compiled kernel
serves every width up to MAX_WIDTH, depth up to MAX_LAYERS and frequency count
up to MAX_FREQUENCIES.

Two sets of kernels evaluate this network and both import this module:
:mod:`warpsdf.fields.mlp_scalar` (one point per thread, through
:func:`mlp_forward` here) and :mod:`warpsdf.fields.mlp_tiled` (a thread block of
points per tile matrix product, on a padded copy of ``params``; built per
activation, since ``tile_map`` takes a unary function).
:class:`warpsdf.fields.mlp.MLPField` picks one.

The layout is defined once, in plain Python (:func:`num_inputs`,
:func:`layer_offset`); kernels call the same bodies compiled by Warp
(``wp_num_inputs``, ``wp_layer_offset``).

The input features are pluggable (:class:`Encoding`): the Fourier features
here, or the hash grid's multiresolution encoding
(:mod:`warpsdf.fields.hash_encoding`), whose features come from a table of
parameters stored before the network's. Every network's ``meta`` starts with
the same ``NETWORK_META`` floats ``[n_in, width, layers, scale, activation]``;
an encoding's own constants follow them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.limits import MAX_FREQUENCIES, MAX_LAYERS, MAX_WIDTH
from warpsdf.scene import ModelActivation

# softplus's sharpness beta in log(1 + exp(beta z)) / beta
SOFTPLUS_BETA = 100.0
# SIREN's frequency factor: sin(omega0 z) on every hidden layer (Sitzmann et al. 2020)
SIREN_OMEGA0 = 30.0


class ActivationCode(IntEnum):
    """``model.activation`` inside the kernels (:class:`warpsdf.scene.ModelActivation`)."""

    SOFTPLUS = 0  # log(1 + exp(beta z)) / beta, beta = SOFTPLUS_BETA
    SINE = 1  # sin(omega0 z), omega0 = SIREN_OMEGA0


def activation_code(activation: ModelActivation) -> ActivationCode:
    """The kernels' code of a scene's ``model.activation``."""
    return ActivationCode[ModelActivation(activation).name]


# The scale each activation keeps in meta (beta, or omega0).
ACTIVATION_SCALE = {ActivationCode.SOFTPLUS: SOFTPLUS_BETA, ActivationCode.SINE: SIREN_OMEGA0}


def num_inputs(frequencies: int) -> int:
    """Input features of the first layer: x and a sine and cosine of each of its
    3 coordinates per frequency."""
    return 3 + 6 * frequencies


def layer_offset(layer: int, n_in: int, width: int) -> int:
    """Index of W_layer in ``params`` (b_layer follows it; ``layer == layers``
    gives w_out, then b_out)."""
    if layer == 0:
        return 0
    return width * n_in + width + (layer - 1) * (width * width + width)


# The same two functions for kernels (Warp compiles the Python bodies above).
wp_num_inputs = wp.func(num_inputs)
wp_layer_offset = wp.func(layer_offset)

vec_width = wp.types.vector(length=MAX_WIDTH, dtype=float)
vec_features = wp.types.vector(length=num_inputs(MAX_FREQUENCIES), dtype=float)
vec_layers = wp.types.vector(length=MAX_WIDTH * MAX_LAYERS, dtype=float)
# The forward pass carries the features in a vec_width (the first layer's input).
assert num_inputs(MAX_FREQUENCIES) <= MAX_WIDTH


def num_params(frequencies: int, width: int, layers: int) -> int:
    """Length of the flat parameter array."""
    return layer_offset(layers, num_inputs(frequencies), width) + width + 1


# Floats of the network header every network's meta starts with (n_in, width,
# layers, scale, activation); an encoding's own constants follow.
NETWORK_META = 5
META_ACTIVATION = 4  # where the header keeps the ActivationCode


def network_meta(
    n_in: int, width: int, layers: int, act: ActivationCode = ActivationCode.SOFTPLUS
) -> list[float]:
    """The ``NETWORK_META`` header of a network's ``meta`` (see :func:`unpack_meta`):
    sizes, the activation's scale (beta or omega0) and its code."""
    code = ActivationCode(act)
    return [float(n_in), float(width), float(layers), ACTIVATION_SCALE[code], float(code)]


def mlp_meta(
    frequencies: int, width: int, layers: int, act: ActivationCode = ActivationCode.SOFTPLUS
) -> list[float]:
    """The ``meta`` array of the Fourier-feature network of these sizes: the
    network header, then the frequency count."""
    header = network_meta(num_inputs(frequencies), width, layers, act)
    return [*header, float(frequencies)]


@wp.func
def unpack_meta(meta: wp.array(dtype=float)):
    """(n_in, width, layers, scale, activation) from the ``NETWORK_META`` header
    of any network's meta: ``scale`` the activation's beta or omega0 (float),
    ``activation`` an :class:`ActivationCode` (int)."""
    return int(meta[0]), int(meta[1]), int(meta[2]), meta[3], int(meta[META_ACTIVATION])


@wp.func
def softplus(z: float, beta: float) -> float:
    """log(1 + exp(beta z)) / beta, exactly z where beta z > 20 (no overflow).
    Differentiable by Warp, but the kernels differentiate it by hand
    (:func:`softplus_slope`)."""
    bz = beta * z
    if bz > 20.0:
        return z
    return wp.log(1.0 + wp.exp(bz)) / beta


@wp.func
def softplus_slope(z: float, beta: float) -> float:
    """d softplus(z, beta) / dz = sigmoid(beta z)."""
    return 1.0 / (1.0 + wp.exp(-beta * z))


@wp.func
def sine(z: float, omega0: float) -> float:
    """SIREN's activation sin(omega0 z) (differentiated by hand: :func:`sine_slope`)."""
    return wp.sin(omega0 * z)


@wp.func
def sine_slope(z: float, omega0: float) -> float:
    """d sine(z, omega0) / dz = omega0 cos(omega0 z)."""
    return omega0 * wp.cos(omega0 * z)


@wp.func
def activation(z: float, scale: float, code: int) -> float:
    """The hidden layers' activation of the pre-activation z: softplus with
    beta = scale, or sine with omega0 = scale (``code``: an :class:`ActivationCode`,
    from meta). Forward only; its derivative is :func:`activation_slope`."""
    if code == int(ActivationCode.SINE):
        return sine(z, scale)
    return softplus(z, scale)


@wp.func
def activation_slope(z: float, scale: float, code: int) -> float:
    """d activation(z, scale, code) / dz, the one place the backward passes take it."""
    if code == int(ActivationCode.SINE):
        return sine_slope(z, scale)
    return softplus_slope(z, scale)


@wp.func
def fourier_features(x: wp.vec3, frequencies: int) -> vec_features:
    """features(x) of the module docstring for a point x (world units): the first
    ``num_inputs(frequencies)`` entries are set, the rest are 0. Not
    differentiated (the fit needs no gradient with respect to x through it)."""
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
def fourier_inputs(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                   table_base: int):  # fmt: skip
    """The Fourier encoding's features (:class:`Encoding`): ``fourier_features``
    at L = meta[NETWORK_META]; it has no parameters, so the network starts at 0."""
    return fourier_features(x, int(meta[NETWORK_META])), 0


@wp.func
def no_encoding_backward(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                         table_base: int, d_features: vec_features,
                         grad_params: wp.array(dtype=float)):  # fmt: skip
    """The parameter backward of an encoding without parameters: nothing."""
    pass


@dataclass(frozen=True)
class Encoding:
    """The network's input features at a point, as Warp functions.

    ``features(params, meta, x, table_base) -> (vec_features, base)``: the first
    n_in entries set (the rest 0) and ``base``, the index in ``params`` where the
    network's own layout (:func:`layer_offset`) starts. An encoding with
    parameters reads them from ``params`` at ``table_base``: the scalar kernels
    store them first (``table_base`` 0, the network after them), the tiled ones
    after their padded network. ``backward(params, meta, x, table_base,
    d_features, grad_params)`` adds sum_i d_features[i] d feature_i / d params
    (atomic adds); ``has_params`` False skips it (the Fourier features).
    ``name`` keys kernel caches."""

    name: str
    features: wp.Function
    backward: wp.Function = no_encoding_backward
    has_params: bool = False


FOURIER = Encoding("fourier", fourier_inputs)


@functools.cache
def network_forward(encoding: Encoding, keep: bool) -> wp.Function:
    """The forward pass of the network on ``encoding``'s features (see
    :func:`_forward`), built once per encoding and variant."""
    return _forward(keep, encoding)


def _forward(keep: bool, encoding: Encoding = FOURIER) -> wp.Function:
    """The forward pass, written once, compiled in two variants: with ``keep``
    it returns every hidden layer's pre-activations (for the backward), without
    it only scratch space for one layer (for plain evaluation, which the march
    calls many times per ray: no 8 KiB vec_layers there). It takes x rather than
    its features: a vector argument passed by value made NVRTC's compile of the
    scalar march kernel about 60% slower. ``encoding`` supplies the features
    (:class:`Encoding`)."""
    kept_vector = vec_layers if keep else vec_width
    inputs = encoding.features
    # layer l's pre-activations z_l start at kept_stride * l * width in ``zs``
    kept_stride = 1 if keep else 0

    @wp.func
    def forward(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3):
        """Returns (f, zs): the value of the network at x (world units) and the
        pre-activations z_l = W_l a_{l-1} + b_l of its hidden layers. Kept variant
        (:data:`mlp_forward_kept`): zs is a vec_layers holding z_l at
        [l width, (l + 1) width). Plain variant (:data:`mlp_forward`): zs is a
        vec_width holding the last layer's only. ``params``: (P,) flat layout;
        ``meta``: :func:`mlp_meta`. Forward only: the parameter gradient is
        written by hand from the kept pre-activations
        (:func:`warpsdf.fields.mlp_scalar.backward_mlp`)."""
        n_in, width, layers, scale, act = unpack_meta(meta)
        feat, base = inputs(params, meta, x, 0)
        a = vec_width()  # each layer's input: the features, then the activations
        for i in range(n_in):
            a[i] = feat[i]
        zs = kept_vector()
        fan_in = n_in
        for layer in range(layers):
            off = base + wp_layer_offset(layer, n_in, width)
            kept = kept_stride * layer * width
            for j in range(width):
                z = params[off + width * fan_in + j]
                for i in range(fan_in):
                    z += params[off + j * fan_in + i] * a[i]
                zs[kept + j] = z
            for j in range(width):
                a[j] = activation(zs[kept + j], scale, act)
            fan_in = width
        off = base + wp_layer_offset(layers, n_in, width)
        out = params[off + width]
        for i in range(width):
            out += params[off + i] * a[i]
        return out, zs

    return forward


mlp_forward = network_forward(FOURIER, keep=False)
mlp_forward_kept = network_forward(FOURIER, keep=True)


def geometric_init(
    frequencies: int, width: int, layers: int, init_radius: float, rng: np.random.Generator
) -> np.ndarray:
    """IDR's geometric initialisation of the softplus network: the field starts
    close to |x| - init_radius (it relies on softplus being nearly ReLU; a sine
    network has no such start, see :func:`siren_init`). Weights on the Fourier
    features start at zero. Returns the flat (P,) float32 parameters."""
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


def random_init(
    frequencies: int,
    width: int,
    layers: int,
    rng: np.random.Generator,
    act: ActivationCode = ActivationCode.SOFTPLUS,
) -> np.ndarray:
    """A plain initialisation without the geometric prior (``model.init =
    "random"``, and every start of a sine network). Softplus: every weight, the
    Fourier features' included, drawn from N(0, 2 / fan_in), biases 0. Sine:
    :func:`siren_init`. Either way the field starts with zero crossings
    anywhere, inside the bound and beyond it (the "missing back wall" study,
    README "Experiments"). Returns the flat (P,) float32 parameters."""
    if ActivationCode(act) is ActivationCode.SINE:
        return siren_init(frequencies, width, layers, rng)
    n_in = num_inputs(frequencies)
    chunks = []
    fan_in = n_in
    for _ in range(layers):
        std = math.sqrt(2.0 / fan_in)
        chunks += [rng.normal(0.0, std, size=(width, fan_in)).ravel(), np.zeros(width)]
        fan_in = width
    chunks += [rng.normal(0.0, math.sqrt(1.0 / width), size=width), np.zeros(1)]
    params = np.concatenate(chunks).astype(np.float32)
    assert params.size == num_params(frequencies, width, layers)
    return params


def siren_bounds(fan_in: int, first: bool) -> tuple[float, float]:
    """(weight bound, bias bound) of SIREN's uniform initialisation for a layer
    with ``fan_in`` inputs: the first layer's weights U(-1/fan_in, 1/fan_in),
    later layers' (the output's included) U(+-sqrt(6/fan_in)/omega0), so each
    sin(omega0 z) sees an arcsine-distributed input of unit spread; biases
    U(+-1/sqrt(fan_in)) (PyTorch's Linear default, as in the paper's code)."""
    weight = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / SIREN_OMEGA0
    return weight, 1.0 / math.sqrt(fan_in)


def siren_init(frequencies: int, width: int, layers: int, rng: np.random.Generator) -> np.ndarray:
    """SIREN's initialisation (Sitzmann et al. 2020) for the sine network
    (:func:`siren_bounds`), the output layer's weights drawn like a hidden
    layer's. The output bias starts at 0 (the paper's code draws it like the
    others): the field then oscillates about 0, with zero crossings throughout
    the bound, rather than about a random offset of up to 1/sqrt(width) that
    could hide them. There is no sphere-like start for sine (``model.init =
    "sphere"`` is refused for it). Returns the flat (P,) float32 parameters."""
    chunks = []
    fan_in = num_inputs(frequencies)
    for layer in range(layers):
        w_bound, b_bound = siren_bounds(fan_in, layer == 0)
        chunks += [
            rng.uniform(-w_bound, w_bound, size=(width, fan_in)).ravel(),
            rng.uniform(-b_bound, b_bound, size=width),
        ]
        fan_in = width
    w_bound, _b_bound = siren_bounds(width, False)
    chunks += [rng.uniform(-w_bound, w_bound, size=width), np.zeros(1)]
    params = np.concatenate(chunks).astype(np.float32)
    assert params.size == num_params(frequencies, width, layers)
    return params
