"""The step loop: Adam steps over a differentiable render, every part of a step
on the device (DESIGN §6).

One step:
  1. staging: the step's rays, target pixels and eikonal points are copied from
     the chunk's slot into the step's buffers (:mod:`warpsdf.fit.staging`);
  2. sphere tracing outside the tape (hit, least-SDF point, grad f . d);
  3. on the tape: the field at each ray's sample point (custom backward into
     the parameters), the field at tetrahedron points around random eikonal
     samples, then the loss kernels (the mask sharpness read from a schedule);
  4. backward; the finiteness guard (:mod:`warpsdf.fit.guard`); Adam with the
     scheduled learning rate and its step count on the device
     (:mod:`warpsdf.fit.optim`); the step's statistics into a history row
     (:mod:`warpsdf.fit.history`).

Steps run in chunks (:meth:`Fitter.steps`): a chunk's random inputs are drawn
up front and uploaded once, the steps run without readbacks (on CUDA: one
captured graph, replayed) and the history is read once at the end.
:func:`warpsdf.fit.run.fit` wraps this with a run folder.

This module is longer than 450 lines because the step, its chunking, its
divergence rollback and the field's coarse-to-fine stages share the Fitter's
device state; splitting them would expose that state across modules.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass

import numpy as np
import warp as wp

from warpsdf.camera import Camera, training_cameras
from warpsdf.carve import hull_init
from warpsdf.errors import SceneError, WarpsdfError
from warpsdf.fields.base import evaluate
from warpsdf.fields.factory import check_param_count, make_field, needs_prefit
from warpsdf.fit.guard import (
    NO_DIVERGENCE,
    DivergedError,
    Problem,
    describe,
    finite_guard_kernel,
)
from warpsdf.fit.history import (
    HISTORY_COLUMNS,
    Status,
    StepRecord,
    record_from_row,
    status_row_kernel,
    step_stats_kernel,
)
from warpsdf.fit.optim import Adam
from warpsdf.fit.prefit import prefit_to_sdf
from warpsdf.fit.schedule import DeviceSchedules
from warpsdf.fit.staging import (
    Staging,
    StepInputs,
    advance_clock_kernel,
    flatten_targets,
    start_clock_kernel,
)
from warpsdf.losses import (
    NUM_TERMS,
    TERM_NAMES,
    Term,
    background_code,
    eikonal_loss_kernel,
    point_loss_code,
    ray_loss_kernel,
    sample_points_kernel,
    sample_values,
    silhouette_loss_code,
)
from warpsdf.march import RayHits, UnrolledSteps, gradient_code, march, polish_for
from warpsdf.scene import MarchGradient, Scene, SupervisionMode, size_problems
from warpsdf.targets import Target, TargetView, build_target, target_views
from warpsdf.unrolled import record_unrolled


def check_sizes(scene: Scene, cameras: list[Camera]) -> None:
    """Every size limit of a fit (the scene may have changed since it loaded)."""
    if problems := size_problems(scene, [(c.width, c.height) for c in cameras]):
        raise SceneError(problems)


@dataclass
class StepBuffers:
    """What the last step computed, on the device (B rays, E eikonal samples)."""

    hits: RayHits  # (B,) the march of the step's rays
    points: wp.array  # (B,) vec3 sample point per ray: the hit, or the point of least SDF
    values: wp.array  # (B,) f at the sample points, on the tape
    detached: wp.array  # (B,) the same values as constants (f0)
    eik_values: wp.array  # (4E,) f at the eikonal tetrahedron points, on the tape
    eik_detached: wp.array  # (4E,)
    terms: wp.array  # (NUM_TERMS,) unweighted loss terms, in Term order
    loss: wp.array  # (1,) the weighted loss
    end_dt: wp.array  # (B,) each end distance's change (0; its gradient: unrolled only)
    unrolled: UnrolledSteps | None  # the march's samples (march.gradient = "unrolled")

    @classmethod
    def allocate(cls, rays: int, eikonal_points: int, device,
                 unrolled_steps: int = 0) -> StepBuffers:  # fmt: skip
        """``unrolled_steps``: the march's max_steps when it is differentiated
        through every step (0: it is not)."""
        e = eikonal_points
        keep = UnrolledSteps.allocate(rays, unrolled_steps, device) if unrolled_steps else None
        return cls(
            end_dt=wp.zeros(rays, dtype=float, device=device, requires_grad=True),
            unrolled=keep,
            hits=RayHits.allocate(rays, device),
            points=wp.empty(rays, dtype=wp.vec3, device=device),
            values=wp.zeros(rays, dtype=float, device=device, requires_grad=True),
            detached=wp.empty(rays, dtype=float, device=device),
            eik_values=wp.zeros(e, dtype=float, device=device, requires_grad=True),
            eik_detached=wp.empty(e, dtype=float, device=device),
            terms=wp.zeros(NUM_TERMS, dtype=float, device=device, requires_grad=True),
            loss=wp.zeros(1, dtype=float, device=device, requires_grad=True),
        )


class Fitter:
    """Fits ``scene.model`` to target ``views`` seen by ``cameras`` (one view per
    camera). Allocates once; call :meth:`steps` (or :meth:`step`).
    :meth:`from_scene` loads the cameras and views a scene describes.

    ``target`` (optional) is the renderable target the views came from: kept
    for the caller's metrics, never read by the steps. ``use_graph`` (default:
    on for CUDA devices) replays each step of a chunk from one captured graph;
    set the attribute to False to launch every kernel from Python instead.
    With ``profile`` set, each step runs without a graph, synchronises between
    its phases and records their wall times (ms) in ``timings``: for
    benchmarks only.
    """

    def __init__(
        self,
        scene: Scene,
        cameras: list[Camera],
        views: list[TargetView],
        device=None,
        *,
        target: Target | None = None,
        use_graph: bool | None = None,
    ):
        if len(cameras) != len(views):
            raise ValueError(f"{len(cameras)} cameras but {len(views)} target views")
        check_sizes(scene, cameras)
        self.scene = scene
        self.device = d = wp.get_device(device)
        self.rng = np.random.default_rng(scene.seed)
        self.cameras = list(cameras)
        self.views = list(views)
        self.target = target
        modes = set(scene.supervision.mode)
        targets = flatten_targets(self.views, modes)
        if not targets.mask.any():
            raise WarpsdfError(
                f"{scene.source or scene.name}: the target covers no pixel of any training "
                "view (check cameras.distance, cameras.fov_deg, the target's size and "
                "march.bound_radius)"
            )
        start = hull_init(scene, self.cameras, [v.mask for v in self.views], d)  # visual_hull
        self.field = make_field(scene, self.rng, d, start)
        if needs_prefit(scene):
            prefit_to_sdf(self.field, start, scene.march.bound_radius, self.rng)
        self.optimizer = Adam(self.field.params, lazy=self.field.sparse_gradients)
        self.iteration = 0
        self._set_stage(resample=False)

        w = scene.supervision.weights
        self.w_silhouette = w.get("silhouette", 0.0)  # only listed modes have weights
        self.w_xyz = w.get("xyz", 0.0) if SupervisionMode.XYZ in modes else 0.0
        self.w_depth = w.get("depth", 0.0) if SupervisionMode.DEPTH in modes else 0.0

        self.inputs = StepInputs(scene, self.cameras, targets, d)
        self.batch = self.inputs.batch
        self.total_rays = self.inputs.total_rays
        unrolled = scene.march.gradient is MarchGradient.UNROLLED
        self.buffers = StepBuffers.allocate(
            self.batch, self.inputs.eik_point_count, d, scene.march.max_steps if unrolled else 0
        )
        self.w_eikonal = scene.optim.eikonal_weight if self.inputs.uses_eikonal else 0.0
        self._tape = wp.Tape()  # reused: reset at the start of every step
        # device counters: the 0-based iteration being computed and its slot in the chunk
        self._iteration = wp.zeros(1, dtype=int, device=d)
        self._slot = wp.zeros(1, dtype=int, device=d)
        self._halt = wp.full(2, NO_DIVERGENCE, dtype=int, device=d)
        # loss(alpha) outside the schedule: a one-entry schedule read at iteration 0
        self._probe_alpha = wp.zeros(1, dtype=float, device=d)
        self._probe_iteration = wp.zeros(1, dtype=int, device=d)
        self.schedules = DeviceSchedules(scene, d)
        self.schedules.ensure(max(scene.optim.iterations, 1))
        self._history: Staging | None = None

        self.use_graph = d.is_cuda if use_graph is None else bool(use_graph)
        self._graph = None
        self._diverged: str | None = None  # the DivergedError message, once diverged
        self.profile = False
        self.timings: dict[str, float] = {}
        self._clock = 0.0

    @classmethod
    def from_scene(
        cls,
        scene: Scene,
        device=None,
        *,
        target: Target | None = None,
        use_graph: bool | None = None,
    ) -> Fitter:
        """A Fitter for the scene's own target and training cameras (the target
        is built on ``device`` unless given, and kept as :attr:`target`)."""
        device = wp.get_device(device)
        cameras = training_cameras(scene)
        check_sizes(scene, cameras)  # before the target views are traced (cheap)
        target = target or build_target(scene, device)
        views = target_views(scene, device, target, cameras)
        return cls(scene, cameras, views, device, target=target, use_graph=use_graph)

    @property
    def captured(self) -> bool:
        """Whether a step is captured as a graph (replayed by :meth:`steps`)."""
        return self._graph is not None

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
            **self.inputs.focus_state(),  # a focused fit's kept predictions
        }

    def load_state(self, state: dict[str, np.ndarray], source: str = "the checkpoint") -> None:
        """Continue from :meth:`state` (a checkpoint, named ``source`` in errors);
        clears a divergence."""
        params = np.asarray(state["params"], np.float32).reshape(-1)
        check_param_count(self.scene, params.size, source)
        self.field.params.assign(params)
        self.optimizer.load(state["adam_m"], state["adam_v"], int(state["adam_t"]))
        self.iteration = int(state["iteration"])
        self._set_stage(resample=False)
        self.rng.bit_generator.state = ast.literal_eval(str(state["rng_state"]))
        self.inputs.load_focus_state(state)
        self._halt.fill_(NO_DIVERGENCE)
        self._diverged = None

    def _set_stage(self, resample: bool, iteration: int | None = None) -> None:
        """The field's coarse-to-fine state at ``iteration`` (default: now); with
        ``resample``, only where a stage starts (:meth:`Field.stage_starts`)."""
        it = self.iteration if iteration is None else iteration
        total = self.scene.optim.iterations
        if not resample or it in self.field.stage_starts(total):
            self.field.enter_stage(it, total, self.optimizer, resample=resample)

    def _reserve(self, k: int) -> None:
        """Room for chunks of ``k`` steps and schedules past the chunk's end;
        anything replaced drops the captured graph."""
        grown = self.inputs.reserve(k)
        if self._history is None or grown:
            cap = self.inputs.capacity
            self._history = Staging((cap + 1, HISTORY_COLUMNS), wp.float64, self.device)
            grown = True
        if self.schedules.ensure(self.iteration + k) or grown:
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

    def _start_chunk(self) -> None:
        wp.launch(
            start_clock_kernel,
            dim=1,
            inputs=[self.iteration],
            outputs=[self._iteration, self._slot],
            device=self.device,
        )
        self._history.device_array.zero_()

    def _forward(self, alpha_schedule: wp.array, iteration: wp.array) -> None:
        """March the staged rays and record the loss on the tape, with the mask
        sharpness ``alpha_schedule[iteration[0]]``. Zeroes the gradients."""
        scene, inp, buf = self.scene, self.inputs, self.buffers
        n = self.batch
        # exact hit points only where a term reads them (and never for an unrolled march)
        polish = polish_for(scene.supervision, scene.march.gradient)
        steps = buf.unrolled  # every sample kept, for gradients through each step
        march(self.field, inp.origins, inp.dirs, scene.march, buf.hits, polish, steps)
        inp.observe(self._slot, buf.hits.hit_t)  # focused sampling keeps the predictions
        self._lap("march")
        wp.launch(
            sample_points_kernel,
            dim=n,
            inputs=[inp.origins, inp.dirs, buf.hits.min_t],
            outputs=[buf.points],
            device=self.device,
        )
        self._tape.reset()  # forgets the last step (and zeroes the gradients it saw)
        buf.terms.zero_()
        buf.loss.zero_()
        self.field.params.grad.zero_()
        buf.values.grad.zero_()
        buf.eik_values.grad.zero_()
        buf.end_dt.grad.zero_()
        tape = self._tape
        sup = scene.supervision
        with tape:
            sample_values(self.field, buf.hits, buf.points, buf.values, buf.detached, tape, polish)
            if steps is not None:
                record_unrolled(self.field, inp.dirs, steps, buf.end_dt, tape)
            wp.launch(
                ray_loss_kernel,
                dim=n,
                inputs=[
                    buf.values, buf.detached, inp.dirs, buf.hits.points, buf.end_dt,
                    buf.hits.hit_t,
                    buf.hits.min_sdf, buf.hits.grad_dot_dir, inp.mask, inp.xyz, inp.depth,
                    alpha_schedule, iteration, inp.weights, float(self.w_silhouette),
                    float(self.w_xyz), float(self.w_depth),
                    int(silhouette_loss_code(sup.silhouette_loss)),
                    int(point_loss_code(sup.xyz_loss)), int(background_code(sup.background)),
                    float(scene.march.bound_radius), int(gradient_code(scene.march.gradient)),
                ],
                outputs=[buf.terms, buf.loss],
                device=self.device,
            )  # fmt: skip
            if self.w_eikonal > 0.0:
                e = scene.optim.eikonal_samples
                evaluate(self.field, inp.eik_points, buf.eik_values, buf.eik_detached, tape)
                wp.launch(
                    eikonal_loss_kernel,
                    dim=e,
                    inputs=[buf.eik_values, 1.0 / e, float(self.w_eikonal)],
                    outputs=[buf.terms, buf.loss],
                    device=self.device,
                )
            w = scene.optim.smoothness_weight  # the field kind's own term (grids)
            self.field.regularize(w, iteration, Term.SMOOTHNESS, buf.terms, buf.loss, tape)
        self._lap("forward")

    def _step(self) -> None:
        """One whole step on the device, reading its slot and iteration from the
        device counters: nothing here allocates, reads back or changes between
        steps, so it can be captured in a graph."""
        buf = self.buffers
        self.inputs.stage(self._slot)
        self._lap("draw")
        self._forward(self.schedules.alpha, self._iteration)
        self._tape.backward(loss=buf.loss)
        self._lap("backward")
        params = self.field.params
        wp.launch(
            finite_guard_kernel,
            dim=1 + self.batch + params.shape[0],
            inputs=[buf.loss, buf.detached, params.grad, self._iteration],
            outputs=[self._halt],
            device=self.device,
        )
        self._lap("readback")
        self.optimizer.step(params.grad, self.schedules.lr, self._iteration, self._halt)
        self._lap("optimizer")
        wp.launch(
            step_stats_kernel,
            dim=self.inputs.uniform_count,  # the batch's uniform rays: an unbiased sample
            inputs=[buf.hits.hit_t, self.inputs.mask, buf.loss, buf.terms, self._slot],
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
        self.inputs.draw(k, self.rng)
        self._start_chunk()
        self._lap("draw")
        graph = self.use_graph and not self.profile
        done = 0
        if graph and self._graph is None:
            self._set_stage(resample=True, iteration=first)
            self._step()  # warm-up: loads every module the step needs, then capture
            done = 1
            with wp.ScopedCapture(self.device, force_module_load=False) as capture:
                self._step()
            self._graph = capture.graph
        for s in range(done, k):
            self._set_stage(resample=True, iteration=first + s)
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
        records = [
            record_from_row(self.scene, first + s, rows[s], self.inputs.uniform_count, seconds)
            for s in range(k)
        ]
        status = rows[self.inputs.capacity]
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
            self._diverged = describe(problem, records[halt - 1 - first].loss, halt, kept)
            raise DivergedError(self._diverged, records[: max(kept - first, 0)], kept)
        self.iteration = first + k
        return records

    def step(self) -> StepRecord:
        """One Adam step: ``steps(1)[0]``."""
        return self.steps(1)[0]

    # ------------------------------------------------ one step by hand (tests)

    def draw(self) -> np.ndarray | None:
        """Draw one step's random inputs, as a step would, and stage them for
        :meth:`loss`. Returns the batch's ray indices (None: every ray)."""
        self._reserve(1)
        self.inputs.draw(1, self.rng)
        self._start_chunk()
        self.inputs.stage(self._slot)
        return self.inputs.drawn_index(0) if self.inputs.sampled else None

    def loss(self, alpha: float, backward: bool = True) -> float:
        """March the drawn rays, evaluate the loss with mask sharpness ``alpha``
        on the tape and (with ``backward``) leave dL/dparams in
        ``field.params.grad``. Reads the loss back: not for the fit loop."""
        self._probe_alpha.fill_(float(alpha))
        self._forward(self._probe_alpha, self._probe_iteration)
        if backward:
            self._tape.backward(loss=self.buffers.loss)
        return float(self.buffers.loss.numpy()[0])

    def terms(self) -> dict[str, float]:
        """The unweighted loss terms of the last :meth:`loss`."""
        terms = self.buffers.terms.numpy()
        return {name: float(terms[t]) for name, t in zip(TERM_NAMES, Term, strict=True)}
