"""Background processes of the local backend: pipe mode (``subprocess``) and PTY mode
(ptyprocess), both read by the event loop and reaped through a pidfd."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO

from ..errors import ProcessError
from ._cloned import Cloned
from ._types import Process


def exit_code(status: int | None) -> int | None:
    """Python reports death by signal N as -N; shells (and users) expect 128+N."""
    if status is None:
        return None
    return 128 - status if status < 0 else status


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


#: Output buffered, unread, before a process's output stops being read (the process then
#: blocks on a full pipe or terminal): the driver's memory stays bounded whatever it prints.
HIGH_WATER = 1 << 18


class _Streamed(Process):
    """Output read by the event loop into a bounded buffer; exit noticed through a pidfd (no
    child-watcher thread per process)."""

    def _watch(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._fd = fd
        self._buf = bytearray()
        self._eof = False
        self._paused = False
        self._data = asyncio.Event()
        self._exited = asyncio.Event()
        self._status: int | None = None
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)
        given = getattr(self._p, "pidfd", None)  # a clone3 child comes with its pidfd
        self._pidfd = given if given is not None else os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: a terminal's other side is gone
            chunk = b""
        if chunk:
            self._buf += chunk
            if len(self._buf) >= HIGH_WATER and not self._paused:
                self._loop.remove_reader(self._fd)  # resumed by read()
                self._paused = True
        else:
            self._eof = True
            self._loop.remove_reader(self._fd)
        self._data.set()

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        try:
            _, status = os.waitpid(self.pid, 0)
            self._status = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self._status = 0 if self._status is None else self._status
        os.close(self._pidfd)
        self._reaped()
        self._exited.set()

    def _reaped(self) -> None:
        """Called once the process has been waited for."""

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._buf and not self._eof:
            self._data.clear()
            await self._data.wait()
        chunk = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        if self._paused and len(self._buf) < HIGH_WATER // 2 and not self._eof:
            self._paused = False
            self._loop.add_reader(self._fd, self._on_readable)
        if self._eof and not self._buf:
            self._close_fd()
        return chunk

    def _close_fd(self) -> None:
        raise NotImplementedError

    async def _write_fd(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                ready = self._loop.create_future()
                self._loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    self._loop.remove_writer(fd)
                continue
            except OSError as e:
                raise ProcessError(f"process {self.pid} is no longer reading its input ({e})") from None
            view = view[n:]

    async def wait(self, timeout: float | None = None) -> int | None:
        if self._exited.is_set() or (timeout is not None and timeout <= 0):
            return self.returncode  # a poll (``timeout=0``) answers from what is known now
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._exited.wait())
        except TimeoutError:
            return None
        return self.returncode

    @property
    def returncode(self) -> int | None:
        return exit_code(self._status)

    async def signal(self, sig: int) -> None:
        # The group outlives its leader while children remain, so signal it regardless.
        killpg(self.pid, sig)

    def __del__(self) -> None:
        try:
            self._close_fd()
        except Exception:  # interpreter shutdown: the loop may be gone
            pass


class PipeProcess(_Streamed):
    """A process with stdin/stdout pipes (stderr merged), in its own session."""

    def __init__(self, popen: subprocess.Popen):
        self._p = popen
        self.pid = popen.pid
        self.pty = False
        assert popen.stdin is not None and popen.stdout is not None
        self._stdin: IO[bytes] | None = popen.stdin
        os.set_blocking(popen.stdin.fileno(), False)
        self._watch(popen.stdout.fileno())

    @classmethod
    async def start(cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
                    cgroup: str | None = None) -> PipeProcess:
        """``cgroup``: a cgroup v2 directory the process starts in (``clone3``; only where
        :func:`~hermes_core.sandbox.clone_into_cgroup`; raises ``CloneRefused`` if the kernel
        refuses, nothing started)."""
        if cgroup is not None:
            return cls(Cloned(argv, cwd, env, True, cgroup))  # type: ignore[arg-type]
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=cwd, env=dict(env), start_new_session=True,
        )
        return cls(popen)

    def _reaped(self) -> None:
        self._p.returncode = self._status  # Popen must not wait for it again
        self._close_stdin_now()

    def _close_stdin_now(self) -> None:
        stdin, self._stdin = self._stdin, None
        if stdin is not None:
            try:
                self._loop.remove_writer(stdin.fileno())
            except Exception:
                pass
            try:
                stdin.close()
            except OSError:
                pass

    def _close_fd(self) -> None:
        out = self._p.stdout
        if out is not None and not out.closed:
            try:
                self._loop.remove_reader(self._fd)
            except Exception:
                pass
            out.close()

    async def write(self, data: bytes) -> None:
        if self.returncode is not None:
            raise ProcessError(f"process {self.pid} has exited (code {self.returncode})")
        if self._stdin is None:
            raise ProcessError(f"stdin of process {self.pid} is closed")
        await self._write_fd(self._stdin.fileno(), data)

    async def close_stdin(self) -> None:
        self._close_stdin_now()

    def __del__(self) -> None:
        super().__del__()
        try:
            self._close_stdin_now()
        except Exception:
            pass


class PtyProcess(_Streamed):
    """A process on a pseudo-terminal (ptyprocess)."""

    def __init__(self, ptyproc):
        self._p = ptyproc
        self.pid = ptyproc.pid
        self.pty = True
        self._watch(ptyproc.fd)

    @classmethod
    async def start(cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> PtyProcess:
        import ptyprocess

        p = ptyprocess.PtyProcess.spawn(list(argv), cwd=cwd, env=dict(env), dimensions=(40, 200))
        return cls(p)

    def _close_fd(self) -> None:
        # Close through ptyprocess's own file object, which owns the descriptor: closing the
        # number directly would let that object close it again later, by then perhaps another
        # file's (descriptor numbers are reused).
        if not self._p.closed:
            self._p.closed = True
            try:
                self._loop.remove_reader(self._fd)
            except Exception:
                pass
            try:
                self._p.fileobj.close()
            except OSError:
                pass

    async def write(self, data: bytes) -> None:
        if self.returncode is not None or self._p.closed:
            raise ProcessError(f"process {self.pid} has exited (code {self.returncode})")
        await self._write_fd(self._fd, data)

    async def close_stdin(self) -> None:
        # A terminal has no separate stdin to close: send the EOF character instead.
        await self.write(b"\x04")


async def spawn_subprocess(
    argv: Sequence[str], *, pty: bool, cwd: str, env: Mapping[str, str], cgroup: str | None = None
) -> Process:
    """A background process; ``cgroup`` (pipes only): see :meth:`PipeProcess.start`."""
    if pty:
        return await PtyProcess.start(argv, cwd=cwd, env=env)
    return await PipeProcess.start(argv, cwd=cwd, env=env, cgroup=cgroup)


__all__ = ["PipeProcess", "PtyProcess", "spawn_subprocess", "killpg", "exit_code"]
