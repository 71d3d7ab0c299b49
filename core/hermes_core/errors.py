"""The error hierarchy: one root, small subclasses, messages people can act on."""

from __future__ import annotations

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
