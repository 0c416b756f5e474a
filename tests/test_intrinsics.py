"""Pixel intrinsics (DESIGN §2: fx, fy, cx, cy instead of fov_deg): the host
rays follow the written-out formula, the device rays equal them bit for bit,
projection (host and the carve kernel's ``point_pixel``) inverts them, and a
cameras.json with intrinsics reads back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import warp as wp

from warpsdf.camera import Camera, rays_for, read_cameras
from warpsdf.camera.rays import (
    FRAME_BACK,
    FRAME_EYE,
    FRAME_RIGHT,
    FRAME_UP,
    DeviceCameras,
    device_rays,
    point_pixel,
)
from warpsdf.errors import InputFileError
from warpsdf.targets import TargetView, write_image_views


def intrinsic_ray(i: int, j: int, cam: Camera) -> np.ndarray:
    """DESIGN §2's intrinsics formula for one pixel, in the orthonormal basis."""
    right, up, back = cam.basis()
    ndc_x = (j + 0.5 - cam.cx) / cam.fx
    ndc_y = -(i + 0.5 - cam.cy) / cam.fy
    d = ndc_x * right + ndc_y * up - back
    return d / np.linalg.norm(d)


CAMERAS = [
    # non-square pixels, off-centre principal point, non-square image
    Camera(
        (0.3, 0.4, 2.6), (0.05, -0.1, 0.0), fx=41.5, fy=29.0, cx=13.2, cy=11.7, width=30, height=20
    ),
    Camera(
        (-2.0, 1.1, -1.3),
        up=(0.1, 1.0, 0.0),
        fx=18.0,
        fy=25.0,
        cx=4.0,
        cy=17.5,
        width=16,
        height=24,
    ),
    Camera((0.0, 0.0, 3.0), fx=30.0, fy=30.0, cx=10.0, cy=10.0, width=20, height=20),  # centred
]


@pytest.mark.parametrize("cam", CAMERAS, ids=lambda c: f"{c.width}x{c.height}")
def test_host_rays_follow_the_intrinsics_formula(cam):
    _, dirs = cam.rays()
    for i in range(cam.height):
        for j in (0, cam.width // 2, cam.width - 1):
            np.testing.assert_allclose(dirs[i * cam.width + j], intrinsic_ray(i, j, cam), atol=2e-7)


def test_a_centred_camera_with_intrinsics_is_its_field_of_view_camera():
    cam = CAMERAS[2]
    assert cam.fov_deg == pytest.approx(2 * np.degrees(np.arctan(10.0 / 30.0)))
    plain = Camera(cam.eye, fov_deg=cam.fov_deg, width=20, height=20)
    np.testing.assert_allclose(cam.rays()[1], plain.rays()[1], atol=1e-7)
    np.testing.assert_allclose(plain.intrinsics, cam.intrinsics, rtol=1e-12)


def test_with_resolution_scales_the_intrinsics():
    cam = CAMERAS[0].with_resolution(60, 10)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((83.0, 14.5, 26.4, 5.85))
    assert not cam.with_fov(30.0).has_intrinsics


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(fx=10.0, fy=10.0, cx=1.0), "missing cy"),
        (dict(fx=0.0, fy=10.0, cx=1.0, cy=1.0), "fx"),
        (dict(fx=10.0, fy=10.0, cx=float("nan"), cy=1.0), "cx"),
    ],
)
def test_camera_rejects_bad_intrinsics(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Camera((0.0, 0.0, 2.0), **kwargs)


def test_device_rays_equal_the_host_rays_with_intrinsics(device):
    origins, dirs = rays_for(CAMERAS)
    dev_o, dev_d = device_rays(CAMERAS, device)
    np.testing.assert_array_equal(dev_o.numpy(), origins)
    np.testing.assert_array_equal(dev_d.numpy(), dirs)


@wp.kernel(enable_backward=False, module="unique")
def project_all_kernel(
    frames: wp.array2d(dtype=wp.vec3d),
    width: wp.array(dtype=int),
    height: wp.array(dtype=int),
    tan_half: wp.array(dtype=wp.float64),
    camera: wp.array(dtype=int),
    points: wp.array(dtype=wp.vec3d),
    out: wp.array(dtype=wp.vec3d),
):
    i = wp.tid()
    c = camera[i]
    out[i] = point_pixel(
        points[i],
        width[c],
        height[c],
        tan_half[c],
        frames[c, FRAME_EYE],
        frames[c, FRAME_RIGHT],
        frames[c, FRAME_UP],
        frames[c, FRAME_BACK],
    )


def test_projection_inverts_the_rays_on_host_and_device(device):
    """Points along every pixel's ray project to its centre: Camera.project and
    the carve kernel's point_pixel, which agree to rounding."""
    rng = np.random.default_rng(3)
    points, which, rows, cols = [], [], [], []
    for c, cam in enumerate(CAMERAS):
        o, d = cam.rays()
        t = rng.uniform(0.5, 4.0, len(d))
        points.append(o.astype(np.float64) + d.astype(np.float64) * t[:, None])
        which.append(np.full(len(d), c))
        i, j = np.divmod(np.arange(cam.num_rays), cam.width)
        rows.append(i + 0.5)
        cols.append(j + 0.5)
        row, col = cam.project(points[-1])
        np.testing.assert_allclose(row, i + 0.5, atol=1e-4)  # float32 rays
        np.testing.assert_allclose(col, j + 0.5, atol=1e-4)
    pts, which = np.concatenate(points), np.concatenate(which)
    dc = DeviceCameras.upload(CAMERAS, device)
    out = wp.empty(len(pts), dtype=wp.vec3d, device=device)
    wp.launch(
        project_all_kernel,
        dim=len(pts),
        inputs=[
            dc.frames,
            dc.width,
            dc.height,
            dc.tan_half,
            wp.array(which, dtype=int, device=device),
            wp.array(pts, dtype=wp.vec3d, device=device),
        ],
        outputs=[out],
        device=device,
    )
    q = out.numpy()
    np.testing.assert_allclose(q[:, 0], np.concatenate(rows), atol=1e-4)
    np.testing.assert_allclose(q[:, 1], np.concatenate(cols), atol=1e-4)
    start = 0
    for cam, p in zip(CAMERAS, points, strict=True):
        row, col = cam.project(p)
        np.testing.assert_allclose(q[start : start + len(p), 0], row, atol=1e-9)
        np.testing.assert_allclose(q[start : start + len(p), 1], col, atol=1e-9)
        depth = -(p - np.asarray(cam.eye)) @ cam.basis()[2]
        np.testing.assert_allclose(q[start : start + len(p), 2], depth, rtol=1e-9)
        start += len(p)


def test_cameras_json_with_intrinsics_round_trips_exactly(tmp_path):
    views = [TargetView(cam, np.zeros((cam.height, cam.width), bool)) for cam in CAMERAS[:2]]
    path = write_image_views(views, tmp_path / "views")
    entries = read_cameras(path)
    assert [e.camera for e in entries] == CAMERAS[:2]
    data = json.loads(path.read_text())["cameras"][0]
    assert "fov_deg" not in data and data["fx"] == 41.5 and data["cy"] == 11.7


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"fov_deg": 40.0}, "not both"),
        ({"cy": None}, "missing field 'cy'"),
        ({"fy": -3.0}, "cameras[0].fy"),
    ],
)
def test_cameras_json_refuses_bad_intrinsics(tmp_path, change, needle):
    entry = {**CAMERAS[0].to_json(), **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"cameras": [entry]}))
    with pytest.raises(InputFileError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        read_cameras(path)
