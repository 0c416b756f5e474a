"""The scene schema: enums and frozen dataclasses, one field per scene key (DESIGN §4).

A scene says what the target is, how it is seen, what model is fitted and
how. Every key has a documented default except the target. Each field is the
one source of its key's rules: its type, its ``doc`` (unit and meaning: what
``warpsdf validate``, ``--help`` texts and ``warpsdf new`` templates show) and its
``check``, a value constraint such as "> 0" or "(0, 180)" (see
:mod:`warpsdf.scene.checks`). The loader (:mod:`warpsdf.scene.load`) is driven
by these fields; nothing else restates them.

This module is longer than 450 lines because it declares every scene key, once,
with its default, doc and check: splitting the sections over modules would
scatter the one source of the key rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from warpsdf.limits import (
    MAX_EIKONAL_SAMPLES,
    MAX_FINAL_SCALE,
    MAX_FREQUENCIES,
    MAX_GRID_RESOLUTION,
    MAX_HASH_FEATURES,
    MAX_HASH_LEVELS,
    MAX_HASH_LOG2_SIZE,
    MAX_HASH_RESOLUTION,
    MAX_ITERATIONS,
    MAX_LAYERS,
    MAX_MARCH_STEPS,
    MAX_MESH_RESOLUTION,
    MAX_RAYS,
    MAX_RENDER_PIXELS,
    MAX_RESOLUTION,
    MAX_SPHERES,
    MAX_TILED_WIDTH,
    MAX_VIEWS,
    MAX_WIDTH,
    MIN_HASH_LOG2_SIZE,
    MIN_MESH_RESOLUTION,
)
from warpsdf.scene.toml import dumps_toml, to_plain

# output.final_scale = 0: final renders at the smallest multiple of the
# training resolution whose longer side reaches this many pixels (a 128² fit's
# are 256²: on a CPU a 512² render of a neural field takes 10-25 s)
FINAL_SIDE = 256

# ---------------------------------------------------------------------------
# Enums (modes are enums, never bare strings or integers)
# ---------------------------------------------------------------------------


class TargetKind(StrEnum):
    SHAPES = "shapes"
    MESH = "mesh"
    IMAGES = "images"
    TRANSFORMS = "transforms"

    @property
    def stored_views(self) -> bool:
        """Whether the views and their cameras come from files (an image folder,
        a transforms.json dataset) rather than from a traced target."""
        return self in (TargetKind.IMAGES, TargetKind.TRANSFORMS)


class DatasetSplit(StrEnum):
    """Which split of a transforms.json dataset ``target.heldout_split`` holds
    out (NeRF-synthetic: transforms_test.json / transforms_val.json beside
    transforms_train.json; nerfstudio: its test_filenames / val_filenames)."""

    TEST = "test"
    VAL = "val"
    NONE = "none"


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


# The terms that read where a ray's march ended (its hit point): they need exact
# (polished) hits, and only they give an unrolled march a gradient.
POINT_MODES = frozenset({SupervisionMode.XYZ, SupervisionMode.DEPTH})


class SilhouetteLoss(StrEnum):
    BCE = "bce"  # binary cross-entropy on the soft mask (divided by alpha, as in IDR)
    MSE = "mse"  # squared error of the soft mask


class Background(StrEnum):
    """What the xyz term compares on target background pixels (losses.BackgroundCode)."""

    NONE = "none"  # nothing: xyz and depth only on rays both images hit
    BLACK = "black"  # a predicted hit there is pulled to the colour (-1, -1, -1), clipped
    BACKDROP = "backdrop"  # ... to the ray's exit point on the bound's back wall


class MarchGradient(StrEnum):
    """How a fit differentiates where a ray's march ended (march.GradientCode)."""

    # the hit point alone, re-expressed implicitly (IDR); a miss's end has none
    IMPLICIT = "implicit"
    # through every sphere-tracing step (a naive differentiable marcher): a hit's
    # end, and with supervision.background a miss's too, trains the field at each
    # sample it stepped on
    UNROLLED = "unrolled"


class PointLoss(StrEnum):
    L1 = "l1"
    MSE = "mse"


class Schedule(StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"  # from lr down to lr * lr_final_ratio
    STEP = "step"  # lr * step_gamma every step_every iterations


class RaySampling(StrEnum):
    """How optim.batch_rays rays are drawn each step (warpsdf/fit/focus.py)."""

    UNIFORM = "uniform"  # uniformly, without replacement
    FOCUSED = "focused"  # optim.focus_share where masks disagree or on silhouettes, weighted


class ModelKind(StrEnum):
    SPHERES = "spheres"
    MLP = "mlp"
    GRID = "grid"  # a dense voxel lattice of SDF values (fields/grid.py)
    HASHGRID = "hashgrid"  # a multiresolution hash encoding and a small MLP (fields/hashgrid.py)


class MLPKernels(StrEnum):
    """Which kernels evaluate an MLP field (the same network: results agree to rounding)."""

    AUTO = "auto"  # tiled where the width allows it (hidden <= MAX_TILED_WIDTH), else scalar
    SCALAR = "scalar"  # one point per thread, one atomic per weight and point in the backward
    TILED = "tiled"  # a block of points per tile matrix product (Warp's tile API)


class ModelActivation(StrEnum):
    """The hidden layers' activation of an MLP (fields/mlp_core.ActivationCode in kernels)."""

    SOFTPLUS = "softplus"  # a smooth ReLU; starts as a sphere (geometric initialisation)
    SINE = "sine"  # SIREN: sin(30 z); starts from SIREN's init, zero crossings anywhere


class ModelInit(StrEnum):
    SPHERE = "sphere"  # mlp: geometric initialisation; grid: sampled; the SDF starts as a sphere
    # spheres: centres drawn uniformly inside the bound; mlp: no geometric
    # initialisation (random weights: zero crossings anywhere, fields/mlp_core.random_init;
    # with activation = sine, SIREN's initialisation)
    RANDOM = "random"
    GRID = "grid"  # spheres: centres on a regular grid inside the bound
    # grid (and hashgrid): the signed distance of the visual hull of the training
    # masks (warpsdf.carve, the hull `warpsdf carve` writes), resampled
    VISUAL_HULL = "visual_hull"


# Defaults that depend on model.kind: a key a scene does not give (in its file
# or by --set) takes its kind's value here, else the schema default
# (scene/load.py). A grid or hash grid learns at a higher rate, wants its own
# network size, and on a CPU must sample its rays (values measured in
# BENCHMARKS.md).
KIND_DEFAULTS: dict[ModelKind, dict[str, Any]] = {
    # a hash grid needs only a small network, and about a minute on a CPU; a
    # strong eikonal term on few random points roughens its fine levels
    # (README "Hash grids": how these were measured)
    ModelKind.HASHGRID: {
        "model.hidden": 32,
        "model.layers": 1,
        "optim.iterations": 300,
        "optim.lr": 1e-2,
        "optim.schedule": "cosine",
        "optim.eikonal_weight": 0.003,
        "optim.batch_rays": 2048,
    },
    # a grid learns a value per lattice point: no eikonal term (its random points
    # touch a few values a step, which Adam turns into noise), the smoothness term
    ModelKind.GRID: {
        "optim.iterations": 1200,
        "optim.lr": 1e-2,
        "optim.schedule": "cosine",
        "optim.eikonal_weight": 0.0,
        "optim.batch_rays": 8192,
    },
}


def _by_kind(key: str) -> str:
    """`` (default hashgrid: 0.01)``: the kinds whose default of ``key`` differs
    (doc text)."""
    notes = [f"{k.value}: {d[key]}" for k, d in KIND_DEFAULTS.items() if key in d]
    return f" (default {'; '.join(notes)})" if notes else ""


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
    """A scene key without a default."""
    return field(metadata={"doc": doc, "check": check, "path": False, "required": True})


def _upto(limit: int, low: str = "> 0") -> str:
    """The check of a size: ``"> 0 and <= 65536"`` (its limit from :mod:`warpsdf.limits`)."""
    return f"{low} and <= {limit}"


def _choices(enum: type[StrEnum], sep: str = " | ") -> str:
    """An enum's values as doc text: ``"single | orbit | fibonacci | file"``."""
    return sep.join(e.value for e in enum)


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

    type: ShapeType = _required("primitive: " + _choices(ShapeType))
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

    kind: TargetKind = _required(_choices(TargetKind))
    shapes: tuple[ShapeSpec, ...] = _opt((), "kind = shapes: list of primitives")
    preset: Preset | None = _opt(None, f"kind = shapes: a built-in object ({_choices(Preset)})")
    path: str | None = _opt(
        None,
        "kind = mesh: OBJ/PLY/STL/GLB file; kind = images: cameras.json; kind = "
        "transforms: a transforms.json, or the folder holding transforms.json or "
        "transforms_train.json (relative to the scene file)",
        path=True,
    )
    normalize: bool = _opt(
        True,
        "kind = mesh: centre and scale the mesh into the bound; kind = transforms: "
        "fit the object (a coarse visual hull of the masks) into the bound, the "
        "cameras' mean up turned to +Y; false: use target.scale and target.offset",
    )
    normalize_fill: float = _opt(
        0.9,
        "kind = mesh: farthest vertex lands at this fraction of bound_radius; kind = "
        "transforms: the hull's farthest point does",
        "(0, 1]",
    )
    scale: float = _opt(
        1.0,
        "kind = transforms with normalize = false: world = scale * dataset point + offset",
        "> 0",
    )
    offset: Vec3 = _opt(
        (0.0, 0.0, 0.0), "world units; kind = transforms with normalize = false (see scale)"
    )
    heldout_split: DatasetSplit = _opt(
        DatasetSplit.TEST,
        "kind = transforms: the dataset's split whose views are held out "
        f"({_choices(DatasetSplit)}); training uses its train split",
    )
    downscale: int = _opt(
        1, "kind = transforms: shrink every image by this factor (intrinsics follow)", _upto(64)
    )
    depth_unit_scale: float = _opt(
        1e-3,
        "kind = transforms: dataset units per depth-file unit (nerfstudio's "
        "depth_unit_scale_factor: 1e-3 for millimetres)",
        "> 0",
    )
    heldout: tuple[str | int, ...] = _opt(
        (),
        "kind = images, transforms: training views kept out of training, by name or "
        "0-based index; metrics.json's heldout_iou is the fit's mask IoU on them",
    )


# The [cameras] keys an image target uses (camera shake, and the up direction of
# views rendered around its first camera); the loader resets the others.
IMAGE_CAMERA_KEYS = ("jitter", "up")


@dataclass(frozen=True)
class CamerasConfig:
    """Where the training views are (DESIGN §2). For kind = images only
    IMAGE_CAMERA_KEYS apply (the views come from target.path)."""

    layout: CameraLayout = _opt(CameraLayout.SINGLE, _choices(CameraLayout))
    file: str | None = _opt(
        None, "layout = file: a cameras.json (relative to the scene file)", path=True
    )
    count: int = _opt(1, "number of views (orbit, fibonacci)", _upto(MAX_VIEWS))
    distance: float = _opt(2.5, "world units; eye distance from look_at", "> 0")
    fov_deg: float = _opt(40.0, "degrees; vertical field of view", "(0, 180)")
    resolution: tuple[int, int] = _opt((128, 128), "pixels; [width, height]", _upto(MAX_RESOLUTION))
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
        (SupervisionMode.SILHOUETTE,), f"any of: {_choices(SupervisionMode, ', ')}"
    )
    weights: dict[str, float] = _opt(
        {},
        "loss weight per listed mode (default 1.0 each); only listed modes are "
        "fitted: xyz or depth alone train only on rays both images hit, add "
        "silhouette for the mask term on the rest",
        ">= 0",
    )
    silhouette_loss: SilhouetteLoss = _opt(
        SilhouetteLoss.BCE, f"{_choices(SilhouetteLoss)} on the soft mask"
    )
    xyz_loss: PointLoss = _opt(PointLoss.L1, f"{_choices(PointLoss)} on surface points (and depth)")
    background: Background = _opt(
        Background.NONE,
        f"{_choices(Background)}: the xyz term on the target's background too (a whole-image "
        "loss): a predicted hit there is compared, clipped to [-1, 1], with black (-1, -1, -1) "
        "or with the ray's exit point on the bound's back wall (backdrop); none: xyz only "
        "where both images hit",
    )


@dataclass(frozen=True)
class ModelConfig:
    """The field that is fitted."""

    kind: ModelKind = _opt(ModelKind.MLP, _choices(ModelKind))
    hidden: int = _opt(
        64, "mlp, hashgrid: hidden layer width" + _by_kind("model.hidden"), _upto(MAX_WIDTH)
    )
    layers: int = _opt(
        3, "mlp, hashgrid: number of hidden layers" + _by_kind("model.layers"), _upto(MAX_LAYERS)
    )
    fourier_frequencies: int = _opt(
        6, "mlp: Fourier feature frequencies L", _upto(MAX_FREQUENCIES, ">= 0")
    )
    activation: ModelActivation = _opt(
        ModelActivation.SOFTPLUS,
        f"mlp: the hidden layers' activation, {_choices(ModelActivation)}; sine: a SIREN "
        "(sin(30 z), Sitzmann et al. 2020) starting from its own initialisation (init = "
        "random, its default; not sphere), a field that oscillates with zero crossings "
        "anywhere; usually with fourier_frequencies = 0",
    )
    init: ModelInit | None = _opt(
        None,
        "mlp, grid, hashgrid: sphere | visual_hull (the signed distance of the training "
        "masks' visual hull, as warpsdf carve makes it: a grid samples it, the others are "
        "regressed onto it before the first step; the fit then starts at its finest "
        "stage: coarse_to_fine is not used); mlp: also random (no geometric initialisation: "
        "zero crossings anywhere from the start); spheres: random | grid (default: sphere, "
        "grid for spheres, random for an mlp with activation = sine)",
    )
    init_radius: float = _opt(0.5, "world units; initial sphere radius", "> 0")
    count: int = _opt(2, "spheres: number of spheres", _upto(MAX_SPHERES))
    smooth_k: float = _opt(0.05, "world units; spheres: smooth-min blend radius", ">= 0")
    kernels: MLPKernels = _opt(
        MLPKernels.AUTO,
        f"mlp, hashgrid: auto | tiled | scalar (speed only; tiled takes hidden <= "
        f"{MAX_TILED_WIDTH}; auto: tiled, but scalar for hashgrid on the CPU)",
    )
    grid_resolution: tuple[int, ...] = _opt(
        (32, 64, 96),
        "grid: cells a side of the lattice over the bound's cube, one per coarse-to-fine "
        "stage, increasing (values at the (n + 1)^3 cell corners)",
        _upto(MAX_GRID_RESOLUTION, ">= 2"),
    )
    coarse_to_fine: float = _opt(
        0.5,
        "grid: fraction of optim.iterations after which the last grid_resolution starts; "
        "the coarser stages share it evenly (0: the finest from the start); hashgrid: the "
        "same for its levels (the coarsest quarter starts at once, the others switch on "
        "one by one); not used with init = visual_hull",
        "[0, 1)",
    )
    hash_levels: int = _opt(
        12, "hashgrid: resolution levels L of the encoding", _upto(MAX_HASH_LEVELS)
    )
    hash_features: int = _opt(
        2,
        "hashgrid: features F per level (the network takes L x F inputs, at most 63)",
        _upto(MAX_HASH_FEATURES),
    )
    hash_log2_size: int = _opt(
        14,
        "hashgrid: log2 of the entries T of a level's table; a level whose lattice has "
        "more points is hashed into it",
        f"[{MIN_HASH_LOG2_SIZE}, {MAX_HASH_LOG2_SIZE}]",
    )
    hash_base_resolution: int = _opt(
        16, "hashgrid: cells a side of the coarsest level (over the bound's cube)",
        _upto(MAX_HASH_RESOLUTION),
    )  # fmt: skip
    hash_max_resolution: int | None = _opt(
        None,
        "hashgrid: cells a side of the finest level; the levels between grow by a constant "
        "factor (default: twice the larger side of cameras.resolution)",
        _upto(MAX_HASH_RESOLUTION),
    )


@dataclass(frozen=True)
class MarchConfig:
    """Sphere tracing inside the bounding sphere."""

    bound_radius: float = _opt(1.0, "world units; everything lives in this sphere", "> 0")
    clip_back: bool = _opt(True, "a ray leaving through the back wall is a miss (false: march on)")
    max_steps: int = _opt(64, "sphere-tracing steps per ray", _upto(MAX_MARCH_STEPS))
    hit_epsilon: float = _opt(1e-3, "world units; SDF value that counts as a hit", "> 0")
    gradient: MarchGradient = _opt(
        MarchGradient.IMPLICIT,
        "implicit | unrolled: how the fit differentiates where a ray's march ended: the "
        "hit point alone (implicit), or through every step, training the field at each "
        "sample the ray stepped on (unrolled: the naive differentiable marcher of the "
        "missing-back-wall study; hits are not polished, and with supervision.background a "
        "miss's end point, clipped, meets the target pixel too); needs xyz or depth in "
        "supervision.mode",
    )


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser."""

    iterations: int = _opt(
        2000, "optimisation steps" + _by_kind("optim.iterations"), _upto(MAX_ITERATIONS)
    )
    lr: float = _opt(1e-3, "Adam learning rate" + _by_kind("optim.lr"), "> 0")
    eikonal_weight: float = _opt(
        0.1, "weight of the eikonal term |grad f| = 1" + _by_kind("optim.eikonal_weight"), ">= 0"
    )
    mask_alpha: tuple[float, float] = _opt(
        (50.0, 1600.0),
        "1/world units; soft-mask sharpness, annealed start -> end" + _by_kind("optim.mask_alpha"),
        "> 0",
    )
    schedule: Schedule = _opt(
        Schedule.CONSTANT,
        f"learning-rate schedule: {_choices(Schedule)}" + _by_kind("optim.schedule"),
    )
    lr_final_ratio: float = _opt(0.05, "cosine: final lr as a fraction of lr", "[0, 1]")
    step_every: int = _opt(500, "step: iterations between lr drops", _upto(MAX_ITERATIONS))
    step_gamma: float = _opt(0.5, "step: lr factor at each drop", "(0, 1]")
    batch_rays: int = _opt(
        0,
        "rays per iteration, drawn at random; 0 = every pixel of every view"
        + _by_kind("optim.batch_rays"),
        _upto(MAX_RAYS, ">= 0"),
    )
    ray_sampling: RaySampling = _opt(
        RaySampling.UNIFORM,
        f"{_choices(RaySampling)}: how the batch_rays are drawn; focused draws a share "
        "where the last predicted mask disagrees with the target or on the target's "
        "silhouette edges, importance-weighted so the loss stays unbiased (batch_rays > 0)",
    )
    focus_share: float = _opt(
        0.5, "focused: the share of batch_rays drawn from the focus set, the rest uniform", "[0, 1)"
    )
    eikonal_samples: int = _opt(
        1024,
        "random points in the bound per iteration for the eikonal term",
        _upto(MAX_EIKONAL_SAMPLES, ">= 0"),
    )
    smoothness_weight: float = _opt(
        3e-7,
        "grid: weight of the smoothness term, the squared discrete Laplacian of the lattice "
        "values integrated over the surface (the lattice points within 3 cells of 0): "
        "scale-free, alike at every resolution, 16 pi on any sphere",
        ">= 0",
    )


@dataclass(frozen=True)
class OutputConfig:
    """Where a fit writes its run folder."""

    dir: str = _opt("", "run folder, relative to the working directory (default runs/NAME)")
    snapshot_every: int = _opt(
        20, "iterations between frames of the optimisation GIF", _upto(MAX_ITERATIONS)
    )
    checkpoint_every: int = _opt(100, "iterations between checkpoints", _upto(MAX_ITERATIONS))
    log_every: int = _opt(10, "iterations between progress updates", _upto(MAX_ITERATIONS))
    final_scale: int = _opt(
        0,
        "final renders at this multiple of the training resolution (at most "
        f"{MAX_RESOLUTION} pixels a side, {MAX_RENDER_PIXELS} in all); 0: the smallest "
        f"multiple whose longer side reaches {FINAL_SIDE} pixels",
        _upto(MAX_FINAL_SCALE, ">= 0"),
    )
    heldout_views: int = _opt(
        8,
        "unseen views for the held-out IoU (kind = transforms: at most this many of "
        "the held-out split's views, evenly spaced)",
        _upto(MAX_VIEWS, ">= 0"),
    )
    mesh_resolution: int = _opt(
        128,
        "marching-cubes grid size for mesh.ply",
        f"[{MIN_MESH_RESOLUTION}, {MAX_MESH_RESOLUTION}]",
    )

    def render_scale(self, width: int, height: int) -> int:
        """The multiple of a ``width`` x ``height`` training view the final
        renders are made at: ``final_scale``, or for 0 the smallest whose
        longer side reaches :data:`FINAL_SIDE`."""
        return self.final_scale or max(1, -(-FINAL_SIDE // max(width, height)))


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
        return to_plain(self)

    def to_toml(self) -> str:
        """The resolved scene as TOML text (what ``warpsdf validate`` prints)."""
        notes = {}
        if self.target.kind.stored_views:
            notes["cameras"] = (
                f"target.kind = {self.target.kind.value}: the cameras come from "
                "target.path; of this "
                f"section only {' and '.join(IMAGE_CAMERA_KEYS)} apply"
            )
        return dumps_toml(self.to_dict(), notes)

    def replace(self, **changes: Any) -> Scene:
        """A copy with some sections or keys replaced (no checks run)."""
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
