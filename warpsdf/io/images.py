"""Image, array and GIF files, written atomically (:mod:`warpsdf.io.files`).

Every writer puts its bytes in a temporary file beside the destination and
renames it into place, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import png

from warpsdf.errors import InputFileError
from warpsdf.io.files import atomic_file, shown
from warpsdf.limits import MAX_RESOLUTION


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


def _check_input(path: Path, what: str) -> None:
    """``path`` must be a regular file (not a folder, FIFO or device); one line
    naming it otherwise, also for a path that cannot exist (a NUL byte, a name
    longer than the file system takes, a symbolic-link loop)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{shown(path)}: {what} not found") from None
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise InputFileError(f"{shown(path)}: cannot read {what} ({reason})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{shown(path)}: cannot read {what} (not a regular file)")


def _size_problem(width: int, height: int) -> str | None:
    if not (0 < width <= MAX_RESOLUTION and 0 < height <= MAX_RESOLUTION):
        return f"is {width}x{height}, more than {MAX_RESOLUTION} pixels a side"
    return None


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG as uint8 or uint16, (H, W) or (H, W, C); one-line error if
    unreadable. The size in its header is checked against ``MAX_RESOLUTION``
    before any pixel is decoded."""
    path = Path(path)
    _check_input(path, "image")
    try:
        with open(path, "rb") as fh:
            reader = png.Reader(file=fh)
            reader.preamble()
            if problem := _size_problem(reader.width, reader.height):
                raise InputFileError(f"{shown(path)}: image {problem}")
            width, height, rows, info = reader.asDirect()
            data = np.vstack([np.asarray(row) for row in rows])
    except (png.Error, OSError, ValueError, EOFError, zlib.error) as err:
        raise InputFileError(f"{shown(path)}: not a readable PNG ({err})") from None
    planes = info["planes"]
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    data = data.astype(dtype).reshape(height, width, planes)
    return data[..., 0] if planes == 1 else data


JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_image(path: str | Path) -> np.ndarray:
    """A PNG (:func:`read_png`) or a JPEG (uint8, (H, W) or (H, W, 3)); the
    JPEG's size is checked against ``MAX_RESOLUTION`` before decoding."""
    path = Path(path)
    if path.suffix.lower() not in JPEG_SUFFIXES:
        return read_png(path)
    _check_input(path, "image")
    try:
        props = iio.improps(path)
        if problem := _size_problem(props.shape[1], props.shape[0]):
            raise InputFileError(f"{shown(path)}: image {problem}")
        return np.asarray(iio.imread(path))
    except (OSError, ValueError, SyntaxError) as err:
        raise InputFileError(f"{shown(path)}: not a readable JPEG ({err})") from None


def write_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def read_npy(path: str | Path) -> np.ndarray:
    """A numeric (bool, integer or float) array of at most 3 dimensions, each
    image side at most ``MAX_RESOLUTION``; its header is checked before the
    data is read. One line naming the file otherwise."""
    path = Path(path)
    _check_input(path, "array file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only
        if not isinstance(array, np.ndarray):
            raise ValueError("an .npz archive, expected one array")
        if array.dtype.kind not in "biuf":
            raise ValueError(f"holds {array.dtype} values, expected numbers")
        if array.ndim not in (2, 3) or (_size_problem(array.shape[1], array.shape[0])):
            raise ValueError(
                f"has shape {array.shape}, expected (height, width) or (height, width, channels) "
                f"of at most {MAX_RESOLUTION} pixels a side"
            )
        return np.array(array)
    except (OSError, ValueError, EOFError) as err:
        raise InputFileError(f"{shown(path)}: not a readable .npy file ({err})") from None


def write_gif(path: str | Path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    """Write an endlessly looping animated GIF of uint8 RGB frames, atomically."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
