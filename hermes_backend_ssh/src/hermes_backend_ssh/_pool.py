"""The host pool: how many sandboxes each host holds, which hosts are down, and where the next
sandbox goes (the least-loaded host that is up and has room).

One pool per :class:`hermes_core.Runtime` (made by the registration hook), shared by every
sandbox of that runtime; hosts are identified by (host, port, user).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["HostPool", "HostState"]

HostKey = tuple[str, int, str]


@dataclass
class HostState:
    active: int = 0
    down_until: float = 0.0
    down_reason: str = ""
    placed: int = field(default=0)  # sandboxes ever placed here

    def is_down(self, now: float) -> bool:
        return now < self.down_until


class HostPool:
    """Placement and health of the hosts of every sandbox of one runtime. Not thread-safe:
    used from the event loop only (no awaits between a choice and its reservation)."""

    def __init__(self) -> None:
        self._hosts: dict[HostKey, HostState] = {}

    def state(self, key: HostKey) -> HostState:
        return self._hosts.setdefault(key, HostState())

    def candidates(self, hosts: list[tuple[HostKey, int]]) -> list[HostKey]:
        """Hosts that are up and have room, least loaded first (load = active / capacity)."""
        now = time.monotonic()
        ok = []
        for index, (key, capacity) in enumerate(hosts):
            st = self.state(key)
            if st.is_down(now) or st.active >= capacity:
                continue
            ok.append((st.active / capacity, st.active, index, key))
        ok.sort()  # ties go to the host listed first
        return [k for *_, k in ok]

    def reserve(self, key: HostKey) -> None:
        st = self.state(key)
        st.active += 1
        st.placed += 1

    def release(self, key: HostKey) -> None:
        st = self.state(key)
        st.active = max(0, st.active - 1)

    def mark_down(self, key: HostKey, reason: str, seconds: float) -> None:
        st = self.state(key)
        st.down_until = max(st.down_until, time.monotonic() + seconds)
        st.down_reason = reason

    def mark_up(self, key: HostKey) -> None:
        st = self.state(key)
        st.down_until = 0.0
        st.down_reason = ""

    def down(self, keys: list[HostKey]) -> dict[HostKey, str]:
        now = time.monotonic()
        return {k: self.state(k).down_reason for k in keys if self.state(k).is_down(now)}

    def load(self) -> dict[HostKey, int]:
        return {k: st.active for k, st in self._hosts.items()}
