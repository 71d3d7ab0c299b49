"""Statistics of a run for the viewer: the same code that writes ``summary.json``
(``hermes_core.rollout._stats``), re-exported under the viewer's names."""

from __future__ import annotations

from hermes_core.rollout._stats import (
    PHASES,
    RunStats,
    TaskStats,
    pass_at_k,
    passed,
    run_stats,
    sample_std,
    stats_dict,
    task_stats,
    tokens,
)

__all__ = [
    "PHASES",
    "RunStats",
    "TaskStats",
    "pass_at_k",
    "passed",
    "run_stats",
    "sample_std",
    "stats_dict",
    "task_stats",
    "tokens",
]
