"""The ``hermes`` command line, run as users run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from hermes_core import Runtime
from hermes_plugins.local import sweep

from .test_local_contract import marked_pids


def hermes(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hermes_core.cli", *args], capture_output=True, text=True, timeout=120, **kw)


def test_plugins_lists_builtins_with_their_distribution():
    out = hermes("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["local"]["distribution"] == "hermes-core"
    assert rows["local"]["registers"]["backend"] == ["local"]
    assert "terminal" in rows["tools-terminal"]["registers"]["tool"]
    text = hermes("plugins").stdout
    assert "local  (hermes-core" in text and "backend: local" in text


def test_exec_runs_in_a_fresh_sandbox_and_passes_the_exit_code():
    out = hermes("exec", "--", "sh", "-c", 'echo "in $PWD"; exit 3')
    assert out.returncode == 3
    assert out.stdout.startswith("in /") and out.stdout.rstrip().endswith("/work")
    out = hermes("exec", "--", "echo $((6*7))")
    assert out.stdout == "42\n" and out.returncode == 0


def test_exec_errors_are_clear():
    out = hermes("exec", "--backend", "modal", "--", "true")
    assert out.returncode == 2 and "pip install hermes-backend-modal" in out.stderr
    assert "Traceback" not in out.stderr
    out = hermes("exec", "-o", "nonsense=1", "--", "true")
    assert out.returncode == 2 and "unknown key 'nonsense'" in out.stderr
    out = hermes("exec")
    assert out.returncode == 2 and "no command given" in out.stderr
    out = hermes("sandbox", "sweep", "--older-than", "soon")
    assert out.returncode == 2 and "invalid duration 'soon'" in out.stderr


async def test_sweep_never_removes_a_live_drivers_sandbox_unless_forced(tmp_path):
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    await sb.spawn("exec sleep 300")
    for _ in range(200):  # a process mid-execve shows an empty environment for a moment
        if marked_pids(sb.sandbox_id):
            break
        await asyncio.sleep(0.01)
    assert marked_pids(sb.sandbox_id)
    # Age alone no longer condemns it: its owner (this process) is alive.
    old = time.time() - 7200
    os.utime(sb.root, (old, old))
    assert await sweep(None, root=str(tmp_path)) == []
    assert await sweep(3600, root=str(tmp_path)) == []
    assert sb.root.exists() and marked_pids(sb.sandbox_id)
    removed = await sweep(None, root=str(tmp_path), force=True)
    assert removed == [str(sb.root)]
    assert not sb.root.exists() and marked_pids(sb.sandbox_id) == []
    await sb.close()
