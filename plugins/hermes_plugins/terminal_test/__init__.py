"""The ``terminal-test`` environment: small terminal tasks, each with a reference solution and a
verifier that checks the sandbox. ``hermes eval terminal-test --agent oracle`` scores 1.0 on
every task without any model.

Registration imports nothing heavy: the environment class and its YAML config load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_core import EnvironmentRegistry, VerifierRegistry, hookimpl, lazy_exports

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


async def verify(item: Any, result: Any, ctx: Any) -> float | dict[str, float]:
    """Check a terminal-test task's sandbox (dispatches on the task id)."""
    from ._env import verify as check

    return await check(item, result, ctx)


@hookimpl
def hermes_register_environments(registry: EnvironmentRegistry) -> None:
    registry.register(
        "terminal-test",
        "hermes_plugins.terminal_test._env:TerminalTest",
        default_config=DEFAULT_CONFIG,
        description="built-in terminal tasks with reference solutions (the oracle scores 1.0)",
    )


@hookimpl
def hermes_register_verifiers(registry: VerifierRegistry) -> None:
    registry.register("terminal-test", verify, description="checks the sandbox of a terminal-test task")


__getattr__, __dir__ = lazy_exports(
    __name__, {"TerminalTest": "._env", "TerminalTestConfig": "._env"}, globals()
)


__all__ = ["TerminalTest", "TerminalTestConfig", "verify"]
