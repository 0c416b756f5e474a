"""Scene files: TOML -> validated, frozen dataclasses (DESIGN §4).

The package holds one source for every rule on a scene key:

- :mod:`~warpsdf.scene.schema`: the enums and dataclasses; each field carries its
  default, its ``doc`` and its value ``check``;
- :mod:`~warpsdf.scene.keys`: a key's field, doc and default by dotted name
  (``key_doc("cameras.fov_deg")``), ``describe_keys``, ``suggest``;
- :mod:`~warpsdf.scene.checks`: the check grammar, ``key_problem`` and
  ``resolution_problem`` for values from elsewhere, ``key_help`` texts for
  options that set a key, and the cross checks;
- :mod:`~warpsdf.scene.load`: ``load_scene``, ``scene_from_dict``, ``--set`` overrides;
- :mod:`~warpsdf.scene.toml`: writing scenes and values as TOML.
"""

from warpsdf.scene.checks import (
    check_problem,
    check_text,
    cross_checks,
    field_comment,
    key_help,
    key_problem,
    key_rule,
    resolution_problem,
    satisfies,
    shape_problems,
    size_problems,
    upper_limit,
    view_size_problems,
)
from warpsdf.scene.keys import (
    SHAPES,
    default_text,
    describe_keys,
    field_default,
    is_unset,
    key_default,
    key_doc,
    key_field,
    section_fields,
    suggest,
    top_level_fields,
)
from warpsdf.scene.load import apply_override, load_scene, parse_override, scene_from_dict
from warpsdf.scene.schema import (
    SECTIONS,
    SHAPE_PARAMS,
    CameraLayout,
    CamerasConfig,
    CombineOp,
    DatasetSplit,
    MarchConfig,
    MLPKernels,
    ModelConfig,
    ModelInit,
    ModelKind,
    OptimConfig,
    OutputConfig,
    PointLoss,
    Preset,
    RaySampling,
    Scene,
    Schedule,
    ShapeSpec,
    ShapeType,
    SilhouetteLoss,
    SupervisionConfig,
    SupervisionMode,
    TargetConfig,
    TargetKind,
    Vec3,
)
from warpsdf.scene.toml import dumps_toml, to_plain, toml_value

__all__ = [
    "SECTIONS",
    "SHAPES",
    "SHAPE_PARAMS",
    "CameraLayout",
    "CamerasConfig",
    "CombineOp",
    "DatasetSplit",
    "MLPKernels",
    "MarchConfig",
    "ModelConfig",
    "ModelInit",
    "ModelKind",
    "OptimConfig",
    "OutputConfig",
    "PointLoss",
    "Preset",
    "RaySampling",
    "Scene",
    "Schedule",
    "ShapeSpec",
    "ShapeType",
    "SilhouetteLoss",
    "SupervisionConfig",
    "SupervisionMode",
    "TargetConfig",
    "TargetKind",
    "Vec3",
    "apply_override",
    "check_problem",
    "check_text",
    "cross_checks",
    "default_text",
    "describe_keys",
    "dumps_toml",
    "field_comment",
    "field_default",
    "is_unset",
    "key_default",
    "key_doc",
    "key_field",
    "key_help",
    "key_problem",
    "key_rule",
    "load_scene",
    "parse_override",
    "resolution_problem",
    "satisfies",
    "scene_from_dict",
    "section_fields",
    "shape_problems",
    "size_problems",
    "suggest",
    "to_plain",
    "toml_value",
    "top_level_fields",
    "upper_limit",
    "view_size_problems",
]
