"""warpsdf: fit signed distance functions to images with a differentiable
sphere marcher in NVIDIA Warp, and render the results.

The public names are imported lazily, so ``import warpsdf`` is cheap and does
not initialise Warp (the CLI sets Warp's options first).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Camera": "warpsdf.camera",
    "camera_from_angles": "warpsdf.camera",
    "WarpsdfError": "warpsdf.errors",
    "RenderMode": "warpsdf.render",
    "render": "warpsdf.render",
    "Scene": "warpsdf.scene",
    "load_scene": "warpsdf.scene",
    "build_target": "warpsdf.targets",
    "fit": "warpsdf.fit",
    "load_run": "warpsdf.fit",
    "Fitter": "warpsdf.fit",
    "target_views": "warpsdf.targets",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401
    from warpsdf.camera import Camera, camera_from_angles
    from warpsdf.errors import WarpsdfError
    from warpsdf.fit import Fitter, fit, load_run
    from warpsdf.render import RenderMode, render
    from warpsdf.scene import Scene, load_scene
    from warpsdf.targets import build_target, target_views


def __getattr__(name: str) -> Any:
    if name == "fit":  # the package warpsdf.fit, callable as the function fit()
        return importlib.import_module("warpsdf.fit")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'warpsdf' has no attribute {name!r}")
