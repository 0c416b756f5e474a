"""Target views: what the fit compares against, one per camera.

Analytic shapes, meshes and image folders all produce the same thing: per
camera a mask, an XYZ image (the visible surface point, clipped to [-1, 1])
and a depth image (ray distance, inf for misses). Any of them may be None
for an image folder that does not provide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warpsdf.camera import Camera


@dataclass(frozen=True)
class TargetView:
    """One camera's target images.

    mask: (H, W) bool, True on the object.
    xyz: (H, W, 3) float32 world position of the visible surface, clipped to
        [-1, 1]; 0 outside the mask.
    depth: (H, W) float32 ray distance to the surface (world units), inf outside.
    """

    camera: Camera
    mask: np.ndarray | None = None
    xyz: np.ndarray | None = None
    depth: np.ndarray | None = None

    def available(self) -> list[str]:
        return [k for k in ("mask", "xyz", "depth") if getattr(self, k) is not None]


def views_from_hits(camera: Camera, hits: dict[str, np.ndarray]) -> TargetView:
    """Build a view from one camera's per-ray march results (numpy, row-major)."""
    h, w = camera.height, camera.width
    hit = hits["hit_t"].reshape(h, w) >= 0.0
    xyz = np.clip(hits["points"].reshape(h, w, 3), -1.0, 1.0).astype(np.float32)
    xyz[~hit] = 0.0
    depth = np.where(hit, hits["hit_t"].reshape(h, w), np.inf).astype(np.float32)
    return TargetView(camera, hit, xyz, depth)


def xyz_to_unit(xyz: np.ndarray) -> np.ndarray:
    """The XYZ colour code (DESIGN §3): points clipped to [-1, 1] -> (xyz + 1) / 2
    in [0, 1]. (The renderer's ``xyz`` mode is its device twin.)"""
    return (np.clip(xyz, -1.0, 1.0) + 1.0) * 0.5


def encode_xyz(xyz: np.ndarray, bits: int = 16) -> np.ndarray:
    """XYZ in [-1, 1] -> unsigned integer RGB, :func:`xyz_to_unit` at full range."""
    full = (1 << bits) - 1
    dtype = np.uint16 if bits > 8 else np.uint8
    return np.round(xyz_to_unit(xyz) * full).astype(dtype)


def decode_xyz(rgb: np.ndarray) -> np.ndarray:
    """Unsigned integer RGB (8- or 16-bit) -> XYZ float32 in [-1, 1]."""
    full = float(np.iinfo(rgb.dtype).max)
    return (rgb.astype(np.float32) / full * 2.0 - 1.0).astype(np.float32)
