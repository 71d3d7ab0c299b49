"""``sweep``: remove what dead drivers left on the SSH hosts — sandbox directories whose
``owner.json`` names a driver that is gone (pid + start time + boot id + host), their marked
processes, and marked processes whose directory no longer exists. A live driver's sandbox, or
one whose owner ran on another machine (this one cannot tell), is never touched."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from . import _remote
from ._connect import connect
from ._options import SSHOptions
from ._owner import owner_alive
from ._record import recorded_options

__all__ = ["sweep"]

log = logging.getLogger("hermes_backend_ssh")


async def sweep(older_than: float | None = None, options: SSHOptions | Mapping[str, Any] | None = None) -> list[str]:
    """Remove leftovers of dead drivers on every host of ``options`` (default: every host this
    machine has placed sandboxes on, as recorded in ``ssh-hosts.json``).

    Args:
        older_than: only sandboxes created at least this many seconds ago.
        options: the backend options naming the hosts.

    Returns:
        One line per removed directory or killed orphan. Hosts that cannot be reached are
        logged (warning) and skipped.
    """
    if options is None:
        configs = recorded_options()
    elif isinstance(options, SSHOptions):
        configs = [options]
    else:
        configs = [SSHOptions.model_validate(dict(options))]
    out: list[str] = []
    for opts in configs:
        for host in opts.hosts:
            try:
                out += await _sweep_host(opts, host, older_than)
            except Exception as e:  # noqa: BLE001 - one bad host must not stop the sweep
                log.warning("ssh sweep: %s not swept: %s", host.address, e)
    return out


async def _run(conn: Any, line: str, timeout: float = 60) -> str:
    import asyncio

    async with asyncio.timeout(timeout):
        r = await conn.run(line, check=False, encoding="utf-8", errors="replace", env=None, request_pty=False)
    return str(r.stdout or "")


async def _sweep_host(opts: SSHOptions, host: Any, older_than: float | None) -> list[str]:
    conn = await connect(opts, host, timeout=min(10.0, opts.connect_timeout))
    removed: list[str] = []
    try:
        listing = await _run(conn, _remote.internal(_remote.SWEEP_LIST, host.root or opts.root))
        now = time.time()
        for line in listing.splitlines():
            parts = line.split("\t")
            if parts[0] == "HORPHAN" and len(parts) == 2:
                res = await _run(conn, _remote.internal(_remote.KILL_MARKED, f"{_remote.MARKER}={parts[1]}"))
                if "HKILLED:0" not in res:
                    removed.append(f"{host.address}: killed processes of removed sandbox {parts[1]}")
                continue
            if parts[0] != "HDIR" or len(parts) < 4:
                continue
            directory, mtime, raw = parts[1], parts[2], "\t".join(parts[3:])
            try:
                owner = json.loads(raw) if raw else None
            except ValueError:
                owner = None
            created = float(owner.get("created", 0)) if isinstance(owner, dict) else float(mtime or 0)
            if older_than is not None and now - created < older_than:
                continue
            alive = owner_alive(owner)
            if owner is None:
                # No owner record: a creation that failed half-way. Only once clearly stale.
                if now - float(mtime or 0) < 3600:
                    continue
            elif alive is not False:
                continue
            res = await _run(conn, _remote.internal(_remote.REMOVE, f"{_remote.MARKER}={directory}", directory))
            if "HREMOVED" in res:
                rid = owner.get("sandbox_id", "?") if isinstance(owner, dict) else "?"
                removed.append(f"{host.address}:{directory} (rollout {rid}, age {now - created:.0f}s)")
    finally:
        conn.close()
    return removed
