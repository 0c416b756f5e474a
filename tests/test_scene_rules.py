"""One source for each rule: the schema's field metadata says what a key allows,
and every other place that takes the same value (command-line options, a
cameras.json, a Camera) asks the schema instead of restating the range."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.conftest import SCENES, assert_user_error, cli
from warpsdf.camera import Camera, read_cameras
from warpsdf.errors import InputFileError, WarpsdfError
from warpsdf.limits import MAX_RESOLUTION
from warpsdf.scene import (
    SECTIONS,
    SHAPES,
    CamerasConfig,
    check_problem,
    describe_keys,
    key_default,
    key_doc,
    key_field,
    key_help,
    key_problem,
    key_rule,
    resolution_problem,
    satisfies,
    section_fields,
    suggest,
    top_level_fields,
)
from warpsdf.viewing import ViewRequest


def _all_fields() -> list[dataclasses.Field]:
    fields = list(top_level_fields())
    for section in [*SECTIONS, SHAPES]:
        fields += section_fields(section)
    return fields


def test_every_key_has_a_doc_and_a_check_the_grammar_reads():
    for f in _all_fields():
        assert f.metadata["doc"].strip(), f.name
        check = f.metadata.get("check")
        if check is not None:
            satisfies(1.0, check)  # raises ValueError for a check it cannot read


def test_key_lookup_by_dotted_name():
    assert key_field("cameras.fov_deg").name == "fov_deg"
    assert key_field("target.shapes[].radius").name == "radius"
    assert key_doc("seed") == "random seed"
    assert key_doc("cameras") == "training views"
    assert key_default("cameras.fov_deg") == CamerasConfig().fov_deg
    assert key_default("target.kind") is dataclasses.MISSING
    with pytest.raises(KeyError, match="did you mean 'fov_deg'"):
        key_field("cameras.fov")
    with pytest.raises(KeyError, match="did you mean 'cameras'"):
        key_field("camera.fov_deg")
    assert {k for k, _, _ in describe_keys()} >= {"cameras.fov_deg", f"{SHAPES}.radius"}


def test_suggest():
    assert suggest("lrr", ["lr", "seed"]) == " (did you mean 'lr'?)"
    assert suggest("zzz", ["lr", "seed"]) == ""


@pytest.mark.parametrize(
    ("check", "ok", "bad"),
    [
        ("> 0", [1e-9, 3], [0, -1]),
        (">= 0", [0, 2], [-1e-9]),
        ("(0, 180)", [1e-6, 90, 179.9], [0, 180, -10]),
        ("[-90, 90]", [-90, 0, 90], [-90.5, 91]),
        ("[8, 1024]", [8, 1024], [7, 1025]),
        ("(0, 1]", [1, 0.5], [0, 1.5]),
    ],
)
def test_check_grammar(check, ok, bad):
    for value in ok:
        assert satisfies(value, check) and check_problem(check, value) is None
    for value in bad:
        assert not satisfies(value, check)
        assert check_problem(check, value).startswith("expected a value ")


def test_key_rules_in_words():
    assert key_rule("cameras.fov_deg") == "in (0, 180)"
    assert key_rule("cameras.elevation_deg") == "in [-90, 90]"
    assert key_rule("output.mesh_resolution") == "in [8, 1024]"
    assert key_rule("cameras.distance") == "> 0"
    assert key_rule("cameras.azimuth_deg") is None
    assert key_problem("cameras.fov_deg", 200) == "expected a value in (0, 180)"
    assert key_problem("cameras.fov_deg", 40) is None
    assert key_help("cameras.fov_deg") == "Vertical field of view, degrees, in (0, 180)."


def test_resolution_rule():
    assert resolution_problem((64, 48)) is None
    assert resolution_problem((MAX_RESOLUTION, 1)) is None
    assert "> 0" in resolution_problem((0, 16))
    assert str(MAX_RESOLUTION) in resolution_problem((MAX_RESOLUTION + 1, 16))


# Values at and around each boundary: every place that takes the value agrees with
# the schema on which ones are allowed.
FOVS = [-10.0, 0.0, 1e-3, 40.0, 179.99, 180.0, 200.0]
ELEVATIONS = [-91.0, -90.0, 0.0, 90.0, 90.5]


@pytest.mark.parametrize("fov", FOVS)
def test_camera_follows_the_fov_rule(fov):
    allowed = key_problem("cameras.fov_deg", fov) is None
    try:
        Camera((0.0, 0.0, 2.5), fov_deg=fov)
    except ValueError as err:
        assert not allowed and "fov_deg" in str(err)
    else:
        assert allowed


@pytest.mark.parametrize(
    ("field", "option", "key", "values"),
    [
        ("fov_deg", "--fov", "cameras.fov_deg", FOVS),
        ("elevation_deg", "--elevation", "cameras.elevation_deg", ELEVATIONS),
        ("distance", "--distance", "cameras.distance", [-1.0, 0.0, 2.5]),
    ],
)
def test_view_options_follow_the_scene_rules(field, option, key, values):
    for value in values:
        problem = key_problem(key, value)
        request = ViewRequest(**{field: value})
        if problem is None:
            request.check()
        else:
            with pytest.raises(WarpsdfError, match=option) as err:
                request.check()
            assert problem in str(err.value)


@pytest.mark.parametrize("fov", FOVS)
def test_cameras_json_follows_the_fov_rule(fov, tmp_path):
    entry = {"eye": [0, 0, 2.5], "target": [0, 0, 0], "up": [0, 1, 0], "width": 4, "height": 4}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"cameras": [entry | {"fov_deg": fov}]}))
    if key_problem("cameras.fov_deg", fov) is None:
        assert read_cameras(path)[0].camera.fov_deg == fov
    else:
        with pytest.raises(InputFileError, match=r"cameras\[0\]\.fov_deg") as err:
            read_cameras(path)
        assert key_rule("cameras.fov_deg") in str(err.value)


@pytest.mark.parametrize(
    "text", ["0", "16x0", "64", "320x240", str(MAX_RESOLUTION), f"{MAX_RESOLUTION + 1}x8"]
)
def test_resolution_option_follows_the_scene_rule(text, tmp_path):
    w, _, h = text.partition("x")
    size = (int(w), int(h or w))
    problem = resolution_problem(size)
    if problem is None:
        ViewRequest(resolution=size).check()
    else:  # refused before the scene is read or anything rendered
        scene = SCENES / "two_spheres_xyz.toml"
        result = cli("render", scene, "--out", tmp_path / "x.png", "-r", text)
        assert_user_error(result, "--resolution", problem)


@pytest.mark.parametrize("resolution", [7, 8, 1024, 1025])
def test_export_resolution_follows_the_scene_rule(resolution, tmp_path):
    problem = key_problem("output.mesh_resolution", resolution)
    result = cli("export", tmp_path / "missing", "--out", tmp_path / "m.ply", "-r", resolution)
    if problem is None:  # past the check: the missing run folder is the error
        assert_user_error(result, "missing")
    else:  # refused before the run folder is read
        assert_user_error(result, "--resolution", problem)
