"""Commands over many runs: batch (sweeps), report, and the benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from warpsdf.bench import (
    DEFAULT_ITERATIONS,
    DEFAULT_RESOLUTION,
    QUICK,
    CaseKind,
    all_cases,
    parse_case,
)
from warpsdf.cli.common import ForceFileOption, app, console, parse_resolution, q, user_errors
from warpsdf.errors import WarpsdfError

# ---------------------------------------------------------------------------
# batch and report
# ---------------------------------------------------------------------------


@app.command()
@user_errors
def batch(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (TOML): a base scene and points.")],
    workers: Annotated[
        int,
        typer.Option("--workers", "-w", help="Local worker processes (one GPU each if several)."),
    ] = 1,
    executor: Annotated[
        str, typer.Option("--executor", help="local (worker processes) or ray (Ray tasks).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster HOST:PORT (default: a local Ray).")
    ] = None,
    gpus_per_task: Annotated[
        float, typer.Option("--gpus-per-task", help="Ray: GPUs each task asks for (0 = CPU).")
    ] = 0.0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (default: the file's out).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-run points that already finished.")
    ] = False,
) -> None:
    """Run a sweep: one run folder per point, then summary.csv, summary.json,
    contact_sheet.png and loss_curves.png. Finished points are skipped on a
    re-run; a point that fails is recorded and the others go on."""
    # imported here, as in the other commands: the CLI starts without loading them
    import dataclasses

    from rich.table import Table

    from warpsdf.sweep import PointResult, PointStatus, load_sweep, parse_executor, run_sweep

    status_style = {
        PointStatus.CONVERGED: "green",
        PointStatus.NOT_CONVERGED: "yellow",
        PointStatus.DIVERGED: "red",
        PointStatus.FAILED: "bold red",
    }
    if workers <= 0:
        raise WarpsdfError(f"--workers {workers}: expected a value > 0")
    executor = parse_executor(executor)
    if gpus_per_task < 0:
        raise WarpsdfError(f"--gpus-per-task {gpus_per_task:g}: expected a value >= 0")
    sweep = load_sweep(sweep_file)
    if out is not None:
        sweep = dataclasses.replace(sweep, out=out)
    console.print(
        f"sweep [bold]{q(sweep.name)}[/]: {len(sweep.points)} point(s) of {q(sweep.base.name)} "
        f"-> {q(sweep.out)} [dim]({executor}, {workers} worker(s))[/]"
    )

    def on_result(r: PointResult) -> None:
        style = status_style[r.status]
        iou = r.metrics.get("train_iou")
        extra = f" IoU {iou:.4f}" if iou is not None else ""
        why = f" [dim]{q(r.reason)}[/]" if r.reason else ""
        tag = "skipped (finished before)" if r.skipped else f"{r.seconds:.1f} s"
        status = f"[{style}]{r.status.value}[/]"
        console.print(f"  {r.index:03d} {q(r.label)}: {status}{extra} ({tag}){why}")

    results = run_sweep(
        sweep, executor=executor, workers=workers, force=force, address=address,
        gpus_per_task=gpus_per_task, on_result=on_result,
    )  # fmt: skip
    table = Table(title=f"{q(sweep.name)} summary", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("point")
    table.add_column("status")
    for m in ("train_iou", "heldout_iou", "final_loss"):
        table.add_column(m.replace("_", " "), justify="right")
    for r in results:
        style = status_style[r.status]
        table.add_row(
            str(r.index), q(r.label), f"[{style}]{r.status.value}[/]",
            *(f"{r.metrics[m]:.4g}" if r.metrics.get(m) is not None else "-"
              for m in ("train_iou", "heldout_iou", "final_loss")),
        )  # fmt: skip
    console.print(table)
    f = sweep.folder
    written = ", ".join((f.SUMMARY_CSV, f.SUMMARY_JSON, f.CONTACT_SHEET, f.LOSS_CURVES))
    console.print(f"wrote {q(f.path)}/{written}")
    if all(r.status is PointStatus.FAILED for r in results):  # nothing ran: that is an error
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    source: Annotated[Path, typer.Argument(help="A run folder or a sweep folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    force: ForceFileOption = False,
) -> None:
    """Write a self-contained HTML page (images embedded) of a run or a sweep:
    metrics, loss curves, the optimisation GIF, final renders, and for a sweep
    the summary and contact sheet."""
    from warpsdf.report import write_report  # here: the CLI starts without loading it

    kind = write_report(source, out, force)
    console.print(f"[green]wrote[/] {q(out)} ({kind} report of {q(source)})")


@app.command()
@user_errors
def bench(
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or all.")] = "all",
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case",
            help="render:NAME or fit:NAME, the cases of warpsdf/bench/cases.py (e.g. "
            "render:airplane, fit:mlp; a wrong name lists them all; repeatable; default: all).",
        ),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", help=f"Fit steps timed (default {DEFAULT_ITERATIONS})."),
    ] = None,
    resolution: Annotated[
        str | None,
        typer.Option(
            "--resolution", help=f"Render size: N (square) or WxH (default {DEFAULT_RESOLUTION})."
        ),
    ] = None,
    peak_gflops: Annotated[
        float | None, typer.Option("--peak-gflops", help="Peak FP32 GFLOP/s for the floor.")
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A smoke run in seconds: the quick cases at a tiny size "
            "(checks an install; the numbers mean little).",
        ),
    ] = False,
) -> None:
    """Benchmarks as JSON lines: renders (Mrays/s) and fits (it/s, rays/s, per-phase
    ms, peak memory, FLOP floor). Also: python -m benchmarks."""
    import json

    from warpsdf.bench.measure import bench_fit, bench_render, devices

    if quick and (iterations is not None or resolution is not None):
        raise WarpsdfError("--quick sets its own --iterations and --resolution: drop them")
    if quick:
        iterations, resolution, extra = QUICK.iterations, str(QUICK.resolution), QUICK.fit_overrides
    else:
        iterations = DEFAULT_ITERATIONS if iterations is None else iterations
        resolution, extra = resolution or str(DEFAULT_RESOLUTION), None
    chosen = [parse_case(c) for c in (case or (QUICK.cases if quick else all_cases()))]
    if iterations <= 0:
        raise WarpsdfError(f"--iterations {iterations}: expected a value > 0")
    width, height = parse_resolution(resolution)
    for dev in devices(device):
        for kind, name in chosen:
            line = (
                bench_render(name, dev, width, height)
                if kind is CaseKind.RENDER
                else bench_fit(name, dev, iterations, extra, peak_gflops)
            )
            typer.echo(json.dumps(line))
