"""Background processes of the local backend: pipe mode (asyncio) and PTY mode (ptyprocess)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

from ..errors import ProcessError
from ._types import Process


def exit_code(status: int | None) -> int | None:
    """asyncio reports death by signal N as -N; shells (and users) expect 128+N."""
    if status is None:
        return None
    return 128 - status if status < 0 else status


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class PipeProcess(Process):
    """A process with stdin/stdout pipes (stderr merged), in its own session."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self._proc = proc
        self.pid = proc.pid
        self.pty = False

    @classmethod
    async def start(cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> PipeProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        return cls(proc)

    async def read(self, max_bytes: int = 65536) -> bytes:
        assert self._proc.stdout is not None
        return await self._proc.stdout.read(max_bytes)

    async def write(self, data: bytes) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing():
            raise ProcessError(f"stdin of process {self.pid} is closed")
        if self.returncode is not None:
            raise ProcessError(f"process {self.pid} has exited (code {self.returncode})")
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ProcessError(f"process {self.pid} is no longer reading stdin ({e})") from None

    async def close_stdin(self) -> None:
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            try:
                await stdin.wait_closed()
            except (BrokenPipeError, ConnectionResetError):
                pass

    async def wait(self, timeout: float | None = None) -> int | None:
        if self._proc.returncode is not None or (timeout is not None and timeout <= 0):
            return self.returncode  # a poll (``timeout=0``) answers from what is known now
        try:
            async with asyncio.timeout(timeout):
                return exit_code(await asyncio.shield(self._proc.wait()))
        except TimeoutError:
            return None

    @property
    def returncode(self) -> int | None:
        return exit_code(self._proc.returncode)

    async def signal(self, sig: int) -> None:
        # The group outlives its leader while children remain, so signal it regardless.
        killpg(self.pid, sig)


class PtyProcess(Process):
    """A process on a pseudo-terminal (ptyprocess), exit noticed through a pidfd."""

    def __init__(self, ptyproc):
        self._p = ptyproc
        self.pid = ptyproc.pid
        self.pty = True
        self._fd = ptyproc.fd
        self._buf = bytearray()
        self._eof = False
        self._data = asyncio.Event()
        self._exited = asyncio.Event()
        self._status: int | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        loop.add_reader(self._fd, self._on_readable)
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._on_exit)

    @classmethod
    async def start(cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> PtyProcess:
        import ptyprocess

        p = ptyprocess.PtyProcess.spawn(list(argv), cwd=cwd, env=dict(env), dimensions=(40, 200))
        os.set_blocking(p.fd, False)
        return cls(p)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal's other side is gone
            chunk = b""
        if chunk:
            self._buf += chunk
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
        self._exited.set()

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._buf and not self._eof:
            self._data.clear()
            await self._data.wait()
        chunk = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        if self._eof and not self._buf:
            self._close_fd()
        return chunk

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
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            except OSError as e:
                raise ProcessError(f"cannot write to process {self.pid}: {e}") from None
            view = view[n:]

    async def close_stdin(self) -> None:
        # A terminal has no separate stdin to close: send the EOF character instead.
        await self.write(b"\x04")

    async def wait(self, timeout: float | None = None) -> int | None:
        if self._exited.is_set() or (timeout is not None and timeout <= 0):
            return self.returncode
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
        killpg(self.pid, sig)

    def __del__(self) -> None:
        self._close_fd()


async def spawn_subprocess(
    argv: Sequence[str], *, pty: bool, cwd: str, env: Mapping[str, str]
) -> Process:
    cls = PtyProcess if pty else PipeProcess
    return await cls.start(argv, cwd=cwd, env=env)


__all__ = ["PipeProcess", "PtyProcess", "spawn_subprocess", "killpg", "exit_code"]
