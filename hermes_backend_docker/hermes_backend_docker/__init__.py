"""hermes-backend-docker: hermes-core sandboxes as Docker containers, on any Docker-API engine.

Installing the distribution registers the ``docker`` backend through the ``hermes`` entry-point
group; the ``docker`` SDK itself is imported only when a sandbox starts.
"""

from ._backend import DockerSandbox, hermes_register_backends, sweep
from ._engine import ContainerGoneError, EngineUnavailableError, ImageNotFoundError
from ._options import DockerOptions
from ._process import DockerProcess

__version__ = "0.1.0"

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
