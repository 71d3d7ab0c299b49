"""The shared side of the backend: one SDK client per runtime and account, the create-rate
limiter, bounded create/delete concurrency, retries with backoff, and errors users can act on."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hermes_core.errors import SandboxError

from ._options import DaytonaOptions

if TYPE_CHECKING:
    from daytona import AsyncDaytona

__all__ = [
    "Account",
    "DaytonaAuthError",
    "DaytonaUnreachableError",
    "ImageNotFoundError",
    "QuotaExceededError",
    "RateLimiter",
    "RateLimitedError",
    "SandboxGoneError",
    "account_for",
    "resolve_endpoint",
]

T = TypeVar("T")
DEFAULT_API_URL = "https://app.daytona.io/api"


class DaytonaAuthError(SandboxError):
    """No API key, or Daytona rejected it."""


class DaytonaUnreachableError(SandboxError):
    """The Daytona API could not be reached (offline, wrong URL, firewall)."""


class ImageNotFoundError(SandboxError):
    """The image or snapshot the sandbox was to be made from does not exist or failed to build."""


class QuotaExceededError(SandboxError):
    """The account's quota (CPU, memory, disk, sandbox count) is used up."""


class RateLimitedError(SandboxError):
    """Daytona kept answering 429 after every retry."""


class SandboxGoneError(SandboxError):
    """The sandbox was deleted or stopped outside hermes (dashboard, another client, auto-stop)."""


def resolve_endpoint(opts: DaytonaOptions) -> tuple[str, str]:
    """(api_url, api_key) from the options and the environment.

    Raises:
        DaytonaAuthError: no API key in the environment.
    """
    key = os.environ.get(opts.api_key_env, "").strip()
    if not key:
        raise DaytonaAuthError(
            f"no Daytona API key: set {opts.api_key_env} (create a key at https://app.daytona.io/dashboard/keys)"
        )
    url = (opts.api_url or os.environ.get("DAYTONA_API_URL") or DEFAULT_API_URL).rstrip("/")
    return url, key


class RateLimiter:
    """At most ``rate`` acquisitions per second, spaced evenly (a token bucket of depth 1)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


class Account:
    """One ``AsyncDaytona`` client and the limits every sandbox of one runtime shares.

    Made on the first sandbox's start and closed when the last one closes; the limiter lives on
    with the entry, so back-to-back rollouts still respect the create rate.
    """

    def __init__(self, opts: DaytonaOptions, api_url: str, api_key: str):
        self.api_url = api_url
        self._api_key = api_key
        self._target = opts.target
        self.limiter = RateLimiter(opts.creates_per_second)
        self.creates = asyncio.Semaphore(opts.max_concurrent_creates)
        self.deletes = asyncio.Semaphore(opts.max_concurrent_deletes)
        self.users = 0
        self._client: AsyncDaytona | None = None

    @property
    def client(self) -> AsyncDaytona:
        if self._client is None:
            from daytona import AsyncDaytona, DaytonaConfig

            self._client = AsyncDaytona(
                DaytonaConfig(api_key=self._api_key, api_url=self.api_url, target=self._target)
            )
        return self._client

    def acquire(self) -> Account:
        self.users += 1
        return self

    async def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing a client must not fail a sandbox's close
                pass


#: Accounts per event loop, then per (runtime, endpoint, key, limits). Keyed by the runtime id
#: label, so two runtimes share nothing; weakly keyed by the loop, so a finished loop drops them.
_ACCOUNTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Account]] = (
    weakref.WeakKeyDictionary()
)


def account_for(opts: DaytonaOptions, runtime_id: str) -> Account:
    url, key = resolve_endpoint(opts)
    loop = asyncio.get_running_loop()
    per_loop = _ACCOUNTS.setdefault(loop, {})
    ident = (
        runtime_id, url, hashlib.sha256(key.encode()).hexdigest(), opts.target,
        opts.creates_per_second, opts.max_concurrent_creates, opts.max_concurrent_deletes,
    )
    acct = per_loop.get(ident)
    if acct is None:
        acct = per_loop[ident] = Account(opts, url, key)
    return acct.acquire()


# ---------------------------------------------------------------------- retries


def status_of(e: BaseException) -> int | None:
    return getattr(e, "status_code", None)


def _is_connect_error(e: BaseException) -> bool:
    from daytona.common.errors import DaytonaConnectionError, DaytonaConnectionTimeoutError

    return isinstance(e, DaytonaConnectionError) and not isinstance(e, DaytonaConnectionTimeoutError)


def _retry_after(e: BaseException) -> float | None:
    headers = getattr(e, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return min(float(value), 30.0) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


async def with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    opts: DaytonaOptions,
    api_url: str,
    what: str,
    idempotent: bool = True,
    timeout: float | None = None,
) -> T:
    """Call ``fn`` with a deadline, retrying 429, 5xx (idempotent calls only) and connect errors.

    A call that is not idempotent (it may have run on the server: a command) is retried only when
    the server certainly did not run it: a 429, or a connection that was never made.
    ``timeout`` is the deadline of one attempt (default ``request_timeout``; 0: none, for a
    command that was given no timeout).
    """
    attempt = 0
    offline = 0
    limit = opts.request_timeout if timeout is None else timeout
    while True:
        try:
            async with asyncio.timeout(limit or None):
                return await fn()
        except TimeoutError:
            if not idempotent or attempt >= opts.retries:
                raise DaytonaUnreachableError(
                    f"{what}: the Daytona API at {api_url} did not answer within {limit:g}s"
                ) from None
            err: BaseException = TimeoutError()
        except Exception as e:  # noqa: BLE001 - sorted below
            err = e
            status = status_of(e)
            if _is_connect_error(e):
                if offline >= opts.offline_retries:
                    raise DaytonaUnreachableError(
                        f"{what}: cannot reach the Daytona API at {api_url} ({e}). Check your network and the "
                        "API URL (DAYTONA_API_URL or the api_url option; the default is https://app.daytona.io/api)"
                    ) from None
                offline += 1
            elif status == 429:
                if attempt >= opts.retries:
                    raise RateLimitedError(
                        f"{what}: Daytona still rate-limits after {attempt} retries (429); lower the "
                        "creates_per_second / max_concurrent_creates options"
                    ) from None
            elif status is not None and status >= 500 and idempotent:
                if attempt >= opts.retries:
                    raise translate(e, what=what, api_url=api_url) from None
            else:
                raise translate(e, what=what, api_url=api_url) from None
        delay = _retry_after(err)
        if delay is None:
            delay = min(20.0, opts.retry_backoff * (2**attempt)) * (0.5 + random.random() / 2)
        attempt += 1
        await asyncio.sleep(delay)


def translate(e: BaseException, *, what: str, api_url: str) -> BaseException:
    """An actionable hermes error for an SDK error (or ``e`` itself when there is nothing to add)."""
    status = status_of(e)
    msg = str(e)
    low = msg.lower()
    if status == 401:
        return DaytonaAuthError(
            f"{what}: Daytona rejected the API key (401) at {api_url}; check DAYTONA_API_KEY "
            "(keys: https://app.daytona.io/dashboard/keys)"
        )
    if status == 403 and any(w in low for w in ("quota", "limit exceeded", "maximum allowed", "limit reached")):
        return QuotaExceededError(
            f"{what}: the Daytona account's quota is used up: {msg}. Close other sandboxes, lower the "
            "rollout concurrency, or raise the limit in the Daytona dashboard"
        )
    if status == 403:
        return DaytonaAuthError(f"{what}: Daytona refused (403): {msg}")
    if "snapshot" in low and status in (400, 404) and "not found" in low:
        return ImageNotFoundError(f"{what}: {msg} (check the snapshot option)")
    if "build_failed" in low or ("error state" in low and "pull" in low):
        return ImageNotFoundError(f"{what}: the image could not be built or pulled: {msg} (check the image option)")
    if status == 404 and what.startswith("creating"):
        return DaytonaUnreachableError(
            f"{what}: {api_url} answered 404 for the sandbox API: is the API URL right? It usually ends in '/api' "
            "(DAYTONA_API_URL or the api_url option)"
        )
    return e
