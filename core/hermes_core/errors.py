"""The error hierarchy: one root, small subclasses, messages people can act on."""

from __future__ import annotations

from typing import Any

__all__ = [
    "HermesError",
    "PluginError",
    "DuplicateNameError",
    "UnknownNameError",
    "ToolsetError",
    "ConfigError",
    "SandboxError",
    "SandboxClosedError",
    "TransferError",
    "ProcessError",
    "ProcessNotFoundError",
    "ProcessForbiddenError",
    "ProcessEndedError",
    "ProcessLimitError",
    "ToolFailure",
    "SetupError",
]


class HermesError(Exception):
    """Root of every error hermes-core raises on purpose."""


class PluginError(HermesError):
    """A plugin failed to import or to register."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same name in the same registry."""


class UnknownNameError(HermesError, KeyError):
    """A name was looked up that no installed plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ToolsetError(HermesError):
    """A toolset could not be resolved (unknown name or a cycle)."""


class ConfigError(HermesError):
    """A configuration file or value is invalid."""


class SandboxError(HermesError):
    """A sandbox operation failed."""


class SandboxClosedError(SandboxError):
    """The sandbox was closed (or died) and cannot run anything more."""


class TransferError(SandboxError):
    """A file transfer did not deliver exactly the bytes it was given."""


class ProcessError(HermesError):
    """A background-process action was refused or failed."""


class ProcessNotFoundError(ProcessError):
    """No session has this id."""


class ProcessForbiddenError(ProcessError):
    """The session belongs to another rollout (task id)."""


class ProcessEndedError(ProcessError):
    """The action needs a running process (or open stdin) and the session has none."""


class ProcessLimitError(ProcessError):
    """A rollout already runs as many background processes as the config allows."""


class ToolFailure(HermesError):
    """Raise from a tool handler to return a structured error to the model.

    Args:
        message: what went wrong and, where possible, how to fix it.
        kind: a short machine-readable category (``not_found``, ``invalid_arguments``, ...).
    """

    def __init__(self, message: str, kind: str = "tool_error", **details: Any):
        super().__init__(message)
        self.kind = kind
        self.details = details


class SetupError(HermesError):
    """Preparing a task's sandbox failed (a file could not be written, the setup command failed)."""
