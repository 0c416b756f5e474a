"""Fitting a field to a scene's target.

    schedule.py   learning rate and mask sharpness per iteration (host and device)
    optim.py      device-side Adam with its backup for the divergence guard
    guard.py      the finiteness guard and DivergedError
    staging.py    flattened targets, a chunk's random inputs, staging kernels
    history.py    per-step statistics packed on the device, StepRecord, StepRate, log columns
    fitter.py     Fitter: allocate once, steps in chunks (graph replay on CUDA)
    outputs.py    the run folder's files: checkpoint, log, GIF, renders, metrics
    run.py        fit(): a Fitter with a run folder, Ctrl-C, resume

The module is callable: ``warpsdf.fit(scene, out_dir)`` is :func:`run.fit`
(the package and the library's main function share the name).
"""

from __future__ import annotations

import sys
import types

from warpsdf.fit.fitter import Fitter, StepBuffers
from warpsdf.fit.guard import DivergedError
from warpsdf.fit.history import LOG_COLUMNS, StepRate, StepRecord
from warpsdf.fit.run import (
    FitResult,
    RunStatus,
    check_run_folder,
    fit,
    load_run,
    prepare_run_folder,
)
from warpsdf.fit.schedule import learning_rate, mask_alpha

__all__ = [
    "LOG_COLUMNS",
    "DivergedError",
    "FitResult",
    "Fitter",
    "RunStatus",
    "StepBuffers",
    "StepRate",
    "StepRecord",
    "check_run_folder",
    "fit",
    "learning_rate",
    "load_run",
    "mask_alpha",
    "prepare_run_folder",
]


class _CallableModule(types.ModuleType):
    """``warpsdf.fit(...)`` calls :func:`warpsdf.fit.run.fit`."""

    def __call__(self, *args, **kwargs) -> FitResult:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
