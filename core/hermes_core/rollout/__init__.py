"""Rollouts: the task and result value types, agents and the agent loop, environments and
verifiers, the runner, and the results directory (see ``docs/eval.md``)."""

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
    from ._results import ResultsDir, passed, summarize
    from ._runner import Rollout, Runner, RunReport
    from ._task import STOP_REASONS, AgentResult, TaskItem, VerifierOutcome

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "STOP_REASONS": "._task", "AgentResult": "._task", "TaskItem": "._task", "VerifierOutcome": "._task",
        "Agent": "._agent", "OpenAIAgent": "._agent", "initial_messages": "._agent", "to_sharegpt": "._agent",
        "Environment": "._environment", "EnvironmentConfig": "._environment", "Verifier": "._environment",
        "normalize_score": "._environment", "run_verifier": "._environment",
        "ResultsDir": "._results", "passed": "._results", "summarize": "._results",
        "Rollout": "._runner", "Runner": "._runner", "RunReport": "._runner",
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
    "Runner",
    "SetupError",
    "TaskItem",
    "Verifier",
    "VerifierOutcome",
    "initial_messages",
    "normalize_score",
    "passed",
    "run_verifier",
    "summarize",
    "to_sharegpt",
]
