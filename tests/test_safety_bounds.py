"""Safety bounds (issue 10): every size has an upper limit stated in the schema
and checked when the scene loads (class 4); a fit whose field flew away is not
reported as fine (class 6); ``validate`` opens what the scene points to
(class 8); the TOML writer escapes every control character (class 7)."""

from __future__ import annotations

import dataclasses
import re
import typing

import numpy as np
import pytest
import warp as wp

from tests.conftest import SCENES
from tests.helpers import write_small_image_folder
from warpsdf import limits
from warpsdf.errors import SceneError
from warpsdf.scene import (
    SECTIONS,
    key_rule,
    scene_from_dict,
    size_problems,
    upper_limit,
)

# ---------------------------------------------------------------------------
# Class 4: upper bounds
# ---------------------------------------------------------------------------

# A scene with every size small, so that a key at its limit passes the cross
# checks on products (rays, render pixels, staged samples) too.
SMALL = {
    "target": {"kind": "shapes", "shapes": [{"type": "sphere", "radius": 0.5}]},
    "cameras": {"layout": "orbit", "count": 1, "resolution": [1, 1]},
    "output": {"final_scale": 1},
}
NOT_SIZES = {"seed"}  # integers that size nothing


def size_keys() -> list[str]:
    """Every integer key of the schema (a count, a size or an interval)."""
    keys = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if tp is int or (typing.get_origin(tp) is tuple and int in typing.get_args(tp)):
                keys.append(f"{section}.{f.name}")
    return keys


def load_with(key: str, value) -> list[str]:
    """The problem lines of SMALL with ``key = value`` ([] when it loads)."""
    section, name = key.split(".")
    raw = {k: dict(v) for k, v in SMALL.items()}
    hint = typing.get_type_hints(SECTIONS[section])[name]
    if typing.get_origin(hint) is tuple:  # a list of sizes: [value, 1] or [value]
        value = [value] if Ellipsis in typing.get_args(hint) else [value, 1]
    raw.setdefault(section, {})[name] = value
    try:
        scene_from_dict(raw, source="s.toml")
    except SceneError as err:
        return err.problems
    return []


def test_every_size_key_has_a_documented_limit():
    keys = size_keys()
    assert len(keys) >= 15
    for key in keys:
        top = upper_limit(key_rule(key) and key_rule(key).removeprefix("in "))
        assert top is not None and top <= limits.MAX_INDEX, f"{key}: no upper limit"
        assert str(int(top)) in key_rule(key)  # validate, --help and templates show it


@pytest.mark.parametrize("key", size_keys())
def test_values_around_each_limit(key):
    from warpsdf.scene.keys import key_field

    top = int(upper_limit(key_field(key).metadata["check"]))
    for value in (top - 1, top):
        assert load_with(key, value) == [], (key, value)
    for value in (top + 1, 2**31, 2**31 - 1, 10**8, 2**63 - 1):
        if value <= top:
            continue
        problems = load_with(key, value)
        assert len(problems) == 1, (key, value, problems)
        line = problems[0]
        where = rf"s\.toml: {re.escape(key)}(\[\d+\])?: expected a value "  # [i]: a list's entry
        assert re.match(where, line) and str(top) in line, line
        assert f"got {value}" in line and "\n" not in line
    problems = load_with(key, 1e8)  # a float: not an integer
    where = rf"s\.toml: {re.escape(key)}(\[\d+\])?: expected an integer"
    assert len(problems) == 1 and re.match(where, problems[0]), problems


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"cameras": {"layout": "orbit", "count": 4096, "resolution": [256, 256]}},
            "cameras.count",
        ),
        (
            {"cameras": {"resolution": [4096, 4096]}, "output": {"final_scale": 4}},
            "output.final_scale",
        ),
        (
            {"cameras": {"resolution": [8, 2048]}, "output": {"final_scale": 9}},
            "output.final_scale",
        ),
        (
            {"cameras": {"resolution": [2048, 2048]}, "output": {"heldout_views": 64}},
            "output.heldout_views",
        ),
        (
            {
                "optim": {"eikonal_samples": limits.MAX_EIKONAL_SAMPLES},
                "output": {"log_every": 500, "snapshot_every": 500, "checkpoint_every": 500},
            },
            "output.log_every",
        ),
    ],
)
def test_products_of_sizes_are_checked_when_the_scene_loads(overrides, key):
    raw = {"target": SMALL["target"]} | overrides
    with pytest.raises(SceneError) as err:
        scene_from_dict(raw, source="s.toml")
    assert any(line.startswith(f"s.toml: {key}: ") for line in err.value.problems), err.value


def test_a_scene_changed_after_loading_is_checked_again():
    scene = scene_from_dict(SMALL, source="s.toml")
    big = scene.replace(optim=dataclasses.replace(scene.optim, iterations=2**31))
    assert size_problems(scene, [(1, 1)]) == []
    (line,) = size_problems(big, [(1, 1)])
    assert line.startswith("s.toml: optim.iterations: expected a value > 0 and <= ")
    # a cameras.json's views are known only once read: too many rays
    (line,) = size_problems(scene, [(16384, 16384)])
    assert line.startswith("s.toml: cameras.count: ") and "rays" in line


def test_fitter_refuses_oversized_scenes_before_any_work():
    from warpsdf.fit import Fitter

    scene = scene_from_dict(SMALL, source="s.toml")
    big = scene.replace(march=dataclasses.replace(scene.march, max_steps=2**31))
    with pytest.raises(SceneError, match=r"s\.toml: march\.max_steps: expected a value"):
        Fitter.from_scene(big, "cpu")


def test_no_limit_lets_a_kernel_count_overflow_int32():
    assert limits.MAX_RAYS * 4 <= limits.INT32_MAX  # the guard's dim: 1 + rays + params
    assert 4 * limits.MAX_EIKONAL_SAMPLES <= limits.INT32_MAX
    assert limits.MAX_FINAL_SCALE**2 <= limits.MAX_RENDER_PIXELS
    assert limits.MAX_ITERATIONS < limits.INT32_MAX // 2  # the halt record's sentinel


# ---------------------------------------------------------------------------
# Class 6: a lost fit is not reported as fine
# ---------------------------------------------------------------------------

LOST_SCENE = SCENES / "spheres_shrink.toml"
LOST_SMALL = ("cameras.resolution=[12, 12]", "cameras.count=2", "optim.iterations=20")


def test_every_ray_in_the_bound_reports_a_finite_min_sdf():
    """The march says explicitly which rays enter the bound: min_sdf is FAR_SDF
    (+inf) exactly for those that do not, whatever the field holds (here spheres
    flown far away, with huge SDF values everywhere in the bound)."""
    from warpsdf.fields.spheres import SphereSetField
    from warpsdf.march import FAR_SDF, march
    from warpsdf.scene import MarchConfig

    rng = np.random.default_rng(5)
    origins = rng.normal(size=(400, 3))
    origins *= 2.5 / np.linalg.norm(origins, axis=1, keepdims=True)
    dirs = rng.normal(size=(400, 3)) - origins  # roughly inwards: many enter, some miss
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    b = (origins * dirs).sum(1)
    disc = b * b - ((origins * origins).sum(1) - 1.0)  # bound radius 1
    enters = (disc > 1e-4) & (-b + np.sqrt(np.abs(disc)) > 0)
    assert enters.any() and not enters.all()
    for shift in (0.0, 1e3, 1e6, 3e7):
        centers = np.array([[shift, 0.0, 0.0], [-shift, 0.5, 0.0]])
        field = SphereSetField(centers, np.array([0.3, 0.2]), smooth_k=0.02, device="cpu")
        hits = march(
            field,
            wp.array(origins, dtype=wp.vec3, device="cpu"),
            wp.array(dirs, dtype=wp.vec3, device="cpu"),
            MarchConfig(),
        ).numpy()
        assert np.all(hits["min_sdf"][~enters] == FAR_SDF)
        assert np.all(np.isfinite(hits["min_sdf"][enters])), shift


def huge_rates(count: int = 6) -> list[float]:
    rng = np.random.default_rng(10)
    return sorted({*(10.0 ** rng.uniform(2.0, 15.0, count)), 1e6})


@pytest.mark.parametrize("lr", huge_rates())
def test_a_sphere_fit_with_a_huge_learning_rate_is_not_finished(lr, tmp_path):
    from warpsdf.fit import RunStatus, fit
    from warpsdf.scene import load_scene

    scene = load_scene(LOST_SCENE, [*LOST_SMALL, f"optim.lr={lr}"])
    losses = []
    result = fit(
        scene, tmp_path / "run", device="cpu", write_outputs=False,
        on_step=lambda record: losses.append(record.loss),
    )  # fmt: skip
    assert result.status in (RunStatus.DIVERGED, RunStatus.LOST), (lr, result.reason)
    assert result.reason
    assert losses and all(v > 0 for v in losses), losses  # a real loss, never 0


@pytest.mark.parametrize("lr", [1e-3, 1e-2])
def test_a_normal_sphere_fit_still_finishes(lr, tmp_path):
    from warpsdf.fit import RunStatus, fit
    from warpsdf.scene import load_scene

    scene = load_scene(LOST_SCENE, [*LOST_SMALL, f"optim.lr={lr}"])
    result = fit(scene, tmp_path / "run", device="cpu", write_outputs=False)
    assert result.status is RunStatus.FINISHED and result.reason == ""


@pytest.mark.parametrize(("lr", "status"), [(0.3, "finished"), (1.5, "finished"), (3.0, "lost")])
def test_a_thrashing_sphere_fit_is_reported_with_its_metrics(lr, status, tmp_path):
    """Too high a rate for the shrinking spheres: the fit thrashes (a real,
    non-zero loss throughout) and ends lost (3: nothing of the target left) or
    finished with a warning that it is no better than its start (1.5); status,
    reason and warning land in metrics.json."""
    import json

    from warpsdf.fit import fit
    from warpsdf.io.layout import RunFolder
    from warpsdf.scene import load_scene

    sets = ["cameras.resolution=[24, 24]", "cameras.count=4", "optim.iterations=150",
            "output.heldout_views=0", "output.mesh_resolution=16",
            "output.final_scale=1"]  # fmt: skip
    scene = load_scene(LOST_SCENE, [*sets, f"optim.lr={lr}"])
    result = fit(scene, tmp_path / "run", device="cpu")
    metrics = json.loads(RunFolder(tmp_path / "run").metrics.read_text())
    assert result.status.value == metrics["status"] == status, result.reason
    assert bool(metrics["reason"]) == (status == "lost")
    assert metrics["warning"] == result.warning
    assert bool(result.warning) == (lr == 1.5), result.warning


def test_lost_reason_rules():
    from warpsdf.fit.guard import LOST_LOSS_FACTOR, lost_reason, progress_warning

    assert lost_reason([0.02, 0.01, 0.001]) == ""
    assert lost_reason([0.02, 0.02 * LOST_LOSS_FACTOR]) == ""
    assert "flew away" in lost_reason([0.02, 0.02 * LOST_LOSS_FACTOR * 1.01])
    assert "train IoU 0" in lost_reason([0.02, 0.01], train_iou=0.0)
    assert lost_reason([0.02, 0.01], train_iou=0.3) == ""
    # ending no better than the first step: a warning, not a status
    rng = np.random.default_rng(12)
    for _ in range(200):
        ious = list(rng.uniform(0, 1, rng.integers(1, 6)))
        end = float(rng.choice([rng.uniform(0, 1), ious[0]]))
        warning = progress_warning(ious, end)
        assert bool(warning) == (end <= ious[0]), (ious, end)
        assert not warning or f"{end:.3g}" in warning
        assert progress_warning(ious, None) == "" and progress_warning([], end) == ""


def test_sweeps_count_a_lost_fit_as_diverged():
    from warpsdf.fit import RunStatus
    from warpsdf.sweep.plan import Criteria
    from warpsdf.sweep.summary import PointStatus, classify

    status = classify(RunStatus.LOST, {"train_iou": 0.0}, [0.02, 5.0], Criteria())
    assert status is PointStatus.DIVERGED


# ---------------------------------------------------------------------------
# Class 8: validate opens what the scene points to
# ---------------------------------------------------------------------------


def _validate(scene_file):
    from tests.conftest import cli

    return cli("validate", scene_file)


def _good_mesh(path):
    import trimesh

    trimesh.creation.icosphere(subdivisions=1, radius=0.5).export(path)
    return path


def _corrupt_meshes(tmp_path):
    """(file name, bytes) of generated broken meshes: truncated, empty, garbage,
    faces without vertices, faces indexing missing vertices, NaN vertices."""
    good_ply = _good_mesh(tmp_path / "good.ply").read_bytes()
    good_obj = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"
    rng = np.random.default_rng(3)
    meshes = [("empty.ply", b""), ("garbage.stl", bytes(rng.integers(0, 256, 300, np.uint8)))]
    for frac in (0.1, 0.5, 0.9):
        meshes.append((f"cut{frac}.ply", good_ply[: int(len(good_ply) * frac)]))
    meshes += [
        ("vertices_only.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"),
        ("bad_index.obj", b"v 0 0 0\nv 1 0 0\nf 1 2 9\n"),
        ("nan.obj", good_obj.replace("v 1 0 0", "v nan 0 0").encode()),
        ("point.obj", b"v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n"),
        ("text.glb", b"not a glb at all"),
    ]
    return meshes


def test_validate_refuses_every_corrupt_mesh(tmp_path):
    from tests.conftest import assert_user_error

    good = _good_mesh(tmp_path / "ok.ply")
    scene = tmp_path / "s.toml"
    scene.write_text(f'[target]\nkind = "mesh"\npath = "{good.name}"\n')
    assert _validate(scene).exit_code == 0
    for name, data in _corrupt_meshes(tmp_path):
        (tmp_path / name).write_bytes(data)
        scene.write_text(f'[target]\nkind = "mesh"\npath = "{name}"\n')
        line = assert_user_error(_validate(scene), "s.toml", "target.path", name)
        assert "Traceback" not in line


def _image_folder(tmp_path):
    return write_small_image_folder(tmp_path / "views")


def _break_folder(folder, how: str, index: int, kind: str) -> str:
    """Break one image of a good folder; returns the file name it broke."""
    import json

    cameras = json.loads((folder / "cameras.json").read_text())["cameras"]
    name = cameras[index][kind]
    path = folder / name
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: max(8, path.stat().st_size // 3)])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "resized":  # a valid image of the wrong size
        from warpsdf.io.images import write_npy, write_png

        if kind == "depth":
            write_npy(path, np.ones((3, 5), np.float32))
        else:
            write_png(
                path,
                np.zeros((3, 5), np.uint8) if kind == "mask" else np.zeros((3, 5, 3), np.uint16),
            )
    return name


@pytest.mark.parametrize("how", ["missing", "truncated", "empty", "resized"])
@pytest.mark.parametrize("kind", ["mask", "xyz", "depth"])
def test_validate_refuses_broken_image_folders(tmp_path, how, kind):
    from tests.conftest import assert_user_error

    json_path = _image_folder(tmp_path)
    scene = tmp_path / "s.toml"
    scene.write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    assert _validate(scene).exit_code == 0
    index = (len(how) + len(kind)) % 3  # a different view for different cases
    name = _break_folder(json_path.parent, how, index, kind)
    assert_user_error(_validate(scene), "s.toml", "target.path", name)


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"cameras": []}', '{"cameras": [{"eye": [0, 0, 2.5]}]}', "{" * 2000],
)
def test_validate_refuses_broken_cameras_json(tmp_path, text):
    from tests.conftest import assert_user_error

    json_path = _image_folder(tmp_path)
    json_path.write_text(text)
    scene = tmp_path / "s.toml"
    scene.write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    assert_user_error(_validate(scene), "s.toml", "target.path", "cameras.json")


def test_check_target_summary(tmp_path):
    from warpsdf.scene import load_scene
    from warpsdf.targets import check_target

    _good_mesh(tmp_path / "ok.ply")
    (tmp_path / "m.toml").write_text('[target]\nkind = "mesh"\npath = "ok.ply"\n')
    summary = check_target(load_scene(tmp_path / "m.toml"))
    assert summary.faces > 0 and summary.vertices > 0
    _image_folder(tmp_path)
    (tmp_path / "i.toml").write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    assert check_target(load_scene(tmp_path / "i.toml")).views == 3


# ---------------------------------------------------------------------------
# Class 7: TOML output that always loads; what resume means
# ---------------------------------------------------------------------------

CONTROL = [chr(c) for c in [*range(0x20), 0x7F]]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_every_control_character_round_trips_through_the_scene_toml(char, tmp_path):
    import tomllib

    from warpsdf.scene import load_scene

    scene = scene_from_dict(SMALL, source="s.toml")
    rng = np.random.default_rng(ord(char))
    pieces = ["a", char, '"', "\\", "é", *rng.choice(CONTROL, 3)]
    name = "".join(rng.permutation(pieces))
    text = scene.replace(name=name).to_toml()
    assert tomllib.loads(text)["name"] == name  # the writer escapes every one
    path = tmp_path / "scene.toml"
    path.write_text(text, encoding="utf-8")
    try:
        assert load_scene(path).name == name
    except SceneError as err:  # a name rule may refuse it: one line naming the key
        assert len(err.problems) == 1 and ": name: " in err.problems[0]


def test_resume_note_says_how_the_schedules_change():
    from warpsdf.fit.schedule import mask_alpha, resume_note

    scene = scene_from_dict(SMALL | {"optim": {"iterations": 300}}, source="s.toml")
    longer = scene.replace(optim=dataclasses.replace(scene.optim, iterations=600))
    assert resume_note(scene, scene, 299) == ""
    note = resume_note(scene, longer, 299)
    assert "600" in note and "300" in note
    assert f"{mask_alpha(scene, 299):.4g} -> {mask_alpha(longer, 299):.4g}" in note
