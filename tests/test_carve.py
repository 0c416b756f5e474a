"""The visual hull (:mod:`warpsdf.carve`), its signed distance, ``warpsdf
carve`` and the surface scores (:mod:`warpsdf.metrics`).

Closed forms first: the device projection inverts the rays of
:meth:`Camera.rays` (non-square, off-axis); the carved lattice equals a slow
host reference (:func:`reference_hull`, built on :meth:`Camera.project`)
wherever no projection falls within a hair of a pixel edge; the hull of a
ball equals the intersection of its tangent cones (computed per point,
exactly) away from a pixel's width of their boundary, contains the ball
(``dilate = 1``), and reaches the closed-form height over the pole of an
orbit; the signed distance of a sampled ball and box is within h / 2 of
theirs. Then the command line, image-folder targets, ``model.init`` and the
scores.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import warp as wp

from tests.conftest import assert_user_error
from tests.conftest import cli as run
from warpsdf.camera import Camera, fibonacci_cameras, orbit_cameras
from warpsdf.camera.rays import (
    FRAME_BACK,
    FRAME_EYE,
    FRAME_RIGHT,
    FRAME_UP,
    DeviceCameras,
    point_pixel,
)
from warpsdf.carve import carve, carve_masks, carve_scene, hull_sdf_at, signed_distance
from warpsdf.errors import SceneError, WarpsdfError
from warpsdf.scene import load_scene

# Lattice points whose projection lies closer than this to a pixel edge (in
# pixels) may fall either side in float64 on host and device: not compared.
EDGE_PX = 1e-6
# The signed distance of a sampled solid is within this many lattice steps
# of the solid's own (carve.py's docstring).
SDF_TOL_STEPS = 0.5


def lattice(n: int, bound: float = 1.0) -> np.ndarray:
    """(n^3, 3) float64 lattice points in carve's order ((i n + j) n + k)."""
    axis = np.linspace(-bound, bound, n)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def ball_masks(cameras: list[Camera], center, radius: float) -> list[np.ndarray]:
    """Closed-form masks: the pixel's centre ray meets the ball in front of the eye."""
    masks = []
    for cam in cameras:
        o, d = (a.astype(np.float64) for a in cam.rays())
        oc = o - np.asarray(center, np.float64)
        b = (oc * d).sum(1)
        disc = b * b - ((oc * oc).sum(1) - radius * radius)
        hit = (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 0)
        masks.append(hit.reshape(cam.height, cam.width))
    return masks


def box_masks(cameras: list[Camera], half: float) -> list[np.ndarray]:
    """Closed-form masks of the cube [-half, half]^3 (slab test)."""
    masks = []
    for cam in cameras:
        o, d = (a.astype(np.float64) for a in cam.rays())
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / d, (half - o) / d
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        masks.append(((near <= far) & (far > 0)).reshape(cam.height, cam.width))
    return masks


def reference_hull(cameras, masks, points, bound) -> tuple[np.ndarray, np.ndarray]:
    """The slow host hull (dilate = 0) of the module docstring of carve.py, and
    where it is decided with a margin (no projection within EDGE_PX of a pixel edge)."""
    radius = np.linalg.norm(points, axis=1)
    inside = radius <= bound
    sure = np.abs(radius - bound) > 1e-9
    for cam, mask in zip(cameras, masks, strict=True):
        row, col = cam.project(points)
        ahead = np.isfinite(row)
        row, col = np.where(ahead, row, -1e9), np.where(ahead, col, -1e9)
        framed = ahead & (row >= 0) & (row < cam.height) & (col >= 0) & (col < cam.width)
        hit = np.zeros(len(points), bool)
        i, j = np.floor(row[framed]).astype(int), np.floor(col[framed]).astype(int)
        hit[framed] = mask[i, j]
        sees_all = not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        inside &= hit | (~framed & (not sees_all))
        edge = np.minimum(np.abs(row - np.round(row)), np.abs(col - np.round(col)))
        sure &= ~ahead | (edge > EDGE_PX)
    return inside, sure


# ---------------------------------------------------------------------------
# projection and the lattice against the host
# ---------------------------------------------------------------------------


@wp.kernel(enable_backward=False, module="unique")
def project_kernel(
    frames: wp.array2d(dtype=wp.vec3d),
    width: wp.array(dtype=int),
    height: wp.array(dtype=int),
    tan_half: wp.array(dtype=wp.float64),
    points: wp.array(dtype=wp.vec3d),
    out: wp.array(dtype=wp.vec3d),
):
    i = wp.tid()
    eye, right = frames[0, FRAME_EYE], frames[0, FRAME_RIGHT]
    up, back = frames[0, FRAME_UP], frames[0, FRAME_BACK]
    out[i] = point_pixel(points[i], width[0], height[0], tan_half[0], eye, right, up, back)


OFF_AXIS = Camera((0.7, 0.9, 2.2), (0.15, -0.1, 0.05), (0.3, 1.0, 0.1), 35.0, 40, 24)


def test_point_pixel_inverts_the_rays(device):
    """Points along each pixel's ray (Camera.rays) project to that pixel's centre."""
    cam = OFF_AXIS
    o, d = cam.rays()
    t = np.random.default_rng(0).uniform(0.5, 4.0, len(d))
    points = o.astype(np.float64) + d.astype(np.float64) * t[:, None]
    points = np.concatenate([points, o[:3] - d[:3]])  # three behind the eye
    dc = DeviceCameras.upload([cam], device)
    out = wp.empty(len(points), dtype=wp.vec3d, device=device)
    wp.launch(project_kernel, dim=len(points),
              inputs=[dc.frames, dc.width, dc.height, dc.tan_half,
                      wp.array(points, dtype=wp.vec3d, device=device)],
              outputs=[out], device=device)  # fmt: skip
    q = out.numpy()
    i, j = np.divmod(np.arange(cam.num_rays), cam.width)
    np.testing.assert_allclose(q[: cam.num_rays, 0], i + 0.5, atol=1e-4)  # float32 rays
    np.testing.assert_allclose(q[: cam.num_rays, 1], j + 0.5, atol=1e-4)
    np.testing.assert_allclose(q[: cam.num_rays, 2], t * -(d @ cam.basis()[2]), rtol=1e-5)
    assert (q[cam.num_rays :, 2] < 0).all()
    row, col = cam.project(points[: cam.num_rays])  # the host twin, to rounding
    np.testing.assert_allclose(q[: cam.num_rays, 0], row, atol=1e-9)
    np.testing.assert_allclose(q[: cam.num_rays, 1], col, atol=1e-9)


@pytest.mark.parametrize("case", ["random_mask", "touching_border", "ball_views"], ids=lambda c: c)
def test_lattice_matches_the_host_reference(case, device):
    """Off-axis, non-square views: the device lattice is the host reference's."""
    rng = np.random.default_rng(1)
    if case == "random_mask":  # clear of the border: outside the frame is empty
        cameras = [OFF_AXIS]
        mask = rng.random((OFF_AXIS.height, OFF_AXIS.width)) < 0.7
        mask[0], mask[-1], mask[:, 0], mask[:, -1] = False, False, False, False
        masks = [mask]
    elif case == "touching_border":  # the frame says nothing about what it does not show
        cameras = [OFF_AXIS, Camera((-2.0, 0.4, -1.0), fov_deg=30.0, width=20, height=30)]
        masks = [rng.random((c.height, c.width)) < 0.8 for c in cameras]
        masks[0][:, 0] = True
    else:
        cameras = fibonacci_cameras(7, 2.2, fov_deg=45.0, width=30, height=22)
        masks = ball_masks(cameras, (0.1, -0.05, 0.08), 0.45)
    n = 41
    got = carve_masks(cameras, masks, n, 1.0, device).reshape(-1)
    want, sure = reference_hull(cameras, masks, lattice(n), 1.0)
    assert sure.mean() > 0.95
    assert want[sure].any() and not want[sure].all()
    assert np.array_equal(got[sure], want[sure]), (got[sure] != want[sure]).sum()


# ---------------------------------------------------------------------------
# the hull of a ball and of a box
# ---------------------------------------------------------------------------


def cone_hull(points, cameras, center, radius, pixel_rad):
    """Exact hull of a ball seen whole by ``cameras``: inside every tangent cone.
    Also where that verdict holds with a margin of ``pixel_rad`` (radians)."""
    c = np.asarray(center, np.float64)
    inside = np.ones(len(points), bool)
    out_by = np.zeros(len(points), bool)  # outside some cone by the margin
    in_by = np.ones(len(points), bool)  # inside every cone by the margin
    for cam in cameras:
        e = np.asarray(cam.eye, np.float64)
        v, axis = points - e, c - e
        dist = np.linalg.norm(axis)
        cos = (v @ axis) / (np.linalg.norm(v, axis=1) * dist)
        angle = np.arccos(np.clip(cos, -1.0, 1.0)) - math.asin(radius / dist)
        inside &= angle <= 0
        out_by |= angle > pixel_rad
        in_by &= angle < -pixel_rad
    return inside, out_by | in_by


def test_ball_hull_is_the_cone_intersection_and_contains_the_ball(device):
    center, radius, n = (0.1, -0.05, 0.08), 0.45, 49
    cameras = fibonacci_cameras(24, 2.5, fov_deg=40.0, width=64, height=48)
    masks = ball_masks(cameras, center, radius)
    points = lattice(n)
    pixel_rad = 2.0 * math.tan(math.radians(20.0)) / 48  # a pixel's angle at the centre
    exact, sure = cone_hull(points, cameras, center, radius, pixel_rad)
    hull = carve(cameras, masks, n, 1.0, device)
    got = hull.inside.reshape(-1)
    assert np.array_equal(got[sure], exact[sure])
    assert sure.mean() > 0.97
    in_ball = np.linalg.norm(points - center, axis=1) <= radius
    dilated = carve_masks(cameras, masks, n, 1.0, device, dilate=1).reshape(-1)
    assert dilated[in_ball].all()  # exact containment (carve.py: dilate = 1)
    assert (got[in_ball]).mean() > 0.9
    # converges: every hull point is within the cone intersection's own excess
    # over the ball (computed on a finer sample), plus a pixel and a lattice step
    fine = np.random.default_rng(2).uniform(-0.7, 0.7, (150_000, 3)) + center
    cones, _ = cone_hull(fine, cameras, center, radius, pixel_rad)
    excess = np.linalg.norm(fine[cones] - center, axis=1).max() - radius
    slack = 2.5 * pixel_rad + hull.step
    assert 0 < excess < 0.1
    assert np.linalg.norm(points[got] - center, axis=1).max() - radius <= excess + slack


def test_orbit_hull_reaches_the_closed_form_height(device):
    """Orbit views at elevation 0 all see the pole under the cone's half-angle:
    the hull's top over the ball's centre is r d / sqrt(d^2 - r^2)."""
    radius, distance, n = 0.5, 2.5, 101
    cameras = orbit_cameras(12, distance, fov_deg=40.0, width=96, height=96)
    hull = carve(cameras, ball_masks(cameras, (0, 0, 0), radius), n, 1.0, device)
    column = hull.inside[n // 2, :, n // 2]  # the points (0, y, 0)
    top = np.linspace(-1, 1, n)[column].max()
    want = radius * distance / math.sqrt(distance**2 - radius**2)
    pixel = distance * 2.0 * math.tan(math.radians(20.0)) / 96
    assert want - hull.step - pixel <= top <= want + pixel


def test_box_hull_contains_the_box(device):
    """A cube from six face views: the hull holds the cube, and along each axis it
    reaches where the side views' silhouettes (the near faces) end: h d / (d - h)."""
    half, distance, n = 0.3, 2.5, 61
    cameras = [
        Camera(tuple(distance * np.array(a)), up=u, fov_deg=30.0, width=80, height=60)
        for a, u in [((1, 0, 0), (0, 1, 0)), ((-1, 0, 0), (0, 1, 0)), ((0, 1, 0), (0, 0, 1)),
                     ((0, -1, 0), (0, 0, 1)), ((0, 0, 1), (0, 1, 0)), ((0, 0, -1), (0, 1, 0))]
    ]  # fmt: skip
    masks = box_masks(cameras, half)
    points = lattice(n)
    in_box = (np.abs(points) <= half).all(axis=1)
    assert carve_masks(cameras, masks, n, 1.0, device, dilate=1).reshape(-1)[in_box].all()
    hull = carve(cameras, masks, n, 1.0, device)
    row = hull.inside[:, n // 2, n // 2]  # the points (x, 0, 0)
    reach = np.linspace(-1, 1, n)[row].max()
    want = half * distance / (distance - half)
    pixel = distance * 2.0 * math.tan(math.radians(15.0)) / 60
    assert want - hull.step - pixel <= reach <= want + pixel


def test_empty_hull_is_an_error(device):
    cam = OFF_AXIS
    with pytest.raises(WarpsdfError, match="empty"):
        carve([cam], [np.zeros((cam.height, cam.width), bool)], 16, 1.0, device)


# ---------------------------------------------------------------------------
# signed distance
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["ball", "box"])
def test_signed_distance_matches_the_closed_form(shape, device):
    n, bound = 48, 1.0
    points = lattice(n, bound)
    h = 2 * bound / (n - 1)
    if shape == "ball":
        truth = np.linalg.norm(points - (0.05, -0.1, 0.02), axis=1) - 0.43
    else:
        q = np.abs(points - (0.02, 0.0, -0.05)) - (0.4, 0.25, 0.3)
        truth = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
    sdf = signed_distance((truth <= 0).reshape(n, n, n), bound, device).reshape(-1)
    assert np.abs(sdf - truth).max() <= SDF_TOL_STEPS * h + 1e-6
    assert np.array_equal(sdf < 0, truth <= 0)


def test_hull_sdf_at_is_trilinear():
    n, bound = 9, 1.0
    points = lattice(n, bound)
    values = (points @ (0.3, -0.2, 0.5) + 0.1).reshape(n, n, n).astype(np.float32)
    probe = np.random.default_rng(3).uniform(-1, 1, (100, 3))
    np.testing.assert_allclose(hull_sdf_at(values, bound, probe), probe @ (0.3, -0.2, 0.5) + 0.1,
                               atol=1e-5)  # fmt: skip
    far = np.array([[3.0, 0.0, 0.0]])  # outside the cube: the face value plus the distance
    assert hull_sdf_at(values, bound, far)[0] == pytest.approx(0.3 + 0.1 + 2.0, abs=1e-5)


# ---------------------------------------------------------------------------
# scenes: shapes, image folders, the command line, model.init
# ---------------------------------------------------------------------------

BALL_SCENE = """
[target]
kind = "shapes"
shapes = [ { type = "sphere", center = [0.05, 0.0, -0.05], radius = 0.4 } ]
[cameras]
layout = "fibonacci"
count = 12
resolution = [40, 32]
"""


@pytest.fixture
def ball_scene(tmp_path) -> Path:
    path = tmp_path / "ball.toml"
    path.write_text(BALL_SCENE, encoding="utf-8")
    return path


def test_image_folder_uses_its_masks_less_the_held_out_views(ball_scene, tmp_path, device):
    assert run("targets", ball_scene, "--out", tmp_path / "views").exit_code == 0
    images = tmp_path / "images.toml"
    images.write_text(
        f'[target]\nkind = "images"\npath = "{(tmp_path / "views" / "cameras.json").as_posix()}"\n'
    )
    shapes_hull = carve_scene(load_scene(ball_scene), 33, device)
    images_hull = carve_scene(load_scene(images), 33, device)
    assert images_hull.views == 12
    assert np.array_equal(images_hull.inside, shapes_hull.inside)
    held = carve_scene(load_scene(images, ["target.heldout=[0, 5]"]), 33, device)
    assert held.views == 10
    assert (held.inside >= shapes_hull.inside).all() and held.voxels > shapes_hull.voxels


def test_cli_writes_the_hull_mesh(ball_scene, tmp_path):
    import trimesh

    out = tmp_path / "hull.ply"
    result = run("carve", ball_scene, "--out", out, "--resolution", 40, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "12 view(s)" in result.output and "40^3" in result.output and "on cpu" in result.output
    mesh = trimesh.load(out, process=False)
    assert len(mesh.faces) > 100 and mesh.is_watertight
    r = np.linalg.norm(np.asarray(mesh.vertices) - (0.05, 0.0, -0.05), axis=1)
    pixel = 2.5 * 2.0 * math.tan(math.radians(20.0)) / 32  # at the centre, world units
    step = 2.0 / 39  # the lattice's
    assert 0.4 - pixel / 2 - step < r.min() and r.max() < 0.52
    obj = tmp_path / "hull.obj"
    assert (
        run("carve", ball_scene, "--out", obj, "-r", 16, "--set", "cameras.count=3").exit_code == 0
    )
    assert obj.read_text().startswith(("#", "v "))
    result = run("carve", "--help")
    for option in ("--out", "--resolution", "--set", "--device", "--force"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--out", "{tmp}/hull.txt"], ["hull.txt", ".ply"]),
        (["--out", "{tmp}/hull.ply", "--resolution", "7"], ["--resolution 7", "[8, 512]"]),
        (["--out", "{tmp}/hull.ply", "-r", "513"], ["--resolution 513"]),
        (["--out", "{tmp}/hull.ply", "--set", "cameras.count=0"], ["cameras.count"]),
        (
            [
                "--out",
                "{tmp}/hull.ply",
                "--set",
                "model.kind=spheres",
                "--set",
                "model.init=visual_hull",
            ],
            ["visual_hull", "grid"],
        ),
        (
            ["--out", "{tmp}/hull.ply", "--set", "target.shapes[0].center=[0, 0, 40]"],
            ["ball.toml", "empty"],
        ),
        (["--out", "{tmp}/hull.ply", "--device", "bogus"], ["bogus"]),
        (["--out", "{tmp}/hull.ply", "-r", "16", "--bogus"], ["--bogus"]),
    ],
)
def test_cli_refuses_bad_input_in_one_line(args, needles, ball_scene, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_user_error(run("carve", ball_scene, *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_cli_needs_force_to_replace(ball_scene, tmp_path):
    out = tmp_path / "hull.ply"
    out.write_text("mine")
    assert_user_error(run("carve", ball_scene, "--out", out, "-r", 16), "hull.ply", "--force")
    assert out.read_text() == "mine"
    assert run("carve", ball_scene, "--out", out, "-r", 16, "--force").exit_code == 0
    assert out.read_bytes().startswith(b"ply")


def test_visual_hull_init_is_refused_for_spheres(ball_scene):
    expected = re.escape("(visual_hull starts kind = mlp | grid | hashgrid only)")
    with pytest.raises(SceneError, match=expected) as err:
        load_scene(ball_scene, ["model.kind=spheres", "model.init=visual_hull"])
    assert len(str(err.value).splitlines()) == 1


def test_grid_starts_from_the_hull(ball_scene, device):
    """model.init = "visual_hull": the grid's first lattice holds the hull's
    signed distance (carved from the fit's own training views)."""
    from warpsdf.carve import HULL_INIT_RESOLUTION
    from warpsdf.fields.grid import lattice_points
    from warpsdf.fit import Fitter

    scene = load_scene(
        ball_scene, ["model.kind=grid", "model.init=visual_hull", "model.grid_resolution=[8, 16]"]
    )
    fitter = Fitter.from_scene(scene, device)
    # the finest lattice from the start: the coarse stages would lose the hull's detail
    assert fitter.field.resolution == 16 and fitter.field.stage_starts(100) == ()
    hull = carve_scene(scene, HULL_INIT_RESOLUTION, device)
    nodes = lattice_points(16, scene.march.bound_radius)
    np.testing.assert_allclose(fitter.field.values(nodes), hull.at(nodes), atol=1e-5)
    sphere = Fitter.from_scene(load_scene(ball_scene, ["model.kind=grid"]), device)
    assert not np.allclose(sphere.field.values(nodes), hull.at(nodes), atol=1e-2)


def _assert_near_hull(field, hull, radius: float, tol: float) -> None:
    """Near the hull's surface the field's distances are within ``tol`` on
    average and its signs agree (away from a hair of the surface); the
    ``radius`` sphere it started as was farther off."""
    from warpsdf.sampling import random_in_ball

    points = random_in_ball(np.random.default_rng(1), 20000, 1.0)
    truth = hull.at(points)
    near = np.abs(truth) < 0.1
    values = field.values(points)
    assert np.mean(np.abs(values - truth)[near]) < tol
    far = np.abs(truth) > 0.03
    assert np.mean(np.sign(values[far]) == np.sign(truth[far])) > 0.99
    ball = np.linalg.norm(points, axis=1) - radius
    assert np.mean(np.abs(ball - truth)[near]) > 3 * tol


def test_a_hash_grid_is_regressed_onto_the_hull(ball_scene):
    """model.init = "visual_hull" for a hash grid: a pre-fit by regression
    (fit/prefit.py) before the first step, with every level on from the start.
    The hull of the ball from 12 views is the ball grown by its silhouette
    cones, so the field is compared with the hull itself."""
    from warpsdf.carve import HULL_INIT_RESOLUTION
    from warpsdf.fit import Fitter

    settings = [
        *("model.kind=hashgrid", "model.hash_levels=4", "model.hash_log2_size=10"),
        *("model.hash_max_resolution=32", "model.hidden=16", "model.init=visual_hull"),
    ]
    scene = load_scene(ball_scene, settings)
    fitter = Fitter.from_scene(scene, "cpu")
    assert fitter.field.stage_starts(100) == () and fitter.field.active_levels == 4
    hull = carve_scene(scene, HULL_INIT_RESOLUTION, "cpu")
    _assert_near_hull(fitter.field, hull, scene.model.init_radius, 0.02)


def test_an_mlp_is_regressed_onto_the_hull(ball_scene):
    """The same pre-fit for an MLP (shorter, so looser)."""
    from warpsdf.carve import HULL_INIT_RESOLUTION
    from warpsdf.fields.factory import make_field
    from warpsdf.fit.prefit import prefit_to_sdf

    scene = load_scene(ball_scene, ["model.hidden=16", "model.layers=2",
                                    "model.fourier_frequencies=2"])  # fmt: skip
    hull = carve_scene(scene, HULL_INIT_RESOLUTION, "cpu")
    field = make_field(scene, np.random.default_rng(0), "cpu")
    errors = prefit_to_sdf(field, hull.at, 1.0, np.random.default_rng(0), steps=80, points=512)
    assert errors[-1] < 0.05 * errors[0]
    _assert_near_hull(field, hull, scene.model.init_radius, 0.03)


# ---------------------------------------------------------------------------
# surface scores
# ---------------------------------------------------------------------------


def test_surface_scores_of_spheres(device):
    import trimesh

    from warpsdf.metrics import FSCORE_TAU, surface_scores

    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    mesh = (np.asarray(ball.vertices, np.float32), np.asarray(ball.faces, np.int32))
    same = surface_scores(mesh, mesh, samples=5000, device=device)
    assert same["chamfer_l1"] < 1e-5 and same["fscore"] == 1.0
    for offset, fscore in ((0.5 * FSCORE_TAU, 1.0), (2.0 * FSCORE_TAU, 0.0)):
        bigger = (mesh[0] * (1 + offset / 0.5), mesh[1])
        s = surface_scores(bigger, mesh, samples=5000, device=device)
        assert s["chamfer_l1"] == pytest.approx(offset, rel=0.05)
        assert s["fscore"] == fscore
    empty = surface_scores((np.zeros((0, 3)), np.zeros((0, 3), int)), mesh, device=device)
    assert empty["fscore"] == 0.0 and empty["chamfer_l1"] == math.inf


def test_score_surface_of_a_hull_and_of_the_target_itself(ball_scene, device):
    from warpsdf.camera import training_cameras
    from warpsdf.metrics import score_surface, target_surface
    from warpsdf.targets import build_target

    scene = load_scene(ball_scene, ["output.heldout_views=4"])
    with wp.ScopedDevice(device):
        target = build_target(scene, device)
        cameras = training_cameras(scene)
        reference = target_surface(target, 1.0, resolution=64)
        itself = score_surface(reference, scene, target, cameras, reference=reference)
        hull = carve_scene(scene, 48, device, target)
        scores = score_surface(hull.mesh(device), scene, target, cameras, reference=reference)
        field = score_surface(target.source, scene, target, cameras, mesh_resolution=64,
                              reference=reference)  # fmt: skip
    assert itself["heldout_iou"] > 0.97 and itself["fscore"] == 1.0
    assert field["fscore"] == 1.0 and field["chamfer_l1"] < 1e-4
    assert 0.85 < scores["heldout_iou"] < itself["heldout_iou"]
    assert 0 < scores["chamfer_l1"] < 0.05 and scores["precision"] < scores["recall"]
