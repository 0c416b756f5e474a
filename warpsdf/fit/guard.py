"""The divergence guard: a step whose loss, field values or gradient are not
finite is recorded in a device halt record, and from then on the optimiser
does nothing (:mod:`warpsdf.fit.optim`); the host reads the record once per
chunk and raises :class:`DivergedError`."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

import warp as wp

if TYPE_CHECKING:  # the history imports nothing from here; only the hint needs it
    from warpsdf.fit.history import StepRecord

# halt[0] while no step has diverged; otherwise halt[0] is the 1-based iteration
# of the first step whose loss, values or gradient were not finite.
NO_DIVERGENCE = 2**31 - 1


class Problem(IntEnum):
    """What the finiteness guard found (halt[1]); the smallest code wins."""

    LOSS = 0
    VALUES = 1
    GRADIENT = 2


class DivergedError(RuntimeError):
    """The loss, a field value or a gradient became NaN or infinite.

    ``records`` holds the good steps of the chunk that diverged (their log
    rows), ``iteration`` the iteration whose parameters were kept.
    """

    def __init__(self, message: str, records: list | None = None, iteration: int = 0):
        super().__init__(message)
        self.records: list[StepRecord] = list(records or [])
        self.iteration = iteration


# A fit that ran to its end with every number finite is still lost when its
# last loss is more than this many times its first: the field flew away from
# the target (no normal fit ends orders of magnitude worse than its start).
LOST_LOSS_FACTOR = 100.0


def lost_reason(losses: list[float], train_iou: float | None = None) -> str:
    """Why a fit that finished without a non-finite number is nevertheless lost,
    or ``""``: its last loss is above ``LOST_LOSS_FACTOR`` x its first (``losses``:
    every step's loss, in order), or its field shows none of the target in the
    training views (``train_iou`` 0; the fitter refuses targets that cover no
    pixel)."""
    if len(losses) >= 2 and losses[0] > 0 and losses[-1] > LOST_LOSS_FACTOR * losses[0]:
        return (
            f"the loss rose from {losses[0]:.4g} to {losses[-1]:.4g} (over "
            f"{LOST_LOSS_FACTOR:g} x its first value): the field flew away from the target"
        )
    if train_iou is not None and train_iou <= 0.0:
        return "the fitted field shows none of the target (train IoU 0)"
    return ""


def progress_warning(ious: list[float], train_iou: float | None) -> str:
    """A warning, or ``""``, for a fit that ended no better than it started: its
    ``train_iou`` (every training ray) is at most the first step's mask IoU
    (``ious``: every step's IoU on its rays). Not a status: a short or noisy
    fit can dip below its start, but the user should know (too high a learning
    rate thrashes this way)."""
    if train_iou is None or not ious or train_iou > ious[0]:
        return ""
    return (
        f"the train IoU ended at {train_iou:.3g}, no better than at the first step "
        f"({ious[0]:.3g}); is the learning rate too high, or the fit too short?"
    )


def describe(problem: Problem, loss: float, halt: int, kept: int) -> str:
    """The message of a divergence found at 1-based iteration ``halt``, whose
    parameters of iteration ``kept`` were kept (``loss``: that step's loss)."""
    if problem is Problem.LOSS:
        what = f"the loss became {loss}"
    elif problem is Problem.VALUES:
        what = "the field's values became non-finite"
    else:
        what = "the gradient became non-finite"
    return f"{what} at iteration {halt}; kept the parameters of iteration {kept}"


@wp.kernel(enable_backward=False)
def finite_guard_kernel(
    loss: wp.array(dtype=float),  # (1,) this step's weighted loss
    values: wp.array(dtype=float),  # (N,) the field at the rays' sample points, world units
    grad: wp.array(dtype=float),  # (P,) dL/dparams after backward
    iteration: wp.array(dtype=int),  # (1,) 0-based iteration of this step
    halt_out: wp.array(dtype=int),  # (2,) [first bad iteration (1-based), Problem]
):
    """One thread per checked number (dim = 1 + N + P): thread 0 the loss,
    then the values, then the gradient. Not differentiable. A non-finite one
    records this step in ``halt_out`` (atomic minima, so the first bad step and
    its most telling problem win); a halt of an earlier step is left alone."""
    i = wp.tid()
    it = iteration[0] + 1
    if halt_out[0] < it:
        return
    n = values.shape[0]
    x = float(0.0)
    problem = int(Problem.GRADIENT)
    if i == 0:
        x = loss[0]
        problem = int(Problem.LOSS)
    elif i <= n:
        x = values[i - 1]
        problem = int(Problem.VALUES)
    else:
        x = grad[i - 1 - n]
    if not wp.isfinite(x):
        wp.atomic_min(halt_out, 0, it)
        wp.atomic_min(halt_out, 1, problem)
