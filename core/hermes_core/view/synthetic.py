"""Synthetic run directories in the runner's file format, for tests, benchmarks and demos.

``write_synthetic_run`` writes ``results.jsonl``, ``trajectories.jsonl`` and ``summary.json``
the way ``hermes eval --out`` does (same keys, same line order: each trajectory before its
result), with a deterministic mix of passes, failures, partial rewards, tool errors, infra
errors, verifier errors with tracebacks, reasoning, long outputs and images (group 0 of tasks 1-4
is always an image, a tool error, a verifier error and an infra error, in that order). With
``proposed=True`` the records also carry the fields newer runners write (``timings``,
``verifier_traceback``, trajectory ``tools`` and ``sampling``); ``proposed=False`` writes a run
as older runners did.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

__all__ = ["write_synthetic_run"]

# A 2x2 PNG (red, green / blue, white).
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDA"
       "xMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==")

_TOOLS = [
    {"type": "function", "function": {"name": "terminal", "description": "Run a shell command.",
                                      "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                                                      "timeout": {"type": "number"}},
                                                     "required": ["command"]}}},
    {"type": "function", "function": {"name": "read_file", "description": "Read a file.",
                                      "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                                                     "required": ["path"]}}},
]


def _messages(task: str, rng: random.Random, kind: str, long_lines: int) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are working in a Linux sandbox through tools."},
        {"role": "user", "content": f"Solve task {task}: write the answer to answer.txt."},
    ]
    tool_errors: list[dict[str, str]] = []
    turns = rng.randint(1, 3)
    for t in range(turns):
        call_id = f"call_{t}"
        msg: dict[str, Any] = {"role": "assistant", "content": "",
                               "tool_calls": [{"id": call_id, "type": "function", "function": {
                                   "name": "terminal", "arguments": json.dumps({"command": f"ls -la && cat step{t}.txt"})}}]}
        if t == 0:
            msg["reasoning_content"] = f"The task {task} needs a look at the directory first. " * 3
        msgs.append(msg)
        if kind == "tool_error" and t == 0:
            body = {"error": {"type": "invalid_arguments", "tool": "terminal", "message": "'command' must be a string"}}
            tool_errors.append({"tool": "terminal", "kind": "invalid_arguments", "message": "'command' must be a string"})
        else:
            lines = long_lines if t == 0 else 3
            output = "\n".join(f"-rw-r--r-- 1 root root {rng.randint(10, 9999):>5} step{i}.txt" for i in range(lines))
            body = {"exit_code": 0 if kind != "fail" else 1, "output": output, "error": None}
        msgs.append({"role": "tool", "tool_call_id": call_id, "name": "terminal", "content": json.dumps(body)})
    if kind == "image":
        msgs.append({"role": "assistant", "content": "", "tool_calls": [{"id": "call_img", "type": "function", "function": {
            "name": "browser_screenshot", "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": "call_img", "name": "browser_screenshot",
                     "content": json.dumps({"image": PNG, "width": 2, "height": 2})})
    msgs.append({"role": "assistant", "content": f"<think>Checked the output of {task}.</think>Done: answer.txt written."})
    return msgs, tool_errors


def write_synthetic_run(
    path: str | Path,
    *,
    tasks: int = 10,
    group_size: int = 4,
    seed: int = 0,
    proposed: bool = True,
    long_lines: int = 80,
) -> Path:
    """Write a synthetic run of ``tasks`` x ``group_size`` rollouts to ``path``; returns ``path``."""
    rng = random.Random(seed)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    task_ids = [f"task-{i:04d}" for i in range(tasks)]
    skill = {t: rng.random() for t in task_ids}
    with (out / "trajectories.jsonl").open("w") as tf, (out / "results.jsonl").open("w") as rf:
        for g in range(group_size):
            for i, task in enumerate(task_ids):
                rid = f"{task}#{g}"
                roll = rng.random()
                forced = {1: "image", 2: "tool_error", 3: "verifier_error", 4: "infra"}.get(i) if g == 0 else None
                kind = forced or ("infra" if roll < 0.03 else "verifier_error" if roll < 0.06 else "tool_error" if roll < 0.15
                        else "image" if roll < 0.18 else "pass" if rng.random() < skill[task] else "fail")
                msgs, terrs = _messages(task, rng, kind, long_lines) if kind != "infra" else (
                    [{"role": "system", "content": "You are working in a Linux sandbox through tools."},
                     {"role": "user", "content": f"Solve task {task}."}], [])
                reward: float | None
                if kind == "infra":
                    reward = None
                elif kind in ("pass", "image"):
                    reward = 1.0
                elif kind == "verifier_error":
                    reward = 0.0
                else:
                    reward = rng.choice([0.0, 0.0, 0.5])
                usage = {} if kind == "infra" else {"prompt_tokens": rng.randint(200, 4000), "completion_tokens": rng.randint(20, 800)}
                if usage:
                    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                setup, agent, verifier = rng.uniform(0.1, 1.5), rng.uniform(0.5, 20.0), rng.uniform(0.05, 2.0)
                verr = "verifier raised AssertionError: answer.txt is empty" if kind == "verifier_error" else None
                err = "sandbox (docker) failed: ImageNotFound: hermes-test/missing" if kind == "infra" else verr
                record: dict[str, Any] = {
                    "rollout_id": rid, "task_id": task, "group_index": g, "reward": reward,
                    "scores": {} if reward is None else {"correct": reward, "format": 1.0},
                    "passed": reward is not None and reward >= 1.0, "finished": kind != "infra",
                    "stop_reason": "infra_error" if kind == "infra" else "completed",
                    "turns": sum(1 for m in msgs if m["role"] == "assistant"),
                    "n_tool_errors": len(terrs), "tool_errors": terrs, "usage": usage, "error": err,
                    "infra_error": kind == "infra", "agent_error": None, "verifier_error": verr,
                    "backend": "docker", "image": "hermes-test/debian:bookworm", "sandbox_id": f"sb-{i}-{g}",
                    "duration": round(setup + (0 if kind == "infra" else agent + verifier), 4),
                }
                traj: dict[str, Any] = {"rollout_id": rid, "task_id": task, "group_index": g, "reward": reward,
                                        "messages": msgs}
                if proposed:
                    record["timings"] = ({"setup": round(setup, 4)} if kind == "infra" else
                                         {"setup": round(setup, 4), "agent": round(agent, 4), "verifier": round(verifier, 4)})
                    if verr:
                        record["verifier_traceback"] = (
                            "Traceback (most recent call last):\n  File \"verify.py\", line 12, in verify\n"
                            "    assert text, 'answer.txt is empty'\nAssertionError: answer.txt is empty\n")
                    traj["tools"] = _TOOLS
                    traj["sampling"] = {"model": "synthetic-model", "temperature": 0.7, "max_tokens": 1024}
                tf.write(json.dumps(traj, ensure_ascii=False) + "\n")
                rf.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary = {
        "run": {"command": "eval", "environment": "synthetic", "agent": "openai", "model": "synthetic-model",
                "backend": "docker", "group_size": group_size, "concurrency": 8},
        "status": "complete", "rollouts": tasks * group_size, "planned": tasks * group_size, "tasks": tasks,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out
