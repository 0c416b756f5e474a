"""Run folders and the fit/render/export command line (DESIGN §5, STYLE
"Tests, in layers" 3).

The contracts: a fit leaves every documented file; an interrupted fit resumed
from its checkpoint follows the same trajectory as one that was never stopped;
the same seed gives the same result; nothing is overwritten without --force;
a divergence stops cleanly; Ctrl-C saves and says how to resume. Every fit
here is tiny (12x12 pixels, width-8 MLPs, a few iterations) and runs on the
``device`` fixture's device.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

import warpsdf.fit.schedule as schedule_module
from tests.conftest import SCENES, assert_user_error, cli
from tests.helpers import SPHERES_SCENE, TINY, WARPSDF_COMMAND, tiny_scene
from warpsdf.errors import InputFileError, OutputError, WarpsdfError
from warpsdf.fit import LOG_COLUMNS, Fitter, RunStatus, fit, learning_rate, load_run, mask_alpha
from warpsdf.io.layout import RunFolder
from warpsdf.losses import TERM_NAMES
from warpsdf.scene import load_scene

SHIPPED = sorted(SCENES.glob("*.toml"))
XYZ_SCENE = SCENES / "two_spheres_xyz.toml"

TINY_SET = [arg for item in TINY for arg in ("--set", item)]


def with_iterations(scene, n: int):
    return scene.replace(optim=dataclasses.replace(scene.optim, iterations=n))


def read_log(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def checkpoint(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(RunFolder(run_dir).checkpoint, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def hidden_files(root: Path) -> list[Path]:
    """Leftover temporary files: anything whose name starts with '.'."""
    return [p for p in root.rglob(".*")]


def stop_after(n: int):
    """(on_step, should_stop) that stop a fit once ``n`` steps are done."""
    done = []
    return (lambda record: done.append(record.iteration)), (lambda: len(done) >= n)


# Bitwise on the CPU (one thread, fixed order); CUDA atomics may reorder sums.
def param_tol(device: str) -> dict[str, float]:
    return {"rtol": 0.0, "atol": 0.0} if device == "cpu" else {"rtol": 1e-4, "atol": 1e-5}


# ---------------------------------------------------------------------------
# 1. Every file of a run folder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scene_path", [SPHERES_SCENE, XYZ_SCENE], ids=lambda p: p.stem)
def test_fit_writes_every_run_file(device, tmp_path, scene_path):
    scene = tiny_scene(scene_path)
    run_dir = tmp_path / "run"
    n = 4
    records = []
    result = fit(scene, run_dir, iterations=n, device=device, on_step=records.append)
    assert result.status is RunStatus.FINISHED and result.iteration == n
    assert [r.iteration for r in records] == list(range(1, n + 1))
    xyz = scene_path == XYZ_SCENE

    # the resolved scene, with the iteration count that was run
    assert load_scene(RunFolder(run_dir).scene) == with_iterations(scene, n)

    state = checkpoint(run_dir)
    for key in ("params", "adam_m", "adam_v", "adam_t", "iteration", "rng_state", "log"):
        assert key in state, key
    assert int(state["iteration"]) == n and int(state["adam_t"]) == n
    np.testing.assert_array_equal(state["params"], result.field.params.numpy())
    assert np.isfinite(state["params"]).all() and np.any(state["adam_v"] > 0)
    assert state["log"].shape == (n, len(LOG_COLUMNS))

    columns, rows = read_log(run_dir)
    ran = with_iterations(scene, n)
    assert columns == list(LOG_COLUMNS)
    for needed in ("iteration", "loss", *TERM_NAMES, "iou", "lr", "seconds"):
        assert needed in columns
    assert [int(r["iteration"]) for r in rows] == list(range(1, n + 1))
    for i, row in enumerate(rows):
        values = {k: float(v) for k, v in row.items()}
        assert all(math.isfinite(v) for v in values.values()), row
        assert values["loss"] > 0 and 0.0 <= values["iou"] <= 1.0 and values["seconds"] > 0
        # the schedules run over the iterations of this fit
        assert values["lr"] == pytest.approx(learning_rate(ran, i), rel=1e-5)
        assert values["alpha"] == pytest.approx(mask_alpha(ran, i), rel=1e-5)
        assert values["loss"] == pytest.approx(records[i].loss, rel=1e-5)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("train_iou", "heldout_iou", "xyz_error", "chamfer", "status"):
        assert key in metrics, key
    assert metrics["status"] == "finished" and metrics["iterations"] == n
    assert 0.0 <= metrics["train_iou"] <= 1.0 and 0.0 <= metrics["heldout_iou"] <= 1.0
    assert metrics["chamfer"] > 0 and metrics == result.metrics

    plot = iio.imread(run_dir / "loss.png")
    assert plot.ndim == 3 and plot.shape[0] > 100 and plot.shape[1] > 100

    # frames at iteration 0, then every snapshot_every: prediction | target | error
    frames = iio.imread(run_dir / "optimization.gif", index=None)
    assert frames.shape[0] == 1 + n // scene.output.snapshot_every
    assert frames.shape[2] > 2.5 * frames.shape[1]
    assert not np.array_equal(frames[0], frames[-1])

    scale = scene.output.render_scale(12, 12)
    size = (12 * scale, 12 * scale)
    finals = {p.name for p in run_dir.glob("final_*.png")}
    expected = {"final_train.png", "final_az090.png", "final_az180.png", "final_az270.png"}
    assert finals == expected | ({"final_train_xyz.png"} if xyz else set())
    images = {}
    for name in finals:
        images[name] = iio.imread(run_dir / name)
        assert images[name].shape == (*size, 3), name
    for unseen in ("final_az090.png", "final_az180.png", "final_az270.png"):
        assert not np.array_equal(images[unseen], images["final_train.png"]), unseen

    mesh = trimesh.load(run_dir / "mesh.ply", force="mesh")
    assert len(mesh.vertices) > 0 and len(mesh.faces) > 0
    assert np.abs(mesh.vertices).max() <= scene.march.bound_radius + 1e-3

    # load_run gives back the fitted field
    loaded_scene, field = load_run(run_dir, device)
    assert loaded_scene == with_iterations(scene, n)
    np.testing.assert_array_equal(field.params.numpy(), state["params"])
    assert not hidden_files(tmp_path)


# ---------------------------------------------------------------------------
# 2. Resume continues the same trajectory
# ---------------------------------------------------------------------------


def checkpoint_params_at_start(scene, device) -> np.ndarray:
    return Fitter.from_scene(scene, device).field.params.numpy()


@pytest.mark.parametrize(
    ("scene_path", "extra", "n", "outputs"),
    [
        (SPHERES_SCENE, (), 3, True),
        # camera shake and random ray batches: the rng state must come back too
        (XYZ_SCENE, ("cameras.jitter=0.05", "optim.batch_rays=60"), 3, False),
        # focused sampling: the kept predictions must come back too
        (
            XYZ_SCENE,
            ("cameras.jitter=0.05", "optim.batch_rays=60", 'optim.ray_sampling="focused"'),
            3,
            False,
        ),
    ],
    ids=["spheres", "mlp-jitter-batch", "mlp-jitter-focused"],
)
def test_resume_matches_uninterrupted_fit(device, tmp_path, scene_path, extra, n, outputs):
    scene = with_iterations(tiny_scene(scene_path, *extra), 2 * n)
    kwargs = {"device": device, "write_outputs": outputs}

    straight = fit(scene, tmp_path / "straight", **kwargs)
    assert straight.status is RunStatus.FINISHED

    on_step, should_stop = stop_after(n)
    first = fit(scene, tmp_path / "resumed", on_step=on_step, should_stop=should_stop, **kwargs)
    assert first.status is RunStatus.INTERRUPTED and first.iteration == n
    assert str(n) in first.reason
    assert int(checkpoint(tmp_path / "resumed")["iteration"]) == n
    _, rows = read_log(tmp_path / "resumed")
    assert len(rows) == n
    assert not (tmp_path / "resumed" / "metrics.json").exists()  # not finished yet

    second = fit(scene, tmp_path / "resumed", resume=True, **kwargs)
    assert second.status is RunStatus.FINISHED and second.iteration == 2 * n

    a, b = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "resumed")
    assert not np.array_equal(a["params"], checkpoint_params_at_start(scene, device))
    for key in ("params", "adam_m", "adam_v"):
        np.testing.assert_allclose(b[key], a[key], **param_tol(device), err_msg=key)
    assert int(b["adam_t"]) == int(a["adam_t"]) == 2 * n
    assert str(b["rng_state"]) == str(a["rng_state"])
    assert ("focus_predicted" in b) == ("focused" in str(extra))
    if "focus_predicted" in b:
        np.testing.assert_array_equal(b["focus_predicted"], a["focus_predicted"])

    _, straight_rows = read_log(tmp_path / "straight")
    _, resumed_rows = read_log(tmp_path / "resumed")
    assert [int(r["iteration"]) for r in resumed_rows] == list(range(1, 2 * n + 1))
    for r1, r2 in zip(straight_rows, resumed_rows, strict=True):
        assert r1["loss"] == r2["loss"] or device != "cpu", (r1, r2)
    if outputs:
        frames = iio.imread(tmp_path / "resumed" / "optimization.gif", index=None)
        assert frames.shape[0] == 1 + 2 * n // scene.output.snapshot_every
        assert (
            json.loads((tmp_path / "resumed" / "metrics.json").read_text())["iterations"] == 2 * n
        )
    assert not hidden_files(tmp_path)


def test_resume_refuses_a_different_model(device, tmp_path):
    scene = tiny_scene(XYZ_SCENE)
    fit(scene, tmp_path / "run", iterations=1, device=device, write_outputs=False)
    other = tiny_scene(XYZ_SCENE, "model.hidden=16")
    with pytest.raises(WarpsdfError, match=r"\[model\] differs"):
        fit(other, tmp_path / "run", iterations=2, device=device, resume=True)


# ---------------------------------------------------------------------------
# 3. Seeds
# ---------------------------------------------------------------------------


def _steps(scene, device, k: int) -> np.ndarray:
    fitter = Fitter.from_scene(scene, device)
    for _ in range(k):
        fitter.step()
    return fitter.field.params.numpy()


@pytest.mark.parametrize(
    ("scene_path", "extra"),
    [(SPHERES_SCENE, ()), (XYZ_SCENE, ("cameras.jitter=0.05", "optim.batch_rays=60"))],
    ids=["spheres", "mlp"],
)
def test_same_seed_same_parameters(device, scene_path, extra):
    scene = tiny_scene(scene_path, *extra)
    a, b = _steps(scene, device, 3), _steps(scene, device, 3)
    np.testing.assert_allclose(a, b, **param_tol(device))
    assert not np.array_equal(a, Fitter.from_scene(scene, device).field.params.numpy())  # it moved


def test_different_seed_different_mlp(device):
    a = _steps(tiny_scene(XYZ_SCENE, "seed=0"), device, 2)
    b = _steps(tiny_scene(XYZ_SCENE, "seed=1"), device, 2)
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-3


# ---------------------------------------------------------------------------
# 4. No lost work
# ---------------------------------------------------------------------------


def test_run_folder_is_not_overwritten_without_force(device, tmp_path):
    scene = tiny_scene()
    run_dir = tmp_path / "run"
    fit(scene, run_dir, iterations=1, device=device, write_outputs=False)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    with pytest.raises(OutputError, match="--force"):
        fit(scene, run_dir, iterations=1, device=device)
    result = cli("fit", SPHERES_SCENE, "--out", run_dir, "-n", "1", "--device", device, *TINY_SET)
    assert_user_error(result, str(run_dir), "--resume", "--force")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before

    # --force replaces the whole folder
    (run_dir / "notes.txt").write_text("mine")
    result = cli(
        "fit", SPHERES_SCENE, "--out", run_dir, "-n", "2", "--device", device, "--force", *TINY_SET
    )
    assert result.exit_code == 0, result.output
    assert not (run_dir / "notes.txt").exists()
    assert int(checkpoint(run_dir)["iteration"]) == 2
    assert (run_dir / "mesh.ply").is_file()
    assert not hidden_files(tmp_path)


def test_force_never_deletes_a_folder_that_is_not_a_run(device, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.png").write_bytes(b"precious")
    with pytest.raises(OutputError, match="not a run folder"):
        fit(tiny_scene(), folder, iterations=1, device=device, force=True)
    result = cli(
        "fit", SPHERES_SCENE, "--out", folder, "-n", "1", "--device", device, "--force", *TINY_SET
    )
    assert_user_error(result, str(folder), "not a run folder")
    assert (folder / "holiday.png").read_bytes() == b"precious"
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.png"]


def test_resume_without_checkpoint_is_a_clear_error(device, tmp_path):
    run_dir = tmp_path / "nothing"
    with pytest.raises(InputFileError, match="nothing to resume"):
        fit(tiny_scene(), run_dir, iterations=1, device=device, resume=True)
    result = cli(
        "fit", SPHERES_SCENE, "--out", run_dir, "-n", "1", "--device", device, "--resume", *TINY_SET
    )
    assert_user_error(result, str(run_dir), "nothing to resume", RunFolder.CHECKPOINT)
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_nan_loss_stops_cleanly_with_the_last_good_state(device, tmp_path, monkeypatch):
    """A NaN loss at step 3 (a NaN mask sharpness in the schedule) ends the fit:
    status diverged. The parameters that gave the NaN (after 2 steps) are rolled
    back to the last ones whose loss was finite (exactly those of a clean 1-step
    fit), with a log row for each kept step, and the outputs are written."""
    scene = with_iterations(tiny_scene(), 5)  # the alpha schedule depends on the count
    reference = _steps(scene, device, 1)
    real_alpha = schedule_module.mask_alpha

    def mask_alpha_nan_at_3(scene, iteration):
        return float("nan") if iteration == 2 else real_alpha(scene, iteration)

    monkeypatch.setattr(schedule_module, "mask_alpha", mask_alpha_nan_at_3)
    run_dir = tmp_path / "run"
    result = fit(scene, run_dir, device=device)
    assert result.status is RunStatus.DIVERGED and result.iteration == 1
    assert "iteration 3" in result.reason and "nan" in result.reason
    assert "kept the parameters of iteration 1" in result.reason
    state = checkpoint(run_dir)
    assert int(state["iteration"]) == 1 and int(state["adam_t"]) == 1
    np.testing.assert_allclose(state["params"], reference, **param_tol(device))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "iteration 3" in metrics["reason"]
    assert [int(r["iteration"]) for r in read_log(run_dir)[1]] == [1]
    assert (run_dir / "mesh.ply").is_file() and (run_dir / "final_train.png").is_file()
    assert not hidden_files(tmp_path)


def test_divergence_through_the_cli(device, tmp_path):
    """A learning rate of 1e30 sends the MLP's weights to 1e30 and its loss to
    NaN on the next step: exit code 1, one 'diverged' line, no traceback. The
    update that made them is undone: the initial parameters stay."""
    run_dir = tmp_path / "run"
    result = cli(
        "fit", XYZ_SCENE, "--out", run_dir, "-n", "5", "--device", device,
        *TINY_SET, "--set", "optim.lr=1e30",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    lines = [line for line in result.output.splitlines() if "diverged" in line]
    assert len(lines) == 1 and lines[0].startswith("diverged:"), result.output
    assert "iteration 2" in " ".join(result.output.split())
    assert "kept the parameters of iteration 0" in " ".join(result.output.split())
    state = checkpoint(run_dir)
    assert int(state["iteration"]) == 0 and np.isfinite(state["params"]).all()
    assert np.abs(state["params"]).max() < 100  # not the 1e30 weights
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "iteration" in metrics["reason"]
    assert not hidden_files(tmp_path)


def test_exploding_sphere_set_is_reported_as_diverged(device, tmp_path):
    scene = tiny_scene(SPHERES_SCENE, "optim.lr=1e30")
    result = fit(scene, tmp_path / "run", iterations=4, device=device, write_outputs=False)
    assert result.status is RunStatus.DIVERGED, (result.status, result.reason)


def test_metrics_json_is_strict_json(device, tmp_path):
    scene = tiny_scene(XYZ_SCENE, "optim.lr=1e30")
    fit(scene, tmp_path / "run", iterations=3, device=device)

    def reject(token):
        raise ValueError(f"not JSON: {token}")

    json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=reject)


# ---------------------------------------------------------------------------
# 5. The command line on every shipped scene
# ---------------------------------------------------------------------------


def test_fit_help_lists_options():
    result = cli("fit", "--help")
    assert result.exit_code == 0
    for option in ("--out", "--iterations", "--set", "--device", "--resume", "--force"):
        assert option in result.output, option


@pytest.mark.parametrize("scene_path", SHIPPED, ids=lambda p: p.stem)
def test_cli_fit_render_export_every_shipped_scene(device, tmp_path, scene_path):
    run_dir = tmp_path / "run"
    result = cli("fit", scene_path, "--out", run_dir, "-n", "4", "--device", device, *TINY_SET)
    assert result.exit_code == 0, result.output + result.stderr
    assert "done" in result.output and "train_iou" in result.output
    assert int(checkpoint(run_dir)["iteration"]) == 4
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["iterations"] == 4

    still = tmp_path / "x.png"
    result = cli("render", run_dir, "--out", still, "-r", "16", "--device", device)
    assert result.exit_code == 0, result.output + result.stderr
    assert iio.imread(still).shape == (16, 16, 3)
    mask = tmp_path / "mask.npy"
    result = cli("render", run_dir, "--out", mask, "--mode", "mask", "--device", device)
    assert result.exit_code == 0, result.output + result.stderr
    assert np.load(mask).shape == (12, 12)  # the run's own resolution by default

    for suffix in (".ply", ".obj"):
        out = tmp_path / f"m{suffix}"
        result = cli("export", run_dir, "--out", out, "-r", "16", "--device", device)
        assert result.exit_code == 0, result.output + result.stderr
        mesh = trimesh.load(out, force="mesh")
        assert len(mesh.faces) > 0
        assert f"{len(mesh.faces)} faces" in " ".join(result.output.split())  # rich may wrap
    assert not hidden_files(tmp_path)


def test_cli_render_turntable_of_a_run(device, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("fit", SPHERES_SCENE, "--out", run_dir, "-n", "2", "--device", device, *TINY_SET)
    assert result.exit_code == 0, result.output
    gif = tmp_path / "turn.gif"
    result = cli(
        "render", run_dir, "--out", gif, "-r", "16", "--turntable", "4", "--device", device
    )
    assert result.exit_code == 0, result.output + result.stderr
    frames = iio.imread(gif, index=None)
    assert frames.shape[:3] == (4, 16, 16)
    assert not np.array_equal(frames[0], frames[1])
    # --set belongs to scene files, not to run folders
    assert_user_error(
        cli("render", run_dir, "--out", tmp_path / "y.png", "--set", "march.max_steps=8"),
        "--set",
    )


def test_cli_bad_fit_export_render_input(device, tmp_path):
    assert_user_error(
        cli("fit", SPHERES_SCENE, "--out", tmp_path / "r", "--iterations", "0", *TINY_SET),
        "--iterations",
    )
    assert not (tmp_path / "r").exists()

    run_dir = tmp_path / "run"
    fit(tiny_scene(), run_dir, iterations=1, device=device)
    assert_user_error(
        cli("export", run_dir, "--out", tmp_path / "m.xyz", "--device", device), "m.xyz", ".ply"
    )
    assert_user_error(
        cli("export", run_dir, "--out", tmp_path / "m.ply", "-r", "4", "--device", device),
        "--resolution",
    )
    not_a_run = tmp_path / "folder"
    not_a_run.mkdir()
    (not_a_run / "scene.toml").write_text(SPHERES_SCENE.read_text())  # but no checkpoint
    assert_user_error(
        cli("export", not_a_run, "--out", tmp_path / "m.ply", "--device", device),
        str(not_a_run),
        "not a run folder",
    )
    assert_user_error(
        cli("render", not_a_run, "--out", tmp_path / "x.png", "--device", device),
        str(not_a_run),
        "not a run folder",
    )
    assert_user_error(
        cli("export", tmp_path / "missing", "--out", tmp_path / "m.ply", "--device", device),
        "missing",
    )
    for name in ("m.xyz", "m.ply", "x.png"):
        assert not (tmp_path / name).exists()
    assert not hidden_files(tmp_path)


# ---------------------------------------------------------------------------
# 6. Ctrl-C in a real process
# ---------------------------------------------------------------------------


def test_ctrl_c_saves_and_resume_finishes(device, tmp_path):
    run_dir = tmp_path / "run"
    sets = [*TINY_SET, "--set", "output.checkpoint_every=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [*WARPSDF_COMMAND, "fit", str(SPHERES_SCENE), "--out", str(run_dir)]
    proc = subprocess.Popen(
        [*command, "-n", "100000", "--device", device, *sets],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (RunFolder(run_dir).checkpoint).exists():
            assert proc.poll() is None, f"fit ended early ({proc.returncode}): {proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert "interrupted" in output and "--resume" in output, output

    state = checkpoint(run_dir)
    done = int(state["iteration"])
    assert done >= 2 and np.isfinite(state["params"]).all()
    assert len(read_log(run_dir)[1]) == done
    assert not (run_dir / "metrics.json").exists()
    assert not hidden_files(tmp_path)

    result = subprocess.run(
        [*command, "--resume", "-n", str(done + 2), "--device", device, *sets],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(checkpoint(run_dir)["iteration"]) == done + 2
    assert len(read_log(run_dir)[1]) == done + 2
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


def test_ctrl_c_while_writing_outputs_says_so_and_resume_writes_them(tmp_path):
    """Once training ends the CLI says it is writing the outputs and that
    Ctrl-C skips them; a Ctrl-C then exits 130 at once with the checkpoint
    kept, and a --resume to the same total writes the outputs."""
    run_dir = tmp_path / "run"
    slow_outputs = ["--set", "output.mesh_resolution=160", "--set", "output.final_scale=8"]
    command = [*WARPSDF_COMMAND, "fit", str(SPHERES_SCENE), "--out", str(run_dir), "-n", "3",
               "--device", "cpu", *TINY_SET, *slow_outputs]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "checkpoint saved; writing" in line:
                assert "Ctrl-C skips them" in line, line
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "while writing outputs" in output, output
    assert "--resume" in output
    assert int(checkpoint(run_dir)["iteration"]) == 3
    assert not (run_dir / "metrics.json").exists() and not hidden_files(tmp_path)
    result = subprocess.run([*command, "--resume"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    assert RunFolder(run_dir).mesh.is_file() and len(read_log(run_dir)[1]) == 3


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    """A fit killed with SIGKILL (at a random moment after its first checkpoint,
    maybe mid-write) resumes from its last checkpoint, cleans what the kill
    left, and ends with exactly the parameters of a fit never interrupted."""
    run_dir = tmp_path / "run"
    # constant schedules: the killed fit planned 100000 steps, the resumed one fewer
    fixed = [
        "output.checkpoint_every=2",
        "optim.schedule='constant'",
        "optim.mask_alpha=[100.0, 100.0]",
    ]
    sets = [*TINY_SET, *(arg for item in fixed for arg in ("--set", item))]
    command = [*WARPSDF_COMMAND, "fit", str(SPHERES_SCENE), "--out", str(run_dir)]
    proc = subprocess.Popen(
        [*command, "-n", "100000", "--device", "cpu", *sets],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not RunFolder(run_dir).checkpoint.exists():
            assert proc.poll() is None, f"fit ended early ({proc.returncode})"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        time.sleep(random.Random(3).uniform(0.0, 0.5))
    finally:
        proc.kill()
        proc.wait()
    done = int(checkpoint(run_dir)["iteration"])
    assert done >= 2
    total = done + 3
    result = subprocess.run(
        [*command, "--resume", "-n", str(total), "--device", "cpu", *sets],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert not hidden_files(tmp_path)
    resumed = checkpoint(run_dir)
    assert int(resumed["iteration"]) == total and len(read_log(run_dir)[1]) == total
    scene = load_scene(SPHERES_SCENE, [*TINY, *fixed])
    straight = fit(scene, tmp_path / "straight", iterations=total, device="cpu")
    np.testing.assert_array_equal(resumed["params"], straight.field.params.numpy())
