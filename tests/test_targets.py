"""Targets: mesh files against the analytic sphere they approximate, the
image-folder format (DESIGN §3) round trip, and clear errors for bad files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh
import warp as wp

from tests.helpers import TWO_SPHERES, sphere_specs, write_small_image_folder
from warpsdf.camera import Camera, fibonacci_cameras, orbit_cameras, training_cameras
from warpsdf.errors import InputFileError, SceneError
from warpsdf.fields.analytic import AnalyticField
from warpsdf.io.images import read_png, write_png
from warpsdf.metrics import mask_iou
from warpsdf.render import trace
from warpsdf.scene import MarchConfig, TargetKind, load_scene
from warpsdf.targets import (
    MeshTarget,
    Target,
    build_target,
    load_image_views,
    target_views,
    write_image_views,
)
from warpsdf.targets.mesh import load_mesh_arrays
from warpsdf.targets.views import TargetView, decode_xyz, encode_xyz

MESH_CENTRE = (0.1, -0.05, 0.15)
MESH_RADIUS = 0.5
# 16-bit XYZ PNGs store (xyz + 1) / 2 rounded to 1/65535: half a step in
# [-1, 1] units is 1/65535, plus float32 rounding.
XYZ_PNG_TOL = 1.0 / 65535.0 + 1e-6


def exact_sphere_t(origins: np.ndarray, dirs: np.ndarray, centre, radius) -> np.ndarray:
    """Closed-form first positive hit distance of each ray with one sphere; inf = miss."""
    oc = origins.astype(np.float64) - np.asarray(centre, np.float64)
    d = dirs.astype(np.float64)
    b = (oc * d).sum(1)
    disc = b * b - ((oc * oc).sum(1) - radius * radius)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def icosphere(centre=MESH_CENTRE, radius=MESH_RADIUS, subdivisions=4) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(centre)
    return mesh


def write_mesh(mesh: trimesh.Trimesh, path: Path) -> Path:
    mesh.export(path)
    return path


def trace_camera(source, cam: Camera, config: MarchConfig, device) -> dict[str, np.ndarray]:
    o, d = cam.rays()
    return trace(
        source,
        wp.array(o, dtype=wp.vec3, device=device),
        wp.array(d, dtype=wp.vec3, device=device),
        config,
    ).numpy()


@pytest.fixture(scope="module")
def sphere_mesh_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("meshes")
    mesh = icosphere()
    return {ext: write_mesh(mesh, folder / f"sphere.{ext}") for ext in ("ply", "obj")}


# ---------------------------------------------------------------------------
# 4. Mesh against the analytic sphere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["ply", "obj"])
def test_mesh_sphere_matches_analytic_sphere(device, sphere_mesh_files, ext):
    mesh = MeshTarget.from_file(sphere_mesh_files[ext], normalize=False, device=device)
    np.testing.assert_allclose(
        np.linalg.norm(mesh.vertices - np.float32(MESH_CENTRE), axis=1), MESH_RADIUS, atol=1e-5
    )
    field = AnalyticField(sphere_specs(((MESH_CENTRE, MESH_RADIUS),)), device=device)
    cameras = fibonacci_cameras(5, 2.5, width=64, height=64)
    config = MarchConfig()
    mesh_views = Target(TargetKind.MESH, source=mesh).views(cameras, config)
    field_views = Target(TargetKind.SHAPES, source=field).views(cameras, config)
    for k, (mv, fv) in enumerate(zip(mesh_views, field_views, strict=True)):
        assert fv.mask.sum() > 500
        iou = mask_iou(mv.mask, fv.mask)
        assert iou >= 0.99, f"camera {k}: IoU {iou:.4f}"
    # Depth against the closed form where the surface faces the camera: the
    # inscribed mesh lies within its sagitta (~6e-4 here) of the sphere.
    for cam, mv in zip(cameras, mesh_views, strict=True):
        o, d = cam.rays()
        t = exact_sphere_t(o, d, MESH_CENTRE, MESH_RADIUS)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        facing = -((p - MESH_CENTRE) / MESH_RADIUS * d).sum(1) > 0.3
        keep = mv.mask.reshape(-1) & np.isfinite(t) & facing
        assert keep.sum() > 300
        depth = mv.depth.reshape(-1)[keep]
        np.testing.assert_allclose(depth, t[keep], atol=2e-3)
        np.testing.assert_allclose(mv.xyz.reshape(-1, 3)[keep], p[keep], atol=2e-3)


def facing_hits(mesh: MeshTarget, cameras, device, min_facing: float):
    """Mesh hit points and normals, with the exact outward normal and how
    squarely the surface faces the ray (cosine)."""
    points, normals, exact, facing = [], [], [], []
    for cam in cameras:
        hits = trace_camera(mesh, cam, MarchConfig(), device)
        hit = hits["hit_t"] >= 0
        p = hits["points"][hit].astype(np.float64)
        e = (p - MESH_CENTRE) / np.linalg.norm(p - MESH_CENTRE, axis=1, keepdims=True)
        _, d = cam.rays()
        points.append(p)
        normals.append(hits["normals"][hit])
        exact.append(e)
        facing.append(-(e * d[hit]).sum(1))
    facing = np.concatenate(facing)
    keep = facing >= min_facing
    return (np.concatenate(a)[keep] for a in (points, normals, exact))


def test_mesh_normals_point_outward_where_the_surface_faces_the_camera(device, sphere_mesh_files):
    mesh = MeshTarget.from_file(sphere_mesh_files["ply"], normalize=False, device=device)
    cameras = fibonacci_cameras(4, 2.5, width=64, height=64)
    points, normals, exact = facing_hits(mesh, cameras, device, min_facing=0.2)
    assert len(points) > 2000
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    dots = (normals * exact).sum(1)
    # Interpolated vertex normals of a subdivision-4 icosphere are good to
    # well under a degree.
    assert dots.min() > 0.999


def test_mesh_normals_point_outward_at_every_hit(device, sphere_mesh_files):
    mesh = MeshTarget.from_file(sphere_mesh_files["ply"], normalize=False, device=device)
    cameras = fibonacci_cameras(4, 2.5, width=64, height=64)
    _, normals, exact = facing_hits(mesh, cameras, device, min_facing=-1.0)
    dots = (normals * exact).sum(1)
    assert dots.min() > 0.99, f"{(dots <= 0.99).sum()} hits with an inward normal"


def test_mesh_normalize_puts_the_farthest_vertex_at_the_fill_radius(device, sphere_mesh_files):
    raw, _ = load_mesh_arrays(sphere_mesh_files["obj"], normalize=False)
    mesh = MeshTarget.from_file(
        sphere_mesh_files["obj"], normalize=True, fill_radius=0.7, device=device
    )
    v = mesh.vertices.astype(np.float64)
    assert np.linalg.norm(v, axis=1).max() == pytest.approx(0.7, abs=1e-6)
    np.testing.assert_allclose(0.5 * (v.min(0) + v.max(0)), 0.0, atol=1e-6)
    # Only translated and uniformly scaled: shape and faces unchanged.
    scale = 0.7 / MESH_RADIUS
    np.testing.assert_allclose(v, (raw - MESH_CENTRE) * scale, atol=1e-5)
    # The normalised mesh is now a sphere of radius 0.7 at the origin.
    field = AnalyticField(sphere_specs((((0.0, 0.0, 0.0), 0.7),)), device=device)
    cam = Camera((0.0, 0.0, 2.5), width=48, height=48)
    mv = Target(TargetKind.MESH, source=mesh).views([cam], MarchConfig())[0]
    fv = Target(TargetKind.SHAPES, source=field).views([cam], MarchConfig())[0]
    assert mask_iou(mv.mask, fv.mask) >= 0.99


def test_build_target_normalizes_a_mesh_into_the_scene_bound(tmp_path, device):
    write_mesh(icosphere(), tmp_path / "ball.ply")
    scene_file = tmp_path / "scene.toml"
    scene_file.write_text(
        '[target]\nkind = "mesh"\npath = "ball.ply"\nnormalize_fill = 0.8\n'
        "[march]\nbound_radius = 1.25\n"
    )
    target = build_target(load_scene(scene_file), device=device)
    assert target.kind is TargetKind.MESH and target.renderable
    radius = np.linalg.norm(target.source.vertices, axis=1).max()
    assert radius == pytest.approx(0.8 * 1.25, abs=1e-6)


# ---------------------------------------------------------------------------
# 6. The back wall, for a mesh
# ---------------------------------------------------------------------------

BACK_WALL = (((0.0, 0.0, 0.0), 0.3), ((0.0, 0.0, -2.2), 1.0))


@pytest.mark.parametrize("clip_back", [True, False])
def test_mesh_back_wall(tmp_path, device, clip_back):
    parts = [icosphere(c, r) for c, r in BACK_WALL]
    path = write_mesh(trimesh.util.concatenate(parts), tmp_path / "two.ply")
    mesh = MeshTarget.from_file(path, normalize=False, device=device)
    cam = Camera((0.0, 0.0, 2.5), width=48, height=48)
    o, d = cam.rays()
    near_t = exact_sphere_t(o, d, *BACK_WALL[0])
    far_t = exact_sphere_t(o, d, *BACK_WALL[1])
    p_far = o + np.where(np.isfinite(far_t), far_t, 0.0)[:, None] * d
    far_facing = -((p_far - BACK_WALL[1][0]) * d).sum(1) > 0.5
    only_far = ~np.isfinite(near_t) & np.isfinite(far_t) & far_facing
    near = np.isfinite(near_t)
    # Stay off the near sphere's silhouette, where the inscribed mesh differs.
    gap = np.linalg.norm(np.cross(o, d), axis=1) - 0.3
    clear = np.abs(gap) > 0.01
    assert (only_far & clear).sum() > 200

    hits = trace(
        mesh,
        wp.array(o, dtype=wp.vec3, device=device),
        wp.array(d, dtype=wp.vec3, device=device),
        MarchConfig(bound_radius=1.0, clip_back=clip_back),
    ).numpy()
    hit = hits["hit_t"] >= 0
    np.testing.assert_allclose(hits["hit_t"][near & clear], near_t[near & clear], atol=3e-3)
    keep = only_far & clear
    if clip_back:
        assert not hit[keep].any()
        np.testing.assert_array_equal(hits["min_sdf"][~hit], 1.0e3)
    else:
        assert hit[keep].all()
        # The radius-1 icosphere's sagitta is ~1.1e-3; facing > 0.5 at most doubles it.
        np.testing.assert_allclose(hits["hit_t"][keep], far_t[keep], atol=3e-3)


def test_mesh_rays_missing_the_bound_are_misses(tmp_path, device):
    # A mesh sphere wholly outside the bound, on rays that never enter it.
    path = write_mesh(icosphere((2.0, 0.0, -2.0), 0.5), tmp_path / "outside.obj")
    mesh = MeshTarget.from_file(path, normalize=False, device=device)
    o = np.array([[2.0, 0.0, 2.0]], np.float32)
    d = np.array([[0.0, 0.0, -1.0]], np.float32)
    for clip_back in (True, False):
        hits = trace(
            mesh,
            wp.array(o, dtype=wp.vec3, device=device),
            wp.array(d, dtype=wp.vec3, device=device),
            MarchConfig(clip_back=clip_back),
        ).numpy()
        assert hits["hit_t"][0] == -1.0
    hits = trace(
        mesh,
        wp.array(o, dtype=wp.vec3, device=device),
        wp.array(d, dtype=wp.vec3, device=device),
        MarchConfig(bound_radius=3.5),
    ).numpy()
    assert hits["hit_t"][0] == pytest.approx(3.5, abs=2e-3)


# ---------------------------------------------------------------------------
# 5. Round trip through an image folder
# ---------------------------------------------------------------------------


def two_sphere_views(device, cameras=None) -> tuple[list[Camera], list[TargetView]]:
    cameras = cameras or orbit_cameras(3, 2.5, elevation_deg=15.0, width=40, height=32)
    target = Target(TargetKind.SHAPES, source=AnalyticField(sphere_specs(TWO_SPHERES), device))
    return cameras, target.views(cameras, MarchConfig())


def assert_views_equal(got: list[TargetView], expected: list[TargetView]) -> None:
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.camera == e.camera, f"camera {k}"
        np.testing.assert_array_equal(g.mask, e.mask, err_msg=f"mask {k}")
        np.testing.assert_array_equal(g.depth, e.depth, err_msg=f"depth {k}")
        assert g.xyz.dtype == np.float32 and g.xyz.shape == e.xyz.shape
        err = np.abs(g.xyz - e.xyz).max()
        assert err <= XYZ_PNG_TOL, f"xyz {k} off by {err}"


def test_image_views_round_trip(tmp_path, device):
    cameras, views = two_sphere_views(device)
    assert all(v.mask.any() and not v.mask.all() for v in views)
    json_path = write_image_views(views, tmp_path / "views")
    assert json_path == tmp_path / "views" / "cameras.json"
    entries = json.loads(json_path.read_text())["cameras"]
    assert [e["mask"] for e in entries] == ["mask_000.png", "mask_001.png", "mask_002.png"]
    assert entries[1]["width"] == 40 and entries[1]["height"] == 32
    # DESIGN §3 file formats: 8-bit mask (object > 127), 16-bit RGB xyz, float32 depth.
    mask_png = read_png(tmp_path / "views" / "mask_000.png")
    assert mask_png.dtype == np.uint8 and mask_png.shape == (32, 40)
    np.testing.assert_array_equal(mask_png > 127, views[0].mask)
    xyz_png = read_png(tmp_path / "views" / "xyz_000.png")
    assert xyz_png.dtype == np.uint16 and xyz_png.shape == (32, 40, 3)
    depth = np.load(tmp_path / "views" / "depth_000.npy")
    assert depth.dtype == np.float32 and np.isinf(depth[~views[0].mask]).all()

    loaded = load_image_views(json_path)
    assert_views_equal(loaded, views)
    assert [v.camera for v in loaded] == cameras


def test_scene_with_an_image_folder_target(tmp_path, device, monkeypatch):
    cameras, views = two_sphere_views(device)
    write_image_views(views, tmp_path / "data" / "views")
    scene_file = tmp_path / "scenes" / "from_images.toml"
    scene_file.parent.mkdir()
    scene_file.write_text(
        '[target]\nkind = "images"\npath = "../data/views/cameras.json"\n'
        '[supervision]\nmode = ["silhouette", "xyz", "depth"]\n'
    )
    monkeypatch.chdir(tmp_path / "data")  # paths are relative to the scene file, not the cwd
    scene = load_scene(scene_file)
    assert Path(scene.target.path) == (tmp_path / "data" / "views" / "cameras.json").resolve()
    target = build_target(scene, device=device)
    assert target.kind is TargetKind.IMAGES and not target.renderable
    with pytest.raises(InputFileError):
        target.views(cameras, scene.march)
    assert training_cameras(scene) == cameras
    assert_views_equal(target_views(scene, device=device), views)


def test_scene_with_cameras_from_a_file(tmp_path, device):
    cameras = fibonacci_cameras(3, 2.3, width=24, height=20)
    _, views = two_sphere_views(device, cameras)
    write_image_views(views, tmp_path / "views")
    scene_file = tmp_path / "scene.toml"
    scene_file.write_text(
        '[target]\nkind = "shapes"\nshapes = [\n'
        '  { type = "sphere", center = [-0.35, 0.0, 0.0], radius = 0.3 },\n'
        '  { type = "sphere", center = [0.4, 0.1, 0.0], radius = 0.25 },\n]\n'
        '[cameras]\nlayout = "file"\nfile = "views/cameras.json"\n'
    )
    scene = load_scene(scene_file)
    assert training_cameras(scene) == cameras
    got = target_views(scene, device=device)
    for g, e in zip(got, views, strict=True):
        np.testing.assert_array_equal(g.mask, e.mask)
        np.testing.assert_array_equal(g.depth, e.depth)
        np.testing.assert_array_equal(g.xyz, e.xyz)


def test_partial_image_folders(tmp_path, device):
    """Any of mask / xyz / depth may be absent; the mask then comes from depth
    or from the XYZ image's non-black pixels. XYZ may be 8-bit or .npy."""
    _, views = two_sphere_views(device)
    view = views[0]
    cam = view.camera.to_json()
    write_png(tmp_path / "xyz8.png", encode_xyz(view.xyz, bits=8))
    # Background pixels black, as an 8-bit XYZ image from elsewhere would have them.
    rgb = encode_xyz(view.xyz, bits=8)
    rgb[~view.mask] = 0
    write_png(tmp_path / "xyz8.png", rgb)
    np.save(tmp_path / "xyz.npy", view.xyz)
    np.save(tmp_path / "depth.npy", view.depth)
    (tmp_path / "cameras.json").write_text(
        json.dumps(
            {
                "cameras": [
                    {**cam, "xyz": "xyz8.png"},
                    {**cam, "depth": "depth.npy"},
                    {**cam, "xyz": "xyz.npy", "depth": "depth.npy"},
                ]
            }
        )
    )
    only_xyz, only_depth, npy = load_image_views(tmp_path / "cameras.json")
    np.testing.assert_array_equal(only_xyz.mask, view.mask)
    assert only_xyz.depth is None and only_xyz.available() == ["mask", "xyz"]
    assert np.abs(only_xyz.xyz - view.xyz).max() <= 1.0 / 255.0 + 1e-6
    np.testing.assert_array_equal(only_depth.mask, view.mask)
    assert only_depth.xyz is None
    np.testing.assert_array_equal(npy.xyz, view.xyz)
    np.testing.assert_array_equal(npy.mask, view.mask)


def test_mask_png_threshold_and_channels(tmp_path):
    """Masks: object where the 8- or 16-bit value is above half range (DESIGN §3);
    an RGB mask uses its first channel."""
    cam = Camera((0.0, 0.0, 2.5), width=4, height=1)
    write_png(tmp_path / "grey8.png", np.array([[0, 100, 127, 128]], np.uint8))
    write_png(tmp_path / "grey16.png", np.array([[0, 30000, 32767, 32768]], np.uint16))
    rgb = np.zeros((1, 4, 3), np.uint8)
    rgb[0, :, 0] = [255, 0, 200, 90]
    rgb[0, :, 1] = 255
    write_png(tmp_path / "rgb.png", rgb)
    entries = [{**cam.to_json(), "mask": name} for name in ("grey8.png", "grey16.png", "rgb.png")]
    (tmp_path / "cameras.json").write_text(json.dumps({"cameras": entries}))
    grey8, grey16, rgb_view = load_image_views(tmp_path / "cameras.json")
    np.testing.assert_array_equal(grey8.mask, [[False, False, False, True]])
    np.testing.assert_array_equal(grey16.mask, [[False, False, False, True]])
    np.testing.assert_array_equal(rgb_view.mask, [[True, False, True, False]])


def test_xyz_encoding_is_the_design_formula():
    xyz = np.array([[[-1.0, 0.0, 1.0], [0.5, -0.25, 2.0]]], np.float32)
    rgb16 = encode_xyz(xyz, bits=16)
    assert rgb16.dtype == np.uint16
    np.testing.assert_array_equal(rgb16[0, 0], [0, 32768, 65535])  # (x + 1) / 2 * 65535
    np.testing.assert_array_equal(rgb16[0, 1], [49151, 24576, 65535])  # clipped to 1
    assert encode_xyz(xyz, bits=8).dtype == np.uint8
    np.testing.assert_array_equal(encode_xyz(xyz, bits=8)[0, 0], [0, 128, 255])
    back = decode_xyz(rgb16)
    assert np.abs(back - np.clip(xyz, -1, 1)).max() <= XYZ_PNG_TOL


# ---------------------------------------------------------------------------
# 9. Bad image folders: InputFileError naming the file and the field
# ---------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """A valid three-camera folder of small views (no Warp: the images are drawn)."""
    return write_small_image_folder(tmp_path / "views")


def edit_cameras(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data["cameras"])
    path.write_text(json.dumps(data))


def test_image_folder_fixture_loads(image_folder):
    views = load_image_views(image_folder)
    assert [v.camera.width for v in views] == [12, 13, 14]


@pytest.mark.parametrize("field", ["eye", "up", "fov_deg", "width"])
def test_cameras_json_missing_field(image_folder, field):
    edit_cameras(image_folder, lambda cams: cams[1].pop(field))
    with pytest.raises(InputFileError) as err:
        load_image_views(image_folder)
    msg = str(err.value)
    assert str(image_folder) in msg and "cameras[1]" in msg and repr(field) in msg


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("eye", [0, 0], "eye"),
        ("fov_deg", 200.0, "fov_deg"),
        ("width", 12.5, "width"),
        ("height", 0, "height"),
        ("mask", 3, "mask"),
    ],
)
def test_cameras_json_bad_values(image_folder, key, value, words):
    edit_cameras(image_folder, lambda cams: cams[0].__setitem__(key, value))
    with pytest.raises(InputFileError, match=rf"cameras\[0\]\.{words}") as err:
        load_image_views(image_folder)
    assert str(image_folder) in str(err.value)


@pytest.mark.parametrize("offset", [0.0, 1e-9])  # exactly, and to rounding, the same
def test_cameras_json_eye_on_target(image_folder, offset):
    def put_eye_on_target(cams):
        cams[0]["eye"] = [t + offset for t in cams[0]["target"]]

    edit_cameras(image_folder, put_eye_on_target)
    with pytest.raises(InputFileError, match=r"cameras\[0\]: camera eye and target") as err:
        load_image_views(image_folder)
    assert str(image_folder) in str(err.value)


@pytest.mark.parametrize("name", ["mask_002.png", "xyz_002.png", "depth_002.npy"])
def test_image_size_differs_from_its_camera(image_folder, name):
    folder = image_folder.parent
    if name.endswith(".npy"):
        np.save(folder / name, np.ones((9, 14), np.float32))
    else:
        shape = (9, 14) if name.startswith("mask") else (9, 14, 3)
        write_png(folder / name, np.zeros(shape, np.uint16 if "xyz" in name else np.uint8))
    with pytest.raises(InputFileError) as err:
        load_image_views(image_folder)
    msg = str(err.value)
    assert name in msg and "cameras[2]" in msg and "14x9" in msg and "14x10" in msg


@pytest.mark.parametrize("name", ["mask_001.png", "xyz_001.png"])
def test_unreadable_png(image_folder, name):
    (image_folder.parent / name).write_bytes(b"\x89PNG this is not really a PNG file")
    with pytest.raises(InputFileError) as err:
        load_image_views(image_folder)
    assert name in str(err.value) and "PNG" in str(err.value)


def test_unreadable_depth_array(image_folder):
    (image_folder.parent / "depth_000.npy").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match=r"depth_000\.npy"):
        load_image_views(image_folder)


def test_empty_png(image_folder):
    (image_folder.parent / "mask_000.png").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"mask_000\.png"):
        load_image_views(image_folder)


def test_png_with_corrupt_compressed_data(image_folder):
    path = image_folder.parent / "mask_000.png"
    data = path.read_bytes()
    i = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[i - 4 : i])
    payload = bytearray(data[i + 4 : i + 4 + length])
    payload[2:] = b"\xff" * (length - 2)  # keep the zlib header, break the stream
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(payload)) & 0xFFFFFFFF)
    path.write_bytes(data[: i + 4] + bytes(payload) + crc + data[i + 8 + length :])
    with pytest.raises(InputFileError, match=r"mask_000\.png"):
        load_image_views(image_folder)


@pytest.mark.parametrize(("field", "name"), [("depth", "depth_002.npy"), ("mask", "mask_000.png")])
def test_missing_image_file(image_folder, field, name):
    (image_folder.parent / name).unlink()
    with pytest.raises(InputFileError) as err:
        load_image_views(image_folder)
    msg = str(err.value)
    assert f".{field}: file not found" in msg and name in msg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"cameras": [', "invalid JSON"),
        ("", "invalid JSON"),
        ('{"cameras": []}', "at least one camera"),
        ("[1, 2]", "at least one camera"),
        ('{"cameras": [1]}', "cameras[0]: expected an object"),
    ],
)
def test_invalid_cameras_json(image_folder, text, words):
    image_folder.write_text(text)
    with pytest.raises(InputFileError) as err:
        load_image_views(image_folder)
    assert str(image_folder) in str(err.value) and words in str(err.value)


def test_missing_cameras_json(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_image_views(tmp_path / "nowhere" / "cameras.json")


def test_scene_with_a_missing_image_folder(tmp_path):
    scene_file = tmp_path / "scene.toml"
    scene_file.write_text('[target]\nkind = "images"\npath = "views/cameras.json"\n')
    with pytest.raises(SceneError) as err:
        load_scene(scene_file)
    assert "target.path" in str(err.value) and "cameras.json not found" in str(err.value)


# ---------------------------------------------------------------------------
# 10. Bad mesh files
# ---------------------------------------------------------------------------

VERTICES_ONLY = {
    "obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\n",
    "ply": "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n",
}


def test_missing_mesh_file(tmp_path):
    with pytest.raises(InputFileError) as err:
        MeshTarget.from_file(tmp_path / "nope.obj")
    assert "nope.obj" in str(err.value) and "not found" in str(err.value)


@pytest.mark.parametrize("ext", ["obj", "ply", "stl"])
def test_empty_mesh_file(tmp_path, ext):
    path = tmp_path / f"empty.{ext}"
    path.write_bytes(b"")
    with pytest.raises(InputFileError) as err:
        MeshTarget.from_file(path)
    assert str(path) in str(err.value) and "empty" in str(err.value)


@pytest.mark.parametrize("ext", ["obj", "ply"])
def test_mesh_without_faces(tmp_path, ext):
    path = tmp_path / f"points.{ext}"
    path.write_text(VERTICES_ONLY[ext])
    with pytest.raises(InputFileError) as err:
        MeshTarget.from_file(path)
    assert str(path) in str(err.value) and "no faces" in str(err.value)


def test_garbage_mesh_file(tmp_path):
    path = tmp_path / "broken.ply"
    path.write_bytes(b"\x00\x01 not a mesh at all")
    with pytest.raises(InputFileError) as err:
        MeshTarget.from_file(path)
    assert str(path) in str(err.value) and "cannot read mesh" in str(err.value)


def test_scene_with_a_missing_mesh(tmp_path):
    scene_file = tmp_path / "scene.toml"
    scene_file.write_text('[target]\nkind = "mesh"\npath = "meshes/plane.obj"\n')
    with pytest.raises(SceneError) as err:
        load_scene(scene_file)
    msg = str(err.value)
    assert str(scene_file) in msg and "target.path" in msg and "plane.obj" in msg
