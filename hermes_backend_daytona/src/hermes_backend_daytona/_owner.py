"""Who owns a sandbox: the driver process recorded as labels, and whether it is still alive.

A sweep may remove a sandbox only when its owner is certainly gone: same host and a different
boot, or same boot and no process with that pid and start time. A sandbox owned from another
host is never swept by age alone unless the caller says so (``older_than``).
"""

from __future__ import annotations

import functools
import os
import socket

__all__ = ["owner_labels", "owner_gone"]

PID, START, BOOT, HOST = "hermes.owner.pid", "hermes.owner.start", "hermes.owner.boot", "hermes.owner.host"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


@functools.lru_cache(maxsize=1)
def _me(pid: int) -> tuple[str, str, str]:
    return _start_ticks(pid) or "", _boot_id(), socket.gethostname()


def owner_labels() -> dict[str, str]:
    start, boot, host = _me(os.getpid())
    return {PID: str(os.getpid()), START: start, BOOT: boot, HOST: host}


def owner_gone(labels: dict[str, str]) -> bool | None:
    """True: the owner is certainly gone. False: it is alive. None: cannot tell (other host, no labels)."""
    pid, start, boot, host = (labels.get(k) for k in (PID, START, BOOT, HOST))
    if not pid or not host:
        return None
    if host != socket.gethostname():
        return None
    this_boot = _boot_id()
    if boot and this_boot and boot != this_boot:
        return True
    try:
        ticks = _start_ticks(int(pid))
    except ValueError:
        return None
    if ticks is None:
        return True
    return bool(start) and ticks != start
