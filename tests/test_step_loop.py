"""The fit's step loop (DESIGN §6, §7): chunks of steps with one readback.

The contracts: the finiteness guard records the first bad step; k steps in
one chunk give bit-for-bit the parameters, Adam state and records of k single
steps on the CPU (so do steps replayed from a captured graph); a non-finite
step changes nothing and is reported with the records of the good steps before
it; the history's numbers are the host's; nothing inside a chunk allocates or
reads back; and a run's log has one row per iteration whatever the chunking.
Adam itself and the schedules are tests/test_optim.py's subject. Everything
here is tiny (12x12 pixels, width-8 MLPs, a few steps) and runs on the CPU.
"""

from __future__ import annotations

import collections
import csv
import dataclasses

import numpy as np
import pytest
import warp as wp

import warpsdf.fit.guard as guard_module
import warpsdf.fit.schedule as schedule_module
from tests.conftest import SCENES
from tests.helpers import TINY_STEP
from warpsdf.fit import DivergedError, Fitter, StepRate, StepRecord, learning_rate
from warpsdf.fit.guard import NO_DIVERGENCE, Problem
from warpsdf.fit.run import chunk_length, fit
from warpsdf.losses import TERM_NAMES
from warpsdf.scene import Schedule, load_scene

TINY = TINY_STEP
SPHERES = ("two_spheres_silhouette.toml", ())
# camera shake and random ray batches: rays made and gathered on the device
MLP_SHAKEN = ("two_spheres_xyz.toml", ("cameras.jitter=0.05", "optim.batch_rays=60"))
# focused ray sampling: half of each batch drawn on the device from the kept predictions
MLP_FOCUSED = (MLP_SHAKEN[0], (*MLP_SHAKEN[1], 'optim.ray_sampling="focused"'))
CASES = [SPHERES, MLP_SHAKEN, MLP_FOCUSED]
IDS = ["spheres", "mlp-jitter-batch", "mlp-jitter-focused"]


def tiny_scene(case, iterations: int = 8, *extra: str):
    name, overrides = case
    scene = load_scene(SCENES / name, [*TINY, *overrides, *extra])
    return scene.replace(optim=dataclasses.replace(scene.optim, iterations=iterations))


def adam_state(fitter: Fitter) -> dict[str, np.ndarray]:
    s = fitter.state()
    return {k: s[k] for k in ("params", "adam_m", "adam_v", "adam_t", "iteration")}


def assert_same_state(a: Fitter, b: Fitter) -> None:
    sa, sb = adam_state(a), adam_state(b)
    for key in sa:
        np.testing.assert_array_equal(sb[key], sa[key], err_msg=key)


def without_seconds(record) -> dict:
    row = record.row()
    del row["seconds"]
    return row


# ---------------------------------------------------------------------------
# 1. The divergence guard
# ---------------------------------------------------------------------------


def test_guard_records_the_first_bad_step():
    def guard(halt, loss, values, grad, iteration):
        wp.launch(
            guard_module.finite_guard_kernel,
            dim=1 + len(values) + len(grad),
            inputs=[
                wp.array(np.float32([loss]), dtype=float),
                wp.array(np.float32(values), dtype=float),
                wp.array(np.float32(grad), dtype=float),
                wp.array([iteration], dtype=int),
            ],
            outputs=[halt],
            device="cpu",
        )
        return tuple(halt.numpy())

    with wp.ScopedDevice("cpu"):
        halt = wp.full(2, NO_DIVERGENCE, dtype=int)
        assert guard(halt, 1.0, [0.1, -2.0], [1.0, 0.0, 3.0], 4) == (NO_DIVERGENCE,) * 2
        assert guard(halt, 1.0, [0.1, -2.0], [1.0, np.inf, 3.0], 4) == (5, Problem.GRADIENT)
        # a later bad step leaves the first one's record alone
        assert guard(halt, np.nan, [np.nan, 0.0], [1.0, 0.0, 0.0], 6) == (5, Problem.GRADIENT)
        # the loss is the most telling problem, then the values
        halt = wp.full(2, NO_DIVERGENCE, dtype=int)
        assert guard(halt, np.nan, [np.nan, 0.0], [np.nan, 0, 0], 0) == (1, Problem.LOSS)
        halt = wp.full(2, NO_DIVERGENCE, dtype=int)
        assert guard(halt, 0.5, [np.inf, 0.0], [np.nan, 0, 0], 2) == (3, Problem.VALUES)


# ---------------------------------------------------------------------------
# 2. Chunks, graphs and resume give the same trajectory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_chunks_match_single_steps(case):
    scene = tiny_scene(case, iterations=7)
    single = Fitter.from_scene(scene, "cpu")
    one_by_one = [single.step() for _ in range(7)]
    chunked = Fitter.from_scene(scene, "cpu")
    records = chunked.steps(3) + chunked.steps(4)
    assert_same_state(single, chunked)
    assert str(single.rng.bit_generator.state) == str(chunked.rng.bit_generator.state)
    assert [without_seconds(r) for r in records] == [without_seconds(r) for r in one_by_one]
    assert [r.iteration for r in records] == list(range(1, 8))
    assert chunked.iteration == 7 and int(chunked.state()["adam_t"]) == 7
    assert all(r.seconds > 0 for r in records)
    assert len({r.seconds for r in records[:3]}) == 1  # the chunk's time, shared


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_graph_replay_matches_launches(case):
    """The captured step (Warp records graphs on the CPU too) replays with each
    step's own slot, schedule entries and Adam count."""
    scene = tiny_scene(case, iterations=7)
    plain = Fitter.from_scene(scene, "cpu", use_graph=False)
    graphed = Fitter.from_scene(scene, "cpu", use_graph=True)
    assert Fitter.from_scene(scene, "cpu").use_graph is False  # off by default on the CPU
    a = plain.steps(3) + plain.steps(4)
    b = graphed.steps(3) + graphed.steps(4)
    assert graphed.captured
    assert_same_state(plain, graphed)
    assert [without_seconds(r) for r in a] == [without_seconds(r) for r in b]


def test_graph_is_recaptured_when_chunks_or_the_schedule_grow():
    """A chunk longer than the staging capacity (16 slots at first) and steps past
    the planned iterations (a longer schedule) drop the captured graph; the new
    capture must replay exactly what plain launches do, and a resumed state
    (load_state writes in place) must keep using a valid graph."""
    scene = tiny_scene(SPHERES, iterations=5)
    plain = Fitter.from_scene(scene, "cpu", use_graph=False)
    graphed = Fitter.from_scene(scene, "cpu", use_graph=True)
    for k in (3, 20, 4):  # 20: capacity grows; 27 steps run past the 5 planned
        a, b = plain.steps(k), graphed.steps(k)
        assert [without_seconds(r) for r in a] == [without_seconds(r) for r in b]
        assert_same_state(plain, graphed)
    assert graphed.inputs.capacity >= 20 and graphed.schedules.length >= 27
    state = plain.state()
    plain.steps(2)
    graphed.steps(5)  # moves on, then goes back to the same state as plain had
    graphed.load_state(state)
    plain.load_state(state)
    assert [without_seconds(r) for r in plain.steps(3)] == [
        without_seconds(r) for r in graphed.steps(3)
    ]
    assert_same_state(plain, graphed)


def test_state_round_trip_continues_the_trajectory():
    scene = tiny_scene(MLP_SHAKEN, iterations=6)
    straight = Fitter.from_scene(scene, "cpu")
    straight.steps(6)
    first = Fitter.from_scene(scene, "cpu")
    first.steps(2)
    state = first.state()
    assert set(state) == {"params", "adam_m", "adam_v", "adam_t", "iteration", "rng_state"}
    resumed = Fitter.from_scene(scene, "cpu")
    resumed.load_state(state)
    resumed.steps(4)
    assert_same_state(straight, resumed)


def test_schedules_past_the_planned_iterations():
    """Steps past optim.iterations (a direct driver) still get their schedule."""
    scene = tiny_scene(SPHERES, iterations=2)
    scene = scene.replace(
        optim=dataclasses.replace(
            scene.optim, schedule=Schedule.STEP, lr=0.02, step_every=1, step_gamma=0.5
        )
    )
    fitter = Fitter.from_scene(scene, "cpu")
    records = fitter.steps(5)
    assert [r.lr for r in records] == [learning_rate(scene, i) for i in range(5)]
    reference = Fitter.from_scene(scene, "cpu")
    for _ in range(5):
        reference.step()
    assert_same_state(reference, fitter)


# ---------------------------------------------------------------------------
# 3. Divergence
# ---------------------------------------------------------------------------


def nan_alpha_at(monkeypatch, iteration: int) -> None:
    """A NaN mask sharpness in the schedule at 0-based ``iteration``: that
    step's loss (and gradient) are NaN."""
    real = schedule_module.mask_alpha

    def alpha(scene, i):
        return float("nan") if i == iteration else real(scene, i)

    monkeypatch.setattr(schedule_module, "mask_alpha", alpha)


def test_divergence_inside_a_chunk_keeps_the_last_good_step(monkeypatch):
    """A NaN loss at step 4 means the parameters step 3 produced are bad: step
    3's update is undone and the fit keeps iteration 2, the last parameters
    whose loss was finite (as the step-by-step fitter always did)."""
    scene = tiny_scene(SPHERES, iterations=8)
    reference = Fitter.from_scene(scene, "cpu")
    good = [reference.step() for _ in range(2)]
    after_two = reference.state()
    good.append(reference.step())

    nan_alpha_at(monkeypatch, 3)  # step 4
    fitter = Fitter.from_scene(scene, "cpu")
    fitter.steps(1)
    with pytest.raises(DivergedError) as info:
        fitter.steps(5)
    err = info.value
    assert str(err) == "the loss became nan at iteration 4; kept the parameters of iteration 2"
    assert [r.iteration for r in err.records] == [2]  # step 3 was undone
    assert without_seconds(err.records[0]) == without_seconds(good[1])
    assert fitter.iteration == err.iteration == 2
    state = fitter.state()
    for key in ("params", "adam_m", "adam_v", "adam_t"):
        np.testing.assert_array_equal(state[key], after_two[key], err_msg=key)

    # a diverged fitter does nothing more until a state is loaded
    with pytest.raises(DivergedError, match="iteration 4"):
        fitter.step()
    fitter.load_state(after_two)  # step 3's alpha is finite
    assert without_seconds(fitter.step()) == without_seconds(good[2])
    assert_same_state(reference, fitter)


def test_divergence_undoes_the_last_step_of_the_previous_chunk(monkeypatch):
    scene = tiny_scene(SPHERES, iterations=8)
    reference = Fitter.from_scene(scene, "cpu")
    reference.steps(2)
    after_two = reference.state()
    nan_alpha_at(monkeypatch, 3)  # step 4, the first of the second chunk
    fitter = Fitter.from_scene(scene, "cpu")
    fitter.steps(3)
    with pytest.raises(DivergedError) as info:
        fitter.steps(3)
    assert info.value.records == [] and fitter.iteration == info.value.iteration == 2
    assert "kept the parameters of iteration 2" in str(info.value)
    np.testing.assert_array_equal(fitter.state()["params"], after_two["params"])
    assert int(fitter.state()["adam_t"]) == 2


def test_divergence_on_the_first_step_of_a_chunk(monkeypatch):
    scene = tiny_scene(MLP_SHAKEN, iterations=6)
    start = Fitter.from_scene(scene, "cpu").state()
    nan_alpha_at(monkeypatch, 0)
    fitter = Fitter.from_scene(scene, "cpu", use_graph=True)  # the bad step is the warm-up one
    with pytest.raises(DivergedError, match="at iteration 1; kept the parameters of iteration 0"):
        fitter.steps(4)
    assert fitter.iteration == 0
    np.testing.assert_array_equal(fitter.state()["params"], start["params"])
    assert int(fitter.state()["adam_t"]) == 0


def test_a_nan_field_halts_a_silhouette_fit_that_reuses_the_march_values():
    """A silhouette-only fit takes its values on the tape from the unpolished
    march's least SDF (losses.sample_values): a NaN field must still reach the
    guard (the march keeps NaN samples in min_sdf)."""
    fitter = Fitter.from_scene(tiny_scene(SPHERES, iterations=4), "cpu")
    params = fitter.field.params.numpy()
    fitter.field.params.assign(np.full_like(params, np.nan))
    with pytest.raises(DivergedError, match="at iteration 1; kept the parameters of iteration 0"):
        fitter.steps(2)
    assert np.isnan(fitter.buffers.detached.numpy()).any()


# ---------------------------------------------------------------------------
# 4. The history equals a host computation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_records_match_the_host(case):
    scene = tiny_scene(case, iterations=4)
    fitter = Fitter.from_scene(scene, "cpu")
    for i in range(4):
        record = fitter.step()
        u = fitter.inputs.uniform_count  # the batch's uniform rays (all but focused ones)
        assert u == (30 if case is MLP_FOCUSED else fitter.batch)
        pred = fitter.buffers.hits.hit_t.numpy()[:u] >= 0.0
        truth = fitter.inputs.mask.numpy()[:u] > 0.5
        union = np.logical_or(pred, truth).sum()
        assert record.iteration == i + 1
        assert record.loss == float(fitter.buffers.loss.numpy()[0])
        assert record.terms == dict(
            zip(TERM_NAMES, map(float, fitter.buffers.terms.numpy()), strict=True)
        )
        assert record.mask_mse == float(np.mean(pred != truth))
        assert record.iou == (1.0 if union == 0 else np.logical_and(pred, truth).sum() / union)
        assert record.lr == schedule_module.learning_rate(scene, i)
        assert record.alpha == schedule_module.mask_alpha(scene, i)
    if case is MLP_SHAKEN:  # the batch's targets were gathered on the device
        assert 0.0 < record.iou < 1.0 and record.terms["eikonal"] > 0.0


# ---------------------------------------------------------------------------
# 5. Nothing inside a chunk allocates or reads back
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", [MLP_SHAKEN, MLP_FOCUSED], ids=IDS[1:])
def test_no_allocation_or_readback_inside_a_chunk(monkeypatch, case):
    scene = tiny_scene(case, iterations=40)
    fitter = Fitter.from_scene(scene, "cpu")
    fitter.steps(8)  # compiles, allocates the chunk arrays
    counts: collections.Counter = collections.Counter()

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(wp.array, "__init__", counting("array", wp.array.__init__))
    monkeypatch.setattr(wp.array, "numpy", counting("numpy", wp.array.numpy))
    monkeypatch.setattr(wp, "synchronize_device", counting("sync", wp.synchronize_device))
    monkeypatch.setattr(wp, "Tape", counting("tape", wp.Tape))
    per_chunk = []
    for k in (1, 6, 8):
        counts.clear()
        fitter.steps(k)
        per_chunk.append(dict(counts))
    assert per_chunk[0] == per_chunk[1] == per_chunk[2], per_chunk
    assert per_chunk[0].get("numpy", 0) <= 1 and per_chunk[0].get("sync", 0) <= 1
    assert per_chunk[0].get("array", 0) == 0 and per_chunk[0].get("tape", 0) == 0


# ---------------------------------------------------------------------------
# 6. Runs: chunk boundaries and the log
# ---------------------------------------------------------------------------


def test_chunk_length():
    every = (4, 3, 5)  # log, snapshot, checkpoint
    ends, done = [], 0
    while done < 11:
        done += chunk_length(done, 11, every)
        ends.append(done)
    assert ends == [3, 4, 5, 6, 8, 9, 10, 11]
    assert chunk_length(0, 100, (10, 20, 100)) == 10
    assert chunk_length(97, 100, (10, 20, 100)) == 3


def _records(seconds_per_chunk: list[tuple[int, float]]) -> list[StepRecord]:
    """Records of chunks of (steps, seconds per step), as Fitter.steps gives them."""
    records, it = [], 0
    for steps, seconds in seconds_per_chunk:
        for _ in range(steps):
            it += 1
            records.append(StepRecord(it, 0.0, {}, 0.0, 1.0, 1e-3, 50.0, seconds))
    return records


def test_step_rate_counts_every_step_with_its_time():
    """The live table's it/s (issue 11: it counted the first chunk's steps but
    not its time): steps over the time they took, the first chunk's included;
    the ETA at the latest chunk's pace."""
    rate = StepRate()
    assert rate.per_second == 0.0 and rate.eta(10) == 0.0
    # a first chunk of 10 steps that compiled kernels (2 s each), then 20 at 0.1 s
    for record in _records([(10, 2.0), (10, 0.1), (10, 0.1)]):
        rate.add(record)
    assert rate.per_second == pytest.approx(30 / 22.0)
    assert rate.eta(100) == pytest.approx(10.0)
    assert rate.eta(-3) == 0.0


def test_fit_log_has_a_row_per_iteration(tmp_path, monkeypatch):
    scene = load_scene(
        SCENES / SPHERES[0],
        [*TINY, "output.log_every=4", "output.snapshot_every=3", "output.checkpoint_every=5"],
    )
    chunks = []
    real_steps = Fitter.steps

    def steps(self, k):
        chunks.append(k)
        return real_steps(self, k)

    monkeypatch.setattr(Fitter, "steps", steps)
    seen = []
    result = fit(
        scene, tmp_path / "run", iterations=11, device="cpu", on_step=seen.append,
        write_outputs=False,
    )  # fmt: skip
    assert result.iteration == 11
    assert chunks == [3, 1, 1, 1, 2, 1, 1, 1]
    assert [r.iteration for r in seen] == list(range(1, 12))
    with open(tmp_path / "run" / "log.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 12))
    assert [float(r["loss"]) for r in rows] == pytest.approx([r.loss for r in seen], rel=1e-5)


def test_fit_divergence_keeps_the_good_rows_of_the_chunk(tmp_path, monkeypatch):
    nan_alpha_at(monkeypatch, 6)  # step 7, inside the chunk 6..10
    scene = load_scene(SCENES / SPHERES[0], [*TINY, "output.log_every=5"])
    seen = []
    result = fit(
        scene, tmp_path / "run", iterations=10, device="cpu", on_step=seen.append,
        write_outputs=False,
    )  # fmt: skip
    # step 6's update made the parameters step 7 found bad: it is undone
    assert result.status.value == "diverged" and result.iteration == 5
    assert "at iteration 7; kept the parameters of iteration 5" in result.reason
    assert [r.iteration for r in seen] == list(range(1, 6))
    with open(tmp_path / "run" / "log.csv", newline="", encoding="utf-8") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == list(range(1, 6))


def test_slow_steps_make_short_chunks(tmp_path, monkeypatch):
    """Once a chunk has measured the step time, chunks are cut to about
    CHUNK_SECONDS so that should_stop (Ctrl-C) is polled promptly."""
    import warpsdf.fit.run as run_module

    monkeypatch.setattr(run_module, "CHUNK_SECONDS", 1e-9)  # every step is "slow"
    chunks = []
    real_steps = Fitter.steps

    def steps(self, k):
        chunks.append(k)
        return real_steps(self, k)

    monkeypatch.setattr(Fitter, "steps", steps)
    scene = load_scene(SCENES / SPHERES[0], [*TINY, "output.log_every=5"])
    fit(scene, tmp_path / "run", iterations=8, device="cpu", write_outputs=False)
    assert chunks == [5, 1, 1, 1]
