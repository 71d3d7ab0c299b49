"""Building blocks of the process registry: the rolling buffer, a session's record, events, and
the ``/proc`` helpers that identify host processes (so nothing ever signals a stranger)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import (
    ProcessEndedError,
    ProcessForbiddenError,
    ProcessLimitError,
    ProcessNotFoundError,
)
from ..sandbox._coalesce import Coalescer
from ..sandbox._owner import proc_stat

__all__ = [
    "ProcessNotFoundError",
    "ProcessForbiddenError",
    "ProcessEndedError",
    "ProcessLimitError",
    "RingBuffer",
    "Session",
    "ProcessEvent",
    "MARKER",
]

#: Environment variable naming the session a process (and each of its descendants) belongs to.
MARKER = "HERMES_PROCESS_ID"

Status = Literal["running", "exited", "killed"]


class RingBuffer:
    """The last ``capacity`` bytes of a stream, plus the count of every byte ever appended.

    Offsets are positions in the whole stream: the buffer holds ``[start, total)``. Chunks are
    kept as they arrive and trimmed from the left, so an append costs O(chunk), not O(capacity).
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.total = 0
        self._chunks: deque[bytes] = deque()
        self._size = 0

    @property
    def start(self) -> int:
        return self.total - self._size

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        if len(data) >= self.capacity:
            self._chunks.clear()
            self._chunks.append(bytes(data[-self.capacity :]))
            self._size = self.capacity
            return
        self._chunks.append(bytes(data))
        self._size += len(data)
        while self._size > self.capacity:
            excess = self._size - self.capacity
            first = self._chunks[0]
            if len(first) <= excess:
                self._chunks.popleft()
                self._size -= len(first)
            else:
                self._chunks[0] = first[excess:]
                self._size -= excess

    def skip_to(self, offset: int) -> None:
        """Continue the stream at ``offset`` (bytes before it were never seen): used when a
        recovered session's log grew by more than the capacity."""
        if offset > self.total:
            self._chunks.clear()
            self._size = 0
            self.total = offset

    def read(self, offset: int, limit: int) -> tuple[int, bytes]:
        """Bytes from ``offset`` (clamped to what is still held), at most ``limit``.

        Returns:
            (the offset actually read from, the bytes).
        """
        offset = max(offset, self.start)
        if offset >= self.total or limit <= 0:
            return min(offset, self.total), b""
        data = b"".join(self._chunks)
        rel = offset - self.start
        return offset, data[rel : rel + limit]

    def tail(self, n: int) -> bytes:
        if n <= 0:
            return b""
        out: list[bytes] = []
        need = n
        for chunk in reversed(self._chunks):
            if need <= 0:
                break
            out.append(chunk[-need:])
            need -= len(out[-1])
        return b"".join(reversed(out))


@dataclass
class Session:
    """One background process and everything the registry knows about it."""

    id: str
    command: str
    task_id: str
    pid: int | None
    pty: bool
    backend: str
    sandbox_id: str
    cwd: str | None
    buffer: RingBuffer
    started_at: float = field(default_factory=time.time)
    #: Host processes only: start time in clock ticks since boot (``/proc/<pid>/stat`` field 22).
    start_ticks: int | None = None
    boot_id: str | None = None
    #: The process runs on this machine: its pid is a host pid and its log a host file.
    host: bool = False
    status: Status = "running"
    exit_code: int | None = None
    ended_at: float | None = None
    log_path: str | None = None
    rc_path: str | None = None
    #: Adopted from a crashed driver through the checkpoint (no pipe to it any more).
    recovered: bool = False
    stdin_open: bool = True
    check_interval: float | None = None
    note: str | None = None
    # runtime-only state
    proc: Any = None  # hermes_core.sandbox.Process; None when recovered
    done: asyncio.Event = field(default_factory=asyncio.Event)
    killing: bool = False
    was_running_at_kill: bool = False
    eof: bool = False
    tasks: list[asyncio.Future[Any]] = field(default_factory=list)
    pidfd: int | None = None
    #: The sandbox's own list of its host processes (``Sandbox.host_pids``), if it has one.
    host_pids: Callable[[], list[int] | None] | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def summary(self, *, output_chars: int = 0) -> dict[str, Any]:
        """The JSON shape tools and hosts see."""
        end = self.ended_at or time.time()
        d: dict[str, Any] = {
            "session_id": self.id,
            "command": self.command if len(self.command) <= 200 else self.command[:197] + "...",
            "status": self.status,
            "exit_code": self.exit_code,
            "pid": self.pid,
            "pty": self.pty,
            "started_at": round(self.started_at, 3),
            "runtime_seconds": round(max(0.0, end - self.started_at), 3),
            "output_bytes": self.buffer.total,
            "stdin_open": self.stdin_open and self.running and not self.recovered,
        }
        if self.recovered:
            d["recovered"] = True
        if self.note:
            d["note"] = self.note
        if output_chars > 0:
            tail = self.buffer.tail(output_chars * 4).decode("utf-8", "replace")
            d["output"] = tail[-output_chars:]
            d["output_truncated"] = self.buffer.total > len(d["output"].encode("utf-8", "replace"))
        return d

    def record(self) -> dict[str, Any]:
        """What the checkpoint keeps of this session."""
        return {
            "id": self.id,
            "command": self.command,
            "task_id": self.task_id,
            "pid": self.pid,
            "pty": self.pty,
            "backend": self.backend,
            "sandbox_id": self.sandbox_id,
            "cwd": self.cwd,
            "started_at": self.started_at,
            "start_ticks": self.start_ticks,
            "boot_id": self.boot_id,
            "host": self.host,
            "status": self.status,
            "exit_code": self.exit_code,
            "ended_at": self.ended_at,
            "log_path": self.log_path,
            "rc_path": self.rc_path,
        }


@dataclass(frozen=True)
class ProcessEvent:
    """Something a host may want to hear about a background process.

    Attributes:
        kind: ``"exited"`` (ended by itself), ``"killed"`` (ended by a kill), ``"progress"``
            (a ``check_interval`` tick while running) or ``"recovered"`` (adopted after a crash).
        session_id, task_id, command, pid: which process.
        status, exit_code: its state at the time of the event.
        output: the tail of its output (for ``progress``: of the output since the last tick).
        new_bytes: bytes of output since the previous ``progress`` event of this session.
        output_bytes: bytes of output in total.
        time: when (``time.time()``).
    """

    kind: Literal["exited", "killed", "progress", "recovered"]
    session_id: str
    task_id: str
    command: str
    pid: int | None
    status: str
    exit_code: int | None
    output: str
    new_bytes: int
    output_bytes: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------- /proc helpers


def stragglers(pgid: int | None, session_id: str, *, strict: bool = False, among: Iterable[int] | None = None) -> list[int]:
    """Live host processes of a session: members of its process group, and anything carrying
    its marker in the environment (children that left the group with ``setsid``).

    ``strict`` (used for sessions adopted after a crash, whose group id may have been
    recycled) requires the marker from group members too. ``among``: the only pids that can be
    the session's (its sandbox's processes, when the backend can list them); default: every
    process in ``/proc``.
    """
    return find_stragglers({session_id: (pgid, strict)}, among=among).get(session_id, [])


def find_stragglers(
    queries: Mapping[str, tuple[int | None, bool]], *, among: Iterable[int] | None = None
) -> dict[str, list[int]]:
    """:func:`stragglers` of many sessions in one pass over the processes: ``queries`` maps a
    session id to its ``(pgid, strict)``; each process's stat and environment are read once,
    whatever the number of sessions asked about."""
    by_group = {pgid: sid for sid, (pgid, strict) in queries.items() if pgid is not None and not strict}
    key = f"{MARKER}=".encode()
    me = os.getpid()
    found: dict[str, list[int]] = {}
    if among is None:
        among = (int(e.name) for e in os.scandir("/proc") if e.name.isdigit())
    for pid in among:
        if pid == me:
            continue
        st = proc_stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        sid = by_group.get(st[1])
        if sid is None:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            at = env.find(key)
            while at > 0 and env[at - 1] != 0:  # "XHERMES_PROCESS_ID=" is another variable
                at = env.find(key, at + 1)
            if at < 0:
                continue
            end = env.find(b"\0", at)
            sid = env[at + len(key) : end if end >= 0 else len(env)].decode(errors="replace")
            if sid not in queries:
                continue
        found.setdefault(sid, []).append(pid)
    return found


class StragglerScanner:
    """Coalesces the straggler lookups of sessions ended at the same time into shared passes
    over ``/proc`` (one per registry): 1,000 rollouts ending together cost a few scans of
    ``/proc`` instead of 1,000 (each of which reads every process on the machine)."""

    def __init__(self) -> None:
        # one query per session and pass; another query of the same session waits for the next
        self._passes: Coalescer[tuple[str, int | None, bool], list[int]] = Coalescer(
            self._scan, lambda key, chosen: all(key[0] != c[0] for c in chosen))

    async def find(self, pgid: int | None, session_id: str, *, strict: bool,
                   among: Callable[[], list[int] | None] | None = None) -> list[int]:
        """:func:`stragglers` of one session. ``among`` lists the only pids that can be the
        session's (its sandbox's processes); then no ``/proc`` scan is needed at all."""
        pids = among() if among is not None else None
        if pids is not None:
            if len(pids) <= 32:  # a few small reads: not worth a thread
                return stragglers(pgid, session_id, strict=strict, among=pids)
            return await asyncio.to_thread(stragglers, pgid, session_id, strict=strict, among=pids)
        return await self._passes.ask((session_id, pgid, strict))

    @staticmethod
    async def _scan(keys: list[tuple[str, int | None, bool]]) -> dict[tuple[str, int | None, bool], list[int]]:
        found = await asyncio.to_thread(find_stragglers, {sid: (pgid, strict) for sid, pgid, strict in keys})
        return {key: found.get(key[0], []) for key in keys}


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def read_rc(path: str | None) -> int | None:
    """The exit code the job wrapper wrote when its command ended, if it did."""
    if not path:
        return None
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
