"""hermes-toolset-browser: a real browser for hermes-core agents and verifiers.

Playwright drives the system Chromium (Debian's ``chromium``; never ``playwright install``).
One browser process per Runtime, one browser context per rollout (cookies, storage, tabs),
closed by the rollout's cleanup. Installing the distribution registers the ``browser_*`` tools
and the ``browser`` toolset; registering imports nothing heavy (Playwright loads on first call).
"""

from __future__ import annotations

from typing import Any

from hermes_core import ToolRegistry, ToolsetRegistry, hookimpl

__version__ = "0.1.0"

_EXPORTS = {
    "BrowserOptions": "_options", "configure": "_options", "options_for": "_options", "DEFAULT_ARGS": "_options",
    "BrowserManager": "_manager", "Session": "_manager", "manager_for": "_manager",
    "close_browser": "_manager", "session_for": "_manager",
}

_IMPL = "hermes_toolset_browser._tools"

#: (name, argument model, description)
_TOOLS = (
    ("browser_navigate", "NavigateArgs",
     "Open a URL in this rollout's browser tab. Returns the final url, title and HTTP status. "
     "Then call browser_snapshot to see the page."),
    ("browser_snapshot", "SnapshotArgs",
     "The current page as an accessibility tree (YAML). Interactive elements carry refs like "
     "[ref=e12]; pass a ref to browser_click or browser_type. Refs are valid until the page changes."),
    ("browser_click", "ClickArgs", "Click the element with this ref (from the latest browser_snapshot)."),
    ("browser_type", "TypeArgs",
     "Replace the content of the text field with this ref by text; submit=true presses Enter after."),
    ("browser_press", "PressArgs", "Press a key on the page (Enter, Tab, Escape, ArrowDown, Control+a, ...)."),
    ("browser_scroll", "ScrollArgs", "Scroll the page up or down (default: one screen)."),
    ("browser_back", "NoArgs", "Go back to the previous page in this tab."),
    ("browser_screenshot", "ScreenshotArgs",
     "A PNG screenshot of the page, returned as an image for vision models (and saved in the sandbox with path)."),
    ("browser_console", "ConsoleArgs", "The page's console messages and uncaught JavaScript errors since the last call."),
    ("browser_close", "NoArgs", "Close this rollout's browser (tabs, cookies); the next browser call starts fresh."),
)


@hookimpl
def hermes_register_tools(registry: ToolRegistry) -> None:
    """Register the ``browser_*`` tools."""
    for name, args, description in _TOOLS:
        registry.register(name, f"{_IMPL}:{name}", args=f"{_IMPL}:{args}", description=description)


@hookimpl
def hermes_register_toolsets(registry: ToolsetRegistry) -> None:
    """Register the ``browser`` toolset."""
    registry.register("browser", tools=[t[0] for t in _TOOLS], description="a real headless browser (Chromium)")


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "BrowserManager",
    "BrowserOptions",
    "DEFAULT_ARGS",
    "Session",
    "close_browser",
    "configure",
    "hermes_register_tools",
    "hermes_register_toolsets",
    "manager_for",
    "options_for",
    "session_for",
]
