"""hermes-backend-modal: hermes-core sandboxes as Modal sandboxes, through the real Modal SDK.

Installing the distribution registers the ``modal`` backend through the ``hermes`` entry-point
group. Registering imports nothing heavy: the backend's modules load when the first sandbox is
made, and the ``modal`` SDK when it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hermes_core import hookimpl

if TYPE_CHECKING:
    from hermes_core import BackendRegistry

__version__ = "0.1.0"

_EXPORTS = {
    "ModalSandbox": "_backend", "SandboxGoneError": "_backend", "sweep": "_backend",
    "ModalAuthError": "_account", "ModalUnavailableError": "_account",
    "ModalOptions": "_options",
    "ModalProcess": "_process",
}


@hookimpl
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register the ``modal`` backend."""
    registry.register(
        "modal",
        "hermes_backend_modal._backend:_factory",
        options="hermes_backend_modal._options:ModalOptions",
        description="one Modal sandbox per sandbox, through the modal SDK (credentials: MODAL_TOKEN_ID/SECRET)",
        sweep="hermes_backend_modal._backend:sweep",
    )


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "ModalAuthError",
    "ModalOptions",
    "ModalProcess",
    "ModalSandbox",
    "ModalUnavailableError",
    "SandboxGoneError",
    "hermes_register_backends",
    "sweep",
]
