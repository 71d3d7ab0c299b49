"""One cgroup per local sandbox: the process tracking a sandbox process cannot shed.

A process can drop the sandbox marker from its environment (``env -i``), leave its process
group (``setsid``) and be re-parented to init (a double fork); it cannot leave its cgroup
without write access to another cgroup's ``cgroup.procs`` (the ``user`` option takes that away:
only root can). Every process a sandbox starts is put into the sandbox's cgroup right after it
starts — before it runs (a shell string joins it in the bash that runs it, anything else behind a
tiny launcher that joins and then execs it) — and every descendant inherits it; ``close()``
kills the whole cgroup (``cgroup.kill`` on cgroup v2, freeze + SIGKILL + thaw on the v1
freezer) and removes it.

Where no cgroup hierarchy is writable (not root, a read-only ``/sys/fs/cgroup``), tracking falls
back to the marker scan of ``/proc`` alone; ``tracking()`` says which one is in force.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

__all__ = ["CgroupRoot", "SandboxCgroup", "find_root"]

_PARENT = "hermes"


class SandboxCgroup:
    """The cgroup of one sandbox."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind  # "v2" or "v1-freezer"

    def add(self, pid: int) -> None:
        """Move ``pid`` and the children it already has into this cgroup."""
        todo, seen = [pid], set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            try:
                with open(self.path / "cgroup.procs", "w") as f:
                    f.write(str(p))
            except (ProcessLookupError, OSError):
                continue  # already gone
            todo.extend(_children(p))

    def launcher(self, argv: list[str]) -> list[str]:
        """``argv`` behind a tiny launcher that joins this cgroup *before* it runs the command, so
        not even its first fork can happen outside (costs one ``sh`` exec)."""
        return ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *argv]

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self, wait: float = 5.0) -> int:
        """SIGKILL every process in the cgroup (none can fork away meanwhile); returns how many
        there were. Waits (up to ``wait`` s) until the cgroup is empty."""
        found = self.pids()
        if not found:
            return 0
        if self.kind == "v2" and (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")
        else:
            frozen = _write(self.path / "freezer.state", "FROZEN") if self.kind == "v1-freezer" else False
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if frozen:
                _write(self.path / "freezer.state", "THAWED")
        deadline = time.monotonic() + wait
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.005)
        return len(found)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (idempotent)."""
        if not self.path.exists():
            return
        deadline = time.monotonic() + 10
        while True:
            self.kill()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # EBUSY: an exiting task is still attached for a moment
                if time.monotonic() > deadline:
                    return  # sweep removes it later
                time.sleep(0.01)


class CgroupRoot:
    """The directory under which sandbox cgroups are made."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind

    def create(self, sandbox_id: str) -> SandboxCgroup | None:
        path = self.path / sandbox_id
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            return None
        return SandboxCgroup(path, self.kind)

    def existing(self) -> list[SandboxCgroup]:
        try:
            return [SandboxCgroup(p, self.kind) for p in sorted(self.path.iterdir()) if p.is_dir()]
        except OSError:
            return []

    def describe(self) -> str:
        return f"cgroup {self.kind} at {self.path}"


@functools.cache
def find_root() -> CgroupRoot | None:
    """The first writable cgroup hierarchy for sandboxes: the v1 freezer, else cgroup v2
    (``cgroup.kill``); ``None`` when neither can be used. A fact of the host, looked up once."""
    mounts = _mounts()
    candidates: list[tuple[Path, str]] = []
    # The v1 freezer first (freeze + kill cannot race a fork), then v2 (cgroup.kill).
    for where, fstype, opts in mounts:
        if fstype == "cgroup" and "freezer" in opts.split(","):
            candidates.append((Path(where), "v1-freezer"))
    for where, fstype, opts in mounts:
        if fstype == "cgroup2":
            candidates.append((Path(where), "v2"))
    for base, kind in candidates:
        parent = base / _PARENT
        try:
            parent.mkdir(exist_ok=True)
            probe = parent / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError:
            continue
        return CgroupRoot(parent, kind)
    return None


def _mounts() -> list[tuple[str, str, str]]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], parts[3]))
    return out


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return out


def _write(path: Path, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False
