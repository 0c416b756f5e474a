"""Views for ``render``: pick cameras from a scene plus overrides, render, and
save stills, per-camera folders and turntable GIFs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warpsdf.camera import Camera, camera_angles, camera_from_angles, read_cameras, training_cameras
from warpsdf.errors import OutputError, WarpsdfError
from warpsdf.io.files import staged_dir
from warpsdf.io.images import to_uint8, write_gif, write_npy, write_png
from warpsdf.io.layout import RenderFolder
from warpsdf.render import RenderMode, render, to_display
from warpsdf.scene import Scene, key_problem, resolution_problem

STILL_SUFFIXES = (".png", ".npy")


@dataclass(frozen=True)
class ViewRequest:
    """Overrides of the scene's first camera. None keeps the scene's value."""

    resolution: tuple[int, int] | None = None  # pixels (width, height)
    azimuth_deg: float | None = None
    elevation_deg: float | None = None
    distance: float | None = None  # world units
    fov_deg: float | None = None

    def check(self) -> None:
        """Each value is a finite number and follows the rule of the scene key
        it overrides."""
        for option, value in (
            ("--azimuth", self.azimuth_deg), ("--elevation", self.elevation_deg),
            ("--distance", self.distance), ("--fov", self.fov_deg),
        ):  # fmt: skip
            if value is not None and not math.isfinite(value):
                raise WarpsdfError(f"{option} {value}: expected a finite number")
        for option, key, value in (
            ("--fov", "cameras.fov_deg", self.fov_deg),
            ("--distance", "cameras.distance", self.distance),
            ("--elevation", "cameras.elevation_deg", self.elevation_deg),
        ):
            if value is not None and (problem := key_problem(key, value)):
                raise WarpsdfError(f"{option} {value:g}: {problem}")
        if self.resolution is not None and (problem := resolution_problem(self.resolution)):
            raise WarpsdfError(f"--resolution {self.resolution}: {problem}")

    @property
    def moves_eye(self) -> bool:
        return any(v is not None for v in (self.azimuth_deg, self.elevation_deg, self.distance))


def _apply_lens(camera: Camera, request: ViewRequest) -> Camera:
    if request.resolution is not None:
        camera = camera.with_resolution(*request.resolution)
    if request.fov_deg is not None:
        camera = camera.with_fov(request.fov_deg)
    return camera


def view_camera(
    scene: Scene,
    request: ViewRequest,
    azimuth_offset_deg: float = 0.0,
    base: Camera | None = None,
) -> Camera:
    """The scene's first training camera (or ``base``); when azimuth, elevation or
    distance are given (or an azimuth offset is asked for), a camera on the
    sphere around that camera's target, keeping its values for what is not given."""
    base = base or training_cameras(scene)[0]
    if request.moves_eye or azimuth_offset_deg:
        azimuth, elevation, distance = camera_angles(base)
        base = camera_from_angles(
            (azimuth if request.azimuth_deg is None else request.azimuth_deg) + azimuth_offset_deg,
            elevation if request.elevation_deg is None else request.elevation_deg,
            distance if request.distance is None else request.distance,
            fov_deg=base.fov_deg, width=base.width, height=base.height,
            target=base.target, up=scene.cameras.up,
        )  # fmt: skip
    return _apply_lens(base, request)


def _check_suffix(out: Path, allowed: tuple[str, ...], what: str) -> None:
    if out.suffix.lower() not in allowed:
        raise OutputError(f"{out}: {what} must end in {' or '.join(allowed)}")


def save_image(out: str | Path, image: np.ndarray, mode: RenderMode) -> None:
    """.png: 8-bit display image; .npy: the raw values (mask bool, depth in world
    units with inf for misses, xyz world-space hit points with NaN for misses,
    colours as float32 in [0, 1])."""
    out = Path(out)
    _check_suffix(out, STILL_SUFFIXES, "an image")
    if out.suffix.lower() == ".npy":
        write_npy(out, image)
    else:
        write_png(out, to_uint8(to_display(image, mode)))


def render_still(
    source, scene: Scene, request: ViewRequest, mode: RenderMode, out: Path
) -> np.ndarray:
    _check_suffix(Path(out), STILL_SUFFIXES, "an image")
    image = render(source, view_camera(scene, request), mode, scene.march)
    save_image(out, image, mode)
    return image


def render_turntable(
    source, scene: Scene, request: ViewRequest, mode: RenderMode, frames: int, fps: float, out: Path
) -> None:
    """``frames`` views evenly around 360° of azimuth, as a looping GIF."""
    _check_suffix(Path(out), (".gif",), "a turntable")
    if not (math.isfinite(fps) and fps > 0):
        raise WarpsdfError(f"--fps {fps:g}: expected a finite value > 0")
    images = []
    base = training_cameras(scene)[0]  # read once, not per frame
    for k in range(frames):
        cam = view_camera(scene, request, azimuth_offset_deg=360.0 * k / frames, base=base)
        images.append(to_uint8(to_display(render(source, cam, mode, scene.march), mode)))
    write_gif(out, images, fps)


def render_cameras_to_folder(
    source, scene: Scene, cameras_json: Path, request: ViewRequest, mode: RenderMode,
    out: Path, force: bool = False,
) -> int:  # fmt: skip
    """One PNG per camera of a cameras.json, in its order, named after the
    camera's view (``NAME.png``, :class:`RenderFolder`), written atomically as
    a folder."""
    entries = read_cameras(cameras_json)
    keep = [cameras_json, scene.source] if scene.source else [cameras_json]
    with staged_dir(out, force=force, keep=keep) as stage:  # refuses before any work
        for entry in entries:
            image = render(source, _apply_lens(entry.camera, request), mode, scene.march)
            save_image(RenderFolder(stage).image(entry.name), image, mode)
    return len(entries)
