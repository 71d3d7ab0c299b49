"""Built-in tool-call parsers for servers that return raw completions (registration only)."""

from __future__ import annotations

from hermes_core import ToolCallParserRegistry, hookimpl


@hookimpl
def hermes_register_tool_call_parsers(registry: ToolCallParserRegistry) -> None:
    """Register the built-in tool-call parsers (filled in by the parsers work)."""
