"""Rendering: trace rays through a field or mesh, then shade per render mode.

``render(source, camera, mode)`` returns a numpy image; the CLI decides how
to save it. Shading is one field-independent kernel, so every source (any
field kind, a mesh) shares it.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

import numpy as np
import warp as wp

from warpsdf.camera import Camera
from warpsdf.camera.rays import device_rays
from warpsdf.fields.base import Field
from warpsdf.march import Polish, RayHits, march
from warpsdf.scene import MarchConfig


class RenderMode(StrEnum):
    SHADED = "shaded"
    MASK = "mask"
    XYZ = "xyz"
    DEPTH = "depth"
    NORMALS = "normals"
    # the renderer with no misses (README "Experiments"): every pixel the point
    # where its ray's march ended (a hit, the end of the step budget or the far
    # limit: past the back wall with clip_back = false), shown clipped like xyz
    MARCH_END = "march_end"


class ShadeCode(IntEnum):
    """RenderMode as the integer the shading kernel takes."""

    SHADED = 0
    MASK = 1
    XYZ = 2
    DEPTH = 3
    NORMALS = 4
    MARCH_END = 5


_SHADE_CODES = {m: ShadeCode[m.name] for m in RenderMode}

# Shaded look: a warm clay material under a key and a fill light that move
# with the camera, on a soft vertical gradient.
ALBEDO = wp.constant(wp.vec3(0.78, 0.42, 0.27))
BACKGROUND_TOP = wp.constant(wp.vec3(0.95, 0.96, 0.98))
BACKGROUND_BOTTOM = wp.constant(wp.vec3(0.78, 0.81, 0.86))


@wp.kernel(enable_backward=False)
def shade_kernel(
    directions: wp.array(dtype=wp.vec3),  # (R,) unit ray directions, world space
    hit_t: wp.array(dtype=float),  # (R,) hit distance, -1 = miss
    points: wp.array(dtype=wp.vec3),  # (R,) hit points, world units
    normals: wp.array(dtype=wp.vec3),  # (R,) unit normals at the hits
    mode: int,  # ShadeCode
    cam_right: wp.vec3,  # camera basis, world space (lights move with the camera)
    cam_up: wp.vec3,
    cam_back: wp.vec3,
    rgb_out: wp.array(dtype=wp.vec3),  # (R,) see below
):
    """One thread per ray (dim = R). Not differentiable. ``rgb_out`` holds a
    colour in [0, 1] (shaded, mask, normals), (t, t, t) with t the ray distance
    in world units, inf on a miss (depth), or the raw world-space hit point,
    NaN on a miss (xyz; :func:`to_display` makes the colour code), or the raw
    point where the march ended, hit or not (march_end: the march's ``points``,
    for a ray that misses the bound its point nearest the origin)."""
    r = wp.tid()
    hit = hit_t[r] >= 0.0
    if mode == int(ShadeCode.MASK):
        v = wp.where(hit, 1.0, 0.0)
        rgb_out[r] = wp.vec3(v, v, v)
        return
    if mode == int(ShadeCode.DEPTH):
        t = wp.where(hit, hit_t[r], wp.inf)
        rgb_out[r] = wp.vec3(t, t, t)
        return
    if mode == int(ShadeCode.XYZ):
        rgb_out[r] = wp.where(hit, points[r], wp.vec3(wp.nan, wp.nan, wp.nan))
        return
    if mode == int(ShadeCode.MARCH_END):
        rgb_out[r] = points[r]
        return
    if not hit:
        if mode == int(ShadeCode.SHADED):
            s = wp.clamp(0.5 + 0.5 * wp.dot(directions[r], cam_up) / 0.5, 0.0, 1.0)
            rgb_out[r] = BACKGROUND_BOTTOM * (1.0 - s) + BACKGROUND_TOP * s
        else:
            rgb_out[r] = wp.vec3(0.0)
        return
    n = normals[r]
    if mode == int(ShadeCode.NORMALS):
        rgb_out[r] = (n + wp.vec3(1.0, 1.0, 1.0)) * 0.5
        return
    view = -directions[r]
    key = wp.normalize(cam_right * -0.45 + cam_up * 0.75 + cam_back * 0.6)
    fill = wp.normalize(cam_right * 0.7 + cam_up * 0.05 + cam_back * 0.5)
    diffuse = 0.75 * wp.max(wp.dot(n, key), 0.0) + 0.3 * wp.max(wp.dot(n, fill), 0.0)
    ambient = 0.08 + 0.06 * wp.dot(n, cam_up)
    half_vec = wp.normalize(key + view)
    spec = 0.22 * wp.pow(wp.max(wp.dot(n, half_vec), 0.0), 40.0)
    rim = 0.18 * wp.pow(1.0 - wp.max(wp.dot(n, view), 0.0), 3.0)
    c = ALBEDO * (ambient + diffuse) + wp.vec3(spec + rim)
    rgb_out[r] = wp.vec3(
        wp.pow(wp.clamp(c[0], 0.0, 1.0), 1.0 / 2.2),
        wp.pow(wp.clamp(c[1], 0.0, 1.0), 1.0 / 2.2),
        wp.pow(wp.clamp(c[2], 0.0, 1.0), 1.0 / 2.2),
    )


def trace(
    source,
    origins: wp.array,
    directions: wp.array,
    config: MarchConfig,
    polish: Polish = Polish.NEWTON,
) -> RayHits:
    """Trace rays through a field (sphere tracing) or any object with a ``trace``
    method of the same signature (a mesh target). ``polish``: what a field's
    march does at a hit (:class:`warpsdf.march.Polish`; NONE when only the hit
    masks are read: the same masks, the points within ``hit_epsilon``, no
    normals); a mesh's hits are exact."""
    if isinstance(source, Field):
        return march(source, origins, directions, config, polish=polish)
    return source.trace(origins, directions, config)


def trace_camera(source, camera: Camera, config: MarchConfig) -> RayHits:
    """Trace every pixel ray of one camera (row-major)."""
    return trace(source, *device_rays([camera], source.device), config)


def trace_cameras(
    source, cameras: list[Camera], config: MarchConfig, polish: Polish = Polish.NEWTON
) -> list[dict[str, np.ndarray]]:
    """Trace several cameras in one launch; per camera ``hit_t`` and ``points``
    (see :class:`RayHits`) as numpy arrays of H * W rows (``polish``: see
    :func:`trace`)."""
    traced = trace(source, *device_rays(cameras, source.device), config, polish)
    hits = {"hit_t": traced.hit_t.numpy(), "points": traced.points.numpy()}
    out, start = [], 0
    for cam in cameras:
        end = start + cam.num_rays
        out.append({k: v[start:end] for k, v in hits.items()})
        start = end
    return out


def shade(
    hits: RayHits, directions: wp.array, camera: Camera, mode: RenderMode, rows: int | None = None
) -> np.ndarray:
    """Per-ray results -> image. shaded, normals: (H, W, 3) float32 in [0, 1];
    xyz: (H, W, 3) float32 world-space hit points, unclipped, NaN for misses;
    march_end: the same, but every ray's point where its march ended (no NaN);
    mask: (H, W) bool; depth: (H, W) float32 ray distance, inf for misses.
    ``rows``: the number of image rows the rays cover (default: all)."""
    device = hits.hit_t.device
    rgb = wp.empty(hits.hit_t.shape[0], dtype=wp.vec3, device=device)
    right, up, back = (wp.vec3(*map(float, v)) for v in camera.basis())
    wp.launch(
        shade_kernel,
        dim=rgb.shape[0],
        inputs=[directions, hits.hit_t, hits.points, hits.normals, int(_SHADE_CODES[mode]),
                right, up, back],
        outputs=[rgb],
        device=device,
    )  # fmt: skip
    img = rgb.numpy().reshape(rows or camera.height, camera.width, 3)
    if mode is RenderMode.MASK:
        return img[..., 0] > 0.5
    if mode is RenderMode.DEPTH:
        return img[..., 0].copy()
    return img


# Rays traced per launch by :func:`render`: large images go in tiles of whole
# rows, so memory stays bounded (about 100 bytes per ray) whatever the size.
RENDER_TILE_RAYS = 1 << 21


def render(
    source,
    camera: Camera,
    mode: RenderMode = RenderMode.SHADED,
    config: MarchConfig | None = None,
    tile_rays: int = RENDER_TILE_RAYS,
) -> np.ndarray:
    """Render ``source`` (a field or mesh target) from ``camera``, in tiles of
    at most ``tile_rays`` rays; see :func:`shade` for what comes back."""
    mode = RenderMode(mode)
    config = config or MarchConfig()
    device = source.device
    rows_per_tile = max(1, tile_rays // camera.width)
    image = None
    for first in range(0, camera.height, rows_per_tile):
        stop = min(camera.height, first + rows_per_tile)
        origins, directions = device_rays([camera], device, rows=(first, stop))
        hits = trace(source, origins, directions, config)
        tile = shade(hits, directions, camera, mode, rows=stop - first)
        if image is None:
            image = np.empty((camera.height, *tile.shape[1:]), tile.dtype)
        image[first:stop] = tile
    return image


def depth_to_gray(depth: np.ndarray) -> np.ndarray:
    """Depth (inf = miss) -> [0, 1] grey, near = bright, misses black."""
    finite = np.isfinite(depth)
    out = np.zeros(depth.shape, np.float32)
    if finite.any():
        lo, hi = depth[finite].min(), depth[finite].max()
        span = max(hi - lo, 1e-6)
        out[finite] = 1.0 - 0.8 * (depth[finite] - lo) / span
    return out


def xyz_to_unit(xyz: np.ndarray) -> np.ndarray:
    """The XYZ colour code (DESIGN §3): points clipped to [-1, 1] -> (xyz + 1) / 2
    in [0, 1]; NaN (a miss) -> 0, black."""
    return (np.clip(np.nan_to_num(xyz, nan=-1.0), -1.0, 1.0) + 1.0) * 0.5


def to_display(image: np.ndarray, mode: RenderMode) -> np.ndarray:
    """Any render result -> (H, W, 3) float32 in [0, 1] for PNG/GIF output."""
    mode = RenderMode(mode)
    if mode in (RenderMode.XYZ, RenderMode.MARCH_END):
        return xyz_to_unit(image).astype(np.float32)
    if mode is RenderMode.MASK:
        g = image.astype(np.float32)
    elif mode is RenderMode.DEPTH:
        g = depth_to_gray(image)
    else:
        return image
    return np.repeat(g[..., None], 3, axis=2)
