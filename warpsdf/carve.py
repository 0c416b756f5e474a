"""The visual hull of a scene's training masks, carved on the device, and
its signed distance (``warpsdf carve``, ``model.init = "visual_hull"``).

The hull is sampled on the lattice :func:`warpsdf.export.field_grid` uses:
``n`` points a side spanning the bound's cube [-R, R]^3, point (i, j, k) at
``-R + (i, j, k) h`` with ``h = 2R / (n - 1)`` (world units). A lattice point
("voxel centre") is inside the hull when

* it lies in the bounding sphere (|x| <= R: the marcher sees nothing beyond
  it, so neither do the masks), and
* in every training view it projects (:func:`warpsdf.camera.rays.point_pixel`,
  the inverse of the ray formula) into a pixel of the view's mask, or, with
  ``dilate = d``, into a pixel within d pixels (a (2d + 1)^2 window) of one.

A point that projects outside a view's image, or lies behind its camera, is
judged by what the view shows: if the view's mask touches no pixel of the
image border, the view saw the whole object, so everything outside its
frustum is empty and the point is carved; if the mask touches the border,
the object may reach outside the frame and the view says nothing about the
point (it is kept). Cameras that see the whole object (every shipped scene)
thus carve the whole cube down to the hull; a close-up view cannot cut away
the part of the object it does not show.

Exactness. A mask pixel is set when the ray through its centre hits the
object, so with ``dilate = 0`` (the usual visual hull, which warpsdf reports
and starts fits from) the boundary is right to about half a pixel's
footprint either way. With ``dilate = 1`` the hull holds every lattice point
inside the object whose silhouettes each hold a disc of radius sqrt(2)/2
pixel through the point's projection (e.g. a ball's): such a disc holds a
pixel centre within sqrt(2) pixels, i.e. in the 3x3 window.

Signed distance (:func:`signed_distance`): an exact Euclidean distance
transform of the lattice (Felzenszwalb and Huttenlocher's lower envelope of
parabolas, one pass per axis, one thread per lattice line) gives every point
the distance to the nearest point on the other side; the signed distance is
that less half a step, h / 2, negative inside, so the zero level set runs
midway between inside and outside points, where marching cubes puts it.
Against the solid the lattice samples, the value errs by at most
[-h / 2, (sqrt(3) - 1/2) h] for solids with no part thinner than a voxel
diagonal; on a ball and a box (tests/test_carve.py) it is within 0.5 h. It
is a distance everywhere in the cube, as a fit's eikonal term wants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import warp as wp

from warpsdf.camera import Camera, training_cameras
from warpsdf.camera.rays import (
    FRAME_BACK,
    FRAME_EYE,
    FRAME_RIGHT,
    FRAME_UP,
    DeviceCameras,
    point_pixel,
)
from warpsdf.errors import WarpsdfError
from warpsdf.export import lattice_mesh
from warpsdf.limits import MAX_CARVE_RESOLUTION, MIN_CARVE_RESOLUTION
from warpsdf.scene import ModelInit, Scene
from warpsdf.targets import Target, target_views
from warpsdf.targets.views import missing_image

# The lattice a fit started from the visual hull carves (model.init =
# "visual_hull"): fields resample its signed distance (:func:`hull_sdf_at`).
HULL_INIT_RESOLUTION = 128

# Squared distance of a lattice point that has no point of the other side on
# its lines so far (the distance transform's "infinity").
NO_FEATURE = -1.0
ENVELOPE_INF = 1.0e30


@wp.func
def mask_window_hit(
    masks: wp.array(dtype=wp.uint8),
    first: int,
    width: int,
    height: int,
    row: int,
    col: int,
    dilate: int,
) -> int:
    """1 when a mask pixel lies in the (2 dilate + 1)^2 window around pixel
    (row, col) (pixels outside the image are skipped), else 0."""
    for di in range(-dilate, dilate + 1):
        for dj in range(-dilate, dilate + 1):
            i = row + di
            j = col + dj
            if i < 0 or i >= height or j < 0 or j >= width:
                continue  # (Warp evaluates both sides of an `and`: no index out of range)
            if masks[first + i * width + j] != wp.uint8(0):
                return 1
    return 0


@wp.func
def envelope_meet(f_q: float, q: int, f_v: float, v: int) -> float:
    """Where the parabolas (x - q)^2 + f_q and (x - v)^2 + f_v meet (q > v)."""
    qf = float(q)
    vf = float(v)
    return ((f_q + qf * qf) - (f_v + vf * vf)) / (2.0 * qf - 2.0 * vf)


@wp.kernel(enable_backward=False)
def carve_kernel(
    frames: wp.array2d(dtype=wp.vec3d),  # (C, 4) eye, right, up, back per view, world units
    first: wp.array(dtype=int),  # (C,) offset of each view's mask in masks
    width: wp.array(dtype=int),  # (C,) pixels
    height: wp.array(dtype=int),  # (C,) pixels
    tan_half: wp.array(dtype=wp.float64),  # (C,) tan(fov / 2)
    sees_all: wp.array(dtype=int),  # (C,) 1: the mask is clear of the image border
    masks: wp.array(dtype=wp.uint8),  # (sum H * W,) 1 on the object, each view row-major
    n: int,  # lattice points a side
    bound_radius: wp.float64,  # R, world units; the lattice spans [-R, R]^3
    dilate: int,  # pixels: a window of (2 dilate + 1)^2 pixels around the projection
    inside_out: wp.array(dtype=wp.uint8),  # (n^3,) 1 inside the hull; id (i n + j) n + k
):
    """One thread per lattice point (dim = n^3; point (i, j, k) at -R + (i, j, k)
    h, h = 2R / (n - 1)), looping over the C views. Not differentiable."""
    p = wp.tid()
    i = p // (n * n)
    j = (p // n) % n
    k = p % n
    h = wp.float64(2.0) * bound_radius / wp.float64(n - 1)
    x = wp.vec3d(
        -bound_radius + wp.float64(i) * h,
        -bound_radius + wp.float64(j) * h,
        -bound_radius + wp.float64(k) * h,
    )
    inside = int(1)
    if wp.length(x) > bound_radius:
        inside = 0
    c = int(0)
    while inside == 1 and c < first.shape[0]:
        w = width[c]
        hh = height[c]
        q = point_pixel(x, w, hh, tan_half[c], frames[c, FRAME_EYE], frames[c, FRAME_RIGHT],
                        frames[c, FRAME_UP], frames[c, FRAME_BACK])  # fmt: skip
        framed = int(0)
        hit = int(0)
        # pixels within the window's reach of the image only (no int overflow)
        reach = wp.float64(dilate + 1)
        near_rows = q[0] > -reach and q[0] < wp.float64(hh) + reach
        near_cols = q[1] > -reach and q[1] < wp.float64(w) + reach
        if q[2] > wp.float64(0.0) and near_rows and near_cols:
            row = int(wp.floor(q[0]))
            col = int(wp.floor(q[1]))
            if row >= 0 and row < hh and col >= 0 and col < w:
                framed = 1
            hit = mask_window_hit(masks, first[c], w, hh, row, col, dilate)
        if hit == 0 and (framed == 1 or sees_all[c] == 1):
            inside = 0
        c += 1
    inside_out[p] = wp.uint8(inside)


@wp.kernel(enable_backward=False)
def distance_pass_kernel(
    f_in: wp.array(dtype=float),  # (n^3,) squared distances so far (lattice steps^2); < 0: none
    n: int,  # lattice points a side
    outer: int,  # a line's start: (line // n) * outer + (line % n) * inner
    inner: int,
    stride: int,  # step between a line's points
    v_scratch: wp.array(dtype=int),  # (n^3,) the envelope's parabola apexes, n per line
    z_scratch: wp.array(dtype=float),  # (n^2 (n + 1),) the envelope's breakpoints
    f_out: wp.array(dtype=float),  # (n^3,) squared distances after this axis
):
    """One thread per lattice line along one axis (dim = n^2): the exact 1-D
    squared distance transform of the line (Felzenszwalb and Huttenlocher,
    points without a value skipped). Not differentiable."""
    line = wp.tid()
    base = (line // n) * outer + (line % n) * inner
    vb = line * n
    zb = line * (n + 1)
    k = int(-1)
    for q in range(n):
        f_q = f_in[base + q * stride]
        if f_q >= 0.0:
            if k < 0:
                k = int(0)
                v_scratch[vb] = q
                z_scratch[zb] = -ENVELOPE_INF
                z_scratch[zb + 1] = ENVELOPE_INF
            else:
                v = v_scratch[vb + k]
                s = envelope_meet(f_q, q, f_in[base + v * stride], v)
                while s <= z_scratch[zb + k]:
                    k -= 1
                    v = v_scratch[vb + k]
                    s = envelope_meet(f_q, q, f_in[base + v * stride], v)
                k += 1
                v_scratch[vb + k] = q
                z_scratch[zb + k] = s
                z_scratch[zb + k + 1] = ENVELOPE_INF
    if k < 0:
        for q in range(n):
            f_out[base + q * stride] = NO_FEATURE
    else:
        k = int(0)
        for q in range(n):
            qf = float(q)
            while z_scratch[zb + k + 1] < qf:
                k += 1
            v = v_scratch[vb + k]
            d = qf - float(v)
            f_out[base + q * stride] = d * d + f_in[base + v * stride]


@wp.kernel(enable_backward=False)
def signed_distance_kernel(
    to_inside: wp.array(dtype=float),  # (n^3,) squared lattice distance to the nearest inside point
    to_outside: wp.array(dtype=float),  # (n^3,) ... to the nearest outside point
    step: float,  # h, world units
    sdf_out: wp.array(dtype=float),  # (n^3,) world units, negative inside
):
    """One thread per lattice point (dim = n^3): the distance to the nearest
    point on the other side less h / 2. Not differentiable."""
    p = wp.tid()
    if to_inside[p] == 0.0:  # an inside point
        sdf_out[p] = -(wp.sqrt(to_outside[p]) - 0.5) * step
    else:
        sdf_out[p] = (wp.sqrt(to_inside[p]) - 0.5) * step


def lattice_step(resolution: int, bound_radius: float) -> float:
    """h: world units between neighbouring lattice points."""
    return 2.0 * bound_radius / (resolution - 1)


# The rule on a hull's lattice size (limits.py says why), as messages state it.
RESOLUTION_RULE = f"[{MIN_CARVE_RESOLUTION}, {MAX_CARVE_RESOLUTION}]"


def resolution_problem(resolution: int) -> str | None:
    """What is wrong with a hull lattice size, else None."""
    if not MIN_CARVE_RESOLUTION <= resolution <= MAX_CARVE_RESOLUTION:
        return f"expected lattice points per axis in {RESOLUTION_RULE}"
    return None


def carve_masks(
    cameras: list[Camera],
    masks: list[np.ndarray],
    resolution: int,
    bound_radius: float,
    device=None,
    dilate: int = 0,
) -> np.ndarray:
    """The hull's occupancy (n, n, n) bool, True inside (see the module
    docstring), from one (H, W) bool mask per camera."""
    if len(cameras) != len(masks) or not cameras:
        raise ValueError(f"{len(cameras)} cameras but {len(masks)} masks")
    if problem := resolution_problem(resolution):
        raise WarpsdfError(f"resolution {resolution}: {problem}")
    device = wp.get_device(device)
    for cam, m in zip(cameras, masks, strict=True):
        if m.shape != (cam.height, cam.width):
            raise ValueError(f"a mask is {m.shape}, its camera {cam.height}x{cam.width}")
    border = [m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() for m in masks]
    dc = DeviceCameras.upload(cameras, device)
    flat = np.concatenate([np.asarray(m, bool).reshape(-1) for m in masks]).astype(np.uint8)
    n = resolution
    inside = wp.empty(n**3, dtype=wp.uint8, device=device)
    wp.launch(
        carve_kernel,
        dim=n**3,
        inputs=[dc.frames, dc.first, dc.width, dc.height, dc.tan_half,
                wp.array([0 if b else 1 for b in border], dtype=int, device=device),
                wp.array(flat, dtype=wp.uint8, device=device), n, float(bound_radius),
                int(dilate)],
        outputs=[inside],
        device=device,
    )  # fmt: skip
    return inside.numpy().reshape(n, n, n).astype(bool)


def _squared_distances(features: np.ndarray, scratch: tuple, device) -> wp.array:
    """Squared lattice distance (steps^2) of every point of an (n, n, n) lattice
    to the nearest point where ``features`` is True; NO_FEATURE where there is none."""
    n = features.shape[0]
    f = np.where(features.reshape(-1), np.float32(0.0), np.float32(NO_FEATURE))
    f = wp.array(f, dtype=float, device=device)
    g = wp.empty_like(f)
    # lines along k (stride 1), then j (stride n), then i (stride n^2)
    for outer, inner, stride in ((n * n, n, 1), (n * n, 1, n), (n, 1, n * n)):
        wp.launch(distance_pass_kernel, dim=n * n, inputs=[f, n, outer, inner, stride, *scratch],
                  outputs=[g], device=device)  # fmt: skip
        f, g = g, f
    return f


def signed_distance(inside: np.ndarray, bound_radius: float, device=None) -> np.ndarray:
    """The signed distance (n, n, n) float32, world units, negative inside, of
    an occupancy lattice spanning [-R, R]^3 (module docstring: exact
    transform, within about h / 2 of the sampled solid). Needs points on both
    sides."""
    n = inside.shape[0]
    if inside.shape != (n, n, n) or n < 2:
        raise ValueError(f"expected a cubic lattice, got {inside.shape}")
    if inside.all() or not inside.any():
        raise ValueError("the lattice has points on one side only")
    device = wp.get_device(device)
    apexes = wp.empty(n**3, dtype=int, device=device)  # the envelopes' parabolas, n a line
    scratch = (apexes, wp.empty(n * n * (n + 1), dtype=float, device=device))  # + breakpoints
    to_inside = _squared_distances(inside, scratch, device)
    to_outside = _squared_distances(~inside, scratch, device)
    sdf = wp.empty(n**3, dtype=float, device=device)
    step = lattice_step(n, bound_radius)
    wp.launch(signed_distance_kernel, dim=n**3, inputs=[to_inside, to_outside, step],
              outputs=[sdf], device=device)  # fmt: skip
    return sdf.numpy().reshape(n, n, n)


def hull_sdf_at(values: np.ndarray, bound_radius: float, points: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a lattice (n, n, n) spanning [-R, R]^3 at
    ``points`` (N, 3) world units -> (N,) float32. Points outside the cube take
    the value at the nearest point of the cube plus the distance to it (a
    signed distance stays one outside)."""
    n = values.shape[0]
    p = np.asarray(points, np.float64).reshape(-1, 3)
    clamped = np.clip(p, -bound_radius, bound_radius)
    u = (clamped + bound_radius) / lattice_step(n, bound_radius)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, n - 2)
    t = u - i0
    out = np.zeros(len(p), np.float64)
    for corner in range(8):
        d = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        w = np.prod(np.where(d == 1, t, 1.0 - t), axis=1)
        out += w * values[i0[:, 0] + d[0], i0[:, 1] + d[1], i0[:, 2] + d[2]]
    out += np.linalg.norm(p - clamped, axis=1)
    return out.astype(np.float32)


@dataclass(frozen=True)
class Hull:
    """A carved visual hull on the lattice of the module docstring.

    inside: (n, n, n) bool, True inside; sdf: (n, n, n) float32 signed
    distance, world units, negative inside; bound_radius: R, world units;
    views: how many masks carved it."""

    inside: np.ndarray
    sdf: np.ndarray
    bound_radius: float
    views: int

    @property
    def resolution(self) -> int:
        return self.inside.shape[0]

    @property
    def step(self) -> float:
        return lattice_step(self.resolution, self.bound_radius)

    @property
    def voxels(self) -> int:
        """Lattice points inside the hull."""
        return int(self.inside.sum())

    def at(self, points: np.ndarray) -> np.ndarray:
        """The signed distance at ``points`` (N, 3) -> (N,): :func:`hull_sdf_at`
        (what a field started from the hull resamples)."""
        return hull_sdf_at(self.sdf, self.bound_radius, points)

    def mesh(self, device=None) -> tuple[np.ndarray, np.ndarray]:
        """Marching cubes of the zero level set: (vertices (V, 3), faces (F, 3))."""
        return lattice_mesh(self.sdf, self.bound_radius, device)


def carve(
    cameras: list[Camera],
    masks: list[np.ndarray],
    resolution: int,
    bound_radius: float,
    device=None,
    dilate: int = 0,
) -> Hull:
    """The visual hull of ``masks`` (one (H, W) bool per camera) and its
    signed distance. Raises :class:`WarpsdfError` when nothing is left."""
    inside = carve_masks(cameras, masks, resolution, bound_radius, device, dilate)
    if not inside.any():
        raise WarpsdfError(
            f"the visual hull of {len(masks)} mask(s) is empty at resolution {resolution}: "
            "no lattice point projects into every mask (are the masks and cameras of the "
            "same views?)"
        )
    sdf = signed_distance(inside, bound_radius, device)
    return Hull(inside, sdf, float(bound_radius), len(masks))


def training_masks(
    scene: Scene, device=None, target: Target | None = None
) -> tuple[list[Camera], list[np.ndarray]]:
    """The scene's training cameras and their target masks: traced for shapes
    and meshes, an image folder's stored masks without the views
    ``target.heldout`` holds out. A view without a mask is one error line."""
    cameras = training_cameras(scene)
    views = target_views(scene, device, target, cameras)
    for i, view in enumerate(views):
        if missing := missing_image(view, i, set()):
            raise WarpsdfError(f"{scene.source or scene.name}: {missing[0]}: {missing[1]}")
    return [v.camera for v in views], [v.mask for v in views]


def carve_scene(
    scene: Scene, resolution: int, device=None, target: Target | None = None, dilate: int = 0
) -> Hull:
    """The visual hull of the scene's training masks (:func:`training_masks`)
    inside its bound, on ``device``."""
    cameras, masks = training_masks(scene, device, target)
    try:
        return carve(cameras, masks, resolution, scene.march.bound_radius, device, dilate)
    except WarpsdfError as err:
        raise WarpsdfError(f"{scene.source or scene.name}: {err}") from None


def hull_sdf(
    scene: Scene, device=None, resolution: int = HULL_INIT_RESOLUTION
) -> tuple[np.ndarray, float]:
    """The hull's signed distance (n, n, n) float32, world units, negative
    inside, and the bound radius R of the lattice it spans; sample it
    anywhere with :func:`hull_sdf_at`."""
    hull = carve_scene(scene, resolution, device)
    return hull.sdf, hull.bound_radius


def hull_init(
    scene: Scene, cameras: list[Camera], masks: list[np.ndarray], device=None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """What :func:`warpsdf.fields.factory.make_field` starts a field from
    (``init_sdf``): for ``model.init = "visual_hull"`` the signed distance
    (:meth:`Hull.at`) of the hull of these training views, carved at
    :data:`HULL_INIT_RESOLUTION`; else None. A grid samples it at its finest
    lattice; a hash grid or an MLP is regressed onto it
    (:func:`warpsdf.fit.prefit.prefit_to_sdf`)."""
    if scene.model.init is not ModelInit.VISUAL_HULL:
        return None
    try:
        hull = carve(cameras, masks, HULL_INIT_RESOLUTION, scene.march.bound_radius, device)
    except WarpsdfError as err:
        raise WarpsdfError(f"{scene.source or scene.name}: model.init: {err}") from None
    return hull.at
