"""End-to-end CLI tests with Typer's CliRunner in a temporary folder.

Bad input must end with exit code 2 and one line naming the file and the key
or value, no traceback, and no output left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import warp as wp

from tests.conftest import SCENES, assert_user_error
from tests.conftest import cli as run
from warpsdf.io.images import read_png, write_png
from warpsdf.scene import load_scene

SHIPPED = sorted(SCENES.glob("*.toml"))

TINY = ["--set", "cameras.resolution=[16, 16]"]


def write_scene(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


TWO_SPHERES = """
[target]
kind = "shapes"
shapes = [
    { type = "sphere", center = [-0.35, 0.0, 0.0], radius = 0.3 },
    { type = "sphere", center = [0.40, 0.1, 0.0], radius = 0.25 },
]
[cameras]
layout = "orbit"
count = 3
resolution = [24, 20]
elevation_deg = 15.0
"""


# ---------------------------------------------------------------------------
# help, version
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("validate", ["--set"]),
        ("new", ["--template", "--force"]),
        ("targets", ["--out", "--set", "--device", "--force"]),
        (
            "render",
            [
                "--out",
                "--mode",
                "--resolution",
                "--azimuth",
                "--elevation",
                "--distance",
                "--fov",
                "--cameras",
                "--turntable",
                "--device",
                "--set",
            ],
        ),
    ],
)
def test_help_is_complete(command, options):
    result = run(command, "--help")
    assert result.exit_code == 0
    for option in options:
        assert option in result.output
    # every option has a help text: no option line ends bare
    assert "[default:" in result.output or command in ("validate", "new")


def test_top_level_help_and_version():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("validate", "new", "targets", "render"):
        assert command in result.output
    result = run("--version")
    assert result.exit_code == 0 and "warpsdf" in result.output


# ---------------------------------------------------------------------------
# validate and new
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scene", SHIPPED, ids=lambda p: p.stem)
def test_validate_shipped_scene_prints_resolved_toml(scene, tmp_path):
    result = run("validate", scene)
    assert result.exit_code == 0, result.stderr
    resolved = write_scene(tmp_path / "resolved.toml", result.output)
    assert load_scene(resolved) == load_scene(scene)
    for section in ("[target]", "[cameras]", "[model]", "[march]", "[optim]", "[output]"):
        assert section in result.output


def test_validate_lists_every_problem(tmp_path):
    scene = write_scene(
        tmp_path / "bad.toml",
        '[target]\nkind = "shapes"\nshapes = [{type = "sphere", radius = 0.3}]\n'
        "[optim]\nlrr = 1\n[cameras]\nfov_deg = 0\n",
    )
    result = run("validate", scene)
    assert result.exit_code == 2
    assert "optim.lrr: unknown key (did you mean 'lr'?)" in result.stderr
    assert "cameras.fov_deg" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("template", ["xyz", "silhouette", "mesh", "images", "transforms"])
def test_new_templates_validate(template, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("new", "demo", "--template", template)
    assert result.exit_code == 0, result.stderr
    text = Path("demo.toml").read_text()
    assert text.count("#") > 5  # commented
    if template == "images":
        # it points at demo_views/cameras.json: make that folder from another scene
        other = write_scene(tmp_path / "other.toml", TWO_SPHERES)
        assert run("targets", other, "--out", "demo_views", "--device", "cpu").exit_code == 0
    if template == "transforms":  # a dataset made from another scene
        other = write_scene(tmp_path / "other.toml", TWO_SPHERES)
        made = run("targets", other, "--out", "demo_views", "--format", "transforms")
        assert made.exit_code == 0, made.stderr
    result = run("validate", "demo.toml")
    assert result.exit_code == 0, result.stderr
    # refuses to overwrite without --force
    assert_user_error(run("new", "demo", "--template", template), "demo.toml", "--force")
    assert run("new", "demo", "--template", template, "--force").exit_code == 0


def test_new_rejects_unknown_template(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(run("new", "x", "--template", "xzy"), "xzy", "xyz, silhouette")
    assert not Path("x.toml").exists()


# ---------------------------------------------------------------------------
# targets -> folder -> kind = "images" round trip
# ---------------------------------------------------------------------------


def test_targets_round_trip_through_image_folder(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    result = run("targets", scene, "--out", tmp_path / "views", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    data = json.loads((tmp_path / "views" / "cameras.json").read_text())
    assert len(data["cameras"]) == 3
    assert data["cameras"][0]["width"] == 24 and data["cameras"][0]["height"] == 20
    images = write_scene(
        tmp_path / "img.toml", '[target]\nkind = "images"\npath = "views/cameras.json"\n'
    )
    result = run("targets", images, "--out", tmp_path / "views2", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    for i in range(3):
        m1 = read_png(tmp_path / "views" / f"mask_{i:03d}.png")
        m2 = read_png(tmp_path / "views2" / f"mask_{i:03d}.png")
        assert m1.any() and np.array_equal(m1, m2)
        x1 = read_png(tmp_path / "views" / f"xyz_{i:03d}.png").astype(int)
        x2 = read_png(tmp_path / "views2" / f"xyz_{i:03d}.png").astype(int)
        assert np.abs(x1 - x2).max() <= 1  # 16-bit quantisation
        d1 = np.load(tmp_path / "views" / f"depth_{i:03d}.npy")
        d2 = np.load(tmp_path / "views2" / f"depth_{i:03d}.npy")
        assert np.array_equal(d1, d2)


def test_targets_refuses_to_overwrite_without_force(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    out = tmp_path / "views"
    # a folder warpsdf made (--force never replaces one it did not: test_safety_files.py)
    assert run("targets", scene, "--out", out, "--device", "cpu").exit_code == 0
    (out / "keep.txt").write_text("mine")
    assert_user_error(run("targets", scene, "--out", out, "--device", "cpu"), str(out), "--force")
    assert (out / "keep.txt").read_text() == "mine"
    assert run("targets", scene, "--out", out, "--device", "cpu", "--force").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "cameras.json").exists()


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scene", SHIPPED, ids=lambda p: p.stem)
def test_render_every_shipped_scene(scene, tmp_path):
    out = tmp_path / "deep" / "er" / "render.png"  # missing parents are created
    result = run("render", scene, "--out", out, "--resolution", "24", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    img = iio.imread(out)
    assert img.shape == (24, 24, 3)
    mask_out = tmp_path / "mask.npy"
    result = run(
        "render", scene, "--out", mask_out, "-r", "24", "--mode", "mask", "--device", "cpu"
    )
    assert result.exit_code == 0, result.stderr
    mask = np.load(mask_out)
    assert mask.dtype == bool and 0 < mask.mean() < 0.9  # the object is in view


@pytest.mark.parametrize("mode", ["shaded", "mask", "xyz", "depth", "normals"])
def test_render_modes(mode, tmp_path):
    scene = SCENES / "two_spheres_xyz.toml"
    out = tmp_path / f"{mode}.png"
    result = run(
        "render",
        scene,
        "--out",
        out,
        "-r",
        "20x16",
        "--mode",
        mode,
        "--device",
        "cpu",
        "--azimuth",
        "20",
        "--elevation",
        "10",
        "--distance",
        "3",
        "--fov",
        "45",
    )
    assert result.exit_code == 0, result.stderr
    img = iio.imread(out)
    assert img.shape == (16, 20, 3)
    assert img.std() > 0


def test_render_depth_npy_has_inf_background(tmp_path):
    out = tmp_path / "depth.npy"
    result = run(
        "render",
        SCENES / "two_spheres_xyz.toml",
        "--out",
        out,
        "-r",
        "16",
        "--mode",
        "depth",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0
    depth = np.load(out)
    assert np.isinf(depth[0, 0]) and np.isfinite(depth).any()
    assert np.nanmin(depth[np.isfinite(depth)]) > 2.5 - 0.31 - 1e-3  # nearest ball surface


@pytest.mark.parametrize("seed", range(3))
def test_render_xyz_npy_is_raw_world_xyz(tmp_path, seed):
    """--mode xyz: .npy holds the hit points in world units (on a target ball's
    surface), NaN exactly where --mode mask is off; .png holds their colour code."""
    rng = np.random.default_rng(seed)
    scene_file = SCENES / "two_spheres_xyz.toml"
    azimuth, elevation, distance = rng.uniform(-180, 180), rng.uniform(-60, 60), rng.uniform(2, 3)
    view = ["-r", "24x20", "--device", "cpu", "--azimuth", f"{azimuth:.3f}",
            "--elevation", f"{elevation:.3f}", "--distance", f"{distance:.3f}"]  # fmt: skip
    for mode, name in [("xyz", "x.npy"), ("xyz", "x.png"), ("mask", "m.npy")]:
        result = run("render", scene_file, "--out", tmp_path / name, "--mode", mode, *view)
        assert result.exit_code == 0, result.stderr
    xyz, mask = np.load(tmp_path / "x.npy"), np.load(tmp_path / "m.npy")
    assert xyz.dtype == np.float32 and xyz.shape == (20, 24, 3) and mask.any()
    np.testing.assert_array_equal(np.isnan(xyz).all(axis=2), ~mask)
    assert not np.isnan(xyz[mask]).any()
    shapes = load_scene(scene_file).target.shapes
    gaps = [np.abs(np.linalg.norm(xyz[mask] - s.center, axis=1) - s.radius) for s in shapes]
    assert np.min(gaps, axis=0).max() < 2e-3  # every hit on a ball's surface, world units
    png = read_png(tmp_path / "x.png").astype(np.float64)
    code = (np.clip(np.nan_to_num(xyz, nan=-1.0), -1, 1) + 1) / 2 * 255
    assert np.abs(png - code).max() <= 1.0


def test_render_turntable_gif(tmp_path):
    out = tmp_path / "turn.gif"
    result = run(
        "render",
        SCENES / "airplane.toml",
        "--out",
        out,
        "-r",
        "20",
        "--turntable",
        "5",
        "--elevation",
        "20",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 5 and frames.shape[1:3] == (20, 20)
    assert not np.array_equal(frames[0], frames[1])  # it turns


def test_render_with_cameras_file(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    assert run("targets", scene, "--out", tmp_path / "views", "--device", "cpu").exit_code == 0
    out = tmp_path / "renders"
    result = run(
        "render",
        scene,
        "--out",
        out,
        "--cameras",
        tmp_path / "views" / "cameras.json",
        "--mode",
        "mask",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.stderr
    files = sorted(out.glob("*.png"))  # named after the views: view_NNN (warpsdf targets)
    assert [f.name for f in files] == [f"view_{i:03d}.png" for i in range(3)]
    for i, f in enumerate(files):
        expected = read_png(tmp_path / "views" / f"mask_{i:03d}.png") > 127
        assert np.array_equal(read_png(f)[..., 0] > 127, expected)


# ---------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------


def _render_fails(scene: Path, tmp_path: Path, *needles: str, extra=()) -> None:
    out = tmp_path / "out.png"
    result = run("render", scene, "--out", out, "-r", "8", "--device", "cpu", *extra)
    assert_user_error(result, *needles)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.png")]


def test_toml_syntax_error(tmp_path):
    scene = write_scene(tmp_path / "s.toml", "[target]\nkind = \n")
    _render_fails(scene, tmp_path, "s.toml", "TOML syntax error", "line 2")


def test_unknown_key_suggests_closest(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES + "[march]\nmax_step = 10\n")
    _render_fails(scene, tmp_path, "s.toml", "march.max_step", "did you mean 'max_steps'")


def test_wrong_type(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES + '[march]\nmax_steps = "many"\n')
    _render_fails(scene, tmp_path, "s.toml", "march.max_steps", "expected an integer", "'many'")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("target.shapes[0].radius=-0.1", "target.shapes[0].radius"),
        ("target.shapes[1].radius=0", "target.shapes[1].radius"),
        ("cameras.resolution=[0, 16]", "cameras.resolution"),
        ("cameras.fov_deg=0", "cameras.fov_deg"),
        ("cameras.fov_deg=-30", "cameras.fov_deg"),
        ("march.bound_radius=0", "march.bound_radius"),
    ],
)
def test_non_positive_values(override, key, tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    _render_fails(scene, tmp_path, "s.toml", key, "expected a value", extra=("--set", override))


def test_set_is_type_checked(tmp_path):
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    _render_fails(
        scene,
        tmp_path,
        "march.max_steps",
        "expected an integer",
        "--set",
        extra=("--set", "march.max_steps=2.5"),
    )


def test_bad_cli_values(tmp_path):
    scene = SCENES / "two_spheres_xyz.toml"
    out = tmp_path / "x.png"
    assert_user_error(run("render", scene, "--out", out, "--mode", "shady"), "--mode", "shady")
    assert_user_error(run("render", scene, "--out", out, "-r", "0"), "--resolution")
    assert_user_error(run("render", scene, "--out", out, "--fov", "200"), "--fov")
    assert_user_error(
        run("render", scene, "--out", tmp_path / "x.jpg", "--device", "cpu"), "x.jpg", ".png"
    )
    assert_user_error(
        run("render", scene, "--out", out, "--turntable", "3", "--device", "cpu"), "x.png", ".gif"
    )
    assert not list(tmp_path.iterdir())


def test_missing_mesh(tmp_path):
    scene = write_scene(tmp_path / "m.toml", '[target]\nkind = "mesh"\npath = "nope.obj"\n')
    _render_fails(scene, tmp_path, "m.toml", "target.path", "nope.obj", "not found")


def test_empty_mesh(tmp_path):
    (tmp_path / "empty.obj").write_text("")
    scene = write_scene(tmp_path / "m.toml", '[target]\nkind = "mesh"\npath = "empty.obj"\n')
    _render_fails(scene, tmp_path, "empty.obj", "empty")


def test_mesh_without_faces(tmp_path):
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    scene = write_scene(tmp_path / "m.toml", '[target]\nkind = "mesh"\npath = "points.obj"\n')
    _render_fails(scene, tmp_path, "points.obj", "no faces")


def _image_folder(tmp_path: Path) -> Path:
    scene = write_scene(tmp_path / "s.toml", TWO_SPHERES)
    assert run("targets", scene, "--out", tmp_path / "views", "--device", "cpu").exit_code == 0
    return write_scene(
        tmp_path / "img.toml", '[target]\nkind = "images"\npath = "views/cameras.json"\n'
    )


def _targets_fails(scene: Path, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "again"
    assert_user_error(run("targets", scene, "--out", out, "--device", "cpu"), *needles)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again")]


def test_cameras_json_missing_field(tmp_path):
    scene = _image_folder(tmp_path)
    path = tmp_path / "views" / "cameras.json"
    data = json.loads(path.read_text())
    del data["cameras"][1]["fov_deg"]
    path.write_text(json.dumps(data))
    _targets_fails(scene, tmp_path, "cameras.json", "cameras[1]", "fov_deg")


def test_image_size_differs_from_camera(tmp_path):
    scene = _image_folder(tmp_path)
    write_png(tmp_path / "views" / "mask_002.png", np.zeros((10, 10), np.uint8))
    _targets_fails(scene, tmp_path, "mask_002.png", "10x10", "24x20")


def test_unreadable_png(tmp_path):
    scene = _image_folder(tmp_path)
    (tmp_path / "views" / "xyz_000.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    _targets_fails(scene, tmp_path, "xyz_000.png", "not a readable PNG")


def test_output_path_cannot_be_created(tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub" / "img.png"
    result = run(
        "render", SCENES / "two_spheres_xyz.toml", "--out", out, "-r", "8", "--device", "cpu"
    )
    assert_user_error(result, "afile")
    result = run(
        "targets",
        SCENES / "two_spheres_xyz.toml",
        "--out",
        tmp_path / "afile" / "v",
        "--device",
        "cpu",
        *TINY,
    )
    assert_user_error(result, "afile")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(wp.get_cuda_device_count() > 0, reason="a CUDA device is present")
def test_cuda_without_gpu(tmp_path):
    out = tmp_path / "x.png"
    result = run("render", SCENES / "two_spheres_xyz.toml", "--out", out, "--device", "cuda")
    assert_user_error(result, "--device cuda", "no CUDA device")
    assert not out.exists()


def test_images_target_cannot_be_rendered_from_new_views(tmp_path):
    scene = _image_folder(tmp_path)
    _render_fails(scene, tmp_path, "img.toml", "images")


def test_progress_table_shows_the_true_step_rate():
    """The it/s column is StepRate's (steps over the time they took, the first
    chunk included) and the ETA the latest chunk's pace (records with known
    seconds; no timing)."""
    from rich.console import Console

    from warpsdf.cli.fit_commands import _progress_table
    from warpsdf.fit import StepRate, StepRecord
    from warpsdf.losses import TERM_NAMES

    rate = StepRate()
    rows = []
    terms = {name: 0.5 if name == "silhouette" else 0.0 for name in TERM_NAMES}
    for it, seconds in enumerate([1.5] * 4 + [0.25] * 4, start=1):
        record = StepRecord(it, 0.5, terms, 0.1, 0.9, 1e-3, 50.0, seconds)
        rate.add(record)
        rows.append(record.row())
    console = Console(width=200, record=True)
    console.print(_progress_table(rows[-1:], 248, rate))
    text = console.export_text()
    assert "8/248" in text
    assert " 1.1 " in text  # 8 steps in 7 s (not 4 / 1 s from the second chunk alone)
    assert text.split()[-1] == "1:00"  # 240 steps at 0.25 s
