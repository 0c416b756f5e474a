"""Random sampling on the host (numpy): the one uniform-in-a-ball draw that
camera shake, the eikonal samples and random sphere-set centres share."""

from __future__ import annotations

import numpy as np


def random_in_ball(rng: np.random.Generator, count: int, radius: float) -> np.ndarray:
    """``count`` points drawn uniformly from the ball of ``radius`` around the
    origin, (count, 3) float64: a normal direction (``rng.normal``, 3 per
    point), then a radius ``radius * rng.uniform() ** (1/3)`` (1 per point).
    Camera shake, the eikonal samples and random sphere centres draw here."""
    v = rng.normal(size=(count, 3))
    v *= (
        radius
        * rng.uniform(size=(count, 1)) ** (1.0 / 3.0)
        / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    )
    return v
