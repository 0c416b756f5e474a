"""Fitting a field to a scene's target: Adam steps over a differentiable render.

One step (DESIGN §6):
  1. camera shake and ray batch (numpy rng, seeded), uploaded into buffers
     allocated once;
  2. sphere tracing outside the tape (hit, least-SDF point, grad f . d);
  3. on the tape: the field at each ray's sample point (custom backward into
     the parameters), the field at tetrahedron points around random eikonal
     samples, then the loss kernels;
  4. backward, a finiteness check (a NaN stops the fit with the parameters of
     the last good step), Adam with the scheduled learning rate.

:class:`Fitter` holds the state and is what tests and the CLI drive;
:func:`warpsdf.run.fit` wraps it with a run folder.
"""

from __future__ import annotations

import ast
import math
import time
from dataclasses import dataclass, field

import numpy as np
import warp as wp
from warp.optim import Adam

from warpsdf.camera import Camera, jitter_cameras, rays_for
from warpsdf.errors import WarpsdfError
from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON, Field, evaluate
from warpsdf.fields.mlp import MLPField, geometric_init, num_params
from warpsdf.fields.spheres import SphereSetField, grid_centers, random_centers
from warpsdf.losses import (
    NUM_TERMS,
    TERM_NAMES,
    Term,
    eikonal_loss_kernel,
    ray_loss_kernel,
    sample_points_kernel,
)
from warpsdf.march import RayHits, march
from warpsdf.scene import (
    ModelInit,
    ModelKind,
    PointLoss,
    Scene,
    Schedule,
    SilhouetteLoss,
    SupervisionMode,
)
from warpsdf.targets import Target, TargetView, build_target, training_cameras


class DivergedError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


def make_field(scene: Scene, rng: np.random.Generator, device=None) -> Field:
    """The scene's model at its initial state."""
    m = scene.model
    if m.kind is ModelKind.SPHERES:
        half = 0.5 * scene.march.bound_radius
        if m.init is ModelInit.RANDOM:
            centers = random_centers(m.count, half, rng)
        else:
            centers = grid_centers(m.count, half)
        radii = np.full(m.count, m.init_radius)
        return SphereSetField(centers, radii, m.smooth_k, device=device)
    params = geometric_init(m.fourier_frequencies, m.hidden, m.layers, m.init_radius, rng)
    return MLPField(params, m.fourier_frequencies, m.hidden, m.layers, device=device)


def field_from_params(scene: Scene, params: np.ndarray, device=None) -> Field:
    """Rebuild a fitted field from its flat parameters (a checkpoint)."""
    m = scene.model
    params = np.asarray(params, np.float32).reshape(-1)
    expected = (
        4 * m.count
        if m.kind is ModelKind.SPHERES
        else num_params(m.fourier_frequencies, m.hidden, m.layers)
    )
    if params.size != expected:
        raise WarpsdfError(
            f"the checkpoint has {params.size} parameters but [model] in the run's scene.toml "
            f"needs {expected} (was it edited?)"
        )
    if m.kind is ModelKind.SPHERES:
        p = params.reshape(-1, 4)
        return SphereSetField(p[:, :3], p[:, 3], m.smooth_k, device=device)
    return MLPField(params, m.fourier_frequencies, m.hidden, m.layers, device=device)


def learning_rate(scene: Scene, iteration: int) -> float:
    """The scheduled learning rate at ``iteration`` (0-based)."""
    o = scene.optim
    if o.schedule is Schedule.COSINE:
        progress = min(iteration / max(o.iterations - 1, 1), 1.0)
        floor = o.lr * o.lr_final_ratio
        return floor + 0.5 * (o.lr - floor) * (1.0 + math.cos(math.pi * progress))
    if o.schedule is Schedule.STEP:
        return o.lr * o.step_gamma ** (iteration // o.step_every)
    return o.lr


def mask_alpha(scene: Scene, iteration: int) -> float:
    """Soft-mask sharpness, annealed geometrically from start to end."""
    a0, a1 = scene.optim.mask_alpha
    progress = min(iteration / max(scene.optim.iterations - 1, 1), 1.0)
    return a0 * (a1 / a0) ** progress


@dataclass
class StepRecord:
    """What one step measured (for the live table and log.csv)."""

    iteration: int  # 1-based count of steps done
    loss: float
    terms: dict[str, float]
    mask_mse: float  # mean squared error of the hard predicted mask
    iou: float  # IoU of the hard predicted mask on this step's rays
    lr: float
    alpha: float
    seconds: float  # wall time of this step

    def row(self) -> dict[str, float]:
        return {
            "iteration": self.iteration,
            "loss": self.loss,
            **self.terms,
            "mask_mse": self.mask_mse,
            "iou": self.iou,
            "lr": self.lr,
            "alpha": self.alpha,
            "seconds": self.seconds,
        }


LOG_COLUMNS = ("iteration", "loss", *TERM_NAMES, "mask_mse", "iou", "lr", "alpha", "seconds")


@dataclass
class _Targets:
    """Per-ray target arrays of all training views, flattened in camera order."""

    mask: np.ndarray  # (R,) float32
    xyz: np.ndarray  # (R, 3) float32
    depth: np.ndarray  # (R,) float32 (large where there is no surface)
    views: list[TargetView] = field(default_factory=list)


def _flatten_targets(views: list[TargetView], modes: set[SupervisionMode]) -> _Targets:
    masks, xyzs, depths = [], [], []
    for i, v in enumerate(views):
        if v.mask is None:
            raise WarpsdfError(f"target view {i} has no mask (silhouette): it cannot be fitted")
        if SupervisionMode.XYZ in modes and v.xyz is None:
            raise WarpsdfError(f"supervision.mode has xyz but target view {i} has no xyz image")
        if SupervisionMode.DEPTH in modes and v.depth is None:
            raise WarpsdfError(f"supervision.mode has depth but target view {i} has no depth")
        n = v.camera.num_rays
        masks.append(v.mask.reshape(n).astype(np.float32))
        xyzs.append(
            np.zeros((n, 3), np.float32)
            if v.xyz is None
            else v.xyz.reshape(n, 3).astype(np.float32)
        )
        d = np.zeros(n, np.float32) if v.depth is None else v.depth.reshape(n).astype(np.float32)
        depths.append(np.where(np.isfinite(d), d, 1e6).astype(np.float32))
    return _Targets(
        np.concatenate(masks),
        np.concatenate(xyzs),
        np.concatenate(depths),
        views=views,
    )


class Fitter:
    """Fits ``scene.model`` to ``scene.target``. Allocates once; call :meth:`step`."""

    def __init__(self, scene: Scene, device=None, target: Target | None = None):
        self.scene = scene
        self.device = wp.get_device(device)
        self.rng = np.random.default_rng(scene.seed)
        self.target = target or build_target(scene, self.device)
        self.cameras: list[Camera] = training_cameras(scene)
        views = (
            self.target.views(self.cameras, scene.march)
            if self.target.renderable
            else list(self.target.stored)
        )
        modes = set(scene.supervision.mode)
        self.targets = _flatten_targets(views, modes)
        if not self.targets.mask.any():
            raise WarpsdfError(
                f"{scene.source or scene.name}: the target covers no pixel of any training "
                "view (check cameras.distance, cameras.fov_deg, the target's size and "
                "march.bound_radius)"
            )
        self.field = make_field(scene, self.rng, self.device)
        self.optimizer = Adam([self.field.params], lr=scene.optim.lr)
        self.iteration = 0

        w = scene.supervision.weights
        self.w_silhouette = w["silhouette"]  # always resolved: the mask term
        self.w_xyz = w.get("xyz", 0.0) if SupervisionMode.XYZ in modes else 0.0
        self.w_depth = w.get("depth", 0.0) if SupervisionMode.DEPTH in modes else 0.0
        self.w_eikonal = scene.optim.eikonal_weight if scene.optim.eikonal_samples > 0 else 0.0

        total = len(self.targets.mask)
        batch = scene.optim.batch_rays
        self.batch = total if batch <= 0 or batch >= total else batch
        self.total_rays = total
        d = self.device
        n, e = self.batch, max(scene.optim.eikonal_samples, 1)
        self._origins = wp.empty(n, dtype=wp.vec3, device=d)
        self._dirs = wp.empty(n, dtype=wp.vec3, device=d)
        self._mask = wp.empty(n, dtype=float, device=d)
        self._xyz = wp.empty(n, dtype=wp.vec3, device=d)
        self._depth = wp.empty(n, dtype=float, device=d)
        self._hits = RayHits.allocate(n, d)
        self._points = wp.empty(n, dtype=wp.vec3, device=d)
        self._values = wp.zeros(n, dtype=float, device=d, requires_grad=True)
        self._detached = wp.empty(n, dtype=float, device=d)
        self._eik_points = wp.empty(4 * e, dtype=wp.vec3, device=d)
        self._eik_values = wp.zeros(4 * e, dtype=float, device=d, requires_grad=True)
        self._eik_detached = wp.empty(4 * e, dtype=float, device=d)
        self._terms = wp.zeros(NUM_TERMS, dtype=float, device=d, requires_grad=True)
        self._loss = wp.zeros(1, dtype=float, device=d, requires_grad=True)
        self._tetra = np.asarray(TETRAHEDRON, np.float32) * FD_GRADIENT_STEP
        # the state before the last Adam step, to roll back to on divergence
        self._prev_params = wp.empty_like(self.field.params)
        self._prev_m = wp.empty_like(self.field.params)
        self._prev_v = wp.empty_like(self.field.params)
        self._has_prev = False
        self._rays_uploaded = False
        # With ``profile`` set, each step synchronises between its phases and
        # records their wall times (ms) in ``timings``: for benchmarks only.
        self.profile = False
        self.timings: dict[str, float] = {}
        self._clock = 0.0
        if self.batch == total:  # every ray, every step: upload the targets once
            self._upload_targets(None)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue the same trajectory."""
        opt = self.optimizer
        return {
            "params": self.field.params.numpy().copy(),
            "adam_m": opt.m[0].numpy().copy(),
            "adam_v": opt.v[0].numpy().copy(),
            "adam_t": np.array(opt.t, np.int64),
            "iteration": np.array(self.iteration, np.int64),
            "rng_state": np.array(repr(self.rng.bit_generator.state)),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        params = np.asarray(state["params"], np.float32)
        if params.shape != tuple(self.field.params.shape):
            raise WarpsdfError(
                f"checkpoint has {params.size} parameters but the scene's model has "
                f"{self.field.params.shape[0]} (was [model] changed?)"
            )
        self.field.params.assign(params)
        self.optimizer.m[0].assign(np.asarray(state["adam_m"], np.float32))
        self.optimizer.v[0].assign(np.asarray(state["adam_v"], np.float32))
        self.optimizer.t = int(state["adam_t"])
        self.iteration = int(state["iteration"])
        self.rng.bit_generator.state = ast.literal_eval(str(state["rng_state"]))

    # ------------------------------------------------------------------- step

    def _upload_targets(self, index: np.ndarray | None) -> None:
        t = self.targets
        if index is None:
            self._mask.assign(t.mask)
            self._xyz.assign(t.xyz)
            self._depth.assign(t.depth)
        else:
            self._mask.assign(t.mask[index])
            self._xyz.assign(t.xyz[index])
            self._depth.assign(t.depth[index])

    def _lap(self, phase: str) -> None:
        """With profiling on: wait for the device and charge the time since the
        last lap to ``phase``."""
        if not self.profile:
            return
        wp.synchronize_device(self.device)
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + (now - self._clock) * 1e3
        self._clock = now

    def _roll_back(self) -> int:
        """Undo the last Adam step: the parameters it produced gave a non-finite
        loss. Returns the iteration whose parameters are kept."""
        if self._has_prev and self.iteration > 0:
            wp.copy(self.field.params, self._prev_params)
            wp.copy(self.optimizer.m[0], self._prev_m)
            wp.copy(self.optimizer.v[0], self._prev_v)
            self.optimizer.t -= 1
            self.iteration -= 1
            self._has_prev = False
        return self.iteration

    def draw(self) -> np.ndarray | None:
        """Draw this step's random inputs (camera shake, ray batch, eikonal points)
        and upload them. Returns the batch's ray indices (None: every ray)."""
        scene = self.scene
        index = None
        fixed_rays = scene.cameras.jitter <= 0.0 and self.batch == self.total_rays
        if not (fixed_rays and self._rays_uploaded):  # still cameras, every ray: upload once
            cams = jitter_cameras(self.cameras, scene.cameras.jitter, self.rng)
            origins, dirs = rays_for(cams)
            if self.batch < self.total_rays:
                index = np.sort(self.rng.choice(self.total_rays, self.batch, replace=False))
                origins, dirs = origins[index], dirs[index]
                self._upload_targets(index)
            self._origins.assign(origins)
            self._dirs.assign(dirs)
            self._rays_uploaded = True
        if self.w_eikonal > 0.0:
            e = scene.optim.eikonal_samples
            v = self.rng.normal(size=(e, 3))
            v *= (
                scene.march.bound_radius
                * self.rng.uniform(size=(e, 1)) ** (1.0 / 3.0)
                / np.linalg.norm(v, axis=1, keepdims=True)
            )
            self._eik_points.assign((v[:, None, :] + self._tetra[None]).reshape(-1, 3))
        return index

    def loss(self, alpha: float, backward: bool = True) -> float:
        """March the drawn rays, evaluate the loss on the tape and (with
        ``backward``) leave dL/dparams in ``field.params.grad``."""
        scene = self.scene
        n = self.batch
        self._lap("draw")
        march(self.field, self._origins, self._dirs, scene.march, out=self._hits)
        self._lap("march")
        wp.launch(
            sample_points_kernel,
            dim=n,
            inputs=[self._origins, self._dirs, self._hits.min_t],
            outputs=[self._points],
            device=self.device,
        )
        self._terms.zero_()
        self._loss.zero_()
        self.field.params.grad.zero_()
        self._values.grad.zero_()
        self._eik_values.grad.zero_()
        tape = wp.Tape()
        with tape:
            evaluate(self.field, self._points, self._values, self._detached, tape=tape)
            wp.launch(
                ray_loss_kernel,
                dim=n,
                inputs=[
                    self._values, self._detached, self._points, self._dirs,
                    self._hits.hit_t, self._hits.min_sdf, self._hits.grad_dot_dir,
                    self._mask, self._xyz, self._depth,
                    float(alpha), 1.0 / n,
                    float(self.w_silhouette), float(self.w_xyz), float(self.w_depth),
                    int(scene.supervision.silhouette_loss is SilhouetteLoss.MSE),
                    int(scene.supervision.xyz_loss is PointLoss.MSE),
                ],
                outputs=[self._terms, self._loss],
                device=self.device,
            )  # fmt: skip
            if self.w_eikonal > 0.0:
                e = scene.optim.eikonal_samples
                evaluate(self.field, self._eik_points, self._eik_values, self._eik_detached, tape)
                wp.launch(
                    eikonal_loss_kernel,
                    dim=e,
                    inputs=[self._eik_values, 1.0 / e, float(self.w_eikonal)],
                    outputs=[self._terms, self._loss],
                    device=self.device,
                )
        self._lap("forward")
        if backward:
            tape.backward(loss=self._loss)  # (tape.reset() would zero the gradients)
            self._lap("backward")
        return float(self._loss.numpy()[0])

    def terms(self) -> dict[str, float]:
        """The unweighted loss terms of the last :meth:`loss`."""
        terms = self._terms.numpy()
        return {name: float(terms[t]) for name, t in zip(TERM_NAMES, Term, strict=True)}

    def step(self) -> StepRecord:
        """One Adam step. Raises :class:`DivergedError` (parameters untouched)
        when the loss or the gradient is not finite."""
        start = time.perf_counter()
        if self.profile:
            wp.synchronize_device(self.device)
            self.timings = {}
            self._clock = start
        it = self.iteration
        lr = learning_rate(self.scene, it)
        alpha = mask_alpha(self.scene, it)
        index = self.draw()
        loss = self.loss(alpha)
        grad = self.field.params.grad.numpy()
        problem = ""
        if not math.isfinite(loss):
            problem = f"the loss became {loss}"
        elif not np.isfinite(self._detached.numpy()).all():
            problem = "the field's values became non-finite"
        elif not np.isfinite(grad).all():
            problem = "the gradient became non-finite"
        self._lap("readback")
        if problem:
            kept = self._roll_back()
            raise DivergedError(
                f"{problem} at iteration {it + 1}; kept the parameters of iteration {kept}"
            )
        wp.copy(self._prev_params, self.field.params)
        wp.copy(self._prev_m, self.optimizer.m[0])
        wp.copy(self._prev_v, self.optimizer.v[0])
        self._has_prev = True
        self.optimizer.lr = lr
        self.optimizer.step([self.field.params.grad])
        self._lap("optimizer")
        self.iteration += 1

        pred = self._hits.hit_t.numpy() >= 0.0
        truth = (self.targets.mask if index is None else self.targets.mask[index]) > 0.5
        union = np.logical_or(pred, truth).sum()
        return StepRecord(
            iteration=self.iteration,
            loss=loss,
            terms=self.terms(),
            mask_mse=float(np.mean(pred != truth)),
            iou=1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union),
            lr=lr,
            alpha=alpha,
            seconds=time.perf_counter() - start,
        )
