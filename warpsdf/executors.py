"""Executors that run sweep points: local worker processes, or Ray tasks.

Both call :func:`warpsdf.sweep.run_point` with plain data and hand each
point's result (and its run folder's files) back to the caller as it
finishes.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
from collections.abc import Callable, Iterable
from typing import Any

from warpsdf.errors import WarpsdfError
from warpsdf.sweep import run_point

# the ways a sweep's points can run
EXECUTORS = ("local", "ray")

Payload = dict[str, Any]


def local_devices(workers: int) -> list[str]:
    """One device per worker: distinct GPUs while there are enough, else the
    CPU (or the one GPU) shared."""
    import warp as wp

    gpus = wp.get_cuda_device_count()
    if gpus == 0:
        return ["cpu"] * workers
    return [f"cuda:{i % gpus}" for i in range(workers)]


def run_local(specs: Iterable[Payload], workers: int, on_done: Callable[[Payload], None]) -> None:
    """Run the points in ``workers`` processes (spawned, so each has its own
    Warp context); point k goes to device k mod the workers' devices."""
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
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
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
        import ray
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
        task = ray.remote(num_gpus=gpus_per_task, num_cpus=1)(run_point)
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
    sweep,
    executor: str = "local",
    workers: int = 1,
    force: bool = False,
    address: str | None = None,
    gpus_per_task: float = 0.0,
    on_result: Callable[[Any], None] | None = None,
) -> list:
    """Run every point of ``sweep`` that has not finished yet (all with
    ``force``), store each in its run folder as it finishes, write the summary,
    and return the :class:`~warpsdf.sweep.PointResult` list in point order."""
    import dataclasses

    from warpsdf.errors import OutputError
    from warpsdf.io.files import ensure_parent
    from warpsdf.sweep import finished_result, point_spec, store_point, write_summary

    if executor not in EXECUTORS:  # before anything is written
        raise WarpsdfError(f"--executor {executor!r}: expected {' or '.join(EXECUTORS)}")
    sweep = dataclasses.replace(sweep, out=sweep.out.resolve())  # summaries hold absolute paths
    out = sweep.out
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if (
        out.is_dir()
        and any(out.iterdir())
        and not ((out / "summary.json").is_file() or (out / "points").is_dir())
    ):
        raise OutputError(f"{out}: not a sweep folder and not empty; choose another --out")
    ensure_parent(out / "summary.json")
    results = []
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

    if executor == "local":
        run_local(todo, workers, done)
    else:
        run_ray(todo, done, address=address, gpus_per_task=gpus_per_task)
    results.sort(key=lambda r: r.index)
    write_summary(sweep, results)
    return results
