"""Targets: analytic shapes, mesh files, image folders and transforms.json
datasets, all seen as per-camera :class:`TargetView` (mask, XYZ, depth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from warpsdf.camera import Camera, heldout_cameras, training_cameras
from warpsdf.errors import InputFileError
from warpsdf.fields.analytic import AnalyticField
from warpsdf.render import trace_cameras
from warpsdf.scene import MarchConfig, Scene, TargetKind
from warpsdf.targets.analytic import airplane_shapes, target_shapes
from warpsdf.targets.check import TargetSummary, check_target
from warpsdf.targets.images import load_image_views, split_image_views, write_image_views
from warpsdf.targets.mesh import MeshTarget
from warpsdf.targets.transforms import split_transforms_views, write_transforms_views
from warpsdf.targets.views import TargetView, views_from_hits

__all__ = [
    "MeshTarget",
    "Target",
    "TargetFormat",
    "TargetSummary",
    "TargetView",
    "airplane_shapes",
    "build_target",
    "check_target",
    "load_image_views",
    "split_image_views",
    "split_transforms_views",
    "target_splits",
    "write_image_views",
    "write_transforms_views",
]


class TargetFormat(StrEnum):
    """How ``warpsdf targets`` writes views: a cameras.json folder
    (:func:`write_image_views`, ``kind = "images"``) or a NeRF-synthetic
    dataset (:func:`write_transforms_views`, ``kind = "transforms"``)."""

    IMAGES = "images"
    TRANSFORMS = "transforms"


@dataclass
class Target:
    """A scene's target. ``source`` (a field or mesh) can be seen from any
    camera; an image folder has only its ``stored`` views (those it trains
    on) and the ``heldout`` views that ``target.heldout`` keeps out of
    training, for the held-out IoU."""

    kind: TargetKind
    source: object | None = None
    stored: list[TargetView] | None = None
    heldout: list[TargetView] = field(default_factory=list)

    @property
    def renderable(self) -> bool:
        return self.source is not None

    def views(self, cameras: list[Camera], config: MarchConfig) -> list[TargetView]:
        """The target seen from ``cameras`` (traced in one launch)."""
        if self.source is None:
            raise InputFileError("an image-folder target has only the views in its cameras.json")
        per_camera = trace_cameras(self.source, cameras, config)
        return [views_from_hits(cam, h) for cam, h in zip(cameras, per_camera, strict=True)]


def build_target(scene: Scene, device=None) -> Target:
    """Load the scene's target onto ``device`` (mesh files and images are read here)."""
    t = scene.target
    if t.kind is TargetKind.SHAPES:
        return Target(t.kind, source=AnalyticField(target_shapes(t), device=device))
    if t.kind is TargetKind.MESH:
        fill = t.normalize_fill * scene.march.bound_radius
        return Target(t.kind, source=MeshTarget.from_file(t.path, t.normalize, fill, device))
    if t.kind is TargetKind.TRANSFORMS:
        train, heldout = split_transforms_views(scene)
    else:
        train, heldout = split_image_views(scene, load_image_views(t.path))
    return Target(t.kind, stored=train, heldout=heldout)


def target_views(
    scene: Scene,
    device=None,
    target: Target | None = None,
    cameras: list[Camera] | None = None,
) -> list[TargetView]:
    """The target as seen by the training cameras (:func:`training_cameras`):
    an image folder's stored views (without the held-out ones), or the
    renderable target traced
    (``cameras``: the training cameras, when the caller has them already)."""
    target = target or build_target(scene, device)
    if not target.renderable:
        return list(target.stored)
    return target.views(cameras or training_cameras(scene), scene.march)


def target_splits(scene: Scene, device=None, heldout: bool = True) -> dict[str, list[TargetView]]:
    """Every view of the scene's target, as ``{"train": ..., "test": ...}``
    (what ``warpsdf targets`` writes): an image folder's or a dataset's
    training and held-out views, or a renderable target traced from the
    training cameras and from ``output.heldout_views`` held-out views
    (:func:`heldout_cameras`, as the metrics judge a fit; not traced without
    ``heldout``)."""
    t = scene.target
    if t.kind is TargetKind.IMAGES:
        train, test = split_image_views(scene, load_image_views(t.path))
    elif t.kind is TargetKind.TRANSFORMS:
        train, test = split_transforms_views(scene)
    else:
        target = build_target(scene, device)
        cameras = training_cameras(scene)
        train = target.views(cameras, scene.march)
        count = scene.output.heldout_views if heldout else 0
        held = heldout_cameras(count, cameras[0], scene.cameras.look_at) if count else []
        test = target.views(held, scene.march) if held else []
    return {"train": train, "test": test}
