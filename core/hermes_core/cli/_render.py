"""Terminal output of ``hermes eval`` / ``run`` / ``batch``: progress, the result table, transcripts.

Progress goes to stderr. On a terminal it is a live rich bar of stable width (done/total,
pass rate, rate, elapsed, ETA). Anywhere else (CI, cluster logs, a file) it is plain lines
with no control codes: one every ``interval`` seconds, one per finished rollout with
``verbose``, and one at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Self

__all__ = ["EvalProgress", "print_table", "transcript_printer"]


def _console(stderr: bool = False, file: IO[str] | None = None) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, file=file, highlight=False)


# ---------------------------------------------------------------------------------- progress


def _clock(seconds: float | None) -> str:
    """``H:MM:SS`` (fixed width below 10 hours); ``-:--:--`` when unknown."""
    if seconds is None:
        return "-:--:--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rate(per_second: float | None) -> str:
    """Rollouts per second or per minute, always 8 characters."""
    if not per_second:
        return "   -/min"
    if per_second >= 1:
        return f"{per_second:6.1f}/s"[-8:]
    return f"{per_second * 60:4.1f}/min"[-8:]


class _Counts:
    """What the progress display reports, updated from the runner's callbacks."""

    def __init__(self) -> None:
        self.planned = 0
        self.skipped = 0
        self.done = 0
        self.scored = 0
        self.passed = 0
        self.tool_errors = 0
        self.errors = 0
        self.started: float | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        self.done += 1
        self.tool_errors += int(record.get("n_tool_errors") or 0)
        self.errors += bool(record.get("error"))
        if record.get("reward") is not None:
            self.scored += 1
            self.passed += bool(record.get("passed"))

    def line(self, now: float, *, compact: bool = False) -> str:
        """``12/40 (30%) · pass 83% · 0.5/s · elapsed 0:00:24 · ETA 0:00:56 · errors 0``: the
        same width all run long; ``compact`` (a narrow terminal): ``12/40  30%  pass  83%  0.5/s
        ETA 0:00:56  err 0``."""
        w = len(str(self.planned))
        finished = self.skipped + self.done
        share = f"{finished / self.planned:4.0%}" if self.planned else "   -"
        rate_so_far = f"{self.passed / self.scored:4.0%}" if self.scored else "   -"
        elapsed = now - self.started if self.started is not None else 0.0
        per_second = self.done / elapsed if self.done and elapsed > 0 else None
        left = self.planned - finished
        eta = left / per_second if per_second else (0.0 if left <= 0 else None)
        if compact:
            return (f"{finished:>{w}}/{self.planned} {share}  pass {rate_so_far}  {_rate(per_second)}  "
                    f"ETA {_clock(eta)}  err {self.errors}")
        return (f"{finished:>{w}}/{self.planned} ({share}) · pass {rate_so_far} · {_rate(per_second)} · "
                f"elapsed {_clock(elapsed)} · ETA {_clock(eta)} · errors {self.errors}")


def rollout_line(record: Mapping[str, Any], counts: _Counts) -> str:
    """One finished rollout: ``done hello-file#0 · reward 1.000 · passed · 1.23s (3/40)``."""
    reward = record.get("reward")
    verdict = ("infra error" if record.get("infra_error") else
               "passed" if record.get("passed") else "failed" if reward is not None else "no reward")
    score = f"reward {reward:.3f}" if isinstance(reward, (int, float)) else "reward -"
    err = record.get("error")
    tail = f" · error: {str(err).splitlines()[0][:120]}" if err else ""
    finished = counts.skipped + counts.done
    return (f"done {record.get('rollout_id')} · {score} · {verdict} · {float(record.get('duration') or 0):.2f}s "
            f"({finished}/{counts.planned}){tail}")


class EvalProgress:
    """Progress of a run on stderr, fed by the runner's ``on_start`` / ``on_result`` callbacks.

    Args:
        description: what runs (an environment name, a prompts file).
        enabled: ``False`` shows nothing (``--quiet``).
        interval: seconds between plain progress lines when stderr is not a terminal; ``0``
            prints only the closing line.
        verbose: one line per finished rollout (plain mode; above the bar on a terminal).
        tty: draw a live bar; default: whether ``stream`` is a terminal.
        stream: where to write (default ``sys.stderr``).
    """

    def __init__(self, description: str, enabled: bool = True, *, interval: float = 10.0, verbose: bool = False,
                 tty: bool | None = None, stream: IO[str] | None = None):
        self.description = description
        self.enabled = enabled
        self.interval = interval
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.counts = _Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None
        self._task: Any = None

    # -- lifecycle

    def __enter__(self) -> Self:
        if self.enabled and self.tty:
            self._progress = self._bar()
            self._task = self._progress.add_task(self.description, total=None)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._progress is not None:
            self._progress.stop()
        elif self.enabled and self.counts.started is not None:
            c = self.counts
            complete = exc[0] is None and c.skipped + c.done >= c.planned
            self._emit(f"{self.description}: {'finished' if complete else 'stopped'} · {c.line(time.monotonic())}")

    # -- the runner's callbacks

    def on_start(self, planned: int, skipped: int) -> None:
        with self._lock:
            self.counts.planned, self.counts.skipped = planned, skipped
            self.counts.started = time.monotonic()
        if self._progress is not None:
            self._progress.update(self._task, total=planned, completed=skipped)
        elif self.enabled and self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._ticker, name="hermes-progress", daemon=True)
            self._thread.start()

    def on_result(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.counts.add(record)
            line = rollout_line(record, self.counts) if self.verbose else None
        if self._progress is not None:
            if line:
                from rich.text import Text

                self._progress.console.print(Text(line))
            self._progress.update(self._task, completed=self.counts.skipped + self.counts.done)
        elif line and self.enabled:
            self._emit(line)

    # -- plain mode

    def _ticker(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit(f"{self.description}: {self.counts.line(time.monotonic())}")

    def _emit(self, line: str) -> None:
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the reader went away: progress is not worth a crash
                pass

    # -- terminal mode

    def _bar(self) -> Any:
        from rich.progress import BarColumn, Progress, ProgressColumn
        from rich.text import Text

        counts, lock = self.counts, self._lock
        console = _console(file=self.stream)
        compact = console.width < 130  # the long form needs ~126 columns; the compact one fits 80
        label_width, bar_width = (12, 10) if compact else (24, 20)

        class Stats(ProgressColumn):
            def render(self, task: Any) -> Text:
                with lock:
                    return Text(counts.line(time.monotonic(), compact=compact))

        label = self.description if len(self.description) <= label_width else self.description[:label_width - 1] + "…"

        class Label(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{label:<{label_width}}", style="bold")

        return Progress(
            Label(),
            BarColumn(bar_width=bar_width),
            Stats(),
            console=console,
            refresh_per_second=4,
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------------------- table


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _count(n: float | None) -> str:
    """``532``, ``1.2k``, ``34k``, ``1.2M``."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n:.0f}"
    for div, unit in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        if n < div * 1000 or unit == "G":
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return str(n)  # pragma: no cover


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.1f}s" if s < 100 else _clock(s)


def _middle(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head):]}"


def _shared_prefix(ids: Sequence[str]) -> int:
    """Length of the prefix every id shares, ending at a separator (``terminal-bench/``)."""
    if len(ids) < 2:
        return 0
    n = len(os.path.commonprefix(list(ids)))
    while n > 0 and ids[0][n - 1] not in "/-_.: ":
        n -= 1
    return n


def short_id(task_id: str, width: int, prefix: int = 0) -> str:
    """A task id in ``width`` characters: a prefix every id shares becomes ``…`` first (the part
    that tells tasks apart is kept), then the middle is cut."""
    if len(task_id) <= width:
        return task_id
    if 0 < prefix < len(task_id):
        rest = task_id[prefix:]
        return "…" + (rest if len(rest) <= width - 1 else _middle(rest, width - 1))
    return _middle(task_id, width)


def shown_ks(ks: Sequence[int], width: int) -> list[int]:
    """The pass@k columns that fit: every k up to 3 (5 from 120 columns), else pass@1, a few
    round ks between, and pass@group_size."""
    budget = 3 if width < 120 else 5
    if len(ks) <= budget:
        return list(ks)
    top = ks[-1]
    between = [k for k in (2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100) if 1 < k < top][: budget - 2]
    return [1, *between, top]


def print_table(summary: Mapping[str, Any], title: str, records: list[dict[str, Any]], *,
                group_size: int | None = None, file: IO[str] | None = None, width: int | None = None) -> None:
    """The closing table: per task rollouts, mean reward, pass@k (unbiased, k up to the group
    size; ``-`` where a task has fewer scored rollouts), mean tokens, errors, mean time; then
    the run's row and a run-level line. Fits the console width (80 columns when not a terminal)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ..rollout import run_stats

    console = _console(file=file)
    if width is not None:
        console.width = width
    width = console.width
    stats = run_stats(records, group_size=group_size)
    scored = stats.overall.scored > 0
    ks = shown_ks(stats.ks, width) if scored else []
    has_tokens = stats.overall.token_rollouts > 0
    # A row separator under the header and above the run's row, nothing else (no vertical lines).
    lines = box.Box("    \n    \n ── \n    \n ── \n    \n    \n    \n")
    columns = ["n", *(["reward"] if scored else []), *(f"pass@{k}" for k in ks),
               "tokens", "tool err", "errors", "time"]
    cell = {"n": 4, "reward": 6, "tokens": 6, "tool err": 8, "errors": 6, "time": 6}
    fixed = sum(cell.get(c, 6) for c in columns) + len(columns)  # one space between columns
    task_width = max(8, min(48, width - fixed - 1))

    table = Table(title=Text(title, style="bold"), title_justify="left", box=lines, padding=0,
                  pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column("task", no_wrap=True, max_width=task_width, overflow="ellipsis")
    for c in columns:
        table.add_column(c, justify="right", no_wrap=True)

    prefix = _shared_prefix(sorted(stats.tasks))

    def row(name: str, t: Any) -> list[str]:
        cells = [short_id(name, task_width, prefix), str(t.rollouts)]
        if scored:
            cells.append(_fmt(t.mean_reward))
            cells += [_fmt(t.pass_at_k.get(k)) for k in ks]
        cells.append(_count(t.mean_tokens))
        cells += [str(t.tool_errors), str(t.errors), _seconds(t.time.get("total"))]
        return cells

    for task_id in sorted(stats.tasks):
        table.add_row(*row(task_id, stats.tasks[task_id]))
    if len(stats.tasks) > 1:
        table.add_section()
        all_row = row("", stats.overall)
        all_row[0] = "all"
        table.add_row(*all_row, style="bold")
    console.print(table)

    o = stats.overall
    parts = [f"{o.rollouts} rollouts of {len(stats.tasks)} tasks"]
    if scored:
        parts.append(f"mean reward {_fmt(o.mean_reward)}")
    parts.append(f"errors {o.errors}")
    if o.infra_errors:
        parts.append(f"infra errors {o.infra_errors}")
    duration = summary.get("duration")
    if isinstance(duration, (int, float)):
        parts.append(f"wall {_seconds(float(duration))}")
    console.print(Text("run: " + " · ".join(parts)))
    tok = f"tokens {_count(o.tokens)} ({_count(o.mean_tokens)} per rollout)" if has_tokens else "tokens -"
    line = tok
    if scored and stats.ks:
        every = "  ".join(f"pass@{k} {_fmt(o.pass_at_k.get(k))}" for k in stats.ks)
        if len(every) + len(tok) + 8 > width:  # every k of the group when the line has room
            every = "  ".join(f"pass@{k} {_fmt(o.pass_at_k.get(k))}" for k in ks)
        line = f"{every} · {tok}"
    console.print(Text("     " + line))
    notes = ["pass@k: unbiased estimate, mean over tasks"] if scored else []
    if scored and len(ks) < len(stats.ks):
        notes[0] += f" (columns {', '.join(map(str, ks))} of 1..{stats.ks[-1]})"
    notes.append("tokens, time: mean per rollout")
    console.print(Text("; ".join(notes), style="dim"))
    shown: set[str] = set()
    for rec in records:
        err = rec.get("error")
        if err and err not in shown and len(shown) < 5:
            shown.add(err)
            line = Text(f"{rec['rollout_id']}", style="red")
            line.append(f": {err}")
            console.print(line, soft_wrap=True)


# ---------------------------------------------------------------------------------- transcript


def transcript_printer(*, full: bool = False, file: IO[str] | None = None) -> Any:
    """The ``hermes view --text`` renderer on stdout, for ``hermes run``'s live transcript."""
    from ..view.text import TranscriptPrinter

    return TranscriptPrinter(_console(file=file), full=full)
