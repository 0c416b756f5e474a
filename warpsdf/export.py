"""Meshes from fields: marching cubes on a grid inside the bounding sphere."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np
import warp as wp
from warp.geometry import IsoSurfaceMarchingCubes

from warpsdf.camera import DatasetTransform
from warpsdf.errors import InputFileError, OutputError
from warpsdf.fields.base import Field
from warpsdf.io.files import atomic_file
from warpsdf.io.layout import RunFolder
from warpsdf.io.reading import read_json

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".glb")


# Narrow band (see :func:`field_grid`): blocks of BAND_BLOCK fine cells a side
# are evaluated in full only where the coarse samples at their corners say the
# surface may pass; BAND_LIPSCHITZ bounds |grad f| (1 for an exact SDF; fitted
# fields drift above 1 between eikonal samples, hence the margin).
BAND_BLOCK = 4
BAND_LIPSCHITZ = 2.0


def _bounded_values(field: Field, points: np.ndarray, bound_radius: float) -> np.ndarray:
    """max(f, |x| - bound): the field cut off by the bounding sphere, like the
    back-wall clip of the marcher (points (N, 3), world units)."""
    f = field.values(points)
    return np.maximum(f, np.linalg.norm(points, axis=1) - bound_radius)


def _lattice_values(field: Field, axis: np.ndarray, bound_radius: float, chunk: int) -> np.ndarray:
    """The bounded field at every point of ``axis`` x ``axis`` x ``axis``, in
    x-slabs of about ``chunk`` points (bounded memory)."""
    n = len(axis)
    values = np.empty((n, n, n), np.float32)
    rows = max(1, chunk // (n * n))
    for start in range(0, n, rows):
        xs = axis[start : start + rows]
        slab = np.stack(np.meshgrid(xs, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        values[start : start + len(xs)] = _bounded_values(field, slab, bound_radius).reshape(
            len(xs), n, n
        )
    return values


def _upsample(coarse: np.ndarray, block: int, n: int) -> np.ndarray:
    """Trilinear upsampling of a lattice with ``block`` fine steps per coarse
    step to its first ``n`` fine points a side."""
    i = np.arange(n)
    k = np.minimum(i // block, coarse.shape[0] - 2)
    t = ((i - k * block) / block).astype(np.float32)
    out = coarse
    for ax in range(3):
        lo, hi = np.take(out, k, axis=ax), np.take(out, k + 1, axis=ax)
        shape = [1, 1, 1]
        shape[ax] = n
        w = t.reshape(shape)
        out = lo * (1.0 - w) + hi * w
    return out.astype(np.float32)


def field_grid(
    field: Field,
    resolution: int,
    bound_radius: float,
    chunk: int = 1 << 18,
    narrow_band: bool = True,
) -> np.ndarray:
    """The bounded SDF (:func:`_bounded_values`) on a resolution^3 lattice
    spanning [-bound, bound]^3, world units.

    ``narrow_band``: the field is first sampled every ``BAND_BLOCK`` lattice
    steps; a block of the lattice is evaluated point by point only when a
    surface can pass through it or within one step of it (some corner has
    |f| <= BAND_LIPSCHITZ x (BAND_BLOCK sqrt(3) / 2 + 1) x step: a zero within
    one step of a lattice point of the block is that close to the block's
    nearest corner). Elsewhere all
    its corners share one sign and the block holds their trilinear
    interpolation: the right sign, not the distance. Marching cubes only reads
    the values of cells the surface crosses, so for a field within the
    Lipschitz bound the mesh is the one the full lattice gives. Blocks whose
    corners differ in sign are always evaluated, so a steeper field loses at
    most surface pieces that lie wholly inside one block; a far cheaper
    lattice (about resolution^2 evaluations instead of resolution^3)."""
    n = resolution
    axis = np.linspace(-bound_radius, bound_radius, n, dtype=np.float32)
    b = BAND_BLOCK
    if not narrow_band or n <= 4 * b:
        return _lattice_values(field, axis, bound_radius, chunk)
    step = 2.0 * bound_radius / (n - 1)
    blocks = -(-(n - 1) // b)  # blocks a side; coarse points: blocks + 1
    coarse_axis = (-bound_radius + step * b * np.arange(blocks + 1)).astype(np.float32)
    coarse = _lattice_values(field, coarse_axis, bound_radius, chunk)
    values = _upsample(coarse, b, n)
    shape = (blocks, blocks, blocks)
    near, low, high = (
        np.full(shape, np.inf, np.float32),
        np.full(shape, np.inf),
        -np.full(shape, np.inf),
    )
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                c = coarse[dx : dx + blocks, dy : dy + blocks, dz : dz + blocks]
                near, low, high = (
                    np.minimum(near, np.abs(c)),
                    np.minimum(low, c),
                    np.maximum(high, c),
                )
    margin = BAND_LIPSCHITZ * (b * np.sqrt(3.0) / 2.0 + 1.0) * step
    # a block is evaluated in full where the surface may come near (the margin)
    # and wherever its corners disagree in sign (a steeper field than assumed)
    busy = np.argwhere((near <= margin) | ((low <= 0.0) & (high > 0.0)))
    offsets = np.arange(b + 1)
    per_batch = max(1, chunk // (b + 1) ** 3)
    for start in range(0, len(busy), per_batch):
        ids = busy[start : start + per_batch]  # (m, 3) block indices
        idx = np.minimum(ids[:, None, :] * b + offsets[None, :, None], n - 1)  # (m, b+1, 3)
        ix = idx[:, :, 0][:, :, None, None]
        iy = idx[:, :, 1][:, None, :, None]
        iz = idx[:, :, 2][:, None, None, :]
        ix, iy, iz = np.broadcast_arrays(ix, iy, iz)
        points = np.stack([axis[ix], axis[iy], axis[iz]], axis=-1).reshape(-1, 3)
        values[ix.ravel(), iy.ravel(), iz.ravel()] = _bounded_values(field, points, bound_radius)
    return values


def extract_mesh(
    field: Field, resolution: int, bound_radius: float, narrow_band: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the zero level set -> (vertices (V, 3), faces (F, 3)).
    Empty arrays when the field has no surface inside the bound. The lattice
    is :func:`field_grid`'s (``narrow_band``: only near the surface)."""
    values = field_grid(field, resolution, bound_radius, narrow_band=narrow_band)
    return lattice_mesh(values, bound_radius, field.device)


def lattice_mesh(
    values: np.ndarray, bound_radius: float, device=None
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the zero level set of an SDF lattice (n, n, n)
    spanning [-bound, bound]^3 (point (i, j, k) at -bound + (i, j, k) * 2 *
    bound / (n - 1), as :func:`field_grid` samples) -> (vertices (V, 3),
    faces (F, 3)); empty arrays when the lattice has no zero crossing."""
    if values.min() >= 0.0 or values.max() <= 0.0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    verts, tris = IsoSurfaceMarchingCubes.extract(
        wp.array(values, dtype=float, device=device),
        0.0,
        lower=(-bound_radius,) * 3,
        upper=(bound_radius,) * 3,
    )
    faces = tris.numpy().reshape(-1, 3)
    return verts.numpy().astype(np.float32), faces.astype(np.int32)


class MeshFrame(StrEnum):
    """The frame exported vertices are in: warpsdf's world (inside the bound)
    or a transforms.json dataset's own (``dataset_transform.json`` undone)."""

    WORLD = "world"
    DATASET = "dataset"


def run_transform(run: str | Path) -> DatasetTransform:
    """The normalisation a fit of a ``kind = "transforms"`` target kept in run
    folder ``run`` (``dataset_transform.json``: world = scale * dataset + offset);
    map world vertices back with :meth:`DatasetTransform.to_dataset`."""
    file = RunFolder(run).dataset_transform
    if not file.is_file():
        raise InputFileError(
            f"{run}: no {RunFolder.DATASET_TRANSFORM}: --frame dataset applies to runs of "
            'target.kind = "transforms"'
        )
    return DatasetTransform.from_json(read_json(file, "dataset transform"), str(file))


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
