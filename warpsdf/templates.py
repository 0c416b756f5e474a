"""Commented scene files to start from (``warpsdf new NAME --template T``)."""

from __future__ import annotations

from enum import StrEnum


class Template(StrEnum):
    XYZ = "xyz"
    SILHOUETTE = "silhouette"
    MESH = "mesh"
    IMAGES = "images"


_COMMON_TAIL = """
[march]
bound_radius = 1.0            # world units: everything lives in this sphere
clip_back = true              # false marches past the back wall (shows the field behind)
max_steps = 64                # sphere-tracing steps per ray
hit_epsilon = 1e-3            # world units: SDF value that counts as a hit

[optim]
iterations = 2000
lr = 1e-3                     # Adam learning rate
eikonal_weight = 0.1          # weight of the |grad f| = 1 term
mask_alpha = [50.0, 1600.0]   # soft-silhouette sharpness, annealed start -> end

[output]
# dir = "runs/{name}"         # run folder (default runs/NAME, relative to where you run)
snapshot_every = 20           # iterations between frames of the optimisation GIF
"""

_CAMERAS_ORBIT = """
[cameras]
layout = "orbit"              # single | orbit | fibonacci | file
count = 8                     # number of views
distance = 2.5                # world units from look_at
elevation_deg = 20.0          # degrees above the horizon
fov_deg = 40.0                # vertical field of view, degrees
resolution = [64, 64]         # pixels: [width, height]
jitter = 0.0                  # camera shake per iteration, world units
"""

_TEMPLATES = {
    Template.XYZ: """# {name}: fit a neural SDF to one "XYZ image" (RGB = visible surface point).
# Check it:   warpsdf validate {file}
# Look at it: warpsdf render {file} --out target.png --mode xyz
name = "{name}"
seed = 0

[target]
kind = "shapes"               # shapes | mesh | images
# Each shape: type = sphere | box | rounded_box | capsule | torus | cylinder,
# placed with center, rotation_deg, scale, and joined to the shapes before it
# with op = union | smooth_union | subtract (k = blend radius).
shapes = [
    {{ type = "sphere", center = [-0.35, 0.0, 0.0], radius = 0.3 }},
    {{ type = "sphere", center = [0.40, 0.1, 0.0], radius = 0.25 }},
]

[cameras]
layout = "single"             # one view from the front (+Z)
distance = 2.5                # world units
fov_deg = 40.0                # degrees
resolution = [64, 64]         # pixels: [width, height]
jitter = 0.01                 # camera shake per iteration, world units

[supervision]
mode = ["xyz"]                # any of: silhouette, xyz, depth
weights = {{ xyz = 1.0 }}

[model]
kind = "mlp"                  # spheres | mlp
hidden = 64                   # layer width
layers = 3                    # hidden layers
fourier_frequencies = 6       # Fourier feature frequencies
init = "sphere"               # geometric init: the SDF starts as a sphere
init_radius = 0.5             # world units
""",
    Template.SILHOUETTE: """# {name}: fit a set of spheres to silhouettes from several views.
# Check it:   warpsdf validate {file}
# Look at it: warpsdf render {file} --turntable 24 --out turntable.gif
name = "{name}"
seed = 0

[target]
kind = "shapes"               # shapes | mesh | images
shapes = [
    {{ type = "sphere", center = [-0.35, 0.0, 0.0], radius = 0.3 }},
    {{ type = "sphere", center = [0.40, 0.1, 0.0], radius = 0.25 }},
]
"""
    + _CAMERAS_ORBIT
    + """
[supervision]
mode = ["silhouette"]

[model]
kind = "spheres"              # spheres | mlp
count = 2                     # number of spheres
init = "grid"                 # random | grid: where the centres start
init_radius = 0.3             # world units: start too big to watch them shrink
smooth_k = 0.05               # world units: smooth-min blend radius
""",
    Template.MESH: """# {name}: fit a neural SDF to silhouettes of a mesh file.
# Check it:   warpsdf validate {file}
# Look at it: warpsdf render {file} --out target.png
name = "{name}"
seed = 0

[target]
kind = "mesh"
path = "{mesh}"               # OBJ, PLY, STL or GLB; relative to this file
normalize = true              # centre it and scale it into the bounding sphere
normalize_fill = 0.9          # farthest vertex at this fraction of bound_radius
"""
    + _CAMERAS_ORBIT
    + """
[supervision]
mode = ["silhouette"]

[model]
kind = "mlp"
hidden = 64
layers = 3
fourier_frequencies = 6
init_radius = 0.5
""",
    Template.IMAGES: """# {name}: fit a neural SDF to a folder of images with cameras.json.
# Make such a folder from any scene:  warpsdf targets OTHER.toml --out {views}
# Check it:   warpsdf validate {file}
name = "{name}"
seed = 0

[target]
kind = "images"
path = "{views}/cameras.json"  # relative to this file; cameras come from it

[supervision]
mode = ["silhouette", "xyz"]   # use what the folder provides: mask, xyz, depth
weights = {{ silhouette = 1.0, xyz = 1.0 }}

[model]
kind = "mlp"
hidden = 64
layers = 3
fourier_frequencies = 6
init_radius = 0.5
""",
}


def template_text(template: Template, name: str, file: str, mesh: str = "", views: str = "") -> str:
    """The commented scene text for ``template``. ``file`` is the scene's own file
    name (for the hints), ``mesh`` and ``views`` the paths it refers to."""
    body = _TEMPLATES[Template(template)] + _COMMON_TAIL
    return body.format(name=name, file=file, mesh=mesh, views=views)


def write_example_mesh(path) -> None:
    """A small torus with a sphere through its hole, as a binary PLY (for the mesh template)."""
    import trimesh

    from warpsdf.io.files import atomic_file

    torus = trimesh.creation.torus(
        major_radius=0.5, minor_radius=0.18, major_sections=48, minor_sections=24
    )
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    torus.apply_transform(trimesh.transformations.rotation_matrix(0.5, [1, 0, 0]))
    mesh = trimesh.util.concatenate([torus, ball])
    with atomic_file(path) as tmp:
        mesh.export(tmp, file_type="ply")
