"""The multiresolution hash encoding of instant-ngp (Müller et al. 2022): the
input features of the hash-grid field's network (:mod:`warpsdf.fields.hashgrid`).

A point x (world units) inside the bound of radius R maps to the unit cube,
u = clamp((x / R + 1) / 2, 0, 1). Level l < L is a lattice of resolution

    N_l = floor(N_min * b^l),   b = (N_max / N_min)^(1 / (L - 1))

(N_min, N_max: the base and finest resolutions). At p = u N_l the point lies
in cell c = min(floor(p), N_l - 1) with local coordinates w = p - c in [0, 1]^3;
each of its 8 corners v = c + (a, b, c), a, b, c in {0, 1}, has the trilinear
weight prod_d (w_d or 1 - w_d) and an entry of level l's table:

    dense  (the (N_l + 1)^3 lattice fits 2^T entries): v_x + (N_l + 1)(v_y + (N_l + 1) v_z)
    hashed (it does not):  (v_x * 1  XOR  v_y * 2654435761  XOR  v_z * 805459861) mod 2^T

(uint32 arithmetic, the primes of the paper). Each entry holds F features; the
level's features are the weighted sum of its 8 corners' entries, and the
encoding is the L levels' features in order (n_in = L F values). Levels at or
past the active count (meta, set by the coarse-to-fine stages) give 0.

Table layout (:func:`table_layout`): level by level, E_l = min((N_l + 1)^3, 2^T)
entries of F floats each (entry-major). The layout is computed once on the
host; kernels read N_l, E_l and whether the level is hashed from ``meta``
(:func:`hash_meta`), so sizes never recompile anything.

Gradients, by hand: the parameter backward adds w_v d L / d feature to the 8
corner entries of every active level (atomic adds); the spatial derivative of
the features goes through the trilinear weights inside a cell,
d feature / d x = sum_v table[v] d w_v / d p * N_l / (2 R) (0 where u is
clamped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import warp as wp

from warpsdf.fields.mlp_core import NETWORK_META, Encoding, network_meta, vec_features

# The spatial hash's primes (one per axis; x's is 1).
HASH_PRIMES = (1, 2654435761, 805459861)
PRIME_Y = wp.constant(wp.uint32(HASH_PRIMES[1]))
PRIME_Z = wp.constant(wp.uint32(HASH_PRIMES[2]))

# meta after the network header: [L, F, active levels, R, init radius], then
# per level [N_l, E_l, hashed_l].
META_LEVELS = NETWORK_META
META_FEATURES = NETWORK_META + 1
META_ACTIVE = NETWORK_META + 2
META_BOUND = NETWORK_META + 3
META_RADIUS = NETWORK_META + 4
META_PER_LEVEL = NETWORK_META + 5
LEVEL_META = 3


@dataclass(frozen=True)
class HashGridSpec:
    """The sizes of a hash-grid field: the encoding's, its network's and the
    sphere it starts as (``init_radius``, world units) inside the bound
    (``bound_radius``, world units)."""

    levels: int  # L
    features: int  # F per level
    log2_size: int  # T: a level's table holds at most 2^T entries
    base_resolution: int  # N_min, cells per side of the coarsest level
    max_resolution: int  # N_max, cells per side of the finest level
    width: int  # hidden units of the network
    layers: int  # hidden layers of the network
    bound_radius: float
    init_radius: float

    @property
    def n_in(self) -> int:
        """The network's inputs: L F features."""
        return self.levels * self.features

    def resolutions(self) -> list[int]:
        """N_l of every level (cells per side)."""
        return level_resolutions(self.levels, self.base_resolution, self.max_resolution)

    def table_layout(self) -> list[tuple[int, int, bool]]:
        """(N_l, E_l entries, hashed) of every level."""
        return table_layout(self.resolutions(), self.log2_size)

    @property
    def table_size(self) -> int:
        """Floats of all the levels' tables."""
        return sum(entries for _, entries, _ in self.table_layout()) * self.features


def level_resolutions(levels: int, base: int, finest: int) -> list[int]:
    """N_l = floor(N_min b^l) with b = (N_max / N_min)^(1 / (L - 1)); the last level
    is N_max itself (the float rounding of the product is not trusted there)."""
    if levels == 1:
        return [base]
    growth = math.exp((math.log(finest) - math.log(base)) / (levels - 1))
    out = [int(math.floor(base * growth**level + 1e-6)) for level in range(levels - 1)]
    return [*out, finest]


def table_layout(resolutions: list[int], log2_size: int) -> list[tuple[int, int, bool]]:
    """(N_l, E_l, hashed) per level: a dense lattice where (N_l + 1)^3 <= 2^T, else
    2^T hashed entries."""
    size = 1 << log2_size
    out = []
    for n in resolutions:
        lattice = (n + 1) ** 3
        out.append((n, lattice, False) if lattice <= size else (n, size, True))
    return out


def hash_meta(spec: HashGridSpec, active: int) -> list[float]:
    """The field's ``meta``: the network header, the encoding's constants and
    the per-level layout (every value an integer below 2^24, exact in float32)."""
    meta = network_meta(spec.n_in, spec.width, spec.layers)
    meta += [float(spec.levels), float(spec.features), float(active)]
    meta += [float(spec.bound_radius), float(spec.init_radius)]
    for n, entries, hashed in spec.table_layout():
        meta += [float(n), float(entries), 1.0 if hashed else 0.0]
    assert len(meta) == META_PER_LEVEL + LEVEL_META * spec.levels
    return meta


# ---------------------------------------------------------------------------
# Warp functions
# ---------------------------------------------------------------------------


@wp.func
def level_position(x: wp.vec3, bound: float, n: int) -> wp.vec3:
    """p = u n for x (world units) in a bound of radius ``bound``, clamped to [0, n]."""
    s = 0.5 * float(n) / bound
    half = 0.5 * float(n)
    return wp.vec3(
        wp.clamp(x[0] * s + half, 0.0, float(n)),
        wp.clamp(x[1] * s + half, 0.0, float(n)),
        wp.clamp(x[2] * s + half, 0.0, float(n)),
    )


@wp.func
def level_cell(p: wp.vec3, n: int) -> wp.vec3i:
    """The cell c = min(floor(p), n - 1) holding p."""
    return wp.vec3i(
        wp.min(int(wp.floor(p[0])), n - 1),
        wp.min(int(wp.floor(p[1])), n - 1),
        wp.min(int(wp.floor(p[2])), n - 1),
    )


@wp.struct
class LevelCell:
    """Where a point falls in one level: its cell's 8 corner entries (indices
    into the level's table, corner bits x: 1, y: 2, z: 4) and its local
    coordinates w in [0, 1]^3."""

    entries: wp.types.vector(length=8, dtype=int)
    w: wp.vec3


@wp.func
def level_cell_at(x: wp.vec3, bound: float, n: int, entries: int, hashed: int) -> LevelCell:
    """The cell of x (world units) in a level of resolution n with ``entries``
    table entries: each axis's two lattice coordinates are turned into index
    terms once (dense: times the row strides; hashed: times the primes), and a
    corner's entry combines one term per axis (a sum or an XOR)."""
    p = level_position(x, bound, n)
    c = level_cell(p, n)
    out = LevelCell()
    out.w = p - wp.vec3(float(c[0]), float(c[1]), float(c[2]))
    if hashed == 0:
        s1 = n + 1
        s2 = s1 * s1
        base = c[0] + s1 * c[1] + s2 * c[2]
        for corner in range(8):
            out.entries[corner] = (
                base + (corner & 1) + s1 * ((corner >> 1) & 1) + s2 * ((corner >> 2) & 1)
            )
    else:
        mask = wp.uint32(entries - 1)
        hx0 = wp.uint32(c[0])
        hx1 = wp.uint32(c[0] + 1)
        hy0 = wp.uint32(c[1]) * PRIME_Y
        hy1 = wp.uint32(c[1] + 1) * PRIME_Y
        hz0 = wp.uint32(c[2]) * PRIME_Z
        hz1 = wp.uint32(c[2] + 1) * PRIME_Z
        out.entries[0] = int((hx0 ^ hy0 ^ hz0) & mask)
        out.entries[1] = int((hx1 ^ hy0 ^ hz0) & mask)
        out.entries[2] = int((hx0 ^ hy1 ^ hz0) & mask)
        out.entries[3] = int((hx1 ^ hy1 ^ hz0) & mask)
        out.entries[4] = int((hx0 ^ hy0 ^ hz1) & mask)
        out.entries[5] = int((hx1 ^ hy0 ^ hz1) & mask)
        out.entries[6] = int((hx0 ^ hy1 ^ hz1) & mask)
        out.entries[7] = int((hx1 ^ hy1 ^ hz1) & mask)
    return out


@wp.func
def corner_weight(w: wp.vec3, corner: int) -> float:
    """The trilinear weight of corner bits (x: bit 0, y: bit 1, z: bit 2)."""
    wx = wp.where((corner & 1) != 0, w[0], 1.0 - w[0])
    wy = wp.where((corner & 2) != 0, w[1], 1.0 - w[1])
    wz = wp.where((corner & 4) != 0, w[2], 1.0 - w[2])
    return wx * wy * wz


@wp.func
def corner_weight_grad(w: wp.vec3, corner: int) -> wp.vec3:
    """d corner_weight / d w."""
    sx = wp.where((corner & 1) != 0, 1.0, -1.0)
    sy = wp.where((corner & 2) != 0, 1.0, -1.0)
    sz = wp.where((corner & 4) != 0, 1.0, -1.0)
    wx = wp.where((corner & 1) != 0, w[0], 1.0 - w[0])
    wy = wp.where((corner & 2) != 0, w[1], 1.0 - w[1])
    wz = wp.where((corner & 4) != 0, w[2], 1.0 - w[2])
    return wp.vec3(sx * wy * wz, wx * sy * wz, wx * wy * sz)


@wp.func
def level_layout(meta: wp.array(dtype=float), level: int):
    """(N_l, E_l, hashed) of a level, from meta."""
    k = META_PER_LEVEL + LEVEL_META * level
    return int(meta[k]), int(meta[k + 1]), int(meta[k + 2])


@wp.func
def hash_features(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                  table_base: int):  # fmt: skip
    """The encoding at x (world units), levels past the active count 0, from the
    tables at ``table_base`` in ``params``; and the index just past the tables
    (where the scalar layout's network starts). Forward only: its gradients are
    :func:`hash_backward` and :func:`hash_spatial`."""
    levels = int(meta[META_LEVELS])
    nf = int(meta[META_FEATURES])
    active = int(meta[META_ACTIVE])
    bound = meta[META_BOUND]
    feat = vec_features()
    off = table_base
    for level in range(levels):
        n, entries, hashed = level_layout(meta, level)
        if level < active:
            cell = level_cell_at(x, bound, n, entries, hashed)
            w = cell.w
            for corner in range(8):
                weight = corner_weight(w, corner)
                e = off + nf * cell.entries[corner]
                for f in range(nf):
                    feat[level * nf + f] += weight * params[e + f]
        off += entries * nf
    return feat, off


@wp.func
def hash_backward(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                  table_base: int, d_features: vec_features,
                  grad_params: wp.array(dtype=float)):  # fmt: skip
    """grad_params += sum_i d_features[i] d feature_i(x) / d table: the trilinear
    weight times the feature's gradient into each of the 8 corner entries of
    every active level (atomic adds)."""
    levels = int(meta[META_LEVELS])
    nf = int(meta[META_FEATURES])
    active = int(meta[META_ACTIVE])
    bound = meta[META_BOUND]
    off = table_base
    for level in range(levels):
        n, entries, hashed = level_layout(meta, level)
        if level < active:
            cell = level_cell_at(x, bound, n, entries, hashed)
            w = cell.w
            for corner in range(8):
                weight = corner_weight(w, corner)
                e = off + nf * cell.entries[corner]
                for f in range(nf):
                    g = weight * d_features[level * nf + f]
                    if g != 0.0:
                        wp.atomic_add(grad_params, e + f, g)
        off += entries * nf


@wp.func
def hash_spatial(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3,
                 table_base: int, d_features: vec_features) -> wp.vec3:  # fmt: skip
    """sum_i d_features[i] d feature_i(x) / d x (world units): through the
    trilinear weights inside each active level's cell; a coordinate clamped to
    the cube contributes 0."""
    levels = int(meta[META_LEVELS])
    nf = int(meta[META_FEATURES])
    active = int(meta[META_ACTIVE])
    bound = meta[META_BOUND]
    out = wp.vec3(0.0)
    off = table_base
    for level in range(levels):
        n, entries, hashed = level_layout(meta, level)
        if level < active:
            cell = level_cell_at(x, bound, n, entries, hashed)
            w = cell.w
            p = level_position(x, bound, n)
            d_level = wp.vec3(0.0)  # d (d_features . level's features) / d p
            for corner in range(8):
                e = off + nf * cell.entries[corner]
                value = float(0.0)
                for f in range(nf):
                    value += d_features[level * nf + f] * params[e + f]
                d_level += value * corner_weight_grad(w, corner)
            scale = 0.5 * float(n) / bound  # d p / d x inside the cube
            inside = wp.vec3(
                wp.where(p[0] > 0.0 and p[0] < float(n), scale, 0.0),
                wp.where(p[1] > 0.0 and p[1] < float(n), scale, 0.0),
                wp.where(p[2] > 0.0 and p[2] < float(n), scale, 0.0),
            )
            out += wp.cw_mul(d_level, inside)
        off += entries * nf
    return out


HASH = Encoding("hashgrid", hash_features, hash_backward, has_params=True)


def init_table(spec: HashGridSpec, rng: np.random.Generator, scale: float = 1e-4) -> np.ndarray:
    """The tables' initial values: uniform in [-scale, scale] (instant-ngp), so the
    encoding starts near 0 and the field near its sphere."""
    return rng.uniform(-scale, scale, size=spec.table_size).astype(np.float32)
