"""Registers the ``terminal`` tool (implementation in ``_terminal``, loaded on first use)."""

from __future__ import annotations

from hermes_core import ToolRegistry, hookimpl


@hookimpl
def hermes_register_tools(registry: ToolRegistry) -> None:
    registry.register(
        "terminal",
        "hermes_plugins._terminal:terminal",
        args="hermes_plugins._terminal:TerminalArgs",
        description=(
            "Run a shell command in the sandbox and return its exit code and output (stdout and "
            "stderr). The shell persists: cd and export carry over to later calls. Output is "
            "bounded (head and tail kept). Commands get no stdin. background=true starts a "
            "long-running command (server, watcher, build) and returns a session_id for the "
            "process tool; pty=true runs it on a terminal."
        ),
    )
