"""Writing scene-shaped data as TOML: dataclasses to plain data, plain data to text.

This module owns the TOML spelling of a value (``toml_value``) that the
resolved scene (``warpsdf validate``, a run folder's ``scene.toml``), the
``warpsdf new`` templates and sweep overrides all write. It knows nothing of
the schema, so the schema can use it.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any


def to_plain(obj: Any) -> Any:
    """Dataclasses, enums and tuples as plain TOML-ready data: tables, strings and
    lists. Fields that are None or marked ``internal`` are left out."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get("internal"):
                continue
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[f.name] = to_plain(value)
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


# TOML's short escapes; every other control character (U+0000-U+001F and
# U+007F, which a basic string may not hold raw) is written as \uXXXX.
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                  "\f": "\\f", "\r": "\\r"}  # fmt: skip
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(text: str) -> str:
    """A TOML basic string that reads back as ``text``, whatever it holds: quotes
    and backslashes escaped, every control character as an escape. Raises
    ValueError for a lone surrogate (no TOML string can hold one)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"cannot write {text!r} to TOML (a lone surrogate)")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_key(key: str) -> str:
    """A table key: bare when TOML allows it, else a quoted string."""
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """One plain value (bool, number, string, list or table) as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")  # pragma: no cover


def is_table_list(value: Any) -> bool:
    """Whether a plain value is a non-empty list of tables (written one table a line)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def table_list_lines(key: str, value: list[dict[str, Any]]) -> list[str]:
    """``key = [`` then one inline table a line, then ``]``."""
    return [f"{key} = [", *(f"    {toml_value(v)}," for v in value), "]"]


def dumps_toml(data: dict[str, Any], notes: dict[str, str] | None = None) -> str:
    """Write scene-shaped data (top-level scalars, then one table per section) as
    TOML. Lists of tables (shapes) are written one inline table per line.
    ``notes``: a one-line comment written under a section's header."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if not isinstance(table, dict):
            continue
        lines += ["", f"[{toml_key(section)}]"]
        if notes and section in notes:
            lines.append("# " + " ".join(notes[section].splitlines()))
        for key, value in table.items():
            if is_table_list(value):
                lines += table_list_lines(toml_key(key), value)
            else:
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"
