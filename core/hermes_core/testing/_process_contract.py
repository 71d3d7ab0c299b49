"""Process conformance tests: ``Sandbox.spawn`` and the registry on top of it, for any backend.

Mix :class:`ProcessContract` into a backend's test class; it needs one fixture, ``sandbox`` (a
started sandbox of the backend under test). The commands use only ``sh``-compatible shell and
coreutils, so a minimal image passes. PTY tests skip unless ``sandbox.capabilities.pty``.
Timings are generous: they catch hangs, not slowness (the benchmark measures speed).
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from ..config import ProcessConfig
from ..processes._registry import ProcessRegistry
from ..processes._state import ProcessForbiddenError, ProcessNotFoundError
from ..sandbox import Process, Sandbox

_MARK = "hermes-pcontract"


def count_processes_script(marker: str) -> str:
    """Shell snippet printing how many live processes have ``marker`` in their command line."""
    marker = f"[{marker[0]}]{marker[1:]}"  # the snippet's own command line must not match
    return (
        "n=0; for p in /proc/[0-9]*; do "
        f"if {{ tr '\\0' ' ' < $p/cmdline; }} 2>/dev/null | grep -q -- '{marker}'; then "
        "s=$(cut -d' ' -f3 < $p/stat 2>/dev/null); [ \"$s\" = Z ] || n=$((n+1)); fi; done; echo $n"
    )


async def _read_until(proc: Process, needle: bytes, timeout: float = 10.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout}s; got {buf[-500:]!r}")
        try:
            chunk = await asyncio.wait_for(proc.read(65536), left)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"output ended before {needle!r}; got {buf[-500:]!r}")
        buf += chunk
    return buf


class ProcessContract:
    """Background-process tests; needs the ``sandbox`` fixture."""

    @pytest_asyncio.fixture
    async def process_registry(self, tmp_path):
        reg = ProcessRegistry(config=ProcessConfig(
            checkpoint_path=str(tmp_path / "processes.json"), log_dir=str(tmp_path / "process-logs"),
            kill_grace_seconds=0.5, max_wait_seconds=1,
        ))
        yield reg
        await reg.kill_all()

    # ------------------------------------------------------------------ Sandbox.spawn

    async def test_spawn_incremental_output_and_exit_code(self, sandbox: Sandbox):
        proc = await sandbox.spawn("echo first; sleep 1; echo second; exit 3")
        t0 = time.monotonic()
        await _read_until(proc, b"first\n")
        assert time.monotonic() - t0 < 0.9, "output must arrive while the process still runs"
        assert proc.returncode is None
        await _read_until(proc, b"second\n")
        assert await proc.wait(10) == 3
        assert proc.returncode == 3

    async def test_spawn_stdin_pipe_mode(self, sandbox: Sandbox):
        proc = await sandbox.spawn("while read -r line; do echo \"got:$line\"; done; echo bye")
        await proc.write(b"one\n")
        await _read_until(proc, b"got:one\n")
        await proc.write(b"two\n")
        await _read_until(proc, b"got:two\n")
        await proc.close_stdin()
        await _read_until(proc, b"bye\n")
        assert await proc.wait(10) == 0

    async def test_spawn_stdin_pty_mode(self, sandbox: Sandbox):
        if not sandbox.capabilities.pty:
            pytest.skip(f"backend {sandbox.backend_name!r} does not claim capability 'pty'")
        proc = await sandbox.spawn(
            "if [ -t 0 ] && [ -t 1 ]; then echo IS-A-TTY; fi; while read -r l; do echo \"got:$l\"; done",
            pty=True,
        )
        assert proc.pty
        await _read_until(proc, b"IS-A-TTY")
        await proc.write(b"hello\n")
        await _read_until(proc, b"got:hello")
        await proc.close_stdin()  # EOF character on a terminal
        assert await proc.wait(10) == 0

    async def test_spawn_wait_timeout_then_kill(self, sandbox: Sandbox):
        proc = await sandbox.spawn(f"exec -a {_MARK}-wait sleep 60")
        t0 = time.monotonic()
        assert await proc.wait(0.2) is None
        assert 0.15 < time.monotonic() - t0 < 5
        code = await proc.kill(grace=2)
        assert code == 128 + 15
        assert proc.returncode == code

    @pytest.mark.parametrize("pty", [False, True])
    async def test_spawn_wait_zero_polls(self, sandbox: Sandbox, pty: bool):
        """``wait(timeout=0)`` is a poll: ``None`` while the process runs, its exit code once it
        has exited — polled in a loop (output left unread), it must turn into the code."""
        if pty and not sandbox.capabilities.pty:
            pytest.skip("backend has no pty")
        proc = await sandbox.spawn("sleep 0.3; echo done; exit 3", pty=pty)
        assert await proc.wait(timeout=0) is None
        polls, deadline = 0, time.monotonic() + 20
        while (code := await proc.wait(timeout=0)) is None and time.monotonic() < deadline:
            polls += 1
            await asyncio.sleep(0.02)
        assert code == 3 and polls >= 1

    async def test_spawn_kill_reaches_children_and_grandchildren(self, sandbox: Sandbox):
        m = f"{_MARK}-tree"
        proc = await sandbox.spawn(
            f"(exec -a {m} sleep 60) & (bash -c '(exec -a {m} sleep 60) & wait') & "
            f"echo started; exec -a {m} sleep 60"
        )
        await _read_until(proc, b"started")
        for _ in range(50):  # the children may still be starting (the inner bash matches too)
            if int((await sandbox.exec(count_processes_script(m))).output.strip()) >= 3:
                break
            await asyncio.sleep(0.05)
        assert int((await sandbox.exec(count_processes_script(m))).output.strip()) >= 3
        t0 = time.monotonic()
        await proc.kill(grace=2)
        assert time.monotonic() - t0 < 2, "sleep honours SIGTERM: no need to wait for SIGKILL"
        for _ in range(50):
            left = (await sandbox.exec(count_processes_script(m))).output.strip()
            if left == "0":
                break
            await asyncio.sleep(0.05)
        assert left == "0", f"{left} processes of the killed group survived"

    async def test_spawn_kill_escalates_to_sigkill(self, sandbox: Sandbox):
        proc = await sandbox.spawn("trap '' TERM; echo armed; while :; do sleep 0.05; done")
        await _read_until(proc, b"armed")
        t0 = time.monotonic()
        code = await proc.kill(grace=0.3)
        assert code == 128 + 9
        assert time.monotonic() - t0 < 5

    # ------------------------------------------------------------------ the registry

    async def test_registry_output_wait_and_status(self, sandbox: Sandbox, process_registry):
        reg = process_registry
        s = await reg.spawn(sandbox, "echo hello; sleep 0.3; echo world; exit 4", task_id="t1")
        out = await reg.wait(s.id, 10, task_id="t1")
        assert out["status"] == "exited" and out["exit_code"] == 4 and not out["timed_out"]
        assert out["output"] == "hello\nworld\n"
        log = await reg.read_log(s.id, "t1", offset=6, limit=5)
        assert log["output"] == "world"

    async def test_registry_wait_timeout_and_clamp(self, sandbox: Sandbox, process_registry):
        reg = process_registry
        s = await reg.spawn(sandbox, "sleep 60", task_id="t1")
        out = await reg.wait(s.id, 0.1, task_id="t1")
        assert out["timed_out"] and out["status"] == "running"
        t0 = time.monotonic()
        out = await reg.wait(s.id, 9999, task_id="t1")  # max_wait_seconds=1
        assert out["timeout_clamped"] and out["timeout_used"] == 1
        assert 0.9 < time.monotonic() - t0 < 5

    async def test_registry_task_scoping(self, sandbox: Sandbox, process_registry):
        reg = process_registry
        a = await reg.spawn(sandbox, "sleep 60", task_id="rollout-a")
        b = await reg.spawn(sandbox, "sleep 60", task_id="rollout-b")
        assert [x["session_id"] for x in reg.list("rollout-a")] == [a.id]
        for action in (
            lambda: reg.poll(b.id, "rollout-a"),
            lambda: reg.kill(b.id, "rollout-a"),
            lambda: reg.write(b.id, "x", "rollout-a"),
            lambda: reg.wait(b.id, 0, "rollout-a"),
            lambda: reg.read_log(b.id, "rollout-a"),
            lambda: reg.close_stdin(b.id, "rollout-a"),
        ):
            with pytest.raises(ProcessForbiddenError, match="another rollout"):
                await action()
        with pytest.raises(ProcessNotFoundError):
            await reg.poll("proc_doesnotexist", "rollout-a")
        assert (await reg.poll(b.id, "rollout-b"))["status"] == "running"
        await reg.kill_task("rollout-a")
        assert reg.list("rollout-a") == []
        assert (await reg.poll(b.id, "rollout-b"))["status"] == "running", "killing a's processes touched b's"
