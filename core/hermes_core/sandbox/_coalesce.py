"""Coalesced passes: lookups made while one pass runs are answered together by the next.

A scan of ``/proc`` reads every process on the machine; when a thousand sandboxes (or background
jobs) end at once, each asking for its own scan, one shared pass per round answers them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class Coalescer(Generic[K, R]):
    """``await ask(key)`` → the result for ``key`` of the next pass, ``run(keys)`` (which returns a
    mapping key → result). Keys that ``fits(key, chosen)`` rejects wait for a later pass (a
    pass may answer one query per subject, say). A failed pass fails every waiter of that pass,
    never strands one (nor a waiter of a later pass). One pass runs at a time, on the loop of the caller."""

    def __init__(self, run: Callable[[list[K]], Awaitable[Mapping[K, R]]],
                 fits: Callable[[K, list[K]], bool] | None = None):
        self._run = run
        self._fits = fits
        self._pending: dict[K, list[asyncio.Future[R]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def ask(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.setdefault(key, []).append(fut)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._pending:
            chosen: list[K] = []
            for key in list(self._pending):
                if self._fits is None or self._fits(key, chosen):
                    chosen.append(key)
            batch = {key: self._pending.pop(key) for key in chosen}
            try:
                results = await self._run(chosen)
            except Exception as e:  # this pass's waiters get the error; the next pass still runs
                _fail(batch, e)
                continue
            except BaseException as e:  # cancelled: nothing more runs, so nobody may be left waiting
                _fail(batch, e)
                pending, self._pending = self._pending, {}
                _fail(pending, e)
                raise
            for key, futs in batch.items():
                if key not in results:  # a pass that skipped a key is a bug in run(): say so
                    _fail({key: futs}, LookupError(f"pass returned no result for {key!r}"))
                    continue
                for f in futs:
                    if not f.done():
                        f.set_result(results[key])


def _fail(waiters: Mapping[K, list[asyncio.Future[R]]], error: BaseException) -> None:
    for futs in waiters.values():
        for f in futs:
            if not f.done():
                if isinstance(error, asyncio.CancelledError):
                    f.cancel()
                else:
                    f.set_exception(error)
