"""Image-folder targets: ``cameras.json`` plus masks, XYZ images and depth (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warpsdf.camera import Camera
from warpsdf.camera.cameras_json import read_cameras
from warpsdf.errors import InputFileError
from warpsdf.io.files import write_json
from warpsdf.io.images import read_npy, read_png, write_npy, write_png
from warpsdf.io.layout import ImageFolder
from warpsdf.targets.views import TargetView, decode_xyz, encode_xyz


def _check_size(file: Path, array: np.ndarray, camera: Camera, index: int) -> None:
    if array.shape[:2] != (camera.height, camera.width):
        raise InputFileError(
            f"{file}: image is {array.shape[1]}x{array.shape[0]} but cameras[{index}] is "
            f"{camera.width}x{camera.height} (width x height)"
        )


def load_image_views(path: str | Path) -> list[TargetView]:
    """Read every camera's images. The mask comes from the mask file, else from
    finite depth, else from the XYZ image's non-black pixels."""
    views = []
    for i, (camera, files) in enumerate(read_cameras(path)):
        mask = xyz = depth = None
        if "mask" in files:
            img = read_png(files["mask"])
            _check_size(files["mask"], img, camera, i)
            if img.ndim == 3:
                img = img[..., 0]
            mask = img > (np.iinfo(img.dtype).max // 2)
        if "xyz" in files:
            file = files["xyz"]
            if file.suffix.lower() == ".npy":
                xyz = read_npy(file).astype(np.float32)
                if xyz.ndim != 3 or xyz.shape[2] != 3:
                    raise InputFileError(f"{file}: expected an (H, W, 3) array, got {xyz.shape}")
                rgb_zero = None
            else:
                rgb = read_png(file)
                if rgb.ndim != 3 or rgb.shape[2] < 3:
                    raise InputFileError(f"{file}: expected an RGB image for xyz")
                rgb = rgb[..., :3]
                xyz = decode_xyz(rgb)
                rgb_zero = (rgb == 0).all(axis=2)
            _check_size(file, xyz, camera, i)
            xyz = np.clip(xyz, -1.0, 1.0)
        if "depth" in files:
            depth = read_npy(files["depth"]).astype(np.float32)
            if depth.ndim == 3 and depth.shape[2] == 1:
                depth = depth[..., 0]
            if depth.ndim != 2:
                raise InputFileError(
                    f"{files['depth']}: expected an (H, W) array, got {depth.shape}"
                )
            _check_size(files["depth"], depth, camera, i)
        if mask is None:
            if depth is not None:
                mask = np.isfinite(depth)
            elif xyz is not None and rgb_zero is not None:
                mask = ~rgb_zero
            else:  # every view needs a silhouette: fits and metrics compare masks
                raise InputFileError(
                    f"{path}: cameras[{i}] has no mask: give it a mask, a depth file "
                    "or an xyz PNG (black where there is no object)"
                )
        if xyz is not None and mask is not None:
            xyz = np.where(mask[..., None], xyz, 0.0).astype(np.float32)
        if depth is not None and mask is not None:
            depth = np.where(mask, depth, np.inf).astype(np.float32)
        views.append(TargetView(camera, mask, xyz, depth))
    return views


def write_image_views(views: list[TargetView], folder: str | Path) -> Path:
    """Write views as a cameras.json folder: mask_NNN.png (8-bit), xyz_NNN.png
    (16-bit RGB) and depth_NNN.npy (float32, inf for misses). Returns the json path."""
    folder = ImageFolder(folder)
    entries = []
    for i, view in enumerate(views):
        entry = view.camera.to_json()
        if view.mask is not None:
            entry["mask"] = ImageFolder.image_name("mask", i)
            write_png(folder.path / entry["mask"], (view.mask.astype(np.uint8) * 255))
        if view.xyz is not None:
            entry["xyz"] = ImageFolder.image_name("xyz", i)
            write_png(folder.path / entry["xyz"], encode_xyz(view.xyz, bits=16))
        if view.depth is not None:
            entry["depth"] = ImageFolder.image_name("depth", i)
            write_npy(folder.path / entry["depth"], view.depth.astype(np.float32))
        entries.append(entry)
    write_json(folder.cameras, {"cameras": entries})
    return folder.cameras
