"""hermes-env-swe: software-engineering tasks as a hermes environment.

Two formats: **function tasks** (HumanEval style: a prompt with a signature, hidden tests that
call ``check(candidate)``) and **repository tasks** (SWE-bench instances: a repository at
``base_commit`` in the sandbox; the verifier applies ``test_patch`` and runs FAIL_TO_PASS and
PASS_TO_PASS). ``hermes eval swe --agent oracle --backend docker`` runs the bundled samples.

Registration imports nothing heavy: the environment's modules load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hermes_core import EnvironmentRegistry, VerifierRegistry, hookimpl

__version__ = "0.1.0"

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


async def verify(item: Any, result: Any, ctx: Any) -> dict[str, float]:
    """Score a ``swe`` rollout (function or repository task)."""
    from ._env import verify as check

    return await check(item, result, ctx)


@hookimpl
def hermes_register_environments(registry: EnvironmentRegistry) -> None:
    registry.register(
        "swe",
        "hermes_env_swe._env:Swe",
        default_config=DEFAULT_CONFIG,
        description="function (HumanEval-style) and repository (SWE-bench) tasks; --set dataset=FILE",
    )


@hookimpl
def hermes_register_verifiers(registry: VerifierRegistry) -> None:
    registry.register("swe", verify, description="hidden tests of a function task, or FAIL_TO_PASS/PASS_TO_PASS of an instance")


_EXPORTS = {
    "Swe": "_env", "SweConfig": "_env", "SweVerifierError": "_env",
    "FunctionTask": "_data", "RepoTask": "_data", "load_tasks": "_data", "SAMPLE_DIR": "_data",
}


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "FunctionTask", "RepoTask", "SAMPLE_DIR", "Swe", "SweConfig", "SweVerifierError",
    "hermes_register_environments", "hermes_register_verifiers", "load_tasks", "verify",
]
