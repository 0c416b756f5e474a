"""Smoke tests of the benchmark suite: it runs on the CPU in a reduced mode and
prints well-formed JSON (no timing assertions: speed is judged on a GPU)."""

from __future__ import annotations

import json

from benchmarks import __main__ as suite
from benchmarks import empty_space
from benchmarks import fit as fit_bench
from benchmarks import render as render_bench
from warpsdf.bench import FIT_CASES

SPLIT = {"draw", "march", "forward", "backward", "readback", "optimizer"}


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_render_benchmark_prints_json_lines(capsys):
    assert render_bench.main(["--device", "cpu", "--resolution", "16x12", "--repeat", "1"]) == 0
    out = lines(capsys)
    assert {line["target"] for line in out} == {"airplane", "mesh_torus_ball", "neural_init"}
    for line in out:
        assert line["device"] == "cpu" and line["resolution"] == [16, 12]
        assert line["mrays_per_s"] > 0 and line["ms_per_frame"] > 0
        assert line["warp_version"] and line["device_name"] and line["peak_memory_mb"] > 0


def test_fit_benchmark_reports_split_work_and_floor(capsys):
    args = ["--device", "cpu", "--iterations", "2", "--peak-gflops", "100",
            "--override", "cameras.resolution=[8, 8]", "--override", "model.hidden=8",
            "--override", "optim.eikonal_samples=8"]  # fmt: skip
    assert fit_bench.main(args) == 0
    out = {line["case"]: line for line in lines(capsys)}
    assert set(out) == {"mlp", "spheres", "spheres16", "noclip", "noclip_unrolled"}
    for line in out.values():
        assert line["resolution"] == [8, 8] and line["rays_per_iteration"] == line["views"] * 64
        assert line["iterations_per_s"] > 0 and line["rays_per_s"] > 0
        assert set(line["ms_split"]) == SPLIT
        # the split's phases lie inside the profiled pass they were timed in (a
        # comparison with the unprofiled chunk is a timing race on a loaded machine)
        assert sum(line["ms_split"].values()) <= line["profiled_ms_per_iteration"] * 1.01 + 0.1
        assert 1 <= line["march_evals_per_ray"] <= 64 + 4 * (4 + 1) + 4
        assert line["gflop_per_iteration"] > 0 and line["floor_ms"] > 0
        assert line["measured_over_floor"] > 1  # nothing beats the floor
        assert line["profiled_ms_per_iteration"] > 0 and line["graph"] is False  # CPU default
        # silhouette-only fits and unrolled marches march without the polish
        assert line["polish"] == ("newton" if line["case"] == "noclip" else "none")
        # an unrolled march's backward goes through its samples, not the rays' values
        assert 0 < line["backward_ray_share"] <= 1 or line["case"] == "noclip_unrolled"
    assert out["mlp"]["kernels"] == "tiled" and out["mlp"]["block_dim"] == 1  # the CPU default
    assert out["mlp"]["gflop_per_iteration"] > out["spheres"]["gflop_per_iteration"]
    # the naive marcher: a spatial gradient and a backward at each of the samples it swept
    naive, implicit = out["noclip_unrolled"], out["noclip"]
    assert naive["gradient"] == "unrolled" and implicit["gradient"] == "implicit"
    assert naive["unrolled_samples_per_ray"] > 0 and "unrolled_samples_per_ray" not in implicit


def test_empty_space_measurement_prints_json_lines(capsys):
    assert empty_space.main(["--resolution", "8", "--grids", "8", "--steps", "1"]) == 0
    out = lines(capsys)
    assert [line["field"] for line in out] == [
        "mlp_init", "mlp_init", "mlp_after_1_steps", "mlp_after_1_steps",
        "airplane_exact", "airplane_exact",
    ]  # fmt: skip
    for line in out:
        assert line["rays"] == 8 * 64 and line["grid"] == 8 and line["dilate"] in (0, 1)
        assert 0 <= line["saving_marching_empty_rays"] <= line["empty_sample_share"] <= 1
        assert 0 <= line["saving_keeping_silhouettes"] <= line["empty_sample_share"]
    # the host replica takes the kernel's samples (float64 steps: a rare ray may differ)
    for line in out[:4]:
        assert abs(line["march_evals_per_ray"] - line["kernel_march_evals_per_ray"]) <= 0.05


def test_suite_quick_mode_runs(capsys):
    assert suite.main(["--device", "cpu", "--quick"]) == 0
    out = lines(capsys)
    assert {line["benchmark"] for line in out} == {"render_shaded", "fit"}
    assert [line["case"] for line in out if line["benchmark"] == "fit"] == sorted(FIT_CASES)


def test_warpsdf_bench_command():
    from typer.testing import CliRunner

    from tests.conftest import assert_user_error
    from warpsdf.cli.main import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["bench", "--device", "cpu", "--case", "render:airplane", "--resolution", "8"]
    )
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    assert line["target"] == "airplane" and line["resolution"] == [8, 8]
    assert_user_error(runner.invoke(app, ["bench", "--case", "fit:xyz"]), "fit:xyz", "fit:mlp")
    assert_user_error(runner.invoke(app, ["bench", "--resolution", "9x"]), "--resolution", "9x")


def test_quality_benchmark_quick_mode_runs(capsys, tmp_path):
    """``python -m benchmarks.quality --quick``: the hull line and one line per
    kind, each with its curve, surface scores and times to the hull's IoU (a
    smoke run: tiny images, one-second budgets; the numbers mean little)."""
    from benchmarks.quality import main

    kinds = ["mlp", "grid", "hashgrid"]
    assert main(["--quick", "--kinds", ",".join(kinds), "--work", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["kind"] for x in lines] == ["hull", *kinds]
    assert all(x["benchmark"] == "quality" and x["target"] == "airplane" for x in lines)
    for x in lines:
        assert 0.0 < x["heldout_iou"] <= 1.0 and 0.0 <= x["fscore"] <= 1.0
        assert x["chamfer_l1"] > 0.0
    for x in lines[1:]:
        assert x["iterations"] >= 1 and x["curve"] and x["seconds"] >= x["budget_s"]
        assert all(0.0 <= iou <= 1.0 for _, iou in x["curve"])
        assert "seconds_to_95pct_hull" in x and "seconds_to_99pct_hull" in x
