"""One remote command over one SSH channel: the session callbacks, background processes
(:class:`SSHProcess`) and one-shot commands (:func:`run_oneshot`).

Every command line the backend sends prints a header ``__HERMES_PID_<pid>__`` before anything
else, so the driver learns the remote process id, which is also the process group and session
id (sshd starts each channel's command with ``setsid``). Signals go to that group through a
second, short command on the same connection.
"""

from __future__ import annotations

import asyncio
import re
import signal as _signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from hermes_core.errors import ProcessError
from hermes_core.sandbox import OutputBuffer, Process

__all__ = ["HEADER", "ChannelSession", "SSHProcess", "open_channel", "signal_number"]

#: The first line every command prints (its pid == pgid == sid on the remote host).
HEADER = re.compile(rb"__HERMES_PID_(\d+)__\r?\n")
#: A spawned process's unread output past this pauses the channel (SSH flow control then
#: stops the remote writer), so driver memory stays bounded whatever the process prints.
READ_LIMIT = 1 << 20


def signal_number(name: str) -> int:
    """An SSH exit-signal name ('TERM') as its number (15); unknown names count as SIGKILL."""
    try:
        return int(_signal.Signals[f"SIG{name.upper().removeprefix('SIG')}"])
    except KeyError:
        return int(_signal.SIGKILL)


class ChannelSession(asyncssh.SSHClientSession[bytes]):
    """Collects one channel's output, exit status and end, with flow control both ways."""

    def __init__(self, sink: OutputBuffer | None = None) -> None:
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.sink = sink  # one-shot commands: everything goes to a bounded buffer
        self.buf = bytearray()
        self.eof = False
        self.status: int | None = None
        self.lost: Exception | None = None
        self.closed = False
        self._paused = False
        self._direct = False  # one-shot commands: past the header, data goes to the sink
        self._data = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()

    # ---------------------------------------------------------------- asyncssh callbacks

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._direct:
            self.sink.append(data)  # type: ignore[union-attr]
        else:
            self.buf += data
            if self.sink is None and len(self.buf) > READ_LIMIT and not self._paused and self.chan:
                self._paused = True
                self.chan.pause_reading()
        self._data.set()

    def eof_received(self) -> bool:
        self.eof = True
        self._data.set()
        return True  # keep our side open: the process may still read its stdin

    def exit_status_received(self, status: int) -> None:
        self._exit(status)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._exit(128 + signal_number(signal))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.eof = True
        self.lost = exc
        # No exit status: the connection (or the channel) went away under the command.
        self._exit(255)
        self._data.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _exit(self, status: int) -> None:
        if self.status is None:
            self.status = status
        if not self.exited.done():
            self.exited.set_result(self.status)

    # ---------------------------------------------------------------- helpers

    async def wait_data(self) -> None:
        while not self.buf and not self.eof:
            self._data.clear()
            await self._data.wait()

    async def wait_eof(self) -> None:
        while not self.eof:
            self._data.clear()
            await self._data.wait()

    def take(self, n: int) -> bytes:
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        if self._paused and len(self.buf) <= READ_LIMIT // 2 and self.chan is not None and not self.closed:
            self._paused = False
            self.chan.resume_reading()
        return chunk

    async def read_header(self) -> int | None:
        """Consume the pid header; ``None`` when output ended without one.

        Anything a login script printed before the header is dropped.
        """
        while True:
            m = HEADER.search(self.buf)
            if m:
                pid = int(m[1])  # before the del: the match must not be used after it
                del self.buf[: m.end()]
                if self.sink is not None:
                    self.sink.append(bytes(self.buf))
                    self.buf.clear()
                    self._direct = True
                return pid
            if self.eof:
                return None
            if len(self.buf) > READ_LIMIT:
                del self.buf[: -4096]  # a chatty login script: keep memory bounded
            self._data.clear()
            await self._data.wait()

    async def write(self, data: bytes) -> None:
        if self.chan is None or self.closed:
            raise ProcessError("the process's channel is closed")
        self.chan.write(data)
        await self._writable.wait()

    def close(self) -> None:
        if self.chan is not None and not self.closed:
            self.chan.close()


async def open_channel(
    conn: asyncssh.SSHClientConnection,
    command: str,
    *,
    pty: bool = False,
    sink: OutputBuffer | None = None,
) -> tuple[asyncssh.SSHClientChannel[bytes], ChannelSession]:
    """Open one session channel running ``command`` (a remote shell command line)."""
    kwargs: dict[str, Any] = {"encoding": None, "env": None, "send_env": None, "x11_forwarding": False}
    if pty:
        kwargs.update(term_type="xterm", term_size=(200, 40), request_pty="force")
    else:
        kwargs.update(request_pty=False)
    chan, session = await conn.create_session(lambda: ChannelSession(sink), command, **kwargs)
    return chan, session  # type: ignore[return-value]


class SSHProcess(Process):
    """A background process on the remote host, over its own channel of the sandbox's connection.

    ``signaller(sig, pid)`` sends a signal to the remote process group (the sandbox runs it as a
    short command on the same connection).
    """

    def __init__(
        self,
        session: ChannelSession,
        pid: int,
        *,
        pty: bool,
        signaller: Callable[[int, int], Awaitable[None]],
    ) -> None:
        self._s = session
        self.pid = pid
        self.pty = pty
        self._signaller = signaller

    async def read(self, max_bytes: int = 65536) -> bytes:
        await self._s.wait_data()
        return self._s.take(max_bytes)

    async def write(self, data: bytes) -> None:
        if self.returncode is not None:
            raise ProcessError(f"process {self.pid} has exited (code {self.returncode})")
        if self._s.closed:
            raise ProcessError(f"the channel of process {self.pid} is closed")
        await self._s.write(data)

    async def close_stdin(self) -> None:
        if self.pty:
            await self.write(b"\x04")  # a terminal has no separate stdin: EOF character
            return
        chan = self._s.chan
        if chan is not None and not self._s.closed:
            try:
                chan.write_eof()
            except (OSError, asyncssh.Error):
                pass

    async def wait(self, timeout: float | None = None) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._s.exited)
        except TimeoutError:
            return None

    @property
    def returncode(self) -> int | None:
        return self._s.status

    @property
    def connection_lost(self) -> bool:
        """The process ended because the SSH connection went away (its real fate is unknown)."""
        return self._s.lost is not None

    async def signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        await self._signaller(int(sig), self.pid)

    def detach(self) -> None:
        """Close the channel (the sandbox's close kills the remote processes)."""
        self._s.close()
