"""Render throughput: Mrays/s of a shaded render of the airplane preset (sphere
tracing an analytic SDF) and of the shipped mesh target (wp.Mesh BVH ray casts).

    python -m benchmarks.render [--device cpu|cuda|auto] [--resolution 512] [--repeat 3]

Prints one JSON object per (target, device) line. Kernel compilation and the
first launch are excluded (one warm-up render); the time is the median of
``--repeat`` full renders (ray generation, upload, trace, shade, download).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.camera import camera_from_angles  # noqa: E402
from warpsdf.render import RenderMode, render  # noqa: E402
from warpsdf.scene import load_scene  # noqa: E402
from warpsdf.targets import build_target  # noqa: E402

SCENES = Path(__file__).resolve().parents[1] / "scenes"
CASES = {"airplane": SCENES / "airplane.toml", "mesh_torus_ball": SCENES / "torus_ball.toml"}


def device_name(device: str) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo where there is one."""
    d = wp.get_device(device)
    if not d.is_cpu:
        return d.name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def benchmark_devices(choice: str) -> list[str]:
    """``all`` -> the CPU plus the first CUDA device if there is one."""
    wp.init()
    if choice == "all":
        return ["cpu"] + (["cuda:0"] if wp.get_cuda_device_count() else [])
    return [choice]


def bench(case: str, device: str, resolution: int, repeat: int) -> dict:
    scene = load_scene(CASES[case])
    target = build_target(scene, device)
    camera = camera_from_angles(35.0, 25.0, 2.6, 40.0, resolution, resolution)
    render(target.source, camera, RenderMode.SHADED, scene.march)  # compile + warm up
    times = []
    for _ in range(repeat):
        wp.synchronize_device(device)
        start = time.perf_counter()
        render(target.source, camera, RenderMode.SHADED, scene.march)
        wp.synchronize_device(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    rays = resolution * resolution
    return {
        "benchmark": "render_shaded",
        "target": case,
        "resolution": [resolution, resolution],
        "max_steps": scene.march.max_steps,
        "device": device,
        "device_name": device_name(device),
        "warp_version": wp.__version__,
        "ms_per_frame": round(seconds * 1e3, 3),
        "mrays_per_s": round(rays / seconds / 1e6, 4),
        "repeat": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    args = parser.parse_args(argv)
    for device in benchmark_devices(args.device):
        for case in args.case or sorted(CASES):
            print(json.dumps(bench(case, device, args.resolution, args.repeat)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
