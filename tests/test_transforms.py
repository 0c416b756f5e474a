"""transforms.json datasets (issue 12): NeRF-synthetic and nerfstudio layouts
made by trimesh ray casting (tests/transforms_data.py), read with full
intrinsics, normalised into the bound without a hand-made transform, fitted
and judged on the dataset's own test split; round trips through
``warpsdf targets --format transforms``; bad datasets end in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from tests.conftest import SCENES, assert_user_error, cli
from tests.transforms_data import (
    Lens,
    first_hits,
    nerf_synthetic,
    nerfstudio,
    rgba,
    ring_poses,
    write_png,
)
from warpsdf.camera import read_dataset, training_cameras
from warpsdf.fit import Fitter
from warpsdf.metrics import fit_metrics
from warpsdf.scene import load_scene
from warpsdf.targets import build_target

# NeRF-synthetic scale: an object 1.5 units across, off the origin, cameras at radius 4.
CENTRE = np.array([0.3, -0.2, 0.1])
RADIUS = 0.75
# Non-square pixels (fx != fy), an off-centre principal point, a non-square image.
LENS = Lens(w=40, h=32, fx=44.0, fy=38.0, cx=21.5, cy=14.5)
SPHERES = """
[supervision]
mode = ["silhouette"]
[model]
kind = "spheres"
count = 1
init_radius = 0.4
[optim]
iterations = 120
lr = 1e-2
eikonal_weight = 0.0
mask_alpha = [50.0, 400.0]
[output]
mesh_resolution = 32
final_scale = 1
snapshot_every = 40
"""


def ball() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    mesh.apply_translation(CENTRE)
    return mesh


def dataset_rays(t, origins, dirs) -> tuple[np.ndarray, np.ndarray]:
    """World rays in the dataset's frame: the eye, and directions of length
    1 / scale (so a hit's ray parameter is its world distance)."""
    o = t.to_dataset(origins[0].astype(float))
    return o, t.to_dataset(origins[0] + dirs.astype(float)) - o


def scene_file(folder: Path, path: str, extra: str = "", body: str = SPHERES) -> Path:
    file = folder / "scene.toml"
    file.write_text(f'name = "ds"\n[target]\nkind = "transforms"\npath = "{path}"\n{extra}\n{body}')
    return file


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nerf_synthetic")  # Z-up, as Blender's
    train = ring_poses(8, 4.0, 25.0, CENTRE, z_up=True) + ring_poses(
        4, 4.0, -30.0, CENTRE, 45.0, z_up=True
    )
    nerf_synthetic(
        folder,
        ball(),
        LENS,
        {"train": train, "test": ring_poses(3, 4.0, 5.0, CENTRE, 20.0, z_up=True)},
    )
    return folder


def test_nerf_synthetic_reads_with_intrinsics_and_fits_into_the_bound(synthetic):
    scene = load_scene(scene_file(synthetic, "."))
    dataset = read_dataset(scene)
    assert (len(dataset.train), len(dataset.heldout)) == (12, 3)
    t = dataset.transform
    centre, radius = t.to_world(CENTRE), RADIUS * t.scale
    # the coarse hull holds the ball: centred to a few hull steps, inside the bound
    assert np.linalg.norm(centre) < 0.08 and 0.6 < radius + np.linalg.norm(centre) <= 0.9
    np.testing.assert_allclose(t.matrix @ [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], atol=1e-9)  # Z-up
    target = build_target(scene)
    cam = target.stored[0].camera
    assert (cam.width, cam.height) == (40, 32) and (cam.fx, cam.fy, cam.cx, cam.cy) == (
        44.0,
        38.0,
        21.5,
        14.5,
    )
    assert [v.name for v in target.heldout] == ["test_r_0", "test_r_1", "test_r_2"]
    for view in target.stored[:3] + target.heldout[:1]:
        o, d = view.camera.rays()  # warpsdf's world rays, cast at the dataset's mesh
        hits = np.isfinite(first_hits(ball().triangles, *dataset_rays(t, o, d)))
        agree = (hits.reshape(view.mask.shape) == view.mask).mean()
        assert agree >= 0.995, agree  # (a pixel whose centre grazes the ball may differ)


def test_nerf_synthetic_scale_fits_and_scores_on_its_test_split(synthetic):
    scene = load_scene(scene_file(synthetic, "transforms_train.json"))
    fitter = Fitter.from_scene(scene, "cpu")
    while fitter.iteration < scene.optim.iterations:
        fitter.step()
    metrics = fit_metrics(fitter.field, scene, fitter.cameras, fitter.views, fitter.target)
    assert metrics["train_iou"] >= 0.95 and metrics["heldout_iou"] >= 0.95, metrics
    centres, radii = fitter.field.centers_radii()
    t = read_dataset(scene).transform
    np.testing.assert_allclose(t.to_dataset(centres[0]), CENTRE, atol=0.03)
    assert abs(radii[0] / t.scale - RADIUS) < 0.03


def test_nerfstudio_fit_cli_and_export_in_the_dataset_frame(tmp_path):
    """Per-frame intrinsics, JPEGs with mask_path masks, 16-bit depth in mm,
    train_filenames / test_filenames; fitted by the CLI, the mesh exported back
    into the dataset's frame."""
    lenses = [LENS, Lens(w=36, h=30, fx=33.0, fy=40.0, cx=16.0, cy=16.5)]
    poses = ring_poses(9, 3.0, 20.0, CENTRE) + ring_poses(3, 3.0, -35.0, CENTRE, 60.0)
    path = nerfstudio(tmp_path / "ns", ball(), [lenses[k % 2] for k in range(12)], poses, [2, 7])
    scene_path = scene_file(tmp_path, str(path))
    scene = load_scene(scene_path)
    target = build_target(scene)
    assert (len(target.stored), [v.name for v in target.heldout]) == (
        10,
        ["test_frame_00002", "test_frame_00007"],
    )
    t = read_dataset(scene).transform
    view = target.stored[1]
    assert (view.camera.width, view.camera.fx) == (36, 33.0)
    truth = first_hits(ball().triangles, *dataset_rays(t, *view.camera.rays()))
    both = view.mask.reshape(-1) & np.isfinite(truth)
    # depth: z in whole millimetres, turned into ray distance in the world
    np.testing.assert_allclose(view.depth.reshape(-1)[both], truth[both], atol=1e-3 * t.scale)
    assert np.isinf(view.depth[~view.mask]).all()

    run = tmp_path / "run"
    result = cli("fit", scene_path, "--out", run)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["heldout_iou"] >= 0.95, metrics
    kept = json.loads((run / "dataset_transform.json").read_text())
    assert kept["scale"] == pytest.approx(t.scale, rel=1e-12)
    result = cli("export", run, "--out", tmp_path / "mesh.ply", "--frame", "dataset")
    assert result.exit_code == 0, result.output
    vertices = trimesh.load(tmp_path / "mesh.ply").vertices
    distance = np.linalg.norm(vertices - CENTRE, axis=1)
    assert abs(distance.mean() - RADIUS) < 0.04 and distance.std() < 0.03
    assert_user_error(
        cli("export", tmp_path / "ns", "--out", tmp_path / "m2.ply", "--frame", "dataset"),
        "dataset_transform.json",
    )


def test_targets_round_trip_through_transforms_json(tmp_path):
    """warpsdf targets --format transforms, read back with the identity
    transform: the same cameras (rays), masks and depths; the held-out views
    become transforms_test.json."""
    scene = tmp_path / "shapes.toml"
    scene.write_text(
        'name = "rt"\n[target]\nkind = "shapes"\n'
        'shapes = [{ type = "box", center = [0.1, 0.0, 0.0], half_size = [0.3, 0.2, 0.25] }]\n'
        '[cameras]\nlayout = "orbit"\ncount = 4\nelevation_deg = 20.0\nresolution = [24, 16]\n'
        '[supervision]\nmode = ["silhouette", "depth"]\n[output]\nheldout_views = 2\n'
    )
    out = tmp_path / "ds"
    result = cli("targets", scene, "--out", out, "--format", "transforms")
    assert result.exit_code == 0, result.output
    assert (out / "transforms_train.json").is_file() and (out / "train" / "r_0.png").is_file()
    original = load_scene(scene)
    again = load_scene(scene_file(tmp_path, str(out), "normalize = false", body=""))
    cams, back = training_cameras(original), training_cameras(again)
    for a, b in zip(cams, back, strict=True):
        np.testing.assert_allclose(b.rays()[0], a.rays()[0], atol=1e-6)
        np.testing.assert_allclose(b.rays()[1], a.rays()[1], atol=1e-6)
    views = build_target(original).views(cams, original.march)
    read = build_target(again)
    assert len(read.stored) == 4 and len(read.heldout) == 2
    for a, b in zip(views, read.stored, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(b.depth[a.mask], a.depth[a.mask], rtol=1e-5)
        np.testing.assert_allclose(b.xyz, a.xyz, atol=2e-5)  # 16-bit XYZ code
    # and on to a cameras.json, intrinsics and all
    result = cli("targets", again.source, "--out", tmp_path / "images")
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "images" / "cameras.json").read_text())["cameras"]
    assert len(entries) == 6 and entries[4]["name"] == "test_r_0"


def _frame_edit(frames, key, value, index=1):
    frames[index][key] = value


BAD = {
    "missing frame file": (lambda d: (d / "train" / "r_1.png").unlink(), "frames[1]", "not found"),
    "mixed sizes": (
        lambda d: write_png(d / "train" / "r_2.png", rgba(np.ones((8, 8), bool))),
        "frames[2]",
        "mixed sizes",
    ),
    "singular matrix": (
        "transform_matrix",
        [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]],
        "singular",
    ),
    "non-finite values": (
        "transform_matrix",
        [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]],
        "non-finite",
    ),
    "empty mask": (
        lambda d: write_png(d / "train" / "r_1.png", rgba(np.zeros((32, 40), bool))),
        "frames[1]",
        "covers nothing",
    ),
    "unknown camera model": ("camera_model", "OPENCV_FISHEYE", "camera_model 'OPENCV_FISHEYE'"),
    "lens distortion": ("k1", 0.02, "distortion"),
    "no focal length": (None, "frames[0]", "no focal length"),
}


@pytest.mark.parametrize("case", list(BAD), ids=lambda c: c.replace(" ", "_"))
def test_bad_datasets_end_in_one_line_and_write_nothing(case, tmp_path):
    folder = tmp_path / "ds"
    poses = ring_poses(4, 4.0, 20.0, CENTRE)
    nerf_synthetic(folder, ball(), LENS, {"train": poses})
    file = folder / "transforms_train.json"
    data = json.loads(file.read_text())
    edit, *needles = BAD[case]
    if callable(edit):
        edit(folder)
    elif edit is None:
        del data["camera_angle_x"], data["fl_x"]
    else:
        _frame_edit(data["frames"], edit, needles[0])
        needles = ["frames[1]", needles[1]]
    file.write_text(json.dumps(data))
    scene = scene_file(tmp_path, str(folder))
    out = tmp_path / "out"
    line = assert_user_error(cli("targets", scene, "--out", out), *needles)
    assert "transforms_train.json" in line
    assert not out.exists()
    assert_user_error(cli("validate", scene), *needles)


def test_shipped_example_dataset_loads_normalises_and_runs():
    """scenes/datasets/torus_ball: a torus around a ball (radius 0.59 before
    scaling), shipped at twice warpsdf's scale, centred at (0.6, 0.3, -0.4)."""
    scene = load_scene(SCENES / "datasets" / "torus_ball.toml", ["optim.iterations=2"])
    target = build_target(scene)
    assert (len(target.stored), len(target.heldout)) == (10, 3)
    t = read_dataset(scene).transform
    np.testing.assert_allclose(t.to_world([0.6, 0.3, -0.4]), 0.0, atol=0.06)
    assert 0.6 < 2 * 0.59 * t.scale <= 0.9  # the object's radius in the world
    fitter = Fitter.from_scene(scene, "cpu", target=target)
    fitter.step()
    fitter.step()
    assert fitter.iteration == 2


def test_visual_hull_of_a_dataset_with_intrinsics_holds_the_ball(synthetic):
    """carve.py's kernel projects with point_pixel through the cameras' ray
    frames: with fx != fy and an off-centre principal point the hull still
    holds the ball and hugs it."""
    from warpsdf.carve import carve_scene

    scene = load_scene(scene_file(synthetic, "."))
    t = read_dataset(scene).transform
    hull = carve_scene(scene, 40, "cpu")
    axis = np.linspace(-1.0, 1.0, 40)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    distance = np.linalg.norm(points - t.to_world(CENTRE), axis=-1)
    radius = RADIUS * t.scale
    assert hull.inside[distance < radius - hull.step].all()
    assert not hull.inside[distance > radius + 0.2].any()


def test_downscale_shrinks_images_and_intrinsics(synthetic, tmp_path):
    full = build_target(load_scene(scene_file(synthetic, "."))).stored[0]
    half = build_target(load_scene(scene_file(synthetic, ".", "downscale = 2"))).stored[0]
    cam = half.camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (
        20,
        16,
        22.0,
        19.0,
        10.75,
        7.25,
    )
    blocks = full.mask.reshape(16, 2, 20, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(half.mask, blocks >= 0.5)
    line = assert_user_error(cli("validate", scene_file(synthetic, ".", "downscale = 3")))
    assert "frames[0]" in line and "does not divide 40x32" in line


def test_up_rotation_snaps_to_an_axis_or_turns_the_mean_up_exactly():
    from warpsdf.camera import Camera
    from warpsdf.camera.dataset import IDENTITY, DatasetTransform, up_rotation

    def cams(up):
        return [Camera((3.0 * np.cos(a), 0.5, 3.0 * np.sin(a)), up=up) for a in (0.0, 2.0, 4.0)]

    assert up_rotation(cams((0.0, 1.0, 0.0))) == IDENTITY
    z_up = np.array(up_rotation([Camera((0.0, -3.0, 0.5), up=(0.0, 0.1, 1.0))]))
    np.testing.assert_array_equal(z_up @ [0.0, 0.0, 1.0], [0.0, 1.0, 0.0])  # snapped, exact
    tilted = (0.0, 1.0, 1.0)  # 45 degrees: turned exactly
    rot = np.array(up_rotation([Camera((3.0, 0.0, 0.0), up=tilted)]))
    np.testing.assert_allclose(rot @ np.array(tilted) / np.sqrt(2.0), [0.0, 1.0, 0.0], atol=1e-12)
    t = DatasetTransform(0.5, (0.1, -0.2, 0.3), tuple(map(tuple, rot)))
    p = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(t.to_dataset(t.to_world(p)), p, atol=1e-12)
    assert DatasetTransform.from_json(t.to_json(), "x") == t


def test_heldout_views_caps_the_test_split_evenly(synthetic):
    scene = load_scene(scene_file(synthetic, "."), ["output.heldout_views=2"])
    assert [v.name for v in build_target(scene).heldout] == ["test_r_0", "test_r_2"]
    scene = load_scene(scene_file(synthetic, "."), ["output.heldout_views=0"])
    assert build_target(scene).heldout == []


def test_unknown_format_and_frame_are_one_line(tmp_path):
    scene = SCENES / "two_spheres_xyz.toml"
    assert_user_error(cli("targets", scene, "--out", tmp_path / "o", "--format", "nerf"), "nerf")
    assert not (tmp_path / "o").exists()
    out = tmp_path / "m.ply"
    assert_user_error(cli("export", tmp_path, "--out", out, "--frame", "blender"), "blender")
    assert not out.exists()


def test_instant_ngp_scale_and_offset_seed_the_search(synthetic, tmp_path):
    import shutil

    folder = shutil.copytree(synthetic, tmp_path / "ngp")
    file = folder / "transforms_train.json"
    data = json.loads(file.read_text())
    data.update(scale=0.4, offset=[0.5, 0.6, 0.5])  # a cube of side 2.5 around (0, -0.25, 0)
    file.write_text(json.dumps(data))
    plain = read_dataset(load_scene(scene_file(synthetic, "."))).transform
    ngp = read_dataset(load_scene(scene_file(folder, "."))).transform
    np.testing.assert_allclose(ngp.to_world(CENTRE), plain.to_world(CENTRE), atol=0.05)
    assert ngp.scale == pytest.approx(plain.scale, rel=0.05)
