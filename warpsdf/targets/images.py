"""Image-folder targets: ``cameras.json`` plus masks, XYZ images and depth (DESIGN §3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from warpsdf.camera import Camera
from warpsdf.errors import InputFileError
from warpsdf.io.files import read_json
from warpsdf.io.images import read_npy, read_png, write_npy, write_png
from warpsdf.targets.views import TargetView, decode_xyz, encode_xyz

_VEC_FIELDS = ("eye", "target", "up")
_REQUIRED = ("eye", "target", "up", "fov_deg", "width", "height")
_IMAGE_FIELDS = ("mask", "xyz", "depth")


def read_cameras(path: str | Path) -> list[tuple[Camera, dict[str, Path]]]:
    """Parse a cameras.json -> [(camera, {"mask"|"xyz"|"depth": file})].

    Every camera needs eye, target, up, fov_deg, width and height. Image paths
    are relative to the json file; each must exist.
    """
    path = Path(path)
    data = read_json(path, "cameras file")
    cams = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cams, list) or not cams:
        raise InputFileError(f'{path}: expected {{"cameras": [...]}} with at least one camera')
    out = []
    for i, entry in enumerate(cams):
        where = f"{path}: cameras[{i}]"
        if not isinstance(entry, dict):
            raise InputFileError(f"{where}: expected an object")
        for key in _REQUIRED:
            if key not in entry:
                raise InputFileError(f"{where}: missing field {key!r}")
        for key in _VEC_FIELDS:
            v = entry[key]
            if not (isinstance(v, list) and len(v) == 3 and all(_is_number(c) for c in v)):
                raise InputFileError(f"{where}.{key}: expected 3 numbers, got {v!r}")
        fov = entry["fov_deg"]
        if not _is_number(fov) or not 0 < fov < 180:
            raise InputFileError(f"{where}.fov_deg: expected a number in (0, 180), got {fov!r}")
        for key in ("width", "height"):
            v = entry[key]
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InputFileError(f"{where}.{key}: expected a positive integer, got {v!r}")
        try:  # Camera's own checks (e.g. eye and target the same point)
            camera = Camera(
                tuple(map(float, entry["eye"])), tuple(map(float, entry["target"])),
                tuple(map(float, entry["up"])), float(fov), entry["width"], entry["height"],
            )  # fmt: skip
        except ValueError as err:
            raise InputFileError(f"{where}: {err}") from None
        files: dict[str, Path] = {}
        for key in _IMAGE_FIELDS:
            if entry.get(key) is None:
                continue
            if not isinstance(entry[key], str):
                raise InputFileError(f"{where}.{key}: expected a file name, got {entry[key]!r}")
            file = path.parent / entry[key]
            if not file.is_file():
                raise InputFileError(f"{where}.{key}: file not found: {file}")
            files[key] = file
        out.append((camera, files))
    return out


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


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
        if xyz is not None and mask is not None:
            xyz = np.where(mask[..., None], xyz, 0.0).astype(np.float32)
        if depth is not None and mask is not None:
            depth = np.where(mask, depth, np.inf).astype(np.float32)
        views.append(TargetView(camera, mask, xyz, depth))
    return views


def write_image_views(views: list[TargetView], folder: str | Path) -> Path:
    """Write views as a cameras.json folder: mask_NNN.png (8-bit), xyz_NNN.png
    (16-bit RGB) and depth_NNN.npy (float32, inf for misses). Returns the json path."""
    folder = Path(folder)
    entries = []
    for i, view in enumerate(views):
        entry = view.camera.to_json()
        if view.mask is not None:
            entry["mask"] = f"mask_{i:03d}.png"
            write_png(folder / entry["mask"], (view.mask.astype(np.uint8) * 255))
        if view.xyz is not None:
            entry["xyz"] = f"xyz_{i:03d}.png"
            write_png(folder / entry["xyz"], encode_xyz(view.xyz, bits=16))
        if view.depth is not None:
            entry["depth"] = f"depth_{i:03d}.npy"
            write_npy(folder / entry["depth"], view.depth.astype(np.float32))
        entries.append(entry)
    json_path = folder / "cameras.json"
    json_path.write_text(json.dumps({"cameras": entries}, indent=2) + "\n", encoding="utf-8")
    return json_path
