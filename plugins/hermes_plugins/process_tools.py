"""Registers the ``process`` tool (implementation in ``_process_tool``, loaded on first use)."""

from __future__ import annotations

from hermes_core import ToolRegistry, hookimpl


@hookimpl
def hermes_register_tools(registry: ToolRegistry) -> None:
    registry.register(
        "process",
        "hermes_plugins._process_tool:process",
        args="hermes_plugins._process_tool:ProcessArgs",
        description=(
            "Manage background processes started with terminal(background=true): list them, poll "
            "status and recent output, read the log, wait for exit, kill (with children), and "
            "send input (write/submit/close). Results are JSON with session_id, status and "
            "exit_code. Only this rollout's processes are visible."
        ),
    )
