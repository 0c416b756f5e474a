"""Benchmarks: speed, memory and work counts of renders and fits (DESIGN §7).

Each benchmark returns one flat dict (a JSON line): the configuration, the
device and Warp version, iterations/s and rays/s, milliseconds per iteration
split into phases (draw, march, forward on the tape, backward, readback,
optimiser), peak memory, and a FLOP floor: the floating-point work the
iteration actually did (field evaluations counted in the march and on the
tape, times the FLOPs of one evaluation, forward and backward) over the
device's peak FP32 rate, where that rate is known.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import warp as wp

from warpsdf.bench.cases import DEFAULT_ITERATIONS, FIT_CASES, RENDER_CASES, Subject, shipped_scene
from warpsdf.camera import camera_from_angles
from warpsdf.device import resolve_device
from warpsdf.fields.factory import make_field
from warpsdf.fields.mlp import MLPField
from warpsdf.fields.mlp_core import num_inputs
from warpsdf.fields.spheres import SphereSetField
from warpsdf.fit import Fitter
from warpsdf.march import Polish, polish_for
from warpsdf.render import RenderMode, render
from warpsdf.scene import load_scene
from warpsdf.targets import build_target

# Peak FP32 (non-tensor) rates, FLOP/s, by a substring of the device name.
PEAK_FP32 = {
    "H200": 67e12,
    "H100 PCIe": 51e12,
    "H100": 67e12,
    "A100": 19.5e12,
    "L40S": 91.6e12,
    "RTX 4090": 82.6e12,
}


def devices(choice: str = "all") -> list[str]:
    """``all``: the CPU plus the first CUDA device if there is one; otherwise
    the one device ``choice`` names, checked (see :func:`resolve_device`)."""
    wp.init()
    if choice == "all":
        return ["cpu"] + (["cuda:0"] if wp.get_cuda_device_count() else [])
    return [resolve_device(choice)]


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


def peak_fp32(device: str, override_gflops: float | None = None) -> float | None:
    if override_gflops:
        return override_gflops * 1e9
    if wp.get_device(device).is_cpu:
        return None
    name = device_name(device)
    for key, rate in PEAK_FP32.items():
        if key in name:
            return rate
    return None


def peak_memory_bytes(device: str) -> int:
    """Peak device memory from Warp's pool on CUDA; the process's peak RSS on the CPU."""
    d = wp.get_device(device)
    if not d.is_cpu and wp.is_mempool_enabled(d):
        return int(wp.get_mempool_used_mem_high(d))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def eval_flops(field) -> tuple[float, float]:
    """FLOPs of one field evaluation (forward) and of its parameter backward.
    Multiply-adds count 2, a softplus or exp/log about 4."""
    if isinstance(field, MLPField):
        h, layers = field.width, field.layers
        n_in = num_inputs(field.frequencies)
        macs = n_in * h + (layers - 1) * h * h + h
        forward = 2.0 * macs + 4.0 * layers * h + 12.0 * field.frequencies
        backward = forward + 2.0 * macs + 2.0 * (layers - 1) * h * h  # recompute, dW, dx
        return forward, backward
    if isinstance(field, SphereSetField):
        n = field.count
        return 20.0 * n, 30.0 * n
    return 0.0, 0.0


def fit_case(case: str, device: str, extra: Sequence[str] | None = None) -> Fitter:
    """A Fitter for one of FIT_CASES (planned for many iterations, so the
    schedules stay at their start), with ``extra`` scene overrides."""
    scene_file, overrides = FIT_CASES[case]
    scene = load_scene(
        shipped_scene(scene_file), [*overrides, "optim.iterations=100000", *(extra or [])]
    )
    return Fitter.from_scene(scene, device)


def bench_fit(
    case: str,
    device: str,
    iterations: int = DEFAULT_ITERATIONS,
    extra: Sequence[str] | None = None,
    peak_gflops: float | None = None,
) -> dict:
    """One fit benchmark line. The headline time is one chunk of ``iterations``
    steps as a fit runs them (no readback inside, graph replay on CUDA), after a
    warm-up chunk (compilation, capture); the per-phase split and the work
    counts come from a second, profiled pass over the same steps (the state is
    restored in between; synchronised phases, no graph), since the work per
    step changes as the field does."""
    fitter = fit_case(case, device, extra)
    scene = fitter.scene
    fitter.steps(iterations)  # compile, capture, warm up
    before = fitter.state()
    wp.synchronize_device(device)
    start = time.perf_counter()
    fitter.steps(iterations)
    wp.synchronize_device(device)
    seconds = (time.perf_counter() - start) / iterations
    fitter.load_state(before)  # the profiled pass replays the same steps
    fitter.profile = True
    phases: dict[str, list[float]] = {}
    evals, backward_rays = [], []
    unrolled = fitter.buffers.unrolled  # march.gradient = "unrolled": every step's samples
    swept, swept_backward = [], []
    profiled = time.perf_counter()
    for _ in range(iterations):
        fitter.steps(1)
        for k, v in fitter.timings.items():
            phases.setdefault(k, []).append(v)
        evals.append(int(fitter.buffers.hits.evals.numpy().sum()))
        # the field's backward skips rays whose adjoint is 0 (losses.SOFT_MASK_FLOOR)
        backward_rays.append(int(np.count_nonzero(fitter.buffers.values.grad.numpy())))
        if unrolled is not None:  # the sweep's gradients, and the backward of its samples
            swept.append(int(unrolled.count.numpy().sum()))
            swept_backward.append(int(np.count_nonzero(unrolled.weights.numpy())))
    profiled = (time.perf_counter() - profiled) / iterations
    fwd, bwd = eval_flops(fitter.field)
    eikonal = 4 * scene.optim.eikonal_samples if fitter.w_eikonal > 0 else 0
    polish = polish_for(scene.supervision, scene.march.gradient)
    # taped evaluations: the rays' sample points (unless the unpolished march's
    # least SDF is reused, losses.sample_values) and the eikonal points; the
    # backward: those of them with a non-zero adjoint, and the eikonal points
    taped_forward = (fitter.batch if polish is Polish.NEWTON else 0) + eikonal
    march_evals = float(np.mean(evals))
    taped_backward = float(np.mean(backward_rays)) + eikonal
    flops = (march_evals + taped_forward) * fwd + taped_backward * bwd
    if unrolled is not None:  # the reverse sweep: a spatial gradient and a backward a sample
        grad_cost = fitter.field.functions.grad_cost
        flops += float(np.mean(swept)) * grad_cost * fwd + float(np.mean(swept_backward)) * bwd
    peak = peak_fp32(device, peak_gflops)
    line = {
        "benchmark": "fit",
        "case": case,
        "model": scene.model.kind.value,
        **kernel_info(fitter.field),
        "params": fitter.field.num_params,
        "views": len(fitter.cameras),
        "resolution": list(scene.cameras.resolution),
        "rays_per_iteration": fitter.batch,
        "max_steps": scene.march.max_steps,
        "polish": polish.name.lower(),
        "gradient": scene.march.gradient.value,
        "device": device,
        "device_name": device_name(device),
        "warp_version": wp.__version__,
        "iterations": iterations,
        "ms_per_iteration": round(seconds * 1e3, 3),
        "iterations_per_s": round(1.0 / seconds, 4),
        "rays_per_s": round(fitter.batch / seconds, 1),
        "ms_split": {k: round(statistics.mean(v), 3) for k, v in phases.items()},
        "profiled_ms_per_iteration": round(profiled * 1e3, 3),
        "graph": bool(fitter.use_graph),
        "march_evals_per_ray": round(march_evals / fitter.batch, 2),
        "backward_ray_share": round(float(np.mean(backward_rays)) / fitter.batch, 3),
        **(
            {"unrolled_samples_per_ray": round(float(np.mean(swept)) / fitter.batch, 2)}
            if unrolled is not None
            else {}
        ),
        "gflop_per_iteration": round(flops / 1e9, 4),
        "peak_memory_mb": round(peak_memory_bytes(device) / 2**20, 1),
    }
    if peak is not None:
        floor_ms = flops / peak * 1e3
        line["floor_ms"] = round(floor_ms, 4)
        line["measured_over_floor"] = round(seconds * 1e3 / floor_ms, 2)
    return line


def kernel_info(field) -> dict:
    """Which MLP kernels a field runs (empty for other fields)."""
    if not isinstance(field, MLPField):
        return {}
    return {"kernels": field.kernels.value, "block_dim": field.functions.block_dim}


def bench_render(
    case: str, device: str, width: int = 512, height: int | None = None, repeat: int = 3
) -> dict:
    """One render benchmark line: a shaded frame (read back to the host) of a
    shipped scene's target or initial model."""
    height = height or width
    scene_file, overrides, what = RENDER_CASES[case]
    scene = load_scene(shipped_scene(scene_file), overrides)
    if what is Subject.MODEL:
        source = make_field(scene, np.random.default_rng(scene.seed), device)
    else:
        source = build_target(scene, device).source
    camera = camera_from_angles(35.0, 25.0, 2.6, 40.0, width, height)
    render(source, camera, RenderMode.SHADED, scene.march)  # compile + warm up
    times = []
    for _ in range(repeat):
        wp.synchronize_device(device)
        start = time.perf_counter()
        render(source, camera, RenderMode.SHADED, scene.march)
        wp.synchronize_device(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "benchmark": "render_shaded",
        "target": case,
        **kernel_info(source),
        "resolution": [width, height],
        "max_steps": scene.march.max_steps,
        "device": device,
        "device_name": device_name(device),
        "warp_version": wp.__version__,
        "ms_per_frame": round(seconds * 1e3, 3),
        "mrays_per_s": round(width * height / seconds / 1e6, 4),
        "repeat": repeat,
        "peak_memory_mb": round(peak_memory_bytes(device) / 2**20, 1),
    }
