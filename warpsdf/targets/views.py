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
from warpsdf.render import xyz_to_unit
from warpsdf.scene import SupervisionMode

# Where a view's mask can come from (an image folder: load_image_views).
MASK_SOURCES = "give it a mask, a depth file or an xyz PNG (black where there is no object)"


@dataclass(frozen=True)
class TargetView:
    """One camera's target images.

    mask: (H, W) bool, True on the object.
    xyz: (H, W, 3) float32 world position of the visible surface, clipped to
        [-1, 1]; 0 outside the mask.
    depth: (H, W) float32 ray distance to the surface (world units), inf outside.
    name: the view's name (an image folder's views: from its cameras.json).
    where: where it came from, for messages (``"FILE: cameras[i]"``); empty
        for views traced from a renderable target.
    """

    camera: Camera
    mask: np.ndarray | None = None
    xyz: np.ndarray | None = None
    depth: np.ndarray | None = None
    name: str = ""
    where: str = ""

    def available(self) -> list[str]:
        return [k for k in ("mask", "xyz", "depth") if getattr(self, k) is not None]

    def label(self, index: int) -> str:
        """How messages name the view: ``"FILE: cameras[i] (name 'NAME')"``,
        else ``"target view INDEX"``."""
        if not self.where:
            return f"target view {index}"
        return f"{self.where} (name {self.name!r})" if self.name else self.where


def missing_image(
    view: TargetView, index: int, modes: set[SupervisionMode], heldout: bool = False
) -> tuple[str, str] | None:
    """What a view lacks for its use, as (scene key, problem), else None; the
    problem names the view and reads on its own (the fit raises it as is,
    ``warpsdf validate`` after the scene file and the key). Every
    view needs a mask: the loss compares masks (and takes xyz and depth only
    where the target mask is set), and so do the train and held-out IoU. A
    training view also needs the xyz or depth image its supervision.mode lists;
    a held-out view (``heldout``) only its mask."""
    label = view.label(index)
    if view.mask is None:
        key, use = ("target.heldout", "held-out") if heldout else ("target.path", "training")
        return key, f"{label} has no mask, which every {use} view needs: {MASK_SOURCES}"
    if heldout:
        return None
    for mode in (SupervisionMode.XYZ, SupervisionMode.DEPTH):
        if mode in modes and getattr(view, mode.value) is None:
            text = f"{label} has no {mode.value} image, and supervision.mode lists {mode.value}"
            return "supervision.mode", text
    return None


def views_from_hits(camera: Camera, hits: dict[str, np.ndarray]) -> TargetView:
    """Build a view from one camera's per-ray march results (numpy, row-major)."""
    h, w = camera.height, camera.width
    hit = hits["hit_t"].reshape(h, w) >= 0.0
    xyz = np.clip(hits["points"].reshape(h, w, 3), -1.0, 1.0).astype(np.float32)
    xyz[~hit] = 0.0
    depth = np.where(hit, hits["hit_t"].reshape(h, w), np.inf).astype(np.float32)
    return TargetView(camera, hit, xyz, depth)


def encode_xyz(xyz: np.ndarray, bits: int = 16) -> np.ndarray:
    """XYZ in [-1, 1] -> unsigned integer RGB, :func:`xyz_to_unit` at full range."""
    full = (1 << bits) - 1
    dtype = np.uint16 if bits > 8 else np.uint8
    return np.round(xyz_to_unit(xyz) * full).astype(dtype)


def decode_xyz(rgb: np.ndarray) -> np.ndarray:
    """Unsigned integer RGB (8- or 16-bit) -> XYZ float32 in [-1, 1]."""
    full = float(np.iinfo(rgb.dtype).max)
    return (rgb.astype(np.float32) / full * 2.0 - 1.0).astype(np.float32)
