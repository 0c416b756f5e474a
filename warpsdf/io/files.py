"""Files out: atomic writes, staged output folders, strict JSON, and the
rules on names and on what may be replaced.

Every writer puts its bytes in a temporary file beside the destination and
renames it into place, so an interrupted write never leaves half a file.
Output folders are staged the same way (:func:`staged_dir`). Inputs are read
by :mod:`warpsdf.io.reading`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from warpsdf.errors import OutputError, WarpsdfError
from warpsdf.io.layout import MARKER, MARKER_TEXT, holds_only_marker, made_by_warpsdf
from warpsdf.limits import MAX_NAME_CHARS, NAME_MAX_BYTES


def shown(path: str | Path) -> str:
    """``path`` as one printable line for a message: control characters (a NUL,
    a newline) are escaped, everything else is as given."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def name_problem(name: str) -> str | None:
    """The rule on a name that becomes a file or folder name (a scene's or a
    sweep's ``name``: ``runs/NAME``): one plain file name (no ``/`` or ``\\``,
    not ``.`` or ``..``, no control characters), not empty, at most
    ``MAX_NAME_CHARS`` characters. The problem in words, with the name, else None."""
    if not isinstance(name, str):
        return f"expected a name (a string), got {type(name).__name__}"
    got = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
    if not name.strip():
        problem = "expected a non-empty name"
    elif len(name) > MAX_NAME_CHARS or len(name.encode("utf-8", "replace")) > NAME_MAX_BYTES:
        problem = f"expected a name of at most {MAX_NAME_CHARS} characters"
    elif "/" in name or "\\" in name or name.strip() in (".", ".."):
        problem = "expected a plain file name (no / or \\, not . or ..)"
    elif not name.isprintable():
        problem = "expected a name without control characters"
    else:
        return None
    return f"{problem}, got {got}"


def error_reason(err: BaseException) -> str:
    """The words of an OS or path error, without the path it repeats."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def path_errors(path: Path, doing: str = "cannot write") -> Iterator[None]:
    """Turn an OS error or a bad path (a NUL byte, a name longer than the file
    system takes, a symbolic-link loop) into one :class:`OutputError` line
    naming ``path``."""
    try:
        yield
    except WarpsdfError:
        raise
    except (OSError, ValueError) as err:
        raise OutputError(f"{shown(path)}: {doing} ({error_reason(err)})") from None


def _make_parent(path: Path) -> None:
    """Create ``path``'s parent folder chain; one-line error if impossible."""
    parent = path.parent
    with path_errors(path):
        if parent.exists() and not parent.is_dir():
            raise OutputError(
                f"{shown(path)}: cannot write here, {shown(parent)} is a file, not a folder"
            )
    with path_errors(path, f"cannot create folder {shown(parent)}"):
        parent.mkdir(parents=True, exist_ok=True)


def ensure_parent(path: str | Path) -> Path:
    """Create the parent folder of an output file; one-line error if impossible."""
    path = Path(path)
    _make_parent(path)
    with path_errors(path):
        if path.is_dir():
            raise OutputError(f"{shown(path)}: is a folder, expected a file name")
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


# Temporary files: atomic_file writes ``.NAME.RANDOM.tmp.SUFFIX`` beside NAME.
TEMP_TAG = ".tmp"
_TEMP_NAME = re.compile(
    r"\.(?P<name>.+)\.[A-Za-z0-9_]+" + re.escape(TEMP_TAG) + r"(?P<suffix>\.[^.]*)?"
)


def stale_temp_files(folder: str | Path) -> list[Path]:
    """The temporary files :func:`atomic_file` left in ``folder`` when a
    process was killed part way through a write (sorted)."""
    found = []
    for p in Path(folder).iterdir():
        m = _TEMP_NAME.fullmatch(p.name)
        if m and (m["suffix"] or "") == Path(m["name"]).suffix and p.is_file():
            found.append(p)
    return sorted(found)


def remove_stale_temp_files(folder: str | Path) -> None:
    """Delete :func:`stale_temp_files` (call it only where no other process writes)."""
    with path_errors(Path(folder), "cannot clean temporary files"):
        for p in stale_temp_files(folder):
            p.unlink(missing_ok=True)


# Temporary folders (staged outputs, sweep point scratch) carry the id of the
# process that made them, ``PREFIX.pPID.RANDOM.tmp``, so a later command can
# tell the leftovers of a killed process from a folder still being written.
_OWNED_NAME = re.compile(r"(?P<prefix>.+)\.p(?P<pid>[0-9]+)\.[A-Za-z0-9_]+" + re.escape(TEMP_TAG))


def owned_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new private folder ``PREFIX.pPID.RANDOM.tmp`` in ``parent``."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}.p{os.getpid()}.", suffix=TEMP_TAG, dir=parent))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or unknowable): leave its folder alone
    return True


def dead_stages(parent: str | Path, prefix: str) -> list[Path]:
    """The :func:`owned_temp_dir` folders of ``prefix`` in ``parent`` whose
    process no longer runs (sorted)."""
    found = []
    with contextlib.suppress(OSError):
        for p in Path(parent).iterdir():
            m = _OWNED_NAME.fullmatch(p.name)
            mine = m and m["prefix"] == prefix and p.is_dir() and not p.is_symlink()
            if mine and int(m["pid"]) != os.getpid() and not _process_alive(int(m["pid"])):
                found.append(p)
    return sorted(found)


def remove_dead_stages(parent: str | Path, prefix: str) -> None:
    """Delete :func:`dead_stages` (a killed process's half-built folders)."""
    for p in dead_stages(parent, prefix):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = ensure_parent(path)
    with path_errors(path):
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_TAG + path.suffix, dir=path.parent
        )
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes files private
        os.replace(tmp_path, path)
    except OSError as err:
        raise OutputError(f"{shown(path)}: cannot write ({error_reason(err)})") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _protected(path: Path, keep: Iterable[str | Path] = ()) -> str | None:
    """Why the folder ``path`` must never be replaced, or None: it is (or holds)
    the current folder, the home folder or an input file in ``keep``."""
    real = path.resolve()
    places = [("the current folder", Path.cwd())]
    with contextlib.suppress(KeyError, RuntimeError, OSError):
        places.append(("the home folder", Path.home()))
    places += [(shown(k), Path(k)) for k in keep if str(k)]
    for what, place in places:
        place = place.resolve()
        if real == place or real in place.parents:
            return f"it holds {what}" if real != place else f"it is {what}"
    return None


def check_replaceable(
    path: str | Path, force: bool, keep: Iterable[str | Path] = (), what: str = "folder"
) -> bool:
    """Check, before any work, that the output folder ``path`` may be written:
    it is not a file or a symbolic link, and if it holds anything but
    :data:`MARKER` it is replaced only with ``force``, only if warpsdf made it
    (:func:`made_by_warpsdf`) and never if it is or holds the current folder,
    the home folder or a file of ``keep`` (the command's inputs). Returns
    whether the folder exists and holds something to replace."""
    path = Path(path)
    name = shown(path)
    with path_errors(path):
        if path.is_symlink():
            raise OutputError(f"{name}: is a symbolic link; give the {what} itself")
        if not path.exists():
            return False
        if not path.is_dir():
            raise OutputError(f"{name}: exists and is not a folder")
        if holds_only_marker(path):
            return False
        if not force:
            raise OutputError(f"{name}: {what} exists and is not empty (use --force to replace it)")
        if reason := _protected(path, keep):
            raise OutputError(f"{name}: refusing to replace it even with --force ({reason})")
        if not made_by_warpsdf(path):
            raise OutputError(
                f"{name}: not a {what} warpsdf made (no {MARKER}), "
                "refusing to replace it even with --force"
            )
    return True


def check_new_file(path: str | Path, force: bool) -> Path:
    """An output file (a render, a mesh, a report, a new scene) replaces an
    existing file only with ``force``, and never a folder: one line otherwise,
    checked before any work."""
    path = Path(path)
    with path_errors(path, "cannot check"):
        if path.is_dir():
            raise OutputError(f"{shown(path)}: is a folder, expected a file name")
        if (path.exists() or path.is_symlink()) and not force:
            raise OutputError(f"{shown(path)}: exists (use --force to overwrite it)")
    return path


def write_marker(folder: str | Path) -> None:
    """Write :data:`MARKER` into a folder warpsdf made (see :func:`check_replaceable`)."""
    folder = Path(folder)
    with path_errors(folder / MARKER):
        (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


@contextlib.contextmanager
def staged_dir(
    path: str | Path, force: bool = False, keep: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Build an output folder in a temporary sibling and move it into place on
    success. The folder holds :data:`MARKER`. An existing non-empty folder is
    only replaced with ``force``, and only one warpsdf made, never the current
    folder, the home folder or one holding a file of ``keep`` (see
    :func:`check_replaceable`)."""
    path = Path(path)
    check_replaceable(path, force, keep)
    with path_errors(path):  # even an empty current folder cannot be renamed onto
        if path.exists() and (reason := _protected(path, keep)):
            raise OutputError(f"{shown(path)}: refusing to replace it ({reason})")
    _make_parent(path)  # the folder itself appears only on success
    with path_errors(path):
        remove_dead_stages(path.parent, f".{path.name}")  # left by a killed command
        stage = owned_temp_dir(path.parent, f".{path.name}")
    try:
        write_marker(stage)
        yield stage
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes folders private
        if path.exists():
            shutil.rmtree(path)
        os.replace(stage, path)
    except OSError as err:
        raise OutputError(f"{shown(path)}: cannot write ({error_reason(err)})") from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
