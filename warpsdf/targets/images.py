"""Image-folder targets: ``cameras.json`` plus masks, XYZ images and depth (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warpsdf.camera import Camera
from warpsdf.camera.cameras_json import default_view_name, heldout_indices, read_cameras
from warpsdf.errors import InputFileError, SceneError
from warpsdf.io.files import write_json
from warpsdf.io.images import read_npy, read_png, write_npy, write_png
from warpsdf.io.layout import ImageFolder
from warpsdf.limits import MAX_RAYS
from warpsdf.scene import Scene
from warpsdf.targets.views import TargetView, decode_xyz, encode_xyz, missing_image


def _check_size(file: Path, array: np.ndarray, camera: Camera, index: int) -> None:
    if array.shape[:2] != (camera.height, camera.width):
        raise InputFileError(
            f"{file}: image is {array.shape[1]}x{array.shape[0]} but cameras[{index}] is "
            f"{camera.width}x{camera.height} (width x height)"
        )


def load_image_views(path: str | Path) -> list[TargetView]:
    """Read every camera's images, in cameras.json order, each view with its
    name and where it came from. The mask comes from the mask file, else from
    finite depth, else from the XYZ image's non-black pixels, else it is None
    (what a view needs is checked where it is used: :func:`missing_image`)."""
    views = []
    for i, entry in enumerate(read_cameras(path)):
        camera, files = entry.camera, entry.files
        mask = xyz = depth = rgb_zero = None
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
            elif rgb_zero is not None:
                mask = ~rgb_zero
        if xyz is not None and mask is not None:
            xyz = np.where(mask[..., None], xyz, 0.0).astype(np.float32)
        if depth is not None and mask is not None:
            depth = np.where(mask, depth, np.inf).astype(np.float32)
        views.append(TargetView(camera, mask, xyz, depth, entry.name, entry.where))
    return views


def split_image_views(
    scene: Scene, views: list[TargetView]
) -> tuple[list[TargetView], list[TargetView]]:
    """An image folder's views (:func:`load_image_views`) split into the
    training views and the views ``target.heldout`` holds out
    (:func:`heldout_indices`, the rule :func:`training_cameras` follows too),
    each in cameras.json order. Raises :class:`SceneError` naming the scene
    file and ``target.heldout`` when the value names no view, a held-out view
    has no mask, or the held-out views are more rays than one trace takes
    (the metrics trace them together)."""
    file = scene.source or scene.name
    held = set(heldout_indices(scene, [v.name for v in views]))
    for i in sorted(held):
        if missing := missing_image(views[i], i, set(), heldout=True):
            raise SceneError(f"{file}: {missing[0]}: {missing[1]}")
    rays = sum(views[i].camera.num_rays for i in held)
    if rays > MAX_RAYS:
        raise SceneError(
            f"{file}: target.heldout: {len(held)} held-out views are {rays:,} rays; "
            f"expected at most {MAX_RAYS:,}"
        )
    train = [v for i, v in enumerate(views) if i not in held]
    return train, [views[i] for i in sorted(held)]


def write_image_views(views: list[TargetView], folder: str | Path) -> Path:
    """Write views as a cameras.json folder: mask_NNN.png (8-bit), xyz_NNN.png
    (16-bit RGB) and depth_NNN.npy (float32, inf for misses), each camera with
    its view's name (``view_NNN`` for a view without one). Returns the json path."""
    folder = ImageFolder(folder)
    entries = []
    for i, view in enumerate(views):
        entry = {"name": view.name or default_view_name(i), **view.camera.to_json()}
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
