"""transforms.json targets (``kind = "transforms"``): a dataset's views as
:class:`TargetView` s, and ``warpsdf targets --format transforms``, which
writes views as a NeRF-synthetic dataset (:class:`TransformsFolder`).

The cameras, masks, splits and normalisation come from
:func:`warpsdf.camera.read_dataset`; here the depth and XYZ files are read
and mapped into the world:

* depth (``depth_file_path``): a 16-bit PNG or an .npy of z-depth along the
  optical axis (nerfstudio), times ``target.depth_unit_scale`` (dataset
  units), to the ray distance t = z * |((j + 0.5 - cx) / fx, (i + 0.5 - cy) /
  fy, 1)|, times the transform's scale; 0 or non-finite is no surface (inf);
  a downscaled pixel takes its block's mean z.
* XYZ (``xyz_file_path``, warpsdf's own): the colour code of DESIGN §3 in the
  dataset's frame (or an .npy), mapped by the transform and clipped to
  [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from warpsdf.camera import Camera, DatasetFrame, read_dataset
from warpsdf.camera.transforms_json import shrink
from warpsdf.errors import InputFileError, SceneError
from warpsdf.io.files import write_json
from warpsdf.io.images import read_image, read_npy, write_npy, write_png
from warpsdf.io.layout import TransformsFolder
from warpsdf.limits import MAX_RAYS
from warpsdf.scene import Scene
from warpsdf.targets.images import split_image_views
from warpsdf.targets.views import TargetView, decode_xyz, encode_xyz

# Depth files warpsdf writes are in units of 1 / this (the default
# target.depth_unit_scale, nerfstudio's millimetres), as float32 .npy.
WRITTEN_DEPTH_UNITS = 1000.0


def _read_plane(file: Path, where: str, channels: int) -> np.ndarray:
    """An .npy or image as float64 (H, W) (channels 1) or (H, W, 3)."""
    try:
        data = read_npy(file) if file.suffix.lower() == ".npy" else read_image(file)
    except InputFileError as err:
        raise InputFileError(f"{where}: {err}") from None
    if channels == 1 and data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if channels == 3 and data.ndim == 3 and data.shape[2] >= 3:
        data = data[..., :3]
    want = "(H, W)" if channels == 1 else "(H, W, 3)"
    if data.ndim != (2 if channels == 1 else 3):
        raise InputFileError(f"{where}: {file.name}: expected an {want} image, got {data.shape}")
    return data


def _check_full_size(data: np.ndarray, camera: Camera, factor: int, file: Path, where: str):
    h, w = camera.height * factor, camera.width * factor
    if data.shape[:2] != (h, w):
        raise InputFileError(
            f"{where}: {file.name} is {data.shape[1]}x{data.shape[0]}, its image {w}x{h}"
        )


def ray_lengths(camera: Camera) -> np.ndarray:
    """(H, W): the length of each pixel's camera-space direction with unit
    z-component, |((j + 0.5 - cx) / fx, (i + 0.5 - cy) / fy, 1)|: ray
    distance = z-depth times it."""
    fx, fy, cx, cy = camera.intrinsics
    x = (np.arange(camera.width) + 0.5 - cx) / fx
    y = (np.arange(camera.height) + 0.5 - cy) / fy
    return np.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2)


def _depth(frame: DatasetFrame, scene: Scene, scale: float, factor: int) -> np.ndarray:
    file = frame.files["depth"]
    z = _read_plane(file, frame.where, 1).astype(np.float64) * scene.target.depth_unit_scale
    _check_full_size(z, frame.camera, factor, file, frame.where)
    valid = np.isfinite(z) & (z > 0)
    if factor > 1:
        count = shrink(valid.astype(np.float64), factor)
        total = shrink(np.where(valid, z, 0.0), factor)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = total / count
        valid = count > 0
    t = np.where(valid, z * ray_lengths(frame.camera) * scale, np.inf)
    return np.where(frame.mask, t, np.inf).astype(np.float32)


def _xyz(frame: DatasetFrame, transform, factor: int) -> np.ndarray:
    file = frame.files["xyz"]
    raw = _read_plane(file, frame.where, 3)
    xyz = raw.astype(np.float64) if raw.dtype.kind == "f" else decode_xyz(raw)
    _check_full_size(xyz, frame.camera, factor, file, frame.where)
    if factor > 1:
        xyz = np.stack([shrink(xyz[..., c], factor) for c in range(3)], -1)
    world = np.clip(transform.to_world(xyz.reshape(-1, 3)).reshape(xyz.shape), -1.0, 1.0)
    return np.where(frame.mask[..., None], world, 0.0).astype(np.float32)


def load_transforms_views(scene: Scene) -> tuple[list[TargetView], list[TargetView]]:
    """(training views, the held-out split's views) of the scene's dataset,
    in file order, in the world (module docstring). A held-out split's view
    is named ``SPLIT_NAME`` (NeRF-synthetic reuses names across splits)."""
    dataset = read_dataset(scene)
    factor = scene.target.downscale

    def view(frame: DatasetFrame, prefix: str = "") -> TargetView:
        depth = xyz = None
        if "depth" in frame.files:
            depth = _depth(frame, scene, dataset.transform.scale, factor)
        if "xyz" in frame.files:
            xyz = _xyz(frame, dataset.transform, factor)
        return TargetView(frame.camera, np.array(frame.mask), xyz, depth,
                          f"{prefix}{frame.name}", frame.where)  # fmt: skip

    held_prefix = f"{dataset.split.value}_"
    return [view(f) for f in dataset.train], [view(f, held_prefix) for f in dataset.heldout]


def split_transforms_views(scene: Scene) -> tuple[list[TargetView], list[TargetView]]:
    """(training views, held-out views) of a transforms target: the training
    split less what ``target.heldout`` names (:func:`split_image_views`), and
    held out those plus the dataset's held-out split."""
    train, held_split = load_transforms_views(scene)
    train, held = split_image_views(scene, train)
    held = held + held_split
    rays = sum(v.camera.num_rays for v in held)
    if rays > MAX_RAYS:
        raise SceneError(
            f"{scene.source or scene.name}: target.heldout_split: {len(held)} held-out views "
            f"are {rays:,} rays; expected at most {MAX_RAYS:,} (raise target.downscale)"
        )
    return train, held


def transform_matrix(camera: Camera) -> list[list[float]]:
    """The camera-to-world 4x4 matrix (OpenGL axes: columns right, up, back, eye)."""
    right, up, back = camera.basis()
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, camera.eye
    return m.tolist()


def _lens_json(camera: Camera) -> dict:
    fx, fy, cx, cy = camera.intrinsics
    return {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": camera.width, "h": camera.height}


def _frame_json(
    view: TargetView, folder: Path, split: str, index: int, lens: dict, extras: bool
) -> dict:
    own = {k: v for k, v in _lens_json(view.camera).items() if lens.get(k) != v}
    entry = {"file_path": f"./{TransformsFolder.image_name(split, index)}", **own,
             "transform_matrix": transform_matrix(view.camera)}  # fmt: skip
    h, w = view.camera.height, view.camera.width
    mask = view.mask if view.mask is not None else np.zeros((h, w), bool)
    rgb = encode_xyz(view.xyz, bits=8) if view.xyz is not None else np.full((h, w, 3), 200)
    alpha = np.where(mask, 255, 0)[..., None]
    rgba = np.concatenate([rgb, alpha], -1).astype(np.uint8)
    write_png(folder / TransformsFolder.image_name(split, index), rgba)
    if view.depth is not None and extras:
        z = view.depth / ray_lengths(view.camera)  # ray distance -> z-depth
        z = np.where(np.isfinite(z), z * WRITTEN_DEPTH_UNITS, 0.0).astype(np.float32)
        entry["depth_file_path"] = f"./{TransformsFolder.image_name(split, index, 'depth')}"
        write_npy(folder / TransformsFolder.image_name(split, index, "depth"), z)
    if view.xyz is not None and extras:
        entry["xyz_file_path"] = f"./{TransformsFolder.image_name(split, index, 'xyz')}"
        write_png(folder / TransformsFolder.image_name(split, index, "xyz"),
                  encode_xyz(view.xyz, bits=16))  # fmt: skip
    return entry


def write_transforms_views(
    splits: dict[str, list[TargetView]], folder: str | Path, extras: bool = True
) -> Path:
    """Write views as a NeRF-synthetic dataset (:class:`TransformsFolder`):
    ``transforms_SPLIT.json`` per non-empty split, the first camera's lens at
    the top (``camera_angle_x``, ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``,
    ``h``, ``camera_model`` PINHOLE) and a frame's own where it differs.
    Alpha is the mask (255 on the object, above the reader's
    :data:`warpsdf.camera.transforms_json.ALPHA_THRESHOLD`), RGB the XYZ
    colour code; depth as z-depth .npy in units of 1 /
    :data:`WRITTEN_DEPTH_UNITS` and the 16-bit XYZ beside it (``extras``:
    without them, only the RGBA images). Returns the training json's path."""
    folder = Path(folder)
    for split, views in splits.items():
        if not views:
            continue
        (folder / split).mkdir(parents=True, exist_ok=True)
        first = views[0].camera
        lens = _lens_json(first)
        top = {
            "camera_angle_x": 2.0 * math.atan(first.width / (2.0 * lens["fl_x"])),
            "camera_model": "PINHOLE", **lens,
            "frames": [_frame_json(v, folder, split, i, lens, extras) for i, v in enumerate(views)],
        }  # fmt: skip
        write_json(folder / TransformsFolder.json_name(split), top)
    return folder / TransformsFolder.json_name(TransformsFolder.SPLITS[0])
