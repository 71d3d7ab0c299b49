"""Registers the file tools (implementation in ``_file_tools``, loaded on first use)."""

from __future__ import annotations

from hermes_core import ToolRegistry, hookimpl

_IMPL = "hermes_plugins._file_tools"

_TOOLS = (
    ("read_file", "ReadFileArgs",
     "Read a text file with line numbers (offset/limit for long files). Refuses binary files."),
    ("write_file", "WriteFileArgs", "Write a file with the given content, replacing it if it exists."),
    ("patch", "PatchArgs",
     "Replace an exact string in a file. old_string must match exactly once unless replace_all is true."),
    ("search_files", "SearchArgs",
     "Search file contents by regex (target='content') or file names (target='files')."),
)


@hookimpl
def hermes_register_tools(registry: ToolRegistry) -> None:
    for name, args, description in _TOOLS:
        registry.register(name, f"{_IMPL}:{name}", args=f"{_IMPL}:{args}", description=description)
