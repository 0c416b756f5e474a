"""Shared fixtures. Device-parametrised tests run on the CPU by default and,
where a CUDA device exists, again on it under the ``gpu`` marker
(``pytest -m gpu``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import warp as wp

wp.config.log_level = wp.LOG_WARNING
wp.init()

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"

_DEVICES = [pytest.param("cpu", id="cpu")]
if wp.get_cuda_device_count() > 0:
    _DEVICES.append(pytest.param("cuda:0", id="cuda", marks=pytest.mark.gpu))


@pytest.fixture(params=_DEVICES)
def device(request) -> str:
    """A Warp device name: 'cpu', plus 'cuda:0' under the gpu marker."""
    return request.param


def cli(*args):
    """Run the warpsdf CLI in-process (Typer's CliRunner); arguments may be paths."""
    from typer.testing import CliRunner

    from warpsdf.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, *needles: str) -> str:
    """For a CliRunner result of bad input: exit code 2, no traceback, and every
    needle in the one error line."""
    text = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, text)
    assert "Traceback" not in text and "Traceback" not in result.output
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def cpu_blocks():
    """Real thread blocks on the CPU (Warp's cooperative fibers), for this test only."""
    before = wp.config.enable_cpu_blocks
    wp.config.enable_cpu_blocks = True
    yield
    wp.config.enable_cpu_blocks = before
