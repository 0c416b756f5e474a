"""Fit throughput: iterations/s, rays/s, the per-phase split, peak memory and
the FLOP floor of the fit cases (warpsdf/bench/cases.py: spheres, spheres16,
mlp, noclip, noclip_unrolled).

    python -m benchmarks.fit [--device cpu|cuda|all] [--case NAME]... [--iterations N]
                             [--peak-gflops G] [--override section.key=value]...

One JSON object per (case, device) line.
"""

from __future__ import annotations

import argparse
import json
import sys

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.bench import DEFAULT_ITERATIONS, FIT_CASES  # noqa: E402
from warpsdf.bench.measure import bench_fit, devices  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", help="cpu, cuda or all")
    parser.add_argument("--case", choices=sorted(FIT_CASES), action="append")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument(
        "--peak-gflops", type=float, default=None, help="peak FP32 GFLOP/s for the floor"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="extra scene override (smoke tests)"
    )
    args = parser.parse_args(argv)
    for device in devices(args.device):
        for case in args.case or sorted(FIT_CASES):
            line = bench_fit(case, device, args.iterations, args.override, args.peak_gflops)
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
