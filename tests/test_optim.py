"""The optimiser and its schedules (:mod:`warpsdf.fit.optim`,
:mod:`warpsdf.fit.schedule`).

* Adam: warp.optim.Adam's maths, bit for bit, with the learning rate and step
  count on the device, against a float64 numpy reference; a halt record stops
  it; its state saved and loaded continues the same path.
* Schedules: constant, cosine and step learning rates and the geometric
  annealing of the mask sharpness, past the planned end too; the lr a step
  reports is the one Adam used.

The step loop around them (chunks, graphs, the divergence guard) is
tests/test_step_loop.py's subject.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import warp as wp
import warp.optim

from tests.helpers import tiny_scene
from warpsdf.fit import Fitter, learning_rate, mask_alpha
from warpsdf.fit.guard import NO_DIVERGENCE
from warpsdf.fit.optim import Adam
from warpsdf.scene import Schedule

# ---------------------------------------------------------------------------
# 1. Adam
# ---------------------------------------------------------------------------


def adam_numpy(p, grads, lrs, beta1=0.9, beta2=0.999, eps=1e-8):
    """Slow reference: Adam (Kingma & Ba) in float64, one step per gradient.
    The betas are rounded to float32 as the kernel holds them (1 - 0.999f is
    1.3e-5 away from 1e-3, more than the float32 arithmetic's own error)."""
    beta1, beta2 = float(np.float32(beta1)), float(np.float32(beta2))
    p = p.astype(np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True)):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat, vhat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
        p -= lr * mhat / (np.sqrt(vhat) + eps)
    return p, m, v


def run_adam(p0, grads, lrs, halt_at: int | None = None):
    """Our Adam over the gradients, the lr read at a device iteration counter;
    with ``halt_at``, the halt record is set before that (0-based) step."""
    params = wp.array(p0, dtype=float, device="cpu")
    opt = Adam(params)
    schedule = wp.array(np.asarray(lrs, np.float32), dtype=float, device="cpu")
    halt = wp.full(2, NO_DIVERGENCE, dtype=int, device="cpu")
    for i, g in enumerate(grads):
        if i == halt_at:
            halt.assign(np.array([i + 1, 0], np.int32))
        it = wp.array([i], dtype=int, device="cpu")
        opt.step(wp.array(g.astype(np.float32), dtype=float, device="cpu"), schedule, it, halt)
    return params.numpy(), opt


def test_adam_matches_numpy_and_warp_adam():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=33).astype(np.float32)
    grads = [rng.normal(scale=s, size=33) for s in (1.0, 0.1, 3.0, 1e-3, 0.5, 2.0)]
    grads[2][:5] = 0.0  # a zero gradient: v stays from earlier steps
    lrs = [0.01, 0.02, 0.005, 0.001, 0.03, 0.01]  # a schedule that changes every step

    got, opt = run_adam(p0, grads, lrs)
    want_p, want_m, want_v = adam_numpy(p0, grads, lrs)
    np.testing.assert_allclose(got, want_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.m.numpy(), want_m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(opt.v.numpy(), want_v, rtol=1e-5, atol=1e-9)
    assert opt.step_count == len(grads)

    # bit for bit the maths of warp.optim.Adam (which takes lr and t from the host)
    ref = wp.array(p0, dtype=float, device="cpu")
    warp_adam = warp.optim.Adam([ref])
    for g, lr in zip(grads, lrs, strict=True):
        warp_adam.lr = lr
        warp_adam.step([wp.array(g.astype(np.float32), dtype=float, device="cpu")])
    np.testing.assert_array_equal(got, ref.numpy())
    np.testing.assert_array_equal(opt.v.numpy(), warp_adam.v[0].numpy())


def test_adam_halt_and_state_round_trip():
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=9).astype(np.float32)
    grads = [rng.normal(size=9) for _ in range(5)]
    lrs = [0.01] * 5

    # halted from step 3 on: parameters, moments and t of step 2
    halted, opt = run_adam(p0, grads, lrs, halt_at=2)
    two, opt2 = run_adam(p0, grads[:2], lrs[:2])
    np.testing.assert_array_equal(halted, two)
    np.testing.assert_array_equal(opt.m.numpy(), opt2.m.numpy())
    assert opt.step_count == opt2.step_count == 2

    # m, v, t saved after 2 steps and loaded into a fresh optimiser continue the same path
    straight, _ = run_adam(p0, grads, lrs)
    params = wp.array(two, dtype=float, device="cpu")
    resumed = Adam(params)
    resumed.load(opt2.m.numpy(), opt2.v.numpy(), np.int64(opt2.step_count))
    schedule = wp.array(np.asarray(lrs, np.float32), dtype=float, device="cpu")
    halt = wp.full(2, NO_DIVERGENCE, dtype=int, device="cpu")
    for i in range(2, 5):
        it = wp.array([i], dtype=int, device="cpu")
        resumed.step(wp.array(grads[i].astype(np.float32), device="cpu"), schedule, it, halt)
    np.testing.assert_array_equal(params.numpy(), straight)


# ---------------------------------------------------------------------------
# 2. Schedules
# ---------------------------------------------------------------------------


def _optim(**changes):
    scene = tiny_scene()
    return scene.replace(optim=dataclasses.replace(scene.optim, **changes))


def test_constant_learning_rate():
    scene = _optim(lr=3e-3, iterations=10)
    assert [learning_rate(scene, i) for i in (0, 5, 9, 20)] == [3e-3] * 4


def test_cosine_learning_rate():
    scene = _optim(schedule=Schedule.COSINE, lr=0.01, lr_final_ratio=0.1, iterations=11)
    assert learning_rate(scene, 0) == pytest.approx(0.01, rel=1e-12)
    assert learning_rate(scene, 10) == pytest.approx(0.001, rel=1e-12)
    assert learning_rate(scene, 5) == pytest.approx(0.0055, rel=1e-12)  # half-way
    lrs = [learning_rate(scene, i) for i in range(11)]
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert learning_rate(scene, 50) == pytest.approx(0.001, rel=1e-12)  # past the end (resume)
    zero = _optim(schedule=Schedule.COSINE, lr=0.01, lr_final_ratio=0.0, iterations=5)
    assert learning_rate(zero, 4) == pytest.approx(0.0, abs=1e-15)


def test_step_learning_rate():
    scene = _optim(schedule=Schedule.STEP, lr=0.02, step_every=3, step_gamma=0.5, iterations=10)
    want = [0.02] * 3 + [0.01] * 3 + [0.005] * 3 + [0.0025]
    assert [learning_rate(scene, i) for i in range(10)] == pytest.approx(want, rel=1e-12)


def test_mask_alpha_annealing():
    scene = _optim(mask_alpha=(50.0, 800.0), iterations=5)
    assert mask_alpha(scene, 0) == pytest.approx(50.0, rel=1e-12)
    assert mask_alpha(scene, 4) == pytest.approx(800.0, rel=1e-12)
    assert mask_alpha(scene, 2) == pytest.approx(200.0, rel=1e-12)  # geometric midpoint
    assert mask_alpha(scene, 99) == pytest.approx(800.0, rel=1e-12)
    one = _optim(mask_alpha=(50.0, 800.0), iterations=1)
    assert mask_alpha(one, 0) == pytest.approx(50.0, rel=1e-12)


def test_schedule_reaches_the_optimiser(device, tmp_path):
    """The lr the log reports is the one Adam used: with a step schedule the
    first Adam step moves each parameter by lr (|m_hat / sqrt(v_hat)| = 1)."""
    scene = _optim(schedule=Schedule.STEP, lr=0.02, step_every=1, step_gamma=0.25, iterations=2)
    fitter = Fitter.from_scene(scene, device)
    before = fitter.field.params.numpy().copy()
    record = fitter.step()
    moved = np.abs(fitter.field.params.numpy() - before)
    grad_nonzero = np.abs(fitter.field.params.grad.numpy()) > 1e-4  # >> Adam's eps
    assert record.lr == 0.02
    np.testing.assert_allclose(moved[grad_nonzero], 0.02, rtol=1e-3)
    assert fitter.step().lr == pytest.approx(0.005)
