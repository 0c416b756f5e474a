"""The tiled MLP kernels (warpsdf.fields.mlp_tiled) against the scalar ones
(warpsdf.fields.mlp_scalar).

Both evaluate the same network, so values, parameter gradients and sphere-traced
hits must agree to float32 rounding. On the CPU Warp runs one thread per block,
so the collective code paths (blocks of several points marching in lockstep,
surplus threads, block-uniform loop exits) are exercised with
``wp.config.enable_cpu_blocks`` and blocks of 4 points.
"""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from warpsdf.camera import orbit_cameras, rays_for
from warpsdf.errors import SceneError
from warpsdf.fields.base import evaluate
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import geometric_init, num_params
from warpsdf.fields.mlp_tiled import (
    PAD_BIAS,
    TILE_INPUTS,
    padded_size,
    unpack_grad_kernel,
    width_bucket,
)
from warpsdf.march import march
from warpsdf.scene import MarchConfig, MLPKernels, load_scene


def padded_numpy(params: np.ndarray, frequencies: int, width: int, layers: int,
                 pad_bias: float = PAD_BIAS) -> np.ndarray:  # fmt: skip
    """The padded layout of the module docstring, built independently; padded
    units get ``pad_bias`` (softplus's PAD_BIAS; 0 for sine)."""
    wp_ = width_bucket(width)
    n_in = 3 + 6 * frequencies
    flat = iter(np.split(params, np.cumsum(
        [width * n_in, width] + [width * width, width] * (layers - 1) + [width]
    )))  # fmt: skip
    w0 = np.zeros((wp_, TILE_INPUTS), np.float32)
    w0[:width, :n_in] = next(flat).reshape(width, n_in)
    w0[:, -1] = pad_bias
    w0[:width, -1] = next(flat)
    out = [w0.ravel()]
    for _ in range(layers - 1):
        w = np.zeros((wp_, wp_), np.float32)
        w[:width, :width] = next(flat).reshape(width, width)
        b = np.full(wp_, pad_bias, np.float32)
        b[:width] = next(flat)
        out += [w.ravel(), b]
    w_out = np.zeros(wp_, np.float32)
    w_out[:width] = next(flat)
    out += [w_out, next(flat)]
    result = np.concatenate(out)
    assert result.size == padded_size(wp_, layers)
    return result


def noisy_params(frequencies, width, layers, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    params = geometric_init(frequencies, width, layers, 0.5, rng)
    return params + rng.normal(0.0, noise, size=params.shape).astype(np.float32)


@pytest.mark.parametrize(
    ("frequencies", "width", "layers"),
    [(0, 1, 1), (2, 20, 3), (6, 32, 2), (10, 33, 4), (3, 64, 1), (1, 64, 8)],
)
def test_packing_matches_the_layout_and_gradients_map_back(frequencies, width, layers):
    params = np.arange(num_params(frequencies, width, layers), dtype=np.float32) + 1.0
    field = MLPField(params, frequencies, width, layers, device="cpu", kernels=MLPKernels.TILED)
    padded = field.kernel_params().numpy()
    np.testing.assert_array_equal(padded, padded_numpy(params, frequencies, width, layers))
    # unpacking a padded gradient equal to the padded parameters gives back the
    # flat parameters: every flat entry has exactly one padded source
    field.params.grad.zero_()
    wp.launch(
        unpack_grad_kernel,
        dim=padded.size,
        inputs=[wp.array(padded, dtype=float), field.meta, width_bucket(width)],
        outputs=[field.params.grad],
        device="cpu",
    )
    np.testing.assert_array_equal(field.params.grad.numpy(), params)


# Block sizes: 1 and 4 on the CPU (4: real blocks through cpu_blocks), and None,
# the device's default, on a GPU (32; every other block size would be another
# set of tile_matmul modules to compile there, tens of seconds each).
BLOCKS = [1, 4, None]


def _use_blocks(device, block_dim, request):
    if (block_dim is None) == wp.get_device(device).is_cpu:
        pytest.skip("CPU: blocks of 1 and 4; GPU: its default block only")
    if block_dim is not None and block_dim > 1 and wp.get_device(device).is_cpu:
        request.getfixturevalue("cpu_blocks")


def _fields(device, frequencies, width, layers, block_dim, seed=0, noise=0.05):
    params = noisy_params(frequencies, width, layers, seed, noise)
    scalar = MLPField(params, frequencies, width, layers, device, kernels=MLPKernels.SCALAR)
    tiled = MLPField(
        params, frequencies, width, layers, device, kernels=MLPKernels.TILED, block_dim=block_dim
    )
    return scalar, tiled


def _grad(field, points, adj):
    field.params.grad.zero_()
    field.backward_into(
        wp.array(points, dtype=wp.vec3, device=field.device),
        wp.array(adj, dtype=float, device=field.device),
    )
    return field.params.grad.numpy()


@pytest.mark.parametrize("block_dim", BLOCKS)
@pytest.mark.parametrize(
    ("frequencies", "width", "layers"), [(2, 20, 3), (6, 64, 2), (0, 8, 1), (3, 64, 8)]
)
def test_tiled_values_and_gradients_equal_scalar(
    device, block_dim, frequencies, width, layers, request
):
    _use_blocks(device, block_dim, request)
    scalar, tiled = _fields(device, frequencies, width, layers, block_dim)
    rng = np.random.default_rng(1)
    # 77 points: a partial last block for blocks of 4 and of 32
    points = rng.uniform(-1.0, 1.0, size=(77, 3)).astype(np.float32)
    want = scalar.values(points)
    np.testing.assert_allclose(
        tiled.values(points), want, rtol=0, atol=2e-6 * max(1, np.abs(want).max())
    )
    adj = rng.normal(size=77).astype(np.float32)
    adj[:32] = 0.0  # whole blocks of zero adjoint (of 4, or the first of 32) are skipped
    g_want = _grad(scalar, points, adj)
    np.testing.assert_allclose(
        _grad(tiled, points, adj), g_want, rtol=0, atol=2e-5 * np.abs(g_want).max()
    )


@pytest.mark.parametrize("block_dim", BLOCKS)
def test_tiled_gradient_on_the_tape(device, block_dim, request):
    """evaluate() on a tape routes the tiled backward into params.grad."""
    _use_blocks(device, block_dim, request)
    scalar, tiled = _fields(device, 2, 16, 2, block_dim, seed=3)
    rng = np.random.default_rng(4)
    pts = wp.array(
        rng.uniform(-1, 1, size=(10, 3)).astype(np.float32), dtype=wp.vec3, device=device
    )
    weights = wp.array(rng.normal(size=10).astype(np.float32), dtype=float, device=device)
    grads = []
    for field in (scalar, tiled):
        values = wp.zeros(10, dtype=float, requires_grad=True, device=device)
        detached = wp.zeros(10, dtype=float, device=device)
        field.params.grad.zero_()
        tape = wp.Tape()
        with tape:
            evaluate(field, pts, values, detached, tape=tape)
        values.grad.assign(weights)
        tape.backward()
        grads.append(field.params.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=2e-5 * np.abs(grads[0]).max())
    assert np.abs(grads[0]).max() > 0


@pytest.mark.parametrize("block_dim", BLOCKS)
@pytest.mark.parametrize(("width", "clip_back"), [(32, True), (64, False)])
def test_tiled_march_equals_scalar(device, block_dim, width, clip_back, request):
    """Lockstep blocks give the same hits as rays marching alone: the same hit
    mask, hit distances and normals to rounding (sphere tracing amplifies float
    differences only at a handful of grazing rays)."""
    _use_blocks(device, block_dim, request)
    scalar, tiled = _fields(device, 2, width, 2, block_dim, seed=5, noise=0.01)
    cams = orbit_cameras(2, 3.0, 20.0, width=19, height=17, fov_deg=30.0)  # 646 rays
    o, d = rays_for(cams)
    origins = wp.array(o, dtype=wp.vec3, device=device)
    dirs = wp.array(d, dtype=wp.vec3, device=device)
    config = MarchConfig(clip_back=clip_back)
    a = march(scalar, origins, dirs, config).numpy()
    b = march(tiled, origins, dirs, config).numpy()
    hit_a, hit_b = a["hit_t"] >= 0, b["hit_t"] >= 0
    assert hit_a.sum() > 50 and (~hit_a).sum() > 50
    assert (hit_a != hit_b).sum() <= 2
    both = hit_a & hit_b
    close = np.abs(a["hit_t"][both] - b["hit_t"][both]) < 1e-4
    assert close.mean() >= 0.99
    outside = np.isinf(a["min_sdf"])  # rays that never enter the bound (FAR_SDF)
    np.testing.assert_array_equal(outside, np.isinf(b["min_sdf"]))
    assert np.abs(a["min_sdf"][~outside] - b["min_sdf"][~outside]).max() < 2e-3
    cos = np.sum(a["normals"][both] * b["normals"][both], axis=1)
    assert np.quantile(cos, 0.01) > 0.999
    # every thread of a block evaluates together: at least the scalar work
    assert b["evals"].sum() >= a["evals"].sum() - 10


def test_kernels_choice_and_limits():
    params = noisy_params(1, 65, 2, 0)
    assert MLPField(params, 1, 65, 2, "cpu").kernels is MLPKernels.SCALAR  # auto: too wide
    with pytest.raises(ValueError, match="up to 64"):
        MLPField(params, 1, 65, 2, "cpu", kernels=MLPKernels.TILED)
    small = noisy_params(1, 16, 2, 0)
    assert MLPField(small, 1, 16, 2, "cpu").kernels is MLPKernels.TILED
    if not wp.config.enable_cpu_blocks:
        with pytest.raises(ValueError, match="enable_cpu_blocks"):
            MLPField(small, 1, 16, 2, "cpu", kernels=MLPKernels.TILED, block_dim=8)


def test_scene_refuses_tiled_kernels_for_wide_networks(tmp_path):
    path = tmp_path / "wide.toml"
    path.write_text(
        'name = "wide"\n[target]\nkind = "shapes"\npreset = "airplane"\n'
        '[model]\nkind = "mlp"\nhidden = 65\nkernels = "tiled"\n'
    )
    with pytest.raises(SceneError, match=r"model\.kernels.*hidden <= 64"):
        load_scene(path)
    path.write_text(path.read_text().replace('"tiled"', '"auto"'))
    assert load_scene(path).model.kernels is MLPKernels.AUTO
