"""Children started by the kernel directly inside a cgroup v2 directory (``clone3`` with
``CLONE_INTO_CGROUP``, the optional compiled ``_clone`` module): a sandbox command is in its
cgroup before its first instruction, with no launcher exec. Used by :func:`run_subprocess` and
:class:`PipeProcess` when given a ``cgroup``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

try:
    from . import _clone
except ImportError:  # built without a C compiler: callers use a launcher instead
    _clone = None

__all__ = ["CloneRefused", "Cloned", "clone_into_cgroup"]


class CloneRefused(RuntimeError):
    """The kernel (or a seccomp filter) refused ``clone3`` into a cgroup: nothing was started;
    :func:`clone_into_cgroup` is ``False`` from now on, start the command another way."""


_clone_ok = _clone is not None and os.environ.get("HERMES_NO_CLONE3", "") in ("", "0")


def clone_into_cgroup() -> bool:
    """Whether a command can be started directly inside a cgroup v2 directory (``cgroup=`` of
    :func:`run_subprocess`): the compiled helper is there and the kernel has not refused it.
    ``HERMES_NO_CLONE3=1`` turns it off (then a launcher joins the cgroup)."""
    return _clone_ok


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

    def __init__(self, argv: Sequence[str], cwd: str, env: Mapping[str, str], stdin_pipe: bool, cgroup: str,
                 executable: str | None = None):
        global _clone_ok
        argv = list(argv)
        exe = executable or argv[0]
        exes = (os.fsencode(exe),) if executable else _candidates(exe, env.get("PATH"))
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
