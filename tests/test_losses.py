"""The loss kernels of :mod:`warpsdf.losses` against slow numpy references
(STYLE "Tests, in layers" 1 and 2).

* ``ray_loss_kernel``: per-term values and the total against a float64
  reference, for each silhouette loss (BCE, MSE) and point loss (L1, L2), on
  one ray of each kind (hit or miss, object or background, a grazing hit, a ray
  outside the bound); gradients by ``warp.autograd.gradcheck``, and with a
  random upstream gradient on every term (never only ``sum()``) against
  central differences of the reference.
* ``eikonal_loss_kernel``: exact on a locally linear field, and gradcheck.

The gradient of a whole render's loss (these kernels on the tape of a fit)
is checked in tests/test_fields.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp
import warp.autograd

from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON
from warpsdf.losses import (
    MIN_GRAD_DOT_DIR,
    NUM_TERMS,
    SOFT_MASK_CUT,
    SOFT_MASK_FLOOR,
    BackgroundCode,
    Term,
    eikonal_loss_kernel,
    ray_loss_kernel,
)
from warpsdf.march import FAR_SDF, GradientCode

# ---------------------------------------------------------------------------
# The ray loss: numpy reference of the values, gradcheck of the gradients
# ---------------------------------------------------------------------------


def _softplus(z):
    return np.logaddexp(0.0, z)


def background_numpy(x, d, background, bound_radius):
    """What a target background pixel shows (losses.background_point), float64."""
    if background == BackgroundCode.BACKDROP:
        b = x @ d
        t = -b + np.sqrt(max(b * b - (x @ x - bound_radius**2), 0.0))
        return np.clip(x + d * t, -1.0, 1.0)
    return np.full(3, -1.0)


def ray_loss_numpy(
    values, detached, points, dirs, end_dt, hit_t, min_sdf, grad_dot_dir, mask, xyz, depth,
    ray_weight, alpha, weights, silhouette_mse, point_mse, background=0, bound_radius=1.0,
    gradient=GradientCode.IMPLICIT,
):  # fmt: skip
    """Slow reference of warpsdf.losses.ray_loss_kernel (module docstring), float64;
    ray r counts ray_weight[r] in each term's mean (1 / n for a plain mean).
    ``points`` are the march's end points, ``end_dt`` the unrolled end distance
    change (read with GradientCode.UNROLLED only)."""
    terms = np.zeros(NUM_TERMS)
    n = len(values)
    unrolled = gradient == GradientCode.UNROLLED

    def point_term(e):
        return (e @ e / 3 if point_mse else np.abs(e).mean()) * ray_weight[r]

    for r in range(n):
        if min_sdf[r] >= 0.5 * FAR_SDF:
            continue
        f, y = values[r], mask[r]
        hit = hit_t[r] >= 0
        dt = end_dt[r]
        if hit and not unrolled:
            dt = -(f - detached[r]) / min(grad_dot_dir[r], -MIN_GRAD_DOT_DIR)
        x = points[r] + dirs[r] * dt
        if hit and y > 0.5:
            terms[Term.XYZ] += point_term(x - xyz[r])
            de = hit_t[r] + dt - depth[r]
            terms[Term.DEPTH] += (de * de if point_mse else abs(de)) * ray_weight[r]
            continue
        if background != BackgroundCode.NONE and (hit or unrolled):
            b = background_numpy(points[r], dirs[r], background, bound_radius)
            b = xyz[r] if y > 0.5 else b
            terms[Term.XYZ] += point_term(np.clip(x, -1.0, 1.0) - b)
            if hit:
                continue
        if y <= 0.5 and alpha * f > SOFT_MASK_CUT:
            continue  # background far off the surface: soft mask below SOFT_MASK_FLOOR
        else:
            if silhouette_mse:
                m = 1 / (1 + np.exp(alpha * f))
                e = (m - y) ** 2
            else:
                e = (y * _softplus(alpha * f) + (1 - y) * _softplus(-alpha * f)) / alpha
            terms[Term.SILHOUETTE] += e * ray_weight[r]
    w = weights
    loss = w[0] * terms[Term.SILHOUETTE] + w[1] * terms[Term.XYZ] + w[2] * terms[Term.DEPTH]
    return terms, loss


def ray_loss_inputs(rng: np.random.Generator):
    """One ray of each kind: hit & object (xyz/depth), hit & background, miss &
    object, miss & background, a grazing hit (clamped slope) and a ray outside
    the bound. SDF values keep clear of zero, where the L1 terms have kinks."""
    hit_t = np.array([2.0, 2.2, -1, -1, 1.9, 2.1, -1, 2.3], np.float32)
    mask = np.array([1, 1, 1, 0, 0, 1, 1, 1], np.float32)
    n = len(hit_t)
    values = rng.choice([-1, 1], n) * rng.uniform(0.01, 0.06, n)
    min_sdf = np.where(hit_t >= 0, 0.0, 0.03)
    min_sdf[6] = FAR_SDF
    d = rng.normal(size=(n, 3))
    gd = rng.uniform(-1.0, -0.2, n)
    gd[5] = -0.03  # grazing: |grad f . d| < MIN_GRAD_DOT_DIR
    return {
        "values": values.astype(np.float32),
        "detached": (values + rng.uniform(-0.02, 0.02, n)).astype(np.float32),
        "points": rng.normal(size=(n, 3)).astype(np.float32),
        "dirs": (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32),
        # the unrolled end distances' change: 0 in value, as the fit records it
        "end_dt": np.zeros(n, np.float32),
        "hit_t": hit_t,
        "min_sdf": min_sdf.astype(np.float32),
        "grad_dot_dir": gd.astype(np.float32),
        "mask": mask,
        "xyz": rng.normal(size=(n, 3)).astype(np.float32),
        "depth": rng.uniform(1.5, 2.5, n).astype(np.float32),
        # focused sampling's importance weights differ per ray (warpsdf.fit.focus)
        "ray_weight": (rng.uniform(0.3, 3.0, n) / n).astype(np.float32),
    }


def _ray_loss_launch_args(
    data, device, alpha, weights, silhouette_mse, point_mse, background=0, bound_radius=1.0,
    gradient=GradientCode.IMPLICIT,
):  # fmt: skip
    def arr(key, dtype=float, grad=False):
        return wp.array(data[key], dtype=dtype, device=device, requires_grad=grad)

    inputs = [
        arr("values", grad=True), arr("detached"), arr("dirs", wp.vec3), arr("points", wp.vec3),
        arr("end_dt", grad=True), arr("hit_t"), arr("min_sdf"), arr("grad_dot_dir"),
        arr("mask"), arr("xyz", wp.vec3), arr("depth"),
        wp.array([alpha], dtype=float, device=device),  # a one-entry alpha schedule ...
        wp.zeros(1, dtype=int, device=device),  # ... read at iteration 0
        arr("ray_weight"), *map(float, weights), int(silhouette_mse), int(point_mse),
        int(background), float(bound_radius), int(gradient),
    ]  # fmt: skip
    outputs = [
        wp.zeros(NUM_TERMS, dtype=float, device=device, requires_grad=True),
        wp.zeros(1, dtype=float, device=device, requires_grad=True),
    ]
    return inputs, outputs


@pytest.mark.parametrize("silhouette_mse", [0, 1], ids=["bce", "mse"])
@pytest.mark.parametrize("point_mse", [0, 1], ids=["l1", "l2"])
@pytest.mark.parametrize("background", list(BackgroundCode), ids=lambda b: b.name.lower())
@pytest.mark.parametrize("gradient", list(GradientCode), ids=lambda g: g.name.lower())
def test_ray_loss_kernel_values_and_gradient(
    device, silhouette_mse, point_mse, background, gradient
):
    data = ray_loss_inputs(np.random.default_rng(11))
    # hit points near the bound, some past [-1, 1] on an axis (the clip's flat part)
    data["points"] *= np.float32(0.6)
    alpha, weights, bound = 30.0, (1.0, 0.7, 0.3), 1.2
    inputs, outputs = _ray_loss_launch_args(
        data, device, alpha, weights, silhouette_mse, point_mse, background, bound, gradient
    )
    wp.launch(ray_loss_kernel, dim=len(data["values"]), inputs=inputs, outputs=outputs)
    terms, loss = ray_loss_numpy(
        *(data[k].astype(np.float64) for k in list(data)), alpha, weights,
        silhouette_mse, point_mse, background, bound, gradient,
    )  # fmt: skip
    np.testing.assert_allclose(outputs[0].numpy(), terms, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(outputs[1].numpy()[0], loss, rtol=1e-5, atol=1e-7)
    assert terms[Term.XYZ] > 0 and terms[Term.DEPTH] > 0 and terms[Term.SILHOUETTE] > 0

    # d terms / d values and d loss / d values by autodiff against central differences
    for out in outputs:
        out.zero_()
    ok = warp.autograd.gradcheck(
        ray_loss_kernel,
        dim=len(data["values"]),
        inputs=inputs,
        outputs=outputs,
        eps=1e-3,
        atol=1e-3,
        rtol=1e-2,
        raise_exception=False,
        input_output_mask=[
            (wrt, out) for wrt in ("values", "end_dt") for out in ("terms_out", "loss_out")
        ],
        device=device,
    )
    assert ok, "ray_loss_kernel: autodiff and finite differences disagree (table above)"
    # which rays' end points move: a hit's always; a miss's only unrolled, and
    # only where a background makes the xyz term see the whole image
    for a in (*outputs, inputs[0].grad, inputs[4].grad):
        a.zero_()
    tape = wp.Tape()
    with tape:
        wp.launch(ray_loss_kernel, dim=len(data["values"]), inputs=inputs, outputs=outputs)
    tape.backward(loss=outputs[1])
    moved = inputs[4].grad.numpy() != 0.0
    inside = data["min_sdf"] < 0.5 * FAR_SDF
    hit = data["hit_t"] >= 0
    on_target = hit & (data["mask"] > 0.5)
    if gradient is GradientCode.IMPLICIT:
        assert not moved.any()  # end_dt is read only when unrolled
    elif background is BackgroundCode.NONE:
        np.testing.assert_array_equal(moved, on_target & inside)
    else:
        np.testing.assert_array_equal(moved, inside)


def test_ray_loss_gradient_with_random_upstream(device):
    """Through evaluate(): a random upstream gradient on every loss term reaches
    the sphere parameters as the chain rule says (float64 reference)."""
    rng = np.random.default_rng(12)
    data = ray_loss_inputs(rng)
    alpha, weights = 30.0, (1.0, 0.7, 0.3)
    inputs, outputs = _ray_loss_launch_args(data, device, alpha, weights, 0, 1)
    values = inputs[0]
    n = len(data["values"])
    # d sum(up * terms) / d values via the tape
    up = rng.normal(size=NUM_TERMS)
    tape = wp.Tape()
    with tape:
        wp.launch(ray_loss_kernel, dim=n, inputs=inputs, outputs=outputs, device=device)
    tape.backward(
        grads={
            outputs[0]: wp.array(up.astype(np.float32), dtype=float, device=device),
            outputs[1]: wp.zeros(1, dtype=float, device=device),
        }
    )
    got = values.grad.numpy().astype(np.float64)

    def upstream(v):
        d = {k: a.astype(np.float64) for k, a in data.items()}
        d["values"] = v
        terms, _ = ray_loss_numpy(*d.values(), alpha, weights, 0, 1)
        return up @ terms

    v0 = data["values"].astype(np.float64)
    h = 1e-7
    want = np.array([(upstream(v0 + h * e) - upstream(v0 - h * e)) / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert got[6] == 0.0  # the ray outside the bound teaches nothing


# ---------------------------------------------------------------------------
# The eikonal loss
# ---------------------------------------------------------------------------


def eikonal_inputs(rng: np.random.Generator, gradients: np.ndarray) -> np.ndarray:
    """SDF values at the four tetrahedron points around E samples of a locally
    linear field f(x_i + h k) = c_i + h g_i . k (plus a little curvature)."""
    tetra = np.asarray(TETRAHEDRON) * FD_GRADIENT_STEP
    c = rng.uniform(-0.01, 0.01, size=(len(gradients), 1))
    values = c + gradients @ tetra.T + 1e-3 * (tetra**2).sum(axis=1)
    return values.reshape(-1)


def test_eikonal_loss_kernel_values_and_gradient(device):
    rng = np.random.default_rng(13)
    grads = rng.normal(size=(6, 3))
    grads *= rng.uniform(0.4, 1.8, size=(6, 1)) / np.linalg.norm(grads, axis=1, keepdims=True)
    values = eikonal_inputs(rng, grads)
    e = len(grads)
    weight = 0.3
    vals = wp.array(values.astype(np.float32), dtype=float, device=device, requires_grad=True)
    terms = wp.zeros(NUM_TERMS, dtype=float, device=device, requires_grad=True)
    loss = wp.zeros(1, dtype=float, device=device, requires_grad=True)
    wp.launch(eikonal_loss_kernel, dim=e, inputs=[vals, 1.0 / e, weight], outputs=[terms, loss])
    # the tetrahedral difference of a linear field is exact: the term is mean (|g| - 1)^2
    want = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
    assert terms.numpy()[Term.EIKONAL] == pytest.approx(want, rel=1e-3)
    assert loss.numpy()[0] == pytest.approx(weight * want, rel=1e-3)
    assert np.count_nonzero(terms.numpy()) == 1

    terms.zero_()
    loss.zero_()
    # values are ~1e-3 and their differences are divided by 4h = 2e-3: a small
    # step keeps the central difference in its linear range
    ok = warp.autograd.gradcheck(
        eikonal_loss_kernel,
        dim=e,
        inputs=[vals, 1.0 / e, weight],
        outputs=[terms, loss],
        eps=1e-5,
        atol=1e-2,
        rtol=1e-2,
        raise_exception=False,
        input_output_mask=[("values", "terms_out"), ("values", "loss_out")],
        device=device,
    )
    assert ok, "eikonal_loss_kernel: autodiff and finite differences disagree (table above)"


@pytest.mark.parametrize("silhouette_mse", [0, 1], ids=["bce", "mse"])
def test_background_rays_below_the_soft_mask_floor_are_left_out(device, silhouette_mse):
    """A background miss with sigmoid(-alpha f) < SOFT_MASK_FLOOR adds nothing
    and gets a zero adjoint (its backward is then skipped); just inside the
    floor it counts, with what it would have added bounded by the floor."""
    alpha = 40.0
    cut = SOFT_MASK_CUT / alpha
    data = ray_loss_inputs(np.random.default_rng(3))
    n = len(data["values"])
    data["hit_t"][:] = -1.0
    data["mask"][:] = 0.0
    data["min_sdf"][:] = 0.5
    data["values"][:] = np.linspace(0.5 * cut, 3.0 * cut, n).astype(np.float32)
    inputs, outputs = _ray_loss_launch_args(data, device, alpha, (1.0, 0.0, 0.0), silhouette_mse, 0)
    tape = wp.Tape()
    with tape:
        wp.launch(ray_loss_kernel, dim=n, inputs=inputs, outputs=outputs, device=device)
    tape.backward(loss=outputs[1])
    adj = inputs[0].grad.numpy()
    far = data["values"] > cut * (1 + 1e-6)
    assert far.any() and (~far).any()
    assert (adj[far] == 0.0).all() and (adj[~far] != 0.0).all()
    terms, _ = ray_loss_numpy(
        *(data[k].astype(np.float64) for k in list(data)), alpha, (1.0, 0.0, 0.0),
        silhouette_mse, 0,
    )  # fmt: skip
    np.testing.assert_allclose(
        outputs[0].numpy()[Term.SILHOUETTE], terms[Term.SILHOUETTE], rtol=1e-5
    )
    # what the far rays would have added: below the floor's share
    m = 1 / (1 + np.exp(alpha * data["values"][far].astype(np.float64)))
    left_out = (np.log1p(m / (1 - m)) / alpha if not silhouette_mse else m * m) * data[
        "ray_weight"
    ][far]
    bound = SOFT_MASK_FLOOR / alpha if not silhouette_mse else SOFT_MASK_FLOOR**2
    assert (left_out <= bound * data["ray_weight"][far]).all()
