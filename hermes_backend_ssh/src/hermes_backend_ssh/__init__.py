"""hermes-backend-ssh: hermes-core sandboxes on SSH hosts — one connection and one remote
directory per rollout, placed on the least-loaded host of a pool.

Installing the distribution registers the ``ssh`` backend through the ``hermes`` entry-point
group. Registering imports nothing heavy: the backend's modules (and ``asyncssh``) load when
the first sandbox is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hermes_core import BackendRegistry, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "SSHSandbox": "_backend",
    "SSHProcess": "_channel",
    "AuthenticationError": "_connect",
    "HostDownError": "_connect",
    "HostKeyError": "_connect",
    "HostUnreachableError": "_connect",
    "RemoteDiskFullError": "_connect",
    "RemoteSetupError": "_connect",
    "HostSpec": "_options",
    "SSHOptions": "_options",
    "HostPool": "_pool",
    "sweep": "_sweep",
}


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register the ``ssh`` backend (one host pool per Runtime: this hook runs once for each)."""
    pool: list[Any] = []

    def factory(options: Any, *, sandbox_id: str, labels: Mapping[str, str]) -> Any:
        from ._backend import SSHSandbox
        from ._pool import HostPool

        if not pool:
            pool.append(HostPool())
        return SSHSandbox(options, sandbox_id=sandbox_id, labels=labels, pool=pool[0])

    registry.register(
        "ssh",
        factory,
        options="hermes_backend_ssh._options:SSHOptions",
        description="one SSH connection and remote directory per sandbox, on a pool of hosts",
        sweep="hermes_backend_ssh._sweep:sweep",
    )


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [*sorted(_EXPORTS), "hermes_register_backends"]
