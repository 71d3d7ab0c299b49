"""The process checkpoint: one JSON file shared by every runtime on this machine.

Each runtime ("owner") keeps its sessions under its own key, so concurrent drivers never
overwrite each other: a write takes an exclusive ``flock`` on ``<path>.lock``, reads the file,
replaces only its own entry and renames a temporary file over the original (atomic). A new
runtime adopts the entries of owners whose driver process is dead (checked by pid *and* start
time, so a recycled pid does not look alive). Every function here blocks: call them in a
worker thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..sandbox._owner import boot_id, proc_stat, same_process

__all__ = ["data_dir", "owner_record", "save_owner", "adopt_orphans"]

VERSION = 1


def data_dir() -> Path:
    """``$XDG_DATA_HOME/hermes``, else ``~/.local/share/hermes``."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "hermes"


def owner_record(runtime_id: str) -> dict[str, Any]:
    """Who is writing: this driver process, identified so that its death can be told."""
    pid = os.getpid()
    st = proc_stat(pid)
    return {
        "runtime_id": runtime_id,
        "driver_pid": pid,
        "driver_start_ticks": st[2] if st else None,
        "boot_id": boot_id(),
    }


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": VERSION, "owners": {}}
    except (OSError, ValueError):
        # A corrupt checkpoint must not stop a runtime from starting; keep it for inspection.
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass
        return {"version": VERSION, "owners": {}}
    if not isinstance(data, dict) or not isinstance(data.get("owners"), dict):
        return {"version": VERSION, "owners": {}}
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_owner(path: Path, owner: dict[str, Any], sessions: list[dict[str, Any]] | None) -> None:
    """Replace this owner's entry (``sessions=None`` removes it)."""
    with _locked(path):
        data = _read(path)
        key = owner["runtime_id"]
        if sessions is None:
            if key not in data["owners"]:
                return
            data["owners"].pop(key)
        else:
            data["owners"][key] = {**owner, "sessions": sessions}
        _write(path, data)


def _driver_alive(entry: dict[str, Any], this_boot: str | None) -> bool:
    return same_process(entry.get("driver_pid"), entry.get("driver_start_ticks"), entry.get("boot_id"), this_boot)


def adopt_orphans(path: Path, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """Take over the sessions of every owner whose driver died; return their records.

    The adopted records are written under ``owner`` in the same locked update, so a second
    crash right after this call loses nothing.
    """
    this_boot = boot_id()
    with _locked(path):
        data = _read(path)
        adopted: list[dict[str, Any]] = []
        for key, entry in list(data["owners"].items()):
            if key == owner["runtime_id"] or not isinstance(entry, dict) or _driver_alive(entry, this_boot):
                continue
            adopted.extend(s for s in entry.get("sessions", []) if isinstance(s, dict) and s.get("id"))
            del data["owners"][key]
        if adopted:
            mine = data["owners"].get(owner["runtime_id"], {}).get("sessions", [])
            data["owners"][owner["runtime_id"]] = {**owner, "sessions": mine + adopted}
            _write(path, data)
    return adopted
