"""Issue 17, item 3: terminal output that reads well everywhere.

Real ``hermes`` subprocesses on the local backend: the oracle agent (prompt rows whose
``solution`` sleeps make runs slow enough to watch), and the openai agent against the
OpenAI-compatible test server for ``hermes run`` and for a known mix of passes and failures.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from .honest._helpers import (
    HERMES,
    V1Server,
    hermes,
    interrupt_once_seen,
    one_line_error,
    read_jsonl,
    tool_call,
)

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
ENV = {**os.environ, "HERMES_DISABLE_PLUGIN_AUTOLOAD": "1", "COLUMNS": "80"}


def _prompts(path: Path, *solutions: str) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"task {i}", "solution": s}) + "\n"
                            for i, s in enumerate(solutions)))
    return path


def _batch(tmp_path: Path, prompts: Path, *extra: str, out: str = "out") -> list[str]:
    return [*HERMES, "batch", str(prompts), "--agent", "oracle", "-n", "1", "--out", str(tmp_path / out),
            "-o", f"root={tmp_path}", *extra]


# ------------------------------------------------------------------------------ progress, not a TTY


def test_plain_progress_lines_arrive_while_the_run_is_going(tmp_path):
    prompts = _prompts(tmp_path / "p.jsonl", *["sleep 1.2"] * 4)  # ~5 s, one at a time
    proc = subprocess.Popen(_batch(tmp_path, prompts, "--progress-interval", "0.5"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    t0 = time.monotonic()
    arrived: list[tuple[float, str, bool]] = []  # (when, line, process still running)
    for raw in proc.stderr:
        arrived.append((time.monotonic() - t0, raw.decode(), proc.poll() is None))
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0, "".join(line for _, line, _ in arrived)
    elapsed = time.monotonic() - t0
    ticks = [(t, line, running) for t, line, running in arrived if re.match(r"p\.jsonl: +\d+/4 ", line)]
    # Lines came while the run was going, before the table, showing partial progress ...
    early = [line for t, line, running in ticks if running and re.match(r"p\.jsonl: +[0-3]/4 ", line)]
    assert len(early) >= 2, arrived
    assert re.search(r"pass +(\d+%|-) · +[\d.]+/(min|s) · elapsed \d:\d\d:\d\d · ETA \d:\d\d:\d\d", early[-1]), early
    # ... about one per interval, not one per event loop turn.
    assert len(ticks) <= elapsed / 0.5 + 2, (len(ticks), elapsed)
    assert any("finished · 4/4 (100%)" in line for _, line, _ in arrived)
    assert not any("\x1b" in line or "\r" in line for _, line, _ in arrived)  # no control codes
    assert "p0" in out and "\x1b" not in out


def test_verbose_prints_one_line_per_finished_rollout_and_interval_0_only_the_end(tmp_path):
    prompts = _prompts(tmp_path / "p.jsonl", "true", "exit 3", "true")
    proc = subprocess.run(_batch(tmp_path, prompts, "-v", "--progress-interval", "0"), capture_output=True,
                          env=ENV, timeout=120, check=False)
    err = proc.stderr.decode()
    done = [line for line in err.splitlines() if line.startswith("done ")]
    assert sorted(line.split()[1] for line in done) == ["p0#0", "p1#0", "p2#0"], err
    assert re.search(r"^done p1#0 · reward - · no reward · [\d.]+s \(2/3\) · error: the reference solution exited with 3$",
                     err, re.MULTILINE), err
    progress = [line for line in err.splitlines() if line.startswith("p.jsonl: ")]
    assert len(progress) == 1 and "finished · 3/3 (100%)" in progress[0], err  # interval 0: the end only
    # Without -v: no per-rollout lines.
    proc = subprocess.run(_batch(tmp_path, prompts, "--progress-interval", "0"), capture_output=True, env=ENV, timeout=120, check=False)
    assert not [line for line in proc.stderr.decode().splitlines() if line.startswith("done ")]


def test_bad_progress_interval_is_one_line_exit_2(tmp_path):
    proc = hermes("eval", "terminal-test", "--progress-interval", "-1", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "--progress-interval" in one_line_error(proc)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ progress on a TTY


@pytest.mark.parametrize("columns", [80, 120, 140])
def test_tty_progress_shows_eta_with_a_stable_width(tmp_path, columns):
    prompts = _prompts(tmp_path / "p.jsonl", *["sleep 0.6"] * 5)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    env = {k: v for k, v in ENV.items() if k != "COLUMNS"}
    proc = subprocess.Popen(_batch(tmp_path, prompts, "-v"), stdout=subprocess.PIPE, stderr=slave,
                            env={**env, "TERM": "xterm-256color"})
    os.close(slave)
    data = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0
    text = data.decode(errors="replace")
    assert "\x1b[" in text  # a live display, redrawn in place
    frames = [ANSI.sub("", seg).rstrip() for seg in re.split(r"[\r\n]", text)]
    bars = [f for f in frames if "ETA" in f and "/5 " in f]
    assert len(bars) >= 3, frames
    assert any(re.search(r"ETA \d:\d\d:\d\d", f) for f in bars[:-1]), bars  # an estimate while running
    assert len({len(f) for f in bars}) == 1, bars  # the same width as numbers grow
    # One line that fits: nothing wrapped onto a second line on a narrow terminal.
    assert all(len(f) <= columns and re.search(r"ETA [-\d]:[-\d]{2}:[-\d]{2}( · errors|  err) 0$", f) for f in bars), bars
    assert re.search(r"5/5 \(?100%", bars[-1]), bars
    assert sum(1 for f in frames if f.startswith("done p")) == 5  # -v lines above the bar


# ------------------------------------------------------------------------------ the table


def _unbiased(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_eval_table_shows_pass_at_1_to_3_and_tokens_for_a_known_mix(tmp_path):
    write = tool_call("terminal", {"command": "printf 'Hello, hermes!\\n' > hello.txt"}, "h")
    fix = tool_call("terminal", {"command": "sed -i 's/localhost/127.0.0.1/g' config.ini"}, "r")
    done = {"message": {"content": "done"}}
    # Concurrency 1: rollouts run hello-file#0, replace-host#0, hello-file#1, ... A passing rollout
    # makes two requests (the fix, then the answer), a failing one answers at once.
    outcomes = {"hello-file": [True, False, False], "replace-host": [True, True, False]}
    script = []
    for g in range(3):
        for task, step in (("hello-file", write), ("replace-host", fix)):
            script += [step, done] if outcomes[task][g] else [done]
    with V1Server(script) as server:
        proc = subprocess.run(
            [*HERMES, "eval", "terminal-test", "--agent", "openai", "--model", "m", "--base-url", server.url,
             "--tasks", "hello-file,replace-host", "--group-size", "3", "-n", "1", "--toolset", "terminal",
             "--out", str(tmp_path / "out"), "-o", f"root={tmp_path}", "--quiet"],
            capture_output=True, env=ENV, timeout=180, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    recs = {r["rollout_id"]: r["passed"] for r in read_jsonl(tmp_path / "out" / "results.jsonl")}
    assert recs == {f"{t}#{g}": outcomes[t][g] for t in outcomes for g in range(3)}
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    header = next(line for line in lines if line.startswith("task"))
    assert header.split() == ["task", "n", "reward", "pass@1", "pass@2", "pass@3", "tokens", "tool", "err",
                              "errors", "time"]
    per_task = {}
    for task, results in outcomes.items():
        n, c = len(results), sum(results)
        row = next(line for line in lines if line.startswith(task)).split()
        assert row[1] == "3" and row[2] == f"{c / n:.3f}"
        assert row[3:6] == [f"{_unbiased(n, c, k):.3f}" for k in (1, 2, 3)], (task, row)
        per_task[task] = [_unbiased(n, c, k) for k in (1, 2, 3)]
        # 5 tokens per request (the server's usage): 2 requests when it passed, 1 when not.
        assert row[6] == f"{sum(10 if ok else 5 for ok in results) / n:.0f}"
    overall = [sum(v[k] for v in per_task.values()) / 2 for k in range(3)]
    all_row = next(line for line in lines if line.startswith("all")).split()
    assert all_row[3:6] == [f"{v:.3f}" for v in overall]
    assert "pass@1 0.500  pass@2 0.833  pass@3 1.000" in out
    assert "tokens 45 (8 per rollout)" in out  # run-level line: 9 requests x 5 tokens


def test_table_fits_80_columns_with_many_long_task_ids(tmp_path):
    from hermes_core.cli._render import print_table

    records = [{"rollout_id": f"{t}#{g}", "task_id": t, "reward": float((g + i) % 3 == 0), "passed": (g + i) % 3 == 0,
                "usage": {"total_tokens": 1234 * (g + 1)}, "duration": 1.5, "n_tool_errors": 0, "error": None}
               for i in range(40) for t in [f"terminal-bench/some-rather-long-task-name-{i:03d}-variant"]
               for g in range(8)]
    out = tmp_path / "table.txt"
    with out.open("w") as f:
        print_table({"duration": 12.0}, "terminal-bench · agent openai", records, group_size=8, file=f, width=80)
    lines = out.read_text().splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    header = next(line for line in lines if line.startswith("task")).split()
    assert header[3] == "pass@1" and header[5] == "pass@8" and "tokens" in header
    # The shared prefix is elided, the part that tells the tasks apart is kept.
    labels = [line.split()[0] for line in lines if line.startswith("…")]
    assert labels == [f"…{i:03d}-variant" for i in range(40)], labels
    assert "pass@1 0.334  pass@2 0.585  pass@8 1.000" in out.read_text()  # the dropped ks are not faked
    assert "columns 1, 2, 8 of 1..8" in out.read_text()


# ------------------------------------------------------------------------------ hermes run


def _run_script() -> list[dict]:
    command = "printf 'first line\\nsecond \"quoted\" line\\n'; exit 3"
    return [
        {"message": {"content": None, "reasoning_content": "Let me look at the files first.",
                     "tool_calls": [{"id": "c1", "type": "function",
                                     "function": {"name": "terminal", "arguments": json.dumps({"command": command, "timeout": 20})}}]}},
        {"message": {"content": "All done."}},
    ]


def test_hermes_run_prints_a_decoded_transcript(tmp_path):
    with V1Server(_run_script()) as server:
        proc = hermes("run", "look around", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                      "-o", f"root={tmp_path}", env={"COLUMNS": "100"})
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "── user\nlook around\n" in out
    assert "reasoning · " in out and "Let me look at the files first." in out
    assert "→ terminal(timeout=20)" in out and "command: printf" in out
    assert "── tool · terminal · exit 3" in out  # the exit code on the header line
    assert "\nfirst line\nsecond \"quoted\" line\n" in out  # output decoded: real line breaks
    assert "\\n" not in out.split("── tool")[1] and '\\"' not in out and '"exit_code"' not in out
    assert "All done." in out and "\x1b" not in out  # not a terminal: no control codes
    assert "stop: final_answer" in err


def test_hermes_run_json_prints_the_raw_messages_as_jsonl(tmp_path):
    with V1Server(_run_script()) as server:
        proc = hermes("run", "look around", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                      "-o", f"root={tmp_path}", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    messages = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "terminal"
    result = json.loads(messages[2]["content"])  # the tool's raw result, as the model saw it
    assert result["exit_code"] == 3 and "second \"quoted\" line" in result["output"]
    assert messages[3]["content"] == "All done."


def test_interrupted_hermes_run_writes_the_partial_rollout_to_out(tmp_path):
    out_dir = tmp_path / "out"
    script = [tool_call("terminal", {"command": "echo partial-marker-$((6*7))"}, "s1"),
              {"delay": 120, "message": {"content": "late"}}]
    with V1Server(script) as server:
        proc = subprocess.Popen([*HERMES, "run", "go", "--model", "m", "--base-url", server.url, "--toolset", "terminal",
                                 "-o", f"root={tmp_path}", "--out", str(out_dir)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        seen, err = interrupt_once_seen(proc, b"partial-marker-42")
    assert b"partial-marker-42" in seen, err
    assert proc.returncode == 130, err
    assert b"wrote the interrupted rollout" in err
    (rec,) = read_jsonl(out_dir / "results.jsonl")
    assert rec["rollout_id"] == "prompt#0" and rec["interrupted"] and rec["stop_reason"] == "interrupted"
    assert rec["reward"] is None and not rec["passed"]
    (traj,) = read_jsonl(out_dir / "trajectories.jsonl")
    assert [m["role"] for m in traj["messages"]] == ["user", "assistant", "tool"]
    assert "partial-marker-42" in traj["messages"][2]["content"]
    # The transcript of what was kept reads like any other.
    view = hermes("view", str(out_dir), "--rollout", "prompt#0", "--text", env={"COLUMNS": "100"})
    text = view.stdout.decode()
    assert view.returncode == 0 and "interrupted" in text and "partial-marker-42" in text
