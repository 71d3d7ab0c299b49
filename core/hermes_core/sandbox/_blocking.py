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
TEARDOWN_WORKERS = 4

_lock = threading.Lock()
_pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}


def _pool(name: str, workers: int) -> concurrent.futures.ThreadPoolExecutor:
    # Executors, like asyncio's default one, belong to the process: made once, on first use.
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"hermes-{name}")
        return pool


async def run_blocking(fn: Callable[..., T], *args: Any, timeout: float | None = 300.0, what: str = "", **kw: Any) -> T:
    """Run ``fn(*args, **kw)`` on the bounded file pool; raise ``SandboxError`` past ``timeout``
    (the thread finishes on its own; the pool bounds how many can be stuck)."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(_pool("files", FILE_WORKERS), functools.partial(fn, *args, **kw))
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(fut)
    except TimeoutError:
        raise SandboxError(f"{what or getattr(fn, '__name__', 'a file operation')} did not finish within {timeout:g}s") from None


async def run_teardown(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a teardown step on its own pool (never starved by stuck file calls)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool("teardown", TEARDOWN_WORKERS), functools.partial(fn, *args, **kw))
