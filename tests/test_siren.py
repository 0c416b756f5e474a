"""The sine activation (SIREN, ``model.activation = "sine"``) of the MLP field,
against the float64 numpy reference of tests/helpers.py (STYLE "Tests, in
layers" 1 to 3).

* Closed forms: values of the scalar and tiled kernels match the reference;
  the padded units of the tiled kernels contribute exactly 0 (bias 0 for sine,
  where softplus needs PAD_BIAS).
* Gradients: the parameter backward of both kernel kinds, with a random
  upstream gradient, against float64 central differences of the reference; the
  spatial gradient (the tetrahedral difference the marcher uses) against a
  float64 central difference; tiled against scalar at widths that need padding.
* Initialisation: SIREN's bounds, and a field with zero crossings away from the
  origin from the start.
* The scene: the key's validation lines, its default init, the run folder
  round trip (an older scene without the key loads as softplus) and a tiny fit
  that lowers its loss.

One compiled scalar kernel serves both activations (the code is in ``meta``);
the tiled kernels are built per activation. Sizes stay tiny: each tiled
variant is a set of kernels to compile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import warp as wp

from tests.conftest import SCENES, assert_user_error, cli
from tests.helpers import (
    mlp_groups,
    mlp_numpy,
    mlp_param_grad_numpy,
    param_grad,
    random_points,
    spatial_grad,
    tiny_scene,
)
from tests.test_mlp_tiled import padded_numpy
from warpsdf.fields.factory import field_from_params, make_field
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import (
    META_ACTIVATION,
    NETWORK_META,
    SIREN_OMEGA0,
    SOFTPLUS_BETA,
    ActivationCode,
    mlp_meta,
    num_inputs,
    siren_bounds,
    siren_init,
)
from warpsdf.fields.mlp_tiled import PAD_BIAS
from warpsdf.fit import fit, load_run
from warpsdf.scene import MLPKernels, ModelActivation, ModelInit, load_scene

SINE = ModelActivation.SINE
XYZ_SCENE = SCENES / "two_spheres_xyz.toml"  # an mlp; it says init = "sphere"


@pytest.fixture
def no_init_scene(tmp_path):
    """The xyz scene without its ``model.init`` line (the default applies)."""
    lines = XYZ_SCENE.read_text().splitlines()
    path = tmp_path / "no_init.toml"
    path.write_text("\n".join(line for line in lines if not line.startswith("init =")))
    return path


def siren_params(frequencies: int, width: int, layers: int, seed: int) -> np.ndarray:
    """SIREN's init with a random output bias, so every parameter is exercised."""
    rng = np.random.default_rng(seed)
    params = siren_init(frequencies, width, layers, rng)
    params[-1] = rng.uniform(-0.1, 0.1)
    return params


def sine_field(params, frequencies, width, layers, device, kernels, block_dim=None):
    return MLPField(
        params, frequencies, width, layers, device, kernels=kernels, block_dim=block_dim,
        activation=SINE,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# The network header and the values
# ---------------------------------------------------------------------------


def test_meta_header_carries_the_activation():
    softplus = mlp_meta(2, 16, 3)
    sine = mlp_meta(2, 16, 3, ActivationCode.SINE)
    assert len(softplus) == len(sine) == NETWORK_META + 1
    assert softplus[:3] == sine[:3] == [float(num_inputs(2)), 16.0, 3.0]
    assert softplus[3:NETWORK_META] == [SOFTPLUS_BETA, float(ActivationCode.SOFTPLUS)]
    assert sine[3:NETWORK_META] == [SIREN_OMEGA0, float(ActivationCode.SINE)]
    assert sine[META_ACTIVATION] == float(ActivationCode.SINE) and sine[-1] == 2.0


@pytest.mark.parametrize("kernels", [MLPKernels.SCALAR, MLPKernels.TILED])
@pytest.mark.parametrize(("frequencies", "width", "layers"), [(0, 20, 2), (1, 32, 3)])
def test_sine_values_match_numpy(device, kernels, frequencies, width, layers):
    params = siren_params(frequencies, width, layers, seed=1)
    field = sine_field(params, frequencies, width, layers, device, kernels)
    x = random_points(np.random.default_rng(2), 64, 1.0)
    want = mlp_numpy(params, frequencies, width, layers, x, ActivationCode.SINE)
    # float32 pre-activations times omega0 = 30: ~1e-6 of phase per layer
    np.testing.assert_allclose(field.values(x), want, rtol=0, atol=2e-5)


@pytest.mark.parametrize(("frequencies", "width", "layers"), [(0, 20, 3), (2, 33, 2)])
def test_padded_sine_units_get_bias_zero(frequencies, width, layers):
    params = siren_params(frequencies, width, layers, seed=3)
    sine = sine_field(params, frequencies, width, layers, "cpu", MLPKernels.TILED)
    np.testing.assert_array_equal(
        sine.kernel_params().numpy(), padded_numpy(params, frequencies, width, layers, 0.0)
    )
    softplus = MLPField(params, frequencies, width, layers, "cpu", kernels=MLPKernels.TILED)
    np.testing.assert_array_equal(
        softplus.kernel_params().numpy(),
        padded_numpy(params, frequencies, width, layers, PAD_BIAS),
    )


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SineScenario:
    width: int
    layers: int
    frequencies: int
    kernels: MLPKernels
    # |got - exact| <= atol * max|exact| per parameter. The exact gradient is a
    # float64 central difference of the reference (h = 1e-6; sin has no kinks,
    # so its truncation error is ~1e-9); what is left is float32 rounding of
    # the forward pass and the atomic sums, amplified by omega0 = 30 per layer.
    atol: float

    @property
    def id(self) -> str:
        return f"w{self.width}-l{self.layers}-f{self.frequencies}-{self.kernels.value}"


SINE_SCENARIOS = [
    SineScenario(20, 2, 0, MLPKernels.SCALAR, 1e-4),
    SineScenario(20, 2, 0, MLPKernels.TILED, 1e-4),
    SineScenario(8, 3, 1, MLPKernels.SCALAR, 2e-4),
    SineScenario(8, 3, 1, MLPKernels.TILED, 2e-4),
]


@pytest.mark.parametrize("sc", SINE_SCENARIOS, ids=lambda s: s.id)
def test_sine_parameter_gradient(device, sc: SineScenario):
    params = siren_params(sc.frequencies, sc.width, sc.layers, seed=4)
    field = sine_field(params, sc.frequencies, sc.width, sc.layers, device, sc.kernels)
    rng = np.random.default_rng(5)
    x = random_points(rng, 16)
    adj = rng.normal(size=len(x))
    got = param_grad(field, x, adj)

    dims = (sc.frequencies, sc.width, sc.layers)
    exact = mlp_param_grad_numpy(params, dims, x, adj, ActivationCode.SINE)
    scale = np.abs(exact).max()
    for name, index in mlp_groups(*dims).items():  # every layer's weights and biases
        err = np.abs(got[index] - exact[index]).max()
        assert err <= sc.atol * scale, f"{sc.id} {name}: off by {err:.3g} (scale {scale:.3g})"
        assert np.abs(exact[index]).max() > 0.0, f"{name}: no gradient reaches it"


@pytest.mark.parametrize("kernels", [MLPKernels.SCALAR, MLPKernels.TILED])
def test_sine_spatial_gradient(device, kernels):
    frequencies, width, layers = 0, 20, 2
    params = siren_params(frequencies, width, layers, seed=6)
    field = sine_field(params, frequencies, width, layers, device, kernels)
    x = random_points(np.random.default_rng(7), 32)
    h = 1e-6
    f = [
        mlp_numpy(params, frequencies, width, layers, x + s * h * e, ActivationCode.SINE)
        for e in np.eye(3)
        for s in (1.0, -1.0)
    ]
    want = np.stack([(f[2 * k] - f[2 * k + 1]) / (2 * h) for k in range(3)], axis=1)
    got = spatial_grad(field, x)
    scale = np.abs(want).max()
    # the tetrahedral difference at h = 5e-4: float32 values over 2e-3 (~1e-4)
    # and the field's curvature (frequencies of order omega0 / 3 = 10 per unit)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-2 * max(scale, 1.0))


@pytest.mark.parametrize("block_dim", [1, 4])
@pytest.mark.parametrize("width", [20, 32])
def test_tiled_sine_equals_scalar(device, width, block_dim, request):
    if wp.get_device(device).is_cuda:
        block_dim = None  # a GPU: its default block only
    elif block_dim > 1:
        request.getfixturevalue("cpu_blocks")
    frequencies, layers = 1, 3
    params = siren_params(frequencies, width, layers, seed=8)
    scalar = sine_field(params, frequencies, width, layers, device, MLPKernels.SCALAR)
    tiled = sine_field(params, frequencies, width, layers, device, MLPKernels.TILED, block_dim)
    rng = np.random.default_rng(9)
    x = rng.uniform(-1.0, 1.0, size=(37, 3)).astype(np.float32)  # a partial last block of 4
    adj = rng.normal(size=len(x))
    np.testing.assert_allclose(tiled.values(x), scalar.values(x), rtol=0, atol=1e-5)
    want = param_grad(scalar, x, adj)
    np.testing.assert_allclose(
        param_grad(tiled, x, adj), want, rtol=0, atol=1e-4 * np.abs(want).max()
    )


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def test_siren_init_stays_within_its_bounds():
    frequencies, width, layers = 1, 64, 3
    params = siren_init(frequencies, width, layers, np.random.default_rng(10))
    groups = mlp_groups(frequencies, width, layers)
    fan_in = num_inputs(frequencies)
    first_w, first_b = siren_bounds(fan_in, True)
    hidden_w, hidden_b = siren_bounds(width, False)
    assert first_w == 1.0 / fan_in and hidden_w == pytest.approx(np.sqrt(6 / width) / 30.0)
    assert first_b == pytest.approx(1.0 / np.sqrt(fan_in))
    w0 = np.concatenate([params[groups["layer0.W[xyz]"]], params[groups["layer0.W[fourier]"]]])
    expect = {
        "layer0.W": (w0, first_w),
        "layer0.b": (params[groups["layer0.b"]], first_b),
        "out.w": (params[groups["out.w"]], hidden_w),
    }
    for layer in range(1, layers):
        expect[f"layer{layer}.W"] = (params[groups[f"layer{layer}.W"]], hidden_w)
        expect[f"layer{layer}.b"] = (params[groups[f"layer{layer}.b"]], hidden_b)
    for name, (values, bound) in expect.items():
        # uniform on [-bound, bound]: inside it, and spread over it (mean ~0)
        assert np.abs(values).max() <= bound, name
        assert np.abs(values).max() > 0.8 * bound, name
        assert abs(values.mean()) < 0.2 * bound, name
        assert values.std() == pytest.approx(bound / np.sqrt(3.0), rel=0.25), name
    assert params[groups["out.b"]][0] == 0.0


def test_siren_field_starts_with_zero_crossings_away_from_the_origin(no_init_scene):
    scene = tiny_scene(no_init_scene, "model.activation=sine",
                       "model.fourier_frequencies=0", "model.hidden=32")  # fmt: skip
    assert scene.model.init is ModelInit.RANDOM  # sine's default: SIREN's init
    field = make_field(scene, np.random.default_rng(scene.seed), "cpu")
    assert field.activation is SINE
    t = np.linspace(-1.0, 1.0, 801)  # world units, along lines through the bound
    rng = np.random.default_rng(11)
    far = 0
    for _ in range(4):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        values = field.values(t[:, None] * d[None, :])
        flips = np.nonzero(np.diff(np.sign(values)))[0]
        far += int(np.sum(np.abs(t[flips]) > 0.5))
    # a softplus field at its geometric init crosses once each side, at |t| = 0.5
    assert far >= 4, far


# ---------------------------------------------------------------------------
# The scene and the run folder
# ---------------------------------------------------------------------------


def _validate(*overrides: str, scene=XYZ_SCENE):
    """``warpsdf validate`` of ``scene`` with these ``--set`` overrides."""
    return cli("validate", scene, *(f"--set={item}" for item in overrides))


@pytest.mark.parametrize(
    ("overrides", "key", "needle"),
    [
        (("model.kind=hashgrid", "model.activation=sine"), "model.activation", "kind = mlp"),
        (("model.activation=sine", "model.init=sphere"), "model.init", "activation = sine"),
    ],
    ids=["hashgrid", "sphere-init"],
)
def test_scene_refuses_sine_where_it_has_no_meaning(overrides, key, needle):
    assert_user_error(_validate(*overrides), key, needle)


def test_unknown_activation_names_the_choices():
    assert_user_error(_validate("model.activation=relu"), "model.activation", "softplus", "sine")


def test_sine_validates_with_its_default_init(no_init_scene):
    result = _validate("model.activation=sine", scene=no_init_scene)
    assert result.exit_code == 0, result.output
    assert load_scene(no_init_scene, ["model.activation=sine"]).model.init is ModelInit.RANDOM
    assert load_scene(no_init_scene).model.init is ModelInit.SPHERE  # softplus: unchanged


def test_activation_round_trips_through_the_resolved_scene(tmp_path):
    scene = tiny_scene(XYZ_SCENE, "model.activation=sine", "model.init=random")
    saved = tmp_path / "resolved.toml"
    saved.write_text(scene.to_toml())
    again = load_scene(saved)
    assert again == scene and again.model.activation is SINE
    # an older scene without the key is a softplus network
    older = tmp_path / "older.toml"
    older.write_text(
        "\n".join(line for line in scene.to_toml().splitlines() if "activation" not in line)
    )
    assert load_scene(older).model.activation is ModelActivation.SOFTPLUS
    params = make_field(scene, np.random.default_rng(0), "cpu").params.numpy()
    field = field_from_params(again, params, "cpu")
    assert field.activation is SINE
    assert field.meta.numpy()[META_ACTIVATION] == float(ActivationCode.SINE)


def test_one_scalar_kernel_serves_both_activations():
    params = siren_params(0, 8, 1, seed=13)
    sine = sine_field(params, 0, 8, 1, "cpu", MLPKernels.SCALAR)
    softplus = MLPField(params, 0, 8, 1, "cpu", kernels=MLPKernels.SCALAR)
    assert sine.functions is softplus.functions  # the activation is read from meta
    tiled_sine = sine_field(params, 0, 8, 1, "cpu", MLPKernels.TILED)
    tiled = MLPField(params, 0, 8, 1, "cpu", kernels=MLPKernels.TILED)
    assert tiled_sine.functions.name != tiled.functions.name  # tile_map: one set each


def test_visual_hull_start_of_a_sine_network_is_sirens():
    scene = tiny_scene(
        XYZ_SCENE, "model.activation=sine", "model.init=visual_hull", "model.hidden=16"
    )
    field = make_field(
        scene, np.random.default_rng(0), "cpu", init_sdf=lambda x: np.linalg.norm(x, axis=1)
    )
    m = scene.model
    groups = mlp_groups(m.fourier_frequencies, m.hidden, m.layers)
    hidden_w, _ = siren_bounds(m.hidden, False)
    params = field.params.numpy()
    assert field.activation is SINE
    assert np.abs(params[groups["layer1.W"]]).max() <= hidden_w  # not the geometric init
    assert params[groups["out.b"]][0] == 0.0


def test_tiny_sine_fit_lowers_its_loss_and_reloads(tmp_path):
    scene = tiny_scene(
        XYZ_SCENE, "model.activation=sine", "model.init=random", "model.fourier_frequencies=0"
    )
    records = []
    run_dir = tmp_path / "run"
    result = fit(scene, run_dir, iterations=12, device="cpu", write_outputs=False,
                 on_step=records.append)  # fmt: skip
    losses = [r.loss for r in records]
    assert np.all(np.isfinite(losses)) and len(losses) == 12
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    saved, field = load_run(run_dir, "cpu")
    assert saved.model.activation is SINE and field.activation is SINE
    x = random_points(np.random.default_rng(12), 16)
    np.testing.assert_array_equal(field.values(x), result.field.values(x))
