"""``warpsdf new`` templates are generated from the scene schema: these tests fail
when a template's values or comments drift from it (tests of the ``new``
command itself are in test_cli.py)."""

from __future__ import annotations

import re
import tomllib

import pytest

from warpsdf.scene import (
    SECTIONS,
    SHAPES,
    default_text,
    describe_keys,
    field_comment,
    field_default,
    key_doc,
    key_field,
    load_scene,
    to_plain,
)
from warpsdf.templates import SCHEMA_DEFAULT, TEMPLATES, Template, template_text

NAMES = {"name": "demo", "file": "demo.toml", "mesh": "demo_mesh.ply", "views": "demo_views"}

# `key = value  # comment`, commented out (`# key = value`) or inside the shape
# help (`#   key = value`); the value may be empty.
KEY_LINE = re.compile(
    r"^(?P<lead>#(?P<shape>  )? )?(?P<key>[a-z_][a-z0-9_]*) ="
    r"(?: (?P<value>.*?))?  +# (?P<comment>.*)$"
)
SECTION_LINE = re.compile(r"^\[(?P<section>[a-z_]+)\]  +# (?P<comment>.*)$")


def _text(template: Template) -> str:
    return template_text(template, NAMES["name"], NAMES["file"], NAMES["mesh"], NAMES["views"])


def _parse(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """({key: value} set, {key: value} commented out), checking every comment on the way."""
    set_keys: dict[str, str] = {}
    commented: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if m := SECTION_LINE.match(line):
            section = m["section"]
            assert m["comment"] == key_doc(section), line
            continue
        m = KEY_LINE.match(line)
        if not m:
            continue
        prefix = SHAPES if m["shape"] else section
        key = f"{prefix}.{m['key']}" if prefix else m["key"]
        # the comment is the schema's doc and rule, for set and commented keys alike
        assert m["comment"] == field_comment(key_field(key)), line
        target = commented if m["lead"] else set_keys
        assert key not in set_keys and key not in commented, f"{key} written twice"
        target[key] = m["value"] or ""
    return set_keys, commented


@pytest.mark.parametrize("template", list(Template))
def test_template_comments_and_defaults_come_from_the_schema(template):
    set_keys, commented = _parse(_text(template))
    # a commented-out key shows its schema default (empty where there is none)
    for key, value in commented.items():
        default = default_text(key_field(key))
        assert value == ("" if default == "-" else default), key
    # every schema key is in the file, set or commented; a shape's keys where it has shapes
    has_shapes = "target.shapes" in TEMPLATES[template].values
    expected = {k for k, _, _ in describe_keys() if has_shapes or not k.startswith(SHAPES)}
    assert set(set_keys) | set(commented) == expected
    # the keys set are exactly the template's table (shapes are written over several lines)
    assert set(set_keys) == set(TEMPLATES[template].values)


@pytest.mark.parametrize("template", list(Template))
def test_template_values_are_its_table_or_the_schema_default(template):
    data = tomllib.loads(_text(template))
    for key, value in TEMPLATES[template].values.items():
        *sections, name = key.split(".")
        table = data
        for section in sections:
            table = table[section]
        if value is SCHEMA_DEFAULT:
            value = to_plain(field_default(key_field(key)))
        elif isinstance(value, str):
            value = value.format(**NAMES)
        assert table[name] == value, key
    # nothing else is set: every other key keeps the schema's default
    assert set(data) <= {"name", "seed", *SECTIONS}


@pytest.mark.parametrize("template", list(Template))
def test_template_loads_with_its_values(template, tmp_path):
    # the loader only needs the files a template points at to exist
    (tmp_path / NAMES["mesh"]).write_bytes(b"")
    (tmp_path / NAMES["views"]).mkdir()
    (tmp_path / NAMES["views"] / "cameras.json").write_text("{}")
    path = tmp_path / NAMES["file"]
    path.write_text(_text(template))
    written = tomllib.loads(path.read_text())
    resolved = load_scene(path).to_dict()
    for key in TEMPLATES[template].values:
        section, _, name = key.rpartition(".")
        want = written[section][name] if section else written[name]
        got = resolved[section][name] if section else resolved[name]
        if key == "target.path":  # resolved against the scene file's folder
            assert got == str((tmp_path / want).resolve())
        elif key == "target.shapes":  # resolved shapes have every default filled in
            assert [{k: s[k] for k in w} for s, w in zip(got, want, strict=True)] == want
        elif key == "supervision.weights":  # resolved: a weight for every mode
            assert {k: got[k] for k in want} == want
        else:
            assert got == want, key


def test_a_template_must_set_the_required_keys():
    spec = TEMPLATES[Template.XYZ]
    values = {k: v for k, v in spec.values.items() if k != "target.kind"}
    broken = type(spec)(intro=spec.intro, values=values)
    TEMPLATES[Template.XYZ] = broken
    try:
        with pytest.raises(ValueError, match="kind"):
            _text(Template.XYZ)
    finally:
        TEMPLATES[Template.XYZ] = spec


def test_template_table_names_only_schema_keys():
    for spec in TEMPLATES.values():
        for key in spec.values:
            key_field(key)  # raises KeyError for a key the schema does not have
