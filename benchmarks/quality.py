"""Time to quality: held-out IoU against fitting time for each field kind and
the PyTorch peer, next to the visual hull of the same masks (issue 11).

    python -m benchmarks.quality [--device cpu|cuda] [--budget 60] [--resolution 128]
                                 [--views 24] [--heldout 8] [--targets airplane,cup,...]
                                 [--kinds mlp,grid,hashgrid,peer] [--clock wall|cpu] [--quick]

One JSON line per target and way of fitting (and one for the hull): the curve
of (fitting seconds, held-out IoU), the seconds to reach 95% and 99% of the
hull's held-out IoU (null: not reached), and the final held-out IoU,
Chamfer-L1 and F-score against the target surface. ``--quick`` is a smoke run
of a few seconds (tiny images, one target, short budgets): its numbers mean
little. ``--clock cpu`` counts the CPU time of the process (all its threads)
instead of wall-clock time: on a machine shared with other work, the work a
run did rather than its wait for a core. The peer needs torch (``pip install
torch``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import warp as wp

wp.config.log_level = wp.LOG_WARNING

from warpsdf.bench.measure import device_name  # noqa: E402
from warpsdf.bench.quality import (  # noqa: E402
    CLOCKS,
    HULL_FRACTIONS,
    QUALITY_TARGETS,
    Run,
    budgeted,
    hull_run,
    judge_for,
    quality_scene,
    warpsdf_run,
)
from warpsdf.fields.factory import field_from_params  # noqa: E402

KINDS = ("mlp", "grid", "hashgrid", "peer")
QUICK = {
    "budget": 1.0, "resolution": 16, "views": 6, "heldout": 2, "hull_resolution": 32,
    "mesh_resolution": 48,
}  # fmt: skip


def peer_run(scene, judge, budget_s: float, device: str, clock=CLOCKS["wall"]) -> Run:
    """The PyTorch peer of the mlp fit, its schedules set to end with the budget."""
    import dataclasses

    from benchmarks.torch_peer import TorchPeer
    from warpsdf.fit import Fitter

    def peer_for(iterations: int) -> TorchPeer:
        optim = dataclasses.replace(scene.optim, iterations=iterations)
        fitter = Fitter.from_scene(scene.replace(optim=optim), device)
        return TorchPeer(fitter, "cuda" if device.startswith("cuda") else "cpu")

    probe = peer_for(10**6)
    probe.step()  # warm up
    start = clock()
    probe.step()
    per_step = clock() - start
    peer = peer_for(max(1, int(budget_s / per_step)))

    def current():
        params = peer.field.params.detach().cpu().numpy()
        return field_from_params(peer.scene, params, device)

    def step() -> int:
        peer.step()
        return 1

    return budgeted(step, current, judge, budget_s, "peer", clock=clock)


def line(target: str, run: Run, hull: Run | None, args, device: str) -> dict:
    out = {
        "benchmark": "quality",
        "target": target,
        "kind": run.kind,
        "device": device,
        "device_name": device_name(device),
        "resolution": args.resolution,
        "views": args.views,
        "heldout_views": args.heldout,
        "budget_s": args.budget if run.kind != "hull" else None,
        "clock": args.clock,
        "seconds": run.seconds,
        "iterations": run.iterations,
        "curve": run.curve,
        **{k: v for k, v in run.scores.items()},
    }
    if hull is not None and run.kind != "hull" and hull.scores.get("heldout_iou"):
        level = hull.scores["heldout_iou"]
        for frac in HULL_FRACTIONS:
            out[f"seconds_to_{round(frac * 100)}pct_hull"] = run.time_to(frac * level)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=60.0, help="fitting seconds per run")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--heldout", type=int, default=8)
    parser.add_argument("--hull-resolution", type=int, default=192)
    parser.add_argument("--mesh-resolution", type=int, default=256, help="meshes scored")
    parser.add_argument("--targets", default=",".join(QUALITY_TARGETS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--work", default=".quality", help="folder for the built meshes")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="fitting seconds: wall-clock, or the process's CPU time")  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KIND:SECTION.KEY=VALUE",
        help="an override of one kind's scene, e.g. grid:optim.lr=0.01",
    )  # fmt: skip
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        targets = targets[:1]
    device = args.device
    overrides: dict[str, dict[str, dict]] = {}
    for item in args.set:
        kind, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(kind, {}).setdefault(section, {})[name] = json.loads(value)
    work = Path(args.work)
    for target in targets:
        base = quality_scene(target, "mlp", work, args.resolution, args.views, args.heldout)
        judge = judge_for(base, device, args.mesh_resolution)
        hull = hull_run(base, judge, device, args.hull_resolution)
        print(json.dumps(line(target, hull, None, args, device)), flush=True)
        for kind in args.kinds.split(","):
            model_kind = "mlp" if kind == "peer" else kind
            scene = quality_scene(target, model_kind, work, args.resolution, args.views,
                                  args.heldout, overrides.get(kind))  # fmt: skip
            clock = CLOCKS[args.clock]
            if kind == "peer":
                run = peer_run(scene, judge, args.budget, device, clock)
            else:
                run = warpsdf_run(scene, judge, args.budget, device, clock=clock)
            print(json.dumps(line(target, run, hull, args, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
