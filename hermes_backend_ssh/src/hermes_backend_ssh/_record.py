"""The hosts this machine has placed sandboxes on, remembered so that ``hermes sandbox sweep``
(which gets no backend options) knows where to look: ``$XDG_DATA_HOME/hermes/ssh-hosts.json``
(else ``~/.local/share/hermes``). Only connection settings are stored — key *paths*, never keys
or passphrases."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ._options import HostSpec, SSHOptions

__all__ = ["record_host", "recorded_options", "hosts_file"]


def hosts_file() -> Path:
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "hermes" / "ssh-hosts.json"


def _entry(opts: SSHOptions, host: HostSpec) -> dict[str, Any]:
    return {
        "host": host.host,
        "port": host.port,
        "user": host.user or opts.user,
        "host_key": host.host_key,
        "root": host.root or opts.root,
        "client_keys": opts.client_keys,
        "known_hosts": opts.known_hosts,
        "agent": opts.agent,
        "use_ssh_config": opts.use_ssh_config,
    }


def record_host(opts: SSHOptions, host: HostSpec) -> None:
    entry = _entry(opts, host)
    key = json.dumps(entry, sort_keys=True)
    path = hosts_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = json.loads(path.read_text()) if path.exists() else []
                if not isinstance(entries, list):
                    entries = []
            except (OSError, ValueError):
                entries = []
            if not any(json.dumps(e, sort_keys=True) == key for e in entries):
                entries.append(entry)
                tmp = path.with_name(path.name + f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(entries, indent=1))
                os.replace(tmp, path)
    except OSError:
        return  # remembering is a convenience for sweep; never fail a sandbox over it


def recorded_options() -> list[SSHOptions]:
    """One options object per recorded host (each host keeps its own connection settings)."""
    try:
        entries = json.loads(hosts_file().read_text())
    except (OSError, ValueError):
        return []
    out = []
    for e in entries if isinstance(entries, list) else []:
        try:
            out.append(SSHOptions(
                hosts=[{"host": e["host"], "port": e["port"], "user": e.get("user"), "host_key": e.get("host_key")}],
                root=e.get("root") or "~/.cache/hermes-ssh",
                client_keys=e.get("client_keys"),
                known_hosts=e.get("known_hosts"),
                agent=bool(e.get("agent", True)),
                use_ssh_config=bool(e.get("use_ssh_config", False)),
            ))
        except (KeyError, TypeError, ValueError):
            continue
    return out
