"""Who owns a sandbox: recorded as tags at create, checked by ``sweep``.

A sandbox is removed by a sweep only when its owner is provably gone: the owner ran on this host
and either the machine rebooted since (boot id differs), or no process with the owner's pid
exists, or that pid now belongs to a process started at another time (pid reuse). Sandboxes of
owners on other hosts are never swept from here; their lifetime timeout ends them.
"""

from __future__ import annotations

import os
import socket

__all__ = ["owner_gone", "owner_tags"]


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    return rest[19].decode() if len(rest) > 19 else None


def owner_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        "hermes.owner.pid": str(pid),
        "hermes.owner.start": _start_ticks(pid) or "",
        "hermes.owner.boot": _boot_id(),
        "hermes.owner.host": socket.gethostname(),
    }


def owner_gone(tags: dict[str, str]) -> tuple[bool, str]:
    """(gone, why) for the owner recorded in ``tags``."""
    host = tags.get("hermes.owner.host", "")
    if not host or host != socket.gethostname():
        return False, f"owner on another host ({host or 'unknown'})"
    if tags.get("hermes.owner.boot") and tags["hermes.owner.boot"] != _boot_id():
        return True, "owner's machine rebooted"
    try:
        pid = int(tags.get("hermes.owner.pid", ""))
    except ValueError:
        return False, "no owner pid recorded"
    ticks = _start_ticks(pid)
    if ticks is None:
        return True, f"owner pid {pid} is gone"
    if tags.get("hermes.owner.start") and ticks != tags["hermes.owner.start"]:
        return True, f"owner pid {pid} was reused by another process"
    return False, f"owner pid {pid} is alive"
