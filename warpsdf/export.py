"""Meshes from fields: marching cubes on a grid inside the bounding sphere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import warp as wp
from warp.geometry import IsoSurfaceMarchingCubes

from warpsdf.errors import OutputError
from warpsdf.fields.base import Field
from warpsdf.io.files import atomic_file

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".glb")


def field_grid(
    field: Field, resolution: int, bound_radius: float, chunk: int = 1 << 18
) -> np.ndarray:
    """SDF on a resolution^3 grid spanning [-bound, bound]^3, cut off by the
    bounding sphere (max(f, |x| - bound)) like the back-wall clip of the marcher."""
    axis = np.linspace(-bound_radius, bound_radius, resolution, dtype=np.float32)
    values = np.empty((resolution, resolution, resolution), np.float32)
    rows = max(1, chunk // (resolution * resolution))  # x-slabs per chunk: bounded memory
    for start in range(0, resolution, rows):
        xs = axis[start : start + rows]
        slab = np.stack(np.meshgrid(xs, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        f = field.values(slab)
        f = np.maximum(f, np.linalg.norm(slab, axis=1) - bound_radius)
        values[start : start + len(xs)] = f.reshape(len(xs), resolution, resolution)
    return values


def extract_mesh(
    field: Field, resolution: int, bound_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the zero level set -> (vertices (V, 3), faces (F, 3)).
    Empty arrays when the field has no surface inside the bound."""
    values = field_grid(field, resolution, bound_radius)
    if values.min() >= 0.0 or values.max() <= 0.0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    device = field.device
    verts, tris = IsoSurfaceMarchingCubes.extract(
        wp.array(values, dtype=float, device=device),
        0.0,
        lower=(-bound_radius,) * 3,
        upper=(bound_radius,) * 3,
    )
    faces = tris.numpy().reshape(-1, 3)
    return verts.numpy().astype(np.float32), faces.astype(np.int32)


def check_mesh_path(path: str | Path) -> Path:
    """``path`` if its suffix names a mesh format :func:`write_mesh` writes."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise OutputError(f"{path}: a mesh must end in {', '.join(MESH_SUFFIXES)}")
    return path


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write PLY/OBJ/STL/GLB by the file's suffix, atomically."""
    import trimesh

    path = check_mesh_path(path)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    with atomic_file(path) as tmp:
        mesh.export(tmp, file_type=path.suffix.lower()[1:])
