"""Image-folder views by name (issue 10): every camera of a cameras.json has a
name (its ``"name"``, else its mask, xyz or depth file's stem, else
``view_NNN``), ``render --cameras`` writes ``NAME.png``, ``target.heldout``
keeps named or indexed views out of training for ``heldout_iou``, and a view
that lacks an image the fit needs is named, with its file, by the fit and by
``validate``.

Most cases are generated from seeds: random name sources, orders, held-out
subsets and bad values. Views are drawn with numpy (no Warp) except for the
render and the tiny end-to-end fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_user_error, cli
from tests.helpers import SPHERES_SCENE, TINY, tiny_scene
from warpsdf.camera import Camera, heldout_indices, read_cameras, training_cameras
from warpsdf.errors import InputFileError, SceneError, WarpsdfError
from warpsdf.fit import Fitter, fit
from warpsdf.fit.staging import flatten_targets
from warpsdf.io.images import read_png, to_uint8, write_png
from warpsdf.metrics import mean_iou, trace_views
from warpsdf.render import RenderMode, render, to_display
from warpsdf.scene import SupervisionMode, load_scene, scene_from_dict
from warpsdf.targets import build_target, load_image_views, target_views, write_image_views
from warpsdf.targets.views import TargetView

# Where a view's name comes from: its "name", its mask, xyz (PNG or .npy) or
# depth file, or nothing at all (view_NNN).
SOURCES = ("name", "mask", "xyz", "xyz_npy", "depth", "none")
H, W = 5, 6


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[1:4, 2:5] = True
    return mask


def _camera(i: int) -> Camera:
    angle = 0.7 * i
    return Camera((2.5 * math.sin(angle), 0.3 * (i % 3), 2.5 * math.cos(angle)), width=W, height=H)


def write_views(folder: Path, sources: list[str], *, names=None, stems=None) -> tuple[Path, list]:
    """A cameras.json with one view per entry of ``sources`` (where its name
    comes from); lower-priority image files get other stems, so the name
    shows which file it came from. Returns the json path and the expected
    names. ``names``/``stems``: {index: value} overrides of a view's given
    name or its files' stem."""
    folder.mkdir(parents=True, exist_ok=True)
    names, stems = names or {}, stems or {}
    mask = _mask()
    xyz = np.where(mask[..., None], np.float32([0.1, 0.2, 0.3]), np.float32(0))
    depth = np.where(mask, 2.0, np.inf).astype(np.float32)
    entries, expected = [], []
    for i, source in enumerate(sources):
        entry = _camera(i).to_json()
        stem = stems.get(i, f"{source}_{i}")
        if source == "name":
            entry["name"] = names.get(i, f"given {i}")
            write_png(folder / f"m{i}.png", mask.astype(np.uint8) * 255)
            entry["mask"] = f"m{i}.png"
        if source == "mask":
            write_png(folder / f"{stem}.png", mask.astype(np.uint8) * 255)
            entry["mask"] = f"{stem}.png"
        if source in ("mask", "xyz", "xyz_npy"):  # xyz files, named after the view or not
            xyz_stem = stem if source != "mask" else f"other_xyz_{i}"
            if source == "xyz_npy":
                np.save(folder / f"{xyz_stem}.npy", xyz)
                entry["xyz"] = f"{xyz_stem}.npy"
            else:  # black where there is no object
                rgb = np.round((xyz + 1) * 0.5 * 65535).astype(np.uint16)
                rgb[~mask] = 0
                write_png(folder / f"{xyz_stem}.png", rgb)
                entry["xyz"] = f"{xyz_stem}.png"
        if source in ("mask", "xyz_npy", "depth"):
            depth_stem = stem if source == "depth" else f"other_depth_{i}"
            np.save(folder / f"{depth_stem}.npy", depth)
            entry["depth"] = f"{depth_stem}.npy"
        entries.append(entry)
        expected.append(
            entry["name"] if source == "name" else f"view_{i:03d}" if source == "none" else stem
        )
    path = folder / "cameras.json"
    path.write_text(json.dumps({"cameras": entries}))
    return path, expected


def images_scene(tmp_path: Path, heldout=(), modes=("silhouette",), name="s.toml") -> Path:
    scene = tmp_path / name
    scene.write_text(
        f'[target]\nkind = "images"\npath = "views/cameras.json"\nheldout = {json.dumps(heldout)}\n'
        f"[supervision]\nmode = {json.dumps(list(modes))}\n"
    )
    return scene


def with_heldout(scene, heldout):
    return scene.replace(target=dataclasses.replace(scene.target, heldout=tuple(heldout)))


def random_sources(rng: random.Random, low: int = 1, high: int = 7) -> list[str]:
    return [rng.choice(SOURCES) for _ in range(rng.randint(low, high))]


# ---------------------------------------------------------------------------
# 1. names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_every_view_has_a_name_from_its_first_source(tmp_path, seed):
    rng = random.Random(seed)
    sources = random_sources(rng)
    path, expected = write_views(tmp_path / "views", sources)
    entries = read_cameras(path)
    assert [e.name for e in entries] == expected
    assert [e.camera for e in entries] == [_camera(i) for i in range(len(sources))]  # in order
    assert [e.where for e in entries] == [f"{path}: cameras[{i}]" for i in range(len(sources))]
    views = load_image_views(path)
    assert [v.name for v in views] == expected
    assert [v.label(i) for i, v in enumerate(views)] == [
        f"{path}: cameras[{i}] (name {n!r})" for i, n in enumerate(expected)
    ]
    # only a view without any image has no mask
    assert [v.mask is None for v in views] == [s == "none" for s in sources]


@pytest.mark.parametrize("seed", range(6))
def test_names_survive_a_round_trip(tmp_path, seed):
    rng = random.Random(seed)
    path, expected = write_views(tmp_path / "a", random_sources(rng))
    again = write_image_views(load_image_views(path), tmp_path / "b")
    written = json.loads(again.read_text())["cameras"]
    assert [e["name"] for e in written] == expected
    assert [v.name for v in load_image_views(again)] == expected
    # views without a name (traced ones) are written as view_NNN
    plain = [TargetView(_camera(i), _mask()) for i in range(3)]
    json_path = write_image_views(plain, tmp_path / "c")
    assert [e.name for e in read_cameras(json_path)] == ["view_000", "view_001", "view_002"]


BAD_NAMES = [
    ("a/b", "plain file name"),
    ("..", "plain file name"),
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("tab\there", "control characters"),
    ("x" * 121, "at most 120 characters"),
    ("\U0001d4b3" * 63, "at most 251 bytes"),  # 252 bytes: NAME.png would be too long
    (3, "expected a name (a string)"),
    (["a"], "expected a name (a string)"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_NAMES)
def test_bad_names_are_one_line_naming_the_entry(tmp_path, bad, words):
    rng = random.Random(repr(bad))
    sources = random_sources(rng, 2, 5)
    where = rng.randrange(len(sources))
    sources[where] = "name"
    path, _ = write_views(tmp_path / "views", sources, names={where: bad})
    with pytest.raises(InputFileError) as err:
        read_cameras(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and f"cameras[{where}].name" in msg, msg
    assert words in msg, msg


def test_a_bad_file_stem_asks_for_a_name(tmp_path):
    path, _ = write_views(tmp_path / "views", ["mask", "mask"], stems={1: "bad\x01stem"})
    with pytest.raises(InputFileError) as err:
        read_cameras(path)
    msg = str(err.value)
    assert "cameras[1].mask" in msg and "control characters" in msg and '"name"' in msg


@pytest.mark.parametrize("seed", range(10))
def test_duplicate_names_name_both_entries(tmp_path, seed):
    rng = random.Random(seed)
    sources = random_sources(rng, 3, 7)
    i, j = sorted(rng.sample(range(len(sources)), 2))
    way = rng.choice(["given", "given and file", "case", "files in two folders"])
    names, stems = {}, {}
    if way == "given":
        sources[i] = sources[j] = "name"
        names = {i: "same", j: "same"}
    elif way == "given and file":
        sources[i], sources[j] = rng.sample(["name", rng.choice(["mask", "xyz", "depth"])], 2)
        names = {i: "same", j: "same"}
        stems = {i: "same", j: "same"}
    elif way == "case":
        sources[i] = sources[j] = "name"
        names = {i: "Front", j: "front"}
    else:
        sources[i] = sources[j] = "mask"
        stems = {i: "a/same", j: "b/same"}
        (tmp_path / "views" / "a").mkdir(parents=True)
        (tmp_path / "views" / "b").mkdir()
    path, _ = write_views(tmp_path / "views", sources, names=names, stems=stems)
    with pytest.raises(InputFileError) as err:
        read_cameras(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert f"cameras[{i}] and cameras[{j}]" in msg and "unique" in msg, msg


RENDER_SCENE = """
[target]
kind = "shapes"
shapes = [{ type = "sphere", center = [-0.35, 0.0, 0.0], radius = 0.3 },
          { type = "sphere", center = [0.40, 0.1, 0.0], radius = 0.25 }]
[cameras]
resolution = [8, 8]
"""


@pytest.mark.parametrize("seed", range(3))
def test_render_cameras_writes_one_file_per_view_name(tmp_path, seed):
    rng = random.Random(seed)
    path, expected = write_views(tmp_path / "views", random_sources(rng, 2, 5))
    scene = tmp_path / "s.toml"
    scene.write_text(RENDER_SCENE)
    out = tmp_path / "renders"
    args = ("render", scene, "--out", out, "--cameras", path, "--mode", "mask", "--device", "cpu")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{n}.png" for n in expected)
    resolved = load_scene(scene)
    source = build_target(resolved, "cpu").source
    for entry in read_cameras(path):  # each file is its own camera's view
        image = render(source, entry.camera, RenderMode.MASK, resolved.march)
        want = to_uint8(to_display(image, RenderMode.MASK))
        np.testing.assert_array_equal(read_png(out / f"{entry.name}.png"), want)


def test_render_cameras_refuses_duplicate_names(tmp_path):
    path, _ = write_views(tmp_path / "views", ["name", "name"], names={0: "x", 1: "x"})
    scene = tmp_path / "s.toml"
    scene.write_text(RENDER_SCENE)
    out = tmp_path / "renders"
    result = cli("render", scene, "--out", out, "--cameras", path, "--device", "cpu")
    assert_user_error(result, str(path), "cameras[0] and cameras[1]", "'x'")
    assert not out.exists()


# ---------------------------------------------------------------------------
# 2. held-out views
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_heldout_views_by_name_and_index(tmp_path, seed):
    rng = random.Random(seed)
    sources = [rng.choice(SOURCES[:-1]) for _ in range(rng.randint(2, 8))]  # each has a mask
    _, names = write_views(tmp_path / "views", sources)
    chosen = rng.sample(range(len(names)), rng.randint(1, len(names) - 1))
    heldout = [names[i] if rng.random() < 0.5 else i for i in chosen]
    scene = with_heldout(load_scene(images_scene(tmp_path)), heldout)
    assert heldout_indices(scene, names) == tuple(sorted(chosen))
    train = [i for i in range(len(names)) if i not in chosen]
    assert training_cameras(scene) == [_camera(i) for i in train]
    target = build_target(scene)
    assert [v.name for v in target.stored] == [names[i] for i in train]
    assert [v.name for v in target.heldout] == [names[i] for i in sorted(chosen)]
    assert [v.name for v in target_views(scene, target=target)] == [names[i] for i in train]


def test_heldout_in_a_scene_file_takes_names_and_indices(tmp_path):
    _, names = write_views(tmp_path / "views", ["mask", "name", "xyz", "depth"])
    scene_file = images_scene(tmp_path, heldout=[names[2], 0])
    scene = load_scene(scene_file)
    assert scene.target.heldout == (names[2], 0)
    assert tomllib.loads(scene.to_toml())["target"]["heldout"] == [names[2], 0]
    result = cli("validate", scene_file)
    assert result.exit_code == 0, result.stderr


def _heldout_problem(tmp_path, rng: random.Random, case: str):
    """A folder and a heldout value that ``case`` makes wrong, and words the
    one error line must hold."""
    sources = [rng.choice(SOURCES[:-1]) for _ in range(rng.randint(3, 6))]
    k = rng.randrange(len(sources))
    if case == "no mask":
        sources[k] = "none"
    path, names = write_views(tmp_path / "views", sources, names={0: "front"})
    n = len(names)
    if case == "unknown name":
        return ["nope"], ["'nope' names no view", str(path)]
    if case == "near name":
        sources[0] = "name"
        path, names = write_views(tmp_path / "views", sources, names={0: "front"})
        return ["fornt"], ["'fornt' names no view", "did you mean 'front'"]
    if case == "index too large":
        return [n], [f"{n} is no view index", f"0 to {n - 1}"]
    if case == "negative index":
        return [-1], ["-1 is no view index"]
    if case == "listed twice":
        return [names[k], k], ["the same view", f"cameras[{k}]"]
    if case == "every view":
        return list(names), [f"holds out all {n} views"]
    return [names[k]], [f"cameras[{k}]", "no mask", "held-out"]  # no mask


HELDOUT_CASES = ["unknown name", "near name", "index too large", "negative index",
                 "listed twice", "every view", "no mask"]  # fmt: skip


@pytest.mark.parametrize("case", HELDOUT_CASES)
def test_bad_heldout_is_one_line_in_validate_and_fit(tmp_path, case):
    rng = random.Random(case)
    heldout, words = _heldout_problem(tmp_path, rng, case)
    scene_file = images_scene(tmp_path, heldout=heldout)
    needles = ("s.toml", "target.heldout", *words)
    assert_user_error(cli("validate", scene_file), *needles)
    with pytest.raises(SceneError) as err:  # the fit's own path: cameras, then the target
        training_cameras(load_scene(scene_file))
        build_target(load_scene(scene_file))
    assert all(w in str(err.value) for w in needles), str(err.value)
    result = cli("fit", scene_file, "--out", tmp_path / "run", "-n", 1, "--device", "cpu")
    assert_user_error(result, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["1.5", "true", "{ a = 1 }", "[0]"])  # as TOML
def test_heldout_values_of_the_wrong_type(tmp_path, value):
    write_views(tmp_path / "views", ["mask", "mask"])
    scene_file = tmp_path / "s.toml"
    scene_file.write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    result = cli("validate", scene_file, "--set", f"target.heldout=[{value}]")
    assert_user_error(result, "s.toml", "target.heldout[0]", "expected a string or an integer")


@pytest.mark.parametrize("kind", ["shapes", "mesh"])
def test_heldout_is_for_image_targets_only(tmp_path, kind):
    if kind == "shapes":
        body = '[target]\nkind = "shapes"\npreset = "airplane"\nheldout = ["a"]\n'
    else:
        (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        body = '[target]\nkind = "mesh"\npath = "m.obj"\nheldout = ["a"]\n'
    (tmp_path / "s.toml").write_text(body)
    assert_user_error(
        cli("validate", tmp_path / "s.toml"), "s.toml", "target.heldout", f"not {kind}"
    )


def test_tiny_fit_never_trains_on_heldout_views(tmp_path):
    views = target_views(tiny_scene())  # 8 orbit views of two balls, 12x12
    named = [dataclasses.replace(v, name=f"cam{k}") for k, v in enumerate(views)]
    write_image_views(named, tmp_path / "views")
    raw = tomllib.loads(SPHERES_SCENE.read_text())
    raw["target"] = {"kind": "images", "path": "views/cameras.json", "heldout": ["cam5", "cam2"]}
    scene = scene_from_dict(raw, tmp_path / "s.toml", [*TINY, "optim.iterations=3"])

    fitter = Fitter.from_scene(scene, "cpu")
    kept = [k for k in range(8) if k not in (2, 5)]
    assert fitter.cameras == [views[k].camera for k in kept]
    assert [v.name for v in fitter.views] == [f"cam{k}" for k in kept]
    assert fitter.total_rays == 6 * 12 * 12  # no held-out ray is ever drawn

    result = fit(scene, tmp_path / "run", device="cpu")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics == {**metrics, **result.metrics}
    held = [named[2], named[5]]
    got = metrics["heldout_iou"]
    assert isinstance(got, float) and 0.0 <= got <= 1.0
    want = mean_iou(trace_views(result.field, [v.camera for v in held], scene.march), held)
    assert got == pytest.approx(want)
    assert metrics["chamfer"] is None  # no target surface to compare with
    assert isinstance(metrics["train_iou"], float)


# ---------------------------------------------------------------------------
# 3. a view that lacks what the fit needs is named, by the fit and by validate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_missing_supervised_image_names_the_view(tmp_path, seed):
    rng = random.Random(seed)
    mode = rng.choice(["xyz", "depth"])
    has = {"xyz": ("mask", "xyz", "xyz_npy"), "depth": ("mask", "xyz_npy", "depth")}[mode]
    lacks = {"xyz": "depth", "depth": "xyz"}[mode]  # has a mask, not the image
    sources = [rng.choice(has) for _ in range(rng.randint(2, 6))]
    k = rng.randrange(len(sources))
    sources[k] = lacks
    path, names = write_views(tmp_path / "views", sources)
    label = f"{path}: cameras[{k}] (name {names[k]!r})"
    scene_file = images_scene(tmp_path, modes=["silhouette", mode])
    assert_user_error(
        cli("validate", scene_file), "s.toml", "supervision.mode", label, f"no {mode} image"
    )
    views = load_image_views(path)
    with pytest.raises(WarpsdfError) as err:
        flatten_targets(views, {SupervisionMode(mode)})
    assert label in str(err.value) and f"no {mode} image" in str(err.value)
    result = cli("fit", scene_file, "--out", tmp_path / "run", "-n", 1, "--device", "cpu")
    assert_user_error(result, label, f"no {mode} image")
    # held out, the view needs only its mask
    held = images_scene(tmp_path, heldout=[names[k]], modes=["silhouette", mode], name="h.toml")
    assert cli("validate", held).exit_code == 0


def test_training_view_without_a_mask_names_the_view(tmp_path):
    path, names = write_views(tmp_path / "views", ["mask", "none", "depth"])
    label = f"{path}: cameras[1] (name 'view_001')"
    scene_file = images_scene(tmp_path)
    assert_user_error(cli("validate", scene_file), "s.toml", "target.path", label, "no mask")
    result = cli("fit", scene_file, "--out", tmp_path / "run", "-n", 1, "--device", "cpu")
    assert_user_error(result, label, "no mask")
    still = images_scene(tmp_path, heldout=[names[0]], name="h.toml")
    assert_user_error(cli("validate", still), "h.toml", "target.path", label, "no mask")
    held = images_scene(tmp_path, heldout=[names[1]], name="k.toml")
    assert_user_error(cli("validate", held), "k.toml", "target.heldout", label, "no mask")


@pytest.mark.parametrize("seed", range(3))
def test_targets_of_an_image_scene_writes_every_view_held_out_ones_too(tmp_path, seed):
    """``warpsdf targets`` on an image scene with held-out views writes the
    whole folder, in order and with the same names, so the scene's heldout
    still names the same views when pointed at the copy."""
    rng = random.Random(seed)
    sources = [rng.choice(SOURCES[:-1]) for _ in range(rng.randint(2, 6))]  # each has a mask
    _, names = write_views(tmp_path / "views", sources)
    held = rng.sample(names, rng.randint(1, len(names) - 1))
    scene_file = images_scene(tmp_path, heldout=held)
    result = cli("targets", scene_file, "--out", tmp_path / "copy", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    copied = read_cameras(tmp_path / "copy" / "cameras.json")
    assert [e.name for e in copied] == names
    for entry, original in zip(
        copied, read_cameras(tmp_path / "views" / "cameras.json"), strict=True
    ):
        assert entry.camera == original.camera
    copy_scene = load_scene(scene_file, ['target.path="copy/cameras.json"'])
    assert training_cameras(copy_scene) == training_cameras(load_scene(scene_file))
