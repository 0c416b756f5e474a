"""Sweeps: many fits of one base scene with different overrides.

A sweep file (TOML) names a base scene and the points to run::

    base = "../spheres_bloat.toml"        # relative to the sweep file
    name = "lr_sweep"                     # default: the file name
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

Each point gets its own run folder under ``OUT/points/``. A point that fails
is recorded with its reason and the others go on; re-running a sweep skips
points whose run folder already finished with the same resolved scene.
Executors (:mod:`warpsdf.executors`) run the points; this module plans them,
runs one point, and summarises.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import shutil
import tempfile
import time
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from warpsdf.errors import SceneError, WarpsdfError
from warpsdf.io.files import atomic_file, json_text, read_toml, staged_dir, write_json
from warpsdf.scene import Scene, _suggest, _toml_value, load_scene

SWEEP_KEYS = {"base", "name", "out", "set", "grid", "points", "criteria"}
CRITERIA_KEYS = {"converged_iou", "blowup_factor"}


class PointStatus(StrEnum):
    CONVERGED = "converged"
    NOT_CONVERGED = "not converged"
    DIVERGED = "diverged"
    FAILED = "failed"


@dataclass(frozen=True)
class Criteria:
    converged_iou: float = 0.95
    blowup_factor: float = 10.0


@dataclass(frozen=True)
class SweepPoint:
    index: int
    overrides: dict[str, Any]  # dotted scene key -> value

    @property
    def label(self) -> str:
        if not self.overrides:
            return "base"
        return ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in self.overrides.items())

    @property
    def slug(self) -> str:
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

    def point_dir(self, point: SweepPoint) -> Path:
        return self.out / "points" / point.slug


@dataclass
class PointResult:
    """One point's outcome, as the summary lists it."""

    index: int
    label: str
    overrides: dict[str, Any]
    run_dir: str
    status: str
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False
    device: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
            raise SceneError(f"{path}: {key}: unknown key{_suggest(key, SWEEP_KEYS)}")
    if not isinstance(raw.get("base"), str):
        raise SceneError(f"{path}: base: missing (the scene file the sweep starts from)")
    base = (path.parent / raw["base"]).resolve()
    if not base.is_file():
        raise SceneError(f"{path}: base: scene file not found: {base}")
    name = raw.get("name", path.stem)
    out = Path(raw.get("out", Path("runs") / name))
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
    criteria_raw = raw.get("criteria", {})
    for key, value in criteria_raw.items():
        if key not in CRITERIA_KEYS:
            raise SceneError(
                f"{path}: criteria.{key}: unknown key (expected {sorted(CRITERIA_KEYS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SceneError(f"{path}: criteria.{key}: expected a number > 0, got {value!r}")
    criteria = Criteria(**{k: float(v) for k, v in criteria_raw.items()})
    points = tuple(SweepPoint(i, c) for i, c in enumerate(combos))
    scenes = []
    for point in points:  # fail early, naming the point, before anything runs
        try:
            scene = load_scene(base, _set_items(common) + point.set_items())
        except SceneError as err:
            raise SceneError(f"{path}: point {point.index} ({point.label}): {err}") from None
        scenes.append(scene.replace(name=f"{name}/{point.slug}"))
    return Sweep(path, name, base, out, common, points, criteria, tuple(scenes))


def _set_items(values: dict[str, Any]) -> list[str]:
    return [f"{k}={_toml_value(v)}" for k, v in values.items()]


def point_scene(sweep: Sweep, point: SweepPoint) -> Scene:
    """The resolved scene of one point: base, then [set], then the point's overrides."""
    return sweep.scenes[point.index]


def blowup_ratio(losses: list[float]) -> float | None:
    """The largest finite loss over the first one (None: no finite loss)."""
    finite = [v for v in losses if math.isfinite(v)]
    return max(finite) / max(finite[0], 1e-30) if finite else None


def classify(status: str, metrics: dict[str, Any], losses: list[float], criteria: Criteria) -> str:
    """diverged: the fit hit a NaN, or its loss blew up beyond blowup_factor x
    its first value and it did not converge; converged: train IoU at least
    converged_iou; else not converged."""
    if status == "diverged":
        return PointStatus.DIVERGED.value
    iou = metrics.get("train_iou")
    converged = iou is not None and iou >= criteria.converged_iou
    ratio = blowup_ratio(losses)
    blew_up = ratio is not None and ratio > criteria.blowup_factor
    if not converged and blew_up:
        return PointStatus.DIVERGED.value
    return (PointStatus.CONVERGED if converged else PointStatus.NOT_CONVERGED).value


def read_losses(run_dir: Path) -> list[float]:
    """The loss column of a run's log.csv."""
    path = run_dir / "log.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def point_spec(sweep: Sweep, point: SweepPoint) -> dict[str, Any]:
    """Plain data for :func:`run_point`: the point's resolved scene as TOML text
    (self-contained, so it can run in another process or on another machine)."""
    return {
        "scene_toml": point_scene(sweep, point).to_toml(),
        "index": point.index,
        "label": point.label,
        "overrides": point.overrides,
        "criteria": asdict(sweep.criteria),
    }


def run_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one point in a scratch folder and return its result and files.

    The run folder's files come back as bytes; the caller writes them into the
    sweep folder, so workers need no shared file system.
    """
    import warp as wp

    wp.config.log_level = wp.LOG_WARNING
    from warpsdf.device import resolve_device
    from warpsdf.run import fit
    from warpsdf.scene import scene_from_dict

    start = time.perf_counter()
    result = PointResult(spec["index"], spec["label"], spec["overrides"], "", "")
    scratch = Path(tempfile.mkdtemp(prefix="warpsdf-point-"))
    files: dict[str, bytes] = {}
    try:
        device = resolve_device(spec.get("device", "auto"))
        result.device = device
        scene = scene_from_dict(tomllib.loads(spec["scene_toml"]), source=scratch / "scene.toml")
        outcome = fit(scene, scratch / "run", device=device, force=True)
        result.metrics = {k: v for k, v in outcome.metrics.items() if k not in ("status", "reason")}
        result.reason = outcome.reason
        losses = read_losses(scratch / "run")
        criteria = Criteria(**spec["criteria"])
        result.status = classify(outcome.status.value, outcome.metrics, losses, criteria)
        if result.status == PointStatus.DIVERGED.value and not result.reason:
            result.reason = f"the loss blew up to {blowup_ratio(losses):.0f}x its first value"
        for file in sorted((scratch / "run").iterdir()):
            if file.is_file():
                files[file.name] = file.read_bytes()
    except WarpsdfError as err:
        result.status, result.reason = PointStatus.FAILED.value, str(err).splitlines()[0]
    except Exception as err:  # a point's crash must not stop the sweep
        result.status = PointStatus.FAILED.value
        result.reason = f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = round(time.perf_counter() - start, 3)
    return {"result": result.to_json(), "files": files}


def finished_result(sweep: Sweep, point: SweepPoint) -> PointResult | None:
    """The stored result of a point whose run folder is complete and was made
    from the same resolved scene; None if it must run."""
    folder = sweep.point_dir(point)
    stored = folder / "point.json"
    if not stored.is_file() or not (folder / "scene.toml").is_file():
        return None
    try:
        data = json.loads(stored.read_text(encoding="utf-8"))
        same = load_scene(folder / "scene.toml") == point_scene(sweep, point)
    except (OSError, ValueError, WarpsdfError):
        return None
    if not same or data.get("status") == PointStatus.FAILED.value:
        return None
    result = PointResult(**{k: v for k, v in data.items() if k in PointResult.__dataclass_fields__})
    result.skipped = True
    return result


def store_point(sweep: Sweep, payload: dict[str, Any]) -> PointResult:
    """Write a point's returned files into its run folder (atomically, as a folder)."""
    result = PointResult(**payload["result"])
    point = sweep.points[result.index]
    folder = sweep.point_dir(point)
    result.run_dir = str(folder)
    with staged_dir(folder, force=True) as stage:
        for name, data in payload["files"].items():
            (stage / name).write_bytes(data)
        (stage / "point.json").write_text(json_text(result.to_json()), encoding="utf-8")
    return result


SUMMARY_METRICS = ("train_iou", "heldout_iou", "xyz_error", "chamfer", "final_loss")


def write_summary(sweep: Sweep, results: list[PointResult]) -> None:
    """summary.json, summary.csv, contact_sheet.png and loss_curves.png."""
    results = sorted(results, key=lambda r: r.index)
    data = {
        "sweep": sweep.name,
        "base": str(sweep.base),
        "criteria": asdict(sweep.criteria),
        "points": [r.to_json() for r in results],
    }
    write_json(sweep.out / "summary.json", data)
    keys = sorted({k for r in results for k in r.overrides})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["index", "label", *keys, "status", *SUMMARY_METRICS, "seconds", "reason", "run_dir"]
    )
    for r in results:
        writer.writerow(
            [r.index, r.label, *(r.overrides.get(k, "") for k in keys), r.status,
             *(_fmt(r.metrics.get(m)) for m in SUMMARY_METRICS), r.seconds, r.reason, r.run_dir]
        )  # fmt: skip
    with atomic_file(sweep.out / "summary.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    contact_sheet(results, sweep.out / "contact_sheet.png", sweep.name)
    loss_curves(results, sweep.out / "loss_curves.png", sweep.name)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


_STATUS_COLOURS = {
    PointStatus.CONVERGED.value: "tab:green",
    PointStatus.NOT_CONVERGED.value: "tab:orange",
    PointStatus.DIVERGED.value: "tab:red",
    PointStatus.FAILED.value: "black",
}


def contact_sheet(results: Iterable[PointResult], path: Path, title: str) -> None:
    """Every point's final render (final_train.png) with its label and status."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(results)
    cols = min(4, max(1, len(results)))
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.3 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), results, strict=False):
        image_path = Path(r.run_dir) / "final_train.png"
        if image_path.is_file():
            ax.imshow(iio.imread(image_path))
        else:
            ax.text(0.5, 0.5, "no render", ha="center", va="center", transform=ax.transAxes)
        colour = _STATUS_COLOURS.get(r.status, "black")
        iou = r.metrics.get("train_iou")
        detail = f"\n{r.status}" + (f", IoU {iou:.3f}" if iou is not None else "")
        ax.set_title(r.label + detail, fontsize=9, color=colour)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def loss_curves(results: Iterable[PointResult], path: Path, title: str) -> None:
    """Every point's loss against the iteration, in one log-scale plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for r in results:
        losses = np.array(read_losses(Path(r.run_dir)), dtype=float)
        if len(losses):
            style = "--" if r.status == PointStatus.DIVERGED.value else "-"
            ax.plot(np.arange(1, len(losses) + 1), losses, style, lw=1.2,
                    label=f"{r.label} ({r.status})")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}: loss of every point")
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
