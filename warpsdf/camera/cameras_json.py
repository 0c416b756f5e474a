"""cameras.json files (DESIGN §3): the cameras of an image folder, each with
the names of its target images. Written by :meth:`Camera.to_json` and
:func:`warpsdf.targets.images.write_image_views`."""

from __future__ import annotations

import math
from pathlib import Path

from warpsdf.camera.core import Camera
from warpsdf.errors import InputFileError
from warpsdf.io.files import read_json
from warpsdf.scene import key_problem, key_rule

_VEC_FIELDS = ("eye", "target", "up")
_REQUIRED = ("eye", "target", "up", "fov_deg", "width", "height")
IMAGE_FIELDS = ("mask", "xyz", "depth")


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
        if not _is_number(fov) or key_problem("cameras.fov_deg", fov):
            rule = key_rule("cameras.fov_deg")
            raise InputFileError(f"{where}.fov_deg: expected a number {rule}, got {fov!r}")
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
        for key in IMAGE_FIELDS:
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
