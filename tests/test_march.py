"""Sphere tracing against closed forms (STYLE "Tests, in layers" 1).

Analytic spheres have an exact ray–sphere intersection, so masks, hit points,
depth, normals and the minimum SDF along a ray can all be checked against
numpy; so can the back wall of the bounding sphere, and the analytic
primitives' values and gradients. The renderer's modes and tiles on top of the
march are tests/test_render.py's subject. Every test that launches a kernel
takes the ``device`` fixture.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import warp as wp

from tests.helpers import (
    BACK_WALL_EYE,
    BACK_WALL_SPHERES,
    DEPTH_TOL,
    TWO_SPHERES,
    XYZ_TOL,
    back_wall_pixels,
    exact_hits,
    sphere_specs,
)
from warpsdf.camera import Camera, cameras_from_config
from warpsdf.fields.analytic import (
    ANALYTIC_FUNCTIONS,
    AnalyticField,
    sdf_shapes,
    sdf_shapes_numpy,
)
from warpsdf.fields.base import FD_GRADIENT_STEP
from warpsdf.march import FAR_SDF, Polish, march, polish_for
from warpsdf.render import trace
from warpsdf.scene import (
    CameraLayout,
    CamerasConfig,
    CombineOp,
    MarchConfig,
    ShapeSpec,
    ShapeType,
    SupervisionConfig,
    SupervisionMode,
    TargetKind,
)
from warpsdf.targets import Target

# Tolerances per output beyond XYZ_TOL and DEPTH_TOL (tests.helpers).
NORMAL_TOL = 1e-2
# At most this fraction of pixels may disagree on hit/miss, all on silhouettes.
MASK_FRACTION = 0.005

OFF_CENTRE = (((0.15, -0.1, 0.2), 0.45),)


def silhouette_only(diff: np.ndarray, exact_mask: np.ndarray) -> np.ndarray:
    """Pixels of ``diff`` with no 8-neighbour of the other exact class (not on a silhouette)."""
    h, w = exact_mask.shape
    pad = np.pad(exact_mask, 1, mode="edge")
    has_other = np.zeros_like(exact_mask)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            nb = pad[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
            has_other |= nb != exact_mask
    return diff & ~has_other


def to_wp(a: np.ndarray, device) -> wp.array:
    return wp.array(np.asarray(a, np.float32), dtype=wp.vec3, device=device)


# ---------------------------------------------------------------------------
# 1. Closed form: masks, hit points and depth from several camera layouts
# ---------------------------------------------------------------------------

LAYOUTS = {
    "single-angles": CamerasConfig(azimuth_deg=30.0, elevation_deg=15.0, resolution=(64, 64)),
    "single-eye": CamerasConfig(eye=(0.3, 0.4, 2.4), look_at=(0.05, 0.0, 0.0), resolution=(48, 48)),
    "orbit": CamerasConfig(
        layout=CameraLayout.ORBIT,
        count=3,
        elevation_deg=20.0,
        azimuth_deg=10.0,
        resolution=(56, 40),
    ),
    "fibonacci": CamerasConfig(
        layout=CameraLayout.FIBONACCI, count=4, distance=2.2, fov_deg=50.0, resolution=(40, 56)
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
@pytest.mark.parametrize("spheres", [TWO_SPHERES, OFF_CENTRE], ids=["two-spheres", "off-centre"])
def test_sphere_views_match_exact_intersection(device, layout, spheres):
    cameras = cameras_from_config(LAYOUTS[layout])
    target = Target(TargetKind.SHAPES, source=AnalyticField(sphere_specs(spheres), device=device))
    views = target.views(cameras, MarchConfig())
    assert len(views) == len(cameras)
    for k, (cam, view) in enumerate(zip(cameras, views, strict=True)):
        origins, dirs = cam.rays()
        ex = exact_hits(origins, dirs, spheres)
        shape = (cam.height, cam.width)
        exact_mask = np.isfinite(ex["t"]).reshape(shape)
        assert view.mask.shape == shape
        assert 0.03 < exact_mask.mean() < 0.9, "the spheres should fill part of the view"

        diff = view.mask != exact_mask
        assert diff.mean() <= MASK_FRACTION, f"camera {k}: {diff.sum()} mask pixels differ"
        stray = silhouette_only(diff, exact_mask)
        assert not stray.any(), (
            f"camera {k}: pixels off the silhouette differ: {np.argwhere(stray)}"
        )

        # Hit points and depth where both agree on a hit, away from occluding
        # silhouettes (where the grazed sphere may be the one hit).
        both = (view.mask & exact_mask & ~ex["graze"].reshape(shape)).reshape(-1)
        assert both.sum() > 0.9 * exact_mask.sum()
        t = ex["t"][both]
        p = origins[both].astype(np.float64) + t[:, None] * dirs[both].astype(np.float64)
        depth = view.depth.reshape(-1)[both]
        xyz = view.xyz.reshape(-1, 3)[both]
        assert np.abs(depth - t).max() <= DEPTH_TOL, (
            f"camera {k}: depth off by {np.abs(depth - t).max()}"
        )
        assert np.abs(xyz - p).max() <= XYZ_TOL, f"camera {k}: xyz off by {np.abs(xyz - p).max()}"
        # Background pixels: depth inf, xyz 0.
        assert np.isinf(view.depth[~view.mask]).all()
        assert (view.xyz[~view.mask] == 0).all()


def test_views_of_several_cameras_equal_views_one_by_one(device):
    cameras = cameras_from_config(LAYOUTS["orbit"])
    target = Target(
        TargetKind.SHAPES, source=AnalyticField(sphere_specs(TWO_SPHERES), device=device)
    )
    together = target.views(cameras, MarchConfig())
    for cam, view in zip(cameras, together, strict=True):
        (alone,) = target.views([cam], MarchConfig())
        np.testing.assert_array_equal(view.mask, alone.mask)
        np.testing.assert_array_equal(view.depth, alone.depth)


# ---------------------------------------------------------------------------
# 7. March extras: min SDF along misses, rays outside the bound, normals
# ---------------------------------------------------------------------------


def test_hit_normals_match_exact_sphere_normals(device):
    field = AnalyticField(sphere_specs(TWO_SPHERES), device=device)
    cam = Camera((0.6, 0.8, 2.2), width=48, height=48)
    origins, dirs = cam.rays()
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig()).numpy()
    hit = hits["hit_t"] >= 0
    assert hit.sum() > 200
    points = hits["points"][hit].astype(np.float64)
    normals = hits["normals"][hit]
    # Which sphere each hit point is on, and its exact outward normal there.
    centres = np.array([c for c, _ in TWO_SPHERES])
    radii = np.array([r for _, r in TWO_SPHERES])
    gap = np.abs(np.linalg.norm(points[:, None] - centres[None], axis=2) - radii)
    k = gap.argmin(axis=1)
    assert gap.min(axis=1).max() < 1e-3, "hit points lie on a sphere"
    exact = (points - centres[k]) / np.linalg.norm(points - centres[k], axis=1, keepdims=True)
    assert np.abs(normals - exact).max() <= NORMAL_TOL
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # Misses have zero normals and hit_t exactly -1.
    assert (hits["hit_t"][~hit] == -1.0).all()
    assert (hits["normals"][~hit] == 0).all()


def test_min_sdf_along_missing_rays_is_the_closest_approach(device):
    radius = 0.3
    field = AnalyticField(sphere_specs((((0.0, 0.0, 0.0), radius),)), device=device)
    # Rays parallel to -Z passing the sphere at offsets 0.32 .. 0.5 (inside the bound).
    offset = np.linspace(0.32, 0.5, 19)
    angle = np.linspace(0.0, 2.0 * np.pi, 19, endpoint=False)
    origins = np.stack([offset * np.cos(angle), offset * np.sin(angle), np.full(19, 2.5)], 1)
    dirs = np.tile([0.0, 0.0, -1.0], (19, 1))
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig()).numpy()
    assert (hits["hit_t"] == -1.0).all()
    gap = offset - radius
    # Sphere tracing samples the ray with steps ~ gap near the closest point,
    # so the smallest sample exceeds the true minimum by at most ~gap^2 / 8(r+gap).
    assert np.all(hits["min_sdf"] >= gap - 1e-5)
    assert np.all(hits["min_sdf"] <= gap + 1e-2)
    # min_t is where min_sdf was sampled: near the closest approach (t = 2.5),
    # and the SDF there is min_sdf.
    assert np.all(np.abs(hits["min_t"] - 2.5) <= gap + 1e-3)
    at_min = origins + hits["min_t"][:, None] * dirs
    np.testing.assert_allclose(np.linalg.norm(at_min, axis=1) - radius, hits["min_sdf"], atol=1e-5)


def test_min_sdf_and_min_t_on_hits(device):
    field = AnalyticField(sphere_specs(OFF_CENTRE), device=device)
    cam = Camera((0.0, 0.0, 2.5), width=24, height=24)
    origins, dirs = cam.rays()
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig()).numpy()
    hit = hits["hit_t"] >= 0
    assert hit.any()
    np.testing.assert_array_equal(hits["min_t"][hit], hits["hit_t"][hit])
    assert np.all(hits["min_sdf"][hit] < 1e-3)


@pytest.mark.parametrize("clip_back", [True, False])
def test_rays_missing_the_bounding_sphere_are_misses(device, clip_back):
    # A sphere entirely outside the bound, straight ahead of rays that never
    # enter the bound: everything lives in the bound, so these rays miss.
    field = AnalyticField(sphere_specs((((0.0, 0.0, 0.0), 0.3), ((2.0, 0.0, -2.0), 0.5))), device)
    origins = np.array([[2.0, 0.0, 2.0], [1.2, 0.0, 3.0], [0.0, 1.5, 2.5]])
    dirs = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    config = MarchConfig(bound_radius=1.0, clip_back=clip_back)
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), config).numpy()
    np.testing.assert_array_equal(hits["hit_t"], -1.0)
    np.testing.assert_array_equal(hits["min_sdf"], FAR_SDF)
    np.testing.assert_array_equal(hits["normals"], 0.0)
    # Without the bound the first ray would hit the outside sphere at t = 3.5.
    big = MarchConfig(bound_radius=3.5, clip_back=clip_back)
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), big).numpy()
    assert hits["hit_t"][0] == pytest.approx(3.5, abs=DEPTH_TOL)


def test_rays_starting_inside_the_bound(device):
    field = AnalyticField(sphere_specs(OFF_CENTRE), device=device)
    origins = np.array([[0.15, -0.1, 0.9], [0.15, -0.1, 0.66]])
    dirs = np.tile([0.0, 0.0, -1.0], (2, 1))
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig()).numpy()
    np.testing.assert_allclose(hits["hit_t"], [0.9 - 0.65, 0.66 - 0.65], atol=DEPTH_TOL)


def test_camera_straight_down_sees_a_round_sphere(device):
    spheres = (((0.0, 0.0, 0.0), 0.5),)
    field = AnalyticField(sphere_specs(spheres), device=device)
    cam = Camera((0.0, 2.5, 0.0), width=32, height=32)
    origins, dirs = cam.rays()
    assert np.isfinite(dirs).all()
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig()).numpy()
    ex = exact_hits(origins, dirs, spheres)
    exact = np.isfinite(ex["t"])
    mask = hits["hit_t"] >= 0
    assert exact.sum() > 100
    assert (mask != exact).mean() <= MASK_FRACTION
    keep = mask & exact & ~ex["graze"]
    np.testing.assert_allclose(hits["hit_t"][keep], ex["t"][keep], atol=DEPTH_TOL)
    assert hits["hit_t"][keep].min() == pytest.approx(2.0, abs=0.01)  # straight below


def test_march_reuses_the_output_buffers(device):
    field = AnalyticField(sphere_specs(OFF_CENTRE), device=device)
    cam = Camera((0.0, 0.0, 2.5), width=16, height=16)
    o, d = (to_wp(a, device) for a in cam.rays())
    first = march(field, o, d, MarchConfig())
    expected = first.hit_t.numpy().copy()
    again = march(field, o, d, MarchConfig(), out=first)
    assert again is first
    np.testing.assert_array_equal(again.hit_t.numpy(), expected)


def test_march_without_polish_keeps_what_a_silhouette_reads(device):
    """Polish.NONE: the same hard mask and the same least-SDF samples of misses as
    Polish.NEWTON; a hit is the first sample below hit_epsilon (its min_sdf and
    min_t), in front of the surface; no normal or grad f . d;
    and the per-hit work (POLISH_STEPS Newton steps, the normal) is not done."""
    config = MarchConfig()
    field = AnalyticField(sphere_specs(TWO_SPHERES), device=device)
    o, d = (to_wp(a, device) for a in Camera((0.6, 0.8, 2.2), width=40, height=40).rays())
    exact = march(field, o, d, config).numpy()
    rough = march(field, o, d, config, polish=Polish.NONE).numpy()
    hit = exact["hit_t"] >= 0
    assert 100 < hit.sum() < hit.size - 100
    np.testing.assert_array_equal(rough["hit_t"] >= 0, hit)
    for key in ("hit_t", "min_sdf", "min_t", "points"):
        np.testing.assert_array_equal(rough[key][~hit], exact[key][~hit])
    np.testing.assert_array_equal(rough["min_t"][hit], rough["hit_t"][hit])
    # an exact SDF: sphere tracing stops within hit_epsilon of the surface, in
    # front of it (along the ray that is up to hit_epsilon / cos of the incidence)
    sdf = rough["min_sdf"][hit]
    assert (sdf >= 0.0).all() and (sdf < config.hit_epsilon).all()
    assert (exact["hit_t"][hit] - rough["hit_t"][hit]).min() >= -1e-5
    assert (rough["normals"] == 0).all() and (rough["grad_dot_dir"] == 0).all()
    np.testing.assert_array_equal(rough["evals"][~hit], exact["evals"][~hit])
    assert (exact["evals"][hit] - rough["evals"][hit] >= 4).all()


@pytest.mark.parametrize("polish", list(Polish))
def test_a_nan_field_ends_rays_and_shows_in_min_sdf(device, polish):
    """A broken field (NaN everywhere) ends each ray at its first sample with
    min_sdf NaN, so whatever reads the least SDF (a silhouette-only fit's tape,
    then its finiteness guard) sees it; rays outside the bound stay FAR_SDF."""
    from warpsdf.fields.mlp import MLPField
    from warpsdf.fields.mlp_core import geometric_init

    params = geometric_init(1, 8, 1, 0.5, np.random.default_rng(0))
    params[-1] = np.nan  # b_out
    field = MLPField(params, 1, 8, 1, device=device)
    origins = np.array([[0.0, 0.0, 2.5], [0.3, 0.2, 2.5], [3.0, 0.0, 2.5]])
    dirs = np.tile([0.0, 0.0, -1.0], (3, 1))
    hits = march(field, to_wp(origins, device), to_wp(dirs, device), MarchConfig(), polish=polish)
    hits = hits.numpy()
    assert np.isnan(hits["min_sdf"][:2]).all() and hits["min_sdf"][2] == FAR_SDF
    np.testing.assert_array_equal(hits["evals"], [1, 1, 0])
    np.testing.assert_array_equal(hits["hit_t"], -1.0)


@pytest.mark.parametrize(
    ("modes", "polish"),
    [
        ((SupervisionMode.SILHOUETTE,), Polish.NONE),
        ((SupervisionMode.XYZ,), Polish.NEWTON),
        ((SupervisionMode.SILHOUETTE, SupervisionMode.DEPTH), Polish.NEWTON),
    ],
)
def test_a_fit_polishes_hits_only_for_exact_point_terms(modes, polish):
    assert polish_for(SupervisionConfig(mode=modes)) is polish


# ---------------------------------------------------------------------------
# 6. The back wall of the bounding sphere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("clip_back", [True, False])
def test_back_wall_analytic(device, clip_back):
    field = AnalyticField(sphere_specs(BACK_WALL_SPHERES), device=device)
    cam = Camera(BACK_WALL_EYE, width=48, height=48)
    origins, dirs = cam.rays()
    px = back_wall_pixels(cam)
    assert px["only_far"].sum() > 300, "the far sphere shows around the near one"
    config = MarchConfig(bound_radius=1.0, clip_back=clip_back)
    hits = trace(field, to_wp(origins, device), to_wp(dirs, device), config).numpy()
    hit = hits["hit_t"] >= 0
    near_t = px["near"]["t"]
    near = np.isfinite(near_t) & ~px["graze"]
    # The near sphere looks the same either way.
    np.testing.assert_allclose(hits["hit_t"][near], near_t[near], atol=DEPTH_TOL)
    only_far = px["only_far"] & ~px["graze"]
    if clip_back:
        # Rays leave through the back wall before reaching the far sphere.
        assert not hit[only_far].any()
        assert (hit == np.isfinite(near_t))[~px["graze"]].all()
    else:
        assert hit[only_far].all()
        far_t = px["far"]["t"][only_far]
        np.testing.assert_allclose(hits["hit_t"][only_far], far_t, atol=DEPTH_TOL)
        p = origins[only_far] + far_t[:, None] * dirs[only_far]
        np.testing.assert_allclose(hits["points"][only_far], p, atol=XYZ_TOL)


# ---------------------------------------------------------------------------
# 3. Analytic primitives: Warp against the numpy reference and exact values
# ---------------------------------------------------------------------------


@wp.kernel
def eval_sdf_kernel(
    params: wp.array(dtype=float),  # (P,) shape records
    meta: wp.array(dtype=Any),  # field sizes (generic: whatever dtype the field uses)
    points: wp.array(dtype=wp.vec3),  # (N,) world units
    sdf_out: wp.array(dtype=float),  # (N,) signed distance
    grad_out: wp.array(dtype=wp.vec3),  # (N,) spatial gradient
):
    """One thread per point (dim = N)."""
    i = wp.tid()
    sdf_out[i] = sdf_shapes(params, meta, points[i])
    grad_out[i] = ANALYTIC_FUNCTIONS.grad(params, meta, points[i])


def eval_sdf(shapes, points: np.ndarray, device) -> tuple[np.ndarray, np.ndarray]:
    field = AnalyticField(shapes, device=device)
    n = len(points)
    sdf = wp.empty(n, dtype=float, device=device)
    grad = wp.empty(n, dtype=wp.vec3, device=device)
    wp.launch(
        eval_sdf_kernel,
        dim=n,
        inputs=[field.params, field.meta, to_wp(points, device)],
        outputs=[sdf, grad],
        device=device,
    )
    return sdf.numpy(), grad.numpy()


PRIMITIVES = {
    ShapeType.SPHERE: {"radius": 0.35},
    ShapeType.BOX: {"half_size": (0.3, 0.2, 0.12)},
    ShapeType.ROUNDED_BOX: {"half_size": (0.3, 0.2, 0.12), "corner_radius": 0.05},
    ShapeType.CAPSULE: {"radius": 0.1, "length": 0.5},
    ShapeType.TORUS: {"major_radius": 0.35, "minor_radius": 0.08},
    ShapeType.CYLINDER: {"radius": 0.2, "height": 0.5},
}


def test_every_shape_type_has_a_primitive_case():
    assert set(PRIMITIVES) == set(ShapeType)


@pytest.mark.parametrize("shape_type", list(ShapeType), ids=[t.value for t in ShapeType])
@pytest.mark.parametrize(
    "placement",
    [
        {},
        {"center": (0.1, -0.2, 0.15), "rotation_deg": (30.0, -50.0, 75.0), "scale": 1.3},
        {"center": (-0.3, 0.05, 0.0), "rotation_deg": (0.0, 90.0, 0.0), "scale": 0.6},
    ],
    ids=["plain", "placed", "rot-y90-small"],
)
def test_primitive_matches_numpy_reference(device, shape_type, placement):
    spec = ShapeSpec(type=shape_type, **PRIMITIVES[shape_type], **placement)
    rng = np.random.default_rng(11)
    points = np.asarray(spec.center) + spec.scale * rng.uniform(-0.6, 0.6, (2000, 3))
    got, grad = eval_sdf([spec], points, device)
    expected = sdf_shapes_numpy([spec], points)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert (expected < 0).sum() > 5, "some points are inside"
    # The field's gradient is the tetrahedral central difference with step
    # FD_GRADIENT_STEP: compare with the same stencil on the numpy reference,
    # and check it is a unit vector away from the medial axis.
    h = FD_GRADIENT_STEP
    stencil = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], float)
    fd = sum(k * sdf_shapes_numpy([spec], points + h * k)[:, None] for k in stencil) / (4 * h)
    np.testing.assert_allclose(grad, fd, atol=1e-3)
    unit = np.abs(np.linalg.norm(fd, axis=1) - 1.0) < 1e-3
    assert unit.mean() > 0.8
    np.testing.assert_allclose(np.linalg.norm(grad[unit], axis=1), 1.0, atol=2e-3)


@pytest.mark.parametrize(
    ("op", "k"),
    [(CombineOp.UNION, 0.05), (CombineOp.SMOOTH_UNION, 0.1), (CombineOp.SUBTRACT, 0.05)],
    ids=["union", "smooth_union", "subtract"],
)
def test_combined_shapes_match_numpy_reference(device, op, k):
    shapes = [
        ShapeSpec(type=ShapeType.BOX, half_size=(0.4, 0.3, 0.3), rotation_deg=(10.0, 20.0, 0.0)),
        ShapeSpec(type=ShapeType.SPHERE, radius=0.3, center=(0.3, 0.2, 0.1), op=op, k=k),
        ShapeSpec(
            type=ShapeType.TORUS,
            major_radius=0.4,
            minor_radius=0.1,
            center=(0.0, -0.2, 0.0),
            rotation_deg=(90.0, 0.0, 0.0),
            op=CombineOp.SMOOTH_UNION,
            k=0.08,
        ),
    ]
    rng = np.random.default_rng(5)
    points = rng.uniform(-1.0, 1.0, (3000, 3))
    got, _ = eval_sdf(shapes, points, device)
    np.testing.assert_allclose(got, sdf_shapes_numpy(shapes, points), atol=2e-6)


S = ShapeType
# (shape, point, exact signed distance)
EXACT_VALUES = [
    (ShapeSpec(type=S.SPHERE, radius=0.5, center=(0.1, 0.2, 0.3)), (1.1, 0.2, 0.3), 0.5),
    (ShapeSpec(type=S.SPHERE, radius=0.5, center=(0.1, 0.2, 0.3)), (0.1, 0.2, 0.3), -0.5),
    (ShapeSpec(type=S.SPHERE, radius=0.2, scale=2.0), (0.0, 0.7, 0.0), 0.3),
    (ShapeSpec(type=S.BOX, half_size=(0.3, 0.2, 0.1)), (1.0, 0.0, 0.0), 0.7),
    (ShapeSpec(type=S.BOX, half_size=(0.3, 0.2, 0.1)), (0.6, 0.6, 0.05), 0.5),
    (ShapeSpec(type=S.BOX, half_size=(0.3, 0.2, 0.1)), (0.0, 0.0, 0.0), -0.1),
    # Rotated 90 degrees about Z: the long axis lies along Y.
    (ShapeSpec(type=S.BOX, half_size=(0.3, 0.1, 0.1), rotation_deg=(0, 0, 90)), (0, 1, 0), 0.7),
    (ShapeSpec(type=S.BOX, half_size=(0.3, 0.1, 0.1), rotation_deg=(0, 0, 90)), (1, 0, 0), 0.9),
    (
        ShapeSpec(type=S.ROUNDED_BOX, half_size=(0.3, 0.2, 0.1), corner_radius=0.05),
        (0.3 + 0.6, 0.2 + 0.8, 0.0),  # beyond the rounded x-y edge
        math.hypot(0.6 + 0.05, 0.8 + 0.05) - 0.05,
    ),
    (ShapeSpec(type=S.CAPSULE, radius=0.1, length=0.6), (0.0, 1.0, 0.0), 0.6),
    (ShapeSpec(type=S.CAPSULE, radius=0.1, length=0.6), (0.5, 0.2, 0.0), 0.4),
    (ShapeSpec(type=S.TORUS, major_radius=0.5, minor_radius=0.1), (0.0, 0.0, 0.0), 0.4),
    (ShapeSpec(type=S.TORUS, major_radius=0.5, minor_radius=0.1), (0.0, 0.0, 0.5), -0.1),
    (ShapeSpec(type=S.TORUS, major_radius=0.5, minor_radius=0.1), (0.5, 0.3, 0.0), 0.2),
    (ShapeSpec(type=S.CYLINDER, radius=0.2, height=0.4), (0.0, 0.0, 0.0), -0.2),
    (ShapeSpec(type=S.CYLINDER, radius=0.2, height=0.4), (1.0, 0.0, 0.0), 0.8),
    (ShapeSpec(type=S.CYLINDER, radius=0.2, height=0.4), (0.0, 1.0, 0.0), 0.8),
    (ShapeSpec(type=S.CYLINDER, radius=0.2, height=0.4), (0.5, 0.6, 0.0), 0.5),
]


@pytest.mark.parametrize(("spec", "point", "expected"), EXACT_VALUES)
def test_primitive_exact_values(device, spec, point, expected):
    got, _ = eval_sdf([spec], np.array([point], float), device)
    assert got[0] == pytest.approx(expected, abs=1e-6)
    assert sdf_shapes_numpy([spec], np.array([point], float))[0] == pytest.approx(expected)


def test_rotations_are_right_handed_and_applied_x_then_y_then_z(device):
    # +30 degrees about Z turns the box's long X axis towards +Y.
    box = ShapeSpec(type=S.BOX, half_size=(0.5, 0.05, 0.05), rotation_deg=(0.0, 0.0, 30.0))
    on_axis = 0.4 * np.array([math.cos(math.radians(30)), math.sin(math.radians(30)), 0.0])
    mirrored = on_axis * (1, -1, 1)
    got, _ = eval_sdf([box], np.array([on_axis, mirrored]), device)
    assert got[0] < 0 < got[1]
    # A capsule along local Y, rotated 90 about X (Y -> Z) and then 90 about Y
    # (Z -> X), lies along world X.
    capsule = ShapeSpec(type=S.CAPSULE, radius=0.05, length=1.0, rotation_deg=(90.0, 90.0, 0.0))
    got, _ = eval_sdf([capsule], np.array([[0.45, 0, 0], [0, 0.45, 0], [0, 0, 0.45]]), device)
    assert got[0] < 0 < min(got[1], got[2])


def test_combine_ops_exact_values(device):
    a = ShapeSpec(type=S.SPHERE, radius=0.5)
    b_center = (0.6, 0.0, 0.0)
    points = np.array([[0.0, 0.0, 0.0], [0.45, 0.0, 0.0], [1.2, 0.0, 0.0], [0.3, 0.0, 0.0]])
    # Union: min of the two distances.
    union = [a, ShapeSpec(type=S.SPHERE, radius=0.3, center=b_center)]
    got, _ = eval_sdf(union, points, device)
    np.testing.assert_allclose(got, [-0.5, -0.3 + 0.15, 0.3, -0.2], atol=1e-6)
    # Subtract: max(a, -b). The point 0.45 lies inside b, so it is carved out.
    sub = [a, ShapeSpec(type=S.SPHERE, radius=0.3, center=b_center, op=CombineOp.SUBTRACT)]
    got, _ = eval_sdf(sub, points, device)
    np.testing.assert_allclose(got, [-0.3, 0.15, 0.7, 0.0], atol=1e-6)
    # Smooth union: equal to min far from the seam, and k/4 below it on the seam.
    k = 0.2
    smooth = [
        a,
        ShapeSpec(type=S.SPHERE, radius=0.5, center=(1.2, 0, 0), op=CombineOp.SMOOTH_UNION, k=k),
    ]
    got, _ = eval_sdf(
        smooth, np.array([[0.6, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.6, 0.6, 0.0]]), device
    )
    assert got[0] == pytest.approx(0.1 - k / 4, abs=1e-6)
    assert got[1] == pytest.approx(0.0, abs=1e-6)
    seam = math.hypot(0.6, 0.6) - 0.5
    assert got[2] == pytest.approx(seam - k / 4, abs=1e-6)
