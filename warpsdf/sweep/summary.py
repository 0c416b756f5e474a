"""Sweep summaries: how each point is judged (:class:`PointStatus`,
:func:`classify`), its record on disk (``point.json``, written by
:func:`store_point`, read back by :func:`finished_result` so that a re-run
skips it), and the sweep folder's summary.json, summary.csv, contact sheet
and loss curves (:func:`write_summary`).

Statuses are :class:`PointStatus` members everywhere in Python; they become
plain strings only in JSON and CSV (:meth:`PointResult.to_json`,
:meth:`PointResult.from_json`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from warpsdf.errors import WarpsdfError
from warpsdf.fit import RunStatus
from warpsdf.io.files import atomic_file, json_text, staged_dir, write_json
from warpsdf.io.layout import RunFolder
from warpsdf.io.plots import Curve, Tile, contact_sheet, loss_curves
from warpsdf.io.reading import read_json
from warpsdf.scene import load_scene
from warpsdf.sweep.plan import Criteria, Sweep, SweepPoint, point_scene

# the metrics each point shows in summary.csv and in the report's table
SUMMARY_METRICS = ("train_iou", "heldout_iou", "xyz_error", "chamfer", "final_loss")


class PointStatus(StrEnum):
    """How a point ended, as the summary judges it (see :func:`classify`)."""

    CONVERGED = "converged"
    NOT_CONVERGED = "not converged"
    DIVERGED = "diverged"
    FAILED = "failed"


# the colour of each status in the contact sheet
_STATUS_COLOURS: dict[PointStatus, str] = {
    PointStatus.CONVERGED: "tab:green",
    PointStatus.NOT_CONVERGED: "tab:orange",
    PointStatus.DIVERGED: "tab:red",
    PointStatus.FAILED: "black",
}


@dataclass
class PointResult:
    """One point's outcome, as the summary lists it."""

    index: int
    label: str
    overrides: dict[str, Any]
    run_dir: str
    status: PointStatus
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False  # finished by an earlier run of the sweep
    device: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data (the status as its string)."""
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: Any) -> PointResult:
        """The inverse of :meth:`to_json`; unknown keys are ignored. ValueError,
        KeyError or TypeError if ``data`` is not a point record."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a point record, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["status"] = PointStatus(known["status"])
        return cls(**known)


@dataclass
class SweepSummary:
    """What summary.json holds: the sweep's name, base scene and criteria, and
    every point's result in point order."""

    sweep: str
    base: str
    criteria: dict[str, float]
    points: list[PointResult]

    def to_json(self) -> dict[str, Any]:
        """Plain data (statuses as strings)."""
        data = asdict(self)
        data["points"] = [r.to_json() for r in self.points]
        return data

    @classmethod
    def from_json(cls, data: Any) -> SweepSummary:
        """The inverse of :meth:`to_json`. ValueError, KeyError or TypeError if
        ``data`` is not a sweep summary."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a table, got {type(data).__name__}")
        points = [PointResult.from_json(p) for p in data.get("points", [])]
        return cls(str(data.get("sweep", "")), str(data.get("base", "")),
                   dict(data.get("criteria", {})), points)  # fmt: skip


def blowup_ratio(losses: list[float]) -> float | None:
    """The largest finite loss over the first one (None: no finite loss)."""
    finite = [v for v in losses if math.isfinite(v)]
    return max(finite) / max(finite[0], 1e-30) if finite else None


def classify(
    status: RunStatus, metrics: dict[str, Any], losses: list[float], criteria: Criteria
) -> PointStatus:
    """diverged: the fit hit a NaN or was lost, or its loss blew up beyond blowup_factor x
    its first value and it did not converge; converged: train IoU at least
    converged_iou; else not converged."""
    if status in (RunStatus.DIVERGED, RunStatus.LOST):
        return PointStatus.DIVERGED
    iou = metrics.get("train_iou")
    converged = iou is not None and iou >= criteria.converged_iou
    ratio = blowup_ratio(losses)
    blew_up = ratio is not None and ratio > criteria.blowup_factor
    if not converged and blew_up:
        return PointStatus.DIVERGED
    return PointStatus.CONVERGED if converged else PointStatus.NOT_CONVERGED


def read_losses(run: RunFolder) -> list[float]:
    """The loss column of a run's log.csv (empty if there is none)."""
    if not run.log.is_file():
        return []
    with open(run.log, newline="", encoding="utf-8") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def finished_result(sweep: Sweep, point: SweepPoint) -> PointResult | None:
    """The stored result of a point whose run folder is complete and was made
    from the same resolved scene; None if it must run."""
    folder = sweep.point_folder(point)
    if not folder.point_record.is_file() or not folder.scene.is_file():
        return None
    try:
        result = PointResult.from_json(read_json(folder.point_record, "point record"))
        same = load_scene(folder.scene) == point_scene(sweep, point)
    except (OSError, ValueError, KeyError, TypeError, WarpsdfError):
        return None  # a damaged record: run the point again
    if not same or result.status is PointStatus.FAILED:
        return None
    result.skipped = True
    return result


def store_point(sweep: Sweep, payload: dict[str, Any]) -> PointResult:
    """Write a point's returned files (see :func:`warpsdf.sweep.run.run_point`)
    and its point.json into its run folder, atomically, as a folder."""
    result = PointResult.from_json(payload["result"])
    folder = sweep.point_folder(sweep.points[result.index])
    result.run_dir = str(folder.path)
    with staged_dir(folder.path, force=True) as stage:
        for name, data in payload["files"].items():
            (stage / name).write_bytes(data)
        record = RunFolder(stage).point_record
        record.write_text(json_text(result.to_json()), encoding="utf-8")
    return result


def write_summary(sweep: Sweep, results: list[PointResult]) -> None:
    """summary.json, summary.csv, contact_sheet.png and loss_curves.png."""
    results = sorted(results, key=lambda r: r.index)
    folder = sweep.folder
    summary = SweepSummary(sweep.name, str(sweep.base), asdict(sweep.criteria), results)
    write_json(folder.summary_json, summary.to_json())
    with atomic_file(folder.summary_csv) as tmp:
        tmp.write_text(summary_csv(results), encoding="utf-8")
    contact_sheet(_tiles(results), folder.contact_sheet, sweep.name)
    loss_curves(_curves(results), folder.loss_curves, f"{sweep.name}: loss of every point")


def summary_csv(results: Iterable[PointResult]) -> str:
    """The text of summary.csv: one row per point, a column per override key."""
    results = list(results)
    keys = sorted({k for r in results for k in r.overrides})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        ["index", "label", *keys, "status", *SUMMARY_METRICS, "seconds", "reason", "run_dir"]
    )
    for r in results:
        writer.writerow(
            [r.index, r.label, *(r.overrides.get(k, "") for k in keys), r.status.value,
             *(_fmt(r.metrics.get(m)) for m in SUMMARY_METRICS), r.seconds, r.reason, r.run_dir]
        )  # fmt: skip
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _tiles(results: Iterable[PointResult]) -> list[Tile]:
    """Each point's final render from the training view, captioned with its
    label, status and train IoU, in its status colour."""
    tiles = []
    for r in results:
        iou = r.metrics.get("train_iou")
        detail = f"\n{r.status.value}" + (f", IoU {iou:.3f}" if iou is not None else "")
        image = RunFolder(r.run_dir).final_train
        tiles.append(Tile(image, r.label + detail, _STATUS_COLOURS[r.status]))
    return tiles


def _curves(results: Iterable[PointResult]) -> list[Curve]:
    """Each point's loss; diverged points dashed."""
    return [
        Curve(f"{r.label} ({r.status.value})", read_losses(RunFolder(r.run_dir)),
              dashed=r.status is PointStatus.DIVERGED)
        for r in results
    ]  # fmt: skip
