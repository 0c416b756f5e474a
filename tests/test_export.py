"""Mesh extraction (:mod:`warpsdf.export`): the narrow-band lattice against the
full lattice. For fields within the Lipschitz bound (analytic SDFs) the band
gives the very same mesh; for any field every lattice value has the right
sign, and the values next to the surface are exact."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SCENES
from tests.helpers import sphere_specs
from warpsdf.export import extract_mesh, field_grid
from warpsdf.fields.analytic import AnalyticField
from warpsdf.fields.factory import make_field
from warpsdf.scene import ShapeSpec, ShapeType, load_scene
from warpsdf.targets import build_target


def random_shapes(rng: np.random.Generator) -> AnalyticField:
    """Two to four spheres and boxes in the bound, joined by union."""
    specs = []
    for _ in range(rng.integers(2, 5)):
        center = tuple(float(c) for c in rng.uniform(-0.45, 0.45, 3))
        if rng.random() < 0.5:
            specs.append(
                ShapeSpec(ShapeType.SPHERE, center=center, radius=float(rng.uniform(0.05, 0.3)))
            )
        else:
            size = tuple(float(c) for c in rng.uniform(0.03, 0.25, 3))
            rot = tuple(float(c) for c in rng.uniform(-90, 90, 3))
            specs.append(ShapeSpec(ShapeType.BOX, center=center, rotation_deg=rot, half_size=size))
    return AnalyticField(specs, device="cpu")


def fields():
    rng = np.random.default_rng(4)
    yield (
        "two_spheres",
        AnalyticField(
            sphere_specs((((-0.35, 0.0, 0.0), 0.3), ((0.4, 0.1, 0.0), 0.25))), device="cpu"
        ),
    )
    yield "airplane", build_target(load_scene(SCENES / "airplane.toml"), "cpu").source
    for k in range(3):
        yield f"random{k}", random_shapes(rng)


@pytest.mark.parametrize("resolution", [37, 64, 90])
def test_narrow_band_mesh_is_the_full_lattice_mesh_for_sdfs(resolution):
    for name, field in fields():
        full = field_grid(field, resolution, 1.0, narrow_band=False)
        band = field_grid(field, resolution, 1.0)
        np.testing.assert_array_equal(band > 0, full > 0, err_msg=name)
        step = 2.0 / (resolution - 1)
        near = np.abs(full) <= 1.5 * step
        np.testing.assert_array_equal(band[near], full[near], err_msg=name)
        # every cell the surface crosses has exact corners: the same mesh
        v_full, f_full = extract_mesh(field, resolution, 1.0, narrow_band=False)
        v_band, f_band = extract_mesh(field, resolution, 1.0)
        assert len(f_full) > 0, name
        np.testing.assert_array_equal(f_band, f_full, err_msg=name)
        np.testing.assert_array_equal(v_band, v_full, err_msg=name)


def test_a_steep_field_keeps_every_sign():
    """A freshly initialised MLP with many Fourier frequencies is far steeper
    than an SDF: blocks whose corners differ in sign are still evaluated, so
    no lattice point changes sign."""
    scene = load_scene(SCENES / "airplane.toml", ["model.fourier_frequencies=8", "model.hidden=16"])
    field = make_field(scene, np.random.default_rng(1), "cpu")
    full = field_grid(field, 72, 1.0, narrow_band=False)
    band = field_grid(field, 72, 1.0)
    assert (full < 0).any() and (full > 0).any()
    np.testing.assert_array_equal(band > 0, full > 0)


def test_sphere_mesh_vertices_lie_on_the_sphere():
    field = AnalyticField(sphere_specs((((0.1, -0.05, 0.02), 0.42),)), device="cpu")
    for resolution in (48, 96):
        vertices, faces = extract_mesh(field, resolution, 1.0)
        r = np.linalg.norm(vertices - np.float32([0.1, -0.05, 0.02]), axis=1)
        step = 2.0 / (resolution - 1)
        assert np.abs(r - 0.42).max() < 0.25 * step**2 / 0.42 + 1e-5  # linear interpolation error
        assert faces.max() < len(vertices)
