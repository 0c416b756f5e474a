"""Camera rays on the device: the pixel-to-ray formula of
:meth:`warpsdf.camera.Camera.rays`, written once as a ``@wp.func`` that the
renderer, the fit's still cameras and its shaken cameras all call.

The maths is float64, as on the host, and rounds to float32 at the end, so a
device ray equals the host's (tests hold them equal). A camera on the device
is its frame, four float64 vectors (eye and the ray frame R, U, B of
:meth:`Camera.ray_frame`: right, up, back themselves for a field-of-view
camera, scaled and shifted for pixel intrinsics), plus its size and the ndc
scale t (:attr:`Camera.tan_half`: tan(fov / 2), or height / (2 fy)). So the
one formula serves both kinds of camera, and every kernel that reads frames
(the renderer's rays, the fit's shaken cameras, the carve kernel's
projection) takes intrinsics without a new argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from warpsdf.camera.core import Camera

# Rows of a camera frame (the last axis of a frames array).
FRAME_EYE, FRAME_RIGHT, FRAME_UP, FRAME_BACK = 0, 1, 2, 3


@wp.func
def pixel_direction(
    pixel: int,  # row-major pixel id within the camera: row * width + column
    width: int,  # pixels
    height: int,  # pixels
    tan_half: wp.float64,  # the ndc scale t: tan(fov / 2), or height / (2 fy)
    right: wp.vec3d,  # the ray frame R, U, B (Camera.ray_frame), world vectors
    up: wp.vec3d,
    back: wp.vec3d,  # the camera looks along -back
) -> wp.vec3:
    """The unit direction (float32) of the ray through the centre of ``pixel``
    (DESIGN §2; with intrinsics through the ray frame). Not differentiable
    (cameras are constants of a fit)."""
    i = pixel // width
    j = pixel - i * width
    one = wp.float64(1.0)
    two = wp.float64(2.0)
    half = wp.float64(0.5)
    wf = wp.float64(width)
    hf = wp.float64(height)
    ndc_x = (two * (wp.float64(j) + half) / wf - one) * tan_half * wf / hf
    ndc_y = (one - two * (wp.float64(i) + half) / hf) * tan_half
    d = ndc_x * right + ndc_y * up - back
    d = d / wp.length(d)
    return wp.vec3(float(d[0]), float(d[1]), float(d[2]))


@wp.func
def point_pixel(
    point: wp.vec3d,  # world units
    width: int,  # pixels
    height: int,  # pixels
    tan_half: wp.float64,  # the ndc scale t: tan(fov / 2), or height / (2 fy)
    eye: wp.vec3d,  # camera frame: eye (world units), then the ray frame R, U, B
    right: wp.vec3d,
    up: wp.vec3d,
    back: wp.vec3d,  # the camera looks along -back
) -> wp.vec3d:
    """The inverse of :func:`pixel_direction` (the host's twin is
    :meth:`Camera.project`, the same steps): (row, column, depth) of a world
    point, with pixel (i, j)'s centre at (i + 0.5, j + 0.5), row 0 at the top,
    and depth the distance along the view axis n = R x U / |R x U| (world
    units). A point behind the camera has depth <= 0 and row = column = 0.
    Float64, not differentiable."""
    rel = point - eye
    axis = wp.normalize(wp.cross(right, up))
    depth = -wp.dot(rel, axis)
    zero = wp.float64(0.0)
    if depth <= zero:
        return wp.vec3d(zero, zero, depth)
    one = wp.float64(1.0)
    half = wp.float64(0.5)
    wf = wp.float64(width)
    hf = wp.float64(height)
    p = rel * (wp.dot(back, axis) / depth) + back  # on the plane of the frame's rays
    ndc_x = wp.dot(p, right) / wp.dot(right, right)
    ndc_y = wp.dot(p, up) / wp.dot(up, up)
    col = (ndc_x / (tan_half * wf / hf) + one) * wf * half
    row = (one - ndc_y / tan_half) * hf * half
    return wp.vec3d(row, col, depth)


@wp.func
def camera_of_ray(
    ray: int,  # id of a ray among all cameras' rays, camera after camera
    camera_first: wp.array(dtype=int),  # (C,) id of each camera's first ray, ascending
    num_cameras: int,  # C
) -> int:
    """The camera a ray belongs to (a linear scan: cameras are few)."""
    c = int(0)
    for k in range(1, num_cameras):
        if ray >= camera_first[k]:
            c = k
    return c


@wp.kernel(enable_backward=False)
def camera_rays_kernel(
    frames: wp.array2d(dtype=wp.vec3d),  # (C, 4) eye, R, U, B per camera (camera_frames)
    camera_first: wp.array(dtype=int),  # (C,) id of each camera's first output ray
    width: wp.array(dtype=int),  # (C,) pixels
    height: wp.array(dtype=int),  # (C,) pixels
    tan_half: wp.array(dtype=wp.float64),  # (C,) ndc scale t (Camera.tan_half)
    pixel_offset: int,  # added to every pixel id (a tile of rows: first_row * width)
    origins_out: wp.array(dtype=wp.vec3),  # (R,) world units
    directions_out: wp.array(dtype=wp.vec3),  # (R,) unit vectors
):
    """One thread per ray (dim = R, every camera's rays in camera order, each
    camera's row-major). Not differentiable."""
    r = wp.tid()
    c = camera_of_ray(r, camera_first, camera_first.shape[0])
    pixel = r - camera_first[c] + pixel_offset
    eye = frames[c, FRAME_EYE]
    origins_out[r] = wp.vec3(float(eye[0]), float(eye[1]), float(eye[2]))
    directions_out[r] = pixel_direction(
        pixel, width[c], height[c], tan_half[c], frames[c, FRAME_RIGHT], frames[c, FRAME_UP],
        frames[c, FRAME_BACK],
    )  # fmt: skip


def camera_frames(cameras: list[Camera]) -> np.ndarray:
    """(C, 4, 3) float64: eye and the ray frame (:meth:`Camera.ray_frame`: right,
    up, back for a field-of-view camera) of each camera."""
    return np.array([(cam.eye, *cam.ray_frame()) for cam in cameras], np.float64).reshape(-1, 4, 3)


@dataclass
class DeviceCameras:
    """A list of cameras as device arrays (what the ray kernels read).

    ``first``: (C,) id of each camera's first ray; ``width``, ``height``: (C,)
    pixels; ``tan_half``: (C,) float64 ndc scale (:attr:`Camera.tan_half`);
    ``frames``: (C, 4) vec3d eye and ray frame (:func:`camera_frames`);
    ``num_rays``: rays over all cameras.
    """

    first: wp.array
    width: wp.array
    height: wp.array
    tan_half: wp.array
    frames: wp.array
    num_rays: int

    @classmethod
    def upload(cls, cameras: list[Camera], device) -> DeviceCameras:
        first = np.cumsum([0] + [c.num_rays for c in cameras[:-1]])
        tan_half = [c.tan_half for c in cameras]
        return cls(
            first=wp.array(first, dtype=int, device=device),
            width=wp.array([c.width for c in cameras], dtype=int, device=device),
            height=wp.array([c.height for c in cameras], dtype=int, device=device),
            tan_half=wp.array(tan_half, dtype=wp.float64, device=device),
            frames=wp.array(camera_frames(cameras), dtype=wp.vec3d, device=device),
            num_rays=int(sum(c.num_rays for c in cameras)),
        )

    @property
    def count(self) -> int:
        return self.first.shape[0]


def device_rays(
    cameras: list[Camera], device, rows: tuple[int, int] | None = None
) -> tuple[wp.array, wp.array]:
    """Origins and unit directions of every pixel of ``cameras`` on ``device``,
    each (sum H * W,) vec3, camera after camera, row-major: the device twin of
    :func:`warpsdf.camera.core.rays_for`. ``rows = (first, stop)`` (one camera
    only) gives just those image rows (a tile of a large render)."""
    if rows is not None:
        if len(cameras) != 1:
            raise ValueError("rows= takes exactly one camera")
        first_row, stop = rows
        count, offset = (stop - first_row) * cameras[0].width, first_row * cameras[0].width
    else:
        count, offset = None, 0
    dc = DeviceCameras.upload(cameras, device)
    count = dc.num_rays if count is None else count
    origins = wp.empty(count, dtype=wp.vec3, device=device)
    directions = wp.empty(count, dtype=wp.vec3, device=device)
    wp.launch(
        camera_rays_kernel,
        dim=count,
        inputs=[dc.frames, dc.first, dc.width, dc.height, dc.tan_half, offset],
        outputs=[origins, directions],
        device=device,
    )
    return origins, directions
