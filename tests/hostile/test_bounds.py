"""Issue: the model-facing bound. Every text a tool returns — results and errors — is at most
``max_output_chars`` and close to it when there was that much to show, whatever the escaping
cost of the content; structured results stay valid JSON."""

from __future__ import annotations

import json

import pytest

from hermes_core import Runtime
from hermes_core.tools import bound, truncate

LIMIT = 50_000


@pytest.fixture
async def ctx(tmp_path):
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as c:
        c.max_output_chars = LIMIT
        yield c
    await rt.aclose()


def _both_sides(text: str, low: float = 0.9) -> None:
    assert len(text) <= LIMIT, f"{len(text)} characters is over the bound {LIMIT}"
    assert len(text) >= low * LIMIT, f"{len(text)} characters is far under the bound {LIMIT}: over-cut"


@pytest.mark.parametrize("command", [
    "seq 1 100000",                                                      # newline-heavy
    "for i in $(seq 1 30000); do printf '\"q\\\\\"%s\\n' $i; done",      # quotes and backslashes
    "python3 -c \"print('ünï🙂\\u0007\\t' * 60000)\"",                   # unicode and control chars
])
async def test_terminal_output_is_cut_to_the_bound_not_far_below(ctx, command):
    text = await ctx.call_tool("terminal", {"command": command, "timeout": 60})
    _both_sides(text)
    body = json.loads(text)  # still valid JSON
    assert "characters omitted" in body["output"]
    assert body["exit_code"] == 0


async def test_seq_shows_head_and_tail(ctx):
    body = json.loads(await ctx.call_tool("terminal", {"command": "seq 1 100000"}))
    lines = body["output"].splitlines()
    assert lines[0] == "1" and lines[-1] == "100000"
    assert len(body["output"]) > 20_000  # was ~290 characters when escaping was charged wrong


async def test_an_error_that_repeats_a_huge_argument_is_bounded(ctx):
    huge = "x" * 1_000_000
    text = await ctx.call_tool("terminal", {"command": "ls", "timeout": huge})
    assert len(text) <= LIMIT
    body = json.loads(text)
    assert body["error"]["type"] == "invalid_arguments" and "'timeout'" in body["error"]["message"]
    assert len(ctx.tool_errors[-1].message) <= 2000
    text = await ctx.call_tool("x" * 1_000_000, {})
    assert len(text) <= LIMIT and json.loads(text)["error"]["type"] == "unknown_tool"


async def test_process_log_with_a_long_line_stays_valid_json(ctx):
    started = json.loads(await ctx.call_tool(
        "terminal", {"command": "python3 -c \"print('y' * 60000)\"; sleep 30", "background": True}))
    sid = started["session_id"]
    body = None
    for _ in range(50):
        text = await ctx.call_tool("process", {"action": "log", "session_id": sid, "limit": 50000})
        assert len(text) <= LIMIT
        body = json.loads(text)  # parseable: the cut went into the string, not through the JSON
        if body.get("output", "").count("y") > 1000:
            break
        import asyncio
        await asyncio.sleep(0.1)
    assert body is not None and "y" * 1000 in body["output"]


def test_bound_on_both_sides_for_structures():
    for leaf in ("\n" * 200_000, '"' * 200_000, "🙂" * 200_000, "a\\b" * 70_000):
        text = bound({"output": leaf, "exit_code": 0}, LIMIT)
        _both_sides(text)
        json.loads(text)
    many = bound({"items": ["abc"] * 40_000}, LIMIT)
    assert len(many) <= LIMIT


def test_truncate_counts_its_note():
    for limit in (300, 5000, LIMIT):
        t = truncate("z" * (3 * limit), limit)
        assert limit - 5 <= len(t) <= limit
        assert "characters omitted" in t


# ------------------------------------------------------------------ driver memory


@pytest.fixture
async def sandbox(tmp_path):
    rt = Runtime()
    sb = rt.create_sandbox("local", {"root": str(tmp_path)})
    await sb.start()
    sb.output_limit = 1 << 20
    yield sb
    await rt.aclose()


FLOOD = "echo FIRST; head -c 100000000 /dev/zero | tr '\\0' 'n'; echo; echo LAST"


def _flood_checks(output: str, limit: int) -> None:
    assert output.startswith("FIRST\n")
    assert output.rstrip().endswith("LAST")
    assert "bytes of output omitted" in output
    dropped = int(output.split("[hermes: ... ")[1].split(" bytes")[0])
    kept = len(output.encode()) - len(f"\n[hermes: ... {dropped} bytes of output omitted ...]\n")
    assert kept + dropped == len("FIRST\n") + 100_000_000 + len("\nLAST\n")  # every byte accounted
    assert limit - 8192 <= kept <= limit + 4096 + 64  # the cap is used, not far undershot


async def test_exec_keeps_head_and_tail_within_the_limit(sandbox):
    r = await sandbox.exec(FLOOD, timeout=120)
    assert r.exit_code == 0
    _flood_checks(r.output, sandbox.output_limit)


async def test_shell_keeps_head_and_tail_within_the_limit(sandbox):
    r = await sandbox.shell(FLOOD, timeout=120)
    assert r.exit_code == 0
    _flood_checks(r.output, sandbox.output_limit)
    again = await sandbox.shell("echo next")  # the sentinel survived the flood
    assert again.output == "next\n"


async def test_shell_flood_then_timeout_keeps_the_head(sandbox):
    r = await sandbox.shell("echo FIRST; head -c 50000000 /dev/zero | tr '\\0' 'n'; sleep 60", timeout=3)
    assert r.timed_out and r.output.startswith("FIRST\n") and "timed out" in r.output
    assert len(r.output.encode()) <= sandbox.output_limit + 4096 + 200


async def test_verifier_terminal_has_its_own_larger_cap(ctx):
    assert ctx.sandbox.output_limit == 4 * 1024 * 1024  # HermesConfig.command_output_bytes
    assert ctx.tool_output_bytes == 1024 * 1024
    out = await ctx.terminal("head -c 20000000 /dev/zero | tr '\\0' 'v'")
    assert "bytes of output omitted" in out["output"]
    assert 4_000_000 <= len(out["output"]) <= 4 * 1024 * 1024 + 200


@pytest.mark.parametrize("pty", [False, True])
async def test_unread_background_output_blocks_the_process_not_the_driver(sandbox, pty):
    """A spawned process that prints 50 MB nobody reads fills a bounded buffer and then waits on
    its full pipe (or terminal): the driver does not hold its output. Reading then gets every
    byte, in order."""
    import asyncio

    from hermes_core.sandbox import HIGH_WATER

    proc = await sandbox.spawn("head -c 50000000 /dev/zero | tr '\\0' 'x'; touch done", pty=pty)
    await asyncio.sleep(1.5)
    assert proc.returncode is None and (await sandbox.stat("done")).kind == "missing"  # blocked, not finished
    held = len(proc._buf)
    assert 0 < held <= HIGH_WATER + 65536, held
    total = 0
    async with asyncio.timeout(120):
        while chunk := await proc.read(1 << 20):
            assert set(chunk) <= set(b"x\r\n"), chunk[:80]
            total += chunk.count(b"x")
            assert len(proc._buf) <= HIGH_WATER + 65536
        assert await proc.wait(30) == 0
    assert total == 50_000_000
    assert (await sandbox.stat("done")).kind == "file"


async def test_a_shell_that_never_answers_is_a_clear_error_in_bounded_time(tmp_path):
    """A sandbox whose ``bash`` never prints the session's first line (a hung or hostile image)
    gives a SandboxError naming the sandbox after ``start_timeout`` — not a hang, not a bare
    TimeoutError — and its process is gone."""
    import asyncio
    import time

    from hermes_core.errors import SandboxError
    from hermes_core.sandbox import ShellSession

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bash").write_text("#!/bin/sh\nexec sleep 300\n")
    (fake / "bash").chmod(0o755)
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path / "sb"), "env": {"PATH": f"{fake}:/usr/bin:/bin"}}).start()
    session = ShellSession(sb)
    session.start_timeout = 1.0
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match=f"shell in sandbox {sb.sandbox_id} did not answer within 1s"):
        await session.run("true")
    assert 0.9 < time.monotonic() - t0 < 10
    assert session.proc is None
    await sb.close()
    await rt.aclose()
    await asyncio.sleep(0)
