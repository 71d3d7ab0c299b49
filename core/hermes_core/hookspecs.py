"""Hook specifications of the ``hermes`` plugin system.

Hooks are synchronous and cheap: they *register*, they don't *run*. Each receives a typed
registrar. Implementations may accept a subset of the arguments (pluggy allows it); arguments are
added over time, never renamed. Every hook returns ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .plugin._registry import (
        AgentRegistry,
        BackendRegistry,
        EnvironmentRegistry,
        ToolCallParserRegistry,
        ToolRegistry,
        ToolsetRegistry,
        VerifierRegistry,
    )

PROJECT = "hermes"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- sandboxes


@hookspec
def hermes_register_backends(registry: BackendRegistry) -> None:
    """Register sandbox backends (``registry.register(name, factory, options=Model)``).

    Called once per :class:`~hermes_core.Runtime`, when its plugins are loaded.

    Added in 0.1.
    """


# --------------------------------------------------------------------------- tools


@hookspec
def hermes_register_tools(registry: ToolRegistry) -> None:
    """Register tools: name, argument model (→ OpenAI JSON schema), handler, availability check.

    Called once per Runtime. Added in 0.1.
    """


@hookspec
def hermes_register_toolsets(registry: ToolsetRegistry) -> None:
    """Register toolsets: a name → tools, plus other toolsets it includes.

    Called once per Runtime, after tools. Added in 0.1.
    """


@hookspec
def hermes_register_tool_call_parsers(registry: ToolCallParserRegistry) -> None:
    """Register tool-call parsers for servers that return raw completions.

    Called once per Runtime. Added in 0.1.
    """


# --------------------------------------------------------------------------- environments


@hookspec
def hermes_register_environments(registry: EnvironmentRegistry) -> None:
    """Register environments (a class yielding task items, plus its default config).

    Called once per Runtime. Added in 0.1.
    """


@hookspec
def hermes_register_verifiers(registry: VerifierRegistry) -> None:
    """Register verifiers: ``async def verifier(item, result, ctx) -> float | dict``.

    Called once per Runtime. Added in 0.1.
    """


@hookspec
def hermes_register_agents(registry: AgentRegistry) -> None:
    """Register agents (policies such as ``openai`` or ``oracle``).

    Called once per Runtime. Added in 0.1.
    """
