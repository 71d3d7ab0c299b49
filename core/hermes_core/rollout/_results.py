"""Output files of a run: ``results.jsonl``, ``trajectories.jsonl``, ``summary.json``; resume."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._stats import passed, run_stats, stats_dict

__all__ = ["RESULTS", "TRAJECTORIES", "SUMMARY", "ResultsDir", "summarize", "passed"]

RESULTS = "results.jsonl"
TRAJECTORIES = "trajectories.jsonl"
SUMMARY = "summary.json"
#: Keys of the run description that must match for a directory to be resumed.
RESUME_KEYS = ("command", "environment", "agent", "model", "prompts_sha256", "task_set", "group_size", "backend")

#: How each resume key is named in the refusal (what the user changed).
_KEY_NAMES = {
    "prompts_sha256": "a prompts file with other content",
    "task_set": "another task set (--tasks/--limit/dataset)",
    "group_size": "group size (--group-size)",
    "backend": "backend (--backend)",
}


class ResultsDir:
    """Append-only result files of one run directory, safe to resume after a crash or Ctrl-C.

    A trajectory line is written before its result line; the result line is the commit
    marker. On resume, result lines that do not parse (a write cut short) and trajectories
    without a result are dropped, and those rollouts run again.
    """

    def __init__(self, path: str | Path, run_info: Mapping[str, Any]):
        self.path = Path(path)
        self.run_info = dict(run_info)
        self._lock = asyncio.Lock()

    def check(self) -> None:
        """Refuse a directory that is a file or holds a different run.

        Raises:
            ConfigError: the directory holds a different run (another environment, agent or
                model), or is not a directory.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {str(self.path)!r} exists and is not a directory")
        summary = self.path / SUMMARY
        if summary.exists():
            try:
                old = json.loads(summary.read_text()).get("run", {})
            except (OSError, json.JSONDecodeError, AttributeError):
                old = {}
            for key in RESUME_KEYS:
                if key in old and old.get(key) != self.run_info.get(key):
                    what = _KEY_NAMES.get(key)
                    if what:
                        detail = f"{key} {old.get(key)!r}, this one {self.run_info.get(key)!r}"
                        if key == "task_set":
                            detail = f"{old.get('tasks_planned', '?')} tasks, this one {self.run_info.get('tasks_planned', '?')}"
                        raise ConfigError(
                            f"{self.path} holds a run with {what.split(' (')[0]} ({detail}); it cannot be resumed "
                            "with a different one; use another --out directory to start a new run"
                        )
                    raise ConfigError(
                        f"{self.path} holds a run with {key} {old.get(key)!r}, not "
                        f"{self.run_info.get(key)!r}; use another --out directory to start a new run"
                    )

    def load(self) -> list[dict[str, Any]]:
        """Create the directory or read the finished records of an earlier run in it.

        Raises:
            ConfigError: see :meth:`check`.
        """
        self.check()
        self.path.mkdir(parents=True, exist_ok=True)
        records: dict[str, dict[str, Any]] = {}
        results = self.path / RESULTS
        if results.exists():
            for line in results.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("rollout_id"), str):
                    if rec.get("infra_error"):
                        continue  # never scored (no sandbox, failed setup): run it again
                    records.setdefault(rec["rollout_id"], rec)
            _rewrite(results, (json.dumps(r, ensure_ascii=False) for r in records.values()))
        traj = self.path / TRAJECTORIES
        if traj.exists():
            keep: list[str] = []
            seen: set[str] = set()
            with traj.open() as f:
                for line in f:
                    try:
                        rid = json.loads(line).get("rollout_id")
                    except (json.JSONDecodeError, AttributeError):
                        continue
                    if rid in records and rid not in seen:
                        seen.add(rid)
                        keep.append(line.rstrip("\n"))
            _rewrite(traj, keep)
        return list(records.values())

    async def append(self, record: Mapping[str, Any], trajectory: Mapping[str, Any]) -> None:
        """Write one finished rollout (trajectory first, then the result line)."""
        t = json.dumps(trajectory, ensure_ascii=False, default=str) + "\n"
        r = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append_both, t, r)

    def _append_both(self, t: str, r: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / TRAJECTORIES).open("a") as f:
            f.write(t)
        with (self.path / RESULTS).open("a") as f:
            f.write(r)

    async def write_summary(self, summary: Mapping[str, Any]) -> None:
        text = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
        await asyncio.to_thread(_rewrite_text, self.path / SUMMARY, text)


def _rewrite(path: Path, lines: Iterable[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    _rewrite_text(path, text)


def _rewrite_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarize(
    records: list[dict[str, Any]],
    *,
    run_info: Mapping[str, Any] | None = None,
    duration: float | None = None,
    interrupted: bool = False,
    planned: int | None = None,
    group_size: int | None = None,
) -> dict[str, Any]:
    """Aggregate records: overall and per-task mean reward, pass rate, pass@k, std, tool and
    infra errors, tokens and the time split (every key is described in ``docs/eval.md``).

    Args:
        group_size: pass@k is given for k = 1 .. ``group_size`` (default: the run info's
            ``group_size``, else as many as a task's scored rollouts allow); a k larger than
            a task's scored rollouts is left out, not estimated.
    """
    if group_size is None:
        g = (run_info or {}).get("group_size")
        group_size = g if isinstance(g, int) and not isinstance(g, bool) and g > 0 else None
    stats = run_stats(records, group_size=group_size)
    per_task: dict[str, dict[str, Any]] = {}
    for rec in records:
        t = per_task.setdefault(rec["task_id"], {"rollouts": 0, "rewards": [], "tool_errors": 0, "errors": 0, "time": 0.0})
        t["rollouts"] += 1
        if rec.get("reward") is not None:
            t["rewards"].append(float(rec["reward"]))
        t["tool_errors"] += int(rec.get("n_tool_errors", 0))
        t["errors"] += 1 if rec.get("error") else 0
        t["time"] += float(rec.get("duration", 0.0))
    tasks_out = {}
    for task_id, t in per_task.items():
        rewards = t.pop("rewards")
        total_time = t.pop("time")
        tasks_out[task_id] = {
            **t,
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "pass_rate": sum(passed(r) for r in rewards) / len(rewards) if rewards else None,
            "mean_time": total_time / t["rollouts"],
            **stats_dict(stats.tasks[str(task_id)]),
        }
    rewards = [float(r["reward"]) for r in records if r.get("reward") is not None]
    usage: dict[str, int] = {}
    for rec in records:
        for k, v in (rec.get("usage") or {}).items():
            usage[k] = usage.get(k, 0) + int(v)
    return {
        "run": dict(run_info or {}),
        "status": "interrupted" if interrupted else (
            "incomplete" if planned and len(records) < planned
            else "failed" if records and all(r.get("infra_error") for r in records) else "complete"),
        "rollouts": len(records),
        "planned": planned,
        "tasks": len(per_task),
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "pass_rate": sum(passed(r) for r in rewards) / len(rewards) if rewards else None,
        "tool_errors": sum(int(r.get("n_tool_errors", 0)) for r in records),
        "errors": sum(1 for r in records if r.get("error")),
        "infra_errors": sum(1 for r in records if r.get("infra_error")),
        "api_errors": sum(1 for r in records if r.get("infra_error") and r.get("infra_kind") == "api"),
        "usage": usage,
        "duration": duration,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **stats_dict(stats.overall),
        "per_task": tasks_out,
    }
