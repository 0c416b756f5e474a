"""Small transforms.json datasets for the tests, made without warpsdf's
marcher: rays cast by trimesh against a trimesh primitive, written in the
NeRF-synthetic layout (RGBA, camera_angle_x, split files) or the nerfstudio
layout (one transforms.json, per-frame intrinsics, mask_path, 16-bit depth in
millimetres, train_filenames / test_filenames)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import trimesh


@dataclass
class Lens:
    """Pixel intrinsics and size."""

    w: int
    h: int
    fx: float
    fy: float
    cx: float
    cy: float


def look_at_c2w(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera to world, OpenGL axes: columns right, up, back (view along -back), eye."""
    eye = np.asarray(eye, float)
    back = eye - np.asarray(target, float)
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def ring_poses(
    count: int,
    radius: float,
    elevation_deg: float,
    target,
    turn_deg: float = 0.0,
    z_up: bool = False,
) -> list[np.ndarray]:
    """Cameras on a ring around ``target`` looking at it; ``z_up``: the ring
    about +Z with +Z up (Blender's, NeRF-synthetic's), else about +Y."""
    el = math.radians(elevation_deg)
    out = []
    for k in range(count):
        az = math.radians(turn_deg + 360.0 * k / count)
        a, b, c = math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)
        offset = np.array([a, c, b] if z_up else [a, b, c])
        up = (0.0, 0.0, 1.0) if z_up else (0.0, 1.0, 0.0)
        out.append(look_at_c2w(np.asarray(target) + radius * offset, target, up))
    return out


def cast(mesh: trimesh.Trimesh, c2w: np.ndarray, lens: Lens) -> tuple[np.ndarray, np.ndarray]:
    """(mask (h, w) bool, z-depth (h, w), 0 on misses) by trimesh ray casting:
    pixel (i, j)'s camera ray is ((j + .5 - cx) / fx, -(i + .5 - cy) / fy, -1)."""
    j, i = np.meshgrid(np.arange(lens.w) + 0.5, np.arange(lens.h) + 0.5)
    d_cam = np.stack([(j - lens.cx) / lens.fx, -(i - lens.cy) / lens.fy, -np.ones_like(i)], -1)
    dirs = d_cam.reshape(-1, 3) @ c2w[:3, :3].T
    t = first_hits(mesh.triangles, c2w[:3, 3], dirs)
    mask = np.isfinite(t)
    depth = np.where(mask, t, 0.0)  # d_cam has z = -1: the ray parameter is the z-depth
    return mask.reshape(lens.h, lens.w), depth.reshape(lens.h, lens.w)


def first_hits(triangles: np.ndarray, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Ray parameter of each ray's nearest triangle hit (inf: none), by the
    Moller-Trumbore test against every triangle (trimesh's own ray casting
    needs rtree, which the project does not install)."""
    v0, e1, e2 = (
        triangles[:, 0],
        triangles[:, 1] - triangles[:, 0],
        triangles[:, 2] - triangles[:, 0],
    )
    best = np.full(len(dirs), np.inf)
    for start in range(0, len(dirs), 256):
        d = dirs[start : start + 256, None, :]
        p = np.cross(d, e2[None])
        det = (p * e1[None]).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = origin - v0
            u = (p * s[None]).sum(-1) * inv
            q = np.cross(s, e1)
            v = (d * q[None]).sum(-1) * inv
            t = (q[None] * e2[None]).sum(-1) * inv
        ok = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        best[start : start + 256] = np.where(ok, t, np.inf).min(axis=1)
    return best


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    planes = 1 if image.ndim == 2 else image.shape[2]
    writer = png.Writer(
        w, h, greyscale=planes == 1, alpha=planes == 4, bitdepth=8 * image.dtype.itemsize
    )
    with open(path, "wb") as fh:
        writer.write(fh, image.reshape(h, w * planes))


def rgba(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    rgb = np.full((h, w, 3), 180, np.uint8)
    return np.concatenate([rgb, np.where(mask, 255, 0).astype(np.uint8)[..., None]], -1)


def nerf_synthetic(folder: Path, mesh, lens: Lens, splits: dict[str, list[np.ndarray]]) -> Path:
    """NeRF-synthetic layout: transforms_SPLIT.json with camera_angle_x (and,
    when the lens is not the centred square-pixel one, fl_x, fl_y, cx, cy, w,
    h), file paths without an extension, RGBA images."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, poses in splits.items():
        frames = []
        for k, c2w in enumerate(poses):
            mask, _ = cast(mesh, c2w, lens)
            write_png(folder / split / f"r_{k}.png", rgba(mask))
            frames.append(
                {"file_path": f"./{split}/r_{k}", "rotation": 0.0, "transform_matrix": c2w.tolist()}
            )
        top = {"camera_angle_x": 2.0 * math.atan(lens.w / (2.0 * lens.fx)), "frames": frames}
        if (lens.fx, lens.cx, lens.cy, lens.w) != (lens.fy, lens.w / 2, lens.h / 2, lens.h):
            top.update(fl_x=lens.fx, fl_y=lens.fy, cx=lens.cx, cy=lens.cy, w=lens.w, h=lens.h)
        (folder / f"transforms_{split}.json").write_text(json.dumps(top))
    return folder


def nerfstudio(
    folder: Path, mesh, lenses: list[Lens], poses: list[np.ndarray], test: list[int]
) -> Path:
    """nerfstudio layout: one transforms.json, OPENCV with zero distortion, the
    first lens at the top and each frame's own, RGB JPEGs with mask_path masks,
    16-bit PNG depth in millimetres, train_filenames / test_filenames."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    frames, names = [], []
    first = lenses[0]
    for k, (c2w, lens) in enumerate(zip(poses, lenses, strict=True)):
        mask, z = cast(mesh, c2w, lens)
        (folder / "images").mkdir(exist_ok=True)
        iio.imwrite(
            folder / "images" / f"frame_{k:05d}.jpg", np.full((lens.h, lens.w, 3), 90, np.uint8)
        )
        write_png(folder / "masks" / f"mask_{k:05d}.png", np.where(mask, 255, 0).astype(np.uint8))
        write_png(folder / "depth" / f"depth_{k:05d}.png", np.round(z * 1000).astype(np.uint16))
        name = f"images/frame_{k:05d}.jpg"
        names.append(name)
        frame = {
            "file_path": name,
            "mask_path": f"masks/mask_{k:05d}.png",
            "depth_file_path": f"depth/depth_{k:05d}.png",
            "transform_matrix": c2w.tolist(),
        }
        if lens != first:
            frame.update(fl_x=lens.fx, fl_y=lens.fy, cx=lens.cx, cy=lens.cy, w=lens.w, h=lens.h)
        frames.append(frame)
    top = {
        "camera_model": "OPENCV",
        "fl_x": first.fx,
        "fl_y": first.fy,
        "cx": first.cx,
        "cy": first.cy,
        "w": first.w,
        "h": first.h,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": frames,
        "train_filenames": [n for k, n in enumerate(names) if k not in test],
        "test_filenames": [names[k] for k in test],
    }
    (folder / "transforms.json").write_text(json.dumps(top))
    return folder / "transforms.json"
