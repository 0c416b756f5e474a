"""Image, array and GIF files, written atomically.

Every writer puts its bytes in a temporary file beside the destination and
renames it into place, so an interrupted write never leaves half a file.
Output folders are staged the same way (:func:`staged_dir`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import png

from warpsdf.errors import InputFileError, OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_parent(path: Path) -> None:
    """Create ``path``'s parent folder chain; one-line error if impossible."""
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: cannot write here, {parent} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create folder {parent} ({err.strerror})") from None


def ensure_parent(path: str | Path) -> Path:
    """Create the parent folder of an output file; one-line error if impossible."""
    path = Path(path)
    _make_parent(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file name")
    return path


def json_text(data: Any) -> str:
    """Strict JSON (indented, with a final newline): a non-finite float, such as
    an infinite Chamfer distance, becomes null."""

    def safe(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: safe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [safe(v) for v in value]
        return value

    return json.dumps(safe(data), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    """:func:`json_text` of ``data``, written atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json_text(data), encoding="utf-8")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = ensure_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
        )
        os.close(fd)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes files private
        os.replace(tmp_path, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror})") from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Build an output folder in a temporary sibling and move it into place on
    success. An existing non-empty folder is only replaced with ``force``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(f"{path}: folder exists and is not empty (use --force to replace it)")
    _make_parent(path)  # the folder itself appears only on success
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror})") from None
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes folders private
        if path.exists():
            shutil.rmtree(path)
        os.replace(stage, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror})") from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an 8-bit (uint8) or 16-bit (uint16) grey or RGB PNG, atomically."""
    image = np.ascontiguousarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"write_png wants uint8 or uint16, got {image.dtype}")
    height, width = image.shape[:2]
    planes = 1 if image.ndim == 2 else image.shape[2]
    writer = png.Writer(
        width,
        height,
        greyscale=planes == 1,
        bitdepth=8 * image.dtype.itemsize,
        alpha=planes == 4,
    )
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        writer.write(fh, image.reshape(height, width * planes))


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG as uint8 or uint16, (H, W) or (H, W, C); one-line error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: image not found")
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        data = np.vstack([np.asarray(row) for row in rows])
    except (png.Error, OSError, ValueError, EOFError, zlib.error) as err:
        raise InputFileError(f"{path}: not a readable PNG ({err})") from None
    planes = info["planes"]
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    data = data.astype(dtype).reshape(height, width, planes)
    return data[..., 0] if planes == 1 else data


def write_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def read_npy(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: array file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputFileError(f"{path}: not a readable .npy file ({err})") from None


def write_gif(path: str | Path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    """Write an endlessly looping animated GIF of uint8 RGB frames, atomically."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
