"""Reading input files: only regular files (opened without blocking, so a
FIFO cannot hang a command), at most ``MAX_TEXT_BYTES``, TOML and JSON nested at
most ``MAX_NESTING`` levels. Every problem is one :class:`WarpsdfError` line
that names the file (the caller picks the error class and the word for what
the file is)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warpsdf.errors import InputFileError, WarpsdfError
from warpsdf.io.files import error_reason, shown
from warpsdf.limits import MAX_NESTING, MAX_TEXT_BYTES


def _size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bytes(
    path: str | Path,
    what: str,
    error: type[WarpsdfError] = InputFileError,
    limit: int = MAX_TEXT_BYTES,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused without
    reading (opened non-blocking, so a FIFO never waits for a writer), and so is
    a file larger than ``limit``: ``{path}: cannot read {what} (...)`` or
    ``{path}: {what} not found`` as ``error``."""
    path = Path(path)
    name = shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{name}: {what} not found") from None
    except (OSError, ValueError) as err:
        with contextlib.suppress(OSError, ValueError):  # a socket cannot be opened
            if not stat.S_ISREG(mode := os.stat(path).st_mode):
                kind = _file_kind(mode)
                raise error(
                    f"{name}: cannot read {what} (it is {kind}, expected a regular file)"
                ) from None
        raise error(f"{name}: cannot read {what} ({error_reason(err)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise error(f"{name}: cannot read {what} (it is {kind}, expected a regular file)")
        too_big = f"{name}: cannot read {what} (larger than {_size_text(limit)}, the limit)"
        if info.st_size > limit:
            raise error(too_big)
        chunks, size = [], 0
        while size <= limit:  # the file may grow while it is read
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise error(too_big)
        return b"".join(chunks)
    except OSError as err:
        raise error(f"{name}: cannot read {what} ({error_reason(err)})") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, what: str, error: type[WarpsdfError] = InputFileError) -> str:
    """The UTF-8 text of ``path`` (newlines as ``\\n``), read by :func:`read_bytes`:
    a regular file of at most ``MAX_TEXT_BYTES``; ``{path}: {what} not found`` or
    ``{path}: cannot read {what} (...)`` as ``error`` otherwise."""
    data = read_bytes(path, what, error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{shown(path)}: cannot read {what} ({err})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _nesting_problem(data: Any) -> bool:
    """Whether ``data`` nests more than ``MAX_NESTING`` lists and tables (the
    outermost one included) inside each other."""
    containers = (dict, list)
    level = [data] if isinstance(data, containers) else []
    for _ in range(MAX_NESTING):  # level: the containers one level deeper each time
        if not level:
            return False
        level = [
            v
            for item in level
            for v in (item.values() if isinstance(item, dict) else item)
            if isinstance(v, containers)
        ]
    return bool(level)


def _too_deep(path: str | Path, fmt: str) -> str:
    return f"{shown(path)}: {fmt} nested more than {MAX_NESTING} levels deep"


# A dotted TOML key of more than MAX_NESTING parts, where a key stands: at a line
# start (after ``[`` or ``[[`` for a header) or after ``{`` or ``,`` (inline
# tables). Each part is a bare, basic-string or literal-string key; possessive
# quantifiers keep the scan linear. tomllib takes quadratic time on such keys
# (a 16 MiB file of one would parse for hours); its nesting is refused anyway.
_KEY_PART = r"""(?:[A-Za-z0-9_-]++|"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+')"""
_DEEP_KEY = re.compile(
    r"(?m)(?:^|[{,])[ \t]*\[{0,2}[ \t]*"
    rf"(?:{_KEY_PART}[ \t]*+\.[ \t]*+){{{MAX_NESTING},}}+{_KEY_PART}[ \t]*[=\]]"
)


def loads_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` that refuses nesting deeper than ``MAX_NESTING`` as
    :class:`TomlTooDeep` (before parsing where the keys show it, so a hostile
    file fails at once), and raises ``tomllib.TOMLDecodeError`` otherwise."""
    if _DEEP_KEY.search(text):
        raise TomlTooDeep
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise TomlTooDeep from None
    if _nesting_problem(data):
        raise TomlTooDeep
    return data


class TomlTooDeep(Exception):
    """TOML nested deeper than ``MAX_NESTING`` (see :func:`loads_toml`)."""


def _parse(
    path: str | Path,
    what: str,
    error: type[WarpsdfError],
    loads: Callable[[str], Any],
    fmt: str,
    syntax: Callable[[Exception], str],
) -> Any:
    """``loads`` of the text of ``path`` (see :func:`read_text`): a syntax error
    is one line ``{path}: {syntax(err)}``, nesting deeper than ``MAX_NESTING``
    (or deep enough to exhaust the parser's recursion) another."""
    text = read_text(path, what, error)
    try:
        data = loads(text)
    except ValueError as err:  # a decode error, or an integer of more than 4300 digits
        raise error(f"{shown(path)}: {syntax(err)}") from None
    except (RecursionError, TomlTooDeep):
        raise error(_too_deep(path, fmt)) from None
    if _nesting_problem(data):
        raise error(_too_deep(path, fmt))
    return data


def read_toml(
    path: str | Path, what: str, error: type[WarpsdfError] = InputFileError
) -> dict[str, Any]:
    """The parsed TOML of ``path``; a syntax error is ``{path}: TOML syntax
    error: ...`` (see :func:`_parse`)."""
    return _parse(path, what, error, loads_toml, "TOML", lambda e: f"TOML syntax error: {e}")


def read_json(path: str | Path, what: str, error: type[WarpsdfError] = InputFileError) -> Any:
    """The parsed JSON of ``path``; a syntax error is ``{path}: invalid JSON
    (...)`` (see :func:`_parse`)."""
    return _parse(path, what, error, json.loads, "JSON", lambda e: f"invalid JSON ({e})")
