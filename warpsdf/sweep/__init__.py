"""Sweeps: many fits of one base scene with different overrides, one run
folder per point under the sweep folder's ``points/`` (see
:class:`warpsdf.io.layout.SweepFolder`).

Three modules, each importing only the ones above it:

- :mod:`warpsdf.sweep.plan` reads and checks a sweep file (its format is
  documented there) into a :class:`Sweep` of :class:`SweepPoint`, each with
  its resolved scene.
- :mod:`warpsdf.sweep.summary` judges a finished point (:class:`PointStatus`,
  :func:`classify`), keeps its record (point.json) so that a re-run skips it,
  and writes the summaries and plots.
- :mod:`warpsdf.sweep.run` runs points (here, in worker processes, or on Ray)
  and a whole sweep (:func:`run_sweep`).

A point that fails is recorded with its reason and the others go on;
re-running a sweep skips points whose run folder already finished with the
same resolved scene.
"""

from warpsdf.sweep.plan import Criteria, Sweep, SweepPoint, load_sweep, point_scene
from warpsdf.sweep.run import (
    Executor,
    init_worker,
    local_devices,
    parse_executor,
    point_spec,
    run_local,
    run_point,
    run_ray,
    run_sweep,
)
from warpsdf.sweep.summary import (
    SUMMARY_METRICS,
    PointResult,
    PointStatus,
    SweepSummary,
    classify,
    finished_result,
    store_point,
    write_summary,
)

__all__ = [
    "SUMMARY_METRICS",
    "Criteria",
    "Executor",
    "PointResult",
    "PointStatus",
    "Sweep",
    "SweepPoint",
    "SweepSummary",
    "classify",
    "finished_result",
    "init_worker",
    "load_sweep",
    "local_devices",
    "parse_executor",
    "point_scene",
    "point_spec",
    "run_local",
    "run_point",
    "run_ray",
    "run_sweep",
    "store_point",
    "write_summary",
]
