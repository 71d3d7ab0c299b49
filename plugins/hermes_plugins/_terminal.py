"""The ``terminal`` tool: commands in the rollout's stateful shell."""

from __future__ import annotations

import asyncio
import posixpath
import shlex

from hermes_core.errors import ProcessError, ToolFailure
from hermes_core.sandbox import OutputBuffer
from pydantic import BaseModel, ConfigDict, Field


class TerminalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    command: str = Field(description="The shell command to run (bash). cd and export persist between calls.")
    timeout: int = Field(180, ge=1, le=3600, description="Seconds before the command is killed (1-3600).")
    workdir: str | None = Field(None, description="Directory to run this one command in (default: the current one).")
    background: bool = Field(False, description="Start the command in the background and return a session_id at once; manage it with the process tool.")
    pty: bool = Field(False, description="Run on a pseudo-terminal (interactive programs: python -i, REPLs, TUIs).")
    check_interval: int | None = Field(None, ge=1, le=86_400, description="With background: the host is told about the process's progress every this many seconds, and when it exits.")


async def terminal(args: TerminalArgs, ctx) -> dict:
    if args.check_interval is not None and not args.background:
        raise ToolFailure("check_interval needs background=true", kind="invalid_arguments")
    if args.background:
        return await _background(args, ctx)
    if args.pty:
        return await _foreground_pty(args, ctx)
    command = args.command
    if args.workdir:
        # Paths are data: quoted, and the shell's own directory is restored afterwards.
        command = (
            f"pushd -- {shlex.quote(args.workdir)} >/dev/null && {{ {command}\n}}; "
            "__hermes_rc=$?; popd >/dev/null 2>&1; (exit $__hermes_rc)"
        )
    result = await ctx.sandbox.shell(command, timeout=args.timeout, max_output=ctx.tool_output_bytes)
    body = {
        "exit_code": result.exit_code,
        "output": result.output,  # bounded (head + tail) by the dispatch site
        "error": "timeout" if result.timed_out else None,
    }
    return body


async def _cwd(args: TerminalArgs, ctx) -> str | None:
    """Where a spawned command starts: ``workdir``, relative to where the model's shell is
    (after its ``cd``s), as for foreground commands."""
    if args.workdir and posixpath.isabs(args.workdir):
        return args.workdir
    here = None
    shell = getattr(ctx.sandbox, "_shell", None)
    if shell is not None and getattr(shell, "proc", True) is not None:  # no shell yet: it would be in workdir
        res = await ctx.sandbox.shell("pwd", timeout=10)
        lines = res.output.strip().splitlines()
        here = lines[-1] if res.exit_code == 0 and lines else None
    if args.workdir:
        return posixpath.join(here, args.workdir) if here else args.workdir
    return here


async def _background(args: TerminalArgs, ctx) -> dict:
    procs = ctx.processes
    if procs is None:
        raise ToolFailure("background processes need a Runtime; this ToolContext was built without one", kind="unavailable")
    try:
        s = await procs.spawn(
            ctx.sandbox, args.command, pty=args.pty,
            cwd=await _cwd(args, ctx), check_interval=args.check_interval,
        )
    except ProcessError as e:
        raise ToolFailure(str(e), kind="process_error") from None
    body = {
        "session_id": s.id,
        "pid": s.pid,
        "status": s.status,
        "pty": s.pty,
        "note": "running in the background; use the process tool (poll, log, wait, kill, write, submit)",
    }
    return body


async def _foreground_pty(args: TerminalArgs, ctx) -> dict:
    """One command on a terminal, to completion or timeout (the stateful shell is not used)."""
    cwd = await _cwd(args, ctx)
    try:
        proc = await ctx.sandbox.spawn(args.command, pty=True, cwd=cwd)
    except (OSError, ProcessError) as e:
        raise ToolFailure(f"cannot start {args.command!r} on a terminal: {e}", kind="process_error") from None
    out = OutputBuffer(ctx.tool_output_bytes)  # head + tail, bounded whatever it prints

    async def pump() -> None:
        while chunk := await proc.read(65536):
            out.append(chunk)

    reader = asyncio.ensure_future(pump())
    code = await proc.wait(args.timeout)
    timed_out = code is None
    if timed_out:
        code = await proc.kill(0.5)
    await asyncio.wait([reader], timeout=0.25)
    reader.cancel()
    body = {
        "exit_code": 124 if timed_out else code,
        "output": out.getvalue().decode("utf-8", "replace"),
        "error": "timeout" if timed_out else None,
    }
    return body

