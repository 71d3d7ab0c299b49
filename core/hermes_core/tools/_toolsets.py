"""Toolset composition: order-stable, de-duplicated, loud about cycles and unknown names."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ToolsetError, UnknownNameError
from ..plugin._registry import ToolRegistry, ToolsetRegistry

__all__ = ["resolve_toolsets"]


def resolve_toolsets(names: Iterable[str], toolsets: ToolsetRegistry, tools: ToolRegistry) -> list[str]:
    """Expand toolset names into tool names, first occurrence wins.

    Raises:
        ToolsetError: a cycle (the message shows the chain) or a toolset naming an unknown tool.
        UnknownNameError: an unknown toolset (the message shows who included it).
    """
    out: dict[str, None] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in chain:
            raise ToolsetError("toolset cycle: " + " -> ".join((*chain, name)))
        try:
            spec = toolsets.get(name)
        except UnknownNameError as e:
            if chain:
                raise UnknownNameError(f"{e} (included by {' -> '.join(chain)})") from None
            raise
        for tool in spec.tools:
            if tool not in tools:
                try:
                    tools.get(tool)
                except UnknownNameError as e:
                    raise ToolsetError(f"toolset {name!r} names an unknown tool: {e}") from None
            out.setdefault(tool, None)
        for inc in spec.includes:
            visit(inc, (*chain, name))

    for n in names:
        visit(n, ())
    return list(out)
