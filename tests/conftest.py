"""Test-session guard: every process a sandbox started is gone when the session ends."""

from __future__ import annotations

import os
import time
from pathlib import Path

pytest_plugins = ["hermes_core.testing"]

_MARKERS = (b"HERMES_SANDBOX_ID=", b"HERMES_PROCESS_ID=")


def _marked() -> dict[int, str]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != b"Z" and any(m in env for m in _MARKERS):
            found[int(entry.name)] = cmd.strip()
    return found


def pytest_sessionstart(session) -> None:
    session.config._hermes_preexisting = set(_marked())


def pytest_sessionfinish(session, exitstatus) -> None:
    before = getattr(session.config, "_hermes_preexisting", set())
    for _ in range(50):  # up to 5 s for processes that are being killed right now
        leaked = {p: c for p, c in _marked().items() if p not in before}
        if not leaked:
            return
        time.sleep(0.1)
    lines = "\n".join(f"  pid {p}: {c}" for p, c in sorted(leaked.items()))
    print(f"\nhermes: {len(leaked)} sandbox process(es) outlived the test session:\n{lines}")
    session.exitstatus = 1
