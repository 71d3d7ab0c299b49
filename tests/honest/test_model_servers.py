"""Issue 10, items 1-4: real model servers (tool_choice, endpoint check, API errors counted
apart, --max-tokens default, `hermes run` streaming, batch resume)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from hermes_core import Runtime
from hermes_core.rollout import OpenAIAgent
from hermes_core.rollout._environment import TaskItem

from ._helpers import (
    HERMES,
    V1Server,
    hermes,
    interrupt_once_seen,
    one_line_error,
    read_jsonl,
    tool_call,
)

# ------------------------------------------------------------------------------------ item 1


def test_tool_choice_auto_is_sent_whenever_tools_are_offered(tmp_path):
    with V1Server([tool_call("terminal", {"command": "echo hi"}, "t1")]) as server:
        proc = hermes("run", "say hi", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                      "-o", f"root={tmp_path}")
        assert proc.returncode == 0, proc.stderr.decode()
        first, second = server.requests
        assert first["tools"] and first["tool_choice"] == "auto" and second["tool_choice"] == "auto"
        # Overridable: a named function, or none sent at all.
        proc = hermes("run", "x", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                      "--tool-choice", "terminal", "-o", f"root={tmp_path}")
        assert proc.returncode == 0, proc.stderr.decode()
        assert server.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "terminal"}}
        proc = hermes("run", "x", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                      "--tool-choice", "omit", "-o", f"root={tmp_path}")
        assert proc.returncode == 0 and "tool_choice" not in server.requests[-1]


async def test_no_tool_choice_without_tools():
    with V1Server() as server:
        agent = OpenAIAgent("m", base_url=server.url, api_key="x")
        async with Runtime() as rt, rt.rollout(toolsets=[]) as ctx:
            await agent.run(TaskItem(id="t", prompt="p"), ctx)
        await agent.aclose()
        assert "tools" not in server.requests[0] and "tool_choice" not in server.requests[0]


# ------------------------------------------------------------------------------------ item 2


def test_base_url_without_v1_fails_fast_saying_add_v1(tmp_path):
    with V1Server() as server:
        proc = hermes("eval", "terminal-test", "--agent", "openai", "--model", "m", "--base-url", server.root,
                      "--out", str(tmp_path / "o"), "--quiet")
        assert proc.returncode == 2
        line = one_line_error(proc)
        assert "404" in line and "add /v1?" in line and server.root in line
        assert server.requests == []  # no rollout ran
        assert not (tmp_path / "o" / "results.jsonl").exists()


def test_api_error_is_counted_as_an_infra_error_not_a_reward_of_zero(tmp_path):
    # /models answers, but every chat request fails (a model the server does not serve).
    with V1Server(default={"status": 404, "error": "The model `m` does not exist."}) as server:
        out = tmp_path / "o"
        proc = hermes("eval", "terminal-test", "--agent", "openai", "--model", "m", "--base-url", server.url,
                      "--limit", "2", "-n", "1", "--out", str(out), "--quiet", "-o", f"root={tmp_path}")
        err = proc.stderr.decode()
        assert proc.returncode == 1, err  # nothing was scored: not a success
        records = read_jsonl(out / "results.jsonl")
        assert len(records) == 2
        for r in records:
            assert r["reward"] is None and r["infra_error"] is True and r["infra_kind"] == "api"
            assert "HTTP 404" in r["error"]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["mean_reward"] is None and summary["infra_errors"] == 2 and summary["api_errors"] == 2
        assert summary["status"] == "failed"
        assert "Traceback" not in err and "infrastructure or API error" in err
        # The printed resume command is the full command line, ready to paste.
        assert f"--base-url {server.url} --limit 2 -n 1 --out {out}" in err


async def test_endpoint_check_tries_a_one_token_request_and_names_a_refused_key():
    # A server without /models but with chat completions passes (one token asked for).
    with V1Server(models_status=404) as server:
        agent = OpenAIAgent("m", base_url=server.url, api_key="x")
        await agent.check_reachable()
        await agent.aclose()
        assert server.requests[-1]["max_tokens"] == 1
    with V1Server(models_status=401) as server:
        agent = OpenAIAgent("m", base_url=server.url, api_key="x")
        try:
            await agent.check_reachable()
            raise AssertionError("a refused key must fail the check")
        except ConnectionError as e:
            assert "API key" in str(e) and "401" in str(e)
        finally:
            await agent.aclose()


# ------------------------------------------------------------------------------------ item 3


def test_max_tokens_has_a_documented_default_and_can_be_switched_off(tmp_path):
    with V1Server() as server:
        assert hermes("run", "x", "--model", "m", "--base-url", server.url, "-o", f"root={tmp_path}").returncode == 0
        assert server.requests[-1]["max_tokens"] == 4096
        assert hermes("run", "x", "--model", "m", "--base-url", server.url, "--max-tokens", "0",
                      "-o", f"root={tmp_path}").returncode == 0
        assert "max_tokens" not in server.requests[-1]
    help_text = hermes("run", "--help").stdout.decode()
    assert "default: 4096" in help_text


def test_hermes_run_streams_the_conversation_and_keeps_it_on_ctrl_c(tmp_path):
    # Turn 1 calls a tool; turn 2 never answers. The tool's output must be on screen before
    # the run ends, and Ctrl-C keeps it.
    script = [tool_call("terminal", {"command": "echo streamed-marker-$((6*7))"}, "s1"), {"delay": 120, "message": {"content": "late"}}]
    with V1Server(script) as server:
        proc = subprocess.Popen([*HERMES, "run", "go", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                                 "-o", f"root={tmp_path}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "COLUMNS": "200"})
        seen, err = interrupt_once_seen(proc, b"streamed-marker-42")
        assert b"streamed-marker-42" in seen, (seen, err)
        assert proc.returncode == 130, err
        assert b"go" in seen and b"terminal" in seen


# ------------------------------------------------------------------------------------ item 4


def _oracle_prompts(path: Path, *solutions: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"prompt": f"task {s}", "solution": s}) + "\n" for s in solutions))


def test_batch_resume_refuses_a_different_prompts_file(tmp_path):
    a = tmp_path / "a" / "prompts.jsonl"
    _oracle_prompts(a, "true", "true")
    out = tmp_path / "out"
    args = ("--agent", "oracle", "--quiet", "--out", str(out), "-o", f"root={tmp_path}")
    assert hermes("batch", str(a), *args).returncode == 0
    assert len(read_jsonl(out / "results.jsonl")) == 2
    # Same folder, another file with the same line ids (line-1, line-2): refused.
    b = tmp_path / "b" / "prompts.jsonl"
    _oracle_prompts(b, "echo other", "echo other")
    proc = hermes("batch", str(b), *args)
    assert proc.returncode == 2
    assert "prompts file" in one_line_error(proc)
    # The same file, changed: refused too.
    _oracle_prompts(a, "true", "echo changed")
    assert hermes("batch", str(a), *args).returncode == 2
    assert len(read_jsonl(out / "results.jsonl")) == 2


def test_default_output_folders_of_same_named_prompt_files_do_not_collide(tmp_path):
    a, b = tmp_path / "a" / "p.jsonl", tmp_path / "b" / "p.jsonl"
    _oracle_prompts(a, "true")
    _oracle_prompts(b, "true", "true")
    for f in (a, b):
        proc = hermes("batch", str(f), "--agent", "oracle", "--quiet", "-o", f"root={tmp_path}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr.decode()
    dirs = sorted((tmp_path / "hermes-runs").iterdir())
    assert len(dirs) == 2 and all(d.name.startswith("batch-p-") for d in dirs)
    assert sorted(len(read_jsonl(d / "results.jsonl")) for d in dirs) == [1, 2]
