"""Commands on scene files: validate, new, targets, render, carve."""

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
    parse_resolution,
    q,
    user_errors,
)
from warpsdf.errors import WarpsdfError
from warpsdf.io.layout import ImageFolder
from warpsdf.limits import MAX_CARVE_RESOLUTION, MIN_CARVE_RESOLUTION
from warpsdf.scene import key_help, key_rule
from warpsdf.templates import Template

# ---------------------------------------------------------------------------
# validate / new
# ---------------------------------------------------------------------------


@app.command()
@user_errors
def validate(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    sets: SetOption = None,
) -> None:
    """Check a scene file and what it points to (the mesh file, the image
    folder and every image it names, a cameras.file), and print the scene fully
    resolved (every default filled in), or list every problem found."""
    from warpsdf.scene import load_scene
    from warpsdf.targets import check_target

    resolved = load_scene(scene, sets or [])
    check_target(resolved)
    typer.echo(resolved.to_toml(), nl=False)


@app.command()
@user_errors
def new(
    name: Annotated[
        str, typer.Argument(help="Scene name; writes NAME.toml (or NAME if it ends in .toml).")
    ],
    template: Annotated[
        str, typer.Option("--template", "-t", help=" | ".join(Template) + ".")
    ] = "xyz",
    force: ForceFileOption = False,
) -> None:
    """Write a commented scene file to start from."""
    from warpsdf.io.files import atomic_file, check_new_file
    from warpsdf.templates import template_text, write_example_mesh

    kind = choice(Template, template, "--template")
    if not name.strip() or name.endswith(("/", "\\")) or Path(name).is_dir():
        raise WarpsdfError(f"new {name!r}: expected a scene name such as myscene (not a folder)")
    path = Path(name if name.endswith(".toml") else f"{name}.toml")
    stem = path.stem
    check_new_file(path, force)
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
            f"it reads {q(ImageFolder(path.parent / views).cameras)}: make one with "
            f"[bold]warpsdf targets OTHER.toml --out {q(path.parent / views)}[/]"
        )
    if kind is Template.TRANSFORMS:
        console.print(
            f"it reads the dataset in {q(path.parent / views)}: point target.path at yours, "
            f"or make one with [bold]warpsdf targets OTHER.toml --format transforms --out "
            f"{q(path.parent / views)}[/]"
        )
    console.print(f"next: [bold]warpsdf validate {q(path)}[/]")


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------


@app.command()
@user_errors(memory_hint="lower cameras.resolution or cameras.count")
def targets(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write cameras.json and images into.")
    ],
    sets: SetOption = None,
    device: DeviceOption = "auto",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a non-empty --out folder made by warpsdf (targets, render)."
        ),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="images: cameras.json with masks, xyz and depth (kind = images); "
            "transforms: a NeRF-synthetic dataset (transforms_train.json, transforms_test.json "
            "with the held-out views, RGBA images; kind = transforms).",
        ),
    ] = "images",
) -> None:
    """Write the scene's target as seen by its cameras: cameras.json, mask_NNN.png,
    xyz_NNN.png (16-bit) and depth_NNN.npy (read it back with kind = "images"),
    or with --format transforms a transforms.json dataset (kind = "transforms")."""

    from warpsdf.device import resolve_device
    from warpsdf.io.files import staged_dir
    from warpsdf.io.layout import TransformsFolder
    from warpsdf.scene import TargetKind, load_scene
    from warpsdf.targets import (
        TargetFormat,
        load_image_views,
        target_splits,
        write_image_views,
        write_transforms_views,
    )

    fmt = choice(TargetFormat, fmt, "--format")
    resolved = load_scene(scene, sets or [])
    dev = resolve_device(device)
    start = time.perf_counter()
    # refuses before any work: a non-empty folder without --force, and even with
    # it a folder warpsdf did not make, the current folder or the scene's folder
    with staged_dir(out, force=force, keep=[scene]) as stage:
        with wp.ScopedDevice(dev):
            splits = target_splits(resolved, dev, heldout=fmt is TargetFormat.TRANSFORMS)
        if fmt is TargetFormat.IMAGES:  # every view, held-out ones of image data too
            views = splits["train"] + splits["test"]
            if resolved.target.kind is TargetKind.IMAGES:  # in cameras.json order
                views = load_image_views(resolved.target.path)
            write_image_views(views, stage)
            written = ImageFolder(out).cameras
        else:
            write_transforms_views(splits, stage)
            views = splits["train"] + splits["test"]
            written = TransformsFolder(out).path / TransformsFolder.json_name("train")
    cam = views[0].camera
    console.print(
        f"[green]wrote[/] {len(views)} view(s), {cam.width}x{cam.height}, "
        f"{', '.join(views[0].available())} -> {q(written)} "
        f"[dim]({time.perf_counter() - start:.1f} s on {dev})[/]"
    )


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


@app.command()
@user_errors(memory_hint="lower --resolution (or --turntable frames)")
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
        str,
        typer.Option(
            "--mode",
            "-m",
            help="shaded | mask | xyz | depth | normals | march_end (the xyz where every "
            "ray's march ended: no misses).",
        ),
    ] = "shaded",
    resolution: Annotated[
        str | None,
        typer.Option("--resolution", "-r", help="N or WIDTHxHEIGHT (default: the scene's)."),
    ] = None,
    azimuth: Annotated[
        float | None, typer.Option("--azimuth", help="Degrees; 0 looks from +Z, 90 from +X.")
    ] = None,
    elevation: Annotated[
        float | None,
        typer.Option(
            "--elevation",
            help=f"Degrees above the horizon, {key_rule('cameras.elevation_deg')}.",
        ),
    ] = None,
    distance: Annotated[
        float | None, typer.Option("--distance", help=key_help("cameras.distance"))
    ] = None,
    fov: Annotated[float | None, typer.Option("--fov", help=key_help("cameras.fov_deg"))] = None,
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
        bool,
        typer.Option(
            "--force",
            help="Overwrite an existing --out file, or replace a non-empty --out folder "
            "made by warpsdf (with --cameras).",
        ),
    ] = False,
) -> None:
    """Render a scene's target, or a fitted run, from any view, at any resolution,
    in any mode."""

    from warpsdf.device import resolve_device
    from warpsdf.fit import load_run
    from warpsdf.io.files import check_new_file
    from warpsdf.render import RenderMode
    from warpsdf.scene import load_scene
    from warpsdf.targets import build_target
    from warpsdf.viewing import (
        ViewRequest,
        render_cameras_to_folder,
        render_still,
        render_turntable,
    )

    render_mode = choice(RenderMode, mode, "--mode")
    request = ViewRequest(
        resolution=parse_resolution(resolution), azimuth_deg=azimuth, elevation_deg=elevation,
        distance=distance, fov_deg=fov,
    )  # fmt: skip
    request.check()
    if turntable is not None and not 0 < turntable <= 3600:
        raise WarpsdfError(f"--turntable {turntable}: expected a frame count in [1, 3600]")
    if fps <= 0:  # (every float option is finite: user_errors)
        raise WarpsdfError(f"--fps {fps:g}: expected a value > 0")
    if turntable is not None and cameras is not None:
        raise WarpsdfError("--turntable and --cameras cannot be combined")
    if cameras is None:
        check_new_file(out, force)  # before any work
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
                    f"{source}: target kind {resolved.target.kind.value!r} has no geometry "
                    "to render; "
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
# carve
# ---------------------------------------------------------------------------


@app.command()
@user_errors(memory_hint="lower --resolution (the hull's lattice size)")
def carve(
    scene: Annotated[Path, typer.Argument(help="Scene file (TOML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mesh file: .ply, .obj, .stl or .glb.")],
    resolution: Annotated[
        int,
        typer.Option(
            "--resolution",
            "-r",
            help="Lattice points per axis of the bound's cube, "
            f"[{MIN_CARVE_RESOLUTION}, {MAX_CARVE_RESOLUTION}].",
        ),
    ] = 128,
    sets: SetOption = None,
    device: DeviceOption = "auto",
    force: ForceFileOption = False,
) -> None:
    """Carve the visual hull of the scene's training masks (traced for shapes
    and meshes; an image folder's own masks, without its held-out views) on a
    lattice over the bound, and write its surface as a mesh."""

    from warpsdf.carve import carve_scene, resolution_problem
    from warpsdf.device import resolve_device
    from warpsdf.export import check_mesh_path, write_mesh
    from warpsdf.io.files import check_new_file
    from warpsdf.scene import load_scene

    if problem := resolution_problem(resolution):
        raise WarpsdfError(f"--resolution {resolution}: {problem}")
    check_new_file(check_mesh_path(out), force)  # before any work
    resolved = load_scene(scene, sets or [])
    dev = resolve_device(device)
    start = time.perf_counter()
    with wp.ScopedDevice(dev):
        hull = carve_scene(resolved, resolution, dev)
        vertices, faces = hull.mesh(dev)
    if len(faces) == 0:  # pragma: no cover (a non-empty hull inside the bound has a surface)
        raise WarpsdfError(f"{scene}: the visual hull has no surface inside the bound")
    write_mesh(out, vertices, faces)
    console.print(
        f"[green]wrote[/] {q(out)}: {len(vertices)} vertices, {len(faces)} faces [dim](hull of "
        f"{hull.views} view(s): {hull.voxels:,} of {resolution}^3 voxels inside, "
        f"{time.perf_counter() - start:.1f} s on {dev})[/]"
    )
