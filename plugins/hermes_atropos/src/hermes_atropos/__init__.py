"""hermes-atropos: any registered hermes-core environment as an Atropos environment server.

``HermesAtroposEnv`` (an ``atroposlib`` ``BaseEnv``) takes tasks from a hermes environment, runs
each group of rollouts through the hermes Runner (one fresh sandbox per rollout, concurrently),
scores them with the environment's verifier in the same sandbox, and hands Atropos
``ScoredDataGroup``\\ s with tokens, masks, scores, messages and inference logprobs.

``atroposlib`` is imported only when the environment class is first used, never by
``import hermes_core`` or by importing this package.

    hermes-atropos serve --env.environment terminal-test --env.tokenizer_name DIR ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HermesAtroposEnv": "_env", "HermesAtroposConfig": "_env",
    "build_group": "_groups", "rollout_sequence": "_groups", "GroupStats": "_groups", "is_infra_failure": "_groups",
}


def main() -> None:
    """``hermes-atropos serve|process|evaluate ...`` (atroposlib's CLI for :class:`HermesAtroposEnv`)."""
    from ._env import HermesAtroposEnv

    HermesAtroposEnv.cli()


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = ["GroupStats", "HermesAtroposConfig", "HermesAtroposEnv", "build_group", "is_infra_failure", "main", "rollout_sequence"]
