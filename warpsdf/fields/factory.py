"""Building a scene's model: a field at its initial state, or from the flat
parameters of a checkpoint. The one place that maps ``[model] kind`` to a
field class."""

from __future__ import annotations

import numpy as np

from warpsdf.errors import WarpsdfError
from warpsdf.fields.base import Field
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import geometric_init, num_params
from warpsdf.fields.spheres import SPHERE_RECORD, SphereSetField, grid_centers, random_centers
from warpsdf.scene import ModelInit, ModelKind, Scene


def make_field(scene: Scene, rng: np.random.Generator, device=None) -> Field:
    """The scene's model at its initial state (draws from ``rng``: random sphere
    centres, or the MLP's geometric initialisation)."""
    m = scene.model
    if m.kind is ModelKind.SPHERES:
        half = 0.5 * scene.march.bound_radius
        if m.init is ModelInit.RANDOM:
            centers = random_centers(m.count, half, rng)
        else:
            centers = grid_centers(m.count, half)
        params = np.column_stack([centers, np.full(m.count, m.init_radius)])
    else:
        params = geometric_init(m.fourier_frequencies, m.hidden, m.layers, m.init_radius, rng)
    return field_from_params(scene, params, device)


def expected_params(scene: Scene) -> int:
    """How many flat parameters the scene's model has."""
    m = scene.model
    if m.kind is ModelKind.SPHERES:
        return SPHERE_RECORD * m.count
    return num_params(m.fourier_frequencies, m.hidden, m.layers)


def check_param_count(scene: Scene, count: int, source: str = "the checkpoint") -> None:
    """One line naming ``source`` unless it holds as many parameters as the
    scene's model has."""
    expected = expected_params(scene)
    if count != expected:
        raise WarpsdfError(
            f"{source}: has {count} parameters but the scene's [model] needs {expected} "
            "(was [model] changed?)"
        )


def field_from_params(
    scene: Scene, params: np.ndarray, device=None, source: str = "the checkpoint"
) -> Field:
    """The scene's model with these flat parameters (its initial state, or the
    checkpoint ``source``'s)."""
    m = scene.model
    params = np.asarray(params, np.float32).reshape(-1)
    check_param_count(scene, params.size, source)
    if m.kind is ModelKind.SPHERES:
        p = params.reshape(-1, SPHERE_RECORD)
        return SphereSetField(p[:, :3], p[:, 3], m.smooth_k, device=device)
    return MLPField(
        params, m.fourier_frequencies, m.hidden, m.layers, device=device, kernels=m.kernels
    )
