"""The voxel-grid field (``model.kind = "grid"``, :mod:`warpsdf.fields.grid`).

1. Closed forms: a trilinear lattice reproduces any linear function exactly
   (values and the analytic gradient, clamped outside the cube); the sphere
   initialisation's values at the lattice points; resampling onto a nested
   lattice keeps the function everywhere, onto any lattice keeps a linear one.
2. Gradients: the spatial gradient against central differences, the
   parameter backward against its closed form (the trilinear weights, a
   random upstream gradient) and central differences, the smoothness term's
   gradient against central differences and its value on a sphere (16 pi).
3. Stages: the schedule, and a fit interrupted at a stage start or inside a
   stage resumes bit for bit on the CPU (through :func:`warpsdf.fit`); a
   checkpoint of another stage's layout is resampled when it loads.
4. Convergence on tiny images, and the CLI on a grid run; bad keys are one
   line, exit 2.

Tolerances: float32 values of order 1 are held to 1e-5 where the maths is
exact; finite differences of Warp's float32 forward to what float32 allows.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import assert_user_error, cli
from tests.helpers import SPHERES_SCENE, param_grad, spatial_grad, tiny_scene, weighted_sum
from warpsdf.fields.factory import make_field
from warpsdf.fields.grid import GridField, lattice_points, pack_grid, stage_starts
from warpsdf.fit import Fitter, RunStatus, fit
from warpsdf.fit.optim import Adam
from warpsdf.io.layout import RunFolder
from warpsdf.losses import Term
from warpsdf.metrics import mean_iou, trace_views

BOUND = 1.0

# The tiny run on a grid: the spheres scene's targets, a 4 -> 8 -> 12 cell grid.
GRID_SET = ('model.kind="grid"', 'model.init="sphere"', "model.grid_resolution=[4, 8, 12]")


def grid_scene(*extra: str, iterations: int | None = None):
    scene = tiny_scene(SPHERES_SCENE, *GRID_SET, *extra)
    if iterations is not None:
        scene = scene.replace(optim=dataclasses.replace(scene.optim, iterations=iterations))
    return scene


def grid_field(values: np.ndarray, n: int, device, resolutions=None) -> GridField:
    resolutions = resolutions or (n,)
    return GridField(pack_grid(values, n, resolutions[-1]), resolutions, BOUND, device=device)


def trilinear_numpy(values: np.ndarray, n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slow reference (float64): the value at each point and, per point, the 8
    (flat index, weight) pairs of its cell's corners."""
    v = values.reshape(n + 1, n + 1, n + 1)
    u = (np.clip(x, -BOUND, BOUND) + BOUND) * n / (2 * BOUND)
    cell = np.minimum(np.floor(u).astype(int), n - 1)
    t = u - cell
    out = np.zeros(len(x))
    corners = []
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                w = (
                    np.where(di, t[:, 0], 1 - t[:, 0])
                    * np.where(dj, t[:, 1], 1 - t[:, 1])
                    * np.where(dk, t[:, 2], 1 - t[:, 2])
                )
                i, j, k = cell[:, 0] + di, cell[:, 1] + dj, cell[:, 2] + dk
                out += w * v[i, j, k]
                corners.append(((i * (n + 1) + j) * (n + 1) + k, w))
    return out, corners


def inside_cells(rng: np.random.Generator, count: int, n: int, margin: float = 0.05) -> np.ndarray:
    """Random points of the cube at least ``margin`` cells from every cell face
    (where the trilinear field is smooth)."""
    cells = rng.integers(0, n, size=(count, 3))
    frac = rng.uniform(margin, 1 - margin, size=(count, 3))
    return -BOUND + (cells + frac) * (2 * BOUND / n)


# ---------------------------------------------------------------------------
# 1. Closed forms
# ---------------------------------------------------------------------------


def test_linear_functions_are_reproduced_exactly(device):
    n = 5
    a, c = np.array([0.7, -1.3, 0.4]), 0.25
    field = grid_field(lattice_points(n, BOUND) @ a + c, n, device)
    rng = np.random.default_rng(0)
    x = rng.uniform(-BOUND, BOUND, size=(200, 3))
    np.testing.assert_allclose(field.values(x), x @ a + c, rtol=0, atol=1e-5)
    np.testing.assert_allclose(spatial_grad(field, x), np.tile(a, (200, 1)), rtol=0, atol=1e-5)
    # outside the cube: clamped into it, no slope along the clamped axes
    out = np.array([[1.5, 0.2, -0.3], [-0.1, -2.0, 3.0]])
    np.testing.assert_allclose(field.values(out), np.clip(out, -1, 1) @ a + c, atol=1e-5)
    np.testing.assert_allclose(spatial_grad(field, out), [[0, a[1], a[2]], [a[0], 0, 0]], atol=1e-5)


def test_sphere_initialisation_at_the_lattice(device):
    scene = grid_scene("model.init_radius=0.4")
    field = make_field(scene, np.random.default_rng(0), device)
    n = scene.model.grid_resolution[0]
    assert field.resolution == n and field.num_params == 13**3 + 1
    want = np.linalg.norm(lattice_points(n, BOUND), axis=1) - 0.4
    np.testing.assert_array_equal(field.values_at_lattice().ravel(), want.astype(np.float32))
    params = field.params.numpy()
    assert params[-1] == n and not params[(n + 1) ** 3 : -1].any()  # the tag; unused zeros
    np.testing.assert_allclose(field.meta.numpy(), [n, BOUND])


def test_resampling_keeps_the_function(device):
    rng = np.random.default_rng(1)
    # onto a nested lattice (8 = 2 x 4): the same piecewise-trilinear function
    field = grid_field(rng.normal(size=5**3), 4, device, (4, 6, 8))
    x = rng.uniform(-BOUND, BOUND, size=(300, 3))
    before = field.values(x)
    field.resample(8)
    np.testing.assert_allclose(field.values(x), before, rtol=0, atol=2e-6)
    assert field.resolution == 8 and field.params.numpy()[-1] == 8
    np.testing.assert_allclose(field.meta.numpy(), [8, BOUND])
    # onto any lattice (4 -> 6): a linear function stays exact
    a = np.array([0.3, 0.5, -0.8])
    field = grid_field(lattice_points(4, BOUND) @ a, 4, device, (4, 6, 8))
    field.resample(6)
    np.testing.assert_allclose(field.values(x), x @ a, rtol=0, atol=1e-5)
    assert not field.params.numpy()[7**3 : -1].any()


# ---------------------------------------------------------------------------
# 2. Gradients
# ---------------------------------------------------------------------------


def test_spatial_gradient_matches_central_differences(device):
    n = 6
    rng = np.random.default_rng(2)
    field = grid_field(rng.normal(size=(n + 1) ** 3), n, device)
    x = inside_cells(rng, 60, n, margin=0.1)
    h = 1e-3  # a tenth of the margin: the differences stay inside the cell
    fd = np.stack(
        [
            (field.values(x + h * e).astype(np.float64) - field.values(x - h * e)) / (2 * h)
            for e in np.eye(3)
        ],
        axis=1,
    )
    # trilinear: exact up to float32 values (~1e-7 x 3 / 2h)
    np.testing.assert_allclose(spatial_grad(field, x), fd, rtol=0, atol=2e-3)


def test_parameter_gradient(device):
    """The backward (8 atomic adds) against the trilinear weights (float64, a
    random upstream gradient) and central differences of sum(adj * f)."""
    n = 4
    rng = np.random.default_rng(3)
    values = rng.normal(size=(n + 1) ** 3)
    field = grid_field(values, n, device)
    x = rng.uniform(-1.1, 1.1, size=(40, 3))  # a few outside the cube: clamped
    adj = rng.normal(size=len(x))
    got = param_grad(field, x, adj)

    _, corners = trilinear_numpy(values, n, x)
    exact = np.zeros(field.num_params)
    for index, w in corners:
        np.add.at(exact, index, adj * w)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-6)
    assert got[-1] == 0.0  # the layout tag is never differentiated

    theta = field.params.numpy().astype(np.float64)
    eps = 1e-2  # the field is linear in its values: only rounding limits the step
    touched = np.flatnonzero(exact)
    fd = np.empty(len(touched))
    for m, j in enumerate(touched):
        step = np.zeros_like(theta)
        step[j] = eps
        fd[m] = (
            weighted_sum(field, theta + step, x, adj) - weighted_sum(field, theta - step, x, adj)
        ) / (2 * eps)
    np.testing.assert_allclose(got[touched], fd, rtol=1e-3, atol=2e-4)


def smoothness(field: GridField, params: np.ndarray, weight: float = 0.5):
    """The smoothness term of ``params`` through Field.regularize on a tape:
    (tape, terms, loss)."""
    import warp as wp

    d = field.device
    field.params.assign(params.astype(np.float32))
    terms = wp.zeros(len(Term), dtype=float, device=d, requires_grad=True)
    loss = wp.zeros(1, dtype=float, device=d, requires_grad=True)
    tape = wp.Tape()
    with tape:
        field.regularize(
            weight, wp.zeros(1, dtype=int, device=d), Term.SMOOTHNESS, terms, loss, tape
        )
    return tape, terms, loss


def test_smoothness_gradient_matches_central_differences(device):
    n = 6
    rng = np.random.default_rng(4)
    # every value well inside the band (3 cells = 1.0 world units): a fixed site set
    values = np.clip(0.2 * rng.normal(size=(n + 1) ** 3), -0.8, 0.8)
    field = grid_field(values, n, device, (n, 8))
    theta = field.params.numpy().astype(np.float64)
    tape, terms, loss = smoothness(field, theta)
    assert loss.numpy()[0] == pytest.approx(0.5 * terms.numpy()[Term.SMOOTHNESS], rel=1e-6)
    tape.backward(loss=loss)
    got = field.params.grad.numpy().astype(np.float64)
    eps = 1e-2
    fd = np.zeros_like(theta)
    for j in range(len(theta) - 1):
        step = np.zeros_like(theta)
        step[j] = eps
        up = smoothness(field, theta + step)[2].numpy()[0]
        down = smoothness(field, theta - step)[2].numpy()[0]
        fd[j] = (float(up) - float(down)) / (2 * eps)
    # the term is a quadratic: central differences are exact up to float32 sums
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-3 * np.abs(fd).max())
    assert np.count_nonzero(got) > 100


def test_smoothness_of_a_sphere_is_16_pi(device):
    """Willmore: the surface integral of (k1 + k2)^2 is 16 pi on any sphere."""
    n = 64
    for radius in (0.3, 0.6):
        values = np.linalg.norm(lattice_points(n, BOUND), axis=1) - radius
        field = grid_field(values, n, device)
        _, terms, _ = smoothness(field, field.params.numpy())
        assert terms.numpy()[Term.SMOOTHNESS] == pytest.approx(16 * np.pi, rel=0.05)


# ---------------------------------------------------------------------------
# 3. Coarse-to-fine stages and resume
# ---------------------------------------------------------------------------


def test_stage_schedule():
    assert stage_starts(1000, 3, 0.5) == (0, 250, 500)
    assert stage_starts(6, 3, 0.5) == (0, 1, 3)
    assert stage_starts(100, 1, 0.5) == (0,)
    field = GridField(pack_grid(np.zeros(5**3), 4, 12), (4, 8, 12), BOUND, 0.5, "cpu")
    assert field.stage_starts(1000) == (250, 500)
    assert [field.stage_resolution(i, 1000) for i in (0, 249, 250, 499, 500, 999)] == [
        4, 4, 8, 8, 12, 12
    ]  # fmt: skip
    assert field.stage_starts(1) == ()  # every stage at 0: the finest from the start
    assert field.stage_resolution(0, 1) == 12


def test_stages_upsample_in_place_and_restart_adam(device):
    scene = grid_scene("model.coarse_to_fine=0.5", iterations=6)
    fitter = Fitter.from_scene(scene, device)
    params, m = fitter.field.params, fitter.optimizer.m
    seen = []
    for _ in range(6):
        fitter.step()
        seen.append(fitter.field.resolution)
    assert seen == [4, 8, 8, 12, 12, 12]  # stages start at 0, 1, 3
    assert fitter.field.params is params and fitter.optimizer.m is m  # the same arrays
    assert fitter.optimizer.step_count == 3  # restarted at iteration 3
    # zero coarse-to-fine: the finest lattice from the first step
    fine = Fitter.from_scene(grid_scene("model.coarse_to_fine=0.0", iterations=6), device)
    assert fine.field.resolution == 12


def test_a_checkpoint_of_another_stage_is_resampled(device):
    """A resume with another optim.iterations moves the stage boundaries: the
    checkpoint's lattice (its tag) is resampled to the stage of its iteration."""
    fitter = Fitter.from_scene(grid_scene(iterations=40), device)
    fitter.steps(2)  # stage 0 of 40 steps (4 cells)
    state = fitter.state()
    other = Fitter.from_scene(grid_scene(iterations=8), device)
    other.load_state(state)  # iteration 2 of 8 steps: stage 1 (8 cells, from 2 to 4)
    assert other.field.resolution == 8 and other.field.params.numpy()[-1] == 8
    x = np.random.default_rng(5).uniform(-0.8, 0.8, size=(50, 3))
    np.testing.assert_allclose(other.field.values(x), fitter.field.values(x), atol=0.05)
    assert other.optimizer.step_count == 0
    other.steps(1)  # and steps on


@pytest.mark.parametrize("stop", [2, 3], ids=["inside-a-stage", "at-a-stage-start"])
def test_resume_matches_uninterrupted_fit(device, tmp_path, stop):
    scene = grid_scene("model.coarse_to_fine=0.5", iterations=6)  # stages at 0, 1, 3
    kwargs = {"device": device, "write_outputs": False}
    straight = fit(scene, tmp_path / "straight", **kwargs)
    assert straight.status is RunStatus.FINISHED

    done = []
    first = fit(
        scene,
        tmp_path / "resumed",
        on_step=lambda r: done.append(r),
        should_stop=lambda: len(done) >= stop,
        **kwargs,
    )
    assert first.status is RunStatus.INTERRUPTED and first.iteration == stop
    second = fit(scene, tmp_path / "resumed", resume=True, **kwargs)
    assert second.status is RunStatus.FINISHED and second.iteration == 6

    def checkpoint(run):
        with np.load(RunFolder(tmp_path / run).checkpoint) as data:
            return {k: data[k] for k in data.files}

    a, b = checkpoint("straight"), checkpoint("resumed")
    tol = {"rtol": 0, "atol": 0} if device == "cpu" else {"rtol": 1e-4, "atol": 1e-5}
    for key in ("params", "adam_m", "adam_v"):
        np.testing.assert_allclose(b[key], a[key], **tol, err_msg=key)
    timed = [str(c) == "seconds" for c in a["log_columns"]]  # wall time differs
    np.testing.assert_allclose(b["log"][:, ~np.array(timed)], a["log"][:, ~np.array(timed)], **tol)
    assert int(a["adam_t"]) == int(b["adam_t"]) == 3  # steps since the last stage start
    assert a["params"][-1] == 12


def test_an_older_checkpoint_without_the_smoothness_column_resumes(tmp_path):
    run = tmp_path / "run"
    scene = tiny_scene()
    fit(scene, run, iterations=2, device="cpu", write_outputs=False)
    path = RunFolder(run).checkpoint
    with np.load(path) as data:
        state = {k: data[k] for k in data.files}
    columns = [str(c) for c in state["log_columns"]]
    keep = [i for i, c in enumerate(columns) if c != "smoothness"]
    state["log"] = state["log"][:, keep]
    state["log_columns"] = np.array([columns[i] for i in keep])
    np.savez(path, **state)
    result = fit(scene, run, iterations=3, device="cpu", resume=True, write_outputs=False)
    assert result.status is RunStatus.FINISHED
    log = (run / RunFolder.LOG).read_text().splitlines()
    assert "smoothness" in log[0] and len(log) == 4


# ---------------------------------------------------------------------------
# 4. Convergence, the command line, bad keys
# ---------------------------------------------------------------------------


def test_grid_fit_converges_on_tiny_images(device):
    """Two balls seen from 8 views at 24x24, from a sphere: an 8 -> 16 cell grid
    with the grid defaults (every ray, 150 steps) matches the training masks."""
    scene = tiny_scene(
        SPHERES_SCENE, *GRID_SET, "model.grid_resolution=[8, 16]", "cameras.resolution=[24, 24]",
        "optim.batch_rays=0", "march.max_steps=64", "optim.iterations=150",
    )  # fmt: skip
    fitter = Fitter.from_scene(scene, device)
    start = mean_iou(trace_views(fitter.field, fitter.cameras, scene.march), fitter.views)
    fitter.steps(150)
    end = mean_iou(trace_views(fitter.field, fitter.cameras, scene.march), fitter.views)
    assert start < 0.4 and end > 0.95, (start, end)


def test_cli_fit_render_export_of_a_grid_run(tmp_path):
    run = tmp_path / "run"
    sets = [a for item in (*GRID_SET, "output.mesh_resolution=16") for a in ("--set", item)]
    result = cli("fit", SPHERES_SCENE, "--out", run, "-n", "3", "--device", "cpu", *sets,
                 "--set", "cameras.resolution=[12, 12]")  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads((run / RunFolder.METRICS).read_text())
    assert metrics["status"] == "finished"
    log = (run / RunFolder.LOG).read_text().splitlines()
    header = log[0].split(",")
    assert float(log[-1].split(",")[header.index("smoothness")]) > 0  # the grid's own term
    result = cli("render", run, "--out", tmp_path / "x.png", "-r", "16", "--device", "cpu")
    assert result.exit_code == 0, result.output + result.stderr
    result = cli("export", run, "--out", tmp_path / "m.ply", "--resolution", "16")
    assert result.exit_code == 0, result.output + result.stderr
    assert (tmp_path / "m.ply").stat().st_size > 0


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ("grid_resolution = [64, 32]", ["model.grid_resolution", "increasing"]),
        ("grid_resolution = [1, 8]", ["model.grid_resolution", ">= 2"]),
        ("grid_resolution = [32, 100000]", ["model.grid_resolution", "<= "]),
        ("grid_resolution = []", ["model.grid_resolution", "at least one"]),
        ("coarse_to_fine = 1.0", ["model.coarse_to_fine", "[0, 1)"]),
        ('init = "random"', ["model.init", "for kind = grid"]),
    ],
)
def test_bad_grid_keys_are_one_line(tmp_path, line, needles):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[target]\nkind = "shapes"\nshapes = [{ type = "sphere", radius = 0.5 }]\n'
        f'[model]\nkind = "grid"\n{line}\n',
        encoding="utf-8",
    )
    assert_user_error(cli("validate", path), str(path), *needles)


def test_validate_shows_the_grid_keys_and_defaults(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        '[target]\nkind = "shapes"\npreset = "airplane"\n[supervision]\nmode = ["silhouette"]\n'
        '[model]\nkind = "grid"\n',
        encoding="utf-8",
    )
    result = cli("validate", path)
    assert result.exit_code == 0, result.stderr
    for text in (
        "grid_resolution = [32, 64, 96]",
        "coarse_to_fine = 0.5",
        "lr = 0.01",
        "smoothness_weight = 3e-07",
        "eikonal_weight = 0.0",
        'init = "sphere"',
    ):
        assert text in result.output, text


def test_lazy_adam_leaves_untouched_values_alone():
    import warp as wp

    from warpsdf.fit.guard import NO_DIVERGENCE

    params = wp.array(np.ones(4, np.float32), dtype=float, device="cpu")
    opt = Adam(params, lazy=True)
    lr = wp.full(3, 0.1, dtype=float, device="cpu")
    halt = wp.full(2, NO_DIVERGENCE, dtype=int, device="cpu")
    for it, g in enumerate(([1.0, 0, 0, 0], [0, 0, 0, 0], [0, 1.0, 0, 0])):
        grad = wp.array(np.asarray(g, np.float32), dtype=float, device="cpu")
        opt.step(grad, lr, wp.array([it], dtype=int, device="cpu"), halt)
    p = params.numpy()
    assert p[0] == pytest.approx(0.9, abs=1e-6)  # one step of lr, no drift after it
    assert p[1] < 1.0 and p[2] == p[3] == 1.0
    assert opt.m.numpy()[2] == 0.0 and opt.step_count == 3
