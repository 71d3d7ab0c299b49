"""hermes-backend-singularity: hermes-core sandboxes as Apptainer/Singularity instances.

Installing the distribution registers the ``singularity`` backend (and ``apptainer``, the same
backend under its new name) through the ``hermes`` entry-point group. Registering imports
nothing: the backend's modules load when the first sandbox is made.
"""

from __future__ import annotations

from typing import Any

from hermes_core import BackendRegistry, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "SingularitySandbox": "_backend", "InstanceGoneError": "_backend", "sweep": "_backend",
    "BinaryNotFoundError": "_cli",
    "SingularityOptions": "_options",
}


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register the ``singularity`` backend, also as ``apptainer``."""
    for name in ("singularity", "apptainer"):
        registry.register(
            name,
            "hermes_backend_singularity._backend:_factory",
            options="hermes_backend_singularity._options:SingularityOptions",
            description="one apptainer/singularity instance per sandbox (the CLI on PATH; HPC clusters)",
            sweep="hermes_backend_singularity._backend:sweep" if name == "singularity" else None,
        )


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "BinaryNotFoundError",
    "InstanceGoneError",
    "SingularityOptions",
    "SingularitySandbox",
    "hermes_register_backends",
    "sweep",
]
