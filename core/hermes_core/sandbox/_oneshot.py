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
import functools
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ._output import DEFAULT_OUTPUT_LIMIT, OutputBuffer
from ._subprocess import exit_code, killpg

try:
    from . import _clone
except ImportError:  # built without a C compiler: callers use a launcher instead
    _clone = None

__all__ = ["CloneRefused", "Cloned", "clone_into_cgroup", "run_subprocess"]


class CloneRefused(RuntimeError):
    """The kernel (or a seccomp filter) refused ``clone3`` into a cgroup: nothing was started;
    :func:`clone_into_cgroup` is ``False`` from now on, start the command another way."""

_clone_ok = _clone is not None and os.environ.get("HERMES_NO_CLONE3", "") in ("", "0")


def clone_into_cgroup() -> bool:
    """Whether a command can be started directly inside a cgroup v2 directory (``cgroup=`` of
    :func:`run_subprocess`): the compiled helper is there and the kernel has not refused it.
    ``HERMES_NO_CLONE3=1`` turns it off (then a launcher joins the cgroup)."""
    return _clone_ok


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
) -> tuple[int, bytes, bool]:
    """Run ``argv`` in a new session; return (exit code, merged output, timed out).

    At most ``max_output`` bytes of output are kept, head and tail, with a note of the cut: the
    driver's memory stays bounded whatever the command prints.

    ``track`` holds the process group id while the command runs (so a sandbox close can kill it);
    ``on_start(pid)`` is called as soon as the process exists. ``cgroup``: a cgroup v2 directory
    the process starts in (only where :func:`clone_into_cgroup`).

    On timeout or cancellation the whole process group is killed. Output that a daemonised
    grandchild keeps open does not hang the call: reading stops shortly after the exit.
    """
    loop = asyncio.get_running_loop()
    proc = _popen(argv, cwd, env, stdin) if cgroup is None else Cloned(argv, cwd, env, stdin is not None, cgroup)
    if track is not None:
        track.add(proc.pid)
    if on_start is not None:
        on_start(proc.pid)
    out = OutputBuffer(max_output)
    eof: asyncio.Future[None] = loop.create_future()
    exited: asyncio.Future[None] = loop.create_future()
    rfd = proc.stdout.fileno()
    os.set_blocking(rfd, False)

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
            loop.remove_reader(rfd)
            if not eof.done():
                eof.set_result(None)

    pidfd = proc.pidfd if cgroup is not None else os.pidfd_open(proc.pid)

    # ``exited`` is awaited directly (no shield: one loop iteration less per command), so a
    # cancelled caller cancels it; ``gone`` is what says whether the process has exited.
    gone = False

    def on_exit() -> None:
        nonlocal gone
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
        loop.remove_reader(rfd)
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


def _popen(argv: Sequence[str], cwd: str, env: Mapping[str, str], stdin: bytes | None) -> subprocess.Popen:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )


class _Closable:
    __slots__ = ("closed", "fd")

    def __init__(self, fd: int):
        self.fd, self.closed = fd, False

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


@functools.lru_cache(maxsize=256)
def _candidates(exe: str, path: str | None) -> tuple[bytes, ...]:
    """The paths the child tries for ``exe`` (as ``Popen`` does: each ``PATH`` entry in turn,
    the first that execs wins), a pure function of the two strings."""
    if "/" in exe:
        return (os.fsencode(exe),)
    dirs = (path if path is not None else os.defpath).split(os.pathsep)
    return tuple(os.fsencode(os.path.join(d, exe)) for d in dirs)


@functools.cache
def _devnull() -> int:
    """One read-only ``/dev/null`` for every child's stdin (close-on-exec here)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


class Cloned:
    """The part of ``Popen`` that :func:`run_subprocess` and ``PipeProcess`` use, for a child started by
    ``clone3`` inside a cgroup (same errors as ``Popen``: FileNotFoundError naming the command or
    the working directory)."""

    __slots__ = ("pid", "pidfd", "returncode", "stdin", "stdout")

    def __init__(self, argv: Sequence[str], cwd: str, env: Mapping[str, str], stdin_pipe: bool, cgroup: str):
        global _clone_ok
        argv = list(argv)
        exe = argv[0]
        exes = _candidates(exe, env.get("PATH"))
        envp = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in env.items()]
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        in_r = in_w = -1
        fds = [rfd, wfd]
        try:
            if stdin_pipe:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                fds += [in_r, in_w]
            else:
                in_r = _devnull()
            cgfd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                pid, pidfd, step, err = _clone.spawn(
                    exes, [os.fsencode(a) for a in argv], envp, os.fsencode(cwd), cgfd, in_r, wfd, wfd)
            except OSError as e:
                _clone_ok = False
                raise CloneRefused(f"clone3 into {cgroup}: {e.strerror}") from None
            finally:
                os.close(cgfd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        os.close(wfd)
        if stdin_pipe:
            os.close(in_r)
        if step:
            os.close(rfd)
            if in_w >= 0:
                os.close(in_w)
            raise OSError(err, os.strerror(err), cwd if step == 2 else exe if step == 3 else None)
        self.pid, self.pidfd, self.returncode = pid, pidfd, None
        self.stdout = _Closable(rfd)
        self.stdin = _Closable(in_w) if in_w >= 0 else None

    def wait(self) -> int:
        if self.returncode is None:
            while True:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:  # reaped by someone else (a waitpid(-1) watcher)
                    status = 255 << 8
                    break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode
