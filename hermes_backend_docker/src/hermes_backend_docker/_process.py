"""Commands inside the container: one-shot execs and background processes, over the exec API.

runc makes every exec its own session (and so process-group) leader, so a command's whole
group can be signalled with ``kill -SIG -PID`` from another exec. A background process needs
that PID (in the container's PID namespace, which the engine does not report), so it is started
behind a one-line ``sh`` prelude that prints ``$$`` before ``exec``-ing the command; the line is
taken out of the output. One-shot execs skip the prelude (it costs a fork and exec per call):
they carry a random marker in their environment instead, and a timeout kills every process
that still carries it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hermes_core.errors import ProcessError
from hermes_core.sandbox import DEFAULT_OUTPUT_LIMIT, OutputBuffer, Process

from ._engine import ExecStream, exit_code, in_thread, is_running

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["DockerProcess", "ExecJob", "KILL_MARKED", "MARKER_VAR", "open_process"]

#: Environment variable that tags every process of one one-shot exec.
MARKER_VAR = "HERMES_EXEC_ID"

#: $1 = marker value. SIGKILL the process group of, and each, process carrying the marker;
#: repeated so that children forked while the first pass ran are caught too.
KILL_MARKED = r"""
for pass in 1 2 3; do
  found=
  for f in $(grep -l -a -F -e "HERMES_EXEC_ID=$1" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; p=${p%/environ}
    [ "$p" = "$$" ] && continue
    kill -9 -"$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; found=1
  done
  [ -n "$found" ] || break
done
exit 0
"""

#: $1 = signal number, $2 = pid. The group first; the bare pid if it already left its group.
SIGNAL_GROUP = r'kill -"$1" -"$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null; exit 0'

_PID_LINE = re.compile(rb"__HERMES_PID_(\d+)__\r?\n")
#: Unread output kept per background process before its reader stops taking more from the
#: engine (the process then blocks on a full pipe, as it would locally).
HIGH_WATER = 4 << 20
#: After this long, a wait also asks the engine whether the process has exited: the engine
#: holds an exec's output open for up to 2 s when descendants outlive it.
POLL_AFTER = 0.5


def prelude(argv: Sequence[str], *, pty: bool) -> list[str]:
    """``argv`` behind the ``sh`` line that reports its PID (stderr in pipe mode)."""
    if pty:
        # A fresh exec TTY is 0x0; give programs the same size the local backend uses.
        script = 'stty cols 200 rows 40 2>/dev/null; printf \'__HERMES_PID_%s__\\n\' "$$"; exec "$@"'
    else:
        script = 'printf \'__HERMES_PID_%s__\\n\' "$$" >&2; exec "$@"'
    return ["sh", "-c", script, "sh", *argv]


def env_list(env: Mapping[str, str] | None) -> list[str]:
    return [f"{k}={v}" for k, v in (env or {}).items()]


class ExecJob:
    """A one-shot exec run to completion on a thread; output collected, exit code inspected."""

    def __init__(
        self,
        api: APIClient,
        container: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None,
        workdir: str,
        stdin: bytes | None,
        max_output: int = DEFAULT_OUTPUT_LIMIT,
    ):
        self.api = api
        self.container = container
        self.marker = secrets.token_hex(12)
        self.argv = argv
        self.env = [*env_list(env), f"{MARKER_VAR}={self.marker}"]
        self.workdir = workdir
        self.stdin = stdin
        self.exec_id: str | None = None
        self.stream: ExecStream | None = None
        self._out = OutputBuffer(max_output)  # head + tail: bounded whatever the command prints
        self._out_lock = threading.Lock()

    def run(self) -> int | None:
        """Blocking: create, start, feed stdin, collect output, return the exit code."""
        created = self.api.exec_create(
            self.container,
            self.argv,
            stdin=self.stdin is not None,
            environment=self.env,
            workdir=self.workdir,
        )
        self.exec_id = created["Id"]
        stream = self.stream = ExecStream(self.api, self.exec_id, tty=False)
        try:
            if self.stdin is not None:
                # A separate writer: a command may fill its output pipe before reading all input.
                threading.Thread(target=self._feed, args=(stream, self.stdin), daemon=True).start()
            for _, data in stream.chunks():
                with self._out_lock:
                    self._out.append(data)
        finally:
            stream.close()
        return exit_code(self.api, self.exec_id)

    @staticmethod
    def _feed(stream: ExecStream, data: bytes) -> None:
        try:
            if data:
                stream.send(data)
        except OSError:
            pass  # the command stopped reading; what it printed tells the story
        finally:
            stream.close_write()

    def output(self) -> bytes:
        with self._out_lock:
            return self._out.getvalue()

    def abandon(self) -> None:
        """Stop collecting (descendants that outlived the command may hold the stream open)."""
        if self.stream is not None:
            self.stream.close()


def open_process(
    api: APIClient,
    container: str,
    argv: list[str],
    *,
    pty: bool,
    env: Mapping[str, str] | None,
    workdir: str,
) -> tuple[str, ExecStream, Any, int | None, bytes, bool]:
    """Blocking: start ``argv`` with stdin attached and read up to its PID line.

    Returns ``(exec_id, stream, chunk iterator, pid, output before the PID line, ended)``.
    """
    created = api.exec_create(
        container,
        prelude(argv, pty=pty),
        stdin=True,
        tty=pty,
        environment=env_list(env),
        workdir=workdir,
    )
    exec_id = created["Id"]
    stream = ExecStream(api, exec_id, tty=pty)
    chunks = stream.chunks()
    early = bytearray()
    header = bytearray()  # stderr (pipe mode) or the whole stream (PTY) up to the PID line
    for kind, data in chunks:
        if not pty and kind != 2:
            early += data  # e.g. the engine's own "OCI runtime exec failed" text
            continue
        header += data
        m = _PID_LINE.search(header)
        if m:
            early += header[: m.start()] + header[m.end() :]
            return exec_id, stream, chunks, int(m[1]), bytes(early), False
    # Ended before the prelude ran (bad working directory, no sh in the image, ...).
    return exec_id, stream, chunks, None, bytes(early + header), True


class DockerProcess(Process):
    """A background process in the sandbox's container (see the module docstring)."""

    def __init__(
        self,
        api: APIClient,
        exec_id: str,
        stream: ExecStream,
        chunks: Any,
        *,
        pid: int | None,
        pty: bool,
        early: bytes,
        ended: bool,
        signaller: Callable[[int, int], Awaitable[None]],
        closing: Callable[[], bool] = lambda: False,
    ):
        self.pid = pid
        self.pty = pty
        self._api = api
        self.exec_id = exec_id
        self._stream = stream
        self._signaller = signaller
        self._closing = closing
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._buf = bytearray(early)
        self._eof = False
        self._code: int | None = None
        self._data = asyncio.Event()
        self._exited = asyncio.Event()
        self._stdin_closed = False
        self._write_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._detached = False
        threading.Thread(target=self._pump, args=(chunks, ended), name=f"hermes-docker-pid-{pid}", daemon=True).start()

    # ------------------------------------------------------------------ reader thread

    def _pump(self, chunks: Any, ended: bool) -> None:
        try:
            if not ended:
                for _, data in chunks:
                    with self._room:
                        self._buf += data
                        self._wake()
                        while len(self._buf) > HIGH_WATER and not self._detached:
                            self._room.wait(0.5)
        finally:
            with self._lock:
                self._eof = True
                self._wake()
            self._stream.close()
            # The sandbox is closing: its container is being killed and removed, which is what
            # ended this stream, and the exec reads "running" until the engine is done. Ask once
            # rather than poll: with hundreds of sandboxes closing at once, every process polling
            # its exec for 5 s made ~40 exec inspects per rollout and slowed those removals.
            closing = self._detached or self._closing()
            code = exit_code(self._api, self.exec_id, patience=0 if closing else 5.0)
            # The engine forgets an exec when its container is removed: that was a SIGKILL.
            self._call(self._set_exit, 137 if code is None else code)

    def _wake(self) -> None:
        self._call(self._data.set)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nobody is listening any more
            pass

    def _set_exit(self, code: int) -> None:
        if self._code is None:
            self._code = code
        self._exited.set()
        if self._poller is not None and self._poller is not asyncio.current_task():
            self._poller.cancel()

    # ------------------------------------------------------------------ Process API

    async def read(self, max_bytes: int = 65536) -> bytes:
        while True:
            with self._room:
                if self._buf:
                    chunk = bytes(self._buf[:max_bytes])
                    del self._buf[:max_bytes]
                    self._room.notify_all()
                    return chunk
                if self._eof:
                    return b""
                self._data.clear()
            await self._data.wait()

    async def write(self, data: bytes) -> None:
        if self._stdin_closed:
            raise ProcessError(f"stdin of process {self.pid} is closed")
        if self._code is not None:
            raise ProcessError(f"process {self.pid} has exited (code {self._code})")
        async with self._write_lock:
            try:
                sent = self._stream.send_nowait(data)
                if sent < len(data):
                    await in_thread(self._stream.send, data[sent:])
            except OSError as e:
                raise ProcessError(f"process {self.pid} is no longer reading stdin ({e})") from None

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        if self.pty:
            # A terminal has no separate stdin to close: send the EOF character instead.
            if self._code is None:
                await self.write(b"\x04")
            return
        self._stdin_closed = True
        async with self._write_lock:
            self._stream.close_write()

    async def wait(self, timeout: float | None = None) -> int | None:
        if self._code is not None:
            return self._code
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        try:
            async with asyncio.timeout(timeout):
                await self._exited.wait()
        except TimeoutError:
            return None
        return self._code

    async def _poll(self) -> None:
        """Ask the engine about the exit while its output stream is still held open."""
        await asyncio.sleep(POLL_AFTER)
        while self._code is None:
            running = await in_thread(is_running, self._api, self.exec_id)
            if running is False:
                code = await in_thread(exit_code, self._api, self.exec_id)
                self._set_exit(137 if code is None else code)
                return
            await asyncio.sleep(0.5)

    @property
    def returncode(self) -> int | None:
        return self._code

    async def signal(self, sig: int) -> None:
        if self._code is not None or self.pid is None:
            return
        if self._closing():
            # The sandbox is being torn down and its container is removed next, which kills
            # this process for certain. Signalling through another exec could stall for
            # seconds (the engine holds new execs while a dead exec's output drains).
            self.detach()
            self._set_exit(128 + int(sig))
            return
        await self._signaller(int(sig), self.pid)

    def detach(self) -> None:
        """Stop reading (the sandbox is going away); ``read`` then sees end of output."""
        self._detached = True
        with self._room:
            self._room.notify_all()
        self._stream.close()
