"""Metrics of a fit: IoU on training and unseen views, XYZ error, Chamfer
distance; and the scores of any mesh or field against the target's surface
(:func:`score_surface`: held-out IoU, Chamfer-L1 and F-score), which the fit,
``warpsdf carve`` and the quality benchmark share."""

from __future__ import annotations

import numpy as np
import warp as wp

from warpsdf.camera import Camera, camera_from_angles, heldout_cameras
from warpsdf.export import extract_mesh
from warpsdf.fields.base import Field
from warpsdf.march import Polish, polish_for
from warpsdf.render import RenderMode, render, trace_cameras
from warpsdf.scene import MarchConfig, Scene
from warpsdf.targets import Target
from warpsdf.targets.mesh import MeshTarget
from warpsdf.targets.views import TargetView

# The Chamfer distance compares the surface points these held-out views see
# (traced at this resolution) on the fitted field and on the target.
CHAMFER_PROBE_VIEWS = 16
CHAMFER_PROBE_RESOLUTION = 64

# Surface scores (:func:`surface_scores`). Both surfaces are meshes; each is
# sampled at SURFACE_SAMPLES points, uniformly by area, and every sample's
# distance to the *other mesh* (its closest point, not the closest sample) is
# exact, so the scores do not depend on how densely the surfaces are sampled
# beyond the sampling noise of the means (under 1% at this count).
SURFACE_SAMPLES = 100_000
# F-score threshold tau, world units: a sample counts when it lies within tau
# of the other surface. With the default bound radius 1 (the bound's diameter
# is 2) it is 0.5% of the diameter, the "F-score@0.01" of the literature on
# shapes normalised into the unit sphere.
FSCORE_TAU = 0.01
# An analytic target's surface is its marching-cubes mesh on a lattice this
# fine (step 2R / 255, 0.008 world units in the unit bound): the airplane's
# scores against its 512^3 mesh are Chamfer-L1 9e-5 and F-score 1.0.
REFERENCE_MESH_RESOLUTION = 256


@wp.kernel(enable_backward=False)
def mesh_distance_kernel(
    mesh_id: wp.uint64,  # a wp.Mesh
    points: wp.array(dtype=wp.vec3),  # (N,) world units
    max_dist: float,  # world units; farther points get this distance
    dist_out: wp.array(dtype=float),  # (N,) distance to the closest point of the mesh
):
    """One thread per point (dim = N). Not differentiable."""
    i = wp.tid()
    p = points[i]
    q = wp.mesh_query_point_no_sign(mesh_id, p, max_dist)
    dist_out[i] = max_dist
    if q.result:
        dist_out[i] = wp.length(p - wp.mesh_eval_position(mesh_id, q.face, q.u, q.v))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def trace_views(
    source, cameras: list[Camera], config: MarchConfig, polish: Polish = Polish.NEWTON
) -> list[dict[str, np.ndarray]]:
    """Per camera: hit mask (H, W) and hit points (H, W, 3), traced in one
    launch. With ``Polish.NONE`` (for masks alone: the same masks, about half
    the work of a neural field's hits) the points are only within
    ``hit_epsilon`` of the surface."""
    traced = trace_cameras(source, cameras, config, polish)
    return [
        {
            "mask": h["hit_t"].reshape(cam.height, cam.width) >= 0.0,
            "points": h["points"].reshape(cam.height, cam.width, 3),
        }
        for cam, h in zip(cameras, traced, strict=True)
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
    and, for fits whose supervision reads hit points (xyz, depth), the mean XYZ
    error (world units) on pixels both prediction and target see (None
    otherwise: a silhouette fit's masks are traced without the Newton polish,
    :func:`warpsdf.march.polish_for`, and its surface is judged by Chamfer).
    The held-out IoU is on ``output.heldout_views`` unseen views of a
    renderable target, or on the views of an image folder that
    ``target.heldout`` kept out of training (each from its own camera, at its
    own size); None when there are none. Chamfer needs the target's surface:
    None for an image folder."""
    polish = polish_for(scene.supervision)
    pred = trace_views(field, cameras, scene.march, polish)
    metrics: dict[str, float | None] = {"train_iou": mean_iou(pred, views)}
    errors = []
    for p, v in zip(pred, views, strict=True):
        if v.xyz is None or polish is Polish.NONE:
            continue
        both, err = xyz_errors(p, v)
        if both.any():
            errors.append(err[both])
    metrics["xyz_error"] = float(np.concatenate(errors).mean()) if errors else None
    metrics["heldout_iou"] = None if target is None else heldout_iou(field, scene, cameras, target)
    metrics["chamfer"] = None
    if target is not None and target.renderable:
        like = cameras[0].with_resolution(CHAMFER_PROBE_RESOLUTION, CHAMFER_PROBE_RESOLUTION)
        probe = heldout_cameras(CHAMFER_PROBE_VIEWS, like, scene.cameras.look_at)
        a = np.concatenate([p["points"][p["mask"]] for p in trace_views(field, probe, scene.march)])
        b = np.concatenate(
            [p["points"][p["mask"]] for p in trace_views(target.source, probe, scene.march)]
        )
        metrics["chamfer"] = chamfer_distance(a, b)
    return metrics


def outside_bound_share(field, scene: Scene, azimuth_deg: float, size: int) -> float:
    """Share of the pixels of a ``size`` x ``size`` render from ``azimuth_deg``
    (elevation 0, the scene's camera distance and lens) whose ray hits (finite
    raw depth) at a point outside the bounding sphere: the missing back wall's
    measure (README "The missing back wall"). A hit within ``hit_epsilon`` of
    the wall counts as inside (the clipped march stops at the wall, give or
    take rounding)."""
    c = scene.cameras
    cam = camera_from_angles(azimuth_deg, 0.0, c.distance, c.fov_deg, size, size)
    depth = render(field, cam, RenderMode.DEPTH, scene.march).reshape(-1)
    origins, dirs = cam.rays()
    hit = np.isfinite(depth)
    points = origins[hit] + dirs[hit] * depth[hit, None]
    radius = scene.march.bound_radius + scene.march.hit_epsilon
    return float((np.linalg.norm(points, axis=1) > radius).sum() / depth.size)


def heldout_iou(source, scene: Scene, cameras: list[Camera], target: Target) -> float | None:
    """The mean mask IoU of ``source`` (a field, or anything :func:`trace_views`
    traces: a :class:`MeshTarget`) against the target on views no fit trains
    on: ``output.heldout_views`` views of a renderable target
    (:func:`heldout_cameras` around ``cameras[0]``, its lens and size), or the
    views of an image folder that ``target.heldout`` keeps out of training;
    None when there are none."""
    if not target.renderable:
        if not target.heldout:
            return None
        held = [v.camera for v in target.heldout]
        return mean_iou(trace_views(source, held, scene.march, Polish.NONE), target.heldout)
    count = scene.output.heldout_views
    if count == 0:
        return None
    held = heldout_cameras(count, cameras[0], scene.cameras.look_at)
    truth = trace_views(target.source, held, scene.march, Polish.NONE)
    guess = trace_views(source, held, scene.march, Polish.NONE)
    return float(
        np.mean([mask_iou(g["mask"], t["mask"]) for g, t in zip(guess, truth, strict=True)])
    )


def surface_samples(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` points (count, 3) drawn uniformly by area on a triangle mesh."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    which = rng.choice(len(tri), count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tri[which]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return points.astype(np.float32)


def mesh_distances(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, device=None
) -> np.ndarray:
    """The distance (N,) of each point (N, 3) to the closest point of a triangle
    mesh, world units (exact: a BVH query on the device)."""
    device = wp.get_device(device)
    mesh_points = wp.array(np.asarray(vertices, np.float32), dtype=wp.vec3, device=device)
    indices = wp.array(np.asarray(faces, np.int32).reshape(-1), dtype=int, device=device)
    mesh = wp.Mesh(points=mesh_points, indices=indices)
    out = wp.empty(len(points), dtype=float, device=device)
    wp.launch(
        mesh_distance_kernel,
        dim=len(points),
        inputs=[mesh.id, wp.array(np.asarray(points, np.float32), dtype=wp.vec3, device=device),
                1.0e6],
        outputs=[out],
        device=device,
    )  # fmt: skip
    return out.numpy()


def surface_scores(
    pred: tuple[np.ndarray, np.ndarray],
    true: tuple[np.ndarray, np.ndarray],
    tau: float = FSCORE_TAU,
    samples: int = SURFACE_SAMPLES,
    seed: int = 0,
    device=None,
) -> dict[str, float]:
    """Chamfer-L1 and F-score@tau of a predicted mesh against the true one,
    each given as (vertices (V, 3), faces (F, 3)), world units.

    Each surface is sampled (:func:`surface_samples`); accuracy is the distance
    of the predicted samples to the true mesh, completeness that of the true
    samples to the predicted mesh. ``chamfer_l1`` is the mean of the two mean
    distances; ``precision`` (``recall``) the share of predicted (true)
    samples within ``tau`` of the other surface; ``fscore`` their harmonic
    mean (0 when both are 0). An empty predicted mesh scores inf and 0."""
    if len(pred[1]) == 0:
        return {"chamfer_l1": float("inf"), "fscore": 0.0, "precision": 0.0, "recall": 0.0}
    rng = np.random.default_rng(seed)
    accuracy = mesh_distances(surface_samples(*pred, samples, rng), *true, device)
    completeness = mesh_distances(surface_samples(*true, samples, rng), *pred, device)
    precision = float((accuracy < tau).mean())
    recall = float((completeness < tau).mean())
    total = precision + recall
    return {
        "chamfer_l1": float(0.5 * (accuracy.mean() + completeness.mean())),
        "fscore": 0.0 if total == 0 else 2.0 * precision * recall / total,
        "precision": precision,
        "recall": recall,
    }


def target_surface(
    target: Target, bound_radius: float, resolution: int = REFERENCE_MESH_RESOLUTION
) -> tuple[np.ndarray, np.ndarray] | None:
    """The target's surface as a mesh: a mesh target's own triangles, an
    analytic target's marching cubes at ``resolution``; None for an image
    folder (it has no surface)."""
    source = target.source
    if isinstance(source, MeshTarget):
        return source.vertices, source.faces
    if isinstance(source, Field):
        return extract_mesh(source, resolution, bound_radius)
    return None


def score_surface(
    source,
    scene: Scene,
    target: Target,
    cameras: list[Camera],
    mesh_resolution: int = 256,
    tau: float = FSCORE_TAU,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float | None]:
    """Score a field or a mesh against the scene's target: ``heldout_iou``
    (:func:`heldout_iou`), and ``chamfer_l1``, ``fscore``, ``precision`` and
    ``recall`` against the target's surface (:func:`surface_scores`; None for
    an image folder). ``source`` is a :class:`Field` (meshed by marching cubes
    at ``mesh_resolution`` for the surface scores) or a mesh (vertices (V, 3),
    faces (F, 3)); ``cameras``: the training cameras (the held-out views
    copy the first one's lens and size); ``reference``: the target's
    surface when the caller has it already (:func:`target_surface`, the
    slow part for an analytic target, worth keeping across calls)."""
    bound = scene.march.bound_radius
    if isinstance(source, Field):
        device, traceable = source.device, source
        mesh = extract_mesh(source, mesh_resolution, bound)
    else:
        mesh = (np.asarray(source[0], np.float32), np.asarray(source[1], np.int32))
        device = wp.get_device()
        traceable = MeshTarget(*mesh, device) if len(mesh[1]) else None
    scores: dict[str, float | None] = {"heldout_iou": None, "tau": tau}
    if traceable is not None:
        scores["heldout_iou"] = heldout_iou(traceable, scene, cameras, target)
    true = reference if reference is not None else target_surface(target, bound)
    keys = ("chamfer_l1", "fscore", "precision", "recall")
    if true is None:
        scores.update(dict.fromkeys(keys))
    else:
        scores.update(surface_scores(mesh, true, tau, device=device))
    return scores
