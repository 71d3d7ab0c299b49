"""Statistics of a run, in pure Python: pass@k, per-task mean / pass rate / std, errors, tokens, time.

Every function takes result records (the rows of ``results.jsonl``) as plain dicts and
tolerates fields that older runs do not write (``timings``, ``usage``, ``infra_error``).
``summary.json`` (:func:`hermes_core.rollout.summarize`) and the viewer (``hermes view``) both
compute from here, so the numbers a run writes and the numbers the viewer shows are one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PHASES",
    "RunStats",
    "TaskStats",
    "pass_at_k",
    "passed",
    "run_stats",
    "sample_std",
    "stats_dict",
    "task_stats",
    "tokens",
]

#: The phases of a rollout's time split, as the runner may record them in ``timings``.
PHASES = ("setup", "agent", "verifier")


def passed(reward: float | None) -> bool:
    """A rollout passes when its reward is 1.0 (within float noise)."""
    return reward is not None and reward >= 1.0 - 1e-9


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k: ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021).

    The probability that at least one of ``k`` rollouts drawn without replacement from ``n``
    rollouts, ``c`` of which passed, passes. Computed as a product, so large ``n`` stays exact
    to float precision without big binomials.

    Raises:
        ValueError: unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1 in the denominator); ``None`` for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def tokens(usage: Mapping[str, Any] | None) -> int:
    """Total tokens of a ``usage`` mapping (``total_tokens``, else prompt + completion)."""
    if not usage:
        return 0
    try:
        if usage.get("total_tokens") is not None:
            return int(usage["total_tokens"])
        return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    except (TypeError, ValueError):
        return 0


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _sum(values: Sequence[float]) -> float | None:
    return math.fsum(values) if values else None


@dataclass
class TaskStats:
    """Aggregates of the rollouts of one task (or of a whole run when ``task_id`` is ``None``).

    ``scored`` counts rollouts with a reward (infra errors have none and are left out of
    ``mean_reward``, ``pass_rate``, ``std`` and ``pass_at_k``, as in ``summary.json``).
    ``pass_at_k[k]`` is the unbiased estimator for each k up to the number of scored rollouts.
    ``time`` holds the mean seconds per rollout: ``total`` always (from ``duration``), and
    ``setup`` / ``agent`` / ``verifier`` when the records carry a ``timings`` split (each mean
    is over the rollouts in which that phase ran); ``time_sum`` holds the sums.
    """

    task_id: str | None
    rollouts: int = 0
    scored: int = 0
    passed: int = 0
    mean_reward: float | None = None
    pass_rate: float | None = None
    std: float | None = None
    pass_at_k: dict[int, float] = field(default_factory=dict)
    tool_errors: int = 0
    infra_errors: int = 0
    errors: int = 0
    tokens: int = 0
    #: Rollouts whose record reports token usage (the oracle agent reports none).
    token_rollouts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time: dict[str, float | None] = field(default_factory=dict)
    time_sum: dict[str, float | None] = field(default_factory=dict)

    @property
    def mean_tokens(self) -> float | None:
        """Mean tokens per rollout over the rollouts that report usage (``None`` if none do)."""
        return self.tokens / self.token_rollouts if self.token_rollouts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id, "rollouts": self.rollouts, "scored": self.scored, "passed": self.passed,
            "mean_reward": self.mean_reward, "pass_rate": self.pass_rate, "std": self.std,
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "tool_errors": self.tool_errors, "infra_errors": self.infra_errors, "errors": self.errors,
            "tokens": self.tokens, "token_rollouts": self.token_rollouts, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "mean_tokens": self.mean_tokens, "time": dict(self.time),
            "time_sum": dict(self.time_sum),
        }


def _aggregate(task_id: str | None, records: Iterable[Mapping[str, Any]], ks: int | None) -> TaskStats:
    st = TaskStats(task_id)
    rewards: list[float] = []
    durations: list[float] = []
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    n = tool_errors = infra = errors = tok = ptok = ctok = tok_n = 0
    for rec in records:  # one pass, few calls: this runs over every rollout when a run opens
        n += 1
        get = rec.get
        reward = get("reward")
        if get("infra_error"):
            infra += 1
        elif type(reward) is float or type(reward) is int:
            if math.isfinite(reward):
                rewards.append(float(reward))
        nte = get("n_tool_errors")
        if type(nte) is int:
            tool_errors += nte
        elif get("tool_errors"):
            tool_errors += len(get("tool_errors"))
        if get("error"):
            errors += 1
        usage = get("usage")
        if usage and isinstance(usage, Mapping):
            tok_n += 1
            tok += tokens(usage)
            p = usage.get("prompt_tokens")
            c = usage.get("completion_tokens")
            ptok += p if type(p) is int else 0
            ctok += c if type(c) is int else 0
        d = get("duration")
        if type(d) is float or type(d) is int:
            durations.append(d)
        timings = get("timings")
        if timings and isinstance(timings, Mapping):
            for ph in PHASES:
                v = _num(timings.get(ph))
                if v is not None:
                    phases[ph].append(v)
    st.rollouts, st.tool_errors, st.infra_errors, st.errors = n, tool_errors, infra, errors
    st.tokens, st.prompt_tokens, st.completion_tokens, st.token_rollouts = tok, ptok, ctok, tok_n
    st.scored = len(rewards)
    st.passed = sum(1 for r in rewards if passed(r))
    st.mean_reward = _mean(rewards)
    st.pass_rate = st.passed / st.scored if st.scored else None
    st.std = sample_std(rewards)
    top = st.scored if ks is None else min(ks, st.scored)
    st.pass_at_k = {k: pass_at_k(st.scored, st.passed, k) for k in range(1, top + 1)}
    st.time = {"total": _mean(durations), **{p: _mean(v) for p, v in phases.items()}}
    st.time_sum = {"total": _sum(durations), **{p: _sum(v) for p, v in phases.items()}}
    return st


def task_stats(records: Iterable[Mapping[str, Any]], *, max_k: int | None = None) -> dict[str, TaskStats]:
    """Per-task stats, keyed by task id in order of first appearance.

    Args:
        records: result records.
        max_k: compute pass@k for k up to this (default: every k the task's rollouts allow).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(str(rec.get("task_id")), []).append(rec)
    return {t: _aggregate(t, rs, max_k) for t, rs in groups.items()}


@dataclass
class RunStats:
    """The whole run: totals over every rollout, plus pass@k averaged over tasks.

    ``overall.pass_at_k[k]`` is the mean over the tasks that have at least ``k`` scored
    rollouts of their pass@k (the usual definition for benchmark reporting); ``ks`` is
    ``1..group_size``.
    """

    overall: TaskStats
    tasks: dict[str, TaskStats]
    ks: list[int]


def run_stats(records: Sequence[Mapping[str, Any]], *, group_size: int | None = None) -> RunStats:
    """Stats of a run. ``group_size`` bounds k (default: the most rollouts of any task)."""
    tasks = task_stats(records, max_k=group_size)
    overall = _aggregate(None, records, 0)
    top = group_size or max((t.scored for t in tasks.values()), default=0)
    ks = list(range(1, top + 1))
    for k in ks:
        vals = [t.pass_at_k[k] for t in tasks.values() if k in t.pass_at_k]
        if vals:
            overall.pass_at_k[k] = math.fsum(vals) / len(vals)
    return RunStats(overall, tasks, ks)


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)


def stats_dict(st: TaskStats) -> dict[str, Any]:
    """The fields ``summary.json`` adds for a task (``per_task.<id>``) or for the run (top
    level) from its :class:`TaskStats`; ``docs/eval.md`` documents each one.

    ``tokens.<kind>.mean`` and ``time.<phase>.mean`` are per rollout that reports them (a
    rollout without usage, a phase that did not run, is left out), ``None`` when none does.
    """
    n = st.token_rollouts
    return {
        "scored": st.scored,
        "passed": st.passed,
        "std": st.std,
        "pass_at_k": {str(k): v for k, v in st.pass_at_k.items()},
        "infra_errors": st.infra_errors,
        "tokens": {
            "rollouts": n,
            **{kind: {"sum": total, "mean": total / n if n else None}
               for kind, total in (("prompt", st.prompt_tokens), ("completion", st.completion_tokens),
                                   ("total", st.tokens))},
        },
        "time": {p: {"mean": _r(st.time.get(p)), "sum": _r(st.time_sum.get(p))} for p in (*PHASES, "total")},
    }
