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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Row:
    """One combination of the study's options (the scene's own for the rest)."""

    init: str = "random"  # model.init
    background: str = "black"  # supervision.background
    mask_term: bool = True  # the silhouette term on rays the prediction misses
    clip_back: bool = False  # march.clip_back
    gradient: str = "implicit"  # march.gradient
    activation: str = "softplus"  # model.activation
    frequencies: int = 6  # model.fourier_frequencies (a SIREN takes the coordinates: 0)

    def overrides(self) -> list[str]:
        return [
            f"model.init={self.init}", f"supervision.background={self.background}",
            SIL if self.mask_term else XYZ, f"march.clip_back={str(self.clip_back).lower()}",
            f"march.gradient={self.gradient}", f"model.activation={self.activation}",
            f"model.fourier_frequencies={self.frequencies}",
        ]  # fmt: skip

    def cells(self) -> list[str]:
        network = f"{self.init}, {self.activation}, L = {self.frequencies}"
        mask = "yes" if self.mask_term else "no"
        return [network, self.background, mask, self.gradient, str(self.clip_back).lower()]


ROWS = {
    "shipped_before": Row(init="sphere", background="none"),
    "sphere_black": Row(init="sphere"),
    "sphere_backdrop": Row(init="sphere", background="backdrop"),
    "random_none": Row(background="none"),
    "random_black": Row(),
    "random_backdrop": Row(background="backdrop"),
    "random_black_xyz_only": Row(mask_term=False),
    "random_black_clipped": Row(clip_back=True),
    # hypothesis 3: gradients through every march step
    "sphere_black_unrolled": Row(init="sphere", gradient="unrolled"),
    "sphere_black_unrolled_xyz_only": Row(init="sphere", gradient="unrolled", mask_term=False),
    "sphere_backdrop_unrolled": Row(init="sphere", background="backdrop", gradient="unrolled"),
    "sphere_backdrop_unrolled_clipped": Row(
        init="sphere", background="backdrop", gradient="unrolled", clip_back=True
    ),
    "random_black_unrolled": Row(gradient="unrolled"),
    "random_backdrop_unrolled": Row(background="backdrop", gradient="unrolled"),
    # hypothesis 4's other network: a SIREN
    "siren_none": Row(activation="sine", background="none", frequencies=0),
    "siren_black": Row(activation="sine", frequencies=0),
    "siren_backdrop": Row(activation="sine", background="backdrop", frequencies=0),
    "siren_black_xyz_only": Row(activation="sine", mask_term=False, frequencies=0),
    "siren_black_xyz_only_clipped": Row(
        activation="sine", mask_term=False, clip_back=True, frequencies=0
    ),
    "siren_black_unrolled": Row(activation="sine", gradient="unrolled", frequencies=0),
    "siren_black_clipped": Row(activation="sine", clip_back=True, frequencies=0),
}


def run_row(name: str) -> str:
    row = ROWS[name]
    scene = load_scene(SCENE, [*SMALL, *row.overrides()])
    start = time.process_time()
    fitter = Fitter.from_scene(scene, "cpu")
    loss = fitter.steps(scene.optim.iterations)[-1].loss
    seconds = time.process_time() - start
    front, side = (outside_bound_share(fitter.field, scene, az, 48) for az in (0.0, 90.0))
    c = scene.cameras
    views = [
        to_display(render(fitter.field, camera_from_angles(az, 0.0, c.distance, c.fov_deg, 64, 64),
                          RenderMode.XYZ, scene.march), RenderMode.XYZ)
        for az in (0.0, 90.0)
    ]  # fmt: skip
    OUT.mkdir(exist_ok=True)
    write_png(OUT / f"{name}.png", to_uint8(np.concatenate(views, axis=1)))
    cells = [*row.cells(), f"{front:.1%}", f"{side:.1%}", f"{loss:.3f}", f"{seconds:.0f} s"]
    return f"| {' | '.join(cells)} | ![{name}](docs/gallery/noclip_study/{name}.png) |"


if __name__ == "__main__":
    for row in sys.argv[1:] or list(ROWS):
        print(run_row(row), flush=True)
