"""Building a scene's model: a field at its initial state, or from the flat
parameters of a checkpoint. The one place that maps ``[model] kind`` to a
field class."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from warpsdf.errors import WarpsdfError
from warpsdf.fields.base import Field
from warpsdf.fields.grid import GridField, grid_param_count, lattice_points, pack_grid
from warpsdf.fields.hash_encoding import HashGridSpec
from warpsdf.fields.hashgrid import HashGridField, hashgrid_init
from warpsdf.fields.hashgrid import num_params as hashgrid_params
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import activation_code, geometric_init, num_params, random_init
from warpsdf.fields.spheres import SPHERE_RECORD, SphereSetField, grid_centers, random_centers
from warpsdf.scene import ModelActivation, ModelInit, ModelKind, Scene


def make_field(
    scene: Scene,
    rng: np.random.Generator,
    device=None,
    init_sdf: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Field:
    """The scene's model at its initial state (draws from ``rng``: random sphere
    centres, or the MLP's geometric or SIREN initialisation). ``init_sdf`` (world
    points (N, 3) -> signed distances (N,), world units) is the shape
    ``model.init = "visual_hull"`` starts from: the carved hull's
    (:meth:`warpsdf.carve.Hull.at`, which the fit passes; this layer cannot
    carve). A grid samples it at its finest lattice; the other kinds start as
    their sphere, and the fit regresses them onto it
    (:func:`warpsdf.fit.prefit.prefit_to_sdf`)."""
    m = scene.model
    if m.init is ModelInit.VISUAL_HULL and init_sdf is None:
        raise ValueError('model.init = "visual_hull" needs init_sdf (the hull\'s signed distance)')
    if m.kind is ModelKind.SPHERES:
        half = 0.5 * scene.march.bound_radius
        if m.init is ModelInit.RANDOM:
            centers = random_centers(m.count, half, rng)
        else:
            centers = grid_centers(m.count, half)
        params = np.column_stack([centers, np.full(m.count, m.init_radius)])
    elif m.kind is ModelKind.GRID:
        if m.init is ModelInit.VISUAL_HULL:
            params = grid_params(scene, init_sdf)
        else:
            params = grid_params(scene, lambda x: np.linalg.norm(x, axis=1) - m.init_radius)
    elif m.kind is ModelKind.HASHGRID:
        params = hashgrid_init(hashgrid_spec(scene), rng)
    elif m.init is ModelInit.RANDOM or m.activation is ModelActivation.SINE:
        # a sine network (SIREN) has no sphere start: SIREN's initialisation, also
        # before a regression onto the visual hull
        code = activation_code(m.activation)
        params = random_init(m.fourier_frequencies, m.hidden, m.layers, rng, code)
    else:
        params = geometric_init(m.fourier_frequencies, m.hidden, m.layers, m.init_radius, rng)
    return field_from_params(scene, params, device)


def grid_params(scene: Scene, sdf: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A grid model's parameters at its first stage (``model.grid_resolution[0]``
    cells a side): ``sdf`` (world points (N, 3) -> signed distances (N,)) at
    the lattice points (:func:`warpsdf.fields.grid.lattice_points`)."""
    n, finest = grid_stages(scene)[0], scene.model.grid_resolution[-1]
    return pack_grid(sdf(lattice_points(n, scene.march.bound_radius)), n, finest)


def needs_prefit(scene: Scene) -> bool:
    """Whether ``model.init = "visual_hull"`` leaves the field at its sphere, for
    the fit to regress onto the hull (:func:`warpsdf.fit.prefit.prefit_to_sdf`):
    every kind but the grid, which samples it in :func:`make_field`."""
    m = scene.model
    return m.init is ModelInit.VISUAL_HULL and m.kind is not ModelKind.GRID


def grid_stages(scene: Scene) -> tuple[int, ...]:
    """A grid model's coarse-to-fine lattices: ``model.grid_resolution``, or
    only its finest for a start from the visual hull (whose detail the coarse
    lattices would lose)."""
    m = scene.model
    return (m.grid_resolution[-1],) if m.init is ModelInit.VISUAL_HULL else m.grid_resolution


def coarse_to_fine(scene: Scene) -> float:
    """The fraction of the fit over which a grid or hash grid refines: 0 (its
    finest from the start) for a start from the visual hull."""
    return 0.0 if scene.model.init is ModelInit.VISUAL_HULL else scene.model.coarse_to_fine


def hashgrid_spec(scene: Scene) -> HashGridSpec:
    """The sizes of a hashgrid model (``[model]`` hash_* keys, hidden, layers)."""
    m = scene.model
    return HashGridSpec(
        levels=m.hash_levels,
        features=m.hash_features,
        log2_size=m.hash_log2_size,
        base_resolution=m.hash_base_resolution,
        max_resolution=m.hash_max_resolution,
        width=m.hidden,
        layers=m.layers,
        bound_radius=scene.march.bound_radius,
        init_radius=m.init_radius,
    )


def expected_params(scene: Scene) -> int:
    """How many flat parameters the scene's model has."""
    m = scene.model
    if m.kind is ModelKind.SPHERES:
        return SPHERE_RECORD * m.count
    if m.kind is ModelKind.GRID:
        return grid_param_count(m.grid_resolution[-1])
    if m.kind is ModelKind.HASHGRID:
        return hashgrid_params(hashgrid_spec(scene))
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
    if m.kind is ModelKind.GRID:
        try:
            return GridField(
                params, grid_stages(scene), scene.march.bound_radius, coarse_to_fine(scene), device
            )
        except ValueError as err:  # a layout tag that is not one of the stages
            raise WarpsdfError(f"{source}: {err}") from None
    if m.kind is ModelKind.HASHGRID:
        return HashGridField(
            params, hashgrid_spec(scene), coarse_to_fine=coarse_to_fine(scene), device=device,
            kernels=m.kernels,
        )  # fmt: skip
    return MLPField(
        params, m.fourier_frequencies, m.hidden, m.layers, device=device, kernels=m.kernels,
        activation=m.activation,
    )  # fmt: skip
