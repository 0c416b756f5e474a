"""Fitting a field to a scene's target: Adam steps over a differentiable render.

One step (DESIGN §6), every part of it on the device:
  1. staging: this step's rays (camera shake is applied on the device from the
     step's camera frames), target pixels and eikonal points are copied from
     the chunk's slot into the step's buffers;
  2. sphere tracing outside the tape (hit, least-SDF point, grad f . d);
  3. on the tape: the field at each ray's sample point (custom backward into
     the parameters), the field at tetrahedron points around random eikonal
     samples, then the loss kernels (the mask sharpness read from a schedule);
  4. backward; a finiteness guard (a non-finite loss, field value or gradient
     sets a device halt record, and from then on Adam does nothing; the host
     then undoes the update that made the parameters bad, from the backup Adam
     keeps, so the parameters of the last step with a finite loss stay); Adam
     with the scheduled learning rate and its step count on the device; the
     step's statistics into a history row.

Steps run in chunks (:meth:`Fitter.steps`). The host draws a chunk's random
inputs up front (same numpy rng order as one step at a time), uploads them
once, runs the steps without reading anything back (on CUDA: one captured
graph, replayed per step) and reads the history once at the end.

:class:`Fitter` holds the state and is what tests and the CLI drive;
:func:`warpsdf.run.fit` wraps it with a run folder.
"""

from __future__ import annotations

import ast
import math
import time
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.camera import Camera, jitter_cameras, rays_for
from warpsdf.errors import WarpsdfError
from warpsdf.fields.base import FD_GRADIENT_STEP, TETRAHEDRON, Field, evaluate
from warpsdf.fields.mlp import MLPField, geometric_init, num_params
from warpsdf.fields.spheres import SPHERE_RECORD, SphereSetField, grid_centers, random_centers
from warpsdf.losses import (
    NUM_TERMS,
    TERM_NAMES,
    Term,
    eikonal_loss_kernel,
    ray_loss_kernel,
    sample_points_kernel,
)
from warpsdf.march import RayHits, march
from warpsdf.optim import NO_DIVERGENCE, Adam
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
    """The loss, a field value or a gradient became NaN or infinite.

    ``records`` holds the good steps of the chunk that diverged (their log
    rows), ``iteration`` the iteration whose parameters were kept.
    """

    def __init__(self, message: str, records: list | None = None, iteration: int = 0):
        super().__init__(message)
        self.records: list[StepRecord] = list(records or [])
        self.iteration = iteration


def make_field(scene: Scene, rng: np.random.Generator, device=None) -> Field:
    """The scene's model at its initial state."""
    m = scene.model
    if m.kind is ModelKind.SPHERES:
        half = 0.5 * scene.march.bound_radius
        if m.init is ModelInit.RANDOM:
            centers = random_centers(m.count, half, rng)
        else:
            centers = grid_centers(m.count, half)
        params = np.column_stack([centers, np.full(m.count, m.init_radius)])
    else:
        params = geometric_init(m.fourier_frequencies, m.hidden, m.layers, m.init_radius, rng)
    return field_from_params(scene, params, device)


def field_from_params(scene: Scene, params: np.ndarray, device=None) -> Field:
    """The scene's model with these flat parameters (its initial state, or a
    checkpoint's)."""
    m = scene.model
    params = np.asarray(params, np.float32).reshape(-1)
    expected = (
        SPHERE_RECORD * m.count
        if m.kind is ModelKind.SPHERES
        else num_params(m.fourier_frequencies, m.hidden, m.layers)
    )
    if params.size != expected:
        raise WarpsdfError(
            f"the checkpoint has {params.size} parameters but [model] in the run's scene.toml "
            f"needs {expected} (was it edited?)"
        )
    if m.kind is ModelKind.SPHERES:
        p = params.reshape(-1, SPHERE_RECORD)
        return SphereSetField(p[:, :3], p[:, 3], m.smooth_k, device=device)
    return MLPField(
        params, m.fourier_frequencies, m.hidden, m.layers, device=device, kernels=m.kernels
    )


def _progress(scene: Scene, iteration: int) -> float:
    """How far through the planned iterations ``iteration`` (0-based) is, in [0, 1]."""
    return min(iteration / max(scene.optim.iterations - 1, 1), 1.0)


def learning_rate(scene: Scene, iteration: int) -> float:
    """The scheduled learning rate at ``iteration`` (0-based)."""
    o = scene.optim
    if o.schedule is Schedule.COSINE:
        progress = _progress(scene, iteration)
        floor = o.lr * o.lr_final_ratio
        return floor + 0.5 * (o.lr - floor) * (1.0 + math.cos(math.pi * progress))
    if o.schedule is Schedule.STEP:
        return o.lr * o.step_gamma ** (iteration // o.step_every)
    return o.lr


def mask_alpha(scene: Scene, iteration: int) -> float:
    """Soft-mask sharpness, annealed geometrically from start to end."""
    a0, a1 = scene.optim.mask_alpha
    return a0 * (a1 / a0) ** _progress(scene, iteration)


# --------------------------------------------------------------- step kernels


class Problem(IntEnum):
    """What the finiteness guard found (halt[1]); the smallest code wins."""

    LOSS = 0
    VALUES = 1
    GRADIENT = 2


class Column(IntEnum):
    """Columns of a history row (one row per step of a chunk, float64)."""

    LOSS = 0  # weighted loss
    TERMS = 1  # NUM_TERMS unweighted terms from here on, in Term order
    MISMATCH = 1 + NUM_TERMS  # rays whose hard predicted mask differs from the target
    INTERSECTION = 2 + NUM_TERMS  # rays predicted and target both on the object
    UNION = 3 + NUM_TERMS  # rays predicted or target on the object


HISTORY_COLUMNS = 4 + NUM_TERMS


class Status(IntEnum):
    """Columns of the status row, the history's last row (written once per chunk)."""

    HALT_ITERATION = 0  # 1-based iteration of the first bad step, or NO_DIVERGENCE
    HALT_PROBLEM = 1  # a Problem, or NO_DIVERGENCE


@wp.kernel(enable_backward=False)
def start_clock_kernel(
    first: int,  # 0-based iteration of the chunk's first step
    iteration_out: wp.array(dtype=int),  # (1,) set to first
    slot_out: wp.array(dtype=int),  # (1,) set to 0
):
    """One thread (dim = 1). Not differentiable."""
    iteration_out[0] = first
    slot_out[0] = 0


@wp.kernel(enable_backward=False)
def advance_clock_kernel(
    iteration_out: wp.array(dtype=int),  # (1,) 0-based iteration, advanced by one
    slot_out: wp.array(dtype=int),  # (1,) step within the chunk, advanced by one
):
    """One thread (dim = 1), last in every step. Not differentiable."""
    iteration_out[0] = iteration_out[0] + 1
    slot_out[0] = slot_out[0] + 1


@wp.kernel(enable_backward=False)
def stage_rays_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row in the chunk arrays
    ray_index: wp.array2d(dtype=int),  # (K, B) ray ids into the flattened views (batched)
    frames: wp.array3d(dtype=wp.vec3d),  # (K, C, 4) eye, right, up, back per camera (shaken)
    camera_first: wp.array(dtype=int),  # (C,) id of each camera's first ray
    camera_width: wp.array(dtype=int),  # (C,) pixels
    camera_height: wp.array(dtype=int),  # (C,) pixels
    camera_tan_half: wp.array(dtype=wp.float64),  # (C,) tan(fov / 2)
    num_cameras: int,  # C
    batched: int,  # 1: ray r is ray_index[slot, r] and the targets are gathered; 0: ray r
    shaken: int,  # 1: rays from the frames; 0: copied from all_origins / all_dirs
    all_origins: wp.array(dtype=wp.vec3),  # (R,) every ray of the still cameras, world units
    all_dirs: wp.array(dtype=wp.vec3),  # (R,) unit vectors
    all_mask: wp.array(dtype=float),  # (R,) target mask of every ray
    all_xyz: wp.array(dtype=wp.vec3),  # (R,) target surface points, world units
    all_depth: wp.array(dtype=float),  # (R,) target ray distances, world units
    origins_out: wp.array(dtype=wp.vec3),  # (B,) this step's rays, world units
    dirs_out: wp.array(dtype=wp.vec3),  # (B,) unit vectors
    mask_out: wp.array(dtype=float),  # (B,) written only when batched
    xyz_out: wp.array(dtype=wp.vec3),  # (B,) written only when batched
    depth_out: wp.array(dtype=float),  # (B,) written only when batched
):
    """One thread per ray of the step (dim = B). Not differentiable.

    A shaken camera's ray follows :meth:`warpsdf.camera.Camera.rays` in float64
    (pixel centres, row-major ids), then rounds to float32 as the host did."""
    r = wp.tid()
    s = slot[0]
    ray = r
    if batched == 1:
        ray = ray_index[s, r]
    if shaken == 1:
        c = int(0)
        for k in range(1, num_cameras):
            if ray >= camera_first[k]:
                c = k
        local = ray - camera_first[c]
        w = camera_width[c]
        h = camera_height[c]
        i = local // w
        j = local - i * w
        one = wp.float64(1.0)
        two = wp.float64(2.0)
        half = wp.float64(0.5)
        wf = wp.float64(w)
        hf = wp.float64(h)
        th = camera_tan_half[c]
        ndc_x = (two * (wp.float64(j) + half) / wf - one) * th * wf / hf
        ndc_y = (one - two * (wp.float64(i) + half) / hf) * th
        d = ndc_x * frames[s, c, 1] + ndc_y * frames[s, c, 2] - frames[s, c, 3]
        d = d / wp.length(d)
        eye = frames[s, c, 0]
        origins_out[r] = wp.vec3(float(eye[0]), float(eye[1]), float(eye[2]))
        dirs_out[r] = wp.vec3(float(d[0]), float(d[1]), float(d[2]))
    else:
        origins_out[r] = all_origins[ray]
        dirs_out[r] = all_dirs[ray]
    if batched == 1:
        mask_out[r] = all_mask[ray]
        xyz_out[r] = all_xyz[ray]
        depth_out[r] = all_depth[ray]


@wp.kernel(enable_backward=False)
def stage_points_kernel(
    slot: wp.array(dtype=int),  # (1,) this step's row in the chunk arrays
    all_points: wp.array2d(dtype=wp.vec3),  # (K, 4E) eikonal tetrahedron points per step
    points_out: wp.array(dtype=wp.vec3),  # (4E,) this step's, world units
):
    """One thread per point (dim = 4E). Not differentiable."""
    i = wp.tid()
    points_out[i] = all_points[slot[0], i]


@wp.kernel(enable_backward=False)
def finite_guard_kernel(
    loss: wp.array(dtype=float),  # (1,) this step's weighted loss
    values: wp.array(dtype=float),  # (N,) the field at the rays' sample points, world units
    grad: wp.array(dtype=float),  # (P,) dL/dparams after backward
    iteration: wp.array(dtype=int),  # (1,) 0-based iteration of this step
    halt_out: wp.array(dtype=int),  # (2,) [first bad iteration (1-based), Problem]
):
    """One thread per checked number (dim = 1 + N + P): thread 0 the loss,
    then the values, then the gradient. Not differentiable. A non-finite one
    records this step in ``halt_out`` (atomic minima, so the first bad step and
    its most telling problem win); a halt of an earlier step is left alone."""
    i = wp.tid()
    it = iteration[0] + 1
    if halt_out[0] < it:
        return
    n = values.shape[0]
    x = float(0.0)
    problem = int(Problem.GRADIENT)
    if i == 0:
        x = loss[0]
        problem = int(Problem.LOSS)
    elif i <= n:
        x = values[i - 1]
        problem = int(Problem.VALUES)
    else:
        x = grad[i - 1 - n]
    if not wp.isfinite(x):
        wp.atomic_min(halt_out, 0, it)
        wp.atomic_min(halt_out, 1, problem)


@wp.kernel(enable_backward=False)
def step_stats_kernel(
    hit_t: wp.array(dtype=float),  # (B,) predicted hit distance, -1 = miss
    target_mask: wp.array(dtype=float),  # (B,) 1 on the object
    loss: wp.array(dtype=float),  # (1,) weighted loss
    terms: wp.array(dtype=float),  # (NUM_TERMS,) unweighted terms
    slot: wp.array(dtype=int),  # (1,) this step's row
    history_out: wp.array2d(dtype=wp.float64),  # (K + 1, HISTORY_COLUMNS), zeroed per chunk
):
    """One thread per ray (dim = B). Not differentiable. Hard masks: predicted
    ``hit_t >= 0``, target ``mask > 0.5``, counted into the MISMATCH,
    INTERSECTION and UNION columns (atomics; counts are exact in float64);
    thread 0 also copies the loss and its terms."""
    r = wp.tid()
    s = slot[0]
    if r == 0:
        history_out[s, int(Column.LOSS)] = wp.float64(loss[0])
        for t in range(NUM_TERMS):
            history_out[s, int(Column.TERMS) + t] = wp.float64(terms[t])
    pred = hit_t[r] >= 0.0
    truth = target_mask[r] > 0.5
    one = wp.float64(1.0)
    if pred != truth:
        wp.atomic_add(history_out, s, int(Column.MISMATCH), one)
        wp.atomic_add(history_out, s, int(Column.UNION), one)
    elif pred:
        wp.atomic_add(history_out, s, int(Column.INTERSECTION), one)
        wp.atomic_add(history_out, s, int(Column.UNION), one)


@wp.kernel(enable_backward=False)
def status_row_kernel(
    halt: wp.array(dtype=int),  # (2,) the guard's record
    history_out: wp.array2d(dtype=wp.float64),  # (K + 1, HISTORY_COLUMNS)
):
    """One thread (dim = 1), once per chunk: the guard's record into the status
    row (row K), so that one copy reads everything back. Not differentiable."""
    k = history_out.shape[0] - 1
    history_out[k, int(Status.HALT_ITERATION)] = wp.float64(halt[0])
    history_out[k, int(Status.HALT_PROBLEM)] = wp.float64(halt[1])


# ---------------------------------------------------------------- the driver
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
    seconds: float  # wall time of this step (its chunk's time / the chunk's steps)

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


class _Staging:
    """A chunk array on the device and where the host writes it: the array
    itself on the CPU, a pinned host twin on CUDA (uploaded with one async copy)."""

    def __init__(self, shape: tuple[int, ...], dtype, device):
        self.device_array = wp.zeros(shape, dtype=dtype, device=device)
        self.host_array = (
            self.device_array
            if device.is_cpu
            else wp.zeros(shape, dtype=dtype, device="cpu", pinned=True)
        )
        self.host = self.host_array.numpy()  # a view, written in place
        self.row_size = int(np.prod(shape[1:], dtype=np.int64))

    def upload(self, rows: int) -> None:
        if rows > self.device_array.shape[0]:
            raise ValueError(f"upload of {rows} rows into {self.device_array.shape[0]}")
        if self.host_array is not self.device_array:
            wp.copy(self.device_array, self.host_array, count=rows * self.row_size)

    def download(self) -> np.ndarray:
        """The whole array on the host (waits for the device)."""
        if self.host_array is not self.device_array:
            wp.copy(self.host_array, self.device_array)
            wp.synchronize_device(self.device_array.device)
        return self.host


class Fitter:
    """Fits ``scene.model`` to ``scene.target``. Allocates once; call
    :meth:`steps` (or :meth:`step`).

    ``use_graph`` (default: on for CUDA devices) replays each step of a chunk
    from one captured graph; set the attribute to False to launch every kernel
    from Python instead. With ``profile`` set, each step runs without a graph,
    synchronises between its phases and records their wall times (ms) in
    ``timings``: for benchmarks only.
    """

    def __init__(
        self,
        scene: Scene,
        device=None,
        target: Target | None = None,
        use_graph: bool | None = None,
    ):
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
        self.optimizer = Adam(self.field.params)
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
        self._batched = self.batch < total
        self._shaken = scene.cameras.jitter > 0.0
        d = self.device
        n, e = self.batch, max(scene.optim.eikonal_samples, 1)
        # one step's inputs and intermediates
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
        self._tape = wp.Tape()  # reused: reset at the start of every step
        # device counters: the 0-based iteration being computed and its slot in the chunk
        self._iteration = wp.zeros(1, dtype=int, device=d)
        self._slot = wp.zeros(1, dtype=int, device=d)
        self._halt = wp.full(2, NO_DIVERGENCE, dtype=int, device=d)
        # loss(alpha) outside the schedule: a one-entry schedule read at iteration 0
        self._probe_alpha = wp.zeros(1, dtype=float, device=d)
        self._probe_iteration = wp.zeros(1, dtype=int, device=d)
        self._schedule_length = 0
        self._lr_schedule = self._alpha_schedule = None
        self._ensure_schedule(max(scene.optim.iterations, 1))
        self._capacity = 0  # chunk slots; the chunk arrays are allocated by _reserve

        # inputs that never change, uploaded once
        t = self.targets
        if self._batched:
            self._all_mask = wp.array(t.mask, dtype=float, device=d)
            self._all_xyz = wp.array(t.xyz, dtype=wp.vec3, device=d)
            self._all_depth = wp.array(t.depth, dtype=float, device=d)
        else:
            self._mask.assign(t.mask)
            self._xyz.assign(t.xyz)
            self._depth.assign(t.depth)
            self._all_mask, self._all_xyz, self._all_depth = self._mask, self._xyz, self._depth
        if self._shaken:  # rays are made on the device from each step's camera frames
            self._all_origins, self._all_dirs = self._origins, self._dirs  # unused
            first = np.cumsum([0] + [c.num_rays for c in self.cameras[:-1]])
            self._camera_first = wp.array(first, dtype=int, device=d)
            self._camera_width = wp.array([c.width for c in self.cameras], dtype=int, device=d)
            self._camera_height = wp.array([c.height for c in self.cameras], dtype=int, device=d)
            tan_half = [math.tan(math.radians(c.fov_deg) / 2.0) for c in self.cameras]
            self._camera_tan_half = wp.array(tan_half, dtype=wp.float64, device=d)
        else:
            origins, dirs = rays_for(self.cameras)
            if self._batched:
                self._all_origins = wp.array(origins, dtype=wp.vec3, device=d)
                self._all_dirs = wp.array(dirs, dtype=wp.vec3, device=d)
            else:  # still cameras, every ray: the step's rays are these
                self._origins.assign(origins)
                self._dirs.assign(dirs)
            empty_int = wp.zeros(1, dtype=int, device=d)
            self._camera_first = self._camera_width = self._camera_height = empty_int
            self._camera_tan_half = wp.zeros(1, dtype=wp.float64, device=d)

        self.use_graph = self.device.is_cuda if use_graph is None else bool(use_graph)
        self._graph = None
        self._diverged: str | None = None  # the DivergedError message, once diverged
        self.profile = False
        self.timings: dict[str, float] = {}
        self._clock = 0.0

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue the same trajectory."""
        opt = self.optimizer
        return {
            "params": self.field.params.numpy().copy(),
            "adam_m": opt.m.numpy().copy(),
            "adam_v": opt.v.numpy().copy(),
            "adam_t": np.array(opt.step_count, np.int64),
            "iteration": np.array(self.iteration, np.int64),
            "rng_state": np.array(repr(self.rng.bit_generator.state)),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state` (a checkpoint); clears a divergence."""
        params = np.asarray(state["params"], np.float32)
        if params.shape != tuple(self.field.params.shape):
            raise WarpsdfError(
                f"checkpoint has {params.size} parameters but the scene's model has "
                f"{self.field.params.shape[0]} (was [model] changed?)"
            )
        self.field.params.assign(params)
        self.optimizer.load(state["adam_m"], state["adam_v"], int(state["adam_t"]))
        self.iteration = int(state["iteration"])
        self.rng.bit_generator.state = ast.literal_eval(str(state["rng_state"]))
        self._halt.fill_(NO_DIVERGENCE)
        self._diverged = None

    # ------------------------------------------------------- allocation (once)

    def _ensure_schedule(self, length: int) -> None:
        """Learning rate and mask sharpness of iterations [0, length) on the device.
        Grows (and drops the captured graph) only when a fit runs past it."""
        if length <= self._schedule_length:
            return
        n = max(length, 2 * self._schedule_length)
        lr = np.array([learning_rate(self.scene, i) for i in range(n)], np.float32)
        alpha = np.array([mask_alpha(self.scene, i) for i in range(n)], np.float32)
        self._lr_schedule = wp.array(lr, dtype=float, device=self.device)
        self._alpha_schedule = wp.array(alpha, dtype=float, device=self.device)
        self._schedule_length = n
        self._graph = None

    def _reserve(self, k: int) -> None:
        """Chunk arrays with a slot per step for chunks of up to ``k`` steps.
        Grows (and drops the captured graph) only when a longer chunk comes."""
        if k <= self._capacity:
            return
        cap = max(k, 2 * self._capacity, 16)
        d = self.device
        c, e = len(self.cameras), 4 * max(self.scene.optim.eikonal_samples, 1)
        self._index = _Staging((cap, self.batch) if self._batched else (1, 1), int, d)
        self._frames = _Staging((cap, c, 4) if self._shaken else (1, 1, 4), wp.vec3d, d)
        self._eik_all = _Staging((cap, e) if self.w_eikonal > 0.0 else (1, 1), wp.vec3, d)
        self._history = _Staging((cap + 1, HISTORY_COLUMNS), wp.float64, d)
        self._capacity = cap
        self._graph = None

    # ------------------------------------------------------------------- step

    def _lap(self, phase: str) -> None:
        """With profiling on: wait for the device and charge the time since the
        last lap to ``phase``."""
        if not self.profile:
            return
        wp.synchronize_device(self.device)
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + (now - self._clock) * 1e3
        self._clock = now

    def _draw_chunk(self, k: int) -> None:
        """Draw the random inputs of the next ``k`` steps into their slots (numpy
        rng, in the order one step at a time draws them: camera shake, ray batch,
        eikonal points) and upload them in one copy per array."""
        scene, rng = self.scene, self.rng
        frames, index, points = self._frames.host, self._index.host, self._eik_all.host
        for s in range(k):
            if self._shaken:
                for c, cam in enumerate(jitter_cameras(self.cameras, scene.cameras.jitter, rng)):
                    frames[s, c] = (cam.eye, *cam.basis())
            if self._batched:
                index[s] = np.sort(rng.choice(self.total_rays, self.batch, replace=False))
            if self.w_eikonal > 0.0:
                e = scene.optim.eikonal_samples
                v = rng.normal(size=(e, 3))
                v *= (
                    scene.march.bound_radius
                    * rng.uniform(size=(e, 1)) ** (1.0 / 3.0)
                    / np.linalg.norm(v, axis=1, keepdims=True)
                )
                points[s] = (v[:, None, :] + self._tetra[None]).reshape(-1, 3)
        # only what this fit uses: the others are 1-row placeholders (a k-row
        # copy from one would overrun it)
        if self._shaken:
            self._frames.upload(k)
        if self._batched:
            self._index.upload(k)
        if self.w_eikonal > 0.0:
            self._eik_all.upload(k)

    def _start_chunk(self) -> None:
        wp.launch(
            start_clock_kernel,
            dim=1,
            inputs=[self.iteration],
            outputs=[self._iteration, self._slot],
            device=self.device,
        )
        self._history.device_array.zero_()

    def _stage(self) -> None:
        """Copy the step's slot of the chunk arrays into the step's buffers."""
        if self._shaken or self._batched:
            wp.launch(
                stage_rays_kernel,
                dim=self.batch,
                inputs=[
                    self._slot, self._index.device_array, self._frames.device_array,
                    self._camera_first, self._camera_width, self._camera_height,
                    self._camera_tan_half, len(self.cameras), int(self._batched),
                    int(self._shaken), self._all_origins, self._all_dirs, self._all_mask,
                    self._all_xyz, self._all_depth,
                ],
                outputs=[self._origins, self._dirs, self._mask, self._xyz, self._depth],
                device=self.device,
            )  # fmt: skip
        if self.w_eikonal > 0.0:
            wp.launch(
                stage_points_kernel,
                dim=self._eik_points.shape[0],
                inputs=[self._slot, self._eik_all.device_array],
                outputs=[self._eik_points],
                device=self.device,
            )

    def _forward(self, alpha_schedule: wp.array, iteration: wp.array) -> None:
        """March the staged rays and record the loss on the tape, with the mask
        sharpness ``alpha_schedule[iteration[0]]``. Zeroes the gradients."""
        scene = self.scene
        n = self.batch
        march(self.field, self._origins, self._dirs, scene.march, out=self._hits)
        self._lap("march")
        wp.launch(
            sample_points_kernel,
            dim=n,
            inputs=[self._origins, self._dirs, self._hits.min_t],
            outputs=[self._points],
            device=self.device,
        )
        self._tape.reset()  # forgets the last step (and zeroes the gradients it saw)
        self._terms.zero_()
        self._loss.zero_()
        self.field.params.grad.zero_()
        self._values.grad.zero_()
        self._eik_values.grad.zero_()
        tape = self._tape
        with tape:
            evaluate(self.field, self._points, self._values, self._detached, tape=tape)
            wp.launch(
                ray_loss_kernel,
                dim=n,
                inputs=[
                    self._values, self._detached, self._points, self._dirs,
                    self._hits.hit_t, self._hits.min_sdf, self._hits.grad_dot_dir,
                    self._mask, self._xyz, self._depth,
                    alpha_schedule, iteration, 1.0 / n,
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

    def _step(self) -> None:
        """One whole step on the device, reading its slot and iteration from the
        device counters: nothing here allocates, reads back or changes between
        steps, so it can be captured in a graph."""
        self._stage()
        self._lap("draw")
        self._forward(self._alpha_schedule, self._iteration)
        self._tape.backward(loss=self._loss)
        self._lap("backward")
        params = self.field.params
        wp.launch(
            finite_guard_kernel,
            dim=1 + self.batch + params.shape[0],
            inputs=[self._loss, self._detached, params.grad, self._iteration],
            outputs=[self._halt],
            device=self.device,
        )
        self._lap("readback")
        self.optimizer.step(params.grad, self._lr_schedule, self._iteration, self._halt)
        self._lap("optimizer")
        wp.launch(
            step_stats_kernel,
            dim=self.batch,
            inputs=[self._hits.hit_t, self._mask, self._loss, self._terms, self._slot],
            outputs=[self._history.device_array],
            device=self.device,
        )
        wp.launch(
            advance_clock_kernel,
            dim=1,
            outputs=[self._iteration, self._slot],
            device=self.device,
        )
        self._lap("readback")

    def steps(self, k: int) -> list[StepRecord]:
        """``k`` Adam steps with one readback, at the end. Returns a record per step
        (``seconds``: the chunk's wall time / k).

        Raises :class:`DivergedError` when a step's loss, field values or gradient
        are not finite. That step and the rest of the chunk change nothing, and
        the update that produced the bad parameters is undone: the parameters,
        Adam state and :attr:`iteration` go back to the last step whose loss was
        finite (as far as this session reaches: a fit that diverges on its first
        step keeps its start), and the error's ``records`` hold the chunk's kept
        steps (the caller drops a row it already logged past ``iteration``). A
        diverged fitter refuses further steps until :meth:`load_state`.
        """
        if k < 1:
            raise ValueError(f"steps({k}): expected k >= 1")
        if self._diverged is not None:
            raise DivergedError(self._diverged, [], self.iteration)
        start = time.perf_counter()
        if self.profile:
            wp.synchronize_device(self.device)
            self.timings = {}
            self._clock = start
        first = self.iteration
        self._reserve(k)
        self._ensure_schedule(first + k)
        self._draw_chunk(k)
        self._start_chunk()
        self._lap("draw")
        graph = self.use_graph and not self.profile
        done = 0
        if graph and self._graph is None:
            self._step()  # warm-up: loads every module the step needs, then capture
            done = 1
            with wp.ScopedCapture(self.device, force_module_load=False) as capture:
                self._step()
            self._graph = capture.graph
        for _ in range(done, k):
            if graph:
                wp.capture_launch(self._graph)
            else:
                self._step()
        wp.launch(
            status_row_kernel,
            dim=1,
            inputs=[self._halt],
            outputs=[self._history.device_array],
            device=self.device,
        )
        rows = self._history.download()
        self._lap("readback")
        seconds = (time.perf_counter() - start) / k
        records = [self._record(first + s, rows[s], seconds) for s in range(k)]
        status = rows[self._capacity]
        halt = int(status[Status.HALT_ITERATION])
        if halt != NO_DIVERGENCE:
            # Step `halt` found the parameters of iteration halt - 1 non-finite-making:
            # undo the update that produced them (step halt - 1, 0-based halt - 2)
            # when it ran in this session, so the parameters of the last step
            # whose loss was finite stay (iteration halt - 2).
            kept = halt - 1
            if halt >= 2 and int(self.optimizer.backup.numpy()[1]) == halt - 2:
                self.optimizer.restore()
                kept = halt - 2
            self.iteration = kept
            problem = Problem(int(status[Status.HALT_PROBLEM]))
            if problem is Problem.LOSS:
                what = f"the loss became {records[halt - 1 - first].loss}"
            elif problem is Problem.VALUES:
                what = "the field's values became non-finite"
            else:
                what = "the gradient became non-finite"
            self._diverged = f"{what} at iteration {halt}; kept the parameters of iteration {kept}"
            raise DivergedError(self._diverged, records[: max(kept - first, 0)], kept)
        self.iteration = first + k
        return records

    def step(self) -> StepRecord:
        """One Adam step: ``steps(1)[0]``."""
        return self.steps(1)[0]

    def _record(self, iteration: int, row: np.ndarray, seconds: float) -> StepRecord:
        """The record of 0-based ``iteration`` from its history row."""
        union = row[Column.UNION]
        return StepRecord(
            iteration=iteration + 1,
            loss=float(row[Column.LOSS]),
            terms={
                name: float(row[Column.TERMS + t]) for name, t in zip(TERM_NAMES, Term, strict=True)
            },
            mask_mse=float(row[Column.MISMATCH] / self.batch),
            iou=1.0 if union == 0 else float(row[Column.INTERSECTION] / union),
            lr=learning_rate(self.scene, iteration),
            alpha=mask_alpha(self.scene, iteration),
            seconds=seconds,
        )

    # ------------------------------------------------ one step by hand (tests)

    def draw(self) -> np.ndarray | None:
        """Draw one step's random inputs, as a step would, and stage them for
        :meth:`loss`. Returns the batch's ray indices (None: every ray)."""
        self._reserve(1)
        self._draw_chunk(1)
        self._start_chunk()
        self._stage()
        return self._index.host[0].astype(np.int64) if self._batched else None

    def loss(self, alpha: float, backward: bool = True) -> float:
        """March the drawn rays, evaluate the loss with mask sharpness ``alpha``
        on the tape and (with ``backward``) leave dL/dparams in
        ``field.params.grad``. Reads the loss back: not for the fit loop."""
        self._probe_alpha.fill_(float(alpha))
        self._forward(self._probe_alpha, self._probe_iteration)
        if backward:
            self._tape.backward(loss=self._loss)
        return float(self._loss.numpy()[0])

    def terms(self) -> dict[str, float]:
        """The unweighted loss terms of the last :meth:`loss`."""
        terms = self._terms.numpy()
        return {name: float(terms[t]) for name, t in zip(TERM_NAMES, Term, strict=True)}
