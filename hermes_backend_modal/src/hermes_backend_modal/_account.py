"""One Modal client, app and create limiter per account, event loop and process.

Modal limits how fast an account may create sandboxes, so the limiter must be shared by every
sandbox this process creates against that account, not kept per sandbox; the factory hook gets
no runtime handle, so the shared state lives here, keyed by the running event loop (a client's
connections belong to one loop) and the account (server URL, token id, app name). Entries die
with their loop.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import weakref
from dataclasses import dataclass, field
from typing import Any

from hermes_core.errors import SandboxError

__all__ = ["Account", "ModalAuthError", "ModalUnavailableError", "account", "is_transient"]

_CREDENTIALS_HINT = "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `modal token new`)"


class ModalUnavailableError(SandboxError):
    """The Modal API could not be reached (offline, wrong MODAL_SERVER_URL, outage)."""


class ModalAuthError(SandboxError):
    """No Modal credentials, or Modal rejected them."""


class CreateLimiter:
    """Spaces sandbox creates at most ``rate`` per second and ``concurrency`` at once."""

    def __init__(self, rate: float, concurrency: int):
        self.interval = 1.0 / rate
        self.slots = asyncio.Semaphore(concurrency)
        self._next = 0.0
        self.waited = 0.0  # total seconds creates spent waiting for the rate (for benchmarks)

    async def __aenter__(self) -> None:
        await self.slots.acquire()
        try:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
            if start > now:
                self.waited += start - now
                await asyncio.sleep(start - now)
        except BaseException:
            self.slots.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.slots.release()


@dataclass
class Account:
    server_url: str
    token_id: str
    app_name: str
    client: Any = None
    app: Any = None
    limiter: CreateLimiter | None = None
    ready: asyncio.Future[None] | None = None
    users: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_ACCOUNTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], Account]] = (
    weakref.WeakKeyDictionary()
)


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the service was unavailable, overloaded or the call timed out."""
    import modal.exception as me
    from grpclib import GRPCError, Status

    if isinstance(exc, me.Error):  # before GRPCError: modal's errors subclass it (deprecated)
        return isinstance(exc, (me.ServiceError, me.InternalError, me.ConnectionError, me.ResourceExhaustedError,
                                me.TimeoutError)) and not isinstance(exc, me.SandboxTimeoutError)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    if isinstance(exc, GRPCError):
        return exc.status in (Status.UNAVAILABLE, Status.INTERNAL, Status.UNKNOWN, Status.DEADLINE_EXCEEDED,
                              Status.RESOURCE_EXHAUSTED, Status.CANCELLED)
    return False


def _config() -> tuple[str, str, str]:
    from modal.config import config

    return config["server_url"], config.get("token_id") or "", config.get("token_secret") or ""


async def _probe(server_url: str, timeout: float) -> None:
    """Fail in milliseconds when nothing listens (the SDK retries for about a minute)."""
    errors = []
    for url in (u.strip() for u in server_url.split(",")):
        o = urllib.parse.urlparse(url)
        if o.scheme not in ("http", "https") or not o.hostname:
            return  # unix sockets and the like: let the SDK handle them
        port = o.port or (443 if o.scheme == "https" else 80)
        try:
            async with asyncio.timeout(timeout):
                _, w = await asyncio.open_connection(o.hostname, port)
            w.close()
            return
        except (OSError, TimeoutError) as e:
            errors.append(f"{o.hostname}:{port}: {e.__class__.__name__} {e}".strip())
    raise ModalUnavailableError(
        f"cannot reach the Modal API at {server_url} ({'; '.join(errors)}); check the network or "
        "MODAL_SERVER_URL"
    )


async def _open(acc: Account, token_secret: str, options: Any) -> None:
    import modal
    import modal.exception as me

    if not acc.token_id or not token_secret:
        raise ModalAuthError(f"no Modal credentials found: {_CREDENTIALS_HINT}")
    await _probe(acc.server_url, options.connect_timeout)
    try:
        async with asyncio.timeout(options.connect_timeout):
            client = await modal.Client.from_credentials.aio(acc.token_id, token_secret)
            try:
                await client.hello.aio()
                app = await modal.App.lookup.aio(acc.app_name, create_if_missing=True, client=client)
            except BaseException:
                await client.close.aio()
                raise
    except TimeoutError:
        raise ModalUnavailableError(
            f"the Modal API at {acc.server_url} did not answer within {options.connect_timeout:g}s "
            "(raise connect_timeout, or check the network and MODAL_SERVER_URL)"
        ) from None
    except (me.AuthError, me.PermissionDeniedError) as e:
        raise ModalAuthError(f"Modal rejected the credentials of token {acc.token_id!r} ({e}): {_CREDENTIALS_HINT}") from None
    except me.ConnectionError as e:
        raise ModalUnavailableError(f"cannot connect to the Modal API at {acc.server_url}: {e}") from None
    acc.client, acc.app = client, app


async def account(options: Any) -> Account:
    """The shared account state for ``options`` on the running loop, connected on first use.

    Raises:
        ModalAuthError: no credentials, or they were rejected (the message says how to fix it).
        ModalUnavailableError: the API did not answer within ``options.connect_timeout``.
    """
    server_url, token_id, token_secret = _config()
    loop = asyncio.get_running_loop()
    table = _ACCOUNTS.setdefault(loop, {})
    key = (server_url, token_id, options.app_name)
    acc = table.get(key)
    if acc is None:
        acc = table[key] = Account(server_url, token_id, options.app_name)
        acc.limiter = CreateLimiter(options.create_rate, options.max_concurrent_creates)
    if acc.ready is None or (acc.ready.done() and (acc.ready.cancelled() or acc.ready.exception() is not None)):
        acc.ready = asyncio.ensure_future(_open(acc, token_secret, options))
    await asyncio.shield(acc.ready)
    return acc
