"""transforms.json datasets (DESIGN §3): the NeRF-synthetic / instant-ngp and
nerfstudio layouts, read into warpsdf cameras and masks.

One reader serves both flavours; every key may sit at the top of the file
(the whole dataset) or in a frame (that frame only, nerfstudio's per-frame
intrinsics):

* pose: ``frames[].transform_matrix``, camera to world, OpenGL axes (the
  camera looks along -Z, +Y up), which are warpsdf's (DESIGN §2). Its
  rotation must be one (columns orthonormal to 1e-3 after scaling, det > 0).
* lens: ``fl_x``/``fl_y`` (pixels), else ``camera_angle_x``/``camera_angle_y``
  (radians; fy = fx when neither ``fl_y`` nor ``camera_angle_y`` is given),
  ``cx``/``cy`` (default: the image centre), ``w``/``h`` (default: the image's
  size). ``camera_model`` OPENCV, PINHOLE or SIMPLE_PINHOLE; nonzero lens
  distortion (k1..k6, p1, p2) is refused, as is any other camera model.
* images: ``file_path`` (relative to the json; without an extension .png,
  .jpg and .jpeg are tried). The mask is ``mask_path`` (8/16-bit, object >
  half of full scale), else the image's alpha: object where
  alpha >= :data:`ALPHA_THRESHOLD` of full scale. ``depth_file_path``
  (nerfstudio: 16-bit PNG or .npy, z-depth along the optical axis, times
  ``target.depth_unit_scale``) and ``xyz_file_path`` (warpsdf's own: the XYZ
  colour code of DESIGN §3, in the dataset's frame) are read by
  :mod:`warpsdf.targets.transforms`.
* instant-ngp's ``scale``/``offset`` (ngp point = scale * point + offset,
  the object inside [0, 1]^3) give the region the automatic normalisation
  searches first (:mod:`warpsdf.camera.normalize`).

Each problem is one line naming the file and the frame
(``FILE: frames[i] (FILE_PATH): ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from warpsdf.camera.core import Camera
from warpsdf.errors import InputFileError
from warpsdf.io.images import read_image
from warpsdf.io.reading import read_json

# A pixel is on the object where its alpha is at least this fraction of full scale.
ALPHA_THRESHOLD = 0.5
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CAMERA_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2")
# Columns of a pose's rotation must be orthonormal to this (after removing a scale).
ROTATION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DatasetFrame:
    """One frame of a transforms.json: as read, in the dataset's own frame;
    once :func:`warpsdf.camera.dataset.read_dataset` has placed it, in the
    world (only ``camera`` changes).

    camera: its camera (dataset or world units), at the image's size over ``downscale``;
    mask: (H, W) bool at that size, read-only; files: {"image" | "mask" |
    "depth" | "xyz": path}; name: the image file's stem; where: ``"FILE: frames[i]
    (FILE_PATH)"`` for messages."""

    camera: Camera
    mask: np.ndarray
    files: dict[str, Path]
    name: str
    where: str


@dataclass(frozen=True)
class TransformsFile:
    """A parsed transforms.json: its frames (in file order) and the top-level
    keys the split and normalisation read."""

    path: Path
    frames: list[DatasetFrame]
    data: dict


def _fail(where: str, problem: str) -> InputFileError:
    return InputFileError(f"{where}: {problem}")


def _number(value: object, where: str, key: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        rule = "a finite number > 0" if positive else "a finite number"
        raise _fail(where, f"{key}: expected {rule}, got {value!r}")
    return float(value)


def _find_image(base: Path, file_path: object, where: str, key: str) -> Path:
    """The file a ``file_path`` names (relative to the json's folder), trying
    :data:`IMAGE_SUFFIXES` when it has none that exists."""
    if not isinstance(file_path, str) or not file_path:
        raise _fail(where, f"{key}: expected a file path, got {file_path!r}")
    file = base / file_path
    if file.is_file():
        return file
    for suffix in IMAGE_SUFFIXES:
        candidate = file.with_name(file.name + suffix)
        if candidate.is_file():
            return candidate
    tried = ", ".join(IMAGE_SUFFIXES)
    raise _fail(where, f"{key}: file not found: {file} (also tried {tried})")


def pose_basis(matrix: object, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A camera-to-world ``transform_matrix`` (3x4 or 4x4, OpenGL axes) ->
    (eye, up, back) float64: the position and the unit +Y and +Z camera axes."""
    try:
        m = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        m = None
    if m is None or m.ndim != 2 or m.shape not in ((3, 4), (4, 4)):
        raise _fail(where, "transform_matrix: expected 4 rows of 4 numbers")
    if not np.isfinite(m).all():
        raise _fail(where, "transform_matrix: holds non-finite values")
    rot = m[:3, :3]
    norms = np.linalg.norm(rot, axis=0)
    if norms.min() <= 1e-9 * max(norms.max(), 1e-300) or abs(np.linalg.det(rot)) < 1e-12:
        raise _fail(where, "transform_matrix: the rotation is singular")
    unit = rot / norms
    if np.abs(unit.T @ unit - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(unit) < 0:
        raise _fail(where, "transform_matrix: the 3x3 part is not a rotation (camera to world)")
    return m[:3, 3].copy(), unit[:, 1], unit[:, 2]


def _lens(
    get, where: str, image_size: tuple[int, int] | None, image_name: str = "the image"
) -> tuple[int, int, float, float, float, float]:
    """(w, h, fx, fy, cx, cy) of a frame; ``get(key)``: the frame's value, else
    the file's; ``image_size``: (w, h) of the image when it was read."""
    model = get("camera_model")
    if model is not None and model not in CAMERA_MODELS:
        raise _fail(
            where,
            f"camera_model {model!r} is not supported: expected one of "
            f"{', '.join(CAMERA_MODELS)} (undistorted pinhole images)",
        )
    for key in DISTORTION_KEYS:
        if (v := get(key)) is not None and _number(v, where, key) != 0.0:
            raise _fail(
                where,
                f"{key} = {v}: lens distortion is not supported; undistort the images "
                "first (e.g. COLMAP's image_undistorter) and set it to 0",
            )
    size = []
    for key, index in (("w", 0), ("h", 1)):
        v = get(key)
        if v is None:
            if image_size is None:
                raise _fail(where, f"missing {key!r} and no image to take it from")
            v = image_size[index]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            v = _number(v, where, key, positive=True)
            if v != int(v):
                raise _fail(where, f"{key}: expected a whole number of pixels, got {v!r}")
        size.append(int(v))
    w, h = size
    if image_size is not None and image_size != (w, h):
        raise _fail(
            where,
            f"images of mixed sizes: {image_name} is {image_size[0]}x{image_size[1]} but "
            f"w, h say {w}x{h}",
        )
    fx = _focal(get, where, "fl_x", "camera_angle_x", w)
    if fx is None:
        raise _fail(where, "no focal length: expected fl_x or camera_angle_x")
    fy = _focal(get, where, "fl_y", "camera_angle_y", h) or fx
    cx = _number(get("cx"), where, "cx") if get("cx") is not None else w / 2.0
    cy = _number(get("cy"), where, "cy") if get("cy") is not None else h / 2.0
    return w, h, fx, fy, cx, cy


def _focal(get, where: str, key: str, angle_key: str, size: int) -> float | None:
    if get(key) is not None:
        return _number(get(key), where, key, positive=True)
    if get(angle_key) is None:
        return None
    angle = _number(get(angle_key), where, angle_key, positive=True)
    if angle >= math.pi:
        raise _fail(where, f"{angle_key}: expected radians in (0, pi), got {angle}")
    return 0.5 * size / math.tan(angle / 2.0)


def _mask(image: np.ndarray, where: str, key: str) -> np.ndarray:
    """Object fraction per pixel in [0, 1]: a mask file's first channel, or an
    image's alpha (grey + alpha or RGBA)."""
    full = float(np.iinfo(image.dtype).max)
    if key == "mask_path":
        plane = image if image.ndim == 2 else image[..., 0]
        return (plane > full / 2).astype(np.float32)
    if image.ndim != 3 or image.shape[2] not in (2, 4):
        raise _fail(where, "the image has no alpha channel and the frame no mask_path: "
                    "warpsdf fits silhouettes and needs a mask per frame")  # fmt: skip
    return image[..., -1].astype(np.float32) / full


def shrink(values: np.ndarray, factor: int) -> np.ndarray:
    """Block means of (H, W) values over ``factor`` x ``factor`` pixels."""
    if factor == 1:
        return values
    h, w = values.shape
    return values.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def _frame(
    entry: object, index: int, path: Path, top: dict, downscale: int, first_size
) -> DatasetFrame:
    where = f"{path}: frames[{index}]"
    if not isinstance(entry, dict):
        raise _fail(where, "expected an object")
    if "file_path" in entry and isinstance(entry["file_path"], str):
        where = f"{where} ({entry['file_path']})"

    def get(key: str):
        return entry.get(key, top.get(key))

    if "transform_matrix" not in entry:
        raise _fail(where, "missing 'transform_matrix'")
    eye, up, back = pose_basis(entry["transform_matrix"], where)
    image = _find_image(path.parent, entry.get("file_path"), where, "file_path")
    files = {"image": image}
    for key, name in (("depth_file_path", "depth"), ("xyz_file_path", "xyz")):
        if entry.get(key) is not None:
            files[name] = _find_image(path.parent, entry[key], where, key)
    mask_key = "mask_path" if entry.get("mask_path") is not None else "file_path"
    mask_file = _find_image(path.parent, entry[mask_key], where, mask_key)
    if mask_key == "mask_path":
        files["mask"] = mask_file
    try:
        pixels = read_image(mask_file)
    except InputFileError as err:
        raise _fail(where, str(err)) from None
    size = (pixels.shape[1], pixels.shape[0])
    declared = get("w") is not None and get("h") is not None
    if not declared and first_size is not None and size != first_size:
        raise _fail(where, f"images of mixed sizes: {mask_file.name} is {size[0]}x{size[1]} "
                    f"but frames[0]'s is {first_size[0]}x{first_size[1]}")  # fmt: skip
    w, h, fx, fy, cx, cy = _lens(get, where, size, mask_file.name)
    if w % downscale or h % downscale:
        raise _fail(where, f"target.downscale = {downscale} does not divide {w}x{h}")
    alpha = shrink(_mask(pixels, where, mask_key), downscale)
    mask = alpha >= ALPHA_THRESHOLD
    if not mask.any():
        source = "mask_path" if mask_key == "mask_path" else f"alpha >= {ALPHA_THRESHOLD}"
        raise _fail(where, f"the mask covers nothing ({source} nowhere)")
    mask.setflags(write=False)
    k = float(downscale)
    try:
        camera = Camera(
            tuple(eye), tuple(eye - back), tuple(up), width=w // downscale, height=h // downscale,
            fx=fx / k, fy=fy / k, cx=cx / k, cy=cy / k,
        )  # fmt: skip
    except ValueError as err:
        raise _fail(where, str(err)) from None
    return DatasetFrame(camera, mask, files, image.stem, where)


def spread(count: int, limit: int) -> list[int]:
    """At most ``limit`` of ``count`` indices, evenly spaced, first and last kept."""
    if limit >= count:
        return list(range(count))
    if limit <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, limit)})


def read_transforms_file(
    path: str | Path, downscale: int = 1, limit: int | None = None
) -> TransformsFile:
    """Parse a transforms.json and read its frames' masks (module docstring);
    with ``limit``, only that many frames, evenly spaced (:func:`spread`).
    Raises :class:`InputFileError`, one line naming the file and the frame."""
    path = Path(path)
    data = read_json(path, "transforms file")
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InputFileError(f'{path}: expected {{"frames": [...]}} with at least one frame')
    keep = spread(len(frames), len(frames) if limit is None else limit)
    out: list[DatasetFrame] = []
    for i in keep:
        entry = frames[i]
        first = (out[0].camera.width * downscale, out[0].camera.height * downscale) if out else None
        out.append(_frame(entry, i, path, data, downscale, first))
    return TransformsFile(path, _unique_names(out), data)


def _unique_names(frames: list[DatasetFrame]) -> list[DatasetFrame]:
    """Frames named by their image's stem; a stem met again gets ``_{index}``."""
    seen: set[str] = set()
    out = []
    for i, frame in enumerate(frames):
        name = frame.name
        if name.casefold() in seen:
            name = f"{name}_{i}"
        seen.add(name.casefold())
        out.append(replace(frame, name=name))
    return out
