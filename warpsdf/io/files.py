"""Files in and out: atomic writes, staged output folders, strict JSON, and
the one set of readers for text, TOML and JSON inputs.

Every writer puts its bytes in a temporary file beside the destination and
renames it into place, so an interrupted write never leaves half a file.
Output folders are staged the same way (:func:`staged_dir`). Every reader
turns a missing, unreadable or malformed file into one :class:`WarpsdfError`
line that names the file (the caller picks the error class and the word for
what the file is).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from warpsdf.errors import InputFileError, OutputError, WarpsdfError


def read_text(path: str | Path, what: str, error: type[WarpsdfError] = InputFileError) -> str:
    """The UTF-8 text of ``path``; ``{path}: {what} not found`` or
    ``{path}: cannot read {what} (...)`` as ``error`` otherwise."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read {what} ({err})") from None


def read_toml(
    path: str | Path, what: str, error: type[WarpsdfError] = InputFileError
) -> dict[str, Any]:
    """The parsed TOML of ``path`` (see :func:`read_text`); a syntax error is
    ``{path}: TOML syntax error: ...``."""
    text = read_text(path, what, error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: TOML syntax error: {err}") from None


def read_json(path: str | Path, what: str, error: type[WarpsdfError] = InputFileError) -> Any:
    """The parsed JSON of ``path`` (see :func:`read_text`); a syntax error is
    ``{path}: invalid JSON (...)``."""
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}: invalid JSON ({err})") from None


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
