"""hermes-toolset-web: ``web_search`` and ``web_extract`` for hermes-core, and the ``web`` toolset.

Installing the distribution registers both tools and the toolset through the ``hermes``
entry-point group. Registering imports nothing heavy: httpx, trafilatura and pypdf load on the
first call. Options are set per runtime with :func:`configure`.
"""

from __future__ import annotations

from typing import Any

from hermes_core import ToolRegistry, ToolsetRegistry, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "WebOptions": "_options", "configure": "_options", "options_for": "_options",
    "Guard": "_net", "why_blocked": "_net",
    "PROVIDERS": "_providers", "ProviderError": "_providers",
    "search": "_tools", "extract_urls": "_tools",
}

_IMPL = "hermes_toolset_web._tools"


@hookimpl
def hermes_register_tools(registry: ToolRegistry) -> None:
    """Register ``web_search`` and ``web_extract``."""
    registry.register(
        "web_search", f"{_IMPL}:web_search", args=f"{_IMPL}:WebSearchArgs",
        description=(
            "Search the web. Returns {results: [{title, url, snippet}], provider}. "
            "Use web_extract to read a result's page."
        ),
    )
    registry.register(
        "web_extract", f"{_IMPL}:web_extract", args=f"{_IMPL}:WebExtractArgs",
        description=(
            "Fetch web pages (HTML, PDF or text) and return each one's title, main text and links. "
            "Each URL succeeds or fails on its own; long text is cut (head and tail kept). Local and "
            "private network addresses are refused."
        ),
    )


@hookimpl
def hermes_register_toolsets(registry: ToolsetRegistry) -> None:
    """Register the ``web`` toolset."""
    registry.register("web", tools=["web_search", "web_extract"], description="search the web and read pages")


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "Guard",
    "PROVIDERS",
    "ProviderError",
    "WebOptions",
    "configure",
    "extract_urls",
    "hermes_register_tools",
    "hermes_register_toolsets",
    "options_for",
    "search",
    "why_blocked",
]
