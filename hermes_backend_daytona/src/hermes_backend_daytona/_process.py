"""Background processes through Daytona sessions: one session per process, output streamed over
the daemon's log websocket, stdin through the session input API, signals through exec.

The command runs under a small bash wrapper inside the sandbox that puts it in its own process
group, feeds its stdin from a FIFO relayed from the session's stdin (so ``close_stdin`` can end
it: the session API has no end-of-input call), and writes the group id to a file for signals.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hermes_core.errors import ProcessError
from hermes_core.sandbox import Process

if TYPE_CHECKING:
    from daytona import AsyncSandbox

__all__ = ["CLOSE_STDIN", "DaytonaProcess", "SIGNAL_GROUP", "SPAWN_WRAPPER", "spawn_command"]

#: $1 nonce, $2 cwd; the argv comes shell-quoted in $HERMES_ARGV (not on the wrapper's own
#: command line, where process listings would count it). Its messages go to the log (fd 1).
SPAWN_WRAPPER = r"""
n=$1 cwd=$2
eval "set -- $HERMES_ARGV"; unset HERMES_ARGV
f="${TMPDIR:-/tmp}/.hermes-proc-$n"
exec 3<&0 2>/dev/null
cd -- "$cwd" 2>/dev/null || { echo "hermes: cannot change to directory $cwd"; exit 1; }
mkfifo -m 600 "$f.in" || { echo "hermes: cannot create $f.in"; exit 125; }
set -m
"$@" <"$f.in" 2>&1 &
p=$!
set +m
echo "$p" > "$f.pid"
cat <&3 >"$f.in" &
echo "$!" > "$f.cat"
exec 3<&-
wait "$p"; rc=$?
kill "$(cat "$f.cat")" 2>/dev/null
rm -f "$f.in" "$f.pid" "$f.cat"
exit "$rc"
"""

#: $1 nonce, $2 signal number: signal the process's whole group (no-op once it has ended).
SIGNAL_GROUP = r"""
f="${TMPDIR:-/tmp}/.hermes-proc-$1"
i=0; while [ ! -s "$f.pid" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
[ -s "$f.pid" ] || exit 0
kill -"$2" -- "-$(cat "$f.pid")" 2>/dev/null; exit 0
"""

#: $1 nonce: end the process's stdin (the relay from the session dies, the FIFO reaches EOF).
CLOSE_STDIN = r"""
f="${TMPDIR:-/tmp}/.hermes-proc-$1"
i=0; while [ ! -s "$f.cat" ] && [ -e "$f.in" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
[ -s "$f.cat" ] && kill "$(cat "$f.cat")" 2>/dev/null; exit 0
"""

#: Bytes of output held for a reader that does not keep up; older output beyond it is dropped.
BUFFER_LIMIT = 8 << 20


class DaytonaProcess(Process):
    """A background process in one Daytona session (see the module docstring)."""

    pty = False

    def __init__(
        self,
        sandbox: AsyncSandbox,
        session_id: str,
        command_id: str,
        nonce: str,
        *,
        run: Callable[[list[str]], Awaitable[Any]],
        on_end: Callable[[DaytonaProcess], None],
        closing: Callable[[], bool],
        request_timeout: float,
    ):
        self._sb = sandbox
        self.session_id = session_id
        self.command_id = command_id
        self.nonce = nonce
        self._run = run  # runs a small argv in the sandbox (the backend's exec)
        self._on_end = on_end
        self._closing = closing
        self._timeout = request_timeout
        self._buf = bytearray()
        self._dropped = 0
        self._eof = False
        self._stream_error: BaseException | None = None
        self._changed = asyncio.Event()
        self._code: int | None = None
        self._stdin_closed = False
        self._reader = asyncio.ensure_future(self._read_stream())

    # ------------------------------------------------------------------ output

    async def _read_stream(self) -> None:
        async def take(text: str) -> None:
            data = text.encode("utf-8")
            self._buf += data
            excess = len(self._buf) - BUFFER_LIMIT
            if excess > 0:
                del self._buf[:excess]
                self._dropped += excess
            self._changed.set()

        try:
            await self._sb.process.get_session_command_logs_async(self.session_id, self.command_id, take, take)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported through read() once the buffer is drained
            self._stream_error = e
        finally:
            self._eof = True
            self._changed.set()

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._buf and not self._eof:
            self._changed.clear()
            if self._buf or self._eof:
                break
            await self._changed.wait()
        if not self._buf:
            return b""
        out = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        return out

    # ------------------------------------------------------------------ input

    async def write(self, data: bytes) -> None:
        if self._stdin_closed:
            raise ProcessError("stdin of the process is closed")
        if self._code is not None:
            raise ProcessError(f"the process has ended (exit {self._code})")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProcessError("Daytona's session input carries text only: the data is not valid UTF-8") from None
        try:
            async with asyncio.timeout(self._timeout):
                await self._sb.process.send_session_command_input(self.session_id, self.command_id, text)
        except TimeoutError:
            raise ProcessError("writing to the process timed out") from None
        except Exception as e:  # noqa: BLE001 - the daemon says the command ended (410) or similar
            await self._refresh()
            raise ProcessError(f"cannot write to the process: {e}") from None

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self._code is None:
            await self._run(["bash", "-c", CLOSE_STDIN, "sh", self.nonce])

    # ------------------------------------------------------------------ exit and signals

    @property
    def returncode(self) -> int | None:
        return self._code

    async def _refresh(self) -> int | None:
        if self._code is not None:
            return self._code
        try:
            async with asyncio.timeout(self._timeout):
                cmd = await self._sb.process.get_session_command(self.session_id, self.command_id)
        except TimeoutError:
            return None
        except Exception:  # noqa: BLE001 - the session (or the sandbox) is gone: the process is too
            if self._eof:
                self._finish(255)
            return self._code
        if cmd.exit_code is not None:
            self._finish(int(cmd.exit_code))
        return self._code

    def _finish(self, code: int) -> None:
        if self._code is None:
            self._code = code
            self._on_end(self)

    async def wait(self, timeout: float | None = None) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = 0.05
        while True:
            if await self._refresh() is not None:
                return self._code
            now = loop.time()
            if deadline is not None and now >= deadline:
                return None
            step = pause if deadline is None else min(pause, deadline - now)
            if not self._eof:  # the end of the log stream is the earliest sign of exit
                self._changed.clear()
                try:
                    async with asyncio.timeout(step):
                        while not self._eof:
                            await self._changed.wait()
                            self._changed.clear()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(step)
            pause = min(pause * 1.5, 0.5)

    async def signal(self, sig: int) -> None:
        if self._code is not None:
            return
        if self._closing():
            # The sandbox is being deleted, which ends every process in it: no round trip.
            self.detach()
            self._finish(128 + int(sig))
            return
        await self._run(["bash", "-c", SIGNAL_GROUP, "sh", self.nonce, str(int(sig))])

    def detach(self) -> None:
        """Stop streaming (the sandbox is going away)."""
        if not self._reader.done():
            self._reader.cancel()


def spawn_command(nonce: str, cwd: str, argv: list[str]) -> str:
    """The session command string that runs ``argv`` under :data:`SPAWN_WRAPPER`."""
    return "HERMES_ARGV=" + shlex.quote(shlex.join(argv)) + " " + shlex.join(
        ["exec", "bash", "-c", SPAWN_WRAPPER, "hermes-proc", nonce, cwd]
    )

