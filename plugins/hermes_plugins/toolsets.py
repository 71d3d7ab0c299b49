"""The built-in toolsets."""

from __future__ import annotations

from hermes_core import ToolsetRegistry, hookimpl


@hookimpl
def hermes_register_toolsets(registry: ToolsetRegistry) -> None:
    registry.register("terminal", tools=["terminal", "process"], description="the stateful terminal and its background processes")
    registry.register(
        "file",
        tools=["read_file", "write_file", "patch", "search_files"],
        description="read, write, patch and search files",
    )
    registry.register("default", includes=["terminal", "file"], description="terminal + file tools")
