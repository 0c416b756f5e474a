"""Scene keys by name: the schema field behind ``"cameras.fov_deg"``, its doc and default.

Other modules (the ``warpsdf new`` templates, ``--help`` texts and value checks
in :mod:`warpsdf.scene.checks`) ask here instead of restating what the schema says.
Key names are dotted: ``"seed"``, ``"cameras.fov_deg"``, ``"target.shapes[].radius"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any

from warpsdf.scene.schema import SECTIONS, Scene, ShapeSpec
from warpsdf.scene.toml import to_plain, toml_value

SHAPES = "target.shapes[]"  # the "section" of one shape's keys


def suggest(word: Any, choices: Any) -> str:
    """`` (did you mean 'lr'?)`` for the closest of ``choices`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def top_level_fields() -> list[dataclasses.Field]:
    """The scene's keys outside every section (``name``, ``seed``), in schema order."""
    return [
        f
        for f in dataclasses.fields(Scene)
        if not f.metadata.get("internal") and f.name not in SECTIONS
    ]


def section_fields(section: str) -> tuple[dataclasses.Field, ...]:
    """The fields of one section (``"cameras"``) or of a shape (``"target.shapes[]"``)."""
    if section == SHAPES:
        return dataclasses.fields(ShapeSpec)
    return dataclasses.fields(SECTIONS[section])


@functools.cache
def key_field(key: str) -> dataclasses.Field:
    """The schema field of a dotted key. Raises KeyError, with the closest key,
    for a name the schema does not have."""
    section, _, name = key.rpartition(".")
    if not section:  # a top-level key or a section's own entry ("cameras")
        fields = [f for f in dataclasses.fields(Scene) if not f.metadata.get("internal")]
    elif section in SECTIONS or section == SHAPES:
        fields = section_fields(section)
    else:
        raise KeyError(f"{key}: no such scene section{suggest(section, SECTIONS)}")
    for f in fields:
        if f.name == name:
            return f
    raise KeyError(f"{key}: no such scene key{suggest(name, [f.name for f in fields])}")


def key_doc(key: str) -> str:
    """The documentation of a key (unit and meaning), e.g. ``"degrees; vertical field of view"``."""
    return key_field(key).metadata["doc"]


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value; ``dataclasses.MISSING`` for a required key."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def key_default(key: str) -> Any:
    """The default value of a key; ``dataclasses.MISSING`` for a required key."""
    return field_default(key_field(key))


def is_unset(value: Any) -> bool:
    """Whether a default means "not given" (None or an empty string, list or table)."""
    return value is None or value == "" or value == {} or value == ()


def default_text(f: dataclasses.Field) -> str:
    """A field's default as TOML text; ``(required)`` or ``-`` when it has none."""
    if f.metadata.get("required"):
        return "(required)"
    value = field_default(f)
    return "-" if is_unset(value) else toml_value(to_plain(value))


def describe_keys() -> list[tuple[str, str, str]]:
    """Every scene key as (key, default text, doc), sections in schema order and
    a shape's keys last (``target.shapes[].radius``)."""
    rows = [(f.name, default_text(f), f.metadata["doc"]) for f in top_level_fields()]
    for section in SECTIONS:
        for f in section_fields(section):
            rows.append((f"{section}.{f.name}", default_text(f), f.metadata["doc"]))
    for f in section_fields(SHAPES):
        rows.append((f"{SHAPES}.{f.name}", default_text(f), f.metadata["doc"]))
    return rows
