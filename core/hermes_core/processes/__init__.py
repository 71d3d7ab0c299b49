"""Background processes: the per-runtime registry, each rollout's scoped handle, events, the
crash checkpoint and recovery (see ``docs/processes.md``)."""

from ..errors import (
    ProcessEndedError,
    ProcessError,
    ProcessForbiddenError,
    ProcessLimitError,
    ProcessNotFoundError,
)
from ._events import ProcessEvents
from ._recovery import ProcessRecovery
from ._registry import ProcessRegistry
from ._scoped import TaskProcesses
from ._state import MARKER, ProcessEvent, RingBuffer, Session

__all__ = [
    "MARKER",
    "ProcessEndedError",
    "ProcessError",
    "ProcessEvent",
    "ProcessEvents",
    "ProcessForbiddenError",
    "ProcessLimitError",
    "ProcessNotFoundError",
    "ProcessRecovery",
    "ProcessRegistry",
    "RingBuffer",
    "Session",
    "TaskProcesses",
]
