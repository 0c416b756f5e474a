"""The hash-grid field (:mod:`warpsdf.fields.hashgrid`, its encoding
:mod:`warpsdf.fields.hash_encoding`) against a plain numpy reference (STYLE
"Tests, in layers").

* Closed forms: the entry index (dense and hashed) against an independent
  numpy implementation; the level layout; lattice points return the stored
  features exactly; values match the reference; the field starts as a sphere.
* Gradients: the parameter backward (table entries and network weights) with a
  random upstream gradient against float64 central differences of the
  reference, and the spatial gradient likewise; inactive levels change nothing
  and get no gradient; the tiled kernels agree with the scalar ones.
* The fit: levels switch on at the scheduled steps, a resume continues
  bit-identically across them, a tiny fit converges, bad keys are one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import warp as wp

from tests.conftest import SCENES, assert_user_error, cli
from tests.helpers import (
    central_differences,
    param_grad,
    random_points,
    spatial_grad,
    unit,
    weighted_sum,
)
from warpsdf.fields.hash_encoding import (
    HASH_PRIMES,
    HashGridSpec,
    hash_features,
    level_cell_at,
    level_resolutions,
    table_layout,
)
from warpsdf.fields.hashgrid import HashGridField, hashgrid_init, level_starts, num_params
from warpsdf.fields.mlp_core import SOFTPLUS_BETA
from warpsdf.scene import MLPKernels, ModelKind, load_scene
from warpsdf.scene.schema import KIND_DEFAULTS

SPHERES_SCENE = SCENES / "two_spheres_silhouette.toml"

# A small field: 3 levels (a dense 2^3 lattice, then two hashed into 2^6 entries).
SMALL = HashGridSpec(
    levels=3, features=2, log2_size=6, base_resolution=2, max_resolution=9, width=8, layers=2,
    bound_radius=1.0, init_radius=0.5,
)  # fmt: skip

# ---------------------------------------------------------------------------
# The numpy reference (module docstrings of hash_encoding and hashgrid)
# ---------------------------------------------------------------------------


def index_numpy(v: np.ndarray, n: int, entries: int, hashed: bool) -> np.ndarray:
    """Entry of lattice corners v (K, 3): dense row-major, or the XOR of the
    coordinates times the primes, modulo 2^32 and then the table size."""
    v = v.astype(np.uint64)
    if not hashed:
        return (v[:, 0] + (n + 1) * (v[:, 1] + (n + 1) * v[:, 2])).astype(np.int64)
    h = np.zeros(len(v), np.uint64)
    for axis, prime in enumerate(HASH_PRIMES):
        h ^= (v[:, axis] * np.uint64(prime)) & np.uint64(0xFFFFFFFF)
    return (h % np.uint64(entries)).astype(np.int64)


def encoding_numpy(table: np.ndarray, spec: HashGridSpec, active: int, x: np.ndarray):
    """(N, L F) features, float64."""
    x = np.asarray(x, np.float64)
    table = np.asarray(table, np.float64)
    u = np.clip((x / spec.bound_radius + 1.0) / 2.0, 0.0, 1.0)
    out, offset, nf = [], 0, spec.features
    for level, (n, entries, hashed) in enumerate(spec.table_layout()):
        p = u * n
        c = np.minimum(np.floor(p), n - 1).astype(np.int64)
        w = p - c
        feats = np.zeros((len(x), nf))
        if level < active:
            for bits in np.ndindex(2, 2, 2):
                b = np.array(bits)
                weight = np.prod(np.where(b == 1, w, 1.0 - w), axis=1)
                idx = index_numpy(c + b, n, entries, hashed)
                rows = table[offset + nf * idx[:, None] + np.arange(nf)]
                feats += weight[:, None] * rows
        out.append(feats)
        offset += entries * nf
    assert offset == spec.table_size
    return np.concatenate(out, axis=1)


def field_numpy(params, spec: HashGridSpec, x, active: int | None = None) -> np.ndarray:
    """f(x) = |x| - r + MLP(encoding(x)), float64."""
    p = np.asarray(params, np.float64)
    active = spec.levels if active is None else active
    a = encoding_numpy(p[: spec.table_size], spec, active, x)
    offset, fan_in = spec.table_size, spec.n_in
    for _ in range(spec.layers):
        w = p[offset : offset + spec.width * fan_in].reshape(spec.width, fan_in)
        b = p[offset + spec.width * fan_in : offset + spec.width * (fan_in + 1)]
        offset += spec.width * (fan_in + 1)
        a = np.logaddexp(0.0, SOFTPLUS_BETA * (a @ w.T + b)) / SOFTPLUS_BETA
        fan_in = spec.width
    assert offset + spec.width + 1 == p.size
    mlp = a @ p[offset : offset + spec.width] + p[offset + spec.width]
    return np.linalg.norm(np.asarray(x, np.float64), axis=1) - spec.init_radius + mlp


def noisy_params(spec: HashGridSpec, seed: int, table_noise=0.3, noise=0.3) -> np.ndarray:
    """The initial parameters with noise, so every unit and entry matters."""
    rng = np.random.default_rng(seed)
    p = hashgrid_init(spec, rng).astype(np.float64)
    t = spec.table_size
    p[:t] += table_noise * rng.normal(size=t)
    p[t:] += noise * rng.normal(size=p.size - t)
    return p.astype(np.float32)


def make(spec: HashGridSpec, params, device="cpu", kernels=MLPKernels.SCALAR, **kw):
    return HashGridField(params, spec, device=device, kernels=kernels, **kw)


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


@wp.kernel
def cell_kernel(
    points: wp.array(dtype=wp.vec3), n: int, entries: int, hashed: int,
    entries_out: wp.array2d(dtype=int), w_out: wp.array(dtype=wp.vec3),
):  # fmt: skip
    i = wp.tid()
    cell = level_cell_at(points[i], 1.0, n, entries, hashed)
    for corner in range(8):
        entries_out[i, corner] = cell.entries[corner]
    w_out[i] = cell.w


@pytest.mark.parametrize(("n", "log2_size"), [(10, 12), (300, 12), (4000, 19)])
def test_corner_entries_match_numpy(n, log2_size):
    """The 8 corner entries of a point's cell (corner bits x: 1, y: 2, z: 4),
    dense or hashed, against the numpy index of each corner."""
    ((_, entries, hashed),) = table_layout([n], log2_size)
    assert hashed == ((n + 1) ** 3 > 2**log2_size)
    x = random_points(np.random.default_rng(n), 500, 1.0)
    x[:3] = [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.3]]  # the cube's corners
    got = wp.zeros((len(x), 8), dtype=int, device="cpu")
    w = wp.zeros(len(x), dtype=wp.vec3, device="cpu")
    points = wp.array(np.float32(x), dtype=wp.vec3, device="cpu")
    wp.launch(
        cell_kernel, dim=len(x), inputs=[points, n, entries, int(hashed)], outputs=[got, w],
        device="cpu",
    )  # fmt: skip
    p = (np.float32(x).astype(np.float64) + 1.0) / 2.0 * n
    c = np.minimum(np.floor(p), n - 1).astype(np.int64)
    ok = np.abs(p - np.round(p)).min(axis=1) > 1e-4  # float32 may round across a face
    assert ok.mean() > 0.95
    for corner, bits in enumerate([(a, b, cc) for cc in (0, 1) for b in (0, 1) for a in (0, 1)]):
        want = index_numpy(c + np.array(bits), n, entries, hashed)
        np.testing.assert_array_equal(got.numpy()[ok, corner], want[ok])
        assert want.min() >= 0 and want.max() < entries
    np.testing.assert_allclose(w.numpy()[ok], (p - c)[ok], atol=1e-3)
    if not hashed:  # the dense index is a bijection of the lattice
        lattice = np.argwhere(np.ones((n + 1,) * 3, bool))
        assert len(np.unique(index_numpy(lattice, n, entries, False))) == entries


def test_level_layout():
    res = level_resolutions(16, 16, 512)
    assert res[0] == 16 and res[-1] == 512 and res == sorted(res)
    growth = np.exp(np.log(512 / 16) / 15)
    np.testing.assert_allclose(res[:-1], np.floor(16 * growth ** np.arange(15)), atol=1)
    assert level_resolutions(1, 8, 8) == [8]
    layout = table_layout(res, 15)
    for n, entries, hashed in layout:
        assert hashed == ((n + 1) ** 3 > 2**15)
        assert entries == (2**15 if hashed else (n + 1) ** 3)
    spec = dataclasses.replace(SMALL, log2_size=15, levels=16, base_resolution=16,
                               max_resolution=512)  # fmt: skip
    assert spec.table_size == sum(e for _, e, _ in layout) * 2
    assert num_params(spec) == spec.table_size + (32 * 8 + 8) + (8 * 8 + 8) + 9


@wp.kernel
def features_kernel(
    params: wp.array(dtype=float), meta: wp.array(dtype=float), points: wp.array(dtype=wp.vec3),
    out: wp.array2d(dtype=float),
):  # fmt: skip
    i = wp.tid()
    feat, _end = hash_features(params, meta, points[i], 0)
    for k in range(out.shape[1]):
        out[i, k] = feat[k]


def encode(field: HashGridField, x: np.ndarray) -> np.ndarray:
    out = wp.zeros((len(x), field.spec.n_in), dtype=float, device=field.device)
    points = wp.array(np.float32(x), dtype=wp.vec3, device=field.device)
    wp.launch(
        features_kernel, dim=len(x), inputs=[field.params, field.meta, points], outputs=[out],
        device=field.device,
    )  # fmt: skip
    return out.numpy()


@pytest.mark.parametrize(("n", "log2_size"), [(8, 12), (64, 8)], ids=["dense", "hashed"])
def test_lattice_points_return_their_entries(n, log2_size):
    """At a lattice point every other corner's weight is exactly 0: the encoding
    is the stored entry, bit for bit (n a power of two: exact coordinates)."""
    spec = HashGridSpec(1, 3, log2_size, n, n, 8, 1, 1.0, 0.5)
    params = noisy_params(spec, seed=1)
    field = make(spec, params)
    rng = np.random.default_rng(2)
    v = rng.integers(0, n + 1, size=(200, 3))
    x = 2.0 * v / n - 1.0  # u = v / n, exactly
    ((_, entries, hashed),) = spec.table_layout()
    table = params[: spec.table_size].reshape(entries, 3)
    np.testing.assert_array_equal(encode(field, x), table[index_numpy(v, n, entries, hashed)])


@pytest.mark.parametrize("kernels", [MLPKernels.SCALAR, MLPKernels.TILED])
@pytest.mark.parametrize("active", [3, 1])
def test_values_match_numpy(kernels, active):
    params = noisy_params(SMALL, seed=3)
    field = make(SMALL, params, kernels=kernels)
    field.set_active_levels(active)
    x = random_points(np.random.default_rng(4), 64, 1.0)
    x[:2] = [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]  # the cube's faces, the origin
    np.testing.assert_allclose(
        field.values(x), field_numpy(params, SMALL, x, active), rtol=1e-5, atol=1e-5
    )


def test_sizes_are_checked():
    params = hashgrid_init(SMALL, np.random.default_rng(0))
    with pytest.raises(ValueError, match="parameter count"):
        make(SMALL, params[:-1])
    with pytest.raises(ValueError, match="inputs"):
        make(dataclasses.replace(SMALL, levels=16, features=4), params)
    with pytest.raises(ValueError, match="resolution"):
        make(dataclasses.replace(SMALL, max_resolution=1), params)


def test_starts_as_a_sphere():
    spec = HashGridSpec(12, 2, 12, 16, 256, 32, 2, 1.0, 0.4)
    field = make(spec, hashgrid_init(spec, np.random.default_rng(0)))
    x = random_points(np.random.default_rng(5), 500, 1.0)
    np.testing.assert_allclose(field.values(x), np.linalg.norm(x, axis=1) - 0.4, atol=1e-4)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GradScenario:
    layers: int
    kernels: MLPKernels
    active: int
    # |<grad, v> - FD| <= rtol |FD| for Warp's float32 forward at eps = 1e-3: the
    # softplus (beta = 100) bends within 0.01 of a kink, and the trilinear
    # weights are linear in the table, so only the network's curvature shows.
    rtol: float = 3e-2

    @property
    def id(self) -> str:
        return f"l{self.layers}-{self.kernels.value}-a{self.active}"


GRAD_SCENARIOS = [
    GradScenario(layers, kernels, active)
    for layers in (1, 2)
    for kernels in (MLPKernels.SCALAR, MLPKernels.TILED)
    for active in (3, 2)
]


def exact_param_grad(params, spec, x, adj, active) -> np.ndarray:
    """d/dθ sum_i adj_i f(x_i) by float64 central differences of the reference."""
    return central_differences(lambda p: adj @ field_numpy(p, spec, x, active), params)


@pytest.mark.parametrize("sc", GRAD_SCENARIOS, ids=lambda s: s.id)
def test_parameter_gradient(sc: GradScenario):
    spec = dataclasses.replace(SMALL, layers=sc.layers)
    params = noisy_params(spec, seed=6)
    field = make(spec, params, kernels=sc.kernels)
    field.set_active_levels(sc.active)
    rng = np.random.default_rng(7)
    x = random_points(rng, 24, 1.0)
    adj = rng.normal(size=len(x))
    got = param_grad(field, x, adj)
    exact = exact_param_grad(params, spec, x, adj, sc.active)
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5 * np.abs(exact).max())

    # the table entries the points touch, and every network weight group, get gradient
    table = spec.table_size
    level_ends = np.cumsum([e * spec.features for _, e, _ in spec.table_layout()])
    assert np.abs(got[: level_ends[0]]).max() > 0
    inactive = slice(level_ends[sc.active - 1], table)
    assert not got[inactive].any(), "an inactive level's entries got a gradient"
    assert np.abs(got[table:]).max() > 0

    # directional differences of Warp's own float32 forward along random v
    eps = 1e-3
    for seed in range(2):
        v = unit(np.random.default_rng(100 + seed).normal(size=params.shape))
        fd = (
            weighted_sum(field, params + eps * v, x, adj)
            - weighted_sum(field, params - eps * v, x, adj)
        ) / (2 * eps)
        assert got @ v == pytest.approx(fd, rel=sc.rtol, abs=1e-3), (seed, got @ v, fd)


@pytest.mark.parametrize(
    ("kernels", "atol"),
    # analytic on the scalar kernels (float32 rounding only); the tetrahedral
    # difference on the tiled ones (h = 5e-4 across cells of 0.2: O(h) at kinks)
    [(MLPKernels.SCALAR, 2e-4), (MLPKernels.TILED, 2e-2)],
)
def test_spatial_gradient(kernels, atol):
    params = noisy_params(SMALL, seed=8, table_noise=0.1, noise=0.1)
    field = make(SMALL, params, kernels=kernels)
    x = random_points(np.random.default_rng(9), 48, 0.95)
    h = 1e-6
    want = np.stack(
        [
            (field_numpy(params, SMALL, x + h * e) - field_numpy(params, SMALL, x - h * e))
            / (2 * h)
            for e in np.eye(3)
        ],
        axis=1,
    )
    got = spatial_grad(field, x)
    err = np.abs(got - want).max(axis=1)
    assert np.median(err) < atol, (np.median(err), err.max())
    assert np.quantile(err, 0.9) < 10 * atol, err


def test_inactive_levels_change_nothing():
    """With one level active, the other levels' entries may hold anything."""
    params = noisy_params(SMALL, seed=10)
    field = make(SMALL, params)
    field.set_active_levels(1)
    x = random_points(np.random.default_rng(11), 64, 1.0)
    before = field.values(x)
    first = SMALL.table_layout()[0][1] * SMALL.features
    changed = params.copy()
    changed[first : SMALL.table_size] = 7.0
    field.params.assign(changed)
    np.testing.assert_array_equal(field.values(x), before)
    # the network weights that read the inactive features get no gradient either
    g = param_grad(field, x, np.random.default_rng(12).normal(size=len(x)))
    w0 = g[SMALL.table_size : SMALL.table_size + SMALL.width * SMALL.n_in]
    w0 = w0.reshape(SMALL.width, SMALL.n_in)
    assert not g[first : SMALL.table_size].any() and not w0[:, SMALL.features :].any()
    assert w0[:, : SMALL.features].any()


def test_tiled_matches_scalar_in_blocks(cpu_blocks):
    """Blocks of 4 points, a count that leaves surplus threads: values and
    parameter gradients as the scalar kernels, and the march's hits."""
    from warpsdf.camera import orbit_cameras, rays_for
    from warpsdf.march import march
    from warpsdf.scene import MarchConfig

    spec = dataclasses.replace(SMALL, width=20)
    params = noisy_params(spec, seed=13, table_noise=0.05, noise=0.05)
    scalar = make(spec, params)
    tiled = make(spec, params, kernels=MLPKernels.TILED, block_dim=4)
    rng = np.random.default_rng(14)
    x = random_points(rng, 37, 1.0)
    np.testing.assert_allclose(tiled.values(x), scalar.values(x), rtol=1e-5, atol=1e-6)
    adj = rng.normal(size=len(x))
    g_s, g_t = param_grad(scalar, x, adj), param_grad(tiled, x, adj)
    np.testing.assert_allclose(g_t, g_s, rtol=1e-4, atol=1e-5 * np.abs(g_s).max())

    o, d = rays_for(orbit_cameras(1, 2.5, 20.0, width=10, height=9, fov_deg=40.0))
    o, d = (wp.array(v, dtype=wp.vec3, device="cpu") for v in (o, d))
    hits = [march(f, o, d, MarchConfig()).numpy() for f in (scalar, tiled)]
    hit = hits[0]["hit_t"] >= 0
    assert 10 < hit.sum() < len(hit) - 10
    np.testing.assert_array_equal(hit, hits[1]["hit_t"] >= 0)
    np.testing.assert_allclose(hits[0]["hit_t"][hit], hits[1]["hit_t"][hit], atol=1e-4)


# ---------------------------------------------------------------------------
# Coarse to fine, in a fit
# ---------------------------------------------------------------------------

# A tiny hash-grid fit of the two-sphere silhouettes.
TINY_HASH = (
    'model.kind="hashgrid"',
    'model.init="sphere"',
    "model.init_radius=0.5",
    "model.hash_levels=4",
    "model.hash_log2_size=8",
    "model.hash_base_resolution=4",
    "model.hash_max_resolution=32",
    "model.hidden=8",
    "cameras.resolution=[12, 12]",
    "march.max_steps=24",
    "optim.eikonal_samples=16",
    "optim.batch_rays=0",
    "output.mesh_resolution=16",
    "output.heldout_views=2",
    "output.final_scale=2",
    "output.snapshot_every=2",
    "output.checkpoint_every=3",
)


def test_level_schedule():
    # the coarsest quarter at once, the rest evenly up to coarse_to_fine of the fit
    assert level_starts(16, 0.5, 1000) == [0] * 4 + [-(-k * 500 // 12) for k in range(1, 13)]
    starts = level_starts(8, 0.5, 100)
    assert starts[:2] == [0, 0] and starts[-1] == 50 and starts == sorted(starts)
    assert level_starts(4, 0.0, 100) == [0, 0, 0, 0]
    assert level_starts(4, 0.99, 10)[-1] == 9  # the finest level trains at least one step
    assert level_starts(1, 0.5, 10) == [0]


def test_fit_switches_levels_on_and_resumes_bit_identically(tmp_path):
    from warpsdf.fit import Fitter, fit

    scene = load_scene(
        SPHERES_SCENE, [*TINY_HASH, "optim.iterations=6", "model.coarse_to_fine=0.5"]
    )
    fitter = Fitter.from_scene(scene, "cpu")
    seen = [fitter.field.active_levels]
    for _ in range(6):
        fitter.step()
        seen.append(fitter.field.active_levels)
    # levels 1-3 switch on before steps 1, 2, 3 (the Fitter enters a stage
    # before the step where it starts)
    assert seen == [1, 1, 2, 3, 4, 4, 4]

    straight = fit(scene, tmp_path / "straight", device="cpu", write_outputs=False)
    done = []
    first = fit(
        scene, tmp_path / "resumed", device="cpu", write_outputs=False,
        on_step=lambda r: done.append(r), should_stop=lambda: len(done) >= 2,
    )  # fmt: skip
    assert first.iteration == 2
    fit(scene, tmp_path / "resumed", device="cpu", write_outputs=False, resume=True)
    a = np.load(tmp_path / "straight" / "checkpoint.npz")
    b = np.load(tmp_path / "resumed" / "checkpoint.npz")
    for key in ("params", "adam_m", "adam_v"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert straight.status.value == "finished"


def test_tiny_fit_converges():
    """Silhouettes of two balls from 8 views at 24x24: a hash grid from the
    sphere start reaches a real IoU in 60 steps."""
    from warpsdf.fit import Fitter

    scene = load_scene(
        SPHERES_SCENE,
        [*TINY_HASH, "cameras.resolution=[24, 24]", "optim.iterations=60", "optim.lr=2e-2",
         "model.hash_levels=6", "model.hash_max_resolution=48", "optim.eikonal_samples=64"],
    )  # fmt: skip
    fitter = Fitter.from_scene(scene, "cpu")
    first = fitter.step().iou
    records = fitter.steps(59)
    assert first < 0.6, first
    assert records[-1].iou > 0.9, [r.iou for r in records[::10]]


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "needles"),
    [
        ("model.hash_levels=0", ["model.hash_levels", "> 0"]),
        ("model.hash_log2_size=30", ["model.hash_log2_size", "[4, 24]"]),
        ("model.hash_features=9", ["model.hash_features", "<= 8"]),
        ("model.hash_level=4", ["model.hash_level", "hash_levels"]),
        ("model.hash_max_resolution=8", ["model.hash_max_resolution", ">= model.hash_base"]),
        ("model.hash_features=8", ["model.hash_features", "96", "at most 63"]),
        ("model.hash_log2_size=24 model.hash_features=4", ["model.hash_log2_size", "GiB"]),
    ],
)
def test_bad_keys_are_one_line(setting, needles):
    args = ["--set", 'model.kind="hashgrid"', "--set", 'model.init="sphere"']
    args += ["--set", "model.hash_levels=12"]
    for item in setting.split():
        args += ["--set", item]
    result = cli("validate", SPHERES_SCENE, *args)
    assert_user_error(result, *needles)


def test_kind_defaults_apply_only_where_the_scene_is_silent(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text('[target]\nkind = "shapes"\npreset = "airplane"\n[model]\nkind = "hashgrid"\n')
    scene = load_scene(path)
    assert scene.model.hidden == KIND_DEFAULTS[ModelKind.HASHGRID]["model.hidden"]
    assert scene.optim.lr == KIND_DEFAULTS[ModelKind.HASHGRID]["optim.lr"]
    assert scene.model.hash_max_resolution == 2 * max(scene.cameras.resolution)
    assert load_scene(path, ["optim.lr=3e-3"]).optim.lr == 3e-3  # given: kept
    # another kind keeps the schema's defaults
    mlp = load_scene(path, ['model.kind="mlp"'])
    assert mlp.model.hidden == 64 and mlp.optim.lr == 1e-3 and mlp.optim.batch_rays == 0
