"""Who made a remote sandbox, recorded in ``owner.json`` in its directory, and whether that
driver is gone (the rule ``sweep`` follows: only a dead owner's leftovers are removed).

A driver is identified by host name, boot id, pid and the pid's start time (in clock ticks
since boot), so a recycled pid or a reboot does not look alive.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

__all__ = ["owner_record", "owner_alive", "boot_id", "start_ticks"]


def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_record(sandbox_id: str, directory_name: str) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "v": 1,
        "sandbox_id": sandbox_id,
        "name": directory_name,
        "driver_host": socket.gethostname(),
        "driver_pid": pid,
        "driver_start_ticks": start_ticks(pid),
        "boot_id": boot_id(),
        "created": time.time(),
    }


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """``True`` if the recorded driver still runs, ``False`` if it is gone, ``None`` when this
    machine cannot tell (the owner ran on another host, or the record is unreadable)."""
    if not isinstance(owner, dict) or owner.get("driver_host") != socket.gethostname():
        return None
    if owner.get("boot_id") and owner.get("boot_id") != boot_id():
        return False  # rebooted since: every process of that boot is gone
    try:
        pid = int(owner["driver_pid"])
    except (KeyError, TypeError, ValueError):
        return None
    ticks = start_ticks(pid)
    if ticks is None:
        return False
    recorded = owner.get("driver_start_ticks")
    return recorded is None or int(recorded) == ticks


def dumps(owner: dict[str, Any]) -> str:
    """One line of JSON (the remote side stores and lists it line by line)."""
    return json.dumps(owner, separators=(",", ":"), ensure_ascii=True)
