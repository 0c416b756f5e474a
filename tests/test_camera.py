"""Cameras (DESIGN §2): the pixel-ray formula on the host and its device
twin, projection, layouts and shake. The march tests check that these rays
see what the closed form says.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from warpsdf.camera import (
    Camera,
    camera_from_angles,
    cameras_from_config,
    eye_from_angles,
    fibonacci_cameras,
    fibonacci_directions,
    jitter_cameras,
    orbit_cameras,
    rays_for,
)
from warpsdf.scene import CameraLayout, CamerasConfig


def design_ray(
    i: int, j: int, width: int, height: int, fov_deg: float, right, up, back
) -> np.ndarray:
    """DESIGN §2 written out for one pixel, from an explicitly given basis."""
    tan_half = math.tan(math.radians(fov_deg) / 2.0)
    ndc_x = (2.0 * (j + 0.5) / width - 1.0) * tan_half * width / height
    ndc_y = (1.0 - 2.0 * (i + 0.5) / height) * tan_half
    d = ndc_x * np.asarray(right, float) + ndc_y * np.asarray(up, float) - np.asarray(back, float)
    return d / np.linalg.norm(d)


def random_cameras() -> list[Camera]:
    """Cameras with various positions, aspect ratios, fovs and up vectors."""
    return [
        Camera((0.0, 0.0, 2.5), fov_deg=40.0, width=32, height=32),
        Camera((0.3, -0.7, 2.1), target=(0.1, 0.2, -0.1), fov_deg=55.0, width=48, height=30),
        Camera((-1.5, 1.2, -1.0), up=(0.2, 1.0, 0.1), fov_deg=25.0, width=20, height=36),
        camera_from_angles(137.0, -35.0, 3.0, fov_deg=70.0, width=41, height=29),
        Camera((0.0, 3.0, 0.0), fov_deg=45.0, width=24, height=24),  # straight down
    ]


# ---------------------------------------------------------------------------
# The pixel-ray formula
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eye", "right", "up", "back"),
    [
        # Eye on +Z looking at the origin: camera axes are the world axes.
        ((0.0, 0.0, 2.5), (1, 0, 0), (0, 1, 0), (0, 0, 1)),
        # Eye on +X looking at the origin: right is -Z (right-handed camera).
        ((2.5, 0.0, 0.0), (0, 0, -1), (0, 1, 0), (1, 0, 0)),
        # Eye on -Z: right is -X.
        ((0.0, 0.0, -4.0), (-1, 0, 0), (0, 1, 0), (0, 0, -1)),
    ],
)
def test_pixel_rays_follow_the_design_formula(eye, right, up, back):
    cam = Camera(eye, fov_deg=50.0, width=7, height=5)
    got_right, got_up, got_back = cam.basis()
    np.testing.assert_allclose(got_right, right, atol=1e-12)
    np.testing.assert_allclose(got_up, up, atol=1e-12)
    np.testing.assert_allclose(got_back, back, atol=1e-12)
    origins, dirs = cam.rays()
    assert origins.shape == dirs.shape == (35, 3)
    assert origins.dtype == dirs.dtype == np.float32
    np.testing.assert_allclose(origins, np.broadcast_to(eye, (35, 3)))
    for i, j in [(0, 0), (0, 6), (4, 0), (4, 6), (2, 3), (1, 5)]:
        expected = design_ray(i, j, 7, 5, 50.0, right, up, back)
        np.testing.assert_allclose(dirs[i * 7 + j], expected, atol=1e-6, err_msg=f"pixel {i, j}")


def test_top_left_pixel_looks_up_and_left():
    """Row 0 is the top of the image and column 0 its left edge."""
    cam = Camera((0.0, 0.0, 2.5), width=16, height=12)
    _, dirs = cam.rays()
    top_left = dirs[0]
    bottom_right = dirs[-1]
    assert top_left[0] < 0 < top_left[1]
    assert bottom_right[1] < 0 < bottom_right[0]
    assert np.all(dirs[:, 2] < 0)  # every ray looks along -Z


def test_odd_sized_image_centre_pixel_looks_at_target():
    cam = Camera((0.4, -0.3, 1.9), target=(0.1, 0.2, -0.3), width=33, height=21)
    _, dirs = cam.rays()
    centre = dirs[10 * 33 + 16]
    expected = np.subtract(cam.target, cam.eye)
    np.testing.assert_allclose(centre, expected / np.linalg.norm(expected), atol=1e-6)


@pytest.mark.parametrize("cam", random_cameras(), ids=lambda c: f"{c.width}x{c.height}")
def test_rays_are_unit_and_the_basis_is_right_handed(cam):
    right, up, back = cam.basis()
    basis = np.stack([right, up, back])
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(right, up), back, atol=1e-12)
    view = np.subtract(cam.target, cam.eye)
    np.testing.assert_allclose(-back, view / np.linalg.norm(view), atol=1e-12)
    _, dirs = cam.rays()
    assert np.isfinite(dirs).all()
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------
# Projection agrees with the rays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cam", random_cameras(), ids=lambda c: f"{c.width}x{c.height}")
def test_projected_points_land_on_the_pixel_whose_ray_passes_through_them(cam):
    rng = np.random.default_rng(7)
    right, up, back = cam.basis()
    eye = np.asarray(cam.eye)
    tan_half = math.tan(math.radians(cam.fov_deg) / 2.0)
    aspect = cam.width / cam.height
    # Random points inside the view frustum, at depths 0.5 to 5 in front of the eye.
    n = 400
    depth = rng.uniform(0.5, 5.0, n)
    sx = rng.uniform(-0.999, 0.999, n) * tan_half * aspect
    sy = rng.uniform(-0.999, 0.999, n) * tan_half
    points = eye + depth[:, None] * (sx[:, None] * right + sy[:, None] * up - back)

    row, col = cam.project(points)
    i, j = np.floor(row).astype(int), np.floor(col).astype(int)
    assert ((i >= 0) & (i < cam.height) & (j >= 0) & (j < cam.width)).all()

    _, dirs = cam.rays()
    d = dirs[i * cam.width + j].astype(np.float64)
    rel = points - eye
    # The pixel's ray at the point's camera depth, and the offset from it.
    along = d * (depth / -(d @ back))[:, None]
    offset = rel - along
    footprint = 2.0 * tan_half * depth / cam.height  # pixel size at that depth
    tol = 1e-5 * depth
    assert np.all(np.abs(offset @ right) <= 0.5 * footprint + tol)
    assert np.all(np.abs(offset @ up) <= 0.5 * footprint + tol)
    # Perpendicular distance to the ray: within half the pixel diagonal.
    perp = rel - (rel * d).sum(1, keepdims=True) * d
    assert np.all(np.linalg.norm(perp, axis=1) <= 0.5 * math.sqrt(2.0) * footprint + tol)


@pytest.mark.parametrize("cam", random_cameras(), ids=lambda c: f"{c.width}x{c.height}")
def test_points_on_a_pixel_ray_project_to_its_centre(cam):
    origins, dirs = cam.rays()
    k = np.arange(0, cam.num_rays, 7)
    t = np.linspace(0.3, 4.0, len(k))
    points = origins[k].astype(np.float64) + t[:, None] * dirs[k].astype(np.float64)
    row, col = cam.project(points)
    np.testing.assert_allclose(row, k // cam.width + 0.5, atol=1e-4)
    np.testing.assert_allclose(col, k % cam.width + 0.5, atol=1e-4)


def test_points_behind_the_camera_project_to_nan():
    cam = Camera((0.0, 0.0, 2.5))
    row, col = cam.project(np.array([[0.0, 0.0, 3.0], [0.1, 0.1, 2.5], [0.0, 0.0, 0.0]]))
    assert np.isnan(row[:2]).all() and np.isnan(col[:2]).all()
    np.testing.assert_allclose([row[2], col[2]], [64.0, 64.0])


# ---------------------------------------------------------------------------
# Angles and layouts
# ---------------------------------------------------------------------------


def test_eye_from_angles_axes():
    np.testing.assert_allclose(eye_from_angles(0.0, 0.0, 2.0), (0.0, 0.0, 2.0), atol=1e-12)
    np.testing.assert_allclose(eye_from_angles(90.0, 0.0, 2.0), (2.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(eye_from_angles(180.0, 0.0, 2.0), (0.0, 0.0, -2.0), atol=1e-12)
    np.testing.assert_allclose(eye_from_angles(-90.0, 0.0, 2.0), (-2.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(eye_from_angles(0.0, 90.0, 2.0), (0.0, 2.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(eye_from_angles(0.0, -90.0, 2.0), (0.0, -2.0, 0.0), atol=1e-12)
    # Elevation 30 at azimuth 90, around an offset centre.
    eye = eye_from_angles(90.0, 30.0, 2.0, center=(1.0, 2.0, 3.0))
    np.testing.assert_allclose(eye, (1.0 + math.sqrt(3.0), 3.0, 3.0), atol=1e-12)


def test_camera_from_angles_looks_at_its_target():
    cam = camera_from_angles(40.0, 25.0, 3.0, fov_deg=30.0, width=9, height=9, target=(0.2, 0, 0))
    assert math.dist(cam.eye, cam.target) == pytest.approx(3.0)
    _, dirs = cam.rays()
    expected = np.subtract(cam.target, cam.eye) / 3.0
    np.testing.assert_allclose(dirs[4 * 9 + 4], expected, atol=1e-6)


@pytest.mark.parametrize("elevation", [90.0, -90.0])
def test_camera_looking_straight_down_or_up_has_finite_rays(elevation):
    cam = camera_from_angles(0.0, elevation, 2.5, width=9, height=9)
    origins, dirs = cam.rays()
    assert np.isfinite(origins).all() and np.isfinite(dirs).all()
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(dirs[40], (0.0, -math.copysign(1.0, elevation), 0.0), atol=1e-6)
    # The image is not degenerate: distinct pixels see distinct directions.
    assert len(np.unique(np.round(dirs, 6), axis=0)) == 81
    row, col = cam.project(np.array([[0.0, 0.0, 0.0]]))
    np.testing.assert_allclose([row[0], col[0]], [4.5, 4.5], atol=1e-9)


def test_fibonacci_cameras_are_deterministic_and_at_distance():
    a = fibonacci_cameras(9, 2.7, target=(0.1, -0.2, 0.3), width=16, height=12)
    b = fibonacci_cameras(9, 2.7, target=(0.1, -0.2, 0.3), width=16, height=12)
    assert a == b
    eyes = np.array([c.eye for c in a])
    np.testing.assert_allclose(np.linalg.norm(eyes - (0.1, -0.2, 0.3), axis=1), 2.7, atol=1e-12)
    assert len(np.unique(np.round(eyes, 9), axis=0)) == 9
    assert all((c.width, c.height, c.target) == (16, 12, (0.1, -0.2, 0.3)) for c in a)


def test_fibonacci_directions_cover_the_sphere_evenly():
    dirs = fibonacci_directions(64)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    # Nearly uniform: the centroid is near the centre, and no two points crowd.
    assert np.linalg.norm(dirs.mean(axis=0)) < 0.02
    cos = dirs @ dirs.T
    np.fill_diagonal(cos, -1.0)
    nearest = np.degrees(np.arccos(np.clip(cos.max(axis=1), -1, 1)))
    # Uniform spacing for 64 points is about sqrt(4 pi / 64) rad = 25 degrees.
    assert nearest.min() > 15.0
    assert nearest.max() < 35.0
    # From near +Y down to near -Y.
    assert dirs[0, 1] > 0.95 and dirs[-1, 1] < -0.95


def test_orbit_cameras_are_evenly_spaced():
    cams = orbit_cameras(5, 3.0, elevation_deg=20.0, azimuth_deg=10.0, width=8, height=8)
    assert len(cams) == 5
    eyes = np.array([c.eye for c in cams])
    np.testing.assert_allclose(np.linalg.norm(eyes, axis=1), 3.0, atol=1e-12)
    np.testing.assert_allclose(eyes[:, 1], 3.0 * math.sin(math.radians(20.0)), atol=1e-12)
    azimuths = np.degrees(np.arctan2(eyes[:, 0], eyes[:, 2]))
    np.testing.assert_allclose(np.diff(np.unwrap(np.radians(azimuths))), math.radians(72.0))
    assert azimuths[0] == pytest.approx(10.0)


def test_cameras_from_config_single_with_angles_and_explicit_eye():
    cfg = CamerasConfig(azimuth_deg=90.0, elevation_deg=0.0, distance=2.0, resolution=(24, 16))
    (cam,) = cameras_from_config(cfg)
    np.testing.assert_allclose(cam.eye, (2.0, 0.0, 0.0), atol=1e-12)
    assert (cam.width, cam.height, cam.fov_deg) == (24, 16, 40.0)  # resolution is [w, h]

    cfg = CamerasConfig(eye=(0.5, 0.5, 2.0), look_at=(0.1, 0.0, 0.0), fov_deg=33.0)
    (cam,) = cameras_from_config(cfg)
    assert cam.eye == (0.5, 0.5, 2.0)
    assert cam.target == (0.1, 0.0, 0.0)
    assert cam.fov_deg == 33.0


def test_cameras_from_config_orbit_and_fibonacci():
    cfg = CamerasConfig(
        layout=CameraLayout.ORBIT, count=4, distance=2.2, elevation_deg=30.0, resolution=(20, 10)
    )
    cams = cameras_from_config(cfg)
    assert cams == orbit_cameras(4, 2.2, 30.0, 0.0, width=20, height=10)
    cfg = CamerasConfig(
        layout=CameraLayout.FIBONACCI, count=6, distance=3.1, fov_deg=30.0, look_at=(0, 0.2, 0)
    )
    cams = cameras_from_config(cfg)
    assert len(cams) == 6
    eyes = np.array([c.eye for c in cams])
    np.testing.assert_allclose(np.linalg.norm(eyes - (0, 0.2, 0), axis=1), 3.1, atol=1e-12)
    assert all(c.fov_deg == 30.0 and c.target == (0, 0.2, 0) for c in cams)
    with pytest.raises(ValueError, match="file"):
        cameras_from_config(CamerasConfig(layout=CameraLayout.FILE))


def test_rays_for_concatenates_in_camera_order():
    cams = [Camera((0, 0, 2.0), width=4, height=3), Camera((2.0, 0, 0), width=5, height=2)]
    origins, dirs = rays_for(cams)
    assert origins.shape == dirs.shape == (22, 3)
    np.testing.assert_array_equal(dirs[:12], cams[0].rays()[1])
    np.testing.assert_array_equal(dirs[12:], cams[1].rays()[1])
    np.testing.assert_array_equal(origins[12:], np.broadcast_to((2.0, 0, 0), (10, 3)))


def test_jitter_moves_eyes_within_the_ball_and_keeps_targets():
    cams = orbit_cameras(20, 2.5, target=(0.1, 0.0, 0.0))
    moved = jitter_cameras(cams, 0.05, np.random.default_rng(3))
    again = jitter_cameras(cams, 0.05, np.random.default_rng(3))
    assert moved == again
    shift = np.array([np.subtract(m.eye, c.eye) for m, c in zip(moved, cams, strict=True)])
    assert np.all(np.linalg.norm(shift, axis=1) <= 0.05 + 1e-12)
    assert np.all(np.linalg.norm(shift, axis=1) > 0)
    assert all(m.target == c.target and m.up == c.up for m, c in zip(moved, cams, strict=True))
    assert jitter_cameras(cams, 0.0, np.random.default_rng(3)) == cams


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 0},
        {"height": -3},
        {"fov_deg": 0.0},
        {"fov_deg": 180.0},
        {"eye": (0.0, 0.0, 0.0)},
    ],
)
def test_camera_rejects_impossible_values(kwargs):
    args = {"eye": (0.0, 0.0, 2.5), **kwargs}
    with pytest.raises(ValueError):
        Camera(**args)


# ------------------------------------------------------------- device rays


def test_device_rays_equal_the_host_rays(device):
    """The device twin of the pixel-ray formula (camera.rays) gives exactly the
    host's float32 rays, for several cameras in one launch and for a tile of rows."""
    from warpsdf.camera.rays import device_rays

    cameras = random_cameras()
    origins, dirs = rays_for(cameras)
    dev_origins, dev_dirs = device_rays(cameras, device)
    np.testing.assert_array_equal(dev_origins.numpy(), origins)
    np.testing.assert_array_equal(dev_dirs.numpy(), dirs)
    cam = cameras[-1]
    tile = (cam.height // 3, cam.height - 1)
    o, d = cam.rays(rows=tile)
    dev_o, dev_d = device_rays([cam], device, rows=tile)
    np.testing.assert_array_equal(dev_o.numpy(), o)
    np.testing.assert_array_equal(dev_d.numpy(), d)


def test_random_in_ball_stays_in_the_ball_and_keeps_the_stream():
    from warpsdf.sampling import random_in_ball

    rng = np.random.default_rng(3)
    points = random_in_ball(rng, 20000, 0.7)
    radii = np.linalg.norm(points, axis=1)
    assert radii.max() <= 0.7 + 1e-12
    # uniform in volume: the fraction inside half the radius is 1/8
    assert abs(np.mean(radii < 0.35) - 0.125) < 0.01
    # camera shake draws from the same stream, one point per camera, in order
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    cams = random_cameras()[:3]
    shaken = jitter_cameras(cams, 0.1, a)
    for cam, moved in zip(cams, shaken, strict=True):
        offset = random_in_ball(b, 1, 0.1)[0]
        np.testing.assert_allclose(np.subtract(moved.eye, cam.eye), offset, atol=1e-12)
