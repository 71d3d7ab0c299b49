"""The ``terminal-test`` environment class and its verifier (imported on first use)."""

from __future__ import annotations

from typing import Any

from hermes_core.rollout import Environment, EnvironmentConfig, TaskItem

from .tasks import CHECKS, TASKS


class TerminalTestConfig(EnvironmentConfig):
    """Config of ``terminal-test`` (the common keys only; see ``default.yaml``)."""


class TerminalTest(Environment):
    """Built-in terminal tasks (files, a failing script, a background server, CSV, ...)."""

    config_model = TerminalTestConfig
    verifier = "terminal-test"

    async def load_tasks(self) -> list[TaskItem]:
        return [
            TaskItem(id=t.id, prompt=t.prompt, files=t.files, setup=t.setup, solution=t.solution)
            for t in TASKS
        ]


async def verify(item: TaskItem, result: Any, ctx: Any) -> float | dict[str, float]:
    """Check a terminal-test task's sandbox (dispatches on the task id)."""
    try:
        check = CHECKS[item.id]
    except KeyError:
        raise KeyError(f"terminal-test has no check for task {item.id!r}; known: {', '.join(CHECKS)}") from None
    return await check(ctx, item)


__all__ = ["TerminalTest", "TerminalTestConfig", "verify"]
