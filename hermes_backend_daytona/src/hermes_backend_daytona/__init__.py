"""hermes-backend-daytona: hermes-core sandboxes as Daytona cloud sandboxes, through the official SDK.

Installing the distribution registers the ``daytona`` backend through the ``hermes`` entry-point
group. Registering imports nothing heavy: the backend's modules load when the first sandbox is
made, and the ``daytona`` SDK when it starts.
"""

from __future__ import annotations

from typing import Any

from hermes_core import BackendRegistry, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "DaytonaSandbox": "_backend",
    "DaytonaProcess": "_process",
    "DaytonaOptions": "_options",
    "sweep": "_sweep",
    "DaytonaAuthError": "_client",
    "DaytonaUnreachableError": "_client",
    "ImageNotFoundError": "_client",
    "QuotaExceededError": "_client",
    "RateLimitedError": "_client",
    "SandboxGoneError": "_client",
}


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register the ``daytona`` backend."""
    registry.register(
        "daytona",
        "hermes_backend_daytona._backend:_factory",
        options="hermes_backend_daytona._options:DaytonaOptions",
        description="one Daytona cloud sandbox per sandbox ($DAYTONA_API_KEY, $DAYTONA_API_URL)",
        sweep="hermes_backend_daytona._sweep:sweep",
    )


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = sorted([*_EXPORTS, "hermes_register_backends"])
