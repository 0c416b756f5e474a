"""Sweep planning: the sweep file, parsed and checked, and each point's
resolved scene. Nothing here runs a fit or writes a file.

A sweep file (TOML) names a base scene and the points to run::

    base = "../spheres_bloat.toml"        # relative to the sweep file
    name = "lr_sweep"                     # default: the file name (a plain file name)
    out = "runs/lr_sweep"                 # default: runs/NAME (relative to where you run)

    [set]                                 # overrides for every point
    optim.iterations = 300

    [grid]                                # the cartesian product of these lists
    optim.lr = [1e-2, 1e-1, 1.0]

    [[points]]                            # and/or explicit points
    model.hidden = 32

    [criteria]                            # how the summary judges each point
    converged_iou = 0.95                  # train IoU that counts as converged
    blowup_factor = 10.0                  # loss above this x its first value: diverged

Every point's scene is built and checked by :func:`load_sweep`, before
anything runs, so a typo in the last point stops the sweep up front.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warpsdf.errors import SceneError
from warpsdf.io.files import name_problem
from warpsdf.io.layout import RunFolder, SweepFolder
from warpsdf.io.reading import read_toml
from warpsdf.limits import MAX_NAME_CHARS
from warpsdf.scene import Scene, load_scene, suggest, toml_value

SWEEP_KEYS = {"base", "name", "out", "set", "grid", "points", "criteria"}
CRITERIA_KEYS = {"converged_iou", "blowup_factor"}


@dataclass(frozen=True)
class Criteria:
    """How the summary judges a point (the sweep file's ``[criteria]``)."""

    converged_iou: float = 0.95  # train IoU that counts as converged
    blowup_factor: float = 10.0  # loss above this x its first value: diverged


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its place in the sweep and its own overrides."""

    index: int
    overrides: dict[str, Any]  # dotted scene key -> value

    @property
    def label(self) -> str:
        """Short text for tables and plots, e.g. ``init_radius=0.1, lr=0.05``."""
        if not self.overrides:
            return "base"
        return ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in self.overrides.items())

    @property
    def slug(self) -> str:
        """The point's folder name under ``points/``, e.g. ``000_init_radius-0.1_lr-0.05``:
        a plain file name by construction (letters, digits, ``.+-_``, after the index)."""
        text = "_".join(f"{k.split('.')[-1]}-{_short(v)}" for k, v in self.overrides.items())
        text = re.sub(r"[^A-Za-z0-9.+-]+", "_", text) or "base"
        return f"{self.index:03d}_{text}"[:80]

    def set_items(self) -> list[str]:
        """The point's overrides as ``--set`` strings."""
        return _set_items(self.overrides)


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    path: Path
    name: str
    base: Path
    out: Path
    common: dict[str, Any]
    points: tuple[SweepPoint, ...]
    criteria: Criteria
    # each point's resolved scene, in point order (built and checked once, by load_sweep)
    scenes: tuple[Scene, ...] = field(default=(), compare=False, repr=False)

    @property
    def folder(self) -> SweepFolder:
        """The sweep's output folder (``out``)."""
        return SweepFolder(self.out)

    def point_folder(self, point: SweepPoint) -> RunFolder:
        """The run folder of ``point``, under the sweep folder's ``points/``."""
        return self.folder.point(point.slug)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(_short(v) for v in value)
    return str(value)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1}} -> {"optim.lr": 1}; keys that already hold dots stay."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, full))
        else:
            out[full] = value
    return out


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every point's scene is validated up front."""
    path = Path(path)
    raw = read_toml(path, "sweep file", SceneError)
    for key in raw:
        if key not in SWEEP_KEYS:
            raise SceneError(f"{path}: {key}: unknown key{suggest(key, SWEEP_KEYS)}")
    if not isinstance(raw.get("base"), str):
        raise SceneError(f"{path}: base: missing (the scene file the sweep starts from)")
    base = (path.parent / raw["base"]).resolve()
    if not base.is_file():
        raise SceneError(f"{path}: base: scene file not found: {base}")
    name = raw.get("name", path.stem)
    if problem := name_problem(name):  # it names the folder runs/NAME
        raise SceneError(f"{path}: name: {problem}")
    out = raw.get("out", str(Path("runs") / name))
    if not isinstance(out, str) or not out or "\0" in out:
        raise SceneError(f"{path}: out: expected a folder path, got {out!r:.60}")
    out = Path(out)
    for key in ("set", "grid", "criteria"):
        if key in raw and not isinstance(raw[key], dict):
            raise SceneError(f"{path}: {key}: expected a table")
    common = _flatten(raw.get("set", {}))
    grid = _flatten(raw.get("grid", {}))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SceneError(f"{path}: grid.{key}: expected a non-empty list of values")
    explicit = raw.get("points", [])
    if not isinstance(explicit, list) or not all(isinstance(p, dict) for p in explicit):
        raise SceneError(f"{path}: points: expected [[points]] tables")
    combos: list[dict[str, Any]] = []
    if grid:
        keys = list(grid)
        combos += [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*grid.values())]
    combos += [_flatten(p) for p in explicit]
    if not combos:
        raise SceneError(f"{path}: no points: add a [grid] or [[points]]")
    criteria = _criteria(path, raw.get("criteria", {}))
    points = tuple(SweepPoint(i, c) for i, c in enumerate(combos))
    scenes = []
    for point in points:  # fail early, naming the point, before anything runs
        try:
            scene = load_scene(base, _set_items(common) + point.set_items())
        except SceneError as err:
            raise SceneError(f"{path}: point {point.index} ({point.label}): {err}") from None
        scenes.append(scene.replace(name=point_name(name, point)))
    return Sweep(path, name, base, out, common, points, criteria, tuple(scenes))


def point_name(sweep_name: str, point: SweepPoint) -> str:
    """The scene name of a point's fit: ``SWEEP-SLUG``, a plain file name of at
    most ``MAX_NAME_CHARS`` characters like every scene name."""
    return f"{sweep_name}-{point.slug}"[:MAX_NAME_CHARS]


def _criteria(path: Path, table: dict[str, Any]) -> Criteria:
    for key, value in table.items():
        if key not in CRITERIA_KEYS:
            raise SceneError(
                f"{path}: criteria.{key}: unknown key (expected {sorted(CRITERIA_KEYS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SceneError(f"{path}: criteria.{key}: expected a number > 0, got {value!r}")
    return Criteria(**{k: float(v) for k, v in table.items()})


def _set_items(values: dict[str, Any]) -> list[str]:
    return [f"{k}={toml_value(v)}" for k, v in values.items()]


def point_scene(sweep: Sweep, point: SweepPoint) -> Scene:
    """The resolved scene of one point: base, then [set], then the point's overrides."""
    return sweep.scenes[point.index]
