"""The renderer (:mod:`warpsdf.render`) against closed forms (STYLE "Tests,
in layers" 1): every render mode agrees with exact ray–sphere hits, the back
wall of the bounding sphere shows through the mask and depth modes as the
march config says, and a render split into tiles equals one launch. Sphere
tracing itself is tests/test_march.py's subject. Every test takes the
``device`` fixture.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import (
    BACK_WALL_EYE,
    BACK_WALL_SPHERES,
    DEPTH_TOL,
    TWO_SPHERES,
    XYZ_TOL,
    back_wall_pixels,
    exact_hits,
    sphere_specs,
)
from warpsdf.camera import Camera
from warpsdf.fields.analytic import AnalyticField
from warpsdf.render import RenderMode, render, to_display
from warpsdf.scene import MarchConfig, ShapeSpec, ShapeType

# ---------------------------------------------------------------------------
# Render modes agree with the march
# ---------------------------------------------------------------------------


def test_render_modes_agree_with_exact_hits(device):
    field = AnalyticField(sphere_specs(TWO_SPHERES), device=device)
    cam = Camera((0.2, 0.3, 2.4), width=40, height=32)
    origins, dirs = cam.rays()
    ex = exact_hits(origins, dirs, TWO_SPHERES)
    shape = (32, 40)
    keep = (np.isfinite(ex["t"]) & ~ex["graze"]).reshape(shape)
    mask = render(field, cam, RenderMode.MASK)
    depth = render(field, cam, RenderMode.DEPTH)
    xyz = render(field, cam, RenderMode.XYZ)
    normals = render(field, cam, RenderMode.NORMALS)
    shaded = render(field, cam, RenderMode.SHADED)
    np.testing.assert_allclose(depth[keep], ex["t"].reshape(shape)[keep], atol=DEPTH_TOL)
    p = origins + np.where(np.isfinite(ex["t"]), ex["t"], 0)[:, None] * dirs
    # xyz: raw world-space hit points, NaN exactly where the mask is off
    np.testing.assert_allclose(xyz[keep], p.reshape(32, 40, 3)[keep], atol=XYZ_TOL)
    np.testing.assert_array_equal(np.isnan(xyz).any(axis=2), ~mask)
    np.testing.assert_array_equal(np.isnan(xyz).all(axis=2), ~mask)
    shown = to_display(xyz, RenderMode.XYZ)  # the colour code: (clip(p) + 1) / 2, misses black
    np.testing.assert_allclose(shown[keep], (np.clip(p.reshape(32, 40, 3)[keep], -1, 1) + 1) / 2,
                               atol=XYZ_TOL / 2)  # fmt: skip
    assert (shown[~mask] == 0).all() and (normals[~mask] == 0).all()
    assert ((normals >= 0) & (normals <= 1)).all()
    assert shaded.shape == (32, 40, 3) and ((shaded >= 0) & (shaded <= 1)).all()
    # The shaded object differs from its background.
    assert np.abs(shaded[mask].mean(0) - shaded[~mask].mean(0)).max() > 0.1


# ---------------------------------------------------------------------------
# The back wall of the bounding sphere
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("clip_back", [True, False])
def test_back_wall_through_render_modes(device, clip_back):
    field = AnalyticField(sphere_specs(BACK_WALL_SPHERES), device=device)
    cam = Camera(BACK_WALL_EYE, width=32, height=32)
    px = back_wall_pixels(cam)
    config = MarchConfig(clip_back=clip_back)
    mask = render(field, cam, RenderMode.MASK, config)
    depth = render(field, cam, RenderMode.DEPTH, config)
    assert mask.dtype == bool and mask.shape == (32, 32)
    np.testing.assert_array_equal(np.isfinite(depth), mask)
    only_far = (px["only_far"] & ~px["graze"]).reshape(32, 32)
    assert only_far.sum() > 100
    if clip_back:
        assert not mask[only_far].any()
    else:
        assert mask[only_far].all()


# ---------------------------------------------------------------------------
# Tiles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(RenderMode))
def test_tiled_render_equals_one_launch(device, mode):
    """A render split into tiles of a few rows gives exactly the one-launch image."""
    field = AnalyticField([ShapeSpec(type=ShapeType.SPHERE, center=(0.1, 0.05, 0.0), radius=0.4)],
                          device=device)  # fmt: skip
    camera = Camera((0.3, 0.4, 2.5), width=19, height=23)
    whole = render(field, camera, mode, MarchConfig(), tile_rays=10**9)
    tiled = render(field, camera, mode, MarchConfig(), tile_rays=3 * 19 + 5)  # 3 rows a tile
    np.testing.assert_array_equal(tiled, whole)
