"""Smoke test of the benchmark scripts: they run and print well-formed JSON
(no timing assertions: speed is judged on a GPU, not in tests)."""

from __future__ import annotations

import json

from benchmarks import render as render_bench


def test_render_benchmark_prints_json_lines(capsys):
    assert render_bench.main(["--device", "cpu", "--resolution", "16", "--repeat", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["target"] for line in lines} == {"airplane", "mesh_torus_ball"}
    for line in lines:
        assert line["device"] == "cpu" and line["resolution"] == [16, 16]
        assert line["mrays_per_s"] > 0 and line["ms_per_frame"] > 0
        assert line["warp_version"] and line["device_name"]


def test_fit_benchmark_prints_json_lines(capsys):
    from benchmarks import fit as fit_bench

    args = ["--device", "cpu", "--iterations", "1", "--override", "cameras.resolution=[8, 8]",
            "--override", "model.hidden=8", "--override", "optim.eikonal_samples=8"]  # fmt: skip
    assert fit_bench.main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["case"] for line in lines} == {"mlp", "spheres"}
    for line in lines:
        assert line["resolution"] == [8, 8] and line["iterations_per_s"] > 0
        assert line["rays_per_s"] > 0 and line["rays_per_iteration"] == line["views"] * 64
