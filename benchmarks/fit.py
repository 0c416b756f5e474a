"""Fit throughput: iterations/s and rays/s of two fits.

    python -m benchmarks.fit [--device cpu|cuda|all] [--case spheres|mlp] [--iterations N]

* ``spheres``: the two-sphere sphere-set silhouette fit (8 views, 64x64).
* ``mlp``: a neural-SDF silhouette fit of the airplane (8 views, 128x128,
  64 march steps, width 64, depth 3, 6 Fourier frequencies).

One JSON object per (case, device) line. Kernel compilation and one warm-up
step are excluded; the time is the mean of ``--iterations`` full steps (draw,
march, taped forward, backward, Adam, and the per-step readback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from benchmarks.render import SCENES, benchmark_devices, device_name  # noqa: E402
from warpsdf.fit import Fitter  # noqa: E402
from warpsdf.scene import load_scene  # noqa: E402

CASES = {
    "spheres": (
        SCENES / "two_spheres_silhouette.toml",
        ["optim.batch_rays=0", "optim.iterations=100000"],
    ),
    "mlp": (
        SCENES / "airplane.toml",
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
            "optim.iterations=100000",
        ],
    ),
}


def bench(case: str, device: str, iterations: int, extra: list[str] | None = None) -> dict:
    path, overrides = CASES[case]
    scene = load_scene(path, overrides + list(extra or []))
    fitter = Fitter(scene, device)
    fitter.step()  # compile + warm up
    wp.synchronize_device(device)
    start = time.perf_counter()
    for _ in range(iterations):
        fitter.step()
    wp.synchronize_device(device)
    seconds = (time.perf_counter() - start) / iterations
    return {
        "benchmark": "fit",
        "case": case,
        "views": len(fitter.cameras),
        "resolution": list(scene.cameras.resolution),
        "rays_per_iteration": fitter.batch,
        "max_steps": scene.march.max_steps,
        "model": scene.model.kind.value,
        "params": fitter.field.num_params,
        "device": device,
        "device_name": device_name(device),
        "warp_version": wp.__version__,
        "iterations": iterations,
        "ms_per_iteration": round(seconds * 1e3, 3),
        "iterations_per_s": round(1.0 / seconds, 4),
        "rays_per_s": round(fitter.batch / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument(
        "--override", action="append", default=[], help="extra scene override (smoke tests)"
    )
    args = parser.parse_args(argv)
    for device in benchmark_devices(args.device):
        for case in args.case or sorted(CASES):
            print(json.dumps(bench(case, device, args.iterations, args.override)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
