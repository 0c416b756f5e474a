"""Sweeps (warpsdf.sweep): sweep files, the local and Ray executors, point
statuses, the summaries, and the shipped learning-rate sweep."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import warp as wp

from tests.conftest import SCENES, assert_user_error, cli
from warpsdf.errors import SceneError, WarpsdfError
from warpsdf.fit import RunStatus
from warpsdf.sweep import (
    Criteria,
    Executor,
    PointResult,
    PointStatus,
    SweepSummary,
    classify,
    load_sweep,
    parse_executor,
    run_sweep,
)

TINY_SET = """
[set]
cameras.resolution = [16, 16]
optim.iterations = 60
output.mesh_resolution = 16
output.final_scale = 2
output.heldout_views = 2
output.snapshot_every = 10
"""

SPHERES = SCENES / "two_spheres_silhouette.toml"


def write_sweep(folder: Path, body: str, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def four_point_sweep(folder: Path) -> Path:
    """A 4-point grid over a tiny version of the shipped sphere-set scene: two
    starts (shrinking, bloating) x two learning rates (fine, far too high)."""
    base = SPHERES.as_posix()
    return write_sweep(
        folder,
        f'base = "{base}"\nname = "tiny"\nout = "{(folder / "out").as_posix()}"\n'
        + TINY_SET
        + "\n[grid]\nmodel.init_radius = [0.1, 0.6]\noptim.lr = [0.05, 3.0]\n"
        + "\n[criteria]\nconverged_iou = 0.8\n",
    )


def summary_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def check_four_point_summary(out: Path) -> None:
    data = json.loads((out / "summary.json").read_text())
    points = data["points"]
    assert [p["index"] for p in points] == [0, 1, 2, 3]
    for p in points:
        run = Path(p["run_dir"])
        for name in ("scene.toml", "checkpoint.npz", "log.csv", "metrics.json", "final_train.png"):
            assert (run / name).is_file(), (run, name)
        high = p["overrides"]["optim.lr"] == 3.0
        expected = PointStatus.DIVERGED if high else PointStatus.CONVERGED
        assert p["status"] == expected.value, p
        if high:
            assert "blew up" in p["reason"] or "non-finite" in p["reason"] or "nan" in p["reason"]
    rows = summary_rows(out)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"converged", "diverged"}
    for name in ("contact_sheet.png", "loss_curves.png"):
        image = iio.imread(out / name)
        assert image.ndim == 3 and image.std() > 5


# ---------------------------------------------------------------------------
# Running sweeps
# ---------------------------------------------------------------------------


def test_local_sweep_end_to_end_skips_finished_points_and_forces(tmp_path):
    sweep = four_point_sweep(tmp_path)
    result = cli("batch", sweep, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "tiny summary" in result.output and "diverged" in result.output
    out = tmp_path / "out"
    check_four_point_summary(out)
    stamp = (out / "points" / "000_init_radius-0.1_lr-0.05" / "checkpoint.npz").stat().st_mtime_ns
    result = cli("batch", sweep)
    assert result.exit_code == 0 and result.output.count("skipped (finished before)") == 4
    check_four_point_summary(out)
    assert (
        out / "points" / "000_init_radius-0.1_lr-0.05" / "checkpoint.npz"
    ).stat().st_mtime_ns == stamp
    result = cli("batch", sweep, "--force")
    assert result.exit_code == 0 and "skipped" not in result.output
    check_four_point_summary(out)


def test_a_failing_point_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    import warpsdf.sweep.run as sweep_run

    real_fit = sweep_run.fit

    def flaky_fit(scene, *args, **kwargs):
        if scene.optim.lr == 3.0:
            raise RuntimeError("simulated crash")
        return real_fit(scene, *args, **kwargs)

    monkeypatch.setattr(sweep_run, "fit", flaky_fit)
    # a one-worker sweep runs here and leaves this process's Warp settings alone
    monkeypatch.setattr(wp.config, "log_level", wp.LOG_ERROR)
    sweep = load_sweep(four_point_sweep(tmp_path))
    results = run_sweep(sweep, workers=1)
    assert wp.config.log_level == wp.LOG_ERROR
    statuses = {r.overrides["optim.lr"]: r.status for r in results}
    too_high = [r.status for r in results if r.overrides["optim.lr"] == 3.0]
    assert too_high == [PointStatus.FAILED] * 2
    assert all(isinstance(r.status, PointStatus) for r in results)
    assert statuses[0.05] is PointStatus.CONVERGED
    failed = [r for r in results if r.status is PointStatus.FAILED]
    assert all("simulated crash" in r.reason for r in failed)
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sum(p["status"] == "failed" for p in data["points"]) == 2
    # a failed point runs again next time; the finished ones are skipped
    monkeypatch.setattr(sweep_run, "fit", real_fit)
    again = run_sweep(sweep, workers=1)
    assert [r.skipped for r in again] == [r.status is not PointStatus.FAILED for r in results]


def test_bad_sweep_files(tmp_path):
    base = SPHERES.as_posix()
    cases = {
        "typo": (f'base = "{base}"\n[gird]\noptim.lr = [1.0]\n', "did you mean 'grid'"),
        "nobase": ("[grid]\noptim.lr = [1.0]\n", "base"),
        "badkey": (f'base = "{base}"\n[grid]\noptim.lrr = [1.0]\n', "optim.lrr"),
        "badvalue": (f'base = "{base}"\n[grid]\noptim.lr = [-1.0]\n', "optim.lr"),
        "empty": (f'base = "{base}"\n', "no points"),
        "scalar": (f'base = "{base}"\n[grid]\noptim.lr = 1.0\n', "non-empty list"),
    }
    for name, (body, needle) in cases.items():
        path = write_sweep(tmp_path, body, f"{name}.toml")
        with pytest.raises(SceneError, match=re.escape(needle)):
            load_sweep(path)
        assert_user_error(cli("batch", path), f"{name}.toml", needle)
    assert not (tmp_path / "runs").exists()


def test_batch_out_must_be_a_sweep_folder(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        f'base = "{SPHERES.as_posix()}"\n[set]\noptim.iterations = 1\n'
        "cameras.resolution = [8, 8]\n[grid]\noptim.lr = [0.01]\n"
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    assert_user_error(cli("batch", sweep, "--out", busy), "not a sweep folder")
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
    assert_user_error(cli("batch", sweep, "--out", sweep), "not a folder")


def test_sweep_summary_holds_absolute_run_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        f'base = "{SPHERES.as_posix()}"\nout = "rel"\n[set]\noptim.iterations = 2\n'
        "cameras.resolution = [8, 8]\noutput.mesh_resolution = 8\noutput.heldout_views = 1\n"
        "[grid]\noptim.lr = [0.01]\n"
    )
    assert cli("batch", sweep).exit_code == 0
    point = json.loads((tmp_path / "rel" / "summary.json").read_text())["points"][0]
    assert Path(point["run_dir"]).is_absolute() and Path(point["run_dir"]).is_dir()


def test_local_workers_get_a_gpu_each_where_there_are_several(monkeypatch):
    from warpsdf.sweep import local_devices

    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 0)
    assert local_devices(3) == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 2)
    assert local_devices(4) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 4)
    assert local_devices(3) == ["cuda:0", "cuda:1", "cuda:2"]


def test_executor_names(tmp_path):
    assert parse_executor("local") is Executor.LOCAL and parse_executor("ray") is Executor.RAY
    with pytest.raises(WarpsdfError, match="--executor 'dask': expected local or ray"):
        parse_executor("dask")
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'base = "{SPHERES.as_posix()}"\n[grid]\noptim.lr = [0.01]\n')
    assert_user_error(cli("batch", sweep, "--executor", "dask"), "local or ray")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------
# Point statuses
# ---------------------------------------------------------------------------


def test_classify_returns_point_statuses():
    criteria = Criteria(converged_iou=0.9, blowup_factor=10.0)
    good, calm, wild = {"train_iou": 0.95}, [1.0, 0.5, 0.1], [1.0, 50.0, 2.0]
    assert classify(RunStatus.FINISHED, good, calm, criteria) is PointStatus.CONVERGED
    assert classify(RunStatus.FINISHED, {"train_iou": 0.5}, calm, criteria) is (
        PointStatus.NOT_CONVERGED
    )
    assert classify(RunStatus.FINISHED, {}, calm, criteria) is PointStatus.NOT_CONVERGED
    assert classify(RunStatus.DIVERGED, good, calm, criteria) is PointStatus.DIVERGED
    assert classify(RunStatus.FINISHED, {"train_iou": 0.5}, wild, criteria) is (
        PointStatus.DIVERGED
    )
    # a loss that blew up on the way but converged in the end is not diverged
    assert classify(RunStatus.FINISHED, good, wild, criteria) is PointStatus.CONVERGED
    assert classify(RunStatus.FINISHED, {}, [math.nan], criteria) is PointStatus.NOT_CONVERGED


def test_point_results_hold_the_enum_and_store_its_string():
    result = PointResult(2, "lr=1", {"optim.lr": 1.0}, "/x", PointStatus.NOT_CONVERGED, "why")
    data = result.to_json()
    assert type(data["status"]) is str and data["status"] == "not converged"
    assert json.loads(json.dumps(data)) == data
    back = PointResult.from_json(dict(data, extra="ignored"))
    assert back == result and back.status is PointStatus.NOT_CONVERGED
    for bad in (dict(data, status="exploded"), {k: v for k, v in data.items() if k != "label"}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            PointResult.from_json(bad)
    summary = SweepSummary("lr", "/base.toml", {"converged_iou": 0.9}, [result])
    assert SweepSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary


# ---------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------


RAY_SCRIPT = """
set -e
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0
temp=$(mktemp -d /tmp/rayXXXX)    # short: Ray's socket paths have a length limit
"$BIN/ray" start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus=2 --num-gpus=0 \\
    --include-dashboard=false --disable-usage-stats --temp-dir="$temp" > "$LOG" 2>&1
set +e
"$BIN/warpsdf" batch "$SWEEP" --executor ray --address 127.0.0.1:6390
rc=$?
"$BIN/ray" stop --force > /dev/null 2>&1
rm -rf "$temp"
exit $rc
"""


def test_ray_executor_runs_the_same_sweep(tmp_path):
    """A real Ray head started by the test, inside a network namespace of its
    own whose only interface is loopback, so nothing can leave 127.0.0.1."""
    pytest.importorskip("ray")
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to keep the Ray test on loopback")
    sweep = four_point_sweep(tmp_path)
    env = dict(
        os.environ,
        BIN=str(Path(sys.executable).parent),
        SWEEP=str(sweep),
        LOG=str(tmp_path / "ray.log"),
    )
    done = subprocess.run(
        ["unshare", "--net", "--", "bash", "-c", RAY_SCRIPT],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = (tmp_path / "ray.log").read_text() if (tmp_path / "ray.log").is_file() else ""
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], log[-3000:])
    assert "tiny summary" in done.stdout
    check_four_point_summary(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {p["device"] for p in data["points"]} == {"cpu"}


# ---------------------------------------------------------------------------
# The shipped sweep, as the README describes it
# ---------------------------------------------------------------------------


def test_lr_sweep_marks_too_high_rates_as_diverged(tmp_path):
    """scenes/sweeps/lr_sweep.toml run as documented (into a temporary folder)."""
    result = cli("batch", SCENES / "sweeps" / "lr_sweep.toml", "--workers", "2",
                 "--out", tmp_path / "lr")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {float(r["optim.lr"]): r["status"] for r in summary_rows(tmp_path / "lr")}
    assert rows == {
        0.01: "converged", 0.03: "converged", 0.1: "converged",
        1.0: "diverged", 3.0: "diverged",
    }  # fmt: skip
    assert re.search(r"lr=1\s.*diverged", result.output)
