"""hermes-backend-docker: hermes-core sandboxes as Docker containers, on any Docker-API engine.

Installing the distribution registers the ``docker`` backend through the ``hermes`` entry-point
group. Registering imports nothing heavy: the backend's modules load when the first sandbox is
made, and the ``docker`` SDK when it starts.
"""

from __future__ import annotations

from hermes_core import BackendRegistry, hookimpl, lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DockerSandbox": "._backend", "sweep": "._backend",
        "ContainerGoneError": "._engine", "EngineUnavailableError": "._engine", "ImageNotFoundError": "._engine",
        "DockerOptions": "._options", "BuildOptions": "._options",
        "ImageBuildError": "._build", "sweep_images": "._build", "cache_key": "._build",
        "map_image": "._build", "map_from_lines": "._build",
        "DockerProcess": "._process",
    },
    globals(),
)


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register the ``docker`` backend."""
    registry.register(
        "docker",
        "hermes_backend_docker._backend:_factory",
        options="hermes_backend_docker._options:DockerOptions",
        description="one container per sandbox on any Docker-API engine ($DOCKER_HOST)",
        sweep="hermes_backend_docker._backend:sweep",
    )


__all__ = [
    "BuildOptions",
    "ContainerGoneError",
    "ImageBuildError",
    "cache_key",
    "map_from_lines",
    "map_image",
    "sweep_images",
    "DockerOptions",
    "DockerProcess",
    "DockerSandbox",
    "EngineUnavailableError",
    "ImageNotFoundError",
    "hermes_register_backends",
    "sweep",
]
