"""Scene files (DESIGN §4): defaults, the resolved TOML round trip, --set
overrides, and errors that name the file, the key and what was expected."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SCENES
from warpsdf.errors import SceneError
from warpsdf.scene import (
    CameraLayout,
    CamerasConfig,
    CombineOp,
    MarchConfig,
    ModelInit,
    ModelKind,
    OptimConfig,
    Scene,
    ShapeType,
    SupervisionMode,
    TargetKind,
    apply_override,
    describe_keys,
    load_scene,
    parse_override,
    scene_from_dict,
)

SHIPPED = sorted(SCENES.glob("*.toml"))

MINIMAL = """\
[target]
kind = "shapes"
shapes = [{ type = "sphere", radius = 0.5 }]
"""

# The example of DESIGN §4, every section written out.
FULL = """\
name = "two_spheres_xyz"
seed = 3

[target]
kind = "shapes"

[[target.shapes]]
type = "sphere"
center = [-0.35, 0.0, 0.0]
radius = 0.3

[[target.shapes]]
type = "sphere"
center = [0.40, 0.1, 0.0]
radius = 0.25
op = "smooth_union"
k = 0.1

[[target.shapes]]
type = "box"
half_size = [0.1, 0.2, 0.3]
rotation_deg = [0, 45, 0]
scale = 0.5
op = "subtract"

[cameras]
layout = "orbit"
count = 4
distance = 2.5
fov_deg = 40.0
resolution = [128, 96]
jitter = 0.01
elevation_deg = 20

[supervision]
mode = ["xyz", "silhouette"]
weights = { silhouette = 0.5, xyz = 2 }

[model]
kind = "mlp"
hidden = 64
layers = 3
fourier_frequencies = 6
init = "sphere"
init_radius = 0.5

[march]
bound_radius = 1.0
clip_back = false
max_steps = 96
hit_epsilon = 1e-3

[optim]
iterations = 2000
lr = 1e-3
eikonal_weight = 0.1
mask_alpha = [50.0, 1600.0]

[output]
dir = "runs/custom"
snapshot_every = 20
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def scene_error(path: Path, overrides=()) -> SceneError:
    with pytest.raises(SceneError) as err:
        load_scene(path, overrides)
    return err.value


def assert_problem(err: SceneError, path: Path, *needles: str) -> None:
    """Some single problem line names the file and holds every needle."""
    lines = [p for p in err.problems if str(path) in p and all(n in p for n in needles)]
    assert lines, f"no problem line with {needles!r} and the file name in:\n{err}"


# ---------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------


def test_minimal_scene_fills_every_default(tmp_path):
    path = write(tmp_path / "ball.toml", MINIMAL)
    scene = load_scene(path)
    assert scene.name == "ball"  # the file name
    assert scene.seed == 0
    assert scene.source == str(path)
    assert scene.output.dir == str(Path("runs") / "ball")
    assert scene.output.snapshot_every == 20
    assert scene.model.kind is ModelKind.MLP
    assert scene.model.init is ModelInit.SPHERE  # resolved from the model kind
    assert scene.supervision.mode == (SupervisionMode.SILHOUETTE,)
    assert scene.supervision.weights == {"silhouette": 1.0}
    assert scene.cameras == CamerasConfig()
    assert scene.cameras.layout is CameraLayout.SINGLE
    assert scene.cameras.resolution == (128, 128)
    assert scene.march == MarchConfig()
    assert scene.march.clip_back is True and scene.march.bound_radius == 1.0
    assert scene.optim == OptimConfig()
    assert scene.optim.mask_alpha == (50.0, 1600.0)
    (shape,) = scene.target.shapes
    assert shape.type is ShapeType.SPHERE and shape.radius == 0.5
    assert shape.center == (0.0, 0.0, 0.0) and shape.scale == 1.0
    assert shape.op is CombineOp.UNION and shape.half_size is None
    assert scene.target.normalize is True and scene.target.normalize_fill == 0.9
    # Every field is set: nothing left at an unresolved placeholder.
    assert scene.name and scene.output.dir and scene.model.init is not None


def test_defaults_that_depend_on_other_keys(tmp_path):
    path = write(
        tmp_path / "s.toml",
        MINIMAL + '[model]\nkind = "spheres"\n[supervision]\nmode = ["xyz", "depth"]\n'
        "weights = { xyz = 2.5 }\n",
    )
    scene = load_scene(path)
    assert scene.model.init is ModelInit.GRID
    # only the listed modes are fitted and weighed: no silhouette term unless listed
    assert scene.supervision.weights == {"xyz": 2.5, "depth": 1.0}


@pytest.mark.parametrize(
    ("final_scale", "size", "scale"),
    [(0, (128, 128), 2), (0, (32, 32), 8), (0, (100, 50), 3), (0, (300, 200), 1),
     (0, (256, 16), 1), (4, (128, 128), 4), (1, (8, 8), 1)],
)  # fmt: skip
def test_final_render_scale(tmp_path, final_scale, size, scale):
    """output.final_scale = 0 (the default): the smallest multiple whose longer
    side reaches FINAL_SIDE (256) pixels; any other value as it is."""
    path = write(tmp_path / "s.toml", MINIMAL + f"[output]\nfinal_scale = {final_scale}\n")
    assert load_scene(path).output.render_scale(*size) == scale


def test_full_scene_values(tmp_path):
    scene = load_scene(write(tmp_path / "full.toml", FULL))
    assert scene.name == "two_spheres_xyz" and scene.seed == 3
    assert scene.output.dir == "runs/custom"
    assert scene.cameras.layout is CameraLayout.ORBIT and scene.cameras.count == 4
    assert scene.cameras.resolution == (128, 96)
    assert scene.cameras.elevation_deg == 20.0 and isinstance(scene.cameras.elevation_deg, float)
    assert scene.supervision.weights == {"silhouette": 0.5, "xyz": 2.0}
    assert scene.march.clip_back is False and scene.march.max_steps == 96
    box = scene.target.shapes[2]
    assert box.type is ShapeType.BOX and box.op is CombineOp.SUBTRACT
    assert box.half_size == (0.1, 0.2, 0.3) and box.rotation_deg == (0.0, 45.0, 0.0)
    assert scene.target.shapes[1].k == 0.1


def test_scene_is_frozen(tmp_path):
    scene = load_scene(write(tmp_path / "s.toml", MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.optim.lr = 1.0


# ---------------------------------------------------------------------------
# The resolved TOML round trip
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [MINIMAL, FULL], ids=["minimal", "full"])
def test_to_toml_round_trip(tmp_path, text):
    scene = load_scene(write(tmp_path / "a" / "scene.toml", text))
    resolved = scene.to_toml()
    data = tomllib.loads(resolved)
    assert set(data) >= {"name", "seed", "target", "cameras", "model", "march", "optim"}
    again = load_scene(write(tmp_path / "b" / "other_name.toml", resolved))
    assert again == scene
    assert again.to_toml() == resolved


def test_to_toml_round_trip_keeps_resolved_paths(tmp_path, monkeypatch):
    write(tmp_path / "scenes" / "meshes" / "m.obj", "v 0 0 0\n")
    scene = load_scene(
        write(
            tmp_path / "scenes" / "s.toml",
            '[target]\nkind = "mesh"\npath = "meshes/m.obj"\n',
        )
    )
    monkeypatch.chdir(tmp_path)
    again = load_scene(write(tmp_path / "elsewhere" / "s.toml", scene.to_toml()))
    assert again == scene
    assert again.target.path == str((tmp_path / "scenes" / "meshes" / "m.obj").resolve())


def skip_unless_self_contained(path: Path) -> None:
    """A shipped image-folder scene may point at a folder made by `warpsdf targets`."""
    target = tomllib.loads(path.read_text(encoding="utf-8")).get("target", {})
    if target.get("kind") == "images" and not (path.parent / target.get("path", "")).is_file():
        pytest.skip(f"{path.name}: its image folder is generated, not shipped")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scene_loads_and_round_trips(tmp_path, path):
    skip_unless_self_contained(path)
    scene = load_scene(path)
    assert scene.name == path.stem
    assert load_scene(write(tmp_path / "resolved.toml", scene.to_toml())) == scene


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scene_target_views(device, path):
    from warpsdf.targets import target_views

    skip_unless_self_contained(path)
    scene = load_scene(path, ["cameras.resolution=[16, 12]"])
    views = target_views(scene, device=device)
    assert views
    for view in views:
        assert view.mask.shape == (12, 16)
        assert view.mask.any(), "the target is in view"
        assert np.isinf(view.depth[~view.mask]).all()


def test_scene_from_dict_does_not_change_its_input():
    raw = {"target": {"kind": "shapes", "shapes": [{"type": "sphere", "radius": 0.5}]}}
    scene_from_dict(raw, overrides=["target.shapes[0].radius=0.2", "optim.lr=0.5"])
    assert raw == {"target": {"kind": "shapes", "shapes": [{"type": "sphere", "radius": 0.5}]}}


def test_describe_keys_covers_every_field():
    keys = {key for key, _, _ in describe_keys()}
    assert {"name", "seed", "optim.lr", "march.clip_back", "target.shapes[].radius"} <= keys
    docs = dict((k, doc) for k, _, doc in describe_keys())
    assert "world units" in docs["march.bound_radius"]
    defaults = {k: d for k, d, _ in describe_keys()}
    assert defaults["target.kind"] == "(required)" and defaults["optim.lr"] == "0.001"


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_toml_syntax_error(tmp_path):
    path = write(tmp_path / "broken.toml", '[target]\nkind = "shapes"\nshapes = [\n[optim\n')
    err = scene_error(path)
    assert str(path) in str(err) and "TOML syntax error" in str(err) and "line" in str(err)


def test_missing_scene_file(tmp_path):
    err = scene_error(tmp_path / "nope.toml")
    assert "nope.toml" in str(err) and "not found" in str(err)


def test_unknown_key_suggests_the_closest(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL + "[optim]\nlrr = 0.01\n")
    assert_problem(scene_error(path), path, "optim.lrr", "unknown key", "'lr'")


def test_unknown_key_in_a_shape(tmp_path):
    path = write(
        tmp_path / "s.toml",
        '[target]\nkind = "shapes"\nshapes = [{ type = "sphere", raduis = 0.5 }]\n',
    )
    assert_problem(scene_error(path), path, "target.shapes[0].raduis", "unknown key", "'radius'")


def test_unknown_section(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL + "[optimizer]\nlr = 0.01\n")
    assert_problem(scene_error(path), path, "optimizer", "unknown section", "'optim'")


def test_unknown_top_level_key_and_enum_value(tmp_path):
    path = write(tmp_path / "s.toml", 'nmae = "x"\n[target]\nkind = "meshh"\n')
    err = scene_error(path)
    assert_problem(err, path, "nmae", "'name'")
    assert_problem(err, path, "target.kind", "shapes, mesh, images", "'meshh'", "'mesh'")


@pytest.mark.parametrize(
    ("section", "line", "key", "expected"),
    [
        ("optim", 'lr = "fast"', "optim.lr", "expected a number, got 'fast'"),
        ("optim", "lr = true", "optim.lr", "expected a number, got true"),
        ("march", "max_steps = 12.5", "march.max_steps", "expected an integer, got 12.5"),
        ("march", "max_steps = true", "march.max_steps", "expected an integer, got true"),
        ("march", "clip_back = 1", "march.clip_back", "expected true or false"),
        ("cameras", "resolution = [64, 64.0]", "cameras.resolution", "expected an integer"),
        ("cameras", "resolution = 64", "cameras.resolution", "expected a list"),
        ("cameras", "resolution = [64, 64, 3]", "cameras.resolution", "list of 2 values"),
        ("cameras", 'look_at = ["a", 0, 0]', "cameras.look_at", "expected a number"),
        ("supervision", 'mode = "xyz"', "supervision.mode", "expected a list"),
        ("output", "dir = 3", "output.dir", "expected a string"),
        ("optim", "lr = nan", "optim.lr", "finite"),
    ],
)
def test_wrong_types(tmp_path, section, line, key, expected):
    path = write(tmp_path / "s.toml", MINIMAL + f"[{section}]\n{line}\n")
    assert_problem(scene_error(path), path, key, expected)


@pytest.mark.parametrize(
    ("section", "line", "key", "expected"),
    [
        ("march", "bound_radius = 0", "march.bound_radius", "> 0"),
        ("march", "bound_radius = -1.0", "march.bound_radius", "> 0"),
        ("march", "max_steps = 0", "march.max_steps", "> 0"),
        ("model", "init_radius = -0.5", "model.init_radius", "> 0"),
        ("cameras", "resolution = [0, 64]", "cameras.resolution", "> 0"),
        ("cameras", "resolution = [64, -8]", "cameras.resolution", "> 0"),
        ("cameras", "fov_deg = 0", "cameras.fov_deg", "(0, 180)"),
        ("cameras", "fov_deg = 180", "cameras.fov_deg", "(0, 180)"),
        ("cameras", "fov_deg = -10.0", "cameras.fov_deg", "(0, 180)"),
        ("cameras", "elevation_deg = 91", "cameras.elevation_deg", "[-90, 90]"),
        ("cameras", "jitter = -0.1", "cameras.jitter", ">= 0"),
        ("target", "normalize_fill = 1.5", "target.normalize_fill", "(0, 1]"),
        ("optim", "mask_alpha = [0.0, 10.0]", "optim.mask_alpha", "> 0"),
        ("supervision", "weights = { silhouette = -1.0 }", "silhouette", ">= 0"),
    ],
)
def test_out_of_range_values(tmp_path, section, line, key, expected):
    base = MINIMAL if section != "target" else MINIMAL.replace("[target]\n", "")
    text = f"[target]\n{line}\n" + base if section == "target" else base + f"[{section}]\n{line}\n"
    path = write(tmp_path / "s.toml", text)
    assert_problem(scene_error(path), path, key, expected)


@pytest.mark.parametrize(
    ("shape", "key", "expected"),
    [
        ('{ type = "sphere", radius = -0.1 }', "target.shapes[0].radius", "> 0"),
        ('{ type = "sphere", radius = 0 }', "target.shapes[0].radius", "> 0"),
        ('{ type = "box", half_size = [0.1, 0.0, 0.1] }', "target.shapes[0].half_size", "> 0"),
        ('{ type = "sphere", radius = 0.3, scale = 0 }', "target.shapes[0].scale", "> 0"),
        (
            '{ type = "sphere", radius = 0.3, half_size = [0.1, 0.1, 0.1] }',
            "target.shapes[0].half_size",
            "not a parameter of type = sphere",
        ),
        (
            '{ type = "torus", major_radius = 0.3, minor_radius = 0.1, radius = 0.2 }',
            "target.shapes[0].radius",
            "not a parameter of type = torus",
        ),
        ('{ type = "box" }', "target.shapes[0].half_size", "missing"),
        ('{ type = "capsule", radius = 0.1 }', "target.shapes[0].length", "missing"),
        ("{ radius = 0.3 }", "target.shapes[0].type", "missing required key"),
        ('{ type = "cone", radius = 0.3 }', "target.shapes[0].type", "expected one of"),
        (
            '{ type = "torus", major_radius = 0.1, minor_radius = 0.2 }',
            "target.shapes[0].minor_radius",
            "< major_radius",
        ),
        (
            '{ type = "rounded_box", half_size = [0.1, 0.2, 0.3], corner_radius = 0.1 }',
            "target.shapes[0].corner_radius",
            "< the smallest half_size",
        ),
    ],
)
def test_bad_shapes(tmp_path, shape, key, expected):
    path = write(tmp_path / "s.toml", f'[target]\nkind = "shapes"\nshapes = [{shape}]\n')
    assert_problem(scene_error(path), path, key, expected)


def test_missing_target(tmp_path):
    path = write(tmp_path / "s.toml", 'name = "x"\n[optim]\nlr = 0.01\n')
    assert_problem(scene_error(path), path, "target", "missing required key")


def test_target_kind_needs_its_keys(tmp_path):
    path = write(tmp_path / "s.toml", '[target]\nkind = "shapes"\n')
    assert_problem(scene_error(path), path, "target.shapes", "at least one shape")
    path = write(tmp_path / "m.toml", '[target]\nkind = "mesh"\n')
    assert_problem(scene_error(path), path, "target.path", "needs path")


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ("[cameras]\ncount = 3\n", "cameras.count", "layout = single has exactly 1 camera"),
        ('[cameras]\nlayout = "file"\n', "cameras.file", "layout = file needs file"),
        ("[cameras]\nup = [0, 0, 0]\n", "cameras.up", "non-zero"),
        ('[cameras]\nlayout = "orbit"\neye = [0, 0, 2]\n', "cameras.eye", "layout = single"),
        ("[supervision]\nmode = []\n", "supervision.mode", "at least one"),
        ('[supervision]\nmode = ["xyz", "xyz"]\n', "supervision.mode", "twice"),
        ("[supervision]\nweights = { xzy = 1.0 }\n", "supervision.weights.xzy", "not a supervised"),
        ('[model]\nkind = "spheres"\ninit = "sphere"\n', "model.init", "grid | random"),
        ("[model]\ninit_radius = 1.0\n", "model.init_radius", "< march.bound_radius"),
        ("[optim]\nmask_alpha = [100.0, 10.0]\n", "optim.mask_alpha", "end >= start"),
    ],
)
def test_cross_checks(tmp_path, extra, key, expected):
    path = write(tmp_path / "s.toml", MINIMAL + extra)
    assert_problem(scene_error(path), path, key, expected)


@pytest.mark.parametrize("seed", range(6))
def test_only_listed_modes_are_fitted_and_weighed(tmp_path, seed):
    """No term is implied: each subset of modes resolves weights for exactly
    its modes, and a weight for an unlisted mode is refused by name."""
    rng = np.random.default_rng(seed)
    every = [m.value for m in SupervisionMode]
    listed = [m for m in every if rng.random() < 0.5] or [every[seed % len(every)]]
    rng.shuffle(listed)
    modes = ", ".join(f'"{m}"' for m in listed)
    path = write(tmp_path / "s.toml", MINIMAL + f"[supervision]\nmode = [{modes}]\n")
    assert load_scene(path).supervision.weights == dict.fromkeys(listed, 1.0)
    for other in sorted(set(every) - set(listed)):
        bad = write(
            tmp_path / f"{other}.toml",
            MINIMAL + f"[supervision]\nmode = [{modes}]\nweights = {{ {other} = 1.0 }}\n",
        )
        assert_problem(scene_error(bad), bad, f"supervision.weights.{other}", "not a supervised")


@pytest.mark.parametrize("seed", range(4))
def test_image_target_keeps_only_the_camera_keys_it_uses(tmp_path, seed):
    """kind = images takes its cameras from target.path: whatever else
    [cameras] says is reset to the defaults, the resolved TOML says so in a
    comment and reads back to the same scene."""
    from tests.helpers import write_small_image_folder

    rng = np.random.default_rng(seed)
    cameras_json = write_small_image_folder(tmp_path / "views")
    given = {
        "layout": '"orbit"', "count": "5", "distance": "3.5", "fov_deg": "30.0",
        "resolution": "[40, 30]", "azimuth_deg": "12.0", "jitter": "0.02", "up": "[0.0, 0.0, 1.0]",
    }  # fmt: skip
    keys = [k for k in given if rng.random() < 0.6] or ["jitter"]
    text = f'[target]\nkind = "images"\npath = "{cameras_json.name}"\n[cameras]\n'
    text += "".join(f"{k} = {given[k]}\n" for k in keys)
    scene = load_scene(write(tmp_path / "views" / "s.toml", text))
    default = CamerasConfig()
    for field in dataclasses.fields(CamerasConfig):
        value = getattr(scene.cameras, field.name)
        if field.name in ("jitter", "up") and field.name in keys:
            assert value != getattr(default, field.name)
        else:
            assert value == getattr(default, field.name), field.name
    resolved = scene.to_toml()
    section = resolved.split("[cameras]\n", 1)[1]
    assert section.startswith("# target.kind = images: the cameras come from target.path")
    again = write(tmp_path / "views" / "again.toml", resolved)
    assert dataclasses.replace(load_scene(again), source=scene.source) == scene


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL + '[optim]\nlr = "x"\niterations = 0\nlrr = 1\n')
    err = scene_error(path)
    assert len(err.problems) == 3
    assert str(err).count(str(path)) == 3
    assert all("\n" not in p for p in err.problems)


# ---------------------------------------------------------------------------
# --set overrides
# ---------------------------------------------------------------------------


def test_override_sets_a_value(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL)
    scene = load_scene(path, ["optim.lr=3e-3", "march.clip_back=false", "name=other"])
    assert scene.optim.lr == 3e-3
    assert scene.march.clip_back is False
    assert scene.name == "other" and scene.output.dir == str(Path("runs") / "other")
    # Later overrides win; the file is unchanged.
    assert load_scene(path, ["optim.lr=1", "optim.lr=2"]).optim.lr == 2.0
    assert load_scene(path).optim.lr == 1e-3


def test_override_with_a_list_index(tmp_path):
    path = write(
        tmp_path / "s.toml",
        '[target]\nkind = "shapes"\n'
        'shapes = [{ type = "sphere", radius = 0.5 }, { type = "sphere", radius = 0.1 }]\n',
    )
    scene = load_scene(path, ["target.shapes[0].radius=0.2", "target.shapes[1].center=[0, 0.5, 0]"])
    assert scene.target.shapes[0].radius == 0.2
    assert scene.target.shapes[1].center == (0.0, 0.5, 0.0)
    assert scene.target.shapes[1].radius == 0.1
    with pytest.raises(SceneError, match="no such list element"):
        load_scene(path, ["target.shapes[5].radius=0.2"])


def test_override_lists_and_tables(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL)
    scene = load_scene(
        path,
        ['supervision.mode=["xyz", "depth"]', "supervision.weights={ xyz = 3.0 }",
         "cameras.resolution=[32, 24]", 'output.dir=my runs/x'],
    )  # fmt: skip
    assert scene.supervision.mode == (SupervisionMode.XYZ, SupervisionMode.DEPTH)
    assert scene.supervision.weights == {"xyz": 3.0, "depth": 1.0}
    assert scene.cameras.resolution == (32, 24)
    assert scene.output.dir == "my runs/x"  # not TOML: taken as a plain string


@pytest.mark.parametrize(
    ("item", "needles"),
    [
        ("optim.lr=abc", ("optim.lr", "expected a number", "--set")),
        ("march.max_steps=2.5", ("march.max_steps", "expected an integer", "--set")),
        ("optim.lrr=0.1", ("optim.lrr", "unknown key", "'lr'", "--set")),
        ("cameras.fov_deg=0", ("cameras.fov_deg", "(0, 180)", "--set")),
    ],
)
def test_overrides_are_type_checked(tmp_path, item, needles):
    path = write(tmp_path / "s.toml", MINIMAL)
    assert_problem(scene_error(path, [item]), path, *needles)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("optim.lr", "expected section.key=value"),
        ("=3", "expected section.key=value"),
        ("optim..lr=3", "cannot read key"),
        ("optim.iterations.x=3", "not a table"),
        ("target.kind[0]=3", "no such list element"),
    ],
)
def test_malformed_overrides(tmp_path, item, words):
    path = write(tmp_path / "s.toml", MINIMAL + "[optim]\niterations = 10\n")
    err = scene_error(path, [item])
    assert "--set" in str(err) and words in str(err)


def test_override_below_a_scalar_key_names_the_override(tmp_path):
    path = write(tmp_path / "s.toml", MINIMAL)
    err = scene_error(path, ["optim.lr.x=3"])
    assert "--set" in str(err)


def test_parse_and_apply_override():
    assert parse_override("optim.lr = 3e-3") == (["optim", "lr"], 3e-3)
    assert parse_override("target.shapes[2].center=[1, 2, 3]") == (
        ["target", "shapes", 2, "center"],
        [1, 2, 3],
    )
    assert parse_override("name=hello world") == (["name"], "hello world")
    raw: dict = {}
    apply_override(raw, "march.clip_back=false")
    assert raw == {"march": {"clip_back": False}}


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


def test_paths_are_relative_to_the_scene_file(tmp_path, monkeypatch):
    write(tmp_path / "project" / "meshes" / "plane.obj", "v 0 0 0\n")
    write(tmp_path / "project" / "views" / "cameras.json", "{}")
    path = write(
        tmp_path / "project" / "scenes" / "s.toml",
        '[target]\nkind = "mesh"\npath = "../meshes/plane.obj"\n'
        '[cameras]\nlayout = "file"\nfile = "../views/cameras.json"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scene = load_scene(Path("..") / "project" / "scenes" / "s.toml")
    assert scene.target.path == str((tmp_path / "project" / "meshes" / "plane.obj").resolve())
    assert scene.cameras.file == str((tmp_path / "project" / "views" / "cameras.json").resolve())
    # output.dir is relative to the working directory, not the scene file.
    assert scene.output.dir == str(Path("runs") / "s")
    # An absolute path stays as it is.
    absolute = tmp_path / "project" / "meshes" / "plane.obj"
    scene = load_scene(path, [f'target.path="{absolute}"'])
    assert scene.target.path == str(absolute.resolve())


def test_scene_type_is_the_public_one(tmp_path):
    scene = load_scene(write(tmp_path / "s.toml", MINIMAL))
    assert isinstance(scene, Scene) and scene.target.kind is TargetKind.SHAPES
