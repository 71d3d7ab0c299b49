"""``hermes eval`` / ``batch`` / ``run`` and the rollout runner, end to end on the local backend."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hermes_core import Runtime, hookimpl
from hermes_core.cli import main
from hermes_core.rollout._environment import Environment, TaskItem
from hermes_core.rollout._runner import Runner

from tests.test_agent_loop import ScriptedServer, call, final, tools_msg

HERMES = [sys.executable, "-c", "import sys; from hermes_core.cli import main; sys.exit(main())"]
TERMINAL_TEST_TASKS = 10


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def marked_processes(mark: str) -> list[int]:
    needle = f"{mark}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read():
                    with open(f"/proc/{entry.name}/stat", "rb") as s:
                        if s.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            found.append(int(entry.name))
        except OSError:
            continue
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the main job


def test_oracle_eval_of_terminal_test_scores_one_everywhere_and_writes_three_files(tmp_path):
    out = tmp_path / "run"
    root = tmp_path / "sandboxes"
    proc = subprocess.run(
        [*HERMES, "eval", "terminal-test", "--agent", "oracle", "-n", "4", "--out", str(out), "-o", f"root={root}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = read_jsonl(out / "results.jsonl")
    assert len(results) == TERMINAL_TEST_TASKS >= 8
    bad = [(r["task_id"], r["reward"], r["error"]) for r in results if r["reward"] != 1.0 or r["error"]]
    assert bad == []
    assert all(r["passed"] and r["finished"] and r["stop_reason"] == "solution" for r in results)
    trajectories = read_jsonl(out / "trajectories.jsonl")
    assert {t["rollout_id"] for t in trajectories} == {r["rollout_id"] for r in results}
    t = trajectories[0]
    assert t["messages"][0]["role"] == "system" and t["messages"][1]["role"] == "user"
    assert t["messages"][2]["tool_calls"][0]["function"]["name"] == "terminal"
    assert [c["from"] for c in t["conversations"]][:3] == ["system", "human", "gpt"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean_reward"] == 1.0 and summary["pass_rate"] == 1.0 and summary["status"] == "complete"
    assert summary["rollouts"] == TERMINAL_TEST_TASKS and len(summary["per_task"]) == TERMINAL_TEST_TASKS
    assert "http-server" in proc.stdout and "1.000" in proc.stdout  # the table
    assert list(root.iterdir()) == []  # every sandbox was removed


def test_resume_skips_finished_rollouts_and_reruns_torn_lines(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "terminal-test", "--limit", "3", "--out", str(out), "--quiet"]) == 0
    first = read_jsonl(out / "results.jsonl")
    assert len(first) == 3
    # A write cut short by a crash: the torn line is dropped and that rollout runs again.
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    assert main(["eval", "terminal-test", "--limit", "3", "--out", str(out), "--quiet", "--group-size", "1"]) == 0
    results = read_jsonl(out / "results.jsonl")
    assert len(results) == 3
    assert len({r["rollout_id"] for r in results}) == 3
    kept = {r["rollout_id"]: r["sandbox_id"] for r in results}
    assert [kept[r["rollout_id"]] for r in first[:2]] == [r["sandbox_id"] for r in first[:2]]  # not rerun
    assert kept[first[2]["rollout_id"]] != first[2]["sandbox_id"]  # rerun
    assert len(read_jsonl(out / "trajectories.jsonl")) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 2 and summary["ran"] == 1 and summary["mean_reward"] == 1.0
    # Another task set (no --limit: all tasks) would make summary.json disagree with the
    # results: refused (issue 10, item 5).
    capsys.readouterr()
    assert main(["eval", "terminal-test", "--out", str(out), "--quiet"]) == 2
    assert "task set" in capsys.readouterr().err
    assert len(read_jsonl(out / "results.jsonl")) == 3 and TERMINAL_TEST_TASKS > 3
    # Another agent in the same directory would mix runs: refused, naming the key.
    capsys.readouterr()
    assert main(["eval", "terminal-test", "--agent", "openai", "--model", "m", "--out", str(out)]) == 2
    assert "agent" in capsys.readouterr().err


def test_group_size_and_concurrency(tmp_path):
    out = tmp_path / "g"
    assert main(["eval", "terminal-test", "--tasks", "hello-file,replace-host", "--group-size", "3",
                 "-n", "6", "--out", str(out), "--quiet"]) == 0
    ids = sorted(r["rollout_id"] for r in read_jsonl(out / "results.jsonl"))
    assert ids == sorted(f"{t}#{g}" for t in ("hello-file", "replace-host") for g in range(3))
    assert len({r["sandbox_id"] for r in read_jsonl(out / "results.jsonl")}) == 6  # fresh sandbox each


# --------------------------------------------------------------------------- verifiers


class Probe(Environment):
    verifier = "probe"

    async def load_tasks(self) -> list[TaskItem]:
        return [
            TaskItem(id="raises", prompt="p", solution="echo hi > f.txt", metadata={"mode": "raise"}),
            TaskItem(id="garbage", prompt="p", solution="true", metadata={"mode": "garbage"}),
            TaskItem(id="named", prompt="p", solution="echo hi > f.txt", metadata={"mode": "named"}),
            TaskItem(id="sync", prompt="p", solution="echo hi > f.txt", metadata={"mode": "sync"}),
            TaskItem(id="bad-setup", prompt="p", solution="true", setup="exit 3", metadata={"mode": "named"}),
            TaskItem(id="image", prompt="p", solution="echo hi > f.txt", image="busybox:latest", metadata={"mode": "named"}),
        ]


def make_probe_plugin(seen: dict[str, Any]):
    async def probe(item, result, ctx):
        seen[item.id] = ctx.sandbox.root
        mode = item.metadata["mode"]
        if mode == "raise":
            assert (await ctx.read_file("f.txt"))["content"] == "hi\n"
            raise RuntimeError("verifier bug")
        if mode == "garbage":
            return "yes"
        return {"file": 1.0 if "content" in await ctx.read_file("f.txt") else 0.0, "ran": 1.0}

    def probe_sync(item, result, ctx):
        seen[item.id] = ctx.sandbox.root
        return 1.0 if ctx.read_file("f.txt").get("content") == "hi\n" else 0.0

    async def dispatch(item, result, ctx):
        if item.metadata["mode"] == "sync":
            from hermes_core.rollout._environment import run_verifier

            outcome = await run_verifier(probe_sync, item, result, ctx)
            if outcome.error:
                raise RuntimeError(outcome.error)
            return outcome.reward
        return await probe(item, result, ctx)

    class Plugin:
        @staticmethod
        @hookimpl
        def hermes_register_environments(registry):
            registry.register("probe", Probe)

        @staticmethod
        @hookimpl
        def hermes_register_verifiers(registry):
            registry.register("probe", dispatch)

    return Plugin


async def test_verifier_failures_score_zero_with_the_error_and_sandboxes_are_cleaned(tmp_path):
    seen: dict[str, Any] = {}
    async with Runtime(plugins=[make_probe_plugin(seen)]) as rt:
        env = Probe()
        items = await env.tasks()
        runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, concurrency=3, out_dir=tmp_path / "o",
                        backend_options={"root": str(tmp_path / "sb")})
        report = await runner.run(items)
    by = {r["task_id"]: r for r in report.records}
    assert by["raises"]["reward"] == 0.0 and "verifier raised RuntimeError: verifier bug" in by["raises"]["error"]
    assert by["garbage"]["reward"] == 0.0 and "must return a number" in by["garbage"]["verifier_error"]
    assert by["named"]["reward"] == 1.0 and by["named"]["scores"] == {"file": 1.0, "ran": 1.0}
    assert by["sync"]["reward"] == 1.0, by["sync"]["error"]
    # The agent never ran: no reward (not the agent's failure), marked for a rerun on resume.
    assert by["bad-setup"]["reward"] is None and "setup command exited 3" in by["bad-setup"]["error"]
    assert by["bad-setup"]["turns"] == 0 and by["bad-setup"]["infra_error"] is True
    assert by["raises"]["infra_error"] is False
    # local runs no images: the task image is not recorded as used (issue 10, item 8)
    assert by["image"]["image"] is None and by["image"]["image_unused"] == "busybox:latest"
    assert by["image"]["reward"] == 1.0
    assert seen["raises"] is not None and not Path(seen["raises"]).exists()
    assert list((tmp_path / "sb").iterdir()) == []
    assert report.summary["errors"] == 3 and report.summary["mean_reward"] == pytest.approx(3 / 5)
    # Resume reruns only the rollout that was never scored.
    async with Runtime(plugins=[make_probe_plugin(seen)]) as rt:
        rerun = Runner(rt, rt.agents.get("oracle").factory(), environment=env, concurrency=3, out_dir=tmp_path / "o",
                       backend_options={"root": str(tmp_path / "sb")})
        report2 = await rerun.run(items)
    assert report2.ran == 1 and report2.skipped == len(items) - 1


async def test_rollout_deadline_is_enforced(tmp_path):
    class Slow(Environment):
        verifier = None

        async def load_tasks(self):
            return [TaskItem(id="slow", prompt="p", solution="sleep 30")]

        async def verify(self, item, result, ctx):
            return 0.0 if result.stop_reason == "deadline" else 1.0

    async with Runtime() as rt:
        env = Slow.from_config({"timeout": 1.0})
        t0 = time.monotonic()
        report = await Runner(rt, rt.agents.get("oracle").factory(), environment=env).run(await env.tasks())
    assert time.monotonic() - t0 < 5
    assert report.records[0]["stop_reason"] == "deadline"


# --------------------------------------------------------------------------- Ctrl-C


SLOW_PLUGIN = '''
from hermes_core import hookimpl
from hermes_core.rollout._environment import Environment, TaskItem

class SlowEnv(Environment):
    async def load_tasks(self):
        quick = [TaskItem(id="quick", prompt="p", solution="true")]
        return quick + [TaskItem(id=f"slow{i}", prompt="p", solution="(sleep 300 &) ; sleep 300 & sleep 300")
                        for i in range(3)]

    async def verify(self, item, result, ctx):
        return 1.0

@hookimpl
def hermes_register_environments(registry):
    registry.register("slow-env", SlowEnv)
'''


def test_sigint_during_eval_leaves_no_sandbox_or_process_and_keeps_finished_results(tmp_path):
    site = tmp_path / "site"
    (site / "slow_env_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "slow_env_plugin.py").write_text(SLOW_PLUGIN)
    (site / "slow_env_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-env-plugin\nVersion: 0.1\n")
    (site / "slow_env_plugin-0.1.dist-info" / "entry_points.txt").write_text("[hermes]\nslow-env = slow_env_plugin\n")
    root, out = tmp_path / "sandboxes", tmp_path / "out"
    mark = f"HERMES_SIGINT_TEST={os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [*HERMES, "eval", "slow-env", "-n", "4", "--out", str(out), "-o", f"root={root}",
         "-o", "env=" + json.dumps(dict([mark.split("=")]))],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = (out / "results.jsonl").exists() and "quick#0" in (out / "results.jsonl").read_text()
            if done and len(marked_processes(mark)) >= 9:  # 3 rollouts x (shell + 3 sleeps)
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        else:
            pytest.fail(f"the slow rollouts did not start: {marked_processes(mark)}")
        # three live sandboxes (the finished rollout's emptied directory may wait as a spare)
        assert len([d for d in root.iterdir() if not d.name.startswith("hermes-spare-")]) == 3
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "interrupted" in err and "Resume with" in err
    assert marked_processes(mark) == []
    assert list(root.iterdir()) == []
    results = read_jsonl(out / "results.jsonl")
    assert [r["rollout_id"] for r in results] == ["quick#0"]
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["eval", "no-such-env"], ["unknown environment 'no-such-env'", "terminal-test"]),
        (["eval", "terminal-test", "--agent", "nope"], ["unknown agent 'nope'", "openai", "oracle"]),
        (["eval", "terminal-test", "--backend", "nope"], ["unknown backend 'nope'", "local"]),
        (["eval", "terminal-test", "--backend", "modal"], ["pip install /", "hermes_backend_modal", "pip install hermes-backend-modal --no-index"]),
        (["eval", "terminal-test", "-o", "bogus=1"], ["bogus"]),
        (["eval", "terminal-test", "--agent", "openai"], ["needs --model"]),
        (["eval", "terminal-test", "--set", "max_turns=zero"], ["max_turns", "--set"]),
        (["eval", "terminal-test", "--set", "max_turnz=3"], ["max_turnz", "allowed keys"]),
        (["eval", "terminal-test", "--tasks", "hello-file,nope"], ["'nope'", "hello-file", "csv-totals"]),
        (["eval", "terminal-test", "--toolset", "nope"], ["nope"]),
    ],
)
def test_bad_input_is_explained(argv, needles, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_invalid_config_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "hermes.yaml"
    cfg.write_text("backend: local\nenvironment:\n  max_turns: 3\n  timeoutt: 5\n")
    assert main(["eval", "terminal-test", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "timeoutt" in err
    cfg.write_text("backendd: local\n")
    assert main(["eval", "terminal-test", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "backendd" in err
    cfg.write_text("environment:\n  tasks: [hello-file]\n  max_turns: 2\n")
    assert main(["eval", "terminal-test", "--config", str(cfg), "--out", str(tmp_path / "ok"), "--quiet"]) == 0
    assert [r["task_id"] for r in read_jsonl(tmp_path / "ok" / "results.jsonl")] == ["hello-file"]


def test_unreachable_base_url_fails_fast_naming_the_url(capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    assert main(["eval", "terminal-test", "--agent", "openai", "--model", "m", "--base-url", url]) == 2
    assert time.monotonic() - t0 < 10
    assert url in capsys.readouterr().err


def test_malformed_prompts_file_names_the_line(tmp_path, capsys):
    p = tmp_path / "prompts.jsonl"
    for text, needles in [
        ('{"prompt": "a"}\n\n{"prompt": "b"\n', ["line 3", "not valid JSON"]),
        ('{"prompt": "a"}\n{"promt": "b"}\n', ["line 2", "promt", "prompt"]),
        ('["a"]\n', ["line 1", "JSON object"]),
        ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', ["line 2", "line 1", "'x'"]),
        ("", ["no prompts"]),
    ]:
        p.write_text(text)
        assert main(["batch", str(p), "--model", "m"]) == 2
        err = capsys.readouterr().err
        for needle in needles:
            assert needle in err, (text, err)


# --------------------------------------------------------------------------- batch and run


def test_batch_generates_trajectories_with_row_overrides_and_resumes(tmp_path, capsys):
    p = tmp_path / "prompts.jsonl"
    p.write_text(
        json.dumps({"id": "a", "prompt": "make x", "toolsets": ["terminal"]}) + "\n"
        + json.dumps({"prompt": "just answer", "system_prompt": "be terse"}) + "\n"
    )
    script = [
        tools_msg(call("terminal", {"command": "echo x > x.txt && cat x.txt"}, "b1")),
        final("made x"),
        final("answered"),
    ]
    out = tmp_path / "out"
    with ScriptedServer(script) as server:
        rc = main(["batch", str(p), "--model", "m", "--base-url", server.url, "-n", "1", "--out", str(out), "--quiet"])
        assert rc == 0, capsys.readouterr().err
        by_prompt = {r["messages"][-1]["content"]: r for r in server.requests}
        assert len(server.requests) == 3
        row_tools = {t["function"]["name"] for t in server.requests[0]["tools"]}
        assert "terminal" in row_tools and "read_file" not in row_tools  # the row's toolsets
        assert "read_file" in {t["function"]["name"] for t in server.requests[2]["tools"]}  # the default
        results = {r["task_id"]: r for r in read_jsonl(out / "results.jsonl")}
        assert set(results) == {"a", "line-2"} and results["a"]["reward"] is None
        assert results["a"]["turns"] == 2 and results["line-2"]["finished"]
        trajs = {t["task_id"]: t for t in read_jsonl(out / "trajectories.jsonl")}
        assert trajs["line-2"]["messages"][0] == {"role": "system", "content": "be terse"}
        assert "x\\n" in trajs["a"]["messages"][2]["content"]
        # Resume: nothing left to do, no request made.
        assert main(["batch", str(p), "--model", "m", "--base-url", server.url, "--out", str(out), "--quiet"]) == 0
        assert len(server.requests) == 3
        assert "just answer" in by_prompt


def test_hermes_run_prints_the_conversation(capsys):
    script = [tools_msg(call("terminal", {"command": "echo run-output"}, "r1")), final("the answer is 42")]
    with ScriptedServer(script) as server:
        rc = main(["run", "what is it?", "--model", "m", "--base-url", server.url, "--toolset", "terminal"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for needle in ("what is it?", "terminal", "run-output", "the answer is 42"):
        assert needle in captured.out
    assert "final_answer" in captured.err


def test_readme_command_help_lists_subcommands():
    proc = subprocess.run([*HERMES, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("eval", "run", "batch"))
