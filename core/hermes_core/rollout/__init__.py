"""Rollouts: the task and result value types, agents and the agent loop, environments and
verifiers, the runner, the results directory and the statistics of its files (see
``docs/eval.md``)."""

from typing import TYPE_CHECKING

from ..plugin._lazy import lazy_exports

if TYPE_CHECKING:
    from ..errors import SetupError
    from ._agent import Agent, OpenAIAgent, initial_messages, to_sharegpt
    from ._environment import (
        Environment,
        EnvironmentConfig,
        Verifier,
        normalize_score,
        run_verifier,
    )
    from ._results import ResultsDir, summarize
    from ._runner import Rollout, Runner, RunReport
    from ._stats import (
        RunStats,
        TaskStats,
        pass_at_k,
        passed,
        run_stats,
        sample_std,
        task_stats,
    )
    from ._task import STOP_REASONS, AgentResult, TaskItem, VerifierOutcome

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "STOP_REASONS": "._task", "AgentResult": "._task", "TaskItem": "._task", "VerifierOutcome": "._task",
        "Agent": "._agent", "OpenAIAgent": "._agent", "initial_messages": "._agent", "to_sharegpt": "._agent",
        "Environment": "._environment", "EnvironmentConfig": "._environment", "Verifier": "._environment",
        "normalize_score": "._environment", "run_verifier": "._environment",
        "ResultsDir": "._results", "passed": "._stats", "summarize": "._results",
        "Rollout": "._runner", "Runner": "._runner", "RunReport": "._runner",
        "RunStats": "._stats", "TaskStats": "._stats", "pass_at_k": "._stats", "run_stats": "._stats",
        "sample_std": "._stats", "task_stats": "._stats",
        "SetupError": "..errors",
    },
    globals(),
)

__all__ = [
    "STOP_REASONS",
    "Agent",
    "AgentResult",
    "Environment",
    "EnvironmentConfig",
    "OpenAIAgent",
    "ResultsDir",
    "Rollout",
    "RunReport",
    "RunStats",
    "Runner",
    "SetupError",
    "TaskItem",
    "TaskStats",
    "Verifier",
    "VerifierOutcome",
    "initial_messages",
    "normalize_score",
    "pass_at_k",
    "passed",
    "run_stats",
    "run_verifier",
    "sample_std",
    "summarize",
    "task_stats",
    "to_sharegpt",
]
