"""Run folders (DESIGN §5): a fit with everything it leaves behind.

    scene.toml          the resolved scene
    checkpoint.npz      parameters, Adam state, iteration, rng state, log, GIF frames
    log.csv             one row per iteration
    metrics.json        train / held-out IoU, XYZ error, Chamfer, status
    loss.png            each loss term and the mask MSE against the iteration
    optimization.gif    prediction | target | error for training view 0
    final_*.png         renders at output.final_scale x the training resolution
    mesh.ply            marching cubes of the field

Every file is written atomically. A folder is never replaced without
``force``; ``resume`` continues the trajectory stored in the checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import warp as wp

from warpsdf.camera import Camera, camera_angles, camera_from_angles
from warpsdf.errors import InputFileError, OutputError, WarpsdfError
from warpsdf.export import extract_mesh, write_mesh
from warpsdf.fields.base import Field
from warpsdf.fit import LOG_COLUMNS, DivergedError, Fitter, StepRecord, field_from_params
from warpsdf.io.files import atomic_file, write_json
from warpsdf.io.images import to_uint8, write_gif, write_png
from warpsdf.io.plots import error_image, loss_plot, side_by_side, upscale
from warpsdf.metrics import fit_metrics, trace_views, xyz_errors
from warpsdf.render import RenderMode, render
from warpsdf.scene import Scene, SupervisionMode, load_scene

CHECKPOINT = "checkpoint.npz"
SCENE_FILE = "scene.toml"


class RunStatus(StrEnum):
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    run_dir: Path
    status: RunStatus
    iteration: int
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    field: Field | None = None


def is_run_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / CHECKPOINT).is_file() and (path / SCENE_FILE).is_file()


def load_run(run_dir: str | Path, device=None) -> tuple[Scene, Field]:
    """The resolved scene and the fitted field of a run folder."""
    run_dir = Path(run_dir)
    if not is_run_folder(run_dir):
        raise InputFileError(f"{run_dir}: not a run folder (no {SCENE_FILE} and {CHECKPOINT})")
    scene = load_scene(run_dir / SCENE_FILE)
    state = _read_checkpoint(run_dir / CHECKPOINT)
    return scene, field_from_params(scene, state["params"], device)


def _read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError) as err:
        raise InputFileError(f"{path}: unreadable checkpoint ({err})") from None


# Scene sections a resumed run must keep: changing them would mix two fits in one log.
RESUME_FIXED = ("target", "cameras", "supervision", "model", "march", "seed")


def prepare_run_folder(run_dir: Path, resume: bool, force: bool) -> None:
    """Check (and with ``force`` clear) a run folder before a fit writes to it."""
    if resume and force:
        raise WarpsdfError("--resume and --force contradict each other: pick one")
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: exists and is not a folder")
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise InputFileError(f"{run_dir}: nothing to resume (no {CHECKPOINT})")
        return
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not force:
            raise OutputError(
                f"{run_dir}: run folder exists "
                "(use --resume to continue it or --force to replace it)"
            )
        if not (run_dir / SCENE_FILE).is_file():
            raise OutputError(
                f"{run_dir}: not a run folder, refusing to replace it even with --force"
            )
        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{run_dir}: cannot create folder ({err.strerror})") from None


class _Run:
    """The run folder's in-memory side: log rows and GIF frames."""

    def __init__(self, run_dir: Path, fitter: Fitter):
        self.dir = run_dir
        self.fitter = fitter
        self.rows: list[dict[str, float]] = []
        self.frames: list[np.ndarray] = []

    # checkpoint ---------------------------------------------------------------

    def save_checkpoint(self) -> None:
        state = self.fitter.state()
        state["log"] = np.array(
            [[row[c] for c in LOG_COLUMNS] for row in self.rows], np.float64
        ).reshape(-1, len(LOG_COLUMNS))
        state["log_columns"] = np.array(LOG_COLUMNS)
        if self.frames:
            state["frames"] = np.stack(self.frames)
        with atomic_file(self.dir / CHECKPOINT) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **state)
        self.write_log()

    def load_checkpoint(self) -> None:
        state = _read_checkpoint(self.dir / CHECKPOINT)
        self.fitter.load_state(state)
        columns = [str(c) for c in state.get("log_columns", np.array(LOG_COLUMNS))]
        self.rows = [
            {
                c: (int(v) if c == "iteration" else float(v))
                for c, v in zip(columns, row, strict=True)
            }
            for row in state.get("log", np.zeros((0, len(columns))))
        ]
        self.frames = list(state["frames"]) if "frames" in state else []

    # outputs ------------------------------------------------------------------

    def write_log(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        with atomic_file(self.dir / "log.csv") as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")

    def snapshot(self) -> None:
        """One GIF frame: prediction | target | error for training view 0."""
        f = self.fitter
        view = f.targets.views[0]
        scene = f.scene
        xyz = SupervisionMode.XYZ in scene.supervision.mode and view.xyz is not None
        pred = trace_views(f.field, [view.camera], scene.march)[0]
        if xyz:
            both, err = xyz_errors(pred, view)
            p_img = np.where(pred["mask"][..., None], (np.clip(pred["points"], -1, 1) + 1) / 2, 0)
            t_img = np.where(view.mask[..., None], (view.xyz + 1) / 2, 0)
            e_img = error_image(pred["mask"], view.mask, np.where(both, err, 0.0))
        else:
            p_img = np.repeat(pred["mask"][..., None], 3, -1).astype(np.float32)
            t_img = np.repeat(view.mask[..., None], 3, -1).astype(np.float32)
            e_img = error_image(pred["mask"], view.mask)
        self.frames.append(side_by_side([to_uint8(i) for i in (p_img, t_img, e_img)], gap=1))

    def write_animation(self) -> None:
        if self.frames:
            write_gif(self.dir / "optimization.gif", [upscale(f, 192) for f in self.frames], fps=10)

    def write_finals(self) -> None:
        """Shaded renders at final_scale x the training resolution: the training
        view and three unseen directions (and XYZ from the training view)."""
        f = self.fitter
        scene = f.scene
        cam0 = f.cameras[0]
        s = scene.output.final_scale
        big = cam0.with_resolution(cam0.width * s, cam0.height * s)
        views: dict[str, tuple[Camera, RenderMode]] = {"train": (big, RenderMode.SHADED)}
        az0, _, dist = camera_angles(cam0)
        for turn in (90, 180, 270):
            cam = camera_from_angles(
                az0 + turn, 25.0, dist, cam0.fov_deg, big.width, big.height,
                target=cam0.target, up=(0.0, 1.0, 0.0),
            )  # fmt: skip
            views[f"az{turn:03d}"] = (cam, RenderMode.SHADED)
        if SupervisionMode.XYZ in scene.supervision.mode:
            views["train_xyz"] = (big, RenderMode.XYZ)
        for name, (cam, mode) in views.items():
            image = render(f.field, cam, mode, scene.march)
            write_png(self.dir / f"final_{name}.png", to_uint8(image))

    def write_metrics(self, metrics: dict) -> None:
        """Strict JSON: a non-finite value (no surface: infinite Chamfer) is null."""
        write_json(self.dir / "metrics.json", metrics)


# A chunk of steps runs for at most about this long once the step time is known
# (should_stop, i.e. Ctrl-C, is polled between chunks).
CHUNK_SECONDS = 2.0


def chunk_length(done: int, total: int, every: tuple[int, ...]) -> int:
    """Steps from iteration ``done`` to the next multiple of any of ``every``,
    or to ``total``, whichever comes first (at least 1)."""
    k = total - done
    for e in every:
        k = min(k, e - done % e)
    return max(k, 1)


def fit(
    scene: Scene | str | Path,
    out_dir: str | Path | None = None,
    *,
    iterations: int | None = None,
    device=None,
    resume: bool = False,
    force: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    write_outputs: bool = True,
) -> FitResult:
    """Fit ``scene`` and fill its run folder.

    Steps run in chunks (:meth:`Fitter.steps`, one readback each) that end on
    every multiple of ``output.log_every``, ``snapshot_every`` and
    ``checkpoint_every`` (see :func:`chunk_length`). ``on_step`` sees every
    step's record, at the end of its chunk; ``should_stop`` is polled after
    each chunk (Ctrl-C in the CLI; chunks are cut to about ``CHUNK_SECONDS``
    once the step time is known): the fit then saves a checkpoint and returns
    with status ``interrupted``. A NaN or infinite loss, field value or gradient
    ends it with status ``diverged``, the parameters of the last good step and
    a log row for every good step.
    """
    if not isinstance(scene, Scene):
        scene = load_scene(scene)
    if iterations is not None:
        scene = scene.replace(optim=dataclasses.replace(scene.optim, iterations=iterations))
    run_dir = Path(out_dir or scene.output.dir)
    prepare_run_folder(run_dir, resume, force)
    if resume:
        saved = load_scene(run_dir / SCENE_FILE)
        for section in RESUME_FIXED:
            if getattr(saved, section) != getattr(scene, section):
                raise WarpsdfError(
                    f"{run_dir}: cannot resume, [{section}] differs from the run's {SCENE_FILE} "
                    f"(only [optim] and [output] may change)"
                )

    with wp.ScopedDevice(device):
        fitter = Fitter(scene, device)
        run = _Run(run_dir, fitter)
        if resume:
            run.load_checkpoint()
        elif write_outputs:
            run.snapshot()
        with atomic_file(run_dir / SCENE_FILE) as tmp:  # once the checkpoint has loaded
            tmp.write_text(scene.to_toml(), encoding="utf-8")
        status, reason = RunStatus.FINISHED, ""
        start = time.perf_counter()
        out = scene.output
        every = (out.log_every, out.snapshot_every, out.checkpoint_every)
        step_seconds = 0.0  # measured by the last chunk
        saved_at = -1  # the iteration of the last checkpoint written
        while fitter.iteration < scene.optim.iterations:
            done = fitter.iteration
            k = chunk_length(done, scene.optim.iterations, every)
            if step_seconds > 0.0:  # slow steps: shorter chunks, so Ctrl-C stays prompt
                k = max(1, min(k, int(CHUNK_SECONDS / step_seconds)))
            diverged: DivergedError | None = None
            try:
                records = fitter.steps(k)
            except DivergedError as err:
                records, diverged = err.records, err
            if records:
                step_seconds = records[-1].seconds
            for record in records:
                run.rows.append(record.row())
                if on_step is not None:
                    on_step(record)
            if diverged is not None:
                status, reason = RunStatus.DIVERGED, str(diverged)
                del run.rows[fitter.iteration :]  # rows of steps that were not kept
                break
            done = fitter.iteration
            if write_outputs and done % out.snapshot_every == 0:
                run.snapshot()
            if done % out.checkpoint_every == 0:
                run.save_checkpoint()
                saved_at = done
            if should_stop is not None and should_stop():
                if done < scene.optim.iterations:
                    status, reason = RunStatus.INTERRUPTED, f"stopped after iteration {done}"
                break
        if fitter.iteration != saved_at or status is RunStatus.DIVERGED:
            run.save_checkpoint()
        metrics: dict = {}
        if write_outputs:
            loss_plot(
                run.rows, run_dir / "loss.png", title=f"{scene.name}: loss terms and mask MSE"
            )
            run.write_animation()
        if status is not RunStatus.INTERRUPTED and write_outputs:
            metrics = fit_metrics(
                fitter.field, scene, fitter.cameras, fitter.targets.views, fitter.target
            )
            last = run.rows[-1] if run.rows else {}
            metrics.update(
                status=status.value,
                reason=reason,
                iterations=fitter.iteration,
                final_loss=last.get("loss"),
                seconds=round(time.perf_counter() - start, 3),
                device=str(fitter.device),
            )
            run.write_metrics(metrics)
            run.write_finals()
            vertices, faces = extract_mesh(
                fitter.field, out.mesh_resolution, scene.march.bound_radius
            )
            write_mesh(run_dir / "mesh.ply", vertices, faces)
    return FitResult(run_dir, status, fitter.iteration, metrics, reason, fitter.field)
