"""Metrics (:mod:`warpsdf.metrics`) on small closed-form cases.

The metrics a fit writes (metrics.json) are checked with the run folder in
tests/test_fit_run.py, and the training and held-out IoU and the XYZ error of
converged fits in tests/test_convergence.py (``-m slow``).
"""

from __future__ import annotations

import numpy as np
import pytest

from warpsdf.metrics import mask_iou


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
