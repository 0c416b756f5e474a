"""View layouts (DESIGN §2): orbit and Fibonacci rings, a scene's training
cameras, camera shake, and the held-out and showcase sets a fit is judged
and shown with. Every camera set of the project is made here."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from warpsdf.camera.cameras_json import heldout_indices, read_cameras
from warpsdf.camera.core import Camera, camera_angles, camera_from_angles
from warpsdf.camera.dataset import read_dataset
from warpsdf.io.layout import RunFolder
from warpsdf.sampling import random_in_ball
from warpsdf.scene import CameraLayout, CamerasConfig, Scene, TargetKind


def orbit_cameras(
    count: int,
    distance: float,
    elevation_deg: float = 0.0,
    azimuth_deg: float = 0.0,
    **kwargs,
) -> list[Camera]:
    """``count`` cameras evenly spaced in azimuth, starting at ``azimuth_deg``."""
    return [
        camera_from_angles(azimuth_deg + 360.0 * k / count, elevation_deg, distance, **kwargs)
        for k in range(count)
    ]


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` deterministic, nearly uniform unit vectors (count, 3): the
    Fibonacci lattice, from near +Y down to near -Y."""
    k = np.arange(count, dtype=np.float64) + 0.5
    y = 1.0 - 2.0 * k / count
    r = np.sqrt(np.maximum(0.0, 1.0 - y * y))
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.sin(phi), y, r * np.cos(phi)], axis=1)


def fibonacci_cameras(
    count: int, distance: float, target=(0.0, 0.0, 0.0), **lens: Any
) -> list[Camera]:
    """``count`` cameras on the Fibonacci sphere of radius ``distance`` around
    ``target``, looking at it; ``lens``: :class:`Camera`'s ``up``, ``fov_deg``,
    ``width`` and ``height``."""
    center = np.asarray(target, np.float64)
    if "up" in lens:
        lens["up"] = tuple(lens["up"])
    return [
        Camera(tuple(center + distance * d), tuple(target), **lens)
        for d in fibonacci_directions(count)
    ]


def cameras_from_config(config: CamerasConfig) -> list[Camera]:
    """The training cameras a scene's ``[cameras]`` section describes.

    ``layout = file`` is read by :func:`training_cameras`.
    """
    width, height = config.resolution
    common = dict(fov_deg=config.fov_deg, width=width, height=height, up=config.up)
    if config.layout is CameraLayout.SINGLE:
        if config.eye is not None:
            return [Camera(config.eye, config.look_at, **common)]
        return [
            camera_from_angles(
                config.azimuth_deg,
                config.elevation_deg,
                config.distance,
                target=config.look_at,
                **common,
            )
        ]
    if config.layout is CameraLayout.ORBIT:
        return orbit_cameras(
            config.count,
            config.distance,
            config.elevation_deg,
            config.azimuth_deg,
            target=config.look_at,
            **common,
        )
    if config.layout is CameraLayout.FIBONACCI:
        return fibonacci_cameras(config.count, config.distance, target=config.look_at, **common)
    raise ValueError(f"layout {config.layout.value!r} is read from a file")


def jitter_cameras(cameras: list[Camera], amount: float, rng: np.random.Generator) -> list[Camera]:
    """Camera shake: move every eye by a random offset drawn uniformly from the
    ball of radius ``amount`` (world units; one :func:`random_in_ball` draw per
    camera, in camera order); each keeps looking at its target."""
    if amount <= 0:
        return list(cameras)
    out = []
    for cam in cameras:
        v = random_in_ball(rng, 1, amount)[0]
        out.append(replace(cam, eye=tuple(float(a) for a in np.asarray(cam.eye) + v)))
    return out


# Held-out views (metrics): a Fibonacci lattice turned by this angle about +Y,
# so that none coincides with a view of the Fibonacci training layout.
HELDOUT_TURN_DEG = 23.0

# Showcase renders of a fit (run folder ``final_NAME.png``): the training view,
# then views turned by these azimuths from it, at this elevation.
SHOWCASE_TURNS_DEG = (90, 180, 270)
SHOWCASE_ELEVATION_DEG = 25.0


def heldout_cameras(count: int, like: Camera, center=(0.0, 0.0, 0.0)) -> list[Camera]:
    """``count`` views spread over the sphere around ``center`` at ``like``'s
    distance from its target, with its lens and size and up +Y: the Fibonacci
    lattice turned by :data:`HELDOUT_TURN_DEG` about +Y."""
    angle = math.radians(HELDOUT_TURN_DEG)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    dirs = fibonacci_directions(count) @ rot.T
    center = np.asarray(center, np.float64)
    dist = float(np.linalg.norm(np.asarray(like.eye) - np.asarray(like.target)))
    return [
        Camera(tuple(center + dist * d), tuple(center), (0.0, 1.0, 0.0), like.fov_deg,
               like.width, like.height)
        for d in dirs
    ]  # fmt: skip


def showcase_cameras(like: Camera, scale: int = 1) -> dict[str, Camera]:
    """The showcase views of a fit, named for their files (``final_NAME.png``):
    :data:`RunFolder.TRAIN_VIEW` (``like`` itself) and ``azNNN`` (turned by
    :data:`SHOWCASE_TURNS_DEG` about ``like``'s target, at
    :data:`SHOWCASE_ELEVATION_DEG`), every one at ``scale`` times ``like``'s
    resolution."""
    big = like.with_resolution(like.width * scale, like.height * scale)
    views = {RunFolder.TRAIN_VIEW: big}
    azimuth, _, distance = camera_angles(like)
    for turn in SHOWCASE_TURNS_DEG:
        views[f"az{turn:03d}"] = camera_from_angles(
            azimuth + turn, SHOWCASE_ELEVATION_DEG, distance, like.fov_deg, big.width,
            big.height, target=like.target, up=(0.0, 1.0, 0.0),
        )  # fmt: skip
    return views


def training_cameras(scene: Scene) -> list[Camera]:
    """The cameras a scene trains on: from the image folder's cameras.json
    (``target.kind = images``; less the views ``target.heldout`` holds out,
    :func:`heldout_indices`), from a transforms.json dataset's training split,
    normalised (``kind = transforms``, :func:`read_dataset`; less the same),
    from ``cameras.file`` (``layout = file``), or from the ``[cameras]`` layout."""
    if scene.target.kind is TargetKind.IMAGES:
        entries = read_cameras(scene.target.path)
        held = set(heldout_indices(scene, [e.name for e in entries]))
        return [e.camera for i, e in enumerate(entries) if i not in held]
    if scene.target.kind is TargetKind.TRANSFORMS:
        frames = read_dataset(scene).train
        held = set(heldout_indices(scene, [f.name for f in frames]))
        return [f.camera for i, f in enumerate(frames) if i not in held]
    if scene.cameras.layout is CameraLayout.FILE:
        return [e.camera for e in read_cameras(scene.cameras.file)]
    return cameras_from_config(scene.cameras)
