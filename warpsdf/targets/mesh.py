"""Mesh-file targets (OBJ, PLY, STL, GLB via trimesh), ray-cast with ``wp.Mesh``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import warp as wp

from warpsdf.errors import InputFileError
from warpsdf.march import (
    RayHits,
    bound_args,
    bound_interval,
    closest_approach,
    far_limit,
)
from warpsdf.scene import MarchConfig

# min_sdf of a mesh ray that misses (a mesh has no SDF). Mesh hits are targets,
# never the fit's input, so they do not mark rays outside the bound with
# FAR_SDF as the sphere marcher does.
MESH_MISS_SDF = 1.0e3


@wp.kernel(enable_backward=False)
def cast_mesh_rays_kernel(
    mesh_id: wp.uint64,
    vertex_normals: wp.array(dtype=wp.vec3),  # (V,) unit normals for smooth shading
    faces: wp.array(dtype=int),  # (3F,) vertex indices
    origins: wp.array(dtype=wp.vec3),  # (R,) world units
    directions: wp.array(dtype=wp.vec3),  # (R,) unit vectors
    bound_radius: float,  # world units
    clip_back: int,  # a BackWall: CLIP makes hits past the back wall of the bound misses
    hit_t_out: wp.array(dtype=float),  # (R,) distance to the hit; -1 = miss
    points_out: wp.array(dtype=wp.vec3),  # (R,) hit point, world units
    normals_out: wp.array(dtype=wp.vec3),  # (R,) interpolated unit normal, facing the ray
    min_sdf_out: wp.array(dtype=float),  # (R,) 0 on a hit, MESH_MISS_SDF on a miss (no SDF)
    min_t_out: wp.array(dtype=float),  # (R,) hit distance, or the closest approach
    grad_dot_dir_out: wp.array(dtype=float),  # (R,) normal . dir at the hit; 0 on a miss
    evals_out: wp.array(dtype=int),  # (R,) 0: no SDF is evaluated
):
    """One thread per ray (dim = R). Not differentiable. Same outputs as the
    sphere marcher, clipped to the bounding sphere the same way."""
    r = wp.tid()
    o = origins[r]
    d = directions[r]
    evals_out[r] = 0
    interval = bound_interval(o, d, bound_radius)
    t0 = interval[0]
    t1 = interval[1]
    hit = int(0)
    t = float(0.0)
    if t0 <= t1:
        t_far = far_limit(t1, clip_back, bound_radius)
        q = wp.mesh_query_ray(mesh_id, o + d * t0, d, t_far - t0)
        if q.result:
            hit = 1
            t = t0 + q.t
            i0 = faces[3 * q.face + 0]
            i1 = faces[3 * q.face + 1]
            i2 = faces[3 * q.face + 2]
            n = (
                vertex_normals[i0] * q.u
                + vertex_normals[i1] * q.v
                + vertex_normals[i2] * (1.0 - q.u - q.v)
            )
            if wp.length(n) < 1.0e-8:
                n = q.normal
            n = wp.normalize(n)
            # orient by the face, not the smooth normal: on grazing hits the
            # interpolated normal can lean away from the ray while the face does not
            if wp.dot(q.normal, d) > 0.0:
                n = -n
            points_out[r] = o + d * t
            normals_out[r] = n
            grad_dot_dir_out[r] = wp.dot(n, d)
    if hit == 1:
        hit_t_out[r] = t
        min_sdf_out[r] = 0.0
        min_t_out[r] = t
    else:
        t_close = closest_approach(o, d)
        hit_t_out[r] = -1.0
        points_out[r] = o + d * t_close
        normals_out[r] = wp.vec3(0.0)
        min_sdf_out[r] = MESH_MISS_SDF
        min_t_out[r] = t_close
        grad_dot_dir_out[r] = 0.0


def load_mesh_arrays(
    path: str | Path, normalize: bool = True, fill_radius: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """Read a mesh file -> (vertices (V, 3) float32, faces (F, 3) int32).

    With ``normalize`` the bounding-box centre moves to the origin and the
    farthest vertex to distance ``fill_radius``.
    """
    import trimesh  # lazy: only mesh targets need it

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: mesh file not found")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: mesh file is empty")
    source: Path | io.BytesIO = path
    if path.suffix.lower() == ".obj":
        # OBJ is text: bytes that are not UTF-8 (a comment in Latin-1, say) are
        # read as Latin-1 here, where trimesh would need charset_normalizer
        try:
            data = path.read_bytes()  # a regular file (checked above)
        except OSError as err:
            raise InputFileError(f"{path}: cannot read mesh ({err.strerror or err})") from None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            source = io.BytesIO(data.decode("latin-1").encode("utf-8"))
    try:
        loaded = trimesh.load(source, file_type="obj" if source is not path else None,
                              force="mesh", process=False)  # fmt: skip
    except ModuleNotFoundError as err:
        raise InputFileError(
            f"{path}: cannot read mesh: trimesh needs the optional package {err.name!r} "
            f"for this file (pip install {err.name})"
        ) from None
    except Exception as err:  # trimesh raises many types for bad files
        raise InputFileError(f"{path}: cannot read mesh ({err})") from None
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), np.int64)
    if faces.ndim != 2 or len(faces) == 0:
        raise InputFileError(f"{path}: mesh has no faces (only triangles can be ray-cast)")
    if len(vertices) == 0:
        raise InputFileError(f"{path}: mesh has no vertices")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputFileError(f"{path}: mesh faces index missing vertices")
    if not np.isfinite(vertices).all():
        raise InputFileError(f"{path}: mesh has non-finite vertex coordinates")
    if normalize:
        center = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
        vertices = vertices - center
        extent = np.linalg.norm(vertices, axis=1).max()
        if extent <= 0:
            raise InputFileError(f"{path}: mesh is a single point")
        vertices *= fill_radius / extent
    return vertices.astype(np.float32), faces.astype(np.int32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3), unit length (zero for unused vertices)."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-30)).astype(np.float32)


class MeshTarget:
    """A triangle mesh on one device, ray-cast by :meth:`trace`."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, device=None):
        self.vertices = vertices
        self.faces = faces
        self.device = wp.get_device(device)
        self._points = wp.array(vertices, dtype=wp.vec3, device=self.device)
        self._indices = wp.array(faces.reshape(-1), dtype=int, device=self.device)
        self._normals = wp.array(vertex_normals(vertices, faces), dtype=wp.vec3, device=self.device)
        self.mesh = wp.Mesh(points=self._points, indices=self._indices)

    @classmethod
    def from_file(
        cls, path: str | Path, normalize: bool = True, fill_radius: float = 0.9, device=None
    ) -> MeshTarget:
        vertices, faces = load_mesh_arrays(path, normalize, fill_radius)
        return cls(vertices, faces, device)

    def trace(
        self, origins: wp.array, dirs: wp.array, config: MarchConfig, out: RayHits | None = None
    ) -> RayHits:
        """Cast the rays at the mesh (the interface of :func:`warpsdf.march.march`);
        ``out`` is reused if given."""
        n = origins.shape[0]
        out = out or RayHits.allocate(n, self.device)
        wp.launch(
            cast_mesh_rays_kernel,
            dim=n,
            inputs=[
                self.mesh.id,
                self._normals,
                self._indices,
                origins,
                dirs,
                *bound_args(config),
            ],
            outputs=out.outputs(),
            device=self.device,
        )
        return out
