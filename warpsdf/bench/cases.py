"""The benchmark cases and the command's defaults: data only, light to import
(the CLI reads them for its --help); :mod:`warpsdf.bench.measure` runs them."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from warpsdf.errors import WarpsdfError


def shipped_scene(name: str) -> Path:
    """A shipped scene file (``scenes/NAME`` in the repository, installed with
    the library as the package ``warpsdf.scenes``)."""
    return Path(str(importlib.resources.files("warpsdf.scenes"))) / name


FIT_CASES: dict[str, tuple[str, list[str]]] = {
    # the two-sphere sphere-set silhouette fit: 8 views at 64x64, every ray
    "spheres": ("two_spheres_silhouette.toml", ["optim.batch_rays=0"]),
    # issue 5's sphere-set goal case: 16 spheres, 8 views at 128x128, every ray
    "spheres16": (
        "two_spheres_silhouette.toml",
        [
            "optim.batch_rays=0",
            "model.count=16",
            "model.init_radius=0.15",
            "cameras.resolution=[128, 128]",
        ],
    ),
    # the neural-SDF silhouette fit: 128x128, 8 views, 64 steps, width 64, depth 3, L = 6
    "mlp": (
        "airplane.toml",
        [
            "cameras.layout='orbit'",
            "cameras.count=8",
            "cameras.elevation_deg=20.0",
            "cameras.resolution=[128, 128]",
            "march.max_steps=64",
            "model.hidden=64",
            "model.layers=3",
            "model.fourier_frequencies=6",
            "optim.batch_rays=0",
        ],
    ),
    # the missing back wall (a SIREN on one XYZ view at 64x64, every ray), and the
    # same with gradients through every march step: the naive marcher's cost
    "noclip": ("two_spheres_xyz_noclip.toml", ["optim.batch_rays=0"]),
    "noclip_unrolled": (
        "two_spheres_xyz_noclip.toml",
        ["optim.batch_rays=0", "march.gradient=unrolled"],
    ),
}


@dataclass(frozen=True)
class QuickRun:
    """``warpsdf bench --quick``: a smoke run of a few seconds that checks an
    install end to end (kernels compile and run); its numbers mean little."""

    cases: tuple[str, ...] = ("render:airplane", "fit:spheres")
    resolution: int = 64  # render size, pixels a side
    iterations: int = 2
    fit_overrides: tuple[str, ...] = ("cameras.count=2", "cameras.resolution=[16, 16]")


QUICK = QuickRun()


# The command's defaults: fit steps timed, render size (pixels a side).
DEFAULT_ITERATIONS = 5
DEFAULT_RESOLUTION = 512


class Subject(StrEnum):
    """What a render case renders."""

    TARGET = "target"  # the scene's target
    MODEL = "model"  # the scene's model at its initial state


# name -> (scene, overrides, what is rendered)
RENDER_CASES: dict[str, tuple[str, list[str], Subject]] = {
    "airplane": ("airplane.toml", [], Subject.TARGET),
    "mesh_torus_ball": ("torus_ball.toml", [], Subject.TARGET),
    # the fit case's neural SDF (width 64, depth 3, L = 6) at its geometric
    # initialisation: a sphere of radius 0.5
    "neural_init": ("airplane.toml", FIT_CASES["mlp"][1], Subject.MODEL),
}


class CaseKind(StrEnum):
    """The two kinds of benchmark (a case is named ``KIND:NAME``)."""

    RENDER = "render"
    FIT = "fit"


def all_cases() -> list[str]:
    """Every case name, ``render:NAME`` then ``fit:NAME``."""
    return [f"{CaseKind.RENDER}:{c}" for c in RENDER_CASES] + [
        f"{CaseKind.FIT}:{c}" for c in FIT_CASES
    ]


def parse_case(text: str) -> tuple[CaseKind, str]:
    """``KIND:NAME`` -> (kind, name); one line listing every case if unknown."""
    known = all_cases()
    if text not in known:
        raise WarpsdfError(f"--case {text!r}: expected one of {', '.join(known)}")
    kind, name = text.split(":")
    return CaseKind(kind), name
