"""Commands inside a Modal sandbox: one exec each, through ``Sandbox.exec`` of the real SDK.

Every command runs behind ``sh -c 'exec "$@" 2>&1'`` so stdout and stderr arrive interleaved in
one stream, in order, as the contract wants. Each exec carries a random marker in its
environment; signals go to every process that carries it (the command, its children and
grandchildren, even those that left its process group), through a second exec. Modal reports
no in-sandbox pid for an exec, so :attr:`ModalProcess.pid` is ``None``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from hermes_core.errors import ProcessError
from hermes_core.sandbox import Process

__all__ = ["MARKER_VAR", "MERGE", "ModalProcess", "SIGNAL_MARKED", "new_marker"]

#: Environment variable that tags every process of one exec.
MARKER_VAR = "HERMES_EXEC_ID"
#: stdout and stderr merged inside the sandbox (order kept); ``$@`` is the command's argv.
MERGE = 'exec "$@" 2>&1'
MERGE_NO_STDIN = 'exec "$@" 2>&1 </dev/null'

#: $1 = signal number, $2 = marker. Signal every process carrying the marker, three passes so
#: that children forked while the first pass ran are caught too.
SIGNAL_MARKED = r"""
for pass in 1 2 3; do
  found=
  for f in $(grep -l -a -F -e "HERMES_EXEC_ID=$2" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; p=${p%/environ}
    [ "$p" = "$$" ] && continue
    kill -"$1" "$p" 2>/dev/null && found=1
  done
  [ -n "$found" ] && [ "$1" = 9 ] || break
done
exit 0
"""

#: Unread output kept per background process before its reader stops pulling from Modal.
HIGH_WATER = 4 << 20


def new_marker() -> str:
    return secrets.token_hex(12)


class ModalProcess(Process):
    """A background exec: output read incrementally, stdin over the SDK's stdin stream."""

    def __init__(self, sandbox: Any, proc: Any, marker: str):
        self._sandbox = sandbox  # the hermes ModalSandbox (for signals)
        self._proc = proc  # modal ContainerProcess
        self.marker = marker
        self._buf: collections.deque[bytes] = collections.deque()  # chunks as they came: no memmove
        self._buffered = 0
        self._eof = False
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._stdin_closed = False
        self._code: int | None = None
        self._reader = asyncio.ensure_future(self._pull())
        self._waiter = asyncio.ensure_future(self._wait())

    async def _pull(self) -> None:
        try:
            async for chunk in self._proc.stdout:
                if chunk:
                    data = chunk if isinstance(chunk, bytes) else chunk.encode()
                    self._buf.append(data)
                    self._buffered += len(data)
                    self._more.set()
                    if self._buffered >= HIGH_WATER:
                        self._room.clear()
                        await self._room.wait()
        except Exception:  # noqa: BLE001 - the sandbox went away; the output simply ends
            pass
        finally:
            self._eof = True
            self._more.set()

    async def _wait(self) -> int:
        try:
            code = await self._proc.wait.aio()
        except Exception:  # noqa: BLE001 - sandbox gone: the process is gone with it
            code = 137
        self._code = 128 + 9 if code is None or code < 0 else code
        return self._code

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._buf and not self._eof:
            self._more.clear()
            await self._more.wait()
        parts, n = [], 0
        while self._buf and n < max_bytes:
            head = self._buf.popleft()
            if n + len(head) > max_bytes:
                cut = max_bytes - n
                self._buf.appendleft(head[cut:])
                head = head[:cut]
            parts.append(head)
            n += len(head)
        self._buffered -= n
        if self._buffered < HIGH_WATER:
            self._room.set()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, data: bytes) -> None:
        if self._stdin_closed:
            raise ProcessError("stdin of this process is closed")
        if self._code is not None:
            raise ProcessError(f"the process has ended (exit {self._code})")
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain.aio()
        except Exception as e:  # noqa: BLE001
            raise ProcessError(f"could not write to the process's stdin: {e}") from e

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        with contextlib.suppress(Exception):
            self._proc.stdin.write_eof()
            await self._proc.stdin.drain.aio()

    async def wait(self, timeout: float | None = None) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._waiter)
        except TimeoutError:
            return None

    @property
    def returncode(self) -> int | None:
        return self._code

    async def signal(self, sig: int) -> None:
        if self._code is not None:
            return
        await self._sandbox._signal_marked(int(sig), self.marker)

    def abandon(self) -> None:
        """Stop pulling output (the sandbox is closing)."""
        for t in (self._reader, self._waiter):
            t.cancel()


def wrap(argv: Sequence[str], *, stdin: bool) -> list[str]:
    return ["sh", "-c", MERGE if stdin else MERGE_NO_STDIN, "sh", *argv]


def exec_env(env: Mapping[str, str] | None, marker: str) -> dict[str, str]:
    return {**dict(env or {}), MARKER_VAR: marker}
