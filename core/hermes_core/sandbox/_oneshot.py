"""One-shot commands in a local subprocess (the local backend, launcher-based backends),
without asyncio's subprocess machinery.

``asyncio.create_subprocess_exec`` adds a transport, stream readers and (on 3.11) a watcher
thread per child. Here a child is a plain ``Popen`` whose output pipe and pidfd are watched by the
event loop directly, which keeps a one-shot command within a few percent of ``subprocess.run``.

Given a cgroup (v2) directory, the command is started inside it by the kernel
(``clone3(CLONE_INTO_CGROUP)``, the optional compiled ``_clone`` module): no launcher exec.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ._cloned import Cloned
from ._output import DEFAULT_OUTPUT_LIMIT, OutputBuffer
from ._subprocess import exit_code, killpg

__all__ = ["run_subprocess"]


async def run_subprocess(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float | None,
    track: set[int] | None = None,
    max_output: int = DEFAULT_OUTPUT_LIMIT,
    on_start: Callable[[int], None] | None = None,
    cgroup: str | None = None,
    executable: str | None = None,
    died_by: list[int] | None = None,
) -> tuple[int, bytes, bool]:
    """Run ``argv`` in a new session; return (exit code, merged output, timed out).

    At most ``max_output`` bytes of output are kept, head and tail, with a note of the cut: the
    driver's memory stays bounded whatever the command prints.

    ``track`` holds the process group id while the command runs (so a sandbox close can kill it);
    ``on_start(pid)`` is called as soon as the process exists. ``cgroup``: a cgroup v2 directory
    the process starts in (only where :func:`clone_into_cgroup`). ``executable``: the program to
    run, with ``argv[0]`` only its name (as a shell runs a command it found on ``PATH``);
    ``died_by`` gets the pid and signal number when a signal ended the process.

    On timeout or cancellation the whole process group is killed. Output that a daemonised
    grandchild keeps open does not hang the call: reading stops shortly after the exit.
    """
    loop = asyncio.get_running_loop()
    proc = (_popen(argv, cwd, env, stdin, executable) if cgroup is None
            else Cloned(argv, cwd, env, stdin is not None, cgroup, executable))
    if track is not None:
        track.add(proc.pid)
    if on_start is not None:
        on_start(proc.pid)
    out = OutputBuffer(max_output)
    eof: asyncio.Future[None] = loop.create_future()
    exited: asyncio.Future[None] = loop.create_future()
    rfd = proc.stdout.fileno()
    os.set_blocking(rfd, False)

    # Which of the two fds the loop still watches (no redundant remove_reader at the end).
    watched = [True, True]

    def on_readable() -> None:
        try:
            chunk = os.read(rfd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            out.append(chunk)
        else:
            if watched[0]:
                watched[0] = False
                loop.remove_reader(rfd)
            if not eof.done():
                eof.set_result(None)

    pidfd = proc.pidfd if cgroup is not None else os.pidfd_open(proc.pid)

    # ``exited`` is awaited directly (no shield: one loop iteration less per command), so a
    # cancelled caller cancels it; ``gone`` is what says whether the process has exited.
    gone = False

    def on_exit() -> None:
        nonlocal gone
        if watched[1]:
            watched[1] = False
            loop.remove_reader(pidfd)
        gone = True
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(rfd, on_readable)
    loop.add_reader(pidfd, on_exit)
    writer = None
    if stdin is not None:
        writer = asyncio.ensure_future(_feed(loop, proc, stdin))
    timed_out = False
    try:
        try:
            if timeout is None:
                await exited
            else:
                async with asyncio.timeout(timeout):
                    await exited
        except TimeoutError:
            timed_out = True
    finally:
        if not gone:
            killpg(proc.pid, signal.SIGKILL)
            exited = loop.create_future()
            await asyncio.shield(exited)
        if timed_out:
            killpg(proc.pid, signal.SIGKILL)
        if not eof.done():
            on_readable()  # usually the rest of the output and EOF are already in the pipe
        while not eof.done() and not eof.cancelled():
            before = out.total
            # Give the pipe a moment to drain; a grandchild holding it open is not waited for.
            await asyncio.wait([eof], timeout=0.1 if timed_out else 0.25)
            if out.total == before:
                break
        if watched[0]:
            loop.remove_reader(rfd)
        if watched[1]:
            loop.remove_reader(pidfd)
        os.close(pidfd)
        proc.stdout.close()
        if writer is not None:
            writer.cancel()
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        code = proc.wait()
        if died_by is not None and code < 0:
            died_by += [proc.pid, -code]
        if track is not None:
            track.discard(proc.pid)
    return exit_code(code), out.getvalue(), timed_out


async def _feed(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen, data: bytes) -> None:
    """Write ``data`` to the child's stdin without blocking the loop, then close it."""
    assert proc.stdin is not None
    wfd = proc.stdin.fileno()
    os.set_blocking(wfd, False)
    view = memoryview(data)
    try:
        while view:
            try:
                n = os.write(wfd, view)
                view = view[n:]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(wfd, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(wfd)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


def _popen(argv: Sequence[str], cwd: str, env: Mapping[str, str], stdin: bytes | None,
           executable: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        list(argv),
        executable=executable,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
