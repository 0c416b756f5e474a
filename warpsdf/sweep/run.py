"""Sweep running: one point's fit (:func:`run_point`), the executors that run
points in local worker processes or as Ray tasks, and :func:`run_sweep`,
which skips finished points, stores each result as it arrives and writes the
summary.

A point travels as plain data (:func:`point_spec`: its resolved scene as TOML
text) and comes back as plain data (its result and its run folder's files as
bytes), so workers need no shared file system. A worker process calls
:func:`init_worker` before it runs anything; the process that runs the sweep
keeps its own settings (a one-worker sweep runs its points there).
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import multiprocessing
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

import warp as wp

from warpsdf.device import resolve_device
from warpsdf.errors import OutputError, WarpsdfError
from warpsdf.fit import fit
from warpsdf.io.files import ensure_parent, owned_temp_dir, remove_dead_stages, write_marker
from warpsdf.io.layout import RunFolder, holds_only_marker
from warpsdf.scene import scene_from_dict
from warpsdf.sweep.plan import Criteria, Sweep, SweepPoint, point_scene
from warpsdf.sweep.summary import (
    PointResult,
    PointStatus,
    blowup_ratio,
    classify,
    finished_result,
    read_losses,
    store_point,
    write_summary,
)

# plain data in and out of a worker: a point_spec, or run_point's answer
Payload = dict[str, Any]


class Executor(StrEnum):
    """The ways a sweep's points can run."""

    LOCAL = "local"  # worker processes on this machine
    RAY = "ray"  # Ray tasks, on a cluster or a local Ray


def parse_executor(name: str) -> Executor:
    """``name`` as an :class:`Executor`; a one-line error naming the choices otherwise."""
    try:
        return Executor(name)
    except ValueError:
        raise WarpsdfError(f"--executor {name!r}: expected {' or '.join(Executor)}") from None


def init_worker() -> None:
    """Set up a worker process before it runs points: Warp logs warnings only,
    so that every worker does not print Warp's banner and module-load lines.

    This changes the process-wide ``warp.config``, so only worker processes
    call it: the local executor's processes once as they start, a Ray task
    before its point (it is idempotent). Importing this module, or running a
    sweep, changes nothing in the calling process.
    """
    wp.config.log_level = wp.LOG_WARNING


def point_spec(sweep: Sweep, point: SweepPoint) -> Payload:
    """Plain data for :func:`run_point`: the point's resolved scene as TOML text
    (self-contained, so it can run in another process or on another machine)."""
    return {
        "scene_toml": point_scene(sweep, point).to_toml(),
        "index": point.index,
        "label": point.label,
        "overrides": point.overrides,
        "criteria": dataclasses.asdict(sweep.criteria),
    }


# A point's scratch run folder, in the system's temporary folder.
POINT_SCRATCH = "warpsdf-point"


def run_point(spec: Payload) -> Payload:
    """Run one point in a scratch folder and return its result and files.

    The answer is ``{"result": PointResult.to_json(), "files": {name: bytes}}``;
    the caller writes the files into the sweep folder (:func:`store_point`). A
    point that fails is answered with status ``failed`` and its reason, never
    an exception.
    """
    start = time.perf_counter()
    result = PointResult(spec["index"], spec["label"], spec["overrides"], "", PointStatus.FAILED)
    remove_dead_stages(tempfile.gettempdir(), POINT_SCRATCH)  # of killed points
    scratch = owned_temp_dir(tempfile.gettempdir(), POINT_SCRATCH)
    run = RunFolder(scratch / "run")
    files: dict[str, bytes] = {}
    try:
        device = resolve_device(spec.get("device", "auto"))
        result.device = device
        scene = scene_from_dict(tomllib.loads(spec["scene_toml"]), source=run.scene)
        outcome = fit(scene, run.path, device=device, force=True)
        words = ("status", "reason", "warning")
        result.metrics = {k: v for k, v in outcome.metrics.items() if k not in words}
        result.reason = outcome.reason
        losses = read_losses(run)
        criteria = Criteria(**spec["criteria"])
        result.status = classify(outcome.status, outcome.metrics, losses, criteria)
        if result.status is PointStatus.DIVERGED and not result.reason:
            result.reason = f"the loss blew up to {blowup_ratio(losses):.0f}x its first value"
        for file in sorted(run.path.iterdir()):
            if file.is_file():
                files[file.name] = file.read_bytes()
    except WarpsdfError as err:
        result.status, result.reason = PointStatus.FAILED, str(err).splitlines()[0]
    except Exception as err:  # a point's crash must not stop the sweep
        result.status = PointStatus.FAILED
        result.reason = f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = round(time.perf_counter() - start, 3)
    return {"result": result.to_json(), "files": files}


def _run_point_in_worker(spec: Payload) -> Payload:
    """:func:`run_point` in a worker that may not have run :func:`init_worker` yet."""
    init_worker()
    return run_point(spec)


def local_devices(workers: int) -> list[str]:
    """One device per worker: distinct GPUs while there are enough, else the
    CPU (or the one GPU) shared."""
    gpus = wp.get_cuda_device_count()
    if gpus == 0:
        return ["cpu"] * workers
    return [f"cuda:{i % gpus}" for i in range(workers)]


def run_local(specs: Iterable[Payload], workers: int, on_done: Callable[[Payload], None]) -> None:
    """Run the points in ``workers`` processes (spawned, so each has its own
    Warp context, and set up by :func:`init_worker`); point k goes to device
    k mod the workers' devices. One worker runs them here, in this process."""
    specs = list(specs)
    if not specs:
        return
    devices = local_devices(workers)
    for k, spec in enumerate(specs):
        spec["device"] = devices[k % len(devices)]
    if workers <= 1:
        for spec in specs:
            on_done(run_point(spec))
        return
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=init_worker
    ) as pool:
        pending = [pool.submit(run_point, spec) for spec in specs]
        for future in futures.as_completed(pending):
            on_done(future.result())


def run_ray(
    specs: Iterable[Payload],
    on_done: Callable[[Payload], None],
    address: str | None = None,
    gpus_per_task: float = 0.0,
) -> None:
    """Run the points as Ray tasks on an existing cluster (``address``
    HOST:PORT) or on a local Ray started here. With ``gpus_per_task`` each task
    asks Ray for that share of a GPU and runs on CUDA."""
    try:
        import ray  # imported here: Ray is optional (pip install 'warpsdf[ray]')
    except ImportError:
        raise WarpsdfError("--executor ray needs Ray: pip install 'warpsdf[ray]'") from None
    specs = list(specs)
    if not specs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = address or "a local Ray"
            raise WarpsdfError(f"--executor ray: cannot connect to {where} ({err})") from None
    try:
        task = ray.remote(num_gpus=gpus_per_task, num_cpus=1)(_run_point_in_worker)
        for spec in specs:
            spec["device"] = "cuda" if gpus_per_task > 0 else "cpu"
        pending = {task.remote(spec): spec for spec in specs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                on_done(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(
    sweep: Sweep,
    executor: Executor | str = Executor.LOCAL,
    workers: int = 1,
    force: bool = False,
    address: str | None = None,
    gpus_per_task: float = 0.0,
    on_result: Callable[[PointResult], None] | None = None,
) -> list[PointResult]:
    """Run every point of ``sweep`` that has not finished yet (all with
    ``force``), store each in its run folder as it finishes, write the summary,
    and return the :class:`PointResult` list in point order. ``on_result``
    sees each result as it arrives (finished points first)."""
    executor = parse_executor(executor)  # before anything is written
    sweep = dataclasses.replace(sweep, out=sweep.out.resolve())  # summaries hold absolute paths
    folder = sweep.folder
    out = folder.path
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and not holds_only_marker(out) and not folder.is_sweep():
        raise OutputError(f"{out}: not a sweep folder and not empty; choose another --out")
    ensure_parent(folder.summary_json)
    write_marker(out)
    results: list[PointResult] = []
    todo = []
    for point in sweep.points:
        previous = None if force else finished_result(sweep, point)
        if previous is not None:
            results.append(previous)
            if on_result is not None:
                on_result(previous)
        else:
            todo.append(point_spec(sweep, point))

    def done(payload: Payload) -> None:
        result = store_point(sweep, payload)
        results.append(result)
        if on_result is not None:
            on_result(result)

    if executor is Executor.LOCAL:
        run_local(todo, workers, done)
    else:
        run_ray(todo, done, address=address, gpus_per_task=gpus_per_task)
    results.sort(key=lambda r: r.index)
    write_summary(sweep, results)
    return results
