"""Blocking host calls (file I/O on a sandbox's files, directory removal) run on small bounded
thread pools of their own, never on asyncio's default executor.

A hostile sandbox can make a host call hang (a file on a hung mount, a huge tree). With its own
bounded pool, at most ``FILE_WORKERS`` such calls pile up; each caller gets an error when its
timeout passes, and teardown (``TEARDOWN`` pool) and everything on the default executor (sync
tools, sync verifiers) keep working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import SandboxError

__all__ = ["FILE_WORKERS", "run_blocking", "run_teardown"]

T = TypeVar("T")

#: Threads for blocking file calls, per process.
FILE_WORKERS = 16
#: Threads for teardown (directory removal, process scans), per process.
TEARDOWN_WORKERS = 16

_lock = threading.Lock()
_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}


def _pool(name: str, workers: int) -> concurrent.futures.ThreadPoolExecutor | None:
    # Executors, like asyncio's default one, belong to the process: made once, on first use.
    # None at interpreter shutdown (no new threads then): the call runs inline instead.
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            try:
                pool = _pools[name] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"hermes-{name}")
            except RuntimeError:
                return None
        return pool


async def _run(pool_name: str, workers: int, call: Callable[[], T]) -> T:
    pool = _pool(pool_name, workers)
    if pool is None:
        return call()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, call)
    except RuntimeError as e:  # "cannot schedule new futures after interpreter shutdown"
        if "shutdown" not in str(e):
            raise
        return call()


async def run_blocking(fn: Callable[..., T], *args: Any, timeout: float | None = 300.0, what: str = "", **kw: Any) -> T:
    """Run ``fn(*args, **kw)`` on the bounded file pool; raise ``SandboxError`` past ``timeout``
    (the thread finishes on its own; the pool bounds how many can be stuck)."""
    fut = asyncio.ensure_future(_run("files", FILE_WORKERS, functools.partial(fn, *args, **kw)))
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(fut)
    except TimeoutError:
        raise SandboxError(f"{what or getattr(fn, '__name__', 'a file operation')} did not finish within {timeout:g}s") from None


async def run_teardown(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a teardown step on its own pool (never starved by stuck file calls)."""
    return await _run("teardown", TEARDOWN_WORKERS, functools.partial(fn, *args, **kw))
