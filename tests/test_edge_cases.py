"""Edge cases found in review: each one used to end in a traceback, a wrong
message or a silently wrong result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SCENES, assert_user_error, cli
from warpsdf.camera import Camera, camera_angles
from warpsdf.scene import load_scene
from warpsdf.viewing import ViewRequest, view_camera

TINY = ["--set", "cameras.resolution=[12, 12]", "--set", "output.mesh_resolution=16",
        "--set", "output.final_scale=1", "--set", "output.heldout_views=1"]  # fmt: skip
SPHERES = SCENES / "two_spheres_silhouette.toml"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    out = tmp_path / "run"
    assert cli("fit", SPHERES, "--out", out, "-n", "2", "--device", "cpu", *TINY).exit_code == 0
    return out


def test_error_lines_keep_square_brackets(tmp_path, run_dir):
    line = assert_user_error(
        cli("fit", SPHERES, "--out", run_dir, "-n", "3", "--device", "cpu", "--resume", *TINY,
            "--set", "model.count=3"),
        "[model]",
    )  # fmt: skip
    assert "only [optim] and [output] may change" in line
    line = assert_user_error(cli("validate", SPHERES, "--set", "optim.mask_alpha=[5, 1]"))
    assert "[5, 1]" in line


def test_resume_refuses_other_views_and_force(run_dir):
    assert_user_error(
        cli("fit", SPHERES, "--out", run_dir, "-n", "3", "--device", "cpu", "--resume", *TINY,
            "--set", "cameras.count=3"),
        "[cameras]",
    )  # fmt: skip
    assert_user_error(
        cli("fit", SPHERES, "--out", run_dir, "-n", "3", "--resume", "--force", *TINY), "--force"
    )
    # the run folder is untouched: its scene still has 8 views
    assert "count = 8" in (run_dir / "scene.toml").read_text()


def test_huge_sizes_are_refused_up_front(tmp_path):
    assert_user_error(
        cli("validate", SPHERES, "--set", "cameras.resolution=[100000, 100000]"),
        "cameras.resolution", "16384",
    )  # fmt: skip
    assert_user_error(
        cli("validate", SPHERES, "--set", "cameras.count=1000", "--set",
            "cameras.resolution=[4096, 4096]"),
        "cameras.count", "rays",
    )  # fmt: skip
    out = tmp_path / "x.png"
    assert_user_error(cli("render", SPHERES, "--out", out, "-r", "100000"), "--resolution")
    assert not out.exists()


def test_damaged_run_folders_give_one_line(run_dir, tmp_path):
    (run_dir / "metrics.json").write_text("{not json")
    assert_user_error(cli("report", run_dir, "--out", tmp_path / "r.html"), "metrics.json")
    assert_user_error(cli("report", run_dir, "--out", tmp_path / "r.txt"), ".html")
    scene = (run_dir / "scene.toml").read_text().replace("count = 2", "count = 3")
    (run_dir / "scene.toml").write_text(scene)
    assert_user_error(cli("render", run_dir, "--out", tmp_path / "x.png"), "parameters")


def test_views_of_file_cameras_keep_their_distance(tmp_path):
    """--azimuth on an images target orbits its own camera, not [cameras]' defaults."""
    views = tmp_path / "views"
    result = cli("targets", SPHERES, "--out", views, "--device", "cpu",
                 "--set", "cameras.distance=6.0", "--set", "cameras.resolution=[8, 8]")  # fmt: skip
    assert result.exit_code == 0

    (tmp_path / "img.toml").write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    scene = load_scene(tmp_path / "img.toml")
    cam = view_camera(scene, ViewRequest(azimuth_deg=90.0))
    assert np.linalg.norm(np.asarray(cam.eye)) == pytest.approx(6.0, rel=1e-5)
    azimuth, elevation, distance = camera_angles(Camera((2.0, 2.0, 0.0)))
    assert (azimuth, elevation) == (pytest.approx(90.0), pytest.approx(45.0))
    assert distance == pytest.approx(2.0**1.5)


@pytest.mark.parametrize("name", ["", "   "])
def test_new_rejects_empty_names(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(cli("new", name), "scene name")
    assert not list(tmp_path.iterdir())


def test_new_rejects_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenes").mkdir()
    assert_user_error(cli("new", "scenes"), "scene name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes"]


def test_cameras_inside_the_bound_are_refused():
    assert_user_error(
        cli("validate", SPHERES, "--set", "cameras.distance=0.5"), "cameras.distance", "outside"
    )
    assert_user_error(
        cli("validate", SPHERES, "--set", "cameras.layout='single'", "--set", "cameras.count=1",
            "--set", "cameras.eye=[0.1, 0.0, 0.2]"),
        "cameras.eye", "inside the bounding sphere",
    )  # fmt: skip


def test_an_invisible_target_cannot_be_fitted(tmp_path):
    result = cli("fit", SPHERES, "--out", tmp_path / "run", "-n", "2", "--device", "cpu",
                 "--set", "cameras.fov_deg=0.01", *TINY, "--set",
                 'target.shapes=[{type="sphere", center=[0.5, 0.5, 0.0], radius=0.1}]')  # fmt: skip
    assert_user_error(result, "covers no pixel")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
