"""Schedules of a fit: the learning rate and the soft-mask sharpness of every
iteration, on the host (log rows, references) and as device arrays that the
optimiser and the loss kernels read at the device iteration counter (so a
captured graph replays each step with its own values)."""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpsdf.scene import Scene, Schedule


def progress(scene: Scene, iteration: int) -> float:
    """How far through the planned iterations ``iteration`` (0-based) is, in [0, 1]."""
    return min(iteration / max(scene.optim.iterations - 1, 1), 1.0)


def learning_rate(scene: Scene, iteration: int) -> float:
    """The scheduled learning rate at ``iteration`` (0-based)."""
    o = scene.optim
    if o.schedule is Schedule.COSINE:
        floor = o.lr * o.lr_final_ratio
        return floor + 0.5 * (o.lr - floor) * (1.0 + math.cos(math.pi * progress(scene, iteration)))
    if o.schedule is Schedule.STEP:
        return o.lr * o.step_gamma ** (iteration // o.step_every)
    return o.lr


def mask_alpha(scene: Scene, iteration: int) -> float:
    """Soft-mask sharpness (1/world units), annealed geometrically from start to end."""
    a0, a1 = scene.optim.mask_alpha
    return a0 * (a1 / a0) ** progress(scene, iteration)


class DeviceSchedules:
    """``lr`` and ``alpha``: (S,) float32 device arrays, the learning rate and
    the mask sharpness of iterations [0, S)."""

    def __init__(self, scene: Scene, device):
        self.scene = scene
        self.device = device
        self.length = 0
        self.lr: wp.array | None = None
        self.alpha: wp.array | None = None

    def ensure(self, length: int) -> bool:
        """Cover iterations [0, length), growing (at least doubling) when a fit
        runs past the end. Returns whether the arrays were replaced (a captured
        graph that read the old ones must then be dropped)."""
        if length <= self.length:
            return False
        n = max(length, 2 * self.length)
        lr = np.array([learning_rate(self.scene, i) for i in range(n)], np.float32)
        alpha = np.array([mask_alpha(self.scene, i) for i in range(n)], np.float32)
        self.lr = wp.array(lr, dtype=float, device=self.device)
        self.alpha = wp.array(alpha, dtype=float, device=self.device)
        self.length = n
        return True


def resume_note(saved: Scene, scene: Scene, iteration: int) -> str:
    """What a resume at ``iteration`` (0-based, the checkpoint's) changes in the
    schedules, or ``""``: the learning rate and mask sharpness always follow the
    resumed scene's ``optim.iterations``, so a new total stretches (or squeezes)
    them from the resume point on."""
    old, new = saved.optim.iterations, scene.optim.iterations
    if old == new:
        return ""
    a0, a1 = mask_alpha(saved, iteration), mask_alpha(scene, iteration)
    l0, l1 = learning_rate(saved, iteration), learning_rate(scene, iteration)
    return (
        f"the schedules now run to {new} iterations instead of {old}: at iteration "
        f"{iteration} the mask sharpness goes {a0:.4g} -> {a1:.4g} and the learning rate "
        f"{l0:.4g} -> {l1:.4g}"
    )
