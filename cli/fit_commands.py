"""Commands on fits: fit (with the live progress table) and export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import warp as wp

from warpsdf.cli.common import (
    DeviceOption,
    ForceFileOption,
    SetOption,
    app,
    choice,
    console,
    q,
    user_errors,
)
from warpsdf.errors import WarpsdfError
from warpsdf.scene import key_problem, key_rule

# ---------------------------------------------------------------------------
# fit and export
# ---------------------------------------------------------------------------


def _progress_table(rows, total: int, rate):
    """The live table: iteration, loss and each active term, IoU, lr, it/s, ETA
    (``rate``: a :class:`warpsdf.fit.StepRate` of the steps so far)."""
    from rich.table import Table

    from warpsdf.losses import TERM_NAMES

    short = {"silhouette": "sil", "eikonal": "eik"}
    terms = [n for n in TERM_NAMES if any(row[n] for row in rows)]
    table = Table(box=None, pad_edge=False)
    table.add_column("iter", justify="right", no_wrap=True)
    for name in ("loss", *terms, "iou", "lr", "it/s", "eta"):
        table.add_column(short.get(name, name), justify="right", no_wrap=True)
    for row in rows:
        remaining = rate.eta(total - row["iteration"])
        table.add_row(
            f"{row['iteration']}/{total}",
            *(f"{row[name]:.1e}" for name in ("loss", *terms)),
            f"{row['iou']:.4f}",
            f"{row['lr']:.0e}",
            f"{rate.per_second:.1f}",
            _eta(remaining),
        )
    return table


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


@app.command()
@user_errors(
    memory_hint="lower cameras.resolution, cameras.count, model.count or model.hidden, "
    "output.final_scale or output.mesh_resolution"
)
def fit(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: output.dir).")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", "-n", help="Total optimisation steps.")
    ] = None,
    sets: SetOption = None,
    device: DeviceOption = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run folder's checkpoint.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run folder.")] = False,
) -> None:
    """Fit the scene's model to its target, with a live progress table, and fill
    the run folder (checkpoint, log, metrics, loss plot, GIF, renders, mesh).
    Steps run in chunks (at most log_every steps, about 2 s) between readbacks;
    Ctrl-C stops at the end of the current chunk and saves; --resume continues."""
    import signal
    from collections import deque

    from rich.live import Live

    from warpsdf.device import resolve_device
    from warpsdf.fit import RunStatus, StepRate, check_run_folder
    from warpsdf.fit import fit as run_fit
    from warpsdf.scene import load_scene

    if iterations is not None and iterations <= 0:
        raise WarpsdfError(f"--iterations {iterations}: expected a value > 0")
    resolved = load_scene(scene, sets or [])
    total = iterations or resolved.optim.iterations
    run_dir = out or Path(resolved.output.dir)
    dev = resolve_device(device)
    recent: deque = deque(maxlen=8)
    rate = StepRate()
    state = {"stop": False, "first": None, "outputs": False}

    def on_sigint(signum, frame):
        # at once: before the first step is done (kernels may be compiling for a
        # minute; there is nothing new to save), on a second press, or while the
        # outputs are written; else the fit stops after its chunk and saves
        if state["first"] is None or state["stop"] or state["outputs"]:
            raise KeyboardInterrupt
        state["stop"] = True

    check_run_folder(run_dir, resume, force, keep=[scene])  # fail before the live table
    if resume and iterations is not None:
        _print_resume_note(run_dir, resolved, iterations)
    previous = signal.signal(signal.SIGINT, on_sigint)
    every = resolved.output.log_every
    console.print(
        f"fitting [bold]{q(resolved.name)}[/] ({resolved.model.kind.value}) on {dev} "
        f"-> {q(run_dir)}  [dim](Ctrl-C stops and saves)[/]"
    )
    try:
        with Live(_progress_table([], total, rate), console=console, auto_refresh=False) as live:

            def on_step(record) -> None:
                if state["first"] is None:
                    state["first"] = record.iteration
                rate.add(record)
                if record.iteration % every and record.iteration != total:
                    return
                recent.append(record.row())
                live.update(_progress_table(list(recent), total, rate), refresh=True)

            def on_outputs(status) -> None:
                state["outputs"] = True
                what = (
                    "the loss plot and GIF" if status is RunStatus.INTERRUPTED
                    else "metrics, the loss plot, GIF, renders and mesh"
                )  # fmt: skip
                console.print(
                    f"[dim]checkpoint saved; writing {what} "
                    f"({'Ctrl-C again skips them' if state['stop'] else 'Ctrl-C skips them'})[/]"
                )

            with wp.ScopedDevice(dev):
                result = run_fit(
                    resolved, run_dir, iterations=iterations, device=dev, resume=resume,
                    force=force, on_step=on_step, should_stop=lambda: state["stop"],
                    on_outputs=on_outputs,
                )  # fmt: skip
    except KeyboardInterrupt:
        if state["first"] is None:
            before = "the run folder is as it was" if resume else "nothing was saved"
            console.print(f"\n[yellow]interrupted[/] before the first step ended; {before}")
            raise typer.Exit(130) from None
        if not state["outputs"]:
            raise
        console.print(
            f"[yellow]interrupted[/] while writing outputs; the checkpoint in {q(run_dir)} "
            f"is saved. Write them with: [bold]warpsdf fit {q(scene)} --out {q(run_dir)} "
            "--resume[/]"
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print()
    if result.status is RunStatus.INTERRUPTED:
        console.print(
            f"[yellow]interrupted[/] after iteration {result.iteration}; saved {q(run_dir)}. "
            f"Resume with: [bold]warpsdf fit {q(scene)} --out {q(run_dir)} --resume[/]"
        )
        raise typer.Exit(130)
    m = result.metrics
    summary = ", ".join(
        f"{k} {m[k]:.4f}"
        for k in ("train_iou", "heldout_iou", "xyz_error", "chamfer")
        if m.get(k) is not None
    )
    if result.status in (RunStatus.DIVERGED, RunStatus.LOST):
        console.print(
            f"[red]{result.status.value}[/]: {q(result.reason)}; "
            f"kept the last good state in {q(run_dir)}"
            f"{' (' + summary + ')' if summary else ''}"
        )
        raise typer.Exit(1)
    console.print(f"[green]done[/] {result.iteration} iterations -> {q(run_dir)}  {q(summary)}")
    if result.warning:
        console.print(f"[yellow]warning[/]: {q(result.warning)}")


@app.command()
@user_errors(memory_hint="lower --resolution (the grid size)")
def export(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mesh file: .ply, .obj, .stl or .glb.")],
    resolution: Annotated[
        int,
        typer.Option(
            "--resolution",
            "-r",
            help=f"Marching-cubes grid size per axis, {key_rule('output.mesh_resolution')}.",
        ),
    ] = 128,
    device: DeviceOption = "auto",
    force: ForceFileOption = False,
    frame: Annotated[
        str,
        typer.Option(
            "--frame",
            help="world (warpsdf's, inside the bound) or dataset (a transforms.json "
            "target's own frame, from the run's dataset_transform.json).",
        ),
    ] = "world",
) -> None:
    """Export the fitted field's surface as a mesh (marching cubes inside the bound)."""

    from warpsdf.device import resolve_device
    from warpsdf.export import MeshFrame, check_mesh_path, extract_mesh, run_transform, write_mesh
    from warpsdf.fit import load_run
    from warpsdf.io.files import check_new_file

    if problem := key_problem("output.mesh_resolution", resolution):
        raise WarpsdfError(f"--resolution {resolution}: {problem}")
    mesh_frame = choice(MeshFrame, frame, "--frame")
    check_new_file(check_mesh_path(out), force)  # before the slow extraction
    transform = run_transform(run) if mesh_frame is MeshFrame.DATASET else None  # before work
    dev = resolve_device(device)
    start = time.perf_counter()
    with wp.ScopedDevice(dev):
        scene, field = load_run(run, dev)
        vertices, faces = extract_mesh(field, resolution, scene.march.bound_radius)
    if len(faces) == 0:
        raise WarpsdfError(f"{run}: the fitted field has no surface inside the bound")
    if transform is not None:
        vertices = transform.to_dataset(vertices)
    write_mesh(out, vertices, faces)
    console.print(
        f"[green]wrote[/] {q(out)}: {len(vertices)} vertices, {len(faces)} faces "
        f"[dim]({resolution}^3 grid, {time.perf_counter() - start:.1f} s on {dev})[/]"
    )


def _print_resume_note(run_dir: Path, resolved, iterations: int) -> None:
    """Say how a resume with a new --iterations changes the schedules."""
    import dataclasses

    from warpsdf.fit.outputs import read_checkpoint
    from warpsdf.fit.schedule import resume_note
    from warpsdf.io.layout import RunFolder
    from warpsdf.scene import load_scene

    run = RunFolder(run_dir)
    saved = load_scene(run.scene)
    done = int(read_checkpoint(run.checkpoint, ("iteration",))["iteration"])
    scene = resolved.replace(optim=dataclasses.replace(resolved.optim, iterations=iterations))
    if note := resume_note(saved, scene, done):
        console.print(f"[yellow]resuming at iteration {done}[/]: {note}")
