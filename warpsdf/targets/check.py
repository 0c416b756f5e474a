"""Opening what a scene points to, cheaply, before anything is fitted: the
mesh file parsed and checked (no Warp mesh is built), an image folder's
cameras.json and every image it names read and size-checked, a
``cameras.file`` read, through the loaders a fit uses. ``warpsdf validate``
calls :func:`check_target`, so a scene that validates does not fail later at
reading its target."""

from __future__ import annotations

from dataclasses import dataclass

from warpsdf.camera.cameras_json import read_cameras
from warpsdf.errors import SceneError, WarpsdfError
from warpsdf.scene import CameraLayout, Scene, TargetKind, view_size_problems
from warpsdf.targets.images import load_image_views, split_image_views
from warpsdf.targets.mesh import load_mesh_arrays
from warpsdf.targets.transforms import split_transforms_views
from warpsdf.targets.views import TargetView, missing_image


@dataclass(frozen=True)
class TargetSummary:
    """What :func:`check_target` found: the target's training views (0: the
    scene's layout), an image folder's held-out views and, for a mesh, its
    size."""

    views: int = 0
    vertices: int = 0
    faces: int = 0
    heldout: int = 0


def check_target(scene: Scene) -> TargetSummary:
    """Load and check the files a scene points to (``target.path`` and
    ``cameras.file``) as a fit would read them, and the size limits that need
    their views' sizes (:func:`warpsdf.scene.view_size_problems`); for an
    image folder also ``target.heldout`` and what each view needs
    (:func:`missing_image`: a mask, and the images supervision.mode lists).
    Raises :class:`SceneError`, one line naming the scene file, the key and
    the problem (the loader's message names the file it read)."""
    t, file = scene.target, scene.source or scene.name
    summary = TargetSummary()
    sizes: list[tuple[int, int]] = []
    key = "target.path"
    try:
        if t.kind is TargetKind.MESH:
            fill = t.normalize_fill * scene.march.bound_radius
            vertices, faces = load_mesh_arrays(t.path, t.normalize, fill)
            summary = TargetSummary(vertices=len(vertices), faces=len(faces))
        elif t.kind.stored_views:
            if t.kind is TargetKind.TRANSFORMS:
                views, heldout = split_transforms_views(scene)
            else:
                views, heldout = split_image_views(scene, load_image_views(t.path))
            _check_views(scene, views)
            sizes = [(v.camera.width, v.camera.height) for v in views]
            summary = TargetSummary(views=len(views), heldout=len(heldout))
        if not t.kind.stored_views and scene.cameras.layout is CameraLayout.FILE:
            key = "cameras.file"
            cameras = [e.camera for e in read_cameras(scene.cameras.file)]
            sizes = [(c.width, c.height) for c in cameras]
            summary = TargetSummary(len(cameras), summary.vertices, summary.faces)
    except SceneError:
        raise
    except WarpsdfError as err:
        raise SceneError(f"{file}: {key}: {str(err).splitlines()[0]}") from None
    if problems := view_size_problems(scene, sizes):
        raise SceneError([f"{file}: {k}: {problem}" for k, problem in problems])
    return summary


def _check_views(scene: Scene, views: list[TargetView]) -> None:
    """What the fit will need of an image folder's training views: a mask on
    each, and the images supervision.mode lists (:func:`missing_image`, the
    check the fit makes). One line per key, for the first view that fails it."""
    file, modes = scene.source or scene.name, set(scene.supervision.mode)
    problems: dict[str, str] = {}
    for i, view in enumerate(views):
        if found := missing_image(view, i, modes):
            problems.setdefault(*found)
    if problems:
        raise SceneError([f"{file}: {key}: {problem}" for key, problem in problems.items()])
