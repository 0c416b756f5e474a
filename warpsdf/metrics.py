"""Metrics of a fit: IoU on training and unseen views, XYZ error, Chamfer distance."""

from __future__ import annotations

import numpy as np

from warpsdf.camera import Camera, heldout_cameras
from warpsdf.render import trace_cameras
from warpsdf.scene import MarchConfig, Scene
from warpsdf.targets.views import TargetView

# The Chamfer distance compares the surface points these held-out views see
# (traced at this resolution) on the fitted field and on the target.
CHAMFER_PROBE_VIEWS = 16
CHAMFER_PROBE_RESOLUTION = 64


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def trace_views(source, cameras: list[Camera], config: MarchConfig) -> list[dict[str, np.ndarray]]:
    """Per camera: hit mask (H, W) and hit points (H, W, 3), traced in one launch."""
    return [
        {
            "mask": h["hit_t"].reshape(cam.height, cam.width) >= 0.0,
            "points": h["points"].reshape(cam.height, cam.width, 3),
        }
        for cam, h in zip(cameras, trace_cameras(source, cameras, config), strict=True)
    ]


def mean_iou(pred: list[dict[str, np.ndarray]], views: list[TargetView]) -> float:
    """The mean mask IoU of traced views (:func:`trace_views`) against the
    target views' masks, view by view."""
    return float(np.mean([mask_iou(p["mask"], v.mask) for p, v in zip(pred, views, strict=True)]))


def xyz_errors(pred: dict[str, np.ndarray], view: TargetView) -> tuple[np.ndarray, np.ndarray]:
    """Where prediction and target both see the surface (H, W), and the distance
    there between the predicted point (clipped to [-1, 1], as XYZ images are) and
    the target's (H, W), world units. ``pred`` is one :func:`trace_views` entry."""
    both = pred["mask"] & view.mask
    err = np.linalg.norm(np.clip(pred["points"], -1, 1) - view.xyz, axis=-1)
    return both, err


def chamfer_distance(a: np.ndarray, b: np.ndarray, max_points: int = 3000, seed: int = 0) -> float:
    """Symmetric Chamfer distance: the mean of the two mean nearest-neighbour
    distances (world units) between point sets (N, 3) and (M, 3)."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    rng = np.random.default_rng(seed)
    if len(a) > max_points:
        a = a[rng.choice(len(a), max_points, replace=False)]
    if len(b) > max_points:
        b = b[rng.choice(len(b), max_points, replace=False)]

    def nearest(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        best = np.full(len(p), np.inf)
        for start in range(0, len(q), 1024):
            chunk = q[start : start + 1024]
            d2 = ((p[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)
            best = np.minimum(best, d2.min(axis=1))
        return np.sqrt(best)

    return float(0.5 * (nearest(a, b).mean() + nearest(b, a).mean()))


def fit_metrics(
    field, scene: Scene, cameras: list[Camera], views: list[TargetView], target=None
) -> dict[str, float | None]:
    """train IoU (every training view, no camera shake), held-out IoU, Chamfer
    and the mean XYZ error (world units) on pixels both prediction and target
    see. The held-out IoU is on ``output.heldout_views`` unseen views of a
    renderable target, or on the views of an image folder that
    ``target.heldout`` kept out of training (each from its own camera, at its
    own size); None when there are none. Chamfer needs the target's surface:
    None for an image folder."""
    pred = trace_views(field, cameras, scene.march)
    metrics: dict[str, float | None] = {"train_iou": mean_iou(pred, views)}
    errors = []
    for p, v in zip(pred, views, strict=True):
        if v.xyz is None:
            continue
        both, err = xyz_errors(p, v)
        if both.any():
            errors.append(err[both])
    metrics["xyz_error"] = float(np.concatenate(errors).mean()) if errors else None
    metrics["heldout_iou"] = None
    metrics["chamfer"] = None
    if target is not None and not target.renderable and target.heldout:
        held = [v.camera for v in target.heldout]
        metrics["heldout_iou"] = mean_iou(trace_views(field, held, scene.march), target.heldout)
    if target is not None and target.renderable:
        count = scene.output.heldout_views
        if count > 0:
            held = heldout_cameras(count, cameras[0], scene.cameras.look_at)
            truth = trace_views(target.source, held, scene.march)
            guess = trace_views(field, held, scene.march)
            metrics["heldout_iou"] = float(
                np.mean([mask_iou(g["mask"], t["mask"]) for g, t in zip(guess, truth, strict=True)])
            )
        like = cameras[0].with_resolution(CHAMFER_PROBE_RESOLUTION, CHAMFER_PROBE_RESOLUTION)
        probe = heldout_cameras(CHAMFER_PROBE_VIEWS, like, scene.cameras.look_at)
        a = np.concatenate([p["points"][p["mask"]] for p in trace_views(field, probe, scene.march)])
        b = np.concatenate(
            [p["points"][p["mask"]] for p in trace_views(target.source, probe, scene.march)]
        )
        metrics["chamfer"] = chamfer_distance(a, b)
    return metrics
