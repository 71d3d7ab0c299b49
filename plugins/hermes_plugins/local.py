"""The ``local`` backend: a sandbox is a fresh directory, a scrubbed environment and its own
process groups on this machine (see ``_local_backend``).

This module only registers the backend; the implementation loads when the first sandbox is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_core import hookimpl

_IMPL = "hermes_plugins._local_backend"


@hookimpl
def hermes_register_backends(registry) -> None:
    sweeper: list[Any] = []  # one per Runtime (this hook runs once for each), made on first use

    def factory(options: Any, *, sandbox_id: str, labels: Mapping[str, str]) -> Any:
        from ._local_backend import LocalSandbox, MarkedProcessSweeper

        if not sweeper:
            sweeper.append(MarkedProcessSweeper())
        return LocalSandbox(options, sandbox_id=sandbox_id, labels=labels, sweeper=sweeper[0])

    registry.register(
        "local",
        factory,
        options=f"{_IMPL}:LocalOptions",
        description="a fresh directory, scrubbed environment and own process groups on this machine",
        sweep=f"{_IMPL}:sweep",
    )


_EXPORTS = ("LocalOptions", "LocalSandbox", "MarkedProcessSweeper", "PipeProcess", "kill_marked", "sweep", "sweep_marked", "MARKER", "INHERITED_ENV")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from . import _local_backend

        return getattr(_local_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalOptions", "LocalSandbox", "MarkedProcessSweeper", "kill_marked", "sweep", "sweep_marked"]
