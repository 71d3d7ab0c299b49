"""hermes-backend-docker: hermes-core sandboxes as Docker containers, on any Docker-API engine.

Installing the distribution registers the ``docker`` backend through the ``hermes`` entry-point
group. Registering imports nothing heavy: the backend's modules load when the first sandbox is
made, and the ``docker`` SDK when it starts.
"""

from __future__ import annotations

from typing import Any

from hermes_core import hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "DockerSandbox": "_backend", "sweep": "_backend",
    "ContainerGoneError": "_engine", "EngineUnavailableError": "_engine", "ImageNotFoundError": "_engine",
    "DockerOptions": "_options",
    "DockerProcess": "_process",
}


@hookimpl
def hermes_register_backends(registry: Any) -> None:
    """Register the ``docker`` backend."""
    registry.register(
        "docker",
        "hermes_backend_docker._backend:_factory",
        options="hermes_backend_docker._options:DockerOptions",
        description="one container per sandbox on any Docker-API engine ($DOCKER_HOST)",
        sweep="hermes_backend_docker._backend:sweep",
    )


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "ContainerGoneError",
    "DockerOptions",
    "DockerProcess",
    "DockerSandbox",
    "EngineUnavailableError",
    "ImageNotFoundError",
    "hermes_register_backends",
    "sweep",
]
