"""The whole benchmark suite: ``python -m benchmarks [--device D] [--quick]``.

Prints one JSON line per render and fit case; ``--quick`` shrinks every case
(a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import fit, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="warpsdf benchmark suite (JSON lines)")
    parser.add_argument("--device", default="all", help="cpu, cuda or all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        render.main(["--device", args.device, "--resolution", "16", "--repeat", "1"])
        fit.main(["--device", args.device, "--iterations", "1",
                  "--override", "cameras.resolution=[8, 8]", "--override", "model.hidden=8",
                  "--override", "optim.eikonal_samples=8"])  # fmt: skip
    else:
        render.main(["--device", args.device])
        fit.main(["--device", args.device])
    return 0


if __name__ == "__main__":
    sys.exit(main())
