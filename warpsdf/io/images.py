"""Image, array and GIF files, written atomically (:mod:`warpsdf.io.files`).

Every writer puts its bytes in a temporary file beside the destination and
renames it into place, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import png

from warpsdf.errors import InputFileError
from warpsdf.io.files import atomic_file


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
