"""Crash recovery of the process registry: adopting the sessions of a dead driver from the
checkpoint, watching processes that are not our children (pidfd), reading what they logged since
the crash, and killing them only after checking they are still the recorded processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ProcessConfig
from ..sandbox._owner import boot_id, same_process
from . import _checkpoint as ckpt
from ._io import file_size, read_range
from ._state import RingBuffer, Session, read_rc

log = logging.getLogger("hermes.processes")

class ProcessRecovery:
    """Crash recovery for one :class:`~hermes_core.processes.ProcessRegistry`, which owns it.

    Args:
        config: the registry's settings (checkpoint on/off, recover on/off, buffer size).
        checkpoint_path: the shared JSON checkpoint.
        runtime_id: the owning runtime's id (its record in the checkpoint).
        sessions: the registry's session table; adopted sessions are added to it.
        emit: ``emit(session, kind)`` delivers an event.
        save: schedules a checkpoint write.
        finish: ``finish(session, exit_code)`` marks a session ended.
    """

    def __init__(
        self,
        *,
        config: ProcessConfig,
        checkpoint_path: Path,
        runtime_id: str,
        sessions: dict[str, Session],
        emit: Callable[[Session, str], None],
        save: Callable[[], None],
        finish: Callable[[Session, int | None], None],
    ):
        self.config = config
        self.checkpoint_path = checkpoint_path
        self.runtime_id = runtime_id
        self._sessions = sessions
        self._emit = emit
        self._save = save
        self._finish = finish
        self._boot = boot_id()
        #: This runtime's owner record in the checkpoint (set by :meth:`recover`).
        self.owner: dict[str, Any] | None = None
        self._recovered: list[Session] | None = None
        self._recover_lock: asyncio.Lock | None = None

    async def recover(self) -> list[Session]:
        """Adopt the sessions of crashed drivers from the checkpoint (once; later calls return
        the same list). Called by every action, so an explicit call is only needed to learn
        what was recovered."""
        if self._recovered is not None:
            return self._recovered
        if self._recover_lock is None:
            self._recover_lock = asyncio.Lock()
        async with self._recover_lock:
            if self._recovered is not None:
                return self._recovered
            self.owner = await asyncio.to_thread(ckpt.owner_record, self.runtime_id)
            records: list[dict[str, Any]] = []
            if self.config.checkpoint and self.config.recover:
                try:
                    records = await asyncio.to_thread(ckpt.adopt_orphans, self.checkpoint_path, self.owner)
                except OSError as e:
                    log.warning("cannot read process checkpoint %s: %s", self.checkpoint_path, e)
            self._recovered = [self._adopt(r) for r in records if r["id"] not in self._sessions]
            for s in self._recovered:
                self._emit(s, "recovered")
                if s.running:
                    self._watch_recovered(s)
            if self._recovered:
                self._save()
        return self._recovered

    def _adopt(self, r: dict[str, Any]) -> Session:
        s = Session(
            id=r["id"], command=str(r.get("command", "")), task_id=str(r.get("task_id", "")),
            pid=r.get("pid"), pty=bool(r.get("pty")), backend=str(r.get("backend", "?")),
            sandbox_id=str(r.get("sandbox_id", "")), cwd=r.get("cwd"),
            buffer=RingBuffer(self.config.buffer_bytes), started_at=float(r.get("started_at") or time.time()),
            start_ticks=r.get("start_ticks"), boot_id=r.get("boot_id"), host=bool(r.get("host")),
            status=r.get("status", "exited"), exit_code=r.get("exit_code"), ended_at=r.get("ended_at"),
            log_path=r.get("log_path"), rc_path=r.get("rc_path"), recovered=True, stdin_open=False,
        )
        if s.status not in ("running", "exited", "killed"):
            s.status = "exited"
        if s.running and not (s.host and same_process(s.pid, s.start_ticks, s.boot_id, self._boot)):
            s.status, s.ended_at = "exited", time.time()
            s.exit_code = read_rc(s.rc_path)
            s.note = (
                "the driver crashed and this process ended since"
                if s.host else f"the driver crashed; a {s.backend} process cannot be reached again"
            )
        if not s.running:
            s.done.set()
        self._sessions[s.id] = s
        return s

    def _watch_recovered(self, s: Session) -> None:
        """Notice the exit of a process that is not our child, through a pidfd."""
        assert s.pid is not None
        try:
            fd = os.pidfd_open(s.pid)
        except OSError:
            self._finish_recovered(s)
            return
        # Checked after opening: the pidfd now pins this very process.
        if not same_process(s.pid, s.start_ticks, s.boot_id, self._boot):
            os.close(fd)
            self._finish_recovered(s)
            return
        s.pidfd = fd
        asyncio.get_running_loop().add_reader(fd, self._finish_recovered, s)

    def _finish_recovered(self, s: Session) -> None:
        self.close_pidfd(s)
        if s.killing or not s.log_path:
            code = read_rc(s.rc_path)
            self._finish(s, 128 + signal.SIGTERM if code is None and s.killing else code)
            return
        fut = asyncio.ensure_future(self._settle_and_finish(s))
        s.tasks.append(fut)

    async def _settle_and_finish(self, s: Session) -> None:
        """The log's ``tee`` may still be writing the last bytes when the job's shell exits:
        wait (briefly) until the log stops growing, so the exit event carries them."""
        size = -1
        for _ in range(10):
            now = await asyncio.to_thread(file_size, s.log_path)
            if now == size:
                break
            size = now
            await asyncio.sleep(0.02)
        await self.refresh(s)
        self._finish(s, read_rc(s.rc_path))

    def close_pidfd(self, s: Session) -> None:
        """Stop watching a recovered process (its pidfd)."""
        if s.pidfd is not None:
            fd, s.pidfd = s.pidfd, None
            try:
                asyncio.get_running_loop().remove_reader(fd)
            except RuntimeError:
                pass
            os.close(fd)

    async def kill(self, s: Session, grace: float) -> None:
        """TERM, then KILL, a recovered process: only while it is verifiably the recorded one."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            # Only while the recorded leader is verifiably alive is its pid (= its group id) ours.
            if s.pidfd is not None and same_process(s.pid, s.start_ticks, s.boot_id, self._boot):
                try:
                    signal.pidfd_send_signal(s.pidfd, sig)
                    os.killpg(s.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                async with asyncio.timeout(grace if sig == signal.SIGTERM else 1.0):
                    await s.done.wait()
                return
            except TimeoutError:
                continue
        self._finish_recovered(s)

    async def refresh(self, s: Session) -> None:
        """Read what a recovered process logged since last time (at most one buffer's worth)."""
        if not s.log_path:
            return
        size = await asyncio.to_thread(file_size, s.log_path)
        if size <= s.buffer.total:
            return
        start = max(s.buffer.total, size - s.buffer.capacity)
        data = await asyncio.to_thread(read_range, s.log_path, start, size - start)
        s.buffer.skip_to(start)
        s.buffer.append(data)

