"""hermes-env-terminal-bench: Terminal-Bench 2 / Harbor task directories as a hermes environment.

``hermes eval terminal-bench --set path=DIR --agent oracle --backend docker`` runs every task of a
Harbor dataset (a task directory, a folder of them, or the parquet form) the way Harbor does:
the image is built from the task's ``environment/`` (cached), the agent works in it, then the
task's ``tests/test.sh`` writes ``/logs/verifier/reward.txt`` or ``reward.json``.

Registration imports nothing heavy: the environment's modules load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_core import EnvironmentRegistry, VerifierRegistry, hookimpl

__version__ = "0.1.0"

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


async def verify(item: Any, result: Any, ctx: Any) -> dict[str, float]:
    """Run a (single-step) Harbor task's tests in the rollout's sandbox and read its reward."""
    from ._env import verify_item

    return await verify_item(item, result, ctx)


@hookimpl
def hermes_register_environments(registry: EnvironmentRegistry) -> None:
    registry.register(
        "terminal-bench",
        "hermes_env_terminal_bench._env:TerminalBench",
        default_config=DEFAULT_CONFIG,
        description="Terminal-Bench 2 / Harbor task directories (--set path=DIR; needs the docker backend)",
    )


@hookimpl
def hermes_register_verifiers(registry: VerifierRegistry) -> None:
    registry.register("terminal-bench", verify, description="runs a Harbor task's tests/test.sh and reads its reward file")


_EXPORTS = {
    "TerminalBench": "_env", "TerminalBenchConfig": "_env", "VerifierError": "_env",
    "HarborTask": "_tasks", "load_task": "_tasks", "load_dataset": "_tasks", "materialize_parquet": "_tasks",
    "TaskConfig": "_schema", "load_task_toml": "_schema",
}


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "HarborTask", "TaskConfig", "TerminalBench", "TerminalBenchConfig", "VerifierError",
    "hermes_register_environments", "hermes_register_verifiers", "load_dataset", "load_task",
    "load_task_toml", "materialize_parquet", "verify",
]
