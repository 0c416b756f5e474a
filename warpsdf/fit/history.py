"""The history of a chunk of steps: each step's statistics packed on the device
into one float64 row, the guard's record in a last status row, so that one
copy per chunk reads everything back; and :class:`StepRecord`, what one step
measured, as the live table and log.csv see it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import warp as wp

from warpsdf.fit import schedule
from warpsdf.losses import NUM_TERMS, TERM_NAMES, Term
from warpsdf.scene import Scene


class Column(IntEnum):
    """Columns of a history row (one row per step of a chunk, float64)."""

    LOSS = 0  # weighted loss
    TERMS = 1  # NUM_TERMS unweighted terms from here on, in Term order
    MISMATCH = 1 + NUM_TERMS  # rays whose hard predicted mask differs from the target
    INTERSECTION = 2 + NUM_TERMS  # rays predicted and target both on the object
    UNION = 3 + NUM_TERMS  # rays predicted or target on the object


HISTORY_COLUMNS = 4 + NUM_TERMS


class Status(IntEnum):
    """Columns of the status row, the history's last row (written once per chunk)."""

    HALT_ITERATION = 0  # 1-based iteration of the first bad step, or NO_DIVERGENCE
    HALT_PROBLEM = 1  # a Problem, or NO_DIVERGENCE


@wp.kernel(enable_backward=False)
def step_stats_kernel(
    hit_t: wp.array(dtype=float),  # (B,) predicted hit distance, -1 = miss
    target_mask: wp.array(dtype=float),  # (B,) 1 on the object
    loss: wp.array(dtype=float),  # (1,) weighted loss
    terms: wp.array(dtype=float),  # (NUM_TERMS,) unweighted terms
    slot: wp.array(dtype=int),  # (1,) this step's row
    history_out: wp.array2d(dtype=wp.float64),  # (K + 1, HISTORY_COLUMNS), zeroed per chunk
):
    """One thread per ray (dim = B). Not differentiable. Hard masks: predicted
    ``hit_t >= 0``, target ``mask > 0.5``, counted into the MISMATCH,
    INTERSECTION and UNION columns (atomics; counts are exact in float64);
    thread 0 also copies the loss and its terms."""
    r = wp.tid()
    s = slot[0]
    if r == 0:
        history_out[s, int(Column.LOSS)] = wp.float64(loss[0])
        for t in range(NUM_TERMS):
            history_out[s, int(Column.TERMS) + t] = wp.float64(terms[t])
    pred = hit_t[r] >= 0.0
    truth = target_mask[r] > 0.5
    one = wp.float64(1.0)
    if pred != truth:
        wp.atomic_add(history_out, s, int(Column.MISMATCH), one)
        wp.atomic_add(history_out, s, int(Column.UNION), one)
    elif pred:
        wp.atomic_add(history_out, s, int(Column.INTERSECTION), one)
        wp.atomic_add(history_out, s, int(Column.UNION), one)


@wp.kernel(enable_backward=False)
def status_row_kernel(
    halt: wp.array(dtype=int),  # (2,) the guard's record
    history_out: wp.array2d(dtype=wp.float64),  # (K + 1, HISTORY_COLUMNS)
):
    """One thread (dim = 1), once per chunk: the guard's record into the status
    row (row K), so that one copy reads everything back. Not differentiable."""
    k = history_out.shape[0] - 1
    history_out[k, int(Status.HALT_ITERATION)] = wp.float64(halt[0])
    history_out[k, int(Status.HALT_PROBLEM)] = wp.float64(halt[1])


@dataclass
class StepRecord:
    """What one step measured (for the live table and log.csv)."""

    iteration: int  # 1-based count of steps done
    loss: float
    terms: dict[str, float]
    mask_mse: float  # mean squared error of the hard predicted mask
    iou: float  # IoU of the hard predicted mask on this step's rays
    lr: float
    alpha: float
    seconds: float  # wall time of this step (its chunk's time / the chunk's steps)

    def row(self) -> dict[str, float]:
        return {
            "iteration": self.iteration,
            "loss": self.loss,
            **self.terms,
            "mask_mse": self.mask_mse,
            "iou": self.iou,
            "lr": self.lr,
            "alpha": self.alpha,
            "seconds": self.seconds,
        }


class StepRate:
    """The progress table's speed, from the records themselves (each
    ``seconds`` is its share of its chunk's wall time, so a chunk's steps and
    its time always arrive together): ``per_second``, the steps seen over the
    time they took (the first chunk's kernel compilation included: what a
    stopwatch on the loop gives), and ``eta``, the remaining steps at the pace
    of the latest chunk."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0  # wall time of the steps seen
        self.latest = 0.0  # seconds per step of the latest chunk

    def add(self, record: StepRecord) -> None:
        self.steps += 1
        self.seconds += record.seconds
        self.latest = record.seconds

    @property
    def per_second(self) -> float:
        """Steps per second so far (0 before any step took time)."""
        return self.steps / self.seconds if self.seconds > 0.0 else 0.0

    def eta(self, remaining: int) -> float:
        """Seconds left for ``remaining`` steps at the latest chunk's pace."""
        return max(remaining, 0) * self.latest


LOG_COLUMNS = ("iteration", "loss", *TERM_NAMES, "mask_mse", "iou", "lr", "alpha", "seconds")
# Columns added since checkpoints first kept the log: an older checkpoint's log
# lacks them and reads them as 0 (the term did not exist then).
ADDED_COLUMNS = ("smoothness",)


def record_from_row(
    scene: Scene, iteration: int, row: np.ndarray, rays: int, seconds: float
) -> StepRecord:
    """The record of 0-based ``iteration`` from its history row (``rays``: the
    step's ray count, for the mask MSE)."""
    union = row[Column.UNION]
    return StepRecord(
        iteration=iteration + 1,
        loss=float(row[Column.LOSS]),
        terms={
            name: float(row[Column.TERMS + t]) for name, t in zip(TERM_NAMES, Term, strict=True)
        },
        mask_mse=float(row[Column.MISMATCH] / rays),
        iou=1.0 if union == 0 else float(row[Column.INTERSECTION] / union),
        lr=schedule.learning_rate(scene, iteration),
        alpha=schedule.mask_alpha(scene, iteration),
        seconds=seconds,
    )
