"""The pinhole camera and its rays on the host (DESIGN §2).

Camera space looks along -Z with +Y up and +X right. Pixel (row i, column j),
row 0 at the top, is hit by the ray through its centre:

    ndc_x = (2 (j + 0.5) / width - 1) * tan(fov/2) * width / height
    ndc_y = (1 - 2 (i + 0.5) / height) * tan(fov/2)
    dir   = normalize(ndc_x * right + ndc_y * up - back)

Everything here is numpy (float64 maths, float32 results). The same formula
runs on the device in :mod:`warpsdf.camera.rays`; tests hold the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from warpsdf.scene import key_problem


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. Positions in world units, field of view in degrees."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_deg: float = 40.0
    width: int = 128
    height: int = 128

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if problem := key_problem("cameras.fov_deg", self.fov_deg):
            raise ValueError(f"fov_deg: {problem}, got {self.fov_deg}")
        if np.allclose(self.eye, self.target):
            raise ValueError("camera eye and target are the same point")

    @property
    def num_rays(self) -> int:
        return self.width * self.height

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
        right, up, back = self.basis()
        tan_half = math.tan(math.radians(self.fov_deg) / 2.0)
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
        get NaN.
        """
        right, up, back = self.basis()
        rel = np.asarray(points, np.float64) - np.asarray(self.eye, np.float64)
        depth = -(rel @ back)
        tan_half = math.tan(math.radians(self.fov_deg) / 2.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc_x = (rel @ right) / depth
            ndc_y = (rel @ up) / depth
        aspect = self.width / self.height
        col = (ndc_x / (tan_half * aspect) + 1.0) * self.width / 2.0
        row = (1.0 - ndc_y / tan_half) * self.height / 2.0
        behind = depth <= 0
        col[behind] = np.nan
        row[behind] = np.nan
        return row, col

    def with_resolution(self, width: int, height: int) -> Camera:
        return replace(self, width=width, height=height)

    def to_json(self) -> dict:
        return {
            "eye": [float(v) for v in self.eye],
            "target": [float(v) for v in self.target],
            "up": [float(v) for v in self.up],
            "fov_deg": float(self.fov_deg),
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
