"""A scene's transforms.json dataset (``target.kind = "transforms"``): its
splits, and its normalisation into the bound.

Splits. ``target.path`` is a transforms.json or a folder. A folder (or a
``transforms_train.json``) with ``transforms_train.json`` in it is the
NeRF-synthetic layout: training views from transforms_train.json, the held-out
views from ``transforms_{target.heldout_split}.json`` beside it (when there).
A single transforms.json trains on every frame, or, with nerfstudio's
``train_filenames`` list, on the frames it names, and holds out those of its
``test_filenames`` / ``val_filenames`` (``target.heldout_split``). Of a
held-out split at most ``output.heldout_views`` views are used, evenly spaced
(NeRF-synthetic has 200 test views; the metrics trace every one they keep).

Normalisation. World point = s * R @ dataset point + o
(:class:`DatasetTransform`); cameras move with it (eyes mapped, axes turned by
R, intrinsics kept), depths scale by s. ``target.normalize = true`` turns the
cameras' mean up to +Y (:func:`up_rotation`) and fits the object into the
bound (:func:`fit_into_bound`); false takes ``target.scale`` and
``target.offset`` (R = identity).
The fit keeps the transform in the run folder (``dataset_transform.json``,
:class:`warpsdf.io.layout.RunFolder`) so meshes map back
(``warpsdf export --frame dataset``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from warpsdf.camera.core import Camera
from warpsdf.camera.transforms_json import (
    DatasetFrame,
    TransformsFile,
    read_transforms_file,
    spread,
)
from warpsdf.errors import InputFileError
from warpsdf.scene import DatasetSplit, Scene

TRAIN_FILE = "transforms_train.json"
SINGLE_FILE = "transforms.json"
# The coarse hull of the automatic normalisation: lattice points a side, passes.
HULL_POINTS = 40
HULL_GROWTHS = 4


IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
# A cameras' mean up this close to a dataset axis is that axis (up_rotation).
UP_SNAP_DEG = 30.0


@dataclass(frozen=True)
class DatasetTransform:
    """World point = scale * rotation @ dataset point + offset (world units): a
    similarity, so images are unchanged and distances scale by ``scale``.
    ``rotation`` (3x3, rows) turns the dataset's up direction to warpsdf's +Y."""

    scale: float = 1.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[tuple[float, float, float], ...] = IDENTITY

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.rotation, np.float64)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Dataset points (..., 3) -> world points."""
        p = np.asarray(points, np.float64)
        return (p @ self.matrix.T) * self.scale + np.asarray(self.offset)

    def to_dataset(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> dataset points (the inverse of :meth:`to_world`)."""
        p = np.asarray(points, np.float64)
        return ((p - np.asarray(self.offset)) / self.scale) @ self.matrix

    def camera(self, camera: Camera) -> Camera:
        """A dataset camera in the world: the eye mapped, its axes rotated, the
        same intrinsics; its target becomes the point of its view axis nearest
        the world's origin (where orbits of it turn), when that lies ahead of it."""
        eye = self.to_world(camera.eye)
        _, up, back = (self.matrix @ v for v in camera.basis())
        ahead = float(eye @ back)
        target = eye - back * (ahead if ahead > 1e-6 * max(1.0, np.linalg.norm(eye)) else 1.0)
        return replace(camera, eye=tuple(map(float, eye)), target=tuple(map(float, target)),
                       up=tuple(map(float, up)))  # fmt: skip

    def to_json(self) -> dict:
        """What the run folder keeps (``dataset_transform.json``)."""
        return {
            "scale": float(self.scale),
            "offset": [float(v) for v in self.offset],
            "rotation": [[float(v) for v in row] for row in self.rotation],
            "maps": "world = scale * rotation @ dataset + offset",
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> DatasetTransform:
        """Read :meth:`to_json` back (a missing rotation is the identity)."""
        try:
            scale = float(data["scale"])
            offset = tuple(float(v) for v in data["offset"])
            rotation = np.array(data.get("rotation", IDENTITY), np.float64)
        except (TypeError, KeyError, ValueError, AttributeError):
            raise InputFileError(f"{where}: expected scale, offset and rotation") from None
        if not (math.isfinite(scale) and scale > 0 and len(offset) == 3):
            raise InputFileError(f"{where}: expected a scale > 0 and 3 offset numbers")
        if not all(math.isfinite(v) for v in offset):
            raise InputFileError(f"{where}: offset holds non-finite values")
        if rotation.shape != (3, 3) or not np.isfinite(rotation).all():
            raise InputFileError(f"{where}: rotation: expected 3 rows of 3 numbers")
        if np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-6:
            raise InputFileError(f"{where}: rotation is not a rotation matrix")
        return cls(scale, offset, tuple(tuple(map(float, row)) for row in rotation))


def up_rotation(cameras: list[Camera]) -> tuple[tuple[float, float, float], ...]:
    """The rotation (rows) that turns the cameras' mean up vector to +Y (as
    nerfstudio's "up" orientation), so showcase orbits and elevations read as
    in the dataset (NeRF-synthetic, made in Blender, is Z-up). A mean up within
    :data:`UP_SNAP_DEG` of a dataset axis is taken as that axis (the world's
    axes stay the dataset's, permuted); the identity when the ups cancel out."""
    mean = np.mean([cam.basis()[1] for cam in cameras], axis=0)
    if np.linalg.norm(mean) < 0.3:
        return IDENTITY
    u, y = mean / np.linalg.norm(mean), np.array([0.0, 1.0, 0.0])
    nearest = int(np.argmax(np.abs(u)))
    if abs(u[nearest]) >= math.cos(math.radians(UP_SNAP_DEG)):
        u = np.sign(u[nearest]) * np.eye(3)[nearest]
    axis, c = np.cross(u, y), float(u @ y)
    if np.linalg.norm(axis) < 1e-12:
        rot = np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    else:
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + k + k @ k / (1.0 + c)  # Rodrigues: u -> y
    return tuple(tuple(map(float, row)) for row in rot)


@dataclass(frozen=True)
class Dataset:
    """The training views, the held-out split's views and the transform."""

    train: list[DatasetFrame]
    heldout: list[DatasetFrame]
    transform: DatasetTransform
    split: DatasetSplit


def split_files(path: Path, split: DatasetSplit) -> tuple[Path, Path | None]:
    """(training json, held-out json or None) of ``target.path`` (module docstring)."""
    if path.is_dir():
        if (path / TRAIN_FILE).is_file():
            path = path / TRAIN_FILE
        elif (path / SINGLE_FILE).is_file():
            return path / SINGLE_FILE, None
        else:
            raise InputFileError(f"{path}: holds neither {SINGLE_FILE} nor {TRAIN_FILE}")
    if path.name == TRAIN_FILE and split is not DatasetSplit.NONE:
        held = path.with_name(f"transforms_{split.value}.json")
        return path, held if held.is_file() else None
    return path, None


def _named(frames: list[DatasetFrame], names: object, file: TransformsFile, key: str) -> set[int]:
    """Indices of the frames a nerfstudio filename list names."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputFileError(f"{file.path}: {key}: expected a list of file paths")
    wanted = {Path(n).as_posix().removeprefix("./") for n in names}
    entries = file.data["frames"]
    return {
        i for i in range(len(frames))
        if Path(entries[i]["file_path"]).as_posix().removeprefix("./") in wanted
    }  # fmt: skip


def _frames(
    t, split: DatasetSplit, held_limit: int
) -> tuple[list[DatasetFrame], list[DatasetFrame], TransformsFile]:
    """(training frames, held-out frames, the training file) of ``target``;
    at most ``held_limit`` held-out frames, evenly spaced over the split."""
    train_json, held_json = split_files(Path(t.path), split)
    train = read_transforms_file(train_json, t.downscale)
    if held_json is not None:
        if held_limit <= 0:
            return train.frames, [], train
        held_file = read_transforms_file(held_json, t.downscale, held_limit)
        return train.frames, held_file.frames, train
    data = train.data
    if "train_filenames" not in data:
        return train.frames, [], train
    chosen = _named(train.frames, data["train_filenames"], train, "train_filenames")
    key = f"{split.value}_filenames"
    held = set() if split is DatasetSplit.NONE or key not in data else (
        _named(train.frames, data[key], train, key)
    )  # fmt: skip
    if not chosen:
        raise InputFileError(f"{train_json}: train_filenames names none of its frames")
    picked = [train.frames[i] for i in sorted(chosen)]
    held = sorted(held)
    return picked, [train.frames[held[k]] for k in spread(len(held), held_limit)], train


def _axes_point(cameras: list[Camera]) -> np.ndarray:
    """The point nearest every camera's view axis (least squares); the origin
    when the axes are (nearly) parallel."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for cam in cameras:
        d = -cam.basis()[2]
        p = np.eye(3) - np.outer(d, d)
        a += p
        b += p @ np.asarray(cam.eye, np.float64)
    eig = np.linalg.eigvalsh(a)
    if eig[0] < 1e-6 * eig[-1]:
        return np.zeros(3)
    return np.linalg.solve(a, b)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """A mask grown by one pixel (3x3)."""
    p = np.pad(mask, 1)
    h, w = mask.shape
    return np.any([p[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)


def hull_points(cameras: list[Camera], masks: list[np.ndarray], centre, half: float):
    """Points of a HULL_POINTS^3 lattice over the cube centre +- half that
    every view keeps (carve.py's rule on the host: inside a view's frame a
    point must project into its mask grown by a pixel; outside it, it is kept
    only when the mask touches the image border), and the lattice step."""
    axis = np.linspace(-half, half, HULL_POINTS)
    pts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3) + centre
    keep = np.ones(len(pts), bool)
    for cam, mask in zip(cameras, masks, strict=True):
        grown = _dilate(mask)
        border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        row, col = cam.project(pts[keep])
        framed = (row >= 0) & (row < cam.height) & (col >= 0) & (col < cam.width)
        seen = np.zeros(len(row), bool)
        i, j = np.floor(row[framed]).astype(int), np.floor(col[framed]).astype(int)
        seen[framed] = grown[i, j]
        keep[np.flatnonzero(keep)] = seen | (~framed & border)
    return pts[keep], 2.0 * half / (HULL_POINTS - 1)


def fit_into_bound(
    cameras: list[Camera], masks: list[np.ndarray], bound_radius: float, fill: float,
    region: tuple[np.ndarray, float] | None = None, where: str = "",
    rotation: tuple[tuple[float, float, float], ...] = IDENTITY,
) -> DatasetTransform:  # fmt: skip
    """The transform that puts the object the masks see inside the bound: a
    coarse visual hull (:func:`hull_points`) over ``region`` (centre, half
    size; default: around the point the view axes meet, as far as the nearest
    eye), grown when the hull touches its faces and refined once around it;
    its farthest point (padded by a lattice step) lands at ``fill`` *
    ``bound_radius``, turned by ``rotation``."""
    if region is None:
        centre = _axes_point(cameras)
        half = min(float(np.linalg.norm(np.subtract(c.eye, centre))) for c in cameras)
    else:
        centre, half = np.asarray(region[0], np.float64), float(region[1])
    for _ in range(HULL_GROWTHS):
        pts, step = hull_points(cameras, masks, centre, half)
        if not len(pts):
            raise InputFileError(
                f"{where}: the masks have no region in common (no point projects into "
                "every mask): are the poses and masks of the same views?"
            )
        lo, hi = pts.min(0), pts.max(0)
        if (lo > centre - half + step / 2).all() and (hi < centre + half - step / 2).all():
            break
        half *= 2.0
    centre, half = (lo + hi) / 2.0, float((hi - lo).max()) / 2.0 + 2.0 * step
    pts, step = hull_points(cameras, masks, centre, half)
    if len(pts):
        centre = (pts.min(0) + pts.max(0)) / 2.0
        radius = float(np.linalg.norm(pts - centre, axis=1).max()) + step
    else:
        radius = half
    scale = fill * bound_radius / radius
    offset = -scale * (np.array(rotation) @ centre)
    return DatasetTransform(scale, tuple(float(v) for v in offset), rotation)


def _ngp_region(data: dict) -> tuple[np.ndarray, float] | None:
    """The cube instant-ngp's scale and offset map onto [0, 1]^3, if given."""
    scale, offset = data.get("scale"), data.get("offset")
    try:
        scale = float(scale)
        offset = np.array(offset if offset is not None else [0.5] * 3, np.float64)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(scale) and scale > 0 and offset.shape == (3,)):
        return None
    return (0.5 - offset) / scale, 0.5 / scale


def _place(frames: list[DatasetFrame], transform: DatasetTransform) -> list[DatasetFrame]:
    return [replace(f, camera=transform.camera(f.camera)) for f in frames]


# The last dataset read (its masks can be large): settings and json stamps ->
# (dataset, stamps of the files its frames read).
_CACHE: dict[tuple, tuple[Dataset, tuple]] = {}


def _stamps(files: list[Path]) -> tuple:
    """Modification stamps of files (a changed file is read again)."""
    out = []
    for p in files:
        try:
            info = p.stat()
            out.append((str(p), info.st_mtime_ns, info.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def _frame_files(dataset: Dataset) -> list[Path]:
    return [f for frame in dataset.train + dataset.heldout for f in frame.files.values()]


def read_dataset(scene: Scene) -> Dataset:
    """The scene's dataset (``target.kind = "transforms"``; module docstring),
    normalised. Read once per process while its files are unchanged. Raises
    :class:`InputFileError`, one line naming the file (and frame)."""
    t = scene.target
    path = Path(t.path)
    jsons = sorted(path.glob("transforms*.json")) if path.is_dir() else [
        *sorted(path.parent.glob("transforms*.json")), path
    ]  # fmt: skip
    held_limit = scene.output.heldout_views
    key = (
        str(path.resolve()), t.heldout_split, t.downscale, t.normalize, t.normalize_fill,
        t.scale, tuple(t.offset), scene.march.bound_radius, held_limit, _stamps(jsons),
    )  # fmt: skip
    if key in _CACHE and _CACHE[key][1] == _stamps(_frame_files(_CACHE[key][0])):
        return _CACHE[key][0]
    train, held, train_file = _frames(t, t.heldout_split, held_limit)
    if t.normalize:
        transform = fit_into_bound(
            [f.camera for f in train], [f.mask for f in train], scene.march.bound_radius,
            t.normalize_fill, _ngp_region(train_file.data), str(train_file.path),
            up_rotation([f.camera for f in train]),
        )  # fmt: skip
    else:
        transform = DatasetTransform(t.scale, tuple(t.offset))
    dataset = Dataset(_place(train, transform), _place(held, transform), transform,
                      t.heldout_split)  # fmt: skip
    _CACHE.clear()
    _CACHE[key] = (dataset, _stamps(_frame_files(dataset)))
    return dataset
