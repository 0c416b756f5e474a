"""Experiments: sweeps (local and Ray executors), HTML reports in a real
headless Chromium, and the claims the README makes about the shipped
experiment scenes."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import SCENES, assert_user_error, cli
from warpsdf.errors import SceneError
from warpsdf.executors import run_sweep
from warpsdf.fit import Fitter
from warpsdf.run import fit
from warpsdf.scene import load_scene
from warpsdf.sweep import PointStatus, load_sweep

TINY_SET = """
[set]
cameras.resolution = [16, 16]
optim.iterations = 60
output.mesh_resolution = 16
output.final_scale = 2
output.heldout_views = 2
output.snapshot_every = 10
"""


def write_sweep(folder: Path, body: str, name: str = "sweep.toml") -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def four_point_sweep(folder: Path) -> Path:
    """A 4-point grid over a tiny version of the shipped sphere-set scene: two
    starts (shrinking, bloating) x two learning rates (fine, far too high)."""
    base = (SCENES / "two_spheres_silhouette.toml").as_posix()
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
    import warpsdf.run

    real_fit = warpsdf.run.fit

    def flaky_fit(scene, *args, **kwargs):
        if scene.optim.lr == 3.0:
            raise RuntimeError("simulated crash")
        return real_fit(scene, *args, **kwargs)

    monkeypatch.setattr(warpsdf.run, "fit", flaky_fit)
    sweep = load_sweep(four_point_sweep(tmp_path))
    results = run_sweep(sweep, workers=1)
    statuses = {r.overrides["optim.lr"]: r.status for r in results}
    assert [r.status for r in results if r.overrides["optim.lr"] == 3.0] == ["failed"] * 2
    assert statuses[0.05] == "converged"
    failed = [r for r in results if r.status == "failed"]
    assert all("simulated crash" in r.reason for r in failed)
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sum(p["status"] == "failed" for p in data["points"]) == 2
    # a failed point runs again next time; the finished ones are skipped
    monkeypatch.setattr(warpsdf.run, "fit", real_fit)
    again = run_sweep(sweep, workers=1)
    assert [r.skipped for r in again] == [r.status != "failed" for r in results]


def test_bad_sweep_files(tmp_path):
    base = (SCENES / "two_spheres_silhouette.toml").as_posix()
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
# HTML reports in headless Chromium
# ---------------------------------------------------------------------------


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return path


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[str, np.ndarray]:
    """The page's DOM after load, and a screenshot, from real headless Chromium."""
    flags = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000",
    ]  # fmt: skip
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [*flags, "--window-size=1200,1600", f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return dom, iio.imread(shot)


def images_loaded(dom: str) -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    return total, loaded


def test_run_and_sweep_reports_in_headless_chromium(tmp_path):
    chromium()
    scene = load_scene(
        SCENES / "two_spheres_xyz.toml",
        ["cameras.resolution=[12, 12]", "model.hidden=8", "output.mesh_resolution=16",
         "output.final_scale=2", "output.heldout_views=2", "optim.eikonal_samples=16",
         "output.snapshot_every=2"],
    )  # fmt: skip
    fit(scene, tmp_path / "run", iterations=4, device="cpu")
    result = cli("report", tmp_path / "run", "--out", tmp_path / "html" / "run.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "html" / "run.html").read_text()
    assert 'src="data:image/' in page and "file:" not in page  # self-contained
    dom, shot = open_in_chromium(tmp_path / "html" / "run.html", tmp_path)
    total, loaded = images_loaded(dom)
    assert total >= 7 and loaded == total
    for needle in ('class="metrics"', 'data-name="loss.png"', 'data-name="optimization.gif"',
                   'data-name="final_train.png"', 'data-name="final_az180.png"', "<pre>",
                   "train_iou"):  # fmt: skip
        assert needle in dom, needle
    assert shot.shape[1] == 1200 and shot[..., :3].std() > 10

    out = tmp_path / "out"
    assert cli("batch", four_point_sweep(tmp_path)).exit_code == 0
    assert cli("report", out, "--out", tmp_path / "html" / "sweep.html").exit_code == 0
    dom, shot = open_in_chromium(tmp_path / "html" / "sweep.html", tmp_path)
    total, loaded = images_loaded(dom)
    assert total >= 2 + 4 and loaded == total
    needles = ('class="summary"', 'data-name="contact_sheet.png"', 'data-name="loss_curves.png"',
               "status-diverged", "status-converged")  # fmt: skip
    for needle in needles:
        assert needle in dom, needle
    assert dom.count('class="point"') == 4
    assert shot[..., :3].std() > 10


def test_report_of_something_else_is_a_clear_error(tmp_path):
    assert_user_error(cli("report", tmp_path, "--out", tmp_path / "r.html"), str(tmp_path))
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------------------
# What the README says the experiment scenes show
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "grows"), [("spheres_bloat", False), ("spheres_shrink", True)])
def test_bloating_and_shrinking_spheres(name, grows, device):
    """As documented: the full scene, 300 iterations, 8 views at 64x64."""
    scene = load_scene(SCENES / f"{name}.toml")
    fitter = Fitter(scene, device)
    start = fitter.field.centers_radii()[1].copy()
    history = []
    while fitter.iteration < scene.optim.iterations:
        fitter.step()
        history.append(fitter.field.centers_radii()[1].mean())
    end = fitter.field.centers_radii()[1]
    final = np.sort(end)
    np.testing.assert_allclose(final, [0.25, 0.3], atol=0.02)
    if grows:
        assert start.max() == pytest.approx(0.1) and history[30] > 0.1
    else:
        assert start.min() == pytest.approx(0.6) and history[30] < 0.6


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


def _twitch(name: str, device: str, *extra: str) -> tuple[float, float]:
    """Mean |change| of the per-step mask MSE over the second half of a quick
    run, and the final mask MSE (the README's CPU-sized command)."""
    scene = load_scene(
        SCENES / f"{name}.toml",
        ["cameras.resolution=[32, 32]", "cameras.count=8", "optim.batch_rays=0",
         "optim.iterations=200", *extra],
    )  # fmt: skip
    fitter = Fitter(scene, device)
    mse = []
    while fitter.iteration < scene.optim.iterations:
        mse.append(fitter.step().mask_mse)
    half = np.array(mse[len(mse) // 2 :])
    return float(np.abs(np.diff(half)).mean()), float(half[-10:].mean())


@pytest.mark.slow
def test_small_fast_airplane_twitches_and_large_runs_clean(device):
    twitchy, _ = _twitch("airplane_small_fast", device)
    clean, clean_mse = _twitch("airplane_large", device, "model.hidden=32")
    assert twitchy > 3.0 * clean, (twitchy, clean)
    assert clean_mse < 0.06


def test_local_workers_get_a_gpu_each_where_there_are_several(monkeypatch):
    import warp as wp

    from warpsdf.executors import local_devices

    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 0)
    assert local_devices(3) == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 2)
    assert local_devices(4) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    monkeypatch.setattr(wp, "get_cuda_device_count", lambda: 4)
    assert local_devices(3) == ["cuda:0", "cuda:1", "cuda:2"]
