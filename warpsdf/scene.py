"""Scene files: TOML -> validated, frozen dataclasses (DESIGN §4).

A scene says what the target is, how it is seen, what model is fitted and
how. Every key has a documented default except the target. The loader is
driven by the dataclass fields below: each field's type is checked, its
``doc`` (unit and meaning) is what ``warpsdf validate`` and the templates
show, and its ``check`` is a value constraint such as "> 0".

Errors name the file, the key and what was expected, and suggest the closest
valid key for a typo. ``--set section.key=value`` overrides go through the same
checks as the file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from warpsdf.errors import SceneError
from warpsdf.io.files import read_toml
from warpsdf.limits import (
    MAX_FREQUENCIES,
    MAX_LAYERS,
    MAX_RAYS,
    MAX_RESOLUTION,
    MAX_TILED_WIDTH,
    MAX_WIDTH,
)

# ---------------------------------------------------------------------------
# Enums (modes are enums, never bare strings or integers)
# ---------------------------------------------------------------------------


class TargetKind(StrEnum):
    SHAPES = "shapes"
    MESH = "mesh"
    IMAGES = "images"


class ShapeType(StrEnum):
    SPHERE = "sphere"
    BOX = "box"
    ROUNDED_BOX = "rounded_box"
    CAPSULE = "capsule"
    TORUS = "torus"
    CYLINDER = "cylinder"


class CombineOp(StrEnum):
    UNION = "union"
    SMOOTH_UNION = "smooth_union"
    SUBTRACT = "subtract"


class Preset(StrEnum):
    AIRPLANE = "airplane"


class CameraLayout(StrEnum):
    SINGLE = "single"
    ORBIT = "orbit"
    FIBONACCI = "fibonacci"
    FILE = "file"


class SupervisionMode(StrEnum):
    SILHOUETTE = "silhouette"
    XYZ = "xyz"
    DEPTH = "depth"


class SilhouetteLoss(StrEnum):
    BCE = "bce"  # binary cross-entropy on the soft mask (divided by alpha, as in IDR)
    MSE = "mse"  # squared error of the soft mask


class PointLoss(StrEnum):
    L1 = "l1"
    MSE = "mse"


class Schedule(StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"  # from lr down to lr * lr_final_ratio
    STEP = "step"  # lr * step_gamma every step_every iterations


class ModelKind(StrEnum):
    SPHERES = "spheres"
    MLP = "mlp"


class MLPKernels(StrEnum):
    """Which kernels evaluate an MLP field (the same network: results agree to rounding)."""

    AUTO = "auto"  # tiled where the width allows it (hidden <= 64), else scalar
    SCALAR = "scalar"  # one point per thread, one atomic per weight and point in the backward
    TILED = "tiled"  # a block of points per tile matrix product (Warp's tile API)


class ModelInit(StrEnum):
    SPHERE = "sphere"  # mlp: geometric initialisation, the SDF starts as a sphere
    RANDOM = "random"  # spheres: centres drawn uniformly inside the bound
    GRID = "grid"  # spheres: centres on a regular grid inside the bound


# ---------------------------------------------------------------------------
# Field metadata helpers
# ---------------------------------------------------------------------------

Vec3 = tuple[float, float, float]


def _opt(default: Any, doc: str, check: str | None = None, *, path: bool = False) -> Any:
    """A scene key: its default, its documentation (unit and meaning), a value check."""
    meta = {"doc": doc, "check": check, "path": path}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _required(doc: str, check: str | None = None) -> Any:
    return field(metadata={"doc": doc, "check": check, "path": False, "required": True})


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------

# Which parameter keys each shape type takes (besides the transform and op keys).
SHAPE_PARAMS: dict[ShapeType, tuple[str, ...]] = {
    ShapeType.SPHERE: ("radius",),
    ShapeType.BOX: ("half_size",),
    ShapeType.ROUNDED_BOX: ("half_size", "corner_radius"),
    ShapeType.CAPSULE: ("radius", "length"),
    ShapeType.TORUS: ("major_radius", "minor_radius"),
    ShapeType.CYLINDER: ("radius", "height"),
}


@dataclass(frozen=True)
class ShapeSpec:
    """One analytic primitive, placed by center/rotation/scale and folded into the
    shapes before it with ``op`` (the first shape's op is ignored)."""

    type: ShapeType = _required("primitive: " + " | ".join(t.value for t in ShapeType))
    center: Vec3 = _opt((0.0, 0.0, 0.0), "world units; translation of the shape")
    rotation_deg: Vec3 = _opt(
        (0.0, 0.0, 0.0), "degrees; rotation about X, then Y, then Z (world axes)"
    )
    scale: float = _opt(1.0, "uniform scale factor", "> 0")
    op: CombineOp = _opt(CombineOp.UNION, "how it joins the shapes before it")
    k: float = _opt(0.05, "world units; blend radius of smooth_union", "> 0")
    radius: float | None = _opt(None, "world units; sphere, capsule and cylinder radius", "> 0")
    half_size: Vec3 | None = _opt(None, "world units; box half extents along x, y, z", "> 0")
    corner_radius: float | None = _opt(None, "world units; rounded_box edge radius", "> 0")
    length: float | None = _opt(
        None, "world units; capsule length between its cap centres (along local Y)", ">= 0"
    )
    height: float | None = _opt(None, "world units; cylinder height (along local Y)", "> 0")
    major_radius: float | None = _opt(None, "world units; torus ring radius (in local XZ)", "> 0")
    minor_radius: float | None = _opt(None, "world units; torus tube radius", "> 0")


@dataclass(frozen=True)
class TargetConfig:
    """What is fitted: analytic shapes, a mesh file or a folder of images."""

    kind: TargetKind = _required("shapes | mesh | images")
    shapes: tuple[ShapeSpec, ...] = _opt((), "kind = shapes: list of primitives")
    preset: Preset | None = _opt(None, "kind = shapes: a built-in object (airplane)")
    path: str | None = _opt(
        None, "kind = mesh: OBJ/PLY/STL/GLB file; kind = images: cameras.json", path=True
    )
    normalize: bool = _opt(True, "kind = mesh: centre and scale the mesh into the bound")
    normalize_fill: float = _opt(
        0.9, "kind = mesh: farthest vertex lands at this fraction of bound_radius", "(0, 1]"
    )


@dataclass(frozen=True)
class CamerasConfig:
    """Where the training views are (DESIGN §2). Ignored for kind = images."""

    layout: CameraLayout = _opt(CameraLayout.SINGLE, "single | orbit | fibonacci | file")
    file: str | None = _opt(None, "layout = file: a cameras.json", path=True)
    count: int = _opt(1, "number of views (orbit, fibonacci)", "> 0")
    distance: float = _opt(2.5, "world units; eye distance from look_at", "> 0")
    fov_deg: float = _opt(40.0, "degrees; vertical field of view", "(0, 180)")
    resolution: tuple[int, int] = _opt((128, 128), "pixels; [width, height]", "> 0")
    jitter: float = _opt(0.0, "world units; camera shake per fitting iteration", ">= 0")
    azimuth_deg: float = _opt(0.0, "degrees; single: eye azimuth, orbit: first azimuth")
    elevation_deg: float = _opt(0.0, "degrees; eye elevation (single, orbit)", "[-90, 90]")
    eye: Vec3 | None = _opt(None, "world units; layout = single: explicit eye position")
    look_at: Vec3 = _opt((0.0, 0.0, 0.0), "world units; point the cameras look at")
    up: Vec3 = _opt((0.0, 1.0, 0.0), "world up direction")


@dataclass(frozen=True)
class SupervisionConfig:
    """Which target images the fit uses and how much each loss term weighs."""

    mode: tuple[SupervisionMode, ...] = _opt(
        (SupervisionMode.SILHOUETTE,), "any of: silhouette, xyz, depth"
    )
    weights: dict[str, float] = _opt(
        {},
        "loss weight per mode (default 1.0 each); silhouette also weighs the mask term "
        "that xyz and depth fits use off the surface",
        ">= 0",
    )
    silhouette_loss: SilhouetteLoss = _opt(SilhouetteLoss.BCE, "bce | mse on the soft mask")
    xyz_loss: PointLoss = _opt(PointLoss.L1, "l1 | mse on surface points (and depth)")


@dataclass(frozen=True)
class ModelConfig:
    """The field that is fitted."""

    kind: ModelKind = _opt(ModelKind.MLP, "spheres | mlp")
    hidden: int = _opt(64, "mlp: hidden layer width", "> 0")
    layers: int = _opt(3, "mlp: number of hidden layers", "> 0")
    fourier_frequencies: int = _opt(6, "mlp: Fourier feature frequencies L", ">= 0")
    init: ModelInit | None = _opt(
        None, "mlp: sphere; spheres: random | grid (default: sphere for mlp, grid for spheres)"
    )
    init_radius: float = _opt(0.5, "world units; initial sphere radius", "> 0")
    count: int = _opt(2, "spheres: number of spheres", "> 0")
    smooth_k: float = _opt(0.05, "world units; spheres: smooth-min blend radius", ">= 0")
    kernels: MLPKernels = _opt(
        MLPKernels.AUTO, "mlp: auto | tiled | scalar (speed only; tiled takes hidden <= 64)"
    )


@dataclass(frozen=True)
class MarchConfig:
    """Sphere tracing inside the bounding sphere."""

    bound_radius: float = _opt(1.0, "world units; everything lives in this sphere", "> 0")
    clip_back: bool = _opt(True, "a ray leaving through the back wall is a miss (false: march on)")
    max_steps: int = _opt(64, "sphere-tracing steps per ray", "> 0")
    hit_epsilon: float = _opt(1e-3, "world units; SDF value that counts as a hit", "> 0")


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser."""

    iterations: int = _opt(2000, "optimisation steps", "> 0")
    lr: float = _opt(1e-3, "Adam learning rate", "> 0")
    eikonal_weight: float = _opt(0.1, "weight of the eikonal term |grad f| = 1", ">= 0")
    mask_alpha: tuple[float, float] = _opt(
        (50.0, 1600.0), "1/world units; soft-mask sharpness, annealed start -> end", "> 0"
    )
    schedule: Schedule = _opt(Schedule.CONSTANT, "learning-rate schedule: constant | cosine | step")
    lr_final_ratio: float = _opt(0.05, "cosine: final lr as a fraction of lr", "[0, 1]")
    step_every: int = _opt(500, "step: iterations between lr drops", "> 0")
    step_gamma: float = _opt(0.5, "step: lr factor at each drop", "(0, 1]")
    batch_rays: int = _opt(
        0, "rays per iteration, drawn at random; 0 = every pixel of every view", ">= 0"
    )
    eikonal_samples: int = _opt(
        1024, "random points in the bound per iteration for the eikonal term", ">= 0"
    )


@dataclass(frozen=True)
class OutputConfig:
    """Where a fit writes its run folder."""

    dir: str = _opt("", "run folder, relative to the working directory (default runs/NAME)")
    snapshot_every: int = _opt(20, "iterations between frames of the optimisation GIF", "> 0")
    checkpoint_every: int = _opt(100, "iterations between checkpoints", "> 0")
    log_every: int = _opt(10, "iterations between progress updates", "> 0")
    final_scale: int = _opt(4, "final renders at this multiple of the training resolution", "> 0")
    heldout_views: int = _opt(8, "unseen views for the held-out IoU", ">= 0")
    mesh_resolution: int = _opt(128, "marching-cubes grid size for mesh.ply", "[8, 1024]")


@dataclass(frozen=True)
class Scene:
    """A whole scene file, validated and with every default filled in."""

    target: TargetConfig = _required("the target (required)")
    name: str = _opt("", "scene name (default: the file name)")
    seed: int = _opt(0, "random seed", ">= 0")
    cameras: CamerasConfig = _opt(CamerasConfig(), "training views")
    supervision: SupervisionConfig = _opt(SupervisionConfig(), "what the fit compares")
    model: ModelConfig = _opt(ModelConfig(), "the fitted field")
    march: MarchConfig = _opt(MarchConfig(), "sphere tracing")
    optim: OptimConfig = _opt(OptimConfig(), "optimiser")
    output: OutputConfig = _opt(OutputConfig(), "run folder")
    source: str = field(default="", compare=False, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """The resolved scene as plain TOML-ready data (enums as strings, no None)."""
        return _to_plain(self)

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    def replace(self, **changes: Any) -> Scene:
        return dataclasses.replace(self, **changes)


SECTIONS: dict[str, type] = {
    "target": TargetConfig,
    "cameras": CamerasConfig,
    "supervision": SupervisionConfig,
    "model": ModelConfig,
    "march": MarchConfig,
    "optim": OptimConfig,
    "output": OutputConfig,
}

# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_scene(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scene:
    """Read, override and validate a scene file.

    Raises :class:`SceneError` listing every problem, each one line that names
    the file and the key.
    """
    path = Path(path)
    raw = read_toml(path, "scene file", SceneError)
    return scene_from_dict(raw, source=path, overrides=overrides)


def scene_from_dict(
    raw: dict[str, Any],
    source: str | Path = "<scene>",
    overrides: list[str] | tuple[str, ...] = (),
) -> Scene:
    """Validate a parsed scene (e.g. from a sweep) against the schema."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    source = Path(source)
    set_keys = [item.partition("=")[0].strip() for item in overrides]
    builder = _Builder(str(source), base_dir=source.parent, set_keys=set_keys)
    scene = builder.build(Scene, raw, "")
    if builder.problems:
        raise SceneError(builder.problems)
    scene = dataclasses.replace(scene, source=str(source))
    scene = _resolve_defaults(scene, source)
    problems = _cross_checks(scene, str(source))
    if problems:
        raise SceneError(problems)
    return scene


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``'optim.lr=3e-3'`` -> (['optim', 'lr'], 0.003). The value is read as TOML;
    a value that is not valid TOML is taken as a plain string."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SceneError(f"--set {item!r}: expected section.key=value")
    parts: list[str | int] = []
    for piece in key.split("."):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)", piece.strip())
        if not m:
            raise SceneError(f"--set {item!r}: cannot read key {key!r}")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return parts, parsed


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``--set`` override to raw scene data in place."""
    parts, value = parse_override(item)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                where = ".".join(str(p) for p in parts[: i + 1])
                raise SceneError(f"--set {item!r}: {where}: no such list element")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise SceneError(f"--set {item!r}: {part}: not a table")
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise SceneError(f"--set {item!r}: no such list element")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SceneError(f"--set {item!r}: {last}: not a table")


class _Builder:
    """Builds dataclasses from raw TOML data, collecting every problem."""

    def __init__(self, file: str, base_dir: Path, set_keys: list[str] | None = None):
        self.file = file
        self.base_dir = base_dir
        self.set_keys = set_keys or []
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        if any(
            where == k or where.startswith(k + ".") or k.startswith(where + ".")
            for k in self.set_keys
        ):
            message += " (from --set)"
        self.problems.append(
            f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}"
        )

    def build(self, cls: type, raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            self.fail(where, f"expected a table, got {_describe(raw)}")
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields:
                kind = "section" if cls is Scene else "key"
                self.fail(_join(where, key), f"unknown {kind}{_suggest(key, fields)}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            sub = _join(where, name)
            if name not in raw:
                if f.metadata.get("required"):
                    self.fail(sub, f"missing required key ({f.metadata['doc']})")
                continue
            value = self.convert(raw[name], hints[name], sub, f.metadata)
            if value is not _BAD:
                values[name] = value
        if any(f.metadata.get("required") and name not in values for name, f in fields.items()):
            return None
        try:
            return cls(**values)
        except TypeError as err:  # pragma: no cover - a schema bug, not user input
            self.fail(where, str(err))
            return None

    def convert(self, value: Any, tp: Any, where: str, meta: Any) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            return self.convert(value, args[0], where, meta)
        if dataclasses.is_dataclass(tp):
            built = self.build(tp, value, where)
            return _BAD if built is None else built
        if origin is tuple:
            args = typing.get_args(tp)
            if not isinstance(value, list):
                self.fail(where, f"expected a list, got {_describe(value)}")
                return _BAD
            if len(args) == 2 and args[1] is Ellipsis:
                items = [
                    self.convert(v, args[0], f"{where}[{i}]", meta) for i, v in enumerate(value)
                ]
            else:
                if len(value) != len(args):
                    self.fail(where, f"expected a list of {len(args)} values, got {len(value)}")
                    return _BAD
                items = [self.convert(v, a, where, meta) for v, a in zip(value, args, strict=True)]
            return _BAD if any(i is _BAD for i in items) else tuple(items)
        if origin is dict:
            _, vtype = typing.get_args(tp)
            if not isinstance(value, dict):
                self.fail(where, f"expected a table, got {_describe(value)}")
                return _BAD
            out = {}
            for k, v in value.items():
                c = self.convert(v, vtype, _join(where, k), meta)
                if c is _BAD:
                    return _BAD
                out[k] = c
            return out
        if isinstance(tp, type) and issubclass(tp, Enum):
            choices = [e.value for e in tp]
            if not isinstance(value, str) or value not in choices:
                hint = _suggest(value, choices) if isinstance(value, str) else ""
                self.fail(
                    where, f"expected one of {', '.join(choices)}, got {_describe(value)}{hint}"
                )
                return _BAD
            return tp(value)
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(where, f"expected true or false, got {_describe(value)}")
                return _BAD
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(where, f"expected an integer, got {_describe(value)}")
                return _BAD
            return self.check(value, where, meta)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(where, f"expected a number, got {_describe(value)}")
                return _BAD
            if not math.isfinite(value):
                self.fail(where, f"expected a finite number, got {value}")
                return _BAD
            return self.check(float(value), where, meta)
        if tp is str:
            if not isinstance(value, str):
                self.fail(where, f"expected a string, got {_describe(value)}")
                return _BAD
            if meta.get("path"):
                return str((self.base_dir / value).resolve()) if value else value
            return value
        raise TypeError(f"unsupported schema type {tp}")  # pragma: no cover

    def check(self, value: float, where: str, meta: Any) -> Any:
        check = meta.get("check") if meta else None
        if check is None or _satisfies(value, check):
            return value
        self.fail(where, f"expected a value {_check_text(check)}, got {value:g}")
        return _BAD


_BAD = object()


def _satisfies(value: float, check: str) -> bool:
    if check == "> 0":
        return value > 0
    if check == ">= 0":
        return value >= 0
    m = re.fullmatch(r"([\[(])\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*([\])])", check)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        ok_lo = value >= lo if m.group(1) == "[" else value > lo
        ok_hi = value <= hi if m.group(4) == "]" else value < hi
        return ok_lo and ok_hi
    raise ValueError(f"unknown check {check!r}")  # pragma: no cover


def _check_text(check: str) -> str:
    return check if check[0] in "<>" else f"in {check}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value:g} (a number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _suggest(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _resolve_defaults(scene: Scene, source: Path) -> Scene:
    """Fill defaults that depend on other keys."""
    name = scene.name or source.stem
    model = scene.model
    if model.init is None:
        init = ModelInit.SPHERE if model.kind is ModelKind.MLP else ModelInit.GRID
        model = dataclasses.replace(model, init=init)
    weights = {SupervisionMode.SILHOUETTE.value: 1.0} | {
        m.value: 1.0 for m in scene.supervision.mode
    }
    weights.update(scene.supervision.weights)
    supervision = dataclasses.replace(scene.supervision, weights=weights)
    output = scene.output
    if not output.dir:
        output = dataclasses.replace(output, dir=str(Path("runs") / name))
    return dataclasses.replace(
        scene, name=name, model=model, supervision=supervision, output=output
    )


def _cross_checks(scene: Scene, file: str) -> list[str]:
    """Constraints that involve more than one key."""
    problems: list[str] = []

    def fail(where: str, message: str) -> None:
        problems.append(f"{file}: {where}: {message}")

    t = scene.target
    if t.kind is TargetKind.SHAPES:
        if not t.shapes and t.preset is None:
            fail("target.shapes", "kind = shapes needs at least one shape or a preset")
        for i, shape in enumerate(t.shapes):
            problems.extend(_shape_problems(shape, f"{file}: target.shapes[{i}]"))
    elif t.kind is TargetKind.MESH:
        if not t.path:
            fail("target.path", "kind = mesh needs path = a mesh file (OBJ, PLY, STL, GLB)")
        elif not Path(t.path).is_file():
            fail("target.path", f"mesh file not found: {t.path}")
    elif t.kind is TargetKind.IMAGES:
        if not t.path:
            fail("target.path", "kind = images needs path = a cameras.json")
        elif not Path(t.path).is_file():
            fail("target.path", f"cameras.json not found: {t.path}")
    if t.kind is not TargetKind.SHAPES and (t.shapes or t.preset is not None):
        fail("target.shapes", f"shapes and preset only apply to kind = shapes, not {t.kind.value}")

    c = scene.cameras
    if t.kind is not TargetKind.IMAGES:
        if c.layout is CameraLayout.FILE:
            if not c.file:
                fail("cameras.file", "layout = file needs file = a cameras.json")
            elif not Path(c.file).is_file():
                fail("cameras.file", f"cameras.json not found: {c.file}")
        if c.layout is CameraLayout.SINGLE and c.count != 1:
            fail("cameras.count", f"layout = single has exactly 1 camera, got count = {c.count}")
    width, height = c.resolution
    if max(width, height) > MAX_RESOLUTION:
        fail(
            "cameras.resolution",
            f"expected at most {MAX_RESOLUTION} pixels a side, got {list(c.resolution)}",
        )
    elif c.count * width * height > MAX_RAYS:
        fail(
            "cameras.count",
            f"{c.count} views of {width}x{height} are {c.count * width * height:,} rays; "
            f"expected at most {MAX_RAYS:,}",
        )
    bound = scene.march.bound_radius
    if t.kind is not TargetKind.IMAGES and c.layout is not CameraLayout.FILE:
        if c.eye is not None:
            eye_distance = math.sqrt(sum(v * v for v in c.eye))
            if eye_distance <= bound:
                fail(
                    "cameras.eye",
                    f"the eye is inside the bounding sphere (|eye| = {eye_distance:g} <= "
                    f"march.bound_radius = {bound:g}); move it out",
                )
        else:
            look = math.sqrt(sum(v * v for v in c.look_at))
            if c.distance - look <= bound:
                fail(
                    "cameras.distance",
                    f"expected a value > march.bound_radius + |look_at| ({bound + look:g}) so "
                    f"the cameras are outside the bounding sphere, got {c.distance:g}",
                )
    if not any(v != 0 for v in c.up):
        fail("cameras.up", "expected a non-zero vector")
    if c.eye is not None and c.layout is not CameraLayout.SINGLE:
        fail("cameras.eye", "eye only applies to layout = single")
    if c.eye is not None and sum((a - b) ** 2 for a, b in zip(c.eye, c.look_at, strict=True)) == 0:
        fail("cameras.eye", "eye and look_at are the same point")

    s = scene.supervision
    if not s.mode:
        fail("supervision.mode", "expected at least one of silhouette, xyz, depth")
    if len(set(s.mode)) != len(s.mode):
        fail("supervision.mode", "a mode is listed twice")
    modes = {m.value for m in s.mode} | {SupervisionMode.SILHOUETTE.value}  # the mask term
    for key in s.weights:
        if key not in modes:
            fail(
                f"supervision.weights.{key}",
                f"not a supervised mode (mode = {sorted(modes)}){_suggest(key, modes)}",
            )

    m = scene.model
    allowed = {
        ModelKind.MLP: {ModelInit.SPHERE},
        ModelKind.SPHERES: {ModelInit.RANDOM, ModelInit.GRID},
    }
    if m.init not in allowed[m.kind]:
        choices = " | ".join(sorted(i.value for i in allowed[m.kind]))
        fail("model.init", f"expected {choices} for kind = {m.kind.value}, got {m.init.value!r}")
    if m.init_radius >= scene.march.bound_radius:
        fail(
            "model.init_radius",
            f"expected a value < march.bound_radius ({scene.march.bound_radius:g}), "
            f"got {m.init_radius:g}",
        )
    if m.kind is ModelKind.MLP:
        for key, value, top in (
            ("hidden", m.hidden, MAX_WIDTH),
            ("layers", m.layers, MAX_LAYERS),
            ("fourier_frequencies", m.fourier_frequencies, MAX_FREQUENCIES),
        ):
            if value > top:
                fail(f"model.{key}", f"expected a value <= {top}, got {value}")
        if m.kernels is MLPKernels.TILED and m.hidden > MAX_TILED_WIDTH:
            fail(
                "model.kernels",
                f"tiled kernels take hidden <= {MAX_TILED_WIDTH}, got hidden = {m.hidden} "
                "(use auto or scalar)",
            )
    a0, a1 = scene.optim.mask_alpha
    if a1 < a0:
        fail("optim.mask_alpha", f"expected [start, end] with end >= start, got [{a0:g}, {a1:g}]")
    return problems


def _shape_problems(shape: ShapeSpec, where: str) -> list[str]:
    problems: list[str] = []
    wanted = SHAPE_PARAMS[shape.type]
    all_params = {k for keys in SHAPE_PARAMS.values() for k in keys}
    for key in sorted(all_params):
        given = getattr(shape, key) is not None
        if key in wanted and not given:
            problems.append(
                f"{where}.{key}: missing (type = {shape.type.value} needs {', '.join(wanted)})"
            )
        elif key not in wanted and given:
            problems.append(
                f"{where}.{key}: not a parameter of type = {shape.type.value} "
                f"(expected {', '.join(wanted)})"
            )
    sized = shape.half_size and shape.corner_radius
    if (
        shape.type is ShapeType.ROUNDED_BOX
        and sized
        and shape.corner_radius >= min(shape.half_size)
    ):
        problems.append(
            f"{where}.corner_radius: expected a value < the smallest half_size "
            f"({min(shape.half_size):g}), got {shape.corner_radius:g}"
        )
    radii = shape.major_radius and shape.minor_radius
    if shape.type is ShapeType.TORUS and radii and shape.minor_radius >= shape.major_radius:
        problems.append(
            f"{where}.minor_radius: expected a value < major_radius "
            f"({shape.major_radius:g}), got {shape.minor_radius:g}"
        )
    return problems


# ---------------------------------------------------------------------------
# Writing and describing
# ---------------------------------------------------------------------------


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("internal"):
                continue
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[f.name] = _to_plain(value)
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def describe_keys() -> list[tuple[str, str, str]]:
    """Every scene key as (key, default, doc), for help texts and templates."""
    rows: list[tuple[str, str, str]] = []
    for f in dataclasses.fields(Scene):
        if f.metadata.get("internal") or f.name in SECTIONS:
            continue
        rows.append((f.name, _default_text(f), f.metadata["doc"]))
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            rows.append((f"{section}.{f.name}", _default_text(f), f.metadata["doc"]))
    for f in dataclasses.fields(ShapeSpec):
        rows.append((f"target.shapes[].{f.name}", _default_text(f), f.metadata["doc"]))
    return rows


def _default_text(f: dataclasses.Field) -> str:
    if f.metadata.get("required"):
        return "(required)"
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:  # pragma: no cover
        return ""
    if value is None or value == "" or value == {} or value == ():
        return "-"
    return _toml_value(_to_plain(value))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")  # pragma: no cover


def dumps_toml(data: dict[str, Any]) -> str:
    """Write scene-shaped data (top-level scalars, then one table per section) as
    TOML. Lists of tables (shapes) are written one inline table per line."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if not isinstance(table, dict):
            continue
        lines += ["", f"[{section}]"]
        for key, value in table.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"{key} = [")
                lines += [f"    {_toml_value(v)}," for v in value]
                lines.append("]")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
