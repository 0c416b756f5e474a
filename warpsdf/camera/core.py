"""The pinhole camera and its rays on the host (DESIGN §2).

Camera space looks along -Z with +Y up and +X right. Pixel (row i, column j),
row 0 at the top, is hit by the ray through its centre:

    ndc_x = (2 (j + 0.5) / width - 1) * tan(fov/2) * width / height
    ndc_y = (1 - 2 (i + 0.5) / height) * tan(fov/2)
    dir   = normalize(ndc_x * right + ndc_y * up - back)

or, for a camera with pixel intrinsics ``fx, fy, cx, cy`` (real data: non-square
pixels, an off-centre principal point), ndc_x = (j + 0.5 - cx) / fx and
ndc_y = -(i + 0.5 - cy) / fy. Both are one formula (:meth:`Camera.ray_frame`):
with t = height / (2 fy), the first formula's ndc values are taken along the
*ray frame* R = (fy / fx) right, U = up,
B = back - ((width / 2 - cx) / fx) right - ((cy - height / 2) / fy) up, which is
(right, up, back) itself for a field-of-view camera. The device kernels
(:mod:`warpsdf.camera.rays`) take that frame and t, so every kernel that casts
or projects a ray serves both kinds of camera unchanged.

Everything here is numpy (float64 maths, float32 results). The same formula
runs on the device in :mod:`warpsdf.camera.rays`; tests hold the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from warpsdf.scene import key_problem

# The pixel intrinsics, in the order a camera and a cameras.json give them.
INTRINSICS = ("fx", "fy", "cx", "cy")


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. Positions in world units, field of view in degrees.

    Optional pixel intrinsics (all four or none): ``fx``, ``fy`` focal lengths
    and ``cx``, ``cy`` the principal point, in pixels (the image's top-left
    corner is (0, 0), pixel (i, j)'s centre is (j + 0.5, i + 0.5) as (x, y)).
    With them ``fov_deg`` is derived: the vertical field of view they give,
    2 atan(height / (2 fy)).
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_deg: float = 40.0
    width: int = 128
    height: int = 128
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        given = [k for k in INTRINSICS if getattr(self, k) is not None]
        if given and len(given) != len(INTRINSICS):
            missing = ", ".join(k for k in INTRINSICS if k not in given)
            raise ValueError(f"intrinsics need all of fx, fy, cx, cy; missing {missing}")
        if given:
            for key in INTRINSICS:
                value = getattr(self, key)
                if not math.isfinite(value) or (key in ("fx", "fy") and value <= 0):
                    rule = "a finite value > 0" if key in ("fx", "fy") else "a finite value"
                    raise ValueError(f"{key}: expected {rule} (pixels), got {value}")
            fov = math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))
            object.__setattr__(self, "fov_deg", fov)
        if problem := key_problem("cameras.fov_deg", self.fov_deg):
            raise ValueError(f"fov_deg: {problem}, got {self.fov_deg}")
        if np.allclose(self.eye, self.target):
            raise ValueError("camera eye and target are the same point")

    @property
    def num_rays(self) -> int:
        return self.width * self.height

    @property
    def has_intrinsics(self) -> bool:
        """Whether the camera has pixel intrinsics (else a field of view)."""
        return self.fx is not None

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels; a field-of-view camera's are
        fy = fx = height / (2 tan(fov / 2)), cx = width / 2, cy = height / 2."""
        if self.has_intrinsics:
            return (self.fx, self.fy, self.cx, self.cy)
        f = self.height / (2.0 * self.tan_half)
        return (f, f, self.width / 2.0, self.height / 2.0)

    @property
    def tan_half(self) -> float:
        """t, the scale of the ray formula's ndc values: tan(fov / 2), or
        height / (2 fy) for a camera with intrinsics (module docstring)."""
        if self.has_intrinsics:
            return self.height / (2.0 * self.fy)
        return math.tan(math.radians(self.fov_deg) / 2.0)

    def ray_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame (R, U, B) the ray formula runs in (module docstring),
        float64 world vectors: :meth:`basis` itself for a field-of-view
        camera; for intrinsics R = (fy / fx) right, U = up and B = back less the
        principal point's offset from the image centre."""
        right, up, back = self.basis()
        if not self.has_intrinsics:
            return right, up, back
        fx, fy, cx, cy = self.intrinsics
        shift_x = (self.width / 2.0 - cx) / fx
        shift_y = (cy - self.height / 2.0) / fy
        return (fy / fx) * right, up, back - shift_x * right - shift_y * up

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-space (right, up, back) unit vectors; the camera looks along -back.

        If ``up`` is parallel to the view direction, another world axis is used.
        """
        eye = np.asarray(self.eye, np.float64)
        back = eye - np.asarray(self.target, np.float64)
        back /= np.linalg.norm(back)
        up = np.asarray(self.up, np.float64)
        right = np.cross(up, back)
        if np.linalg.norm(right) < 1e-8 * max(np.linalg.norm(up), 1e-30):
            for axis in (np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])):
                right = np.cross(axis, back)
                if np.linalg.norm(right) > 1e-6:
                    break
        right /= np.linalg.norm(right)
        true_up = np.cross(back, right)
        return right, true_up, back

    def rays(self, rows: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Origins and unit directions, each (height * width, 3) float32, row-major
        (ray index = row * width + column). ``rows = (first, stop)`` gives only
        those image rows (a tile of a large render)."""
        right, up, back = self.ray_frame()
        tan_half = self.tan_half
        first, stop = rows if rows is not None else (0, self.height)
        j = np.arange(self.width, dtype=np.float64) + 0.5
        i = np.arange(first, stop, dtype=np.float64) + 0.5
        ndc_x = (2.0 * j / self.width - 1.0) * tan_half * self.width / self.height
        ndc_y = (1.0 - 2.0 * i / self.height) * tan_half
        dirs = (
            ndc_x[None, :, None] * right[None, None, :]
            + ndc_y[:, None, None] * up[None, None, :]
            - back[None, None, :]
        )
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        dirs = dirs.reshape(-1, 3)
        origins = np.broadcast_to(np.asarray(self.eye, np.float64), dirs.shape)
        return origins.astype(np.float32), dirs.astype(np.float32)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> continuous pixel coordinates (row, column), each (N,).

        Pixel (i, j)'s centre is at (i + 0.5, j + 0.5). Points behind the camera
        get NaN. The inverse of :meth:`rays` in the ray frame (the device twin is
        :func:`warpsdf.camera.rays.point_pixel`, the same steps): the view axis
        n = R x U / |R x U|, depth = -rel . n, the point scaled onto the ray
        plane p = rel B.n / depth + B, then ndc_x = p.R / |R|^2, ndc_y = p.U / |U|^2.
        """
        right, up, back = self.ray_frame()
        rel = np.asarray(points, np.float64).reshape(-1, 3) - np.asarray(self.eye, np.float64)
        axis = np.cross(right, up)
        axis /= np.linalg.norm(axis)
        depth = -(rel @ axis)
        tan_half = self.tan_half
        with np.errstate(divide="ignore", invalid="ignore"):
            p = rel * (np.dot(back, axis) / depth)[:, None] + back
            ndc_x = (p @ right) / np.dot(right, right)
            ndc_y = (p @ up) / np.dot(up, up)
        aspect = self.width / self.height
        col = (ndc_x / (tan_half * aspect) + 1.0) * self.width / 2.0
        row = (1.0 - ndc_y / tan_half) * self.height / 2.0
        behind = depth <= 0
        col[behind] = np.nan
        row[behind] = np.nan
        return row, col

    def with_resolution(self, width: int, height: int) -> Camera:
        """The same view at another size; intrinsics scale with it (fx, cx by
        the width's ratio, fy, cy by the height's)."""
        if not self.has_intrinsics:
            return replace(self, width=width, height=height)
        sx, sy = width / self.width, height / self.height
        return replace(
            self, width=width, height=height,
            fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
        )  # fmt: skip

    def with_fov(self, fov_deg: float) -> Camera:
        """The same view with a vertical field of view (intrinsics dropped)."""
        return replace(self, fov_deg=fov_deg, fx=None, fy=None, cx=None, cy=None)

    def to_json(self) -> dict:
        """The camera as a cameras.json entry (DESIGN §3): ``fx, fy, cx, cy``
        instead of ``fov_deg`` when it has intrinsics. Floats are written as
        Python's repr, so reading back gives the same camera."""
        lens = (
            {k: float(getattr(self, k)) for k in INTRINSICS}
            if self.has_intrinsics
            else {"fov_deg": float(self.fov_deg)}
        )
        return {
            "eye": [float(v) for v in self.eye],
            "target": [float(v) for v in self.target],
            "up": [float(v) for v in self.up],
            **lens,
            "width": int(self.width),
            "height": int(self.height),
        }


def eye_from_angles(
    azimuth_deg: float, elevation_deg: float, distance: float, center=(0.0, 0.0, 0.0)
) -> tuple[float, float, float]:
    """eye = center + distance * (cos(el) sin(az), sin(el), cos(el) cos(az)).
    Azimuth 0 is on +Z, azimuth 90 on +X."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    d = (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))
    return tuple(float(c + distance * v) for c, v in zip(center, d, strict=True))


def camera_angles(camera: Camera) -> tuple[float, float, float]:
    """(azimuth_deg, elevation_deg, distance) of a camera's eye around its target."""
    rel = np.asarray(camera.eye, np.float64) - np.asarray(camera.target, np.float64)
    distance = float(np.linalg.norm(rel))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, rel[1] / distance))))
    azimuth = math.degrees(math.atan2(rel[0], rel[2]))
    return azimuth, elevation, distance


def camera_from_angles(
    azimuth_deg: float,
    elevation_deg: float,
    distance: float,
    fov_deg: float = 40.0,
    width: int = 128,
    height: int = 128,
    target=(0.0, 0.0, 0.0),
    up=(0.0, 1.0, 0.0),
) -> Camera:
    """A camera on the sphere of radius ``distance`` around ``target``, looking at it."""
    eye = eye_from_angles(azimuth_deg, elevation_deg, distance, target)
    return Camera(eye, tuple(target), tuple(up), fov_deg, width, height)


def rays_for(cameras: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated rays of several cameras, in camera order: (sum H*W, 3) each."""
    parts = [cam.rays() for cam in cameras]
    return (
        np.concatenate([p[0] for p in parts], axis=0),
        np.concatenate([p[1] for p in parts], axis=0),
    )
