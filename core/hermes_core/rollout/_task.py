"""The value types a rollout passes between its parts: the task an agent works on, what the
agent did, and what the verifier said. The agent, the environment, the runner and the results
writer all import them from here (and never each other for them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..tools._dispatch import ToolError

__all__ = ["STOP_REASONS", "AgentResult", "TaskItem", "VerifierOutcome"]

#: Why a rollout's agent stopped.
STOP_REASONS = ("final_answer", "length", "max_turns", "deadline", "api_error", "solution", "no_solution")


@dataclass
class AgentResult:
    """What an agent did in one rollout.

    Attributes:
        messages: the conversation in OpenAI chat format (assistant messages keep
            ``reasoning_content`` / ``reasoning`` when the server returned it).
        turns: model calls made.
        finished: the agent stopped by itself (a final answer), not by a limit or an error.
        stop_reason: one of :data:`STOP_REASONS`.
        tool_errors: every failed tool call, in order.
        usage: summed token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
        error: why the rollout ended abnormally (API error, failed reference solution, ...).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    finished: bool = False
    stop_reason: str = ""
    tool_errors: list[ToolError] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def final_answer(self) -> str | None:
        """The last assistant message's text when the agent finished naturally."""
        if not self.finished:
            return None
        for m in reversed(self.messages):
            if m.get("role") == "assistant":
                return m.get("content") or ""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "tool_errors": [e.to_dict() for e in self.tool_errors],
            "usage": dict(self.usage),
            "error": self.error,
        }


class TaskItem(BaseModel):
    """One task: what the agent is asked, how its sandbox is prepared, how it can be solved.

    Attributes:
        id: unique within its environment (results and resume are keyed by it).
        prompt: the user message.
        system_prompt: overrides the environment's system prompt for this task.
        image: per-task image, passed to the backend as its ``image`` option.
        backend: per-task backend name (default: the run's).
        backend_options: per-task backend options, merged over the run's.
        toolsets: toolsets offered for this task (default: the run's).
        files: ``{path: text}`` written into the sandbox before the agent starts.
        setup: a shell command run in the sandbox (after ``files``) before the agent starts.
        solution: a reference solution (a shell script) that the ``oracle`` agent runs.
        max_turns: per-task turn limit (default: the environment's).
        metadata: anything the verifier needs (expected values, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str = Field(min_length=1)
    prompt: str
    system_prompt: str | None = None
    image: str | None = None
    backend: str | None = None
    backend_options: dict[str, Any] = Field(default_factory=dict)
    toolsets: list[str] | None = None
    files: dict[str, str] = Field(default_factory=dict)
    setup: str | None = None
    solution: str | None = None
    max_turns: int | None = Field(None, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


@dataclass
class VerifierOutcome:
    """A verifier's reward, its named scores, and the error when it failed (with the
    traceback, bounded, when the verifier raised)."""

    reward: float
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
