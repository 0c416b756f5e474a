"""warpsdf against its PyTorch peer, same process, same device, same scene.

    python -m benchmarks.peer [--device cpu|cuda] [--case NAME]... [--iterations N]
                              [--override section.key=value]...

The cases are the fit cases the peer implements (:data:`PEER_CASES`: not the
missing back wall's, whose whole-image xyz term and unrolled march it lacks).

One JSON line per case: ms per iteration of each and the speed-up of warpsdf
over the peer (peer time / warpsdf time). Needs torch (``pip install torch``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.bench import DEFAULT_ITERATIONS  # noqa: E402
from warpsdf.bench.measure import device_name, fit_case  # noqa: E402

# the fit cases the peer implements (benchmarks.torch_peer.peer_problem)
PEER_CASES = ("mlp", "spheres", "spheres16")


def compare(case: str, device: str, iterations: int, extra: list[str]) -> dict:
    import torch

    from benchmarks.torch_peer import TorchPeer

    fitter = fit_case(case, device, extra)
    scene = fitter.scene
    peer = TorchPeer(fitter, "cuda" if device.startswith("cuda") else "cpu")

    def timed(step, calls: int) -> float:
        """ms per call of ``step``, after one warm-up call."""
        step()  # warm up (compilation, allocator)
        wp.synchronize_device(device)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            step()
        wp.synchronize_device(device)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / calls * 1e3

    # warpsdf as a fit runs it: chunks of steps, no readback inside (graph
    # replay on CUDA); the warm-up chunk compiles and captures
    warp_ms = timed(lambda: fitter.steps(iterations), 1) / iterations
    torch_ms = timed(peer.step, iterations)
    return {
        "benchmark": "peer",
        "case": case,
        "resolution": list(scene.cameras.resolution),
        "views": len(fitter.cameras),
        "device": device,
        "device_name": device_name(device),
        "warp_version": wp.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "iterations": iterations,
        "warpsdf_ms_per_iteration": round(warp_ms, 3),
        "torch_ms_per_iteration": round(torch_ms, 3),
        "speedup_over_torch": round(torch_ms / warp_ms, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--case", choices=PEER_CASES, action="append")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument("--override", action="append", default=[])
    args = parser.parse_args(argv)
    for case in args.case or PEER_CASES:
        print(json.dumps(compare(case, args.device, args.iterations, args.override)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
