"""Folder layouts: the one place that names the files of a run folder, a
sweep folder, an image folder and a folder of renders (DESIGN §3, §5). The
fit writes them, and render, export, report, the sweep and the CLI read
them, all through these objects.

    run folder                         sweep folder
      scene.toml       resolved scene    summary.json     every point, its status and metrics
      checkpoint.npz   state + log       summary.csv      the same as a table
      log.csv          one row a step    contact_sheet.png  every point's final render
      metrics.json     IoU, Chamfer, ..  loss_curves.png  every point's loss
      loss.png         loss terms        points/SLUG/     one run folder per point,
      optimization.gif pred|target|err                    with point.json (its record)
      final_NAME.png   showcase renders
      mesh.ply         marching cubes
      dataset_transform.json  (transforms targets) world = scale * dataset + offset
      made_by_warpsdf.txt                in every folder warpsdf makes (run, sweep,
                                         image and render folders): --force only
                                         ever replaces a folder holding it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

# The marker file warpsdf writes into every folder it makes. ``--force`` replaces
# only folders that hold it (or run folders from before it existed: see
# :func:`made_by_warpsdf`). Not a dot file, so that a user sees it, and every
# dot file in an output folder is a leftover temporary file.
MARKER = "made_by_warpsdf.txt"
MARKER_TEXT = (
    "This folder was written by warpsdf. A warpsdf command given --force may\n"
    "replace it (with everything in it); without this file it never does.\n"
)


def made_by_warpsdf(path: str | Path) -> bool:
    """Whether warpsdf made the folder ``path``: it holds :data:`MARKER`, or it
    is a run folder (a scene and a checkpoint), a sweep's point folder (a point
    record under ``points/``) or a sweep folder (a summary) from before the marker."""
    path = Path(path)
    run = RunFolder(path)
    return (
        (path / MARKER).is_file()
        or run.is_run()
        or (path.parent.name == SweepFolder.POINTS and run.point_record.is_file())
        or SweepFolder(path).summary_json.is_file()
    )


def holds_only_marker(path: str | Path) -> bool:
    """Whether the folder ``path`` is empty but for :data:`MARKER`."""
    return all(p.name == MARKER for p in Path(path).iterdir())


class _File:
    """A file of a folder layout: ``folder.NAME`` is ``folder.path / folder.CONSTANT``."""

    def __init__(self, constant: str):
        self.constant = constant

    def __get__(self, folder, owner=None) -> Path:
        if folder is None:
            return self
        return folder.path / getattr(owner, self.constant)


@dataclass(frozen=True)
class _Folder:
    """A folder whose files are named by class constants (see :class:`_File`)."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))


class RunFolder(_Folder):
    """The files of one fit's run folder."""

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
    # target.kind = transforms: world = scale * dataset + offset (export --frame dataset)
    DATASET_TRANSFORM = "dataset_transform.json"
    TRAIN_VIEW = "train"  # the showcase render from the training view: final_train.png

    scene = _File("SCENE")
    checkpoint = _File("CHECKPOINT")
    log = _File("LOG")
    metrics = _File("METRICS")
    loss_plot = _File("LOSS_PLOT")
    animation = _File("ANIMATION")
    mesh = _File("MESH")
    point_record = _File("POINT_RECORD")
    dataset_transform = _File("DATASET_TRANSFORM")

    def final(self, name: str) -> Path:
        """A showcase render, ``final_{name}.png`` (see :func:`warpsdf.camera.showcase_cameras`)."""
        return self.path / f"{self.FINAL_PREFIX}{name}{self.FINAL_SUFFIX}"

    @property
    def final_train(self) -> Path:
        """The showcase render from the training view (contact sheets show it)."""
        return self.final(self.TRAIN_VIEW)

    def finals(self) -> list[tuple[str, Path]]:
        """Every showcase render present, as (name, path), sorted by name."""
        found = sorted(self.path.glob(f"{self.FINAL_PREFIX}*{self.FINAL_SUFFIX}"))
        return [(p.name[len(self.FINAL_PREFIX) : -len(self.FINAL_SUFFIX)], p) for p in found]

    def is_run(self) -> bool:
        """Whether the folder holds a fit: a resolved scene and a checkpoint."""
        return self.checkpoint.is_file() and self.scene.is_file()


class SweepFolder(_Folder):
    """The files of a sweep's output folder."""

    SUMMARY_JSON = "summary.json"
    SUMMARY_CSV = "summary.csv"
    CONTACT_SHEET = "contact_sheet.png"
    LOSS_CURVES = "loss_curves.png"
    POINTS = "points"

    summary_json = _File("SUMMARY_JSON")
    summary_csv = _File("SUMMARY_CSV")
    contact_sheet = _File("CONTACT_SHEET")
    loss_curves = _File("LOSS_CURVES")
    points = _File("POINTS")

    def point(self, slug: str) -> RunFolder:
        """The run folder of the point named ``slug``."""
        return RunFolder(self.points / slug)

    def is_sweep(self) -> bool:
        """Whether the folder holds a sweep's output (a summary or point folders)."""
        return self.summary_json.is_file() or self.points.is_dir()


class ImageFolder(_Folder):
    """A folder of target images and their cameras (DESIGN §3): written by
    ``warpsdf targets``, read by ``[target] kind = "images"``."""

    CAMERAS = "cameras.json"
    # the file of each image kind, per view: mask_NNN.png, xyz_NNN.png, depth_NNN.npy
    IMAGE_SUFFIXES: ClassVar[dict[str, str]] = {"mask": ".png", "xyz": ".png", "depth": ".npy"}

    cameras = _File("CAMERAS")

    @classmethod
    def image_name(cls, kind: str, index: int) -> str:
        """The file name of view ``index``'s ``kind`` (mask, xyz or depth) image."""
        return f"{kind}_{index:03d}{cls.IMAGE_SUFFIXES[kind]}"


class TransformsFolder(_Folder):
    """A dataset in the NeRF-synthetic layout (``warpsdf targets --format
    transforms``, read by ``kind = "transforms"``): ``transforms_SPLIT.json``
    and per view ``SPLIT/r_N.png`` (RGBA: the XYZ colour code, alpha the
    mask), ``SPLIT/r_N_depth.npy`` (z-depth) and ``SPLIT/r_N_xyz.png``."""

    SPLITS = ("train", "test")

    @staticmethod
    def json_name(split: str) -> str:
        return f"transforms_{split}.json"

    @staticmethod
    def image_name(split: str, index: int, kind: str = "") -> str:
        """The path of view ``index``'s image (``kind`` "": the RGBA image,
        "depth" or "xyz"), relative to the folder."""
        suffix = {"": ".png", "depth": "_depth.npy", "xyz": "_xyz.png"}[kind]
        return f"{split}/r_{index}{suffix}"


class RenderFolder(_Folder):
    """One render per camera of a cameras.json (``warpsdf render --cameras``),
    each named after its view: ``NAME.png`` (view names are plain file names,
    unique in their cameras.json: :mod:`warpsdf.camera.cameras_json`)."""

    SUFFIX = ".png"

    @classmethod
    def image_name(cls, view_name: str) -> str:
        return f"{view_name}{cls.SUFFIX}"

    def image(self, view_name: str) -> Path:
        return self.path / self.image_name(view_name)
