"""The ``process`` tool: manage the background processes a rollout started with
``terminal(background=true)``. Every session is scoped to its rollout."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from hermes_core.errors import (
    ProcessEndedError,
    ProcessError,
    ProcessForbiddenError,
    ProcessLimitError,
    ProcessNotFoundError,
    ToolFailure,
)
from pydantic import BaseModel, ConfigDict, Field, StrictStr

if TYPE_CHECKING:
    from hermes_core.processes import TaskProcesses
    from hermes_core.tools import ToolContext

_ACTIONS = ("list", "poll", "log", "wait", "kill", "write", "submit", "close")
_MAX_LOG = 50_000
_ABSURD_TIMEOUT = 86_400.0


class ProcessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    action: Literal["list", "poll", "log", "wait", "kill", "write", "submit", "close"] = Field(
        description=(
            "list: this rollout's sessions. poll: status, exit code and the output tail. log: a "
            "range of the output (offset/limit). wait: block until the process ends or timeout. "
            "kill: terminate it and its children. write: send data to stdin. submit: send data "
            "plus a newline. close: close stdin (EOF)."
        )
    )
    session_id: StrictStr | None = Field(None, description="The session id returned by terminal(background=true). Needed by every action except list.")
    data: StrictStr | None = Field(None, description="Text for write/submit.")
    timeout: float | None = Field(None, description="Seconds for wait (default 60; clamped to the configured maximum).")
    offset: int | None = Field(None, description="log: byte offset into the whole output; negative counts from the end (default: the last `limit` bytes).")
    limit: int | None = Field(None, ge=1, le=_MAX_LOG, description=f"log: bytes to return (default 10000, at most {_MAX_LOG}).")


def _processes(ctx: ToolContext) -> TaskProcesses:
    procs = ctx.processes
    if procs is None:
        raise ToolFailure(
            "background processes need a Runtime; this ToolContext was built without one",
            kind="unavailable",
        )
    return procs


def _failure(e: ProcessError) -> ToolFailure:
    kind = {
        ProcessNotFoundError: "not_found",
        ProcessForbiddenError: "forbidden",
        ProcessEndedError: "process_ended",
        ProcessLimitError: "limit_exceeded",
    }.get(type(e), "process_error")
    return ToolFailure(str(e), kind=kind)


def check_timeout(value: Any) -> float:
    """A timeout the model sent: a finite, non-negative number of seconds below a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ToolFailure(f"timeout must be a finite number of seconds >= 0, got {value!r}", kind="invalid_arguments")
    if value > _ABSURD_TIMEOUT:
        raise ToolFailure(
            f"timeout {value!r} is absurd (more than a day); use at most {_ABSURD_TIMEOUT:g} seconds "
            "(it is clamped to the configured maximum anyway)",
            kind="invalid_arguments",
        )
    return float(value)


def _original_keys(out: dict[str, Any], *, preview: bool) -> dict[str, Any]:
    """The original hermes process tool's key names for what the model reads:
    ``uptime_seconds`` (not ``runtime_seconds``) and, for list/poll, ``output_preview`` (not
    ``output``). Remaining differences are listed in docs/compatibility.md."""
    renamed: dict[str, Any] = {}
    for key, value in out.items():
        if key == "runtime_seconds":
            key = "uptime_seconds"
        elif preview and key == "output":
            key = "output_preview"
        elif preview and key == "output_truncated":
            key = "output_preview_truncated"
        renamed[key] = value
    return renamed


async def process(args: ProcessArgs, ctx: ToolContext) -> dict[str, Any]:
    procs = _processes(ctx)
    if args.action == "list":
        listed = []
        for entry in await procs.list():
            try:  # the original lists each process with the tail of its output
                entry = await procs.poll(entry["session_id"], output_chars=200)
            except ProcessError:
                pass
            listed.append(_original_keys(entry, preview=True))
        return {"processes": listed}
    if args.session_id is None:
        raise ToolFailure(f"action {args.action!r} needs a session_id; use action 'list' to see them", kind="invalid_arguments")
    sid = args.session_id
    try:
        if args.action == "poll":
            out = await procs.poll(sid)
        elif args.action == "log":
            limit = args.limit or 10_000
            offset = -limit if args.offset is None else args.offset
            out = await procs.read_log(sid, offset=offset, limit=limit)
        elif args.action == "wait":
            timeout = check_timeout(60.0 if args.timeout is None else args.timeout)
            out = await procs.wait(sid, timeout)
        elif args.action == "kill":
            out = await procs.kill(sid)
        elif args.action in ("write", "submit"):
            if args.data is None and args.action == "write":
                raise ToolFailure("action 'write' needs data (a string)", kind="invalid_arguments")
            data = (args.data or "") + ("\n" if args.action == "submit" else "")
            out = await procs.write(sid, data)
        else:
            out = await procs.close_stdin(sid)
    except ProcessError as e:
        raise _failure(e) from None
    out = _original_keys(out, preview=args.action == "poll")
    if args.action == "wait" and out.get("timed_out"):
        out["status"] = "timeout"  # as the original: the wait timed out, the process still runs
        out.setdefault("timeout_note", "the process is still running; wait again, poll or kill it")
    return out


__all__ = ["ProcessArgs", "process", "check_timeout"]
