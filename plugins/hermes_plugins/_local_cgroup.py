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

__all__ = ["CgroupRoot", "SandboxCgroup", "SpareCgroups", "find_root", "sweep_spares"]

_PARENT = "hermes"
SPARE_PREFIX = "spare-"  # spare-<pid>-<start ticks>-<n>: made ahead by that driver, never entered


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
        """Every process in this cgroup and in any cgroup a (root) sandbox process made below it."""
        found: list[int] = []
        todo = [self.path]
        while todo and len(todo) < 10_000:
            d = todo.pop()
            try:
                found.extend(int(x) for x in (d / "cgroup.procs").read_bytes().split())
                with os.scandir(d) as it:
                    todo.extend(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
            except (OSError, ValueError):
                continue
        return found

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
        deadline, pause = time.monotonic() + wait, 0.0002
        while self.pids() and time.monotonic() < deadline:
            time.sleep(pause)  # SIGKILLed processes are gone within a millisecond or so
            pause = min(pause * 2, 0.01)
        return len(found)

    def remove_if_empty(self) -> bool:
        """Remove the cgroup if no process (and no cgroup) is in it: one rmdir, which the kernel
        refuses (EBUSY) while it holds any; ``False`` then (see :meth:`remove`)."""
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

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


class SpareCgroups:
    """Empty cgroups made ahead of need, so that starting a sandbox takes one instead of making
    one (a cgroup mkdir is ~40 us here, a tenth of running ``true``). One is made while the driver
    waits on a sandbox's child anyway (:meth:`make_one`, after a spawn); at most ``most`` wait.

    A spare was never entered, so handing it out is the same as making it then; a used cgroup is
    never given back (a root sandbox process could have changed its limits, freeze state or
    subtree). Its name carries the driver's pid and start time: :func:`sweep_spares` removes only
    what a dead driver left. A forked child starts with an empty pool (its parent's spares are not
    its own)."""

    def __init__(self, most: int = 32):
        self.most = most
        self._pool: list[str] = []
        self._pid = -1
        self._prefix = ""
        self._n = 0

    def _own_pool(self) -> list[str]:
        pid = os.getpid()
        if pid != self._pid:  # first use, or a forked child
            from hermes_core.sandbox import owner_record

            ticks = owner_record()["start_ticks"]
            self._pid, self._pool, self._n = pid, [], 0
            self._prefix = f"{SPARE_PREFIX}{pid}-{ticks}-" if ticks is not None else ""  # "": none are made
        return self._pool

    def take(self, root: CgroupRoot) -> SandboxCgroup | None:
        """A spare made under ``root`` (``None``: make one)."""
        pool = self._own_pool()
        if pool and pool[-1].startswith(f"{root.path}/"):
            return SandboxCgroup(Path(pool.pop()), root.kind)
        return None

    def make_one(self) -> None:
        """Make one spare if fewer than ``most`` wait (a failure only means there is none)."""
        root, pool = find_root(), self._own_pool()
        if root is None or len(pool) >= self.most or not self._prefix:
            return
        self._n += 1
        path = f"{root.path}/{self._prefix}{self._n}"
        try:
            os.mkdir(path)
        except OSError:
            return
        pool.append(path)

    def drain(self) -> int:
        """Remove every spare (the Runtime is closing); returns how many there were."""
        n = 0
        if self._pid == os.getpid():
            while self._pool:
                try:
                    os.rmdir(self._pool.pop())
                    n += 1
                except OSError:
                    pass
        return n

    def __len__(self) -> int:
        return len(self._pool) if self._pid == os.getpid() else 0


def sweep_spares() -> list[str]:
    """Remove the spare cgroups of drivers that are gone (a live driver's are never touched; a
    cgroup holding a process cannot be removed at all)."""
    from hermes_core.sandbox import owner_alive

    root = find_root()
    removed: list[str] = []
    if root is None:
        return removed
    try:
        names = [n for n in os.listdir(root.path) if n.startswith(SPARE_PREFIX)]
    except OSError:
        return removed
    for name in names:
        try:
            pid, ticks, _ = (int(x) for x in name[len(SPARE_PREFIX):].split("-"))
        except ValueError:
            continue
        if owner_alive({"pid": pid, "start_ticks": ticks}):
            continue
        try:
            os.rmdir(root.path / name)
        except OSError:
            continue
        removed.append(str(root.path / name))
    return removed


class CgroupRoot:
    """The directory under which sandbox cgroups are made."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind

    def create(self, sandbox_id: str) -> SandboxCgroup | None:
        path = f"{self.path}/{sandbox_id}"
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError:
            return None
        return SandboxCgroup(Path(path), self.kind)

    def existing(self) -> list[SandboxCgroup]:
        try:
            return [SandboxCgroup(p, self.kind) for p in sorted(self.path.iterdir()) if p.is_dir()]
        except OSError:
            return []

    def describe(self) -> str:
        return f"cgroup {self.kind} at {self.path}"


@functools.cache
def find_root() -> CgroupRoot | None:
    """The first writable cgroup hierarchy for sandboxes, looked up once (a fact of the host):
    cgroup v2 with ``cgroup.kill`` (kills atomically, forks included), else the v1 freezer
    (freeze + kill cannot race a fork either), else v2 without ``cgroup.kill`` (repeated kill
    passes); ``None`` when none can be used. v2 comes first because moving a process into a v1
    cgroup costs ~2 ms per command here and into v2 next to nothing (``bench/bench_floor.py``)."""
    mounts = _mounts()
    v2 = [(Path(where), "v2") for where, fstype, _ in mounts if fstype == "cgroup2"]
    v1 = [(Path(where), "v1-freezer") for where, fstype, opts in mounts
          if fstype == "cgroup" and "freezer" in opts.split(",")]
    usable = [(root, kind) for root, kind in (_usable(b, k) for b, k in v2 + v1) if root is not None]
    for root, kind in usable:  # v2 with cgroup.kill first
        if kind == "v2" and (root / "cgroup.kill").exists():
            return CgroupRoot(root, kind)
    for root, kind in usable:
        if kind == "v1-freezer":
            return CgroupRoot(root, kind)
    return CgroupRoot(*usable[0]) if usable else None


def _usable(base: Path, kind: str) -> tuple[Path | None, str]:
    """``base/hermes`` if sandbox cgroups can be made under it."""
    parent = base / _PARENT
    try:
        parent.mkdir(exist_ok=True)
        probe = parent / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        probe.rmdir()
    except OSError:
        return None, kind
    return parent, kind


def kind_of(path: Path) -> str:
    """The kind of an existing sandbox cgroup, read from the files it has (for sweeps)."""
    return "v1-freezer" if (path / "freezer.state").exists() else "v2"


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
