"""Targets: analytic shapes, mesh files and image folders, all seen as
per-camera :class:`TargetView` (mask, XYZ, depth)."""

from __future__ import annotations

from dataclasses import dataclass, field

from warpsdf.camera import Camera, training_cameras
from warpsdf.errors import InputFileError
from warpsdf.fields.analytic import AnalyticField
from warpsdf.render import trace_cameras
from warpsdf.scene import MarchConfig, Scene, TargetKind
from warpsdf.targets.analytic import airplane_shapes, target_shapes
from warpsdf.targets.check import TargetSummary, check_target
from warpsdf.targets.images import load_image_views, split_image_views, write_image_views
from warpsdf.targets.mesh import MeshTarget
from warpsdf.targets.views import TargetView, views_from_hits

__all__ = [
    "MeshTarget",
    "Target",
    "TargetSummary",
    "TargetView",
    "airplane_shapes",
    "build_target",
    "check_target",
    "load_image_views",
    "split_image_views",
    "write_image_views",
]


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
