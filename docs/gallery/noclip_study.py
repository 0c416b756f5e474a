"""The missing-back-wall study (README "Experiments"): fits small versions of
scenes/two_spheres_xyz_noclip.toml with one option changed at a time and
prints a Markdown table row per combination (share of pixels hitting outside
the bounding sphere from the training view and from azimuth 90, final training
loss), writing a thumbnail per row (XYZ renders from azimuth 0 and 90, misses
black) into docs/gallery/noclip_study/.

    python docs/gallery/noclip_study.py [ROW ...]     # rows by name; default: all
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from warpsdf.camera import camera_from_angles
from warpsdf.fit import Fitter
from warpsdf.io.images import to_uint8, write_png
from warpsdf.metrics import outside_bound_share
from warpsdf.render import RenderMode, render, to_display
from warpsdf.scene import load_scene

ROOT = Path(__file__).resolve().parents[2]
SCENE = ROOT / "scenes" / "two_spheres_xyz_noclip.toml"
OUT = Path(__file__).resolve().parent / "noclip_study"
SMALL = ["cameras.resolution=[48, 48]", "optim.iterations=200", "optim.batch_rays=0"]
SIL = 'supervision.mode=["xyz", "silhouette"]'
XYZ = 'supervision.mode=["xyz"]'
ROWS = {  # name: (init, background, supervision modes, clip_back)
    "shipped_before": ("sphere", "none", SIL, "false"),
    "sphere_black": ("sphere", "black", SIL, "false"),
    "sphere_backdrop": ("sphere", "backdrop", SIL, "false"),
    "random_none": ("random", "none", SIL, "false"),
    "random_black": ("random", "black", SIL, "false"),
    "random_backdrop": ("random", "backdrop", SIL, "false"),
    "random_black_xyz_only": ("random", "black", XYZ, "false"),
    "random_black_clipped": ("random", "black", SIL, "true"),
}


def run_row(name: str) -> str:
    init, background, modes, clip = ROWS[name]
    overrides = [*SMALL, f"model.init={init}", f"supervision.background={background}", modes,
                 f"march.clip_back={clip}"]  # fmt: skip
    scene = load_scene(SCENE, overrides)
    start = time.perf_counter()
    fitter = Fitter.from_scene(scene, "cpu")
    loss = fitter.steps(scene.optim.iterations)[-1].loss
    seconds = time.perf_counter() - start
    front, side = (outside_bound_share(fitter.field, scene, az, 48) for az in (0.0, 90.0))
    c = scene.cameras
    views = [
        to_display(render(fitter.field, camera_from_angles(az, 0.0, c.distance, c.fov_deg, 64, 64),
                          RenderMode.XYZ, scene.march), RenderMode.XYZ)
        for az in (0.0, 90.0)
    ]  # fmt: skip
    OUT.mkdir(exist_ok=True)
    write_png(OUT / f"{name}.png", to_uint8(np.concatenate(views, axis=1)))
    sil = "yes" if modes == SIL else "no"
    return (
        f"| {init} | {background} | {sil} | {clip} | {front:.1%} | {side:.1%} | {loss:.3f} "
        f"| {seconds:.0f} s | ![{name}](docs/gallery/noclip_study/{name}.png) |"
    )


if __name__ == "__main__":
    for row in sys.argv[1:] or list(ROWS):
        print(run_row(row), flush=True)
