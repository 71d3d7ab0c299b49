"""``hermes sandbox sweep --backend daytona``: remove sandboxes whose driver is gone."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from ._client import resolve_endpoint, translate, with_retries
from ._options import DaytonaOptions
from ._owner import owner_gone

__all__ = ["sweep"]


def _age(sb: Any, now: float) -> float:
    created = (sb.labels or {}).get("hermes.created")
    try:
        return now - float(created)
    except (TypeError, ValueError):
        pass
    try:
        return now - datetime.fromisoformat(str(sb.created_at).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return 0.0


async def sweep(older_than: float | None = None, *, options: DaytonaOptions | None = None) -> list[str]:
    """Delete hermes sandboxes on the Daytona account whose owning driver is gone.

    A sandbox is removed only when its owner labels say the driver process is dead (same host:
    a new boot, or no process with that pid and start time). A sandbox of a live driver is never
    touched, and neither is one whose owner cannot be checked from here (made on another host,
    or without owner labels): Daytona's own auto-stop, auto-delete and ttl reap those.

    Args:
        older_than: also require this age in seconds.
        options: where to look (default: ``$DAYTONA_API_URL`` / ``$DAYTONA_API_KEY``).

    Returns:
        One line per removed sandbox: its name, rollout id and age.
    """
    from daytona import AsyncDaytona, DaytonaConfig, ListSandboxesQuery
    from daytona.common.errors import DaytonaNotFoundError

    opts = options or DaytonaOptions()
    url, key = resolve_endpoint(opts)
    removed: list[str] = []
    client = AsyncDaytona(DaytonaConfig(api_key=key, api_url=url, target=opts.target))
    try:
        async def listing() -> list[Any]:
            return [sb async for sb in client.list(ListSandboxesQuery(labels={"hermes.backend": "daytona"}))]

        try:
            boxes = await with_retries(listing, opts=opts, api_url=url, what="listing Daytona sandboxes")
        except Exception as e:
            err = translate(e, what="listing Daytona sandboxes", api_url=url)
            raise err from None
        now = time.time()
        sem = asyncio.Semaphore(opts.max_concurrent_deletes)

        async def one(sb: Any) -> None:
            labels = sb.labels or {}
            age = _age(sb, now)
            if owner_gone(labels) is not True:
                return
            if older_than is not None and age < older_than:
                return

            async def delete() -> None:
                try:
                    await sb.delete(timeout=opts.request_timeout)
                except DaytonaNotFoundError:
                    pass

            async with sem:
                await with_retries(delete, opts=opts, api_url=url, what=f"deleting Daytona sandbox {sb.name}")
            removed.append(f"{sb.name} (rollout {labels.get('hermes.rollout', '?')}, age {age:.0f}s)")

        await asyncio.gather(*(one(sb) for sb in boxes))
    finally:
        await client.close()
    return removed
