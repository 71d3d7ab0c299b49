"""Tools: the single dispatch site (validation, sync/async, bounding, structured errors),
toolset resolution, and ToolContext — a rollout's handle on its sandbox, for tools and verifiers.

Names load on first use: resolving toolsets at start-up must not import pydantic or the sandbox.
"""

from typing import TYPE_CHECKING

from ..plugin._lazy import lazy_exports

if TYPE_CHECKING:
    from ..errors import ToolFailure
    from ._context import SyncToolContext, ToolContext
    from ._dispatch import ToolError, bound, dispatch, error_result, failure, truncate
    from ._toolsets import resolve_toolsets

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ToolContext": "._context", "SyncToolContext": "._context",
        "ToolError": "._dispatch", "dispatch": "._dispatch", "error_result": "._dispatch",
        "truncate": "._dispatch", "bound": "._dispatch", "failure": "._dispatch", "ToolFailure": "..errors", "resolve_toolsets": "._toolsets",
    },
    globals(),
)

__all__ = [
    "SyncToolContext",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "bound",
    "dispatch",
    "error_result",
    "failure",
    "resolve_toolsets",
    "truncate",
]
