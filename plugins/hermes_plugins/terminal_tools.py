"""The ``terminal`` tool: commands in the rollout's stateful shell."""

from __future__ import annotations

import json
import shlex

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import hookimpl
from hermes_core._tools import truncate


class TerminalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="The shell command to run (bash). cd and export persist between calls.")
    timeout: int = Field(180, ge=1, le=3600, description="Seconds before the command is killed (1-3600).")
    workdir: str | None = Field(None, description="Directory to run this one command in (default: the current one).")


async def terminal(args: TerminalArgs, ctx) -> str:
    command = args.command
    if args.workdir:
        # Paths are data: quoted, and the shell's own directory is restored afterwards.
        command = (
            f"pushd -- {shlex.quote(args.workdir)} >/dev/null && {{ {command}\n}}; "
            "__hermes_rc=$?; popd >/dev/null 2>&1; (exit $__hermes_rc)"
        )
    result = await ctx.sandbox.shell(command, timeout=args.timeout)
    body = {
        "exit_code": result.exit_code,
        "output": truncate(result.output, max(1000, ctx.max_output_chars - 500)),
        "error": "timeout" if result.timed_out else None,
    }
    return json.dumps(body, ensure_ascii=False)


@hookimpl
def hermes_register_tools(registry) -> None:
    registry.register(
        "terminal",
        terminal,
        args=TerminalArgs,
        description=(
            "Run a shell command in the sandbox and return its exit code and output (stdout and "
            "stderr). The shell persists: cd and export carry over to later calls. Output is "
            "bounded (head and tail kept). Commands get no stdin."
        ),
    )
