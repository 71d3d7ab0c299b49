"""Who owns an instance, written into its name, so a sweep can tell a dead driver's leftovers
from a live run's sandboxes without any state file.

An instance name is ``<prefix>-<pid>-<start>-<boot>-<host>-<created>-<random>``: the driver's
pid and its start time in clock ticks since boot (``/proc/<pid>/stat`` field 22: a reused pid
has another one), the first 8 hex digits of the kernel boot id, 8 hex digits of a hash of the
host name, the creation time (unix seconds) and a random tag.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from functools import cache

__all__ = ["Owner", "instance_name", "parse_name", "owner_is_gone"]


def _proc_start(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:8]
    except OSError:
        return "00000000"


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int
    boot: str
    host: str
    created: int

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, _proc_start(pid) or 0, _boot_id(), _host_tag(), int(time.time()))


def instance_name(prefix: str, owner: Owner | None = None) -> str:
    o = owner or Owner.me()
    return f"{prefix}-{o.pid}-{o.start}-{o.boot}-{o.host}-{o.created}-{secrets.token_hex(3)}"


def parse_name(prefix: str, name: str) -> Owner | None:
    """The owner encoded in a name this backend made with ``prefix``, else ``None``."""
    m = re.fullmatch(rf"{re.escape(prefix)}-(\d+)-(\d+)-([0-9a-f]{{8}})-([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{6}}", name)
    if m is None:
        return None
    return Owner(int(m[1]), int(m[2]), m[3], m[4], int(m[5]))


def owner_is_gone(owner: Owner) -> bool:
    """True when the driver that made the instance has certainly exited.

    Another boot means gone. Another host is never judged (its processes cannot be seen from
    here). On this host and boot, gone means no live process has that pid and start time.
    """
    if owner.host != _host_tag():
        return False
    if owner.boot != _boot_id():
        return True
    return _proc_start(owner.pid) != owner.start
