"""Writing scene-shaped data as TOML: dataclasses to plain data, plain data to text.

This module owns the TOML spelling of a value (``toml_value``) that the
resolved scene (``warpsdf validate``, a run folder's ``scene.toml``), the
``warpsdf new`` templates and sweep overrides all write. It knows nothing of
the schema, so the schema can use it.
"""

from __future__ import annotations

import dataclasses
import json
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


def toml_value(value: Any) -> str:
    """One plain value (bool, number, string, list or table) as an inline TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")  # pragma: no cover


def is_table_list(value: Any) -> bool:
    """Whether a plain value is a non-empty list of tables (written one table a line)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def table_list_lines(key: str, value: list[dict[str, Any]]) -> list[str]:
    """``key = [`` then one inline table a line, then ``]``."""
    return [f"{key} = [", *(f"    {toml_value(v)}," for v in value), "]"]


def dumps_toml(data: dict[str, Any]) -> str:
    """Write scene-shaped data (top-level scalars, then one table per section) as
    TOML. Lists of tables (shapes) are written one inline table per line."""
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if not isinstance(table, dict):
            continue
        lines += ["", f"[{section}]"]
        for key, value in table.items():
            if is_table_list(value):
                lines += table_list_lines(key, value)
            else:
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"
