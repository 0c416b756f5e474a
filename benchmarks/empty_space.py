"""Would empty-space skipping pay? March samples that fall in empty occupancy cells.

    python -m benchmarks.empty_space [--resolution 128] [--grids 32 64 128]

Issue 11 asks for empty-space skipping from an occupancy grid refreshed every
k steps (as nerfacc / instant-ngp do), or a measurement showing it does not
pay. This is the measurement, on the ``mlp`` fit case's rays (the airplane, 8
orbit views, ``max_steps`` 64; warpsdf/bench/cases.py) for three fields: the
MLP at its geometric initialisation (a sphere of radius 0.5: where every fit
starts), the same after the fit's first ``--steps`` steps (the state the fit
benchmark times) and the airplane's exact SDF (where a good fit ends).

A host replica of the silhouette march (``Polish.NONE``: the samples the fit's
march takes, the same rule, checked against the kernel's evaluation count)
records every sample. A cell of a G^3 occupancy grid over the bound's cube is
*occupied* when |f| at its centre is at most its half-diagonal (exact for an
SDF with |grad f| <= 1; a fit's grid would also need a margin for the field
moving between refreshes: ``dilate`` 1 grows the occupied cells by one; the
MLP is no exact SDF, so the test is scaled by its steepest slope between
neighbouring centres, ``slope``, where that exceeds 1). Per grid and
dilation, one JSON line:

* ``empty_sample_share``: the share of march evaluations whose sample lies in
  an empty cell: what a skipping march saves at best (free cell traversal, no
  refresh cost);
* ``empty_only_rays``: rays whose every sample lies in empty cells. A NeRF
  skips them outright; a silhouette fit cannot: its soft mask needs each ray's
  least SDF, and a ray on the target that the prediction misses is exactly the
  ray the loss must pull the surface towards. Keeping one evaluation for each
  of them gives ``saving_keeping_silhouettes`` (as if its least-SDF point were
  known without marching it: an upper bound); marching them as now and
  skipping only the empty samples of the other rays gives
  ``saving_marching_empty_rays`` (the loss then changes only for a ray whose
  least SDF lies in an empty cell although the ray reaches an occupied one);
* ``refresh_evals_per_step_k16``: G^3 evaluations per refresh spread over 16
  steps, in march evaluations per ray, to set against the saving.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.bench.measure import fit_case  # noqa: E402
from warpsdf.camera import rays_for  # noqa: E402
from warpsdf.march import FAR_SDF, Polish, march  # noqa: E402
from warpsdf.targets import build_target  # noqa: E402


def bound_interval(o: np.ndarray, d: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit distances of unit rays through the bound (march.bound_interval)."""
    b = np.einsum("ij,ij->i", o, d)
    c = np.einsum("ij,ij->i", o, o) - radius * radius
    disc = b * b - c
    s = np.sqrt(np.maximum(disc, 0.0))
    enter, leave = np.maximum(-b - s, 0.0), -b + s
    miss = (disc <= 0.0) | (leave <= 0.0)
    return np.where(miss, 1.0, enter), np.where(miss, 0.0, leave)


def march_samples(field, o: np.ndarray, d: np.ndarray, config) -> tuple[list, np.ndarray]:
    """Every sample of the silhouette march (clip_back; no polish): a list of
    (ray ids, points, values) per step, and each ray's evaluation count."""
    t, far = bound_interval(o, d, config.bound_radius)
    active = np.flatnonzero(t <= far)
    evals = np.zeros(len(o), np.int64)
    steps = []
    for _ in range(config.max_steps):
        if active.size == 0:
            break
        points = (o[active] + d[active] * t[active, None]).astype(np.float32)
        f = field.values(points).astype(np.float64)
        steps.append((active, points, f))
        evals[active] += 1
        go = f >= config.hit_epsilon
        t[active[go]] += f[go]
        active = active[go][t[active[go]] <= far[active[go]]]
    return steps, evals


def occupancy(field, g: int, radius: float, dilate: int) -> tuple[np.ndarray, float]:
    """(g, g, g) bool: cells of the bound's cube whose centre is within half a
    diagonal of the surface, scaled by the field's steepest slope between
    neighbouring centres (at least 1: an SDF's), then grown by ``dilate`` cells
    (room for the field to move between refreshes). Also returns that slope."""
    h = 2.0 * radius / g
    c = -radius + h * (np.arange(g) + 0.5)
    centres = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    f = field.values(centres.astype(np.float32)).reshape(g, g, g).astype(np.float64)
    slope = max(float(np.abs(np.diff(f, axis=a)).max()) / h for a in range(3))
    occ = np.abs(f) <= 0.5 * math.sqrt(3.0) * h * max(slope, 1.0)
    for _ in range(dilate):
        grown = occ.copy()
        for a in range(3):
            for shift in (1, -1):
                grown |= np.roll(occ, shift, axis=a)  # the cube's faces are empty space
        occ = grown
    return occ, slope


def measure(name: str, field, o, d, config, grids, kernel_evals: float | None) -> list[dict]:
    steps, evals = march_samples(field, o, d, config)
    rays, total = len(o), int(evals.sum())
    lines = []
    for g, dilate in ((g, dilate) for g in grids for dilate in (0, 1)):
        occ, slope = occupancy(field, g, config.bound_radius, dilate)
        touched = np.zeros(rays, bool)
        empty_per_ray = np.zeros(rays, np.int64)
        for ids, points, _f in steps:
            cell = (points + config.bound_radius) / (2 * config.bound_radius) * g
            inside = occ[tuple(np.clip(cell, 0, g - 1).astype(np.int64).T)]
            touched[ids[inside]] = True
            np.add.at(empty_per_ray, ids[~inside], 1)
        empty = int(empty_per_ray.sum())
        marched = evals > 0
        empty_only = int((marched & ~touched).sum())
        line = {
            "benchmark": "empty_space",
            "field": name,
            "rays": rays,
            "grid": g,
            "dilate": dilate,
            "slope": round(slope, 3),
            "occupied_cells": round(float(occ.mean()), 4),
            "march_evals_per_ray": round(total / rays, 3),
            "empty_sample_share": round(empty / total, 3),
            "empty_only_rays": round(empty_only / rays, 3),
            "saving_keeping_silhouettes": round((empty - empty_only) / total, 3),
            "saving_marching_empty_rays": round(int(empty_per_ray[touched].sum()) / total, 3),
            "refresh_evals_per_step_k16": round(g**3 / 16 / rays, 3),
        }
        if kernel_evals is not None:
            line["kernel_march_evals_per_ray"] = round(kernel_evals, 3)
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128, help="pixels a side per view")
    parser.add_argument("--grids", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--steps", type=int, default=4, help="fit steps before the second MLP")
    args = parser.parse_args(argv)
    res = args.resolution
    fitter = fit_case("mlp", "cpu", [f"cameras.resolution=[{res}, {res}]"])
    config = fitter.scene.march
    o, d = (a.astype(np.float64) for a in rays_for(fitter.cameras))
    wo, wd = (wp.array(a.astype(np.float32), dtype=wp.vec3, device="cpu") for a in (o, d))

    def kernel_evals() -> float:
        hits = march(fitter.field, wo, wd, config, polish=Polish.NONE)
        assert (hits.min_sdf.numpy() != FAR_SDF).any()
        return float(hits.evals.numpy().mean())

    def lines(name: str, field, evals: float | None):
        for line in measure(name, field, o, d, config, args.grids, evals):
            print(json.dumps(line), flush=True)

    lines("mlp_init", fitter.field, kernel_evals())
    fitter.steps(args.steps)  # the state the fit benchmark times (its steps 3-4)
    lines(f"mlp_after_{args.steps}_steps", fitter.field, kernel_evals())
    lines("airplane_exact", build_target(fitter.scene, "cpu").source, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
