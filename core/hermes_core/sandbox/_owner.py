"""Who owns a sandbox, and whether that owner still lives: the facts a sweep needs so that it
removes only what a dead driver left (never a live run's sandbox).

An owner is a process identified by pid *and* start time (a recycled pid has another), on one
boot of one host.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from typing import Any

__all__ = ["boot_id", "owner_alive", "owner_record", "proc_stat", "same_process"]


def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in ticks) of a host process, or ``None`` if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        rest = data.rsplit(b")", 1)[1].split()
        return rest[0].decode(), int(rest[2]), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def same_process(pid: int | None, start_ticks: int | None, boot: str | None, this_boot: str | None) -> bool:
    """Whether ``pid`` is still the very process that was recorded, and not a zombie.

    A recycled pid has another start time; a reboot changes the boot id.
    """
    if pid is None or start_ticks is None or (boot is not None and boot != this_boot):
        return False
    st = proc_stat(pid)
    return st is not None and st[2] == start_ticks and st[0] not in ("Z", "X")


def owner_record(max_lifetime: float | None = None) -> dict[str, Any]:
    """This driver process as a sandbox owner: pid, start time, boot id, host, creation time and
    the maximum lifetime after which a sweep may remove the sandbox even if the owner lives."""
    return {**_this_process(os.getpid()), "created": time.time(), "max_lifetime": max_lifetime}


@functools.lru_cache(maxsize=4)
def _this_process(pid: int) -> dict[str, Any]:
    """The parts of the owner record that are fixed for one process (keyed by pid: a forked child
    is another owner)."""
    st = proc_stat(pid)
    return {"pid": pid, "start_ticks": st[2] if st else None, "boot_id": boot_id(), "host": socket.gethostname()}


def owner_alive(record: dict[str, Any] | None, *, now: float | None = None) -> bool:
    """Whether the owner recorded in ``record`` still runs (on this host and boot) and its
    sandbox is within its maximum lifetime. A record from another host counts as alive (it
    cannot be checked from here: never remove what may be someone's live sandbox)."""
    if not record:
        return False
    if record.get("host") not in (None, socket.gethostname()):
        return True
    lifetime = record.get("max_lifetime")
    if lifetime and (now or time.time()) - float(record.get("created") or 0) > float(lifetime):
        return False
    try:
        pid = int(record["pid"])
        ticks = int(record["start_ticks"]) if record.get("start_ticks") is not None else None
    except (KeyError, TypeError, ValueError):
        return False
    return same_process(pid, ticks, record.get("boot_id"), boot_id())
