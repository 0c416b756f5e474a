"""Commented scene files to start from (``warpsdf new NAME --template T``).

A template is generated from the scene schema: every key of every section is
written, in schema order, with the schema's doc and rule as its comment (see
:func:`warpsdf.scene.field_comment`). The keys a template sets are written as
values; every other key is commented out with its default, so the file lists
all there is to change and cannot drift from the schema. What a template owns
is only its few lines of prose and the table of keys it sets (:data:`TEMPLATES`).
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from warpsdf.io.files import atomic_file
from warpsdf.scene import (
    SECTIONS,
    SHAPE_PARAMS,
    SHAPES,
    field_comment,
    field_default,
    is_unset,
    key_doc,
    section_fields,
    to_plain,
    toml_value,
    top_level_fields,
)
from warpsdf.scene.toml import is_table_list, table_list_lines


class Template(StrEnum):
    XYZ = "xyz"
    SILHOUETTE = "silhouette"
    MESH = "mesh"
    IMAGES = "images"
    TRANSFORMS = "transforms"


class _SchemaDefault:
    """A template value that says: set this key, to the schema's default."""

    def __repr__(self) -> str:
        return "SCHEMA_DEFAULT"


SCHEMA_DEFAULT: Any = _SchemaDefault()
_UNSET = object()  # a key the template does not set: written commented out

COMMENT_COLUMN = 30  # where the comment after a key starts (when the key fits)


@dataclass(frozen=True)
class TemplateSpec:
    """What one template says beyond the schema: the prose at its top and the
    keys it sets ("section.key" -> plain TOML data or :data:`SCHEMA_DEFAULT`).
    Strings in both may name ``{name}``, ``{file}``, ``{mesh}`` and ``{views}``."""

    intro: tuple[str, ...]
    values: dict[str, Any]


_TWO_SPHERES = [
    {"type": "sphere", "center": [-0.35, 0.0, 0.0], "radius": 0.3},
    {"type": "sphere", "center": [0.40, 0.1, 0.0], "radius": 0.25},
]

_ORBIT = {
    "cameras.layout": "orbit",
    "cameras.count": 8,
    "cameras.distance": SCHEMA_DEFAULT,
    "cameras.elevation_deg": 20.0,
    "cameras.fov_deg": SCHEMA_DEFAULT,
    "cameras.resolution": [64, 64],
    "cameras.jitter": SCHEMA_DEFAULT,
}

_MLP = {
    "model.kind": "mlp",
    "model.hidden": SCHEMA_DEFAULT,
    "model.layers": SCHEMA_DEFAULT,
    "model.fourier_frequencies": SCHEMA_DEFAULT,
    "model.init_radius": SCHEMA_DEFAULT,
}

_COMMON = {
    "name": "{name}",
    "seed": SCHEMA_DEFAULT,
    "march.bound_radius": SCHEMA_DEFAULT,
    "march.clip_back": SCHEMA_DEFAULT,
    "march.max_steps": SCHEMA_DEFAULT,
    "march.hit_epsilon": SCHEMA_DEFAULT,
    "optim.iterations": SCHEMA_DEFAULT,
    "optim.lr": SCHEMA_DEFAULT,
    "optim.eikonal_weight": SCHEMA_DEFAULT,
    "optim.mask_alpha": SCHEMA_DEFAULT,
    "output.snapshot_every": SCHEMA_DEFAULT,
}

_HOW_TO_READ = "# Every key is listed; a commented-out one keeps the default shown."

TEMPLATES: dict[Template, TemplateSpec] = {
    Template.XYZ: TemplateSpec(
        intro=(
            '# {name}: fit a neural SDF to one "XYZ image" (RGB = visible surface point).',
            "# Check it:   warpsdf validate {file}",
            "# Look at it: warpsdf render {file} --out target.png --mode xyz",
            _HOW_TO_READ,
        ),
        values=_COMMON
        | {
            "target.kind": "shapes",
            "target.shapes": _TWO_SPHERES,
            "cameras.layout": "single",
            "cameras.distance": SCHEMA_DEFAULT,
            "cameras.fov_deg": SCHEMA_DEFAULT,
            "cameras.resolution": [64, 64],
            "cameras.jitter": 0.01,
            "supervision.mode": ["xyz", "silhouette"],
            "supervision.weights": {"xyz": 1.0, "silhouette": 1.0},
        }
        | _MLP
        | {"model.init": "sphere"},
    ),
    Template.SILHOUETTE: TemplateSpec(
        intro=(
            "# {name}: fit a set of spheres to silhouettes from several views.",
            "# Check it:   warpsdf validate {file}",
            "# Look at it: warpsdf render {file} --turntable 24 --out turntable.gif",
            _HOW_TO_READ,
        ),
        values=_COMMON
        | {"target.kind": "shapes", "target.shapes": _TWO_SPHERES}
        | _ORBIT
        | {
            "supervision.mode": ["silhouette"],
            "model.kind": "spheres",
            "model.count": SCHEMA_DEFAULT,
            "model.init": "grid",
            "model.init_radius": 0.3,  # start too big, to watch them shrink
            "model.smooth_k": SCHEMA_DEFAULT,
        },
    ),
    Template.MESH: TemplateSpec(
        intro=(
            "# {name}: fit a neural SDF to silhouettes of a mesh file.",
            "# Check it:   warpsdf validate {file}",
            "# Look at it: warpsdf render {file} --out target.png",
            _HOW_TO_READ,
        ),
        values=_COMMON
        | {
            "target.kind": "mesh",
            "target.path": "{mesh}",
            "target.normalize": SCHEMA_DEFAULT,
            "target.normalize_fill": SCHEMA_DEFAULT,
        }
        | _ORBIT
        | {"supervision.mode": ["silhouette"]}
        | _MLP,
    ),
    Template.IMAGES: TemplateSpec(
        intro=(
            "# {name}: fit a neural SDF to a folder of images with cameras.json.",
            "# Make such a folder from any scene:  warpsdf targets OTHER.toml --out {views}",
            "# Check it:   warpsdf validate {file}",
            "# The cameras come from cameras.json: [cameras] is not used. Supervise with",
            "# what the folder provides (mask: silhouette, xyz, depth).",
            _HOW_TO_READ,
        ),
        values=_COMMON
        | {
            "target.kind": "images",
            "target.path": "{views}/cameras.json",
            "supervision.mode": ["silhouette", "xyz"],
            "supervision.weights": {"silhouette": 1.0, "xyz": 1.0},
        }
        | _MLP,
    ),
    Template.TRANSFORMS: TemplateSpec(
        intro=(
            "# {name}: fit a neural SDF to a transforms.json dataset (NeRF-synthetic,",
            "# instant-ngp, nerfstudio): point target.path at its folder or json, or make",
            "# one from any scene:  warpsdf targets OTHER.toml --format transforms --out {views}",
            "# Check it:   warpsdf validate {file}",
            "# The cameras come from the dataset: [cameras] is not used. The masks are the",
            "# images' alpha (or mask_path); the object is fitted into the bound for you.",
            _HOW_TO_READ,
        ),
        values=_COMMON
        | {
            "target.kind": "transforms",
            "target.path": "{views}",
            "target.normalize": SCHEMA_DEFAULT,
            "target.normalize_fill": SCHEMA_DEFAULT,
            "target.heldout_split": SCHEMA_DEFAULT,
            "target.downscale": SCHEMA_DEFAULT,
            "supervision.mode": ["silhouette"],
        }
        | _MLP,
    ),
}


def template_text(template: Template, name: str, file: str, mesh: str = "", views: str = "") -> str:
    """The commented scene text for ``template``. ``file`` is the scene's own file
    name (for the hints), ``mesh`` and ``views`` the paths it refers to."""
    spec = TEMPLATES[Template(template)]
    names = {"name": name, "file": file, "mesh": mesh, "views": views}
    values = {
        key: value.format(**names) if isinstance(value, str) else value
        for key, value in spec.values.items()
    }
    lines = [line.format(**names) for line in spec.intro]
    for f in top_level_fields():
        lines += _key_lines(f, values.get(f.name, _UNSET))
    for section in SECTIONS:
        lines += ["", _with_comment(f"[{section}]", key_doc(section))]
        for f in section_fields(section):
            key = f"{section}.{f.name}"
            if key == "target.shapes" and key in values:
                lines += _shape_keys_help()
            lines += _key_lines(f, values.get(key, _UNSET))
    return "\n".join(lines) + "\n"


def _with_comment(text: str, comment: str) -> str:
    return f"{text.ljust(COMMENT_COLUMN - 2)}  # {comment}"


def _default_assignment(f: dataclasses.Field) -> str:
    """``key = default``; ``key =`` where the default is "not given"."""
    if f.metadata.get("required"):
        return f"{f.name} = (required)"
    default = field_default(f)
    return f"{f.name} =" if is_unset(default) else f"{f.name} = {toml_value(to_plain(default))}"


def _key_lines(f: dataclasses.Field, value: Any) -> list[str]:
    """One key: ``key = value  # doc; rule`` when the template sets it, else
    commented out with its default."""
    comment = field_comment(f)
    if value is _UNSET:
        if f.metadata.get("required"):
            raise ValueError(f"a template must set the required key {f.name!r}")
        return [_with_comment(f"# {_default_assignment(f)}", comment)]
    plain = to_plain(field_default(f) if value is SCHEMA_DEFAULT else value)
    if is_table_list(plain):
        first, *rest = table_list_lines(f.name, plain)
        return [_with_comment(first, comment), *rest]
    return [_with_comment(f"{f.name} = {toml_value(plain)}", comment)]


def _shape_keys_help() -> list[str]:
    """The keys of one shape's inline table with their defaults, and what each type needs."""
    lines = ["# Each shape is an inline table of these keys:"]
    for f in section_fields(SHAPES):
        lines.append(_with_comment(f"#   {_default_assignment(f)}", field_comment(f)))
    needs = "; ".join(f"{t.value}: {', '.join(keys)}" for t, keys in SHAPE_PARAMS.items())
    return lines + textwrap.wrap(
        f"Parameters by type: {needs}.", width=88, initial_indent="# ", subsequent_indent="#   "
    )


def write_example_mesh(path: str | Path) -> None:
    """A small torus with a sphere through its hole, as a binary PLY (for the mesh template)."""
    import trimesh  # here: only this template needs it, and it is slow to import

    torus = trimesh.creation.torus(
        major_radius=0.5, minor_radius=0.18, major_sections=48, minor_sections=24
    )
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    torus.apply_transform(trimesh.transformations.rotation_matrix(0.5, [1, 0, 0]))
    mesh = trimesh.util.concatenate([torus, ball])
    with atomic_file(path) as tmp:
        mesh.export(tmp, file_type="ply")
