"""Plugins: entry-point discovery, the typed registrars handed to the registration hooks, the
registries behind them, and lazy ``"module:attr"`` references (see ``docs/plugins.md``)."""

from ._lazy import lazy_exports
from ._manager import BUILTIN_DIST, DEFAULT_PLUGINS, PluginInfo, discover, load_into
from ._registry import (
    KNOWN_PACKAGES,
    AgentRegistry,
    AgentSpec,
    BackendRegistry,
    BackendSpec,
    EnvironmentRegistry,
    EnvironmentSpec,
    ParserSpec,
    Ref,
    Registry,
    ToolCallParserRegistry,
    ToolRegistry,
    ToolsetRegistry,
    ToolsetSpec,
    ToolSpec,
    VerifierRegistry,
    VerifierSpec,
)

__all__ = [
    "BUILTIN_DIST",
    "DEFAULT_PLUGINS",
    "KNOWN_PACKAGES",
    "AgentRegistry",
    "AgentSpec",
    "BackendRegistry",
    "BackendSpec",
    "EnvironmentRegistry",
    "EnvironmentSpec",
    "ParserSpec",
    "PluginInfo",
    "Ref",
    "Registry",
    "ToolCallParserRegistry",
    "ToolRegistry",
    "ToolSpec",
    "ToolsetRegistry",
    "ToolsetSpec",
    "VerifierRegistry",
    "VerifierSpec",
    "discover",
    "lazy_exports",
    "load_into",
]
