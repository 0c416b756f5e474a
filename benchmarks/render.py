"""Render throughput (Mrays/s) of shaded frames of shipped targets.

    python -m benchmarks.render [--device cpu|cuda|all] [--resolution 512 | 1920x1080]
                                [--repeat 3] [--case NAME ...]

One JSON object per (target, device) line; see warpsdf/bench/cases.py.
"""

from __future__ import annotations

import argparse
import json
import sys

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.bench import DEFAULT_RESOLUTION, RENDER_CASES  # noqa: E402
from warpsdf.bench.measure import bench_render, devices  # noqa: E402
from warpsdf.cli.common import parse_resolution  # noqa: E402
from warpsdf.errors import WarpsdfError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all")
    parser.add_argument("--resolution", default=str(DEFAULT_RESOLUTION), help="N (square) or WxH")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=sorted(RENDER_CASES), action="append")
    args = parser.parse_args(argv)
    try:
        width, height = parse_resolution(args.resolution)
    except WarpsdfError as err:
        parser.error(str(err))
    for device in devices(args.device):
        for case in args.case or sorted(RENDER_CASES):
            line = bench_render(case, device, width, height, args.repeat)
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
