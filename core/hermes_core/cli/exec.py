"""``hermes exec``: one command in a fresh sandbox, behaving like running the command.

Output is streamed as it comes, stdin is passed through, stderr stays apart from stdout, bytes
pass unchanged, and the exit code is the command's (124 on ``--timeout``, 130 on Ctrl-C, after
what was printed is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import uuid
from typing import Any

from ._common import CliError, check_path_options, parse_options, positive_float, runtime_from_args

#: Runs the command with its stderr sent to a FIFO (``$0``) read by a second process, because
#: a sandbox process's own stream merges stdout and stderr.
_SPLIT = 'exec 2>"$0" && exec "$@"'


def register(sub) -> None:
    p = sub.add_parser("exec", help="run one command in a fresh sandbox, streaming its output",
                       description="Run COMMAND in a fresh sandbox as if it ran here: stdout and stderr "
                       "are streamed separately as they come, stdin is passed through, and hermes exits "
                       "with the command's exit code (124 on --timeout).")
    p.add_argument("--backend", default=None, help="backend name (default: config or 'local')")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option (value parsed as JSON when it can be)")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="YAML config (backend, backend_options, ...)")
    p.add_argument("--timeout", type=positive_float, default=None, help="seconds before the command is killed (exit 124)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_exec)


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError("no command given; usage: hermes exec [--backend NAME] -- COMMAND [ARGS...]")
    rt = runtime_from_args(args)
    backend = args.backend or rt.config.backend
    options = parse_options(args.option) or None
    if options:
        check_path_options(backend, options, "-o")
        rt.backend_options(backend, options)  # a bad option: one line before anything starts
    command = cmd[0] if len(cmd) == 1 else cmd
    try:
        return asyncio.run(_run(rt, backend, options, command, args.timeout))
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("hermes: interrupted", file=sys.stderr)
        return 130


async def _run(rt: Any, backend: str, options: Any, command: Any, timeout: float | None) -> int:
    from ..sandbox import TIMEOUT_EXIT_CODE

    stdout = sys.stdout.buffer
    stderr = sys.stderr.buffer
    try:
        async with rt.rollout(backend=backend, options=options, toolsets=[]) as ctx:
            sandbox = ctx.sandbox
            argv = sandbox.argv(command)
            fifo = f"/tmp/.hermes-exec-{uuid.uuid4().hex[:12]}.err"
            made = await sandbox.exec(["mkfifo", "-m", "600", fifo], timeout=30)
            err_proc = None
            if made.exit_code == 0:
                # The reader opens the FIFO first; the command's redirect then opens it for writing.
                err_proc = await sandbox.spawn(["sh", "-c", 'cat "$0"; rm -f "$0"', fifo])
                proc = await sandbox.spawn(["sh", "-c", _SPLIT, fifo, *argv])
            else:
                print(f"hermes: warning: cannot separate stderr in this sandbox ({made.output.strip()[:200]}); "
                      "it is merged into stdout", file=sys.stderr)
                proc = await sandbox.spawn(argv)
            feeder = _feed_stdin(proc)
            pumps = [asyncio.ensure_future(_pump(proc, stdout))]
            if err_proc is not None:
                pumps.append(asyncio.ensure_future(_pump(err_proc, stderr)))
            try:
                async with asyncio.timeout(timeout):
                    code = await proc.wait()
                    await asyncio.gather(*pumps)
            except TimeoutError:
                await proc.kill()
                code = TIMEOUT_EXIT_CODE
                print(f"hermes: the command did not finish within {timeout:g}s and was killed", file=sys.stderr)
            finally:
                feeder.cancel()
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                if proc.returncode is None:
                    await proc.kill()
                if err_proc is not None and err_proc.returncode is None:
                    await err_proc.kill()
                stdout.flush()
                stderr.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise CliError(f"backend {backend!r}: {e}") from None
    return code if code is not None else 1


async def _pump(proc: Any, out: Any) -> None:
    """Copy a process's output to ``out`` as it comes, bytes unchanged."""
    while True:
        data = await proc.read(65536)
        if not data:
            return
        out.write(data)
        out.flush()


def _feed_stdin(proc: Any) -> asyncio.Future:
    """Pass this process's stdin to ``proc`` (EOF closes its stdin). A daemon thread reads,
    so a terminal that never sends anything does not keep hermes alive."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = None

    def reader() -> None:
        try:
            while True:
                chunk = os.read(fd, 65536)
                loop.call_soon_threadsafe(queue.put_nowait, chunk or None)
                if not chunk:
                    return
        except (OSError, RuntimeError):  # stdin closed, or the loop is gone
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass

    async def forward() -> None:
        if fd is None:
            await _quiet(proc.close_stdin())
            return
        threading.Thread(target=reader, daemon=True, name="hermes-exec-stdin").start()
        while True:
            chunk = await queue.get()
            if chunk is None:
                await _quiet(proc.close_stdin())
                return
            if not await _quiet(proc.write(chunk)):
                return  # the command closed its stdin or ended

    return asyncio.ensure_future(forward())


async def _quiet(aw: Any) -> bool:
    try:
        await aw
        return True
    except Exception:
        return False


__all__ = ["register", "cmd_exec"]
