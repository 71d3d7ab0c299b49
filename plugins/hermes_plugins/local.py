"""The ``local`` backend: a sandbox is a fresh directory, a scrubbed environment and its own
process groups on this machine (see ``_local_backend``).

This module only registers the backend; the implementation loads when the first sandbox is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_core import BackendRegistry, hookimpl, lazy_exports

_IMPL = "hermes_plugins._local_backend"


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    # One process sweeper and one set of spare directories and cgroups per Runtime (this hook runs once
    # for each), made on first use.
    shared: list[Any] = []

    def factory(options: Any, *, sandbox_id: str, labels: Mapping[str, str]) -> Any:
        if not shared:
            from ._local_backend import LocalSandbox, MarkedProcessSweeper, SpareCgroups, SpareDirectories

            shared.extend((MarkedProcessSweeper(), SpareDirectories(), SpareCgroups(), LocalSandbox))
        return shared[3](options, sandbox_id=sandbox_id, labels=labels, sweeper=shared[0], spares=shared[1],
                         spare_cgroups=shared[2])

    def close() -> None:
        if shared:
            shared[1].drain()
            shared[2].drain()

    registry.register(
        "local",
        factory,
        options=f"{_IMPL}:LocalOptions",
        description="a fresh directory, scrubbed environment and own process groups on this machine",
        sweep=f"{_IMPL}:sweep",
        images=False,
        close=close,
    )


__getattr__, __dir__ = lazy_exports(
    __name__,
    {name: _IMPL for name in (
        "LocalOptions", "LocalSandbox", "MarkedProcessSweeper", "kill_marked", "sweep", "sweep_marked",
        "MARKER", "INHERITED_ENV",
    )},
    globals(),
)


__all__ = ["LocalOptions", "LocalSandbox", "MarkedProcessSweeper", "kill_marked", "sweep", "sweep_marked"]
