"""A fit with its run folder (DESIGN §5; the files are named by
:class:`warpsdf.io.layout.RunFolder` and written by
:mod:`warpsdf.fit.outputs`): preparing the folder, the loop of chunks with
logging, snapshots, checkpoints and Ctrl-C, and the closing outputs (loss
plot, GIF, metrics, showcase renders, mesh).

Every file is written atomically. A folder is never replaced without
``force``; ``resume`` continues the trajectory stored in the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import warp as wp

from warpsdf.errors import InputFileError, OutputError, WarpsdfError
from warpsdf.export import extract_mesh, write_mesh
from warpsdf.fields.base import Field
from warpsdf.fields.factory import field_from_params
from warpsdf.fit.fitter import Fitter
from warpsdf.fit.guard import DivergedError, lost_reason, progress_warning
from warpsdf.fit.history import StepRecord
from warpsdf.fit.outputs import RunRecorder, read_checkpoint
from warpsdf.io.files import (
    atomic_file,
    check_replaceable,
    path_errors,
    remove_stale_temp_files,
    shown,
    stale_temp_files,
    write_marker,
)
from warpsdf.io.layout import MARKER, RunFolder, holds_only_marker
from warpsdf.io.plots import loss_plot
from warpsdf.metrics import fit_metrics
from warpsdf.scene import Scene, load_scene


class RunStatus(StrEnum):
    """How a fit ended (metrics.json ``status``)."""

    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    # every number stayed finite but the field flew away from the target
    # (fit.guard.lost_reason); treated like diverged (exit 1, sweeps)
    LOST = "lost"


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    run_dir: Path
    status: RunStatus
    iteration: int
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    field: Field | None = None
    warning: str = ""  # a finished fit that ended no better than it started (fit.guard)


def load_run(run_dir: str | Path, device=None) -> tuple[Scene, Field]:
    """The resolved scene and the fitted field of a run folder."""
    run = RunFolder(run_dir)
    try:
        is_run = run.is_run()
    except (OSError, ValueError) as err:  # a NUL byte, a name too long, a link loop
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise InputFileError(f"{run.path}: cannot read run folder ({reason})") from None
    if not is_run:
        raise InputFileError(
            f"{run.path}: not a run folder (no {RunFolder.SCENE} and {RunFolder.CHECKPOINT})"
        )
    scene = load_scene(run.scene)
    state = read_checkpoint(run.checkpoint)
    return scene, field_from_params(scene, state["params"], device, str(run.checkpoint))


# Scene sections a resumed run must keep: changing them would mix two fits in one log.
RESUME_FIXED = ("target", "cameras", "supervision", "model", "march", "seed")


def check_run_folder(
    run_dir: Path, resume: bool, force: bool, keep: Iterable[str | Path] = ()
) -> bool:
    """Check a run folder before a fit writes to it, changing nothing (the CLI
    calls it before its live table starts). ``--force`` replaces only a folder
    warpsdf made, never the current or the home folder or one holding a file of
    ``keep`` (the scene file; see :func:`warpsdf.io.files.check_replaceable`).
    Returns whether the folder must be cleared first."""
    if resume and force:
        raise WarpsdfError("--resume and --force contradict each other: pick one")
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    if resume:
        with path_errors(run_dir, "cannot read"):
            if run_dir.exists() and not run_dir.is_dir():
                raise OutputError(f"{shown(run_dir)}: exists and is not a folder")
            if not run.checkpoint.is_file():
                raise InputFileError(
                    f"{shown(run_dir)}: nothing to resume (no {RunFolder.CHECKPOINT})"
                )
        return False
    with path_errors(run_dir):
        empty = not run_dir.is_dir() or _holds_nothing(run_dir)
        if not force and not empty:
            raise OutputError(
                f"{shown(run_dir)}: run folder exists "
                "(use --resume to continue it or --force to replace it)"
            )
    replace = check_replaceable(run_dir, force or empty, keep, what="run folder")
    return replace and not empty


def prepare_run_folder(
    run_dir: Path, resume: bool, force: bool, keep: Iterable[str | Path] = ()
) -> Path | None:
    """:func:`check_run_folder`, then (with ``force``) clear the folder and
    create it with its marker (:data:`warpsdf.io.layout.MARKER`). Returns the
    topmost folder its mkdir created (the run folder or a parent), or None."""
    clear = check_run_folder(run_dir, resume, force, keep)
    if resume:
        return None
    run_dir = Path(run_dir)
    created = None
    with path_errors(run_dir, "cannot create folder"):
        if clear:
            shutil.rmtree(run_dir)
        if not run_dir.exists():
            top = run_dir.absolute()
            while not top.parent.exists() and top.parent != top:
                top = top.parent
            run_dir.mkdir(parents=True)
            created = top.resolve()
        write_marker(run_dir)
    return created


def _holds_nothing(run_dir: Path) -> bool:
    """Whether a run folder holds nothing but its marker and the temporary files
    of a process killed while writing (:func:`warpsdf.io.files.stale_temp_files`)."""
    if holds_only_marker(run_dir):
        return True
    temps = set(stale_temp_files(run_dir))
    return all(p.name == MARKER or p in temps for p in run_dir.iterdir())


def _remove_if_unused(run_dir: Path, top: Path) -> None:
    """Remove a run folder this fit created (``top``: the topmost folder its
    mkdir made) if it holds no checkpoint: only its marker, scene.toml and
    temporary files (a fit that failed early)."""
    real = run_dir.resolve()
    ours = {MARKER, RunFolder.SCENE}
    with contextlib.suppress(OSError):
        temps = set(stale_temp_files(real))
        if not all(p.name in ours or p in temps for p in real.iterdir()):
            return
        shutil.rmtree(real)
        folder = real.parent  # and the parents its mkdir made, while empty
        while folder != top.parent and (folder == top or top in folder.parents):
            folder.rmdir()
            folder = folder.parent


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
    on_outputs: Callable[[RunStatus], None] | None = None,
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
    a log row for every good step. ``on_outputs`` is called once the training
    has ended and its checkpoint is saved, with the status so far, before the
    plots, GIF, renders and mesh are written (seconds; the CLI says so).
    """
    if not isinstance(scene, Scene):
        scene = load_scene(scene)
    if iterations is not None:
        scene = scene.replace(optim=dataclasses.replace(scene.optim, iterations=iterations))
    folder = RunFolder(out_dir or scene.output.dir)
    keep = [scene.source] if scene.source and Path(scene.source).is_file() else []
    created = prepare_run_folder(folder.path, resume, force, keep)
    remove_stale_temp_files(folder.path)  # of a process killed while writing
    try:
        return _fit(scene, folder, device, resume, on_step, should_stop, write_outputs, on_outputs)
    except BaseException:
        if created is not None:  # a fit that failed before its first checkpoint
            _remove_if_unused(folder.path, created)
        raise


def _fit(
    scene: Scene,
    folder: RunFolder,
    device,
    resume: bool,
    on_step: Callable[[StepRecord], None] | None,
    should_stop: Callable[[], bool] | None,
    write_outputs: bool,
    on_outputs: Callable[[RunStatus], None] | None = None,
) -> FitResult:
    """:func:`fit` in its prepared run folder."""
    if resume:
        check_resumable(folder, scene)
    with wp.ScopedDevice(device):
        fitter = Fitter.from_scene(scene, device)
        run = RunRecorder(folder, fitter)
        if resume:
            run.load_checkpoint()
        elif write_outputs:
            run.snapshot()
        with atomic_file(folder.scene) as tmp:  # once the checkpoint has loaded
            tmp.write_text(scene.to_toml(), encoding="utf-8")
        run.write_dataset_transform()
        start = time.perf_counter()
        status, reason = train(run, on_step, should_stop, write_outputs)
        if write_outputs and on_outputs is not None:
            on_outputs(status)
        metrics: dict = {}
        outputs = write_outputs and status is not RunStatus.INTERRUPTED
        if outputs:
            metrics = fit_metrics(fitter.field, scene, fitter.cameras, fitter.views, fitter.target)
        losses, ious = [row["loss"] for row in run.rows], [row["iou"] for row in run.rows]
        if status is RunStatus.FINISHED and (why := lost_reason(losses, metrics.get("train_iou"))):
            status, reason = RunStatus.LOST, why
        warning = ""
        if status is RunStatus.FINISHED:
            warning = progress_warning(ious, metrics.get("train_iou"))
        if write_outputs:
            title = f"{scene.name}: loss terms and mask MSE"
            loss_plot(run.rows, folder.loss_plot, title=title)
            run.write_animation()
            if outputs:
                last = run.rows[-1] if run.rows else {}
                metrics.update(
                    status=status.value,
                    reason=reason,
                    warning=warning,
                    iterations=fitter.iteration,
                    final_loss=last.get("loss"),
                    seconds=round(time.perf_counter() - start, 3),
                    device=str(fitter.device),
                )
                run.write_metrics(metrics)
                run.write_finals()
                res = scene.output.mesh_resolution
                vertices, faces = extract_mesh(fitter.field, res, scene.march.bound_radius)
                write_mesh(folder.mesh, vertices, faces)
    return FitResult(folder.path, status, fitter.iteration, metrics, reason, fitter.field, warning)


def check_resumable(folder: RunFolder, scene: Scene) -> None:
    """A resume may change only [optim] and [output] of the run's scene."""
    saved = load_scene(folder.scene)
    for section in RESUME_FIXED:
        if getattr(saved, section) != getattr(scene, section):
            raise WarpsdfError(
                f"{folder.path}: cannot resume, [{section}] differs from the run's "
                f"{RunFolder.SCENE} (only [optim] and [output] may change)"
            )


def train(
    run: RunRecorder,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    snapshots: bool = True,
) -> tuple[RunStatus, str]:
    """Step ``run.fitter`` to ``optim.iterations`` in chunks (see :func:`fit`),
    logging every step, with GIF frames (``snapshots``) and checkpoints on
    their multiples and a last checkpoint at the end. Returns the status and
    its reason."""
    fitter = run.fitter
    scene = fitter.scene
    total = scene.optim.iterations
    out = scene.output
    every = (out.log_every, out.snapshot_every, out.checkpoint_every)
    status, reason = RunStatus.FINISHED, ""
    step_seconds = 0.0  # measured by the last chunk
    saved_at = -1  # the iteration of the last checkpoint written
    while fitter.iteration < total:
        k = chunk_length(fitter.iteration, total, every)
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
        if snapshots and done % out.snapshot_every == 0:
            run.snapshot()
        if done % out.checkpoint_every == 0:
            run.save_checkpoint()
            saved_at = done
        if should_stop is not None and should_stop():
            if done < total:
                status, reason = RunStatus.INTERRUPTED, f"stopped after iteration {done}"
            break
    if fitter.iteration != saved_at or status is RunStatus.DIVERGED:
        run.save_checkpoint()
    return status, reason
