"""Folder layouts: the one place that names the files of a run folder and of a
sweep folder (DESIGN §5). The fit writes them, and render, export, report,
the sweep and the CLI read them, all through these objects.

    run folder                         sweep folder
      scene.toml       resolved scene    summary.json     every point, its status and metrics
      checkpoint.npz   state + log       summary.csv      the same as a table
      log.csv          one row a step    contact_sheet.png  every point's final render
      metrics.json     IoU, Chamfer, ..  loss_curves.png  every point's loss
      loss.png         loss terms        points/SLUG/     one run folder per point,
      optimization.gif pred|target|err                    with point.json (its record)
      final_NAME.png   showcase renders
      mesh.ply         marching cubes
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    """The files of one fit's run folder."""

    path: Path

    SCENE = "scene.toml"
    CHECKPOINT = "checkpoint.npz"
    LOG = "log.csv"
    METRICS = "metrics.json"
    LOSS_PLOT = "loss.png"
    ANIMATION = "optimization.gif"
    MESH = "mesh.ply"
    FINAL_PREFIX = "final_"
    FINAL_SUFFIX = ".png"
    POINT_RECORD = "point.json"  # only in a sweep's point folders

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    @property
    def scene(self) -> Path:
        return self.path / self.SCENE

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def loss_plot(self) -> Path:
        return self.path / self.LOSS_PLOT

    @property
    def animation(self) -> Path:
        return self.path / self.ANIMATION

    @property
    def mesh(self) -> Path:
        return self.path / self.MESH

    @property
    def point_record(self) -> Path:
        return self.path / self.POINT_RECORD

    def final(self, name: str) -> Path:
        """A showcase render, ``final_{name}.png`` (names: :data:`warpsdf.camera.SHOWCASE_VIEWS`)."""
        return self.path / f"{self.FINAL_PREFIX}{name}{self.FINAL_SUFFIX}"

    def finals(self) -> list[tuple[str, Path]]:
        """Every showcase render present, as (name, path), sorted by name."""
        found = sorted(self.path.glob(f"{self.FINAL_PREFIX}*{self.FINAL_SUFFIX}"))
        return [(p.name[len(self.FINAL_PREFIX) : -len(self.FINAL_SUFFIX)], p) for p in found]

    def is_run(self) -> bool:
        """Whether the folder holds a fit: a resolved scene and a checkpoint."""
        return self.checkpoint.is_file() and self.scene.is_file()


@dataclass(frozen=True)
class SweepFolder:
    """The files of a sweep's output folder."""

    path: Path

    SUMMARY_JSON = "summary.json"
    SUMMARY_CSV = "summary.csv"
    CONTACT_SHEET = "contact_sheet.png"
    LOSS_CURVES = "loss_curves.png"
    POINTS = "points"

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    @property
    def summary_json(self) -> Path:
        return self.path / self.SUMMARY_JSON

    @property
    def summary_csv(self) -> Path:
        return self.path / self.SUMMARY_CSV

    @property
    def contact_sheet(self) -> Path:
        return self.path / self.CONTACT_SHEET

    @property
    def loss_curves(self) -> Path:
        return self.path / self.LOSS_CURVES

    @property
    def points(self) -> Path:
        return self.path / self.POINTS

    def point(self, slug: str) -> RunFolder:
        """The run folder of the point named ``slug``."""
        return RunFolder(self.points / slug)

    def is_sweep(self) -> bool:
        """Whether the folder holds a sweep's output (a summary or point folders)."""
        return self.summary_json.is_file() or self.points.is_dir()
