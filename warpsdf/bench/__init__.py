"""Benchmarks (DESIGN §7): the cases and defaults (:mod:`.cases`, light) and
their measurement (:mod:`.measure`: renders and fits as JSON lines).

Only the cases are imported here, so the CLI can read them cheaply; import
:mod:`warpsdf.bench.measure` to run them.
"""

from warpsdf.bench.cases import (
    DEFAULT_ITERATIONS,
    DEFAULT_RESOLUTION,
    FIT_CASES,
    QUICK,
    RENDER_CASES,
    CaseKind,
    QuickRun,
    Subject,
    all_cases,
    parse_case,
    shipped_scene,
)

__all__ = [
    "DEFAULT_ITERATIONS",
    "DEFAULT_RESOLUTION",
    "FIT_CASES",
    "QUICK",
    "RENDER_CASES",
    "CaseKind",
    "QuickRun",
    "Subject",
    "all_cases",
    "parse_case",
    "shipped_scene",
]
