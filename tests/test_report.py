"""HTML reports (warpsdf.report) of a run folder and of a sweep folder, in a
real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import SCENES, assert_user_error, cli
from tests.test_sweep import four_point_sweep
from warpsdf.fit import RunStatus, fit
from warpsdf.report import sweep_report
from warpsdf.scene import load_scene
from warpsdf.sweep import PointStatus


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


def test_every_status_has_a_colour(tmp_path):
    """Each run and point status gets a CSS class (status-VALUE) with a rule."""
    (tmp_path / "summary.json").write_text(json.dumps({"sweep": "empty", "points": []}))
    page = sweep_report(tmp_path)
    for status in (*RunStatus, *PointStatus):
        css_class = "status-" + status.value.replace(" ", "-")
        assert re.search(rf"\.{css_class}\b[^{{]*\{{", page), css_class


def test_damaged_sweep_summaries_give_one_line(tmp_path):
    good = {"index": 0, "label": "base", "overrides": {}, "run_dir": "", "status": "converged"}
    for points, needle in (([dict(good, status="exploded")], "exploded"),
                           ([{"index": 0}], "not a sweep summary")):  # fmt: skip
        (tmp_path / "summary.json").write_text(json.dumps({"points": points}))
        assert_user_error(cli("report", tmp_path, "--out", tmp_path / "r.html"), "summary.json",
                          needle)  # fmt: skip
        assert not (tmp_path / "r.html").exists()
