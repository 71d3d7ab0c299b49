"""Rich output of ``hermes eval`` / ``run`` / ``batch``: progress bar, result table, conversation."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EvalProgress", "print_table", "print_conversation", "print_message"]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class EvalProgress:
    """A progress bar on stderr fed by the runner's ``on_start`` / ``on_result`` callbacks."""

    def __init__(self, description: str, enabled: bool = True):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("mean reward {task.fields[mean]}  pass {task.fields[pass_rate]}  tool errors {task.fields[tool_errors]}"),
            TimeElapsedColumn(),
            console=_console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=None, mean="-", pass_rate="-", tool_errors=0)
        self.rewards: list[float] = []
        self.passed = 0
        self.tool_errors = 0

    def __enter__(self) -> EvalProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, planned: int, skipped: int) -> None:
        self.progress.update(self.task, total=planned, completed=skipped)

    def on_result(self, record: dict[str, Any]) -> None:
        self.tool_errors += int(record.get("n_tool_errors", 0))
        if record.get("reward") is not None:
            self.rewards.append(float(record["reward"]))
            self.passed += bool(record.get("passed"))
        mean = f"{sum(self.rewards) / len(self.rewards):.3f}" if self.rewards else "-"
        rate = f"{self.passed / len(self.rewards):.0%}" if self.rewards else "-"
        self.progress.update(self.task, advance=1, mean=mean, pass_rate=rate, tool_errors=self.tool_errors)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(summary: dict[str, Any], title: str, records: list[dict[str, Any]]) -> None:
    """The final table: per task reward, pass rate, tool errors, time; then the overall row."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("task", no_wrap=True)
    for col in ("rollouts", "reward", "pass", "tool errors", "errors", "time"):
        table.add_column(col, justify="right")
    for task_id, t in sorted(summary["per_task"].items()):
        table.add_row(
            task_id, str(t["rollouts"]), _fmt(t["mean_reward"]), _fmt(t["pass_rate"], ".0%"),
            str(t["tool_errors"]), str(t["errors"]), f"{t['mean_time']:.2f}s",
        )
    table.add_section()
    total_time = sum(t["mean_time"] * t["rollouts"] for t in summary["per_task"].values())
    table.add_row(
        "[bold]all", str(summary["rollouts"]), f"[bold]{_fmt(summary['mean_reward'])}",
        f"[bold]{_fmt(summary['pass_rate'], '.0%')}", str(summary["tool_errors"]), str(summary["errors"]),
        f"{total_time / summary['rollouts']:.2f}s" if summary["rollouts"] else "-",
    )
    console = _console()
    console.print(table)
    shown: set[str] = set()
    for rec in records:
        err = rec.get("error")
        if err and err not in shown and len(shown) < 5:
            shown.add(err)
            console.print(f"[red]{rec['rollout_id']}[/red]: {err}", markup=True, soft_wrap=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


def print_conversation(messages: list[dict[str, Any]], *, limit: int = 2000) -> None:
    """Print a conversation: one block per message, tool calls and results shown compactly."""
    console = _console()
    for m in messages:
        print_message(m, limit=limit, console=console)


def print_message(m: dict[str, Any], *, limit: int = 2000, console: Any = None) -> None:
    """Print one message of a conversation (``hermes run`` prints each as it happens)."""
    from rich.markup import escape

    console = console or _console()
    style = {"system": "dim", "user": "bold cyan", "assistant": "bold green", "tool": "yellow"}
    role = m.get("role", "?")
    console.print(f"[{style.get(role, 'bold')}]── {role}" + (f" ({m.get('name')})" if role == "tool" else ""))
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if reasoning:
        console.print(f"[dim italic]{escape(_clip(str(reasoning), limit))}")
    content = m.get("content")
    if content:
        text = content if isinstance(content, str) else json.dumps(content)
        console.print(escape(_clip(text, limit)), soft_wrap=True)
    for call in m.get("tool_calls") or []:
        fn = call.get("function", {})
        console.print(f"[magenta]→ {escape(fn.get('name', ''))}[/magenta]({escape(_clip(fn.get('arguments') or '', limit))})")
    console.file.flush()
