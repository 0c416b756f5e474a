"""cameras.json files (DESIGN §3): the cameras of an image folder, each with
its name and the names of its target images. Written by :meth:`Camera.to_json`
and :func:`warpsdf.targets.images.write_image_views`.

Every view has a name: its ``"name"``, else the stem of its mask file, else
of its xyz, else of its depth file, else ``view_NNN`` by index. Names are
plain file names, unique in the file (ignoring case): ``render --cameras``
writes ``NAME.png`` and ``target.heldout`` can name views by them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warpsdf.camera.core import INTRINSICS, Camera
from warpsdf.errors import InputFileError, SceneError
from warpsdf.io.files import name_problem
from warpsdf.io.layout import RenderFolder
from warpsdf.io.reading import read_json
from warpsdf.limits import NAME_MAX_BYTES
from warpsdf.scene import Scene, key_problem, key_rule, suggest

_VEC_FIELDS = ("eye", "target", "up")
_REQUIRED = ("eye", "target", "up", "width", "height")  # and fov_deg or fx, fy, cx, cy
IMAGE_FIELDS = ("mask", "xyz", "depth")  # also the order a view's name is taken from


def default_view_name(index: int) -> str:
    """The name of a view that has neither a ``"name"`` nor an image file."""
    return f"view_{index:03d}"


@dataclass(frozen=True)
class CameraEntry:
    """One camera of a cameras.json: the camera, its image files ({"mask" |
    "xyz" | "depth": file}), its view name, and ``where`` it is
    (``"FILE: cameras[i]"``, for messages)."""

    camera: Camera
    files: dict[str, Path]
    name: str
    where: str


def read_cameras(path: str | Path) -> list[CameraEntry]:
    """Parse a cameras.json, in its order.

    Every camera needs eye, target, up, width, height and its lens: fov_deg,
    or the pixel intrinsics fx, fy, cx, cy (DESIGN §2), not both. Image paths
    are relative to the json file; each must exist. Names are checked: plain
    file names, unique (see the module doc).
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
        lens = _lens(entry, where)
        for key in ("width", "height"):
            v = entry[key]
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InputFileError(f"{where}.{key}: expected a positive integer, got {v!r}")
        try:  # Camera's own checks (e.g. eye and target the same point)
            camera = Camera(
                tuple(map(float, entry["eye"])), tuple(map(float, entry["target"])),
                tuple(map(float, entry["up"])), width=entry["width"], height=entry["height"],
                **lens,
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
        name = _view_name(entry, i, where)
        out.append(CameraEntry(camera, files, name, where))
    _check_unique_names(path, out)
    return out


def _lens(entry: dict, where: str) -> dict[str, float]:
    """A camera entry's lens as Camera keywords: {"fov_deg": ...} or the four
    intrinsics (pixels; fx, fy > 0)."""
    given = [k for k in INTRINSICS if k in entry]
    if "fov_deg" in entry and given:
        raise InputFileError(
            f"{where}: give fov_deg or the intrinsics {', '.join(INTRINSICS)}, not both"
        )
    if given:
        for key in INTRINSICS:
            if key not in entry:
                raise InputFileError(
                    f"{where}: missing field {key!r} (intrinsics need all of fx, fy, cx, cy)"
                )
            v = entry[key]
            if not _is_number(v) or (key in ("fx", "fy") and v <= 0):
                rule = "> 0 " if key in ("fx", "fy") else ""
                raise InputFileError(f"{where}.{key}: expected a number {rule}(pixels), got {v!r}")
        return {k: float(entry[k]) for k in INTRINSICS}
    if "fov_deg" not in entry:
        raise InputFileError(f"{where}: missing field 'fov_deg' (or the intrinsics fx, fy, cx, cy)")
    fov = entry["fov_deg"]
    if not _is_number(fov) or key_problem("cameras.fov_deg", fov):
        rule = key_rule("cameras.fov_deg")
        raise InputFileError(f"{where}.fov_deg: expected a number {rule}, got {fov!r}")
    return {"fov_deg": float(fov)}


def _view_name(entry: dict, index: int, where: str) -> str:
    """The view's name (see the module doc), checked as a plain file name."""
    given = entry.get("name")
    key, name = "name", given
    if given is None:
        key = next((k for k in IMAGE_FIELDS if entry.get(k) is not None), None)
        if key is None:
            return default_view_name(index)
        name = Path(entry[key]).stem
    problem = name_problem(name)
    if problem is None and len(f"{name}{RenderFolder.SUFFIX}".encode()) > NAME_MAX_BYTES:
        problem = f"expected a name of at most {NAME_MAX_BYTES - len(RenderFolder.SUFFIX)} bytes"
    if problem is None:
        return name
    if given is not None:
        raise InputFileError(f"{where}.name: {problem}")
    raise InputFileError(
        f"{where}.{key}: the view is named after its {key} file, {problem}; "
        'give the camera a "name"'
    )


def _check_unique_names(path: Path, entries: list[CameraEntry]) -> None:
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        j = seen.setdefault(entry.name.casefold(), i)
        if j != i:
            first = entries[j].name
            same = repr(first) if first == entry.name else f"{first!r} and {entry.name!r}"
            how = "the same name" if first == entry.name else "names that differ only in case"
            raise InputFileError(
                f"{path}: cameras[{j}] and cameras[{i}] have {how} ({same}); view names "
                'must be unique: give one a "name" (a view is named by its "name", else '
                "its mask, xyz or depth file's stem)"
            )


def heldout_indices(scene: Scene, names: Sequence[str]) -> tuple[int, ...]:
    """The views of the image folder (``names``: every view's name, in
    cameras.json order) that ``target.heldout`` holds out of training, as
    sorted indices. Raises :class:`SceneError`, one line naming the scene file,
    ``target.heldout`` and the value: a name or index that is no view, a view
    listed twice, or every view held out."""
    heldout = scene.target.heldout
    if not heldout:
        return ()
    file, count = scene.source or scene.name, len(names)
    index_of = {name: i for i, name in enumerate(names)}
    chosen: dict[int, str | int] = {}

    def fail(problem: str) -> SceneError:
        return SceneError(f"{file}: target.heldout: {problem}")

    for value in heldout:
        if isinstance(value, str):
            if value not in index_of:
                raise fail(f"{value!r} names no view of {scene.target.path}{suggest(value, names)}")
            i = index_of[value]
        else:
            if not 0 <= value < count:
                raise fail(
                    f"{value} is no view index of {scene.target.path}: expected 0 to "
                    f"{count - 1} ({count} views) or a view name"
                )
            i = value
        if i in chosen:
            raise fail(
                f"{chosen[i]!r} and {value!r} are the same view (cameras[{i}], "
                f"name {names[i]!r}): list each view once"
            )
        chosen[i] = value
    if len(chosen) == count:
        raise fail(
            f"holds out all {count} views of {scene.target.path}: leave at least one to train on"
        )
    return tuple(sorted(chosen))


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
