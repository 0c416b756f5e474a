"""Cameras (DESIGN §2): the pinhole camera and its rays on the host
(:mod:`.core`) and on the device (:mod:`.rays`, imported on its own since it
loads Warp), the view layouts, camera shake, the held-out and showcase sets
(:mod:`.layouts`), cameras.json files (:mod:`.cameras_json`), and
transforms.json datasets (:mod:`.transforms_json`: the files; :mod:`.dataset`:
splits and the normalisation into the bound).

Every other module gets a camera or a ray from here; nothing else restates
the pixel-to-ray formula.
"""

from warpsdf.camera.cameras_json import (
    CameraEntry,
    default_view_name,
    heldout_indices,
    read_cameras,
)
from warpsdf.camera.core import Camera, camera_angles, camera_from_angles, eye_from_angles, rays_for
from warpsdf.camera.dataset import Dataset, DatasetFrame, DatasetTransform, read_dataset
from warpsdf.camera.layouts import (
    HELDOUT_TURN_DEG,
    SHOWCASE_ELEVATION_DEG,
    SHOWCASE_TURNS_DEG,
    cameras_from_config,
    fibonacci_cameras,
    fibonacci_directions,
    heldout_cameras,
    jitter_cameras,
    orbit_cameras,
    showcase_cameras,
    training_cameras,
)

__all__ = [
    "HELDOUT_TURN_DEG",
    "SHOWCASE_ELEVATION_DEG",
    "SHOWCASE_TURNS_DEG",
    "Camera",
    "CameraEntry",
    "Dataset",
    "DatasetFrame",
    "DatasetTransform",
    "camera_angles",
    "camera_from_angles",
    "cameras_from_config",
    "default_view_name",
    "eye_from_angles",
    "fibonacci_cameras",
    "fibonacci_directions",
    "heldout_cameras",
    "heldout_indices",
    "jitter_cameras",
    "orbit_cameras",
    "rays_for",
    "read_cameras",
    "read_dataset",
    "showcase_cameras",
    "training_cameras",
]
