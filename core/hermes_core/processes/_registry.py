"""The background-process registry: one per :class:`~hermes_core.Runtime`.

A session is a process started through a sandbox's ``spawn``, tagged with the rollout (task id)
that started it. One pump task per process reads its output incrementally into a bounded
:class:`RingBuffer` while a second awaits its exit, so an ending is noticed as soon as the
backend reports it. Every action takes the caller's task id; a session of another task is
refused (``task_id=None`` is the host, which may act on all).

Local pipe-mode processes run under a tiny ``bash`` wrapper that ``tee``s their output into a
log file and writes their exit code next to it. The driver reads the same bytes through the
pipe; if the driver dies, the process keeps running and keeps logging, and a new runtime that
reads the JSON checkpoint (see :mod:`hermes_core.processes._checkpoint`) adopts it: status, the
output written since (from the log), and kill, after checking pid *and* start time so a
recycled pid is never signalled.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import shlex
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ProcessConfig
from ..errors import ProcessError
from ..sandbox._owner import boot_id, proc_stat
from . import _checkpoint as ckpt
from ._events import ProcessEvents
from ._io import file_size, read_range
from ._recovery import ProcessRecovery
from ._state import (
    MARKER,
    ProcessEndedError,
    ProcessEvent,
    ProcessForbiddenError,
    ProcessLimitError,
    ProcessNotFoundError,
    RingBuffer,
    Session,
    StragglerScanner,
    kill_pids,
)

if TYPE_CHECKING:
    from ..sandbox import Command, Process, Sandbox

__all__ = [
    "ProcessRegistry",
    "ProcessEvent",
    "Session",
    "ProcessError",
    "ProcessNotFoundError",
    "ProcessForbiddenError",
    "ProcessEndedError",
    "ProcessLimitError",
]

log = logging.getLogger("hermes.processes")

# $1 log file, $2 exit-code file, $3 the command. tee -p keeps logging when the driver's end of
# the pipe is gone (a crashed driver); the EXIT trap records the code for a later runtime, and a
# signal is recorded as 128+N.
_WRAPPER = (
    'exec > >(exec tee -p -- "$1") 2>&1; __hermes_rc_file=$2; __hermes_cmd=$3; shift 3; '
    "trap 'echo $? > \"$__hermes_rc_file\"' EXIT; "
    # A signal ends the wrapper with 128+N (without these traps the EXIT trap would record
    # the status of the last command that finished, often 0, for a job that was killed).
    "trap 'exit 143' TERM; trap 'exit 129' HUP; trap 'exit 130' INT; "
    "eval \"$__hermes_cmd\""
)
_READ_CHUNK = 1 << 16
_DRAIN = 0.05  # how long an exited process's last output may take to arrive


async def _terminate(proc: Process, grace: float) -> None:
    """SIGTERM the group, SIGKILL after ``grace``.

    SIGTERM is sent again after 30 and 150 ms: a child caught between ``fork`` and ``exec``
    still runs its shell's signal handler, which swallows the first one, and then runs its
    program as if nothing had been sent (seen with jobs killed right after they started).
    """
    if proc.returncode is not None:
        return
    await proc.signal(signal.SIGTERM)
    start = time.monotonic()
    for resend_at in (0.03, 0.15, grace):
        left = min(resend_at, grace) - (time.monotonic() - start)
        if await proc.wait(max(0.0, left)) is not None:
            return
        if resend_at >= grace:
            break
        await proc.signal(signal.SIGTERM)
    await proc.signal(signal.SIGKILL)
    await proc.wait(5.0)


class ProcessRegistry:
    """Background processes of one runtime.

    Args:
        config: limits, buffer size, checkpoint and log settings.
        runtime_id: the owning runtime's id (its record in the shared checkpoint).
    """

    def __init__(self, config: ProcessConfig | None = None, *, runtime_id: str | None = None):
        cfg = config or ProcessConfig()
        self.config: ProcessConfig = cfg
        self.runtime_id: str = runtime_id or secrets.token_hex(6)
        self._sessions: dict[str, Session] = {}
        self._starting: dict[str, int] = {}  # task id -> spawns under way (see spawn)
        base = ckpt.data_dir()
        self.checkpoint_path = Path(cfg.checkpoint_path).expanduser() if cfg.checkpoint_path else base / "processes.json"
        self.log_dir = Path(cfg.log_dir).expanduser() if cfg.log_dir else base / "process-logs"
        self._boot = boot_id()
        self._saver: asyncio.Future[None] | None = None
        self._dirty = False
        self.recovery = ProcessRecovery(
            config=cfg, checkpoint_path=self.checkpoint_path, runtime_id=self.runtime_id,
            sessions=self._sessions, emit=self._emit, save=self._save, finish=self._finish,
        )
        self.notifications = ProcessEvents(refresh=self.recovery.refresh)
        self._log_dir_ready = False
        self._stragglers = StragglerScanner()

    # ------------------------------------------------------------------ notifications, recovery

    def events(self, task_id: str | None = None, *, maxsize: int = 1000) -> AsyncIterator[ProcessEvent]:
        """An async iterator of :class:`ProcessEvent` from now on (of one rollout, or all).

        It ends when the registry shuts down (:meth:`kill_all`). At most ``maxsize`` unread
        events are kept; older ones are dropped (``stream.dropped`` counts them).
        """
        return self.notifications.events(task_id, maxsize=maxsize)

    def subscribe(self, callback: Callable[[ProcessEvent], Any], task_id: str | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for each event (a coroutine function is scheduled as a
        task); returns a function that unsubscribes."""
        return self.notifications.subscribe(callback, task_id)

    def _emit(self, s: Session, kind: str) -> None:
        self.notifications.emit(s, kind)

    async def recover(self) -> list[Session]:
        """Adopt the sessions of crashed drivers from the checkpoint (once; later calls return
        the same list). Called by every action, so an explicit call is only needed to learn
        what was recovered."""
        return await self.recovery.recover()

    # ------------------------------------------------------------------ lookup

    def get(self, session_id: str, task_id: str | None = None) -> Session:
        """The session ``session_id``, if ``task_id`` (``None``: the host) may act on it.

        Raises:
            ProcessNotFoundError: no such session.
            ProcessForbiddenError: it belongs to another rollout.
        """
        s = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if s is None:
            raise ProcessNotFoundError(
                f"no background process with session id {session_id!r}; "
                "use action 'list' to see this rollout's sessions"
            )
        if task_id is not None and s.task_id != task_id:
            raise ProcessForbiddenError(
                f"session {session_id!r} belongs to another rollout; a rollout may only act on "
                "the processes it started itself"
            )
        return s

    def sessions(self, task_id: str | None = None) -> list[Session]:
        """Sessions of ``task_id`` (all with ``None``), oldest first."""
        return [s for s in self._sessions.values() if task_id is None or s.task_id == task_id]

    def list(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return [s.summary() for s in self.sessions(task_id)]

    # ------------------------------------------------------------------ spawn

    async def spawn(
        self,
        sandbox: Sandbox,
        command: Command,
        *,
        task_id: str,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        check_interval: float | None = None,
    ) -> Session:
        """Start ``command`` in ``sandbox`` in the background, owned by ``task_id``.

        Args:
            check_interval: seconds between ``progress`` events for this session (None: none).

        Raises:
            ProcessLimitError: the rollout already runs ``max_per_task`` processes.
            ProcessError: the command is invalid or could not start.
        """
        await self.recover()
        if isinstance(command, str):
            if not command.strip():
                raise ProcessError("command must not be empty")
            text = command
        else:
            argv = list(command)
            if not argv or not all(isinstance(a, str) for a in argv):
                raise ProcessError(f"command must be a string or a non-empty list of strings, got {command!r}")
            text = shlex.join(argv)
        if check_interval is not None and not (check_interval > 0 and math.isfinite(check_interval)):
            raise ProcessError(f"check_interval must be a positive number of seconds, got {check_interval!r}")
        running = sum(1 for s in self._sessions.values() if s.task_id == task_id and s.running)
        running += self._starting.get(task_id, 0)
        if running >= self.config.max_per_task:
            raise ProcessLimitError(
                f"this rollout already runs {running} background processes (the limit is "
                f"{self.config.max_per_task}); kill some with the process tool first"
            )
        # Reserve the slot before the first await: parallel tool calls of one turn must not all
        # pass the check above.
        self._starting[task_id] = self._starting.get(task_id, 0) + 1
        try:
            return await self._spawn(sandbox, command, text, task_id=task_id, pty=pty, cwd=cwd, env=env,
                                     check_interval=check_interval)
        finally:
            self._starting[task_id] -= 1
            if not self._starting[task_id]:
                del self._starting[task_id]

    async def _spawn(self, sandbox, command, text, *, task_id, pty, cwd, env, check_interval) -> Session:
        sid = "proc_" + secrets.token_hex(6)
        host = sandbox.capabilities.host_processes
        log_path = rc_path = None
        run: Command = command
        if host and not pty and self.config.log_output:
            if not self._log_dir_ready:
                await asyncio.to_thread(self.log_dir.mkdir, parents=True, exist_ok=True)
                self._log_dir_ready = True
            log_path, rc_path = str(self.log_dir / f"{sid}.log"), str(self.log_dir / f"{sid}.rc")
            run = ["bash", "-c", _WRAPPER, "hermes-job", log_path, rc_path, text]
        try:
            proc = await sandbox.spawn(run, pty=pty, cwd=cwd, env={**(env or {}), MARKER: sid})
        except ProcessError:
            raise
        except (OSError, ValueError, TypeError) as e:
            raise ProcessError(f"cannot start {text!r}: {type(e).__name__}: {e}") from None
        s = Session(
            id=sid, command=text, task_id=task_id, pid=proc.pid, pty=pty, backend=sandbox.backend_name,
            sandbox_id=sandbox.sandbox_id, cwd=cwd, buffer=RingBuffer(self.config.buffer_bytes),
            host=host, log_path=log_path, rc_path=rc_path, check_interval=check_interval, proc=proc,
            host_pids=sandbox.host_pids if host else None,
        )
        if host and proc.pid is not None:
            st = proc_stat(proc.pid)
            s.start_ticks, s.boot_id = (st[2] if st else None), self._boot
        self._sessions[sid] = s
        s.tasks.append(asyncio.ensure_future(self._pump(s)))
        if check_interval:
            s.tasks.append(asyncio.ensure_future(self.notifications.watch(s, check_interval)))
        self._save()
        return s

    async def _read_loop(self, s: Session) -> None:
        try:
            while chunk := await s.proc.read(_READ_CHUNK):
                s.buffer.append(chunk)
        except (OSError, ProcessError):
            pass
        s.eof = True

    async def _pump(self, s: Session) -> None:
        reader = asyncio.ensure_future(self._read_loop(s))
        s.tasks.append(reader)
        try:
            code = await s.proc.wait()
        except Exception as e:  # the backend lost the process: report it ended, not running forever
            code, s.note = None, f"the backend lost track of the process: {type(e).__name__}: {e}"
        if not reader.done():
            # The last bytes are usually already in the pipe; a grandchild still holding the
            # pipe open must not delay the exit notice.
            await asyncio.wait([reader], timeout=0.005 if s.killing else _DRAIN)
        self._finish(s, code)

    def _finish(self, s: Session, code: int | None) -> None:
        if not s.running:
            return
        s.status = "killed" if s.killing else "exited"
        s.exit_code = code
        s.ended_at = time.time()
        s.stdin_open = False
        s.done.set()
        self._emit(s, "killed" if s.killing else "exited")
        self._save()

    # ------------------------------------------------------------------ actions

    async def poll(self, session_id: str, task_id: str | None = None, *, output_chars: int = 2000) -> dict[str, Any]:
        """Status, exit code and the tail of the output."""
        s = await self._get(session_id, task_id)
        return s.summary(output_chars=output_chars)

    async def read_log(
        self, session_id: str, task_id: str | None = None, *, offset: int = 0, limit: int = 20_000
    ) -> dict[str, Any]:
        """Output bytes ``[offset, offset+limit)`` of the whole stream (negative offset: from the
        end), from the log file when there is one, else from the rolling buffer."""
        s = await self._get(session_id, task_id)
        total = s.buffer.total
        if s.log_path:
            total = max(total, await asyncio.to_thread(file_size, s.log_path))
        if offset < 0:
            offset = max(0, total + offset)
        available_from = 0 if s.log_path else s.buffer.start
        start = max(offset, available_from)
        if s.log_path:
            data = await asyncio.to_thread(read_range, s.log_path, start, limit)
        else:
            start, data = s.buffer.read(start, limit)
        text = data.decode("utf-8", "replace")
        out = {
            "session_id": s.id, "status": s.status, "exit_code": s.exit_code,
            "offset": start, "next_offset": start + len(data), "total_bytes": total,
            "available_from": available_from, "output": text,
        }
        if start > offset:
            out["note"] = f"bytes before offset {start} are no longer kept (rolling buffer)"
        return out

    async def wait(self, session_id: str, timeout: float, task_id: str | None = None) -> dict[str, Any]:
        """Wait until the process ends or ``timeout`` seconds pass (clamped to ``max_wait_seconds``).

        Raises:
            ProcessError: ``timeout`` is negative, not finite or not a number.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout < 0:
            raise ProcessError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        s = await self._get(session_id, task_id)
        used = min(float(timeout), self.config.max_wait_seconds)
        if s.running:
            try:
                async with asyncio.timeout(used):
                    await s.done.wait()
            except TimeoutError:
                pass
        if s.recovered:
            await self.recovery.refresh(s)
        out = s.summary(output_chars=2000)
        out["timed_out"] = s.running
        if used < timeout:
            out["timeout_clamped"] = True
            out["timeout_used"] = used
            out["note"] = f"timeout {timeout:g}s was clamped to the maximum of {used:g}s"
        return out

    async def write(self, session_id: str, data: str | bytes, task_id: str | None = None) -> dict[str, Any]:
        """Send ``data`` to the process's stdin (or terminal)."""
        if not isinstance(data, (str, bytes)):
            raise ProcessError(f"data must be a string, got {type(data).__name__}")
        s = await self._get(session_id, task_id)
        self._check_stdin(s)
        raw = data.encode("utf-8") if isinstance(data, str) else data
        await s.proc.write(raw)
        return {"session_id": s.id, "status": s.status, "bytes_written": len(raw)}

    async def close_stdin(self, session_id: str, task_id: str | None = None) -> dict[str, Any]:
        """Close stdin (in PTY mode: send the EOF character)."""
        s = await self._get(session_id, task_id)
        self._check_stdin(s)
        await s.proc.close_stdin()
        if not s.pty:
            s.stdin_open = False
        return {"session_id": s.id, "status": s.status, "stdin_open": s.stdin_open}

    def _check_stdin(self, s: Session) -> None:
        if not s.running:
            raise ProcessEndedError(f"session {s.id!r} has ended (exit code {s.exit_code}); it reads no more input")
        if s.recovered or s.proc is None:
            raise ProcessEndedError(
                f"session {s.id!r} was recovered after its driver crashed; its stdin went with the driver"
            )
        if not s.stdin_open:
            raise ProcessEndedError(f"stdin of session {s.id!r} was closed")

    async def kill(self, session_id: str, task_id: str | None = None) -> dict[str, Any]:
        """SIGTERM the process group, SIGKILL after ``kill_grace_seconds``; also children that
        left the group (local backend). Killing an ended session is a no-op."""
        s = await self._get(session_id, task_id)
        was_running = s.running
        await self._kill(s)
        out = s.summary(output_chars=1000)
        if not was_running:
            out["note"] = "the process had already ended"
        return out

    async def _kill(self, s: Session) -> None:
        grace = self.config.kill_grace_seconds
        s.was_running_at_kill = s.running
        if s.running:
            s.killing = True
            if s.recovered:
                await self.recovery.kill(s, grace)
            else:
                try:
                    await _terminate(s.proc, grace)
                except Exception as e:
                    s.note = f"kill failed: {type(e).__name__}: {e}"
                try:
                    async with asyncio.timeout(1.0):
                        await s.done.wait()
                except TimeoutError:
                    self._finish(s, s.proc.returncode)
        if s.host:
            await self._reap_stragglers(s, grace)

    async def _reap_stragglers(self, s: Session, grace: float) -> None:
        """Children that ignored the group signal or escaped it with ``setsid``: the ones
        carrying the session marker are this session's, so they are never strangers."""
        # The leader's pid names its group only while the leader lives (or was killed just now):
        # a session that ended long ago may see that pid reused, so only the marker is trusted.
        pgid = s.pid if not s.recovered and s.was_running_at_kill else None
        pids = await self._stragglers.find(pgid, s.id, strict=pgid is None, among=s.host_pids)
        if not pids:
            return
        kill_pids(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        rounds = 0
        while pids and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            pids = await self._stragglers.find(pgid, s.id, strict=s.recovered, among=s.host_pids)
            rounds += 1
            if rounds % 3 == 0:  # again: see _terminate (a fork caught mid-exec swallows one)
                kill_pids(pids, signal.SIGTERM)
        # A process may have been forking when it got SIGKILL: its new child was not in the
        # list. A killed process forks no more, so a few rounds end it.
        for _ in range(20):
            if not pids:
                break
            kill_pids(pids, signal.SIGKILL)
            await asyncio.sleep(0.005)
            pids = await self._stragglers.find(pgid, s.id, strict=s.recovered, among=s.host_pids)

    async def kill_task(self, task_id: str) -> None:
        """Kill every process of one rollout and forget its sessions (rollout cleanup)."""
        await self._drop(self.sessions(task_id))

    async def kill_all(self) -> None:
        """Kill every process, forget every session, remove this runtime from the checkpoint
        and end every event stream (runtime shutdown)."""
        await self._drop(list(self._sessions.values()))
        await self.flush()
        if self.config.checkpoint and self.recovery.owner is not None:
            await asyncio.to_thread(ckpt.save_owner, self.checkpoint_path, self.recovery.owner, None)
        self.notifications.close()

    async def _drop(self, sessions: list[Session]) -> None:
        if not sessions:
            return
        await asyncio.gather(*(self._kill(s) for s in sessions), return_exceptions=True)
        for s in sessions:
            self._sessions.pop(s.id, None)
            for t in s.tasks:
                t.cancel()
            self.recovery.close_pidfd(s)
            if not self.config.keep_logs:
                for p in (s.log_path, s.rc_path):
                    if p:
                        Path(p).unlink(missing_ok=True)
        self._save()

    async def _get(self, session_id: str, task_id: str | None) -> Session:
        await self.recover()
        s = self.get(session_id, task_id)
        if s.recovered:
            await self.recovery.refresh(s)
        return s

    # ------------------------------------------------------------------ checkpoint

    def _save(self) -> None:
        """Schedule a checkpoint write; writes coalesce and run in a worker thread."""
        if not self.config.checkpoint or self.recovery.owner is None:
            return
        self._dirty = True
        if self._saver is None or self._saver.done():
            self._saver = asyncio.ensure_future(self._save_loop())

    async def _save_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            records = [s.record() for s in self._sessions.values()]
            try:
                await asyncio.to_thread(ckpt.save_owner, self.checkpoint_path, self.recovery.owner, records)
            except OSError as e:
                log.warning("cannot write process checkpoint %s: %s", self.checkpoint_path, e)

    async def flush(self) -> None:
        """Wait until the checkpoint on disk reflects every change made so far."""
        while self._saver is not None and not self._saver.done():
            await asyncio.shield(self._saver)
