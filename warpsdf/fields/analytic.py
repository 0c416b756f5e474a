"""Analytic SDF primitives and their combination (the ``shapes`` target).

Each shape is one fixed-size record in the flat ``params`` array, folded left
to right into the running distance with its combine op. One kernel serves
every shape list: the scene is data, not code, so nothing recompiles when the
shapes change.

Record layout (SHAPE_RECORD floats per shape):
    0 type (ShapeCode), 1 op (OpCode), 2 k (blend radius), 3 scale,
    4..6 center, 7..15 world->local rotation R^T (row-major), 16..19 shape params.
meta = [shape count] (floats, like every field's meta).
"""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.fields.base import Field, FieldFunctions, fd_gradient
from warpsdf.scene import SHAPE_PARAMS, CombineOp, ShapeSpec, ShapeType


class ShapeCode(IntEnum):
    SPHERE = 0
    BOX = 1
    ROUNDED_BOX = 2
    CAPSULE = 3
    TORUS = 4
    CYLINDER = 5


class OpCode(IntEnum):
    UNION = 0
    SMOOTH_UNION = 1
    SUBTRACT = 2


SHAPE_RECORD = 20

# --------------------------------------------------------------------------
# Primitives, in their local frame (axis-aligned, centred at the origin;
# capsule, torus and cylinder around local +Y). Distances in world units.
# --------------------------------------------------------------------------


@wp.func
def sdf_sphere(p: wp.vec3, radius: float) -> float:
    return wp.length(p) - radius


@wp.func
def sdf_box(p: wp.vec3, half_size: wp.vec3) -> float:
    q = wp.vec3(wp.abs(p[0]), wp.abs(p[1]), wp.abs(p[2])) - half_size
    outside = wp.length(wp.vec3(wp.max(q[0], 0.0), wp.max(q[1], 0.0), wp.max(q[2], 0.0)))
    inside = wp.min(wp.max(q[0], wp.max(q[1], q[2])), 0.0)
    return outside + inside


@wp.func
def sdf_rounded_box(p: wp.vec3, half_size: wp.vec3, corner_radius: float) -> float:
    r = wp.vec3(corner_radius, corner_radius, corner_radius)
    return sdf_box(p, half_size - r) - corner_radius


@wp.func
def sdf_capsule(p: wp.vec3, radius: float, length: float) -> float:
    h = 0.5 * length
    y = p[1] - wp.clamp(p[1], -h, h)
    return wp.length(wp.vec3(p[0], y, p[2])) - radius


@wp.func
def sdf_torus(p: wp.vec3, major_radius: float, minor_radius: float) -> float:
    ring = wp.length(wp.vec2(p[0], p[2])) - major_radius
    return wp.length(wp.vec2(ring, p[1])) - minor_radius


@wp.func
def sdf_cylinder(p: wp.vec3, radius: float, height: float) -> float:
    dx = wp.length(wp.vec2(p[0], p[2])) - radius
    dy = wp.abs(p[1]) - 0.5 * height
    outside = wp.length(wp.vec2(wp.max(dx, 0.0), wp.max(dy, 0.0)))
    return wp.min(wp.max(dx, dy), 0.0) + outside


@wp.func
def op_smooth_union(a: float, b: float, k: float) -> float:
    """Polynomial smooth minimum with blend radius k (world units)."""
    h = wp.clamp(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


@wp.func
def op_combine(acc: float, d: float, op: int, k: float) -> float:
    """Fold shape distance ``d`` into the running distance ``acc``."""
    if op == int(OpCode.SMOOTH_UNION):
        return op_smooth_union(acc, d, k)
    if op == int(OpCode.SUBTRACT):
        return wp.max(acc, -d)
    return wp.min(acc, d)


@wp.func
def sdf_primitive(code: int, p: wp.vec3, a: float, b: float, c: float, d: float) -> float:
    if code == int(ShapeCode.SPHERE):
        return sdf_sphere(p, a)
    if code == int(ShapeCode.BOX):
        return sdf_box(p, wp.vec3(a, b, c))
    if code == int(ShapeCode.ROUNDED_BOX):
        return sdf_rounded_box(p, wp.vec3(a, b, c), d)
    if code == int(ShapeCode.CAPSULE):
        return sdf_capsule(p, a, b)
    if code == int(ShapeCode.TORUS):
        return sdf_torus(p, a, b)
    return sdf_cylinder(p, a, b)


@wp.func
def sdf_shapes(params: wp.array(dtype=float), meta: wp.array(dtype=float), x: wp.vec3) -> float:
    """Signed distance of the shape list at world point x (world units)."""
    acc = float(1.0e6)
    for s in range(int(meta[0])):
        o = s * SHAPE_RECORD
        scale = params[o + 3]
        q = x - wp.vec3(params[o + 4], params[o + 5], params[o + 6])
        rt = wp.mat33(
            params[o + 7], params[o + 8], params[o + 9],
            params[o + 10], params[o + 11], params[o + 12],
            params[o + 13], params[o + 14], params[o + 15],
        )  # fmt: skip
        p = rt * q / scale
        d = scale * sdf_primitive(
            int(params[o]), p, params[o + 16], params[o + 17], params[o + 18], params[o + 19]
        )
        if s == 0:
            acc = d
        else:
            acc = op_combine(acc, d, int(params[o + 1]), params[o + 2])
    return acc


ANALYTIC_FUNCTIONS = FieldFunctions("shapes", sdf_shapes, fd_gradient(sdf_shapes))


def rotation_matrix(rotation_deg: tuple[float, float, float]) -> np.ndarray:
    """R = Rz @ Ry @ Rx: rotate about world X, then Y, then Z (degrees)."""
    rx, ry, rz = (math.radians(a) for a in rotation_deg)
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    )  # fmt: skip
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def encode_shapes(shapes: list[ShapeSpec] | tuple[ShapeSpec, ...]) -> np.ndarray:
    """Pack validated shape specs into the (len * SHAPE_RECORD,) float32 record array."""
    out = np.zeros((len(shapes), SHAPE_RECORD), np.float32)
    for i, s in enumerate(shapes):
        # the type's parameters in SHAPE_PARAMS order, vectors flattened, zero-padded
        args = np.hstack([getattr(s, key) for key in SHAPE_PARAMS[s.type]])
        out[i, 0] = ShapeCode[s.type.name]
        out[i, 1] = OpCode[s.op.name]
        out[i, 2] = s.k
        out[i, 3] = s.scale
        out[i, 4:7] = s.center
        out[i, 7:16] = rotation_matrix(s.rotation_deg).T.reshape(-1)
        out[i, 16 : 16 + args.size] = args
    return out.reshape(-1)


def sdf_shapes_numpy(shapes: list[ShapeSpec] | tuple[ShapeSpec, ...], x: np.ndarray) -> np.ndarray:
    """Slow numpy reference of :func:`sdf_shapes` for tests: x (N, 3) -> (N,)."""
    x = np.asarray(x, np.float64)
    acc = None
    for s in shapes:
        p = (x - np.asarray(s.center)) @ rotation_matrix(s.rotation_deg) / s.scale
        t = s.type
        if t is ShapeType.SPHERE:
            d = np.linalg.norm(p, axis=1) - s.radius
        elif t in (ShapeType.BOX, ShapeType.ROUNDED_BOX):
            r = s.corner_radius or 0.0
            q = np.abs(p) - (np.asarray(s.half_size) - r)
            d = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0) - r
        elif t is ShapeType.CAPSULE:
            h = 0.5 * s.length
            q = p.copy()
            q[:, 1] -= np.clip(q[:, 1], -h, h)
            d = np.linalg.norm(q, axis=1) - s.radius
        elif t is ShapeType.TORUS:
            ring = np.hypot(p[:, 0], p[:, 2]) - s.major_radius
            d = np.hypot(ring, p[:, 1]) - s.minor_radius
        else:
            dx = np.hypot(p[:, 0], p[:, 2]) - s.radius
            dy = np.abs(p[:, 1]) - 0.5 * s.height
            d = np.minimum(np.maximum(dx, dy), 0) + np.hypot(np.maximum(dx, 0), np.maximum(dy, 0))
        d = d * s.scale
        if acc is None:
            acc = d
        elif s.op is CombineOp.SMOOTH_UNION:
            h = np.clip(0.5 + 0.5 * (d - acc) / s.k, 0, 1)
            acc = d + (acc - d) * h - s.k * h * (1 - h)
        elif s.op is CombineOp.SUBTRACT:
            acc = np.maximum(acc, -d)
        else:
            acc = np.minimum(acc, d)
    return acc


class AnalyticField(Field):
    """A list of analytic shapes as a field (used for ``kind = "shapes"`` targets)."""

    functions = ANALYTIC_FUNCTIONS

    def __init__(self, shapes: list[ShapeSpec] | tuple[ShapeSpec, ...], device=None):
        if not shapes:
            raise ValueError("an analytic field needs at least one shape")
        self.shapes = tuple(shapes)
        super().__init__(
            wp.array(encode_shapes(self.shapes), dtype=float, device=device),
            wp.array([float(len(self.shapes))], dtype=float, device=device),
        )
