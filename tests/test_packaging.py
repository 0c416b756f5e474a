"""The built wheel works on its own: installed into a fresh virtual
environment, away from the repository, ``warpsdf new``, ``validate`` and
``bench --quick`` (which reads the shipped scenes from the installed package)
run. The fresh environment borrows the dependencies of the test environment
(a .pth line to its site-packages) but gets warpsdf only from the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO


def _source_copy(dest: Path) -> Path:
    """The project's files (tracked, plus untracked ones git does not ignore)
    copied to ``dest``, so the build sees the working tree without reusing or
    writing build folders in the repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _build_wheel(out: Path) -> Path:
    try:  # the test environment's own build backend: no download
        import setuptools
        import wheel  # noqa: F401

        isolation = int(setuptools.__version__.split(".")[0]) < 68
    except ImportError:
        isolation = True
    source = _source_copy(out.parent / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)]
    if not isolation:
        cmd.insert(4, "--no-build-isolation")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    (wheel_path,) = out.glob("warpsdf-*.whl")
    return wheel_path


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh venv with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    wheel_path = _build_wheel(root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # dependencies from the test environment, after the venv's own packages
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel_path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_the_wheel_holds_the_library_and_the_scenes(installed, tmp_path):
    out = _run(
        installed, tmp_path, "python", "-c",
        "import warpsdf, warpsdf.cli.main; from warpsdf.bench import shipped_scene;"
        "print(warpsdf.__file__); print(shipped_scene('airplane.toml'))",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    module, scene = out.stdout.split()
    assert str(REPO) not in module and Path(module).is_relative_to(installed.parent)
    assert Path(scene).is_file() and Path(scene).is_relative_to(installed.parent)


def test_new_and_validate_from_the_wheel(installed, tmp_path):
    for template in ("silhouette", "mesh"):
        out = _run(installed, tmp_path, "warpsdf", "new", f"s_{template}", "-t", template)
        assert out.returncode == 0, out.stdout + out.stderr
        out = _run(installed, tmp_path, "warpsdf", "validate", f"s_{template}.toml")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "[target]" in out.stdout
    assert (tmp_path / "s_mesh_mesh.ply").is_file()


def test_bench_quick_from_the_wheel(installed, tmp_path):
    out = _run(installed, tmp_path, "warpsdf", "bench", "--quick", "--device", "cpu")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line["benchmark"] for line in lines] == ["render_shaded", "fit"]
    assert all(line["device"] == "cpu" for line in lines)
    assert lines[1]["iterations_per_s"] > 0
