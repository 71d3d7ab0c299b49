"""Built-in tool-call parsers for servers that return raw completions (registration only; the
parsers live in :mod:`hermes_plugins.parsers` and load on first use)."""

from __future__ import annotations

from hermes_core import AgentRegistry, ToolCallParserRegistry, hookimpl


@hookimpl
def hermes_register_tool_call_parsers(registry: ToolCallParserRegistry) -> None:
    """Register the built-in tool-call parsers as lazy ``"module:attr"`` references."""
    from .parsers import PARSER_REFS, PARSERS  # the table only: no parser is imported

    for name, ref in PARSER_REFS.items():
        registry.register(name, ref, description=PARSERS[name][1])


@hookimpl
def hermes_register_agents(registry: AgentRegistry) -> None:
    """Register ``openai-completions``: token-exact rollouts over a raw-completions server."""
    registry.register(
        "openai-completions",
        "hermes_plugins.parsers._completions:completions_factory",
        description="token-exact loop over a vLLM/SGLang completions endpoint: chat template + tool-call parser "
        "client-side; tokens, masks and logprobs in the result",
    )
