"""The ``warpsdf`` command line: parse, call the library, show the result.

Bad input (a scene, a mesh, an image folder, an output path, a device) ends
with one red line per problem on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Annotated

import typer
import warp as wp
from rich.console import Console
from rich.markup import escape
from rich.text import Text

wp.config.log_level = wp.LOG_WARNING  # no Warp banner or module-load lines in the output

import warpsdf  # noqa: E402  (after the log level)
from warpsdf.errors import OutputError, WarpsdfError  # noqa: E402
from warpsdf.limits import MAX_RESOLUTION  # noqa: E402

app = typer.Typer(
    name="warpsdf",
    help="Fit signed distance functions to images with a differentiable sphere marcher "
    "(NVIDIA Warp), and render the results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def q(value) -> str:
    """User text (paths, names, labels) made safe for Rich markup."""
    return escape(str(value))


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a scene key, e.g. --set optim.lr=3e-3 or --set "
        "target.shapes[0].radius=0.2 (repeatable; checked like the file).",
        metavar="SECTION.KEY=VALUE",
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto (CUDA if present), cpu, cuda or cuda:N."),
]


def user_errors(fn):
    """Turn WarpsdfError into one red line per problem and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WarpsdfError as err:
            for line in str(err).splitlines():
                err_console.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True)
            raise typer.Exit(2) from None
        except MemoryError:
            err_console.print(
                Text.assemble(("error: ", "bold red"), "out of memory: the request is too large "
                              "for this machine (lower the resolution, views or grid size)")
            )  # fmt: skip
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"warpsdf {warpsdf.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """warpsdf: fit SDFs to images and render them."""


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``--resolution`` text (N or WxH) -> (width, height); None stays None.
    Also used by ``python -m benchmarks.render``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not m:
        raise WarpsdfError(
            f"--resolution {text!r}: expected N or WIDTHxHEIGHT, e.g. 256 or 320x240"
        )
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    if w <= 0 or h <= 0:
        raise WarpsdfError(f"--resolution {text!r}: width and height must be > 0")
    if max(w, h) > MAX_RESOLUTION:
        raise WarpsdfError(f"--resolution {text!r}: at most {MAX_RESOLUTION} pixels a side")
    return w, h


# ---------------------------------------------------------------------------
# validate / new
# ---------------------------------------------------------------------------


@app.command()
@user_errors
def validate(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    sets: SetOption = None,
) -> None:
    """Check a scene file and print it fully resolved (every default filled in),
    or list every problem found."""
    from warpsdf.scene import load_scene

    resolved = load_scene(scene, sets or [])
    typer.echo(resolved.to_toml(), nl=False)


@app.command()
@user_errors
def new(
    name: Annotated[
        str, typer.Argument(help="Scene name; writes NAME.toml (or NAME if it ends in .toml).")
    ],
    template: Annotated[
        str, typer.Option("--template", "-t", help="xyz | silhouette | mesh | images.")
    ] = "xyz",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented scene file to start from."""
    from warpsdf.io.files import atomic_file
    from warpsdf.templates import Template, template_text, write_example_mesh

    try:
        kind = Template(template)
    except ValueError:
        choices = ", ".join(t.value for t in Template)
        raise WarpsdfError(f"--template {template!r}: expected one of {choices}") from None
    if not name.strip() or name.endswith(("/", "\\")) or Path(name).is_dir():
        raise WarpsdfError(f"new {name!r}: expected a scene name such as myscene (not a folder)")
    path = Path(name if name.endswith(".toml") else f"{name}.toml")
    stem = path.stem
    if path.exists() and not force:
        raise OutputError(f"{path}: exists (use --force to overwrite)")
    mesh_name = f"{stem}_mesh.ply"
    views = f"{stem}_views"
    text = template_text(kind, stem, path.name, mesh=mesh_name, views=views)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    console.print(f"[green]wrote[/] {q(path)}")
    if kind is Template.MESH:
        mesh_path = path.parent / mesh_name
        if not mesh_path.exists():
            write_example_mesh(mesh_path)
            console.print(
                f"[green]wrote[/] {q(mesh_path)} (an example mesh: replace it with yours)"
            )
    if kind is Template.IMAGES:
        console.print(
            f"it reads {q(path.parent / views)}/cameras.json: make one with "
            f"[bold]warpsdf targets OTHER.toml --out {q(path.parent / views)}[/]"
        )
    console.print(f"next: [bold]warpsdf validate {q(path)}[/]")


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------


@app.command()
@user_errors
def targets(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write cameras.json and images into.")
    ],
    sets: SetOption = None,
    device: DeviceOption = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty --out folder.")
    ] = False,
) -> None:
    """Write the scene's target as seen by its cameras: cameras.json, mask_NNN.png,
    xyz_NNN.png (16-bit) and depth_NNN.npy. Read it back with kind = "images"."""

    from warpsdf.device import resolve_device
    from warpsdf.io.files import staged_dir
    from warpsdf.scene import load_scene
    from warpsdf.targets import target_views, write_image_views

    resolved = load_scene(scene, sets or [])
    dev = resolve_device(device)
    start = time.perf_counter()
    with staged_dir(out, force=force) as stage:  # refuses a non-empty folder before any work
        with wp.ScopedDevice(dev):
            views = target_views(resolved, dev)
        write_image_views(views, stage)
    cam = views[0].camera
    console.print(
        f"[green]wrote[/] {len(views)} view(s), {cam.width}x{cam.height}, "
        f"{', '.join(views[0].available())} -> {q(out)}/cameras.json "
        f"[dim]({time.perf_counter() - start:.1f} s on {dev})[/]"
    )


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


@app.command()
@user_errors
def render(
    source: Annotated[
        Path,
        typer.Argument(
            help="A scene file (renders its target) or a run folder (the fitted field)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output .png or .npy (raw values); .gif with --turntable; "
            "a folder with --cameras.",
        ),
    ],
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="shaded | mask | xyz | depth | normals.")
    ] = "shaded",
    resolution: Annotated[
        str | None,
        typer.Option("--resolution", "-r", help="N or WIDTHxHEIGHT (default: the scene's)."),
    ] = None,
    azimuth: Annotated[
        float | None, typer.Option("--azimuth", help="Degrees; 0 looks from +Z, 90 from +X.")
    ] = None,
    elevation: Annotated[
        float | None, typer.Option("--elevation", help="Degrees above the horizon.")
    ] = None,
    distance: Annotated[
        float | None, typer.Option("--distance", help="Eye distance, world units.")
    ] = None,
    fov: Annotated[
        float | None, typer.Option("--fov", help="Vertical field of view, degrees.")
    ] = None,
    cameras: Annotated[
        Path | None,
        typer.Option(
            "--cameras", help="A cameras.json: one image per camera into the --out folder."
        ),
    ] = None,
    turntable: Annotated[
        int | None, typer.Option("--turntable", help="Frames of a 360° turntable GIF.")
    ] = None,
    fps: Annotated[float, typer.Option("--fps", help="Turntable frames per second.")] = 20.0,
    sets: SetOption = None,
    device: DeviceOption = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty --out folder (with --cameras).")
    ] = False,
) -> None:
    """Render a scene's target, or a fitted run, from any view, at any resolution,
    in any mode."""

    from warpsdf.device import resolve_device
    from warpsdf.render import RenderMode
    from warpsdf.run import load_run
    from warpsdf.scene import load_scene
    from warpsdf.targets import build_target
    from warpsdf.viewing import (
        ViewRequest,
        render_cameras_to_folder,
        render_still,
        render_turntable,
    )

    try:
        render_mode = RenderMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in RenderMode)
        raise WarpsdfError(f"--mode {mode!r}: expected one of {choices}") from None
    request = ViewRequest(
        resolution=parse_resolution(resolution), azimuth_deg=azimuth, elevation_deg=elevation,
        distance=distance, fov_deg=fov,
    )  # fmt: skip
    request.check()
    if turntable is not None and not 0 < turntable <= 3600:
        raise WarpsdfError(f"--turntable {turntable}: expected a frame count in [1, 3600]")
    if fps <= 0:
        raise WarpsdfError(f"--fps {fps:g}: expected a value > 0")
    if turntable is not None and cameras is not None:
        raise WarpsdfError("--turntable and --cameras cannot be combined")
    dev = resolve_device(device)
    start = time.perf_counter()
    with wp.ScopedDevice(dev):
        if source.is_dir():
            if sets:
                raise WarpsdfError("--set applies to scene files, not to run folders")
            resolved, drawable = load_run(source, dev)
        else:
            resolved = load_scene(source, sets or [])
            target = build_target(resolved, dev)
            if not target.renderable:
                raise WarpsdfError(
                    f"{source}: target kind 'images' has no geometry to render; "
                    f"its images are listed in {resolved.target.path}"
                )
            drawable = target.source
        if cameras is not None:
            count = render_cameras_to_folder(
                drawable, resolved, cameras, request, render_mode, out, force
            )
            what = f"{count} image(s) into {out}/"
        elif turntable is not None:
            render_turntable(drawable, resolved, request, render_mode, turntable, fps, out)
            what = f"{turntable}-frame turntable {out}"
        else:
            render_still(drawable, resolved, request, render_mode, out)
            what = str(out)
    console.print(
        f"[green]wrote[/] {q(what)} [dim]({render_mode.value}, "
        f"{time.perf_counter() - start:.1f} s on {dev})[/]"
    )


# ---------------------------------------------------------------------------
# fit and export
# ---------------------------------------------------------------------------


def _progress_table(rows, total: int, rate: float):
    """The live table: iteration, loss and each active term, IoU, lr, it/s, ETA."""
    from rich.table import Table

    from warpsdf.losses import TERM_NAMES

    short = {"silhouette": "sil", "eikonal": "eik"}
    terms = [n for n in TERM_NAMES if any(row[n] for row in rows)]
    table = Table(box=None, pad_edge=False)
    table.add_column("iter", justify="right", no_wrap=True)
    for name in ("loss", *terms, "iou", "lr", "it/s", "eta"):
        table.add_column(short.get(name, name), justify="right", no_wrap=True)
    for row in rows:
        remaining = (total - row["iteration"]) / rate if rate > 0 else 0.0
        table.add_row(
            f"{row['iteration']}/{total}",
            *(f"{row[name]:.1e}" for name in ("loss", *terms)),
            f"{row['iou']:.4f}",
            f"{row['lr']:.0e}",
            f"{rate:.1f}",
            _eta(remaining),
        )
    return table


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"


@app.command()
@user_errors
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
    from warpsdf.run import RunStatus, prepare_run_folder
    from warpsdf.run import fit as run_fit
    from warpsdf.scene import load_scene

    if iterations is not None and iterations <= 0:
        raise WarpsdfError(f"--iterations {iterations}: expected a value > 0")
    resolved = load_scene(scene, sets or [])
    total = iterations or resolved.optim.iterations
    run_dir = out or Path(resolved.output.dir)
    dev = resolve_device(device)
    recent: deque = deque(maxlen=8)
    state = {"stop": False, "first": None}

    def on_sigint(signum, frame):
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True

    prepare_run_folder(run_dir, resume, force)  # fail before the live table starts
    previous = signal.signal(signal.SIGINT, on_sigint)
    every = resolved.output.log_every
    console.print(
        f"fitting [bold]{q(resolved.name)}[/] ({resolved.model.kind.value}) on {dev} "
        f"-> {q(run_dir)}  [dim](Ctrl-C stops and saves)[/]"
    )
    try:
        with Live(_progress_table([], total, 0.0), console=console, auto_refresh=False) as live:

            def on_step(record) -> None:
                if state["first"] is None:
                    state["first"] = (record.iteration, time.perf_counter())
                if record.iteration % every and record.iteration != total:
                    return
                it0, t0 = state["first"]
                elapsed = time.perf_counter() - t0
                rate = (record.iteration - it0) / elapsed if elapsed > 0 else 0.0
                recent.append(record.row())
                live.update(_progress_table(list(recent), total, rate), refresh=True)

            with wp.ScopedDevice(dev):
                result = run_fit(
                    resolved, run_dir, iterations=iterations, device=dev, resume=resume,
                    force=force, on_step=on_step, should_stop=lambda: state["stop"],
                )  # fmt: skip
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
    if result.status is RunStatus.DIVERGED:
        console.print(
            f"[red]diverged[/]: {q(result.reason)}; kept the last good state in {q(run_dir)}"
            f"{' (' + summary + ')' if summary else ''}"
        )
        raise typer.Exit(1)
    console.print(f"[green]done[/] {result.iteration} iterations -> {q(run_dir)}  {q(summary)}")


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mesh file: .ply, .obj, .stl or .glb.")],
    resolution: Annotated[
        int, typer.Option("--resolution", "-r", help="Marching-cubes grid size per axis.")
    ] = 128,
    device: DeviceOption = "auto",
) -> None:
    """Export the fitted field's surface as a mesh (marching cubes inside the bound)."""

    from warpsdf.device import resolve_device
    from warpsdf.export import check_mesh_path, extract_mesh, write_mesh
    from warpsdf.run import load_run

    if not 8 <= resolution <= 1024:
        raise WarpsdfError(f"--resolution {resolution}: expected a value in [8, 1024]")
    check_mesh_path(out)  # before the slow extraction
    dev = resolve_device(device)
    start = time.perf_counter()
    with wp.ScopedDevice(dev):
        scene, field = load_run(run, dev)
        vertices, faces = extract_mesh(field, resolution, scene.march.bound_radius)
    if len(faces) == 0:
        raise WarpsdfError(f"{run}: the fitted field has no surface inside the bound")
    write_mesh(out, vertices, faces)
    console.print(
        f"[green]wrote[/] {q(out)}: {len(vertices)} vertices, {len(faces)} faces "
        f"[dim]({resolution}^3 grid, {time.perf_counter() - start:.1f} s on {dev})[/]"
    )


# ---------------------------------------------------------------------------
# batch and report
# ---------------------------------------------------------------------------

_STATUS_STYLE = {
    "converged": "green",
    "not converged": "yellow",
    "diverged": "red",
    "failed": "bold red",
}


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
    import dataclasses

    from rich.table import Table

    from warpsdf.executors import EXECUTORS, run_sweep
    from warpsdf.sweep import load_sweep

    if workers <= 0:
        raise WarpsdfError(f"--workers {workers}: expected a value > 0")
    if executor not in EXECUTORS:
        raise WarpsdfError(f"--executor {executor!r}: expected {' or '.join(EXECUTORS)}")
    if gpus_per_task < 0:
        raise WarpsdfError(f"--gpus-per-task {gpus_per_task:g}: expected a value >= 0")
    sweep = load_sweep(sweep_file)
    if out is not None:
        sweep = dataclasses.replace(sweep, out=out)
    console.print(
        f"sweep [bold]{q(sweep.name)}[/]: {len(sweep.points)} point(s) of {q(sweep.base.name)} "
        f"-> {q(sweep.out)} [dim]({executor}, {workers} worker(s))[/]"
    )

    def on_result(r) -> None:
        style = _STATUS_STYLE.get(r.status, "white")
        iou = r.metrics.get("train_iou")
        extra = f" IoU {iou:.4f}" if iou is not None else ""
        why = f" [dim]{q(r.reason)}[/]" if r.reason else ""
        tag = "skipped (finished before)" if r.skipped else f"{r.seconds:.1f} s"
        console.print(f"  {r.index:03d} {q(r.label)}: [{style}]{r.status}[/]{extra} ({tag}){why}")

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
        style = _STATUS_STYLE.get(r.status, "white")
        table.add_row(
            str(r.index), q(r.label), f"[{style}]{r.status}[/]",
            *(f"{r.metrics[m]:.4g}" if r.metrics.get(m) is not None else "-"
              for m in ("train_iou", "heldout_iou", "final_loss")),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"wrote {q(sweep.out)}/summary.csv, summary.json, contact_sheet.png, loss_curves.png"
    )
    if all(r.status == "failed" for r in results):  # nothing ran: that is an error
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    source: Annotated[Path, typer.Argument(help="A run folder or a sweep folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
) -> None:
    """Write a self-contained HTML page (images embedded) of a run or a sweep:
    metrics, loss curves, the optimisation GIF, final renders, and for a sweep
    the summary and contact sheet."""
    from warpsdf.report import write_report

    kind = write_report(source, out)
    console.print(f"[green]wrote[/] {q(out)} ({kind} report of {q(source)})")


@app.command()
@user_errors
def bench(
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or all.")] = "all",
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case",
            help="render:NAME or fit:NAME, the cases of warpsdf/bench.py (e.g. render:airplane, "
            "fit:mlp; a wrong name lists them all; repeatable; default: all).",
        ),
    ] = None,
    iterations: Annotated[int, typer.Option("--iterations", help="Fit steps timed.")] = 5,
    resolution: Annotated[
        str, typer.Option("--resolution", help="Render size: N (square) or WxH, e.g. 1920x1080.")
    ] = "512",
    peak_gflops: Annotated[
        float | None, typer.Option("--peak-gflops", help="Peak FP32 GFLOP/s for the floor.")
    ] = None,
) -> None:
    """Benchmarks as JSON lines: renders (Mrays/s) and fits (it/s, rays/s, per-phase
    ms, peak memory, FLOP floor). Also: python -m benchmarks."""
    import json

    from warpsdf.bench import FIT_CASES, RENDER_CASES, bench_fit, bench_render, devices

    known = [f"render:{c}" for c in RENDER_CASES] + [f"fit:{c}" for c in FIT_CASES]
    chosen = case or known
    for c in chosen:
        if c not in known:
            raise WarpsdfError(f"--case {c!r}: expected one of {', '.join(known)}")
    if iterations <= 0:
        raise WarpsdfError(f"--iterations {iterations}: expected a value > 0")
    width, height = parse_resolution(resolution)
    targets = devices(device)
    for dev in targets:
        for c in chosen:
            kind, name = c.split(":")
            line = (
                bench_render(name, dev, width, height)
                if kind == "render"
                else bench_fit(name, dev, iterations, peak_gflops=peak_gflops)
            )
            typer.echo(json.dumps(line))


if __name__ == "__main__":  # pragma: no cover
    app()
