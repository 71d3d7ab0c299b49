"""The ``terminal-test`` environment: small terminal tasks, each with a reference solution and a
verifier that checks the sandbox. ``hermes eval terminal-test --agent oracle`` scores 1.0 on
every task without any model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hermes_core import hookimpl
from hermes_core.environment import Environment, EnvironmentConfig, TaskItem

from .tasks import CHECKS, TASKS

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


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


def load_default_config() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}


@hookimpl
def hermes_register_environments(registry) -> None:
    registry.register(
        "terminal-test",
        TerminalTest,
        default_config=load_default_config(),
        description=f"{len(TASKS)} built-in terminal tasks with reference solutions (oracle scores 1.0)",
    )


@hookimpl
def hermes_register_verifiers(registry) -> None:
    registry.register("terminal-test", verify, description="checks the sandbox of a terminal-test task")


__all__ = ["TerminalTest", "TerminalTestConfig", "verify"]
