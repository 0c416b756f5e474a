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
