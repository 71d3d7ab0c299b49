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
