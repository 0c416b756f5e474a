"""Time to quality (issue 11): how fast each way of fitting reaches what the
silhouettes hold, against the visual hull carved from the same masks.

A *quality scene* is a target seen by ``views`` Fibonacci training cameras at
``resolution`` pixels, fitted from silhouettes only, with ``heldout`` unseen
views for the held-out IoU. A *run* steps a fit for a wall-clock budget; the
fit's clock stops while the run measures the held-out IoU at evenly spaced
moments, so the curve is held-out IoU against fitting time alone. At the end
the field is scored against the target's surface (:func:`warpsdf.metrics.
score_surface`: held-out IoU, Chamfer-L1, F-score).

Targets: the airplane preset, the shipped torus-and-ball mesh, and two meshes
built here (:func:`build_meshes`) with concavities and thin parts: a cup (a
hollow cylinder, open at the top, with a thin ring handle) and a stool (a
thin seat on four thin legs joined by a crossbar). They are marching-cubes
meshes of analytic shapes, written as PLY files with trimesh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warpsdf.bench.cases import shipped_scene
from warpsdf.camera import Camera, heldout_cameras, training_cameras
from warpsdf.export import extract_mesh, write_mesh
from warpsdf.fields.analytic import AnalyticField
from warpsdf.fields.base import Field
from warpsdf.fit import Fitter
from warpsdf.march import Polish
from warpsdf.metrics import mask_iou, score_surface, target_surface, trace_views
from warpsdf.scene import Scene, scene_from_dict
from warpsdf.targets import Target, build_target

QUALITY_TARGETS = ("airplane", "torus_ball", "cup", "stool")
# held-out IoU is measured at this many evenly spaced moments of a run's budget
CURVE_POINTS = 12
# the hull's held-out IoU fractions whose reaching time a run reports
HULL_FRACTIONS = (0.95, 0.99)
# How a run's seconds are counted: wall-clock, or the CPU time of the process
# (all its threads: on a shared machine, the work done, not the wait for a core)
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
# the built meshes are marching-cubes meshes at this lattice size
BUILT_MESH_RESOLUTION = 192


def _shape(kind: str, **keys) -> dict:
    return {"type": kind, **keys}


# Analytic shapes of the built meshes (world units, inside the unit bound).
BUILT_SHAPES: dict[str, list[dict]] = {
    "cup": [
        _shape("cylinder", center=[0.0, -0.05, 0.0], radius=0.38, height=0.8),
        # the hollow: open at the top, a floor 0.08 thick, walls 0.05 thick
        _shape("cylinder", center=[0.0, 0.04, 0.0], radius=0.33, height=0.8, op="subtract"),
        # a thin ring handle on the side
        _shape(
            "torus",
            center=[0.52, -0.05, 0.0],
            rotation_deg=[90.0, 0.0, 0.0],
            major_radius=0.17,
            minor_radius=0.035,
            op="union",
        ),
    ],
    "stool": [
        _shape("box", center=[0.0, 0.3, 0.0], half_size=[0.45, 0.035, 0.45]),
        *(
            _shape("capsule", center=[x, -0.15, z], radius=0.035, length=0.8, op="union")
            for x in (-0.38, 0.38)
            for z in (-0.38, 0.38)
        ),
        _shape("box", center=[0.0, -0.3, 0.0], half_size=[0.38, 0.025, 0.025], op="union"),
    ],
}


def build_meshes(folder: str | Path, names: tuple[str, ...] = ("cup", "stool")) -> dict[str, Path]:
    """Write the built meshes as ``folder/NAME.ply`` (kept when present: they
    are deterministic) and return their paths."""
    folder = Path(folder)
    paths = {}
    for name in names:
        path = folder / f"{name}.ply"
        if not path.is_file():
            data = {"target": {"kind": "shapes", "shapes": BUILT_SHAPES[name]}}
            scene = scene_from_dict(data, source=folder / f"{name}.toml")
            shapes = AnalyticField(list(scene.target.shapes), device="cpu")
            vertices, faces = extract_mesh(shapes, BUILT_MESH_RESOLUTION, 1.0)
            write_mesh(path, vertices, faces)
        paths[name] = path
    return paths


def target_section(name: str, folder: str | Path) -> dict:
    """The ``[target]`` of a quality target (built meshes go in ``folder``)."""
    if name == "airplane":
        return {"kind": "shapes", "preset": "airplane"}
    if name == "torus_ball":
        return {"kind": "mesh", "path": str(shipped_scene("meshes/torus_ball.ply"))}
    if name in BUILT_SHAPES:
        return {"kind": "mesh", "path": str(build_meshes(folder, (name,))[name])}
    raise ValueError(f"unknown quality target {name!r}: expected one of {QUALITY_TARGETS}")


# The mlp kind as scenes/airplane.toml fits it (issue 11 measured these
# settings): its defaults march every ray of every view each step, about 40 s
# a step for 24 views at 128^2 on one CPU thread. The peer runs the same scene.
KIND_SETTINGS: dict[str, dict[str, dict]] = {
    "mlp": {
        "model": {"hidden": 64, "layers": 3, "fourier_frequencies": 3},
        "optim": {"lr": 3e-3, "schedule": "cosine", "batch_rays": 4096, "eikonal_weight": 0.1},
    },
}


def quality_scene(
    target: str,
    kind: str,
    folder: str | Path,
    resolution: int = 128,
    views: int = 24,
    heldout: int = 8,
    overrides: dict[str, dict] | None = None,
) -> Scene:
    """A silhouette fit of ``target`` by ``model.kind = kind`` from ``views``
    Fibonacci views; every other key keeps the kind's defaults (for mlp,
    :data:`KIND_SETTINGS`) unless ``overrides`` ({section: {key: value}}) sets it."""
    data = {
        "name": f"quality_{target}_{kind}",
        "target": target_section(target, folder),
        "cameras": {"layout": "fibonacci", "count": views, "resolution": [resolution] * 2},
        "supervision": {"mode": ["silhouette"]},
        "model": {"kind": kind},
        "output": {"heldout_views": heldout},
    }
    for settings in (KIND_SETTINGS.get(kind, {}), overrides or {}):
        for section, keys in settings.items():
            data.setdefault(section, {}).update(keys)
    return scene_from_dict(data, source=Path(folder) / f"{data['name']}.toml")


class Judge:
    """Scores of fields and meshes against one quality scene's target: the
    held-out masks and the target's surface are computed once."""

    def __init__(self, scene: Scene, target: Target, device, mesh_resolution: int = 256):
        self.scene, self.target, self.device = scene, target, device
        self.mesh_resolution = mesh_resolution  # fields are meshed this fine for scoring
        self.cameras: list[Camera] = training_cameras(scene)
        count = scene.output.heldout_views
        self.heldout = heldout_cameras(count, self.cameras[0], scene.cameras.look_at)
        truth = trace_views(target.source, self.heldout, scene.march, Polish.NONE)
        self.masks = [t["mask"] for t in truth]
        resolution = max(mesh_resolution, 64)
        self.surface = target_surface(target, scene.march.bound_radius, resolution)

    def heldout_iou(self, source) -> float:
        """Mean mask IoU of a field (or a traceable mesh) on the held-out views."""
        guess = trace_views(source, self.heldout, self.scene.march, Polish.NONE)
        return float(
            np.mean([mask_iou(g["mask"], m) for g, m in zip(guess, self.masks, strict=True)])
        )

    def final(self, source) -> dict:
        """Held-out IoU, Chamfer-L1, F-score (and precision, recall) of a field
        or a mesh (vertices, faces)."""
        return score_surface(
            source, self.scene, self.target, self.cameras, self.mesh_resolution,
            reference=self.surface,
        )  # fmt: skip


@dataclass
class Run:
    """One budgeted run: ``curve`` holds (fitting seconds, held-out IoU)."""

    kind: str
    iterations: int = 0
    seconds: float = 0.0
    curve: list[tuple[float, float]] = field(default_factory=list)
    scores: dict = field(default_factory=dict)

    def time_to(self, level: float) -> float | None:
        """Fitting seconds at the first measured moment at or above ``level``."""
        return next((t for t, iou in self.curve if iou >= level), None)


def budgeted(
    step: Callable[[], int],
    current: Callable[[], Field],
    judge: Judge,
    budget_s: float,
    kind: str,
    points: int = CURVE_POINTS,
    clock: Callable[[], float] = time.perf_counter,
) -> Run:
    """Call ``step`` (it runs some iterations and returns how many) until
    ``budget_s`` seconds of stepping have passed on ``clock`` (:data:`CLOCKS`),
    measuring the held-out IoU of ``current()`` at ``points`` evenly spaced
    moments (outside the clock)."""
    run = Run(kind)
    marks = [budget_s * (k + 1) / points for k in range(points)]
    spent = 0.0
    while marks:
        start = clock()
        run.iterations += step()
        spent += clock() - start
        while marks and spent >= marks[0]:
            marks.pop(0)
            run.curve.append((round(spent, 3), judge.heldout_iou(current())))
    run.seconds = round(spent, 3)
    run.scores = judge.final(current())
    return run


def steps_for_budget(
    scene: Scene, device, budget_s: float, probe_steps: int = 4,
    clock: Callable[[], float] = time.perf_counter,
) -> int:  # fmt: skip
    """How many iterations of ``scene`` fit in ``budget_s`` seconds of ``clock``
    on ``device``: a probe fitter runs one step (compiling its kernels), then
    ``probe_steps`` timed steps."""
    probe = Fitter.from_scene(scene.replace(optim=_with_iterations(scene, 10**6)), device)
    probe.steps(1)
    start = clock()
    probe.steps(probe_steps)
    per_step = (clock() - start) / probe_steps
    return max(1, int(budget_s / per_step))


def _with_iterations(scene: Scene, n: int):
    import dataclasses

    return dataclasses.replace(scene.optim, iterations=n)


def warpsdf_run(
    scene: Scene, judge: Judge, budget_s: float, device, chunk: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> Run:  # fmt: skip
    """A warpsdf fit of ``scene`` in ``budget_s`` seconds of ``clock``: its
    iterations are set so the fit's schedules (learning rate, mask sharpness,
    coarse to fine) end when the budget does."""
    total = steps_for_budget(scene, device, budget_s, clock=clock)
    fitter = Fitter.from_scene(scene.replace(optim=_with_iterations(scene, total)), device)
    chunk = chunk or max(1, total // (4 * CURVE_POINTS))

    def step() -> int:
        k = min(chunk, total - fitter.iteration)
        if k <= 0:
            time.sleep(0)  # the schedule has ended: the budget runs out idle
            return 0
        fitter.steps(k)
        return k

    fitter.steps(1)  # compile outside the clock (a cached run's start)
    run = budgeted(step, lambda: fitter.field, judge, budget_s, scene.model.kind.value,
                   clock=clock)  # fmt: skip
    run.iterations += 1
    return run


def hull_run(scene: Scene, judge: Judge, device, resolution: int = 192) -> Run:
    """The visual hull carved from the scene's training masks at
    ``resolution``^3 (seconds: the carve and its mesh)."""
    from warpsdf.carve import carve_scene

    start = time.perf_counter()
    mesh = carve_scene(scene, resolution, device, target=judge.target).mesh(device)
    run = Run("hull", seconds=round(time.perf_counter() - start, 3))
    run.scores = judge.final(mesh)
    return run


def judge_for(scene: Scene, device, mesh_resolution: int = 256) -> Judge:
    return Judge(scene, build_target(scene, device), device, mesh_resolution)
