"""Notifications of the process registry: completion events, ``check_interval`` progress
watchers, async-iterator streams and callbacks."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ._state import ProcessEvent, Session

log = logging.getLogger("hermes.processes")

_EVENT_OUTPUT = 2000


class ProcessEvents:
    """The notifications of one :class:`~hermes_core.processes.ProcessRegistry`: streams,
    callbacks and ``check_interval`` watchers. Owned by the registry, which calls :meth:`emit`.

    Args:
        refresh: ``await refresh(session)`` brings a recovered session's buffer up to date
            before a progress event (the registry's recovery provides it).
    """

    def __init__(self, refresh: Callable[[Session], Awaitable[None]]):
        self._refresh = refresh
        self._streams: set[_EventStream] = set()
        self._callbacks: list[tuple[Callable[[ProcessEvent], Any], str | None]] = []
        self._bg: set[asyncio.Future[Any]] = set()

    def events(self, task_id: str | None = None, *, maxsize: int = 1000) -> AsyncIterator[ProcessEvent]:
        """An async iterator of :class:`ProcessEvent` from now on (of one rollout, or all).

        It ends when the registry shuts down (:meth:`kill_all`). At most ``maxsize`` unread
        events are kept; older ones are dropped (``stream.dropped`` counts them).
        """
        return _EventStream(self, task_id, maxsize)

    def subscribe(self, callback: Callable[[ProcessEvent], Any], task_id: str | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for each event (a coroutine function is scheduled as a task).

        Returns:
            A function that unsubscribes.
        """
        entry = (callback, task_id)
        self._callbacks.append(entry)

        def unsubscribe() -> None:
            if entry in self._callbacks:
                self._callbacks.remove(entry)

        return unsubscribe

    def emit(self, s: Session, kind: str, *, new_bytes: int = 0) -> None:
        """Deliver one event about ``s`` to every stream and callback that wants it."""
        tail = s.buffer.tail(min(new_bytes, _EVENT_OUTPUT * 4) if kind == "progress" else _EVENT_OUTPUT * 4)
        event = ProcessEvent(
            kind=kind, session_id=s.id, task_id=s.task_id, command=s.command, pid=s.pid,  # type: ignore[arg-type]
            status=s.status, exit_code=s.exit_code, output=tail.decode("utf-8", "replace")[-_EVENT_OUTPUT:],
            new_bytes=new_bytes, output_bytes=s.buffer.total, time=time.time(),
        )
        for stream in list(self._streams):
            if stream.task_id is None or stream.task_id == s.task_id:
                stream.put(event)
        for callback, task_id in list(self._callbacks):
            if task_id is not None and task_id != s.task_id:
                continue
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    fut = asyncio.ensure_future(result)
                    self._bg.add(fut)
                    fut.add_done_callback(self._callback_done)
            except Exception:
                log.exception("process event callback %r failed", callback)

    def _callback_done(self, fut: asyncio.Future[Any]) -> None:
        self._bg.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.error("process event callback failed", exc_info=fut.exception())

    def close(self) -> None:
        """End every event stream (registry shutdown)."""
        for stream in list(self._streams):
            stream.close()

    async def watch(self, s: Session, interval: float) -> None:
        """Emit a ``progress`` event every ``interval`` seconds while ``s`` runs."""
        last = s.buffer.total
        while s.running:
            try:
                async with asyncio.timeout(interval):
                    await s.done.wait()
                return  # the exit event says the rest
            except TimeoutError:
                pass
            if s.recovered:
                await self._refresh(s)
            total = s.buffer.total
            self.emit(s, "progress", new_bytes=total - last)
            last = total


class _EventStream:
    """One subscriber's queue of events (see :meth:`ProcessEvents.events`)."""

    def __init__(self, owner: ProcessEvents, task_id: str | None, maxsize: int):
        self.task_id = task_id
        self.dropped = 0
        self._registry = owner
        self._queue: asyncio.Queue[ProcessEvent | None] = asyncio.Queue()
        self._maxsize = maxsize
        self._closed = False
        owner._streams.add(self)

    def put(self, event: ProcessEvent | None) -> None:
        if self._queue.qsize() >= self._maxsize:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._registry._streams.discard(self)
            self._queue.put_nowait(None)

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> ProcessEvent:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        self.close()
