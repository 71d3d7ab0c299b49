"""Transcripts in the terminal, with rich: one renderer for ``hermes view RUN_DIR --rollout ID
--text`` (a finished rollout) and ``hermes run`` (each message as it happens).

Reasoning is labelled and dimmed; tool calls are shown as ``name(key=value, ...)`` with long
text arguments (commands, file content) as labelled blocks below; tool results are decoded
(an ``output`` / ``stdout`` field as text, the exit code on the header line, other JSON
pretty); long blocks are folded to their head and tail with their size unless ``full``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from .stats import passed
from .transcript import (
    _TEXT_KEYS,
    Block,
    Message,
    ToolCall,
    clean,
    decode_message,
    human_size,
    seconds,
    text_block,
)

if TYPE_CHECKING:
    from .loader import Run

__all__ = ["TranscriptPrinter", "print_rollout"]

#: Lines of a folded block shown in the terminal (head and tail).
FOLD_SHOW = 12
#: Reasoning longer than this (characters) is cut unless ``full``.
REASONING_SHOW = 3000
#: An argument shown inline in ``name(key=value)`` at most this long (as JSON); longer ones below.
INLINE_ARG = 60

_ROLE_STYLE = {"system": "dim", "user": "bold cyan", "assistant": "bold green", "tool": "yellow"}


def _fmt(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.3f}"


class TranscriptPrinter:
    """Prints chat messages to a rich console, one at a time.

    Args:
        console: a ``rich.console.Console`` (colours and control codes only on a terminal).
        full: never fold long output.
    """

    def __init__(self, console: Any, *, full: bool = False):
        self.console = console
        self.full = full
        self._names: dict[str, str] = {}
        self._index = 0

    def print(self, message: Mapping[str, Any]) -> None:
        """Decode and print one raw (OpenAI-format) message."""
        self.show(decode_message(message, self._index, self._names))
        self._index += 1

    def show(self, m: Message) -> None:
        """Print one decoded message."""
        from rich.panel import Panel
        from rich.text import Text

        console = self.console
        head = f"── {m.role}"
        if m.role == "tool":
            head += f" · {clean(m.name or '?')}"
            if m.exit_code is not None:
                head += f" · exit {m.exit_code}"
            if m.is_error:
                head += " · TOOL ERROR"
        console.print(Text(head, style="bold red" if m.is_error else _ROLE_STYLE.get(m.role, "bold")))
        if m.reasoning is not None:
            r = m.reasoning
            body = r.text
            if not self.full and len(body) > REASONING_SHOW:
                body = f"{body[:REASONING_SHOW]}… [{human_size(r.size, 'chars')} of reasoning]"
            console.print(Panel(Text(body, style="dim italic"), title=f"reasoning · {human_size(r.size, 'chars')}",
                                title_align="left", border_style="dim magenta", expand=True))
        for b in m.blocks:
            self.block(b)
        for c in m.tool_calls:
            self.call(c)
        console.file.flush()

    def call(self, c: ToolCall) -> None:
        """``→ name(key=value, ...)``, then the arguments too long for that line."""
        from rich.text import Text

        if not isinstance(c.raw, dict):
            self.console.print(Text(f"→ {clean(c.name)}", style="bold magenta"))
            for b in c.arguments:
                self.block(b, "  ")
            return
        inline: list[str] = []
        below: list[Block] = []
        for key, value in c.raw.items():
            k = clean(str(key))
            if isinstance(value, str) and (key in _TEXT_KEYS or "\n" in value or len(value) > INLINE_ARG):
                below.append(text_block(value, label=k))
                continue
            compact = json.dumps(value, ensure_ascii=False, default=str)
            if len(compact) <= INLINE_ARG and "\\" not in compact:
                inline.append(f"{k}={clean(compact)}")
            else:
                below.append(text_block(json.dumps(value, indent=2, ensure_ascii=False, default=str), label=k, kind="json"))
        line = Text(f"→ {clean(c.name)}", style="bold magenta")
        line.append(f"({', '.join(inline)})", style="magenta")
        self.console.print(line, soft_wrap=True)
        for b in below:
            self.block(b, "  ")

    def block(self, b: Block, indent: str = "") -> None:
        """One content block: text as text, JSON pretty, an image as its size, folded when long."""
        from rich.markup import escape
        from rich.text import Text

        console = self.console
        if b.kind == "image":
            console.print(f"{indent}[cyan][image {escape(b.label or '')} · {human_size(b.size)}][/]")
            return
        if b.kind == "error":
            console.print(Text(f"{indent}✗ {b.text}", style="bold red"))
            return
        text = b.text
        if b.folded and not self.full:
            lines = text.splitlines()
            if len(lines) > 2 * FOLD_SHOW:
                text = "\n".join(lines[:FOLD_SHOW] + [f"… [{len(lines) - 2 * FOLD_SHOW} more lines; {b.summary}] …"]
                                 + lines[-FOLD_SHOW:])
            elif len(text) > 4000:
                text = f"{text[:2000]}\n… [{b.summary}] …\n{text[-1500:]}"
        if b.kind != "json" and b.label and "\n" not in text.rstrip("\n"):
            line = Text(f"{indent}{b.label}: ", style="dim")
            line.append(text.rstrip("\n"))
            console.print(line, soft_wrap=True)
            return
        if b.label:
            console.print(Text(f"{indent}{b.label}:", style="dim"))
        text = text.removesuffix("\n")  # the block ends the line anyway
        body = Text("\n".join(indent + line for line in text.split("\n")) if indent else text)
        if b.kind == "json":
            from rich.highlighter import JSONHighlighter

            JSONHighlighter().highlight(body)
        console.print(body, soft_wrap=True)


def print_rollout(run: Run, n: int, *, file: IO[str] | None = None, width: int | None = None, full: bool = False) -> None:
    """Print rollout ``n`` of ``run``: header (reward, scores, errors, timings), then each message."""
    from rich.console import Console
    from rich.markup import escape as _escape
    from rich.text import Text

    from .html import transcript_context

    def escape(text: str) -> str:  # markup-escaped, control characters neutralised (hostile output)
        return _escape(clean(text))

    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    t = transcript_context(run, n)
    rec = t["record"]
    reward = rec.get("reward")
    verdict = ("[yellow]infra error[/]" if rec.get("infra_error") else
               "[yellow]interrupted[/]" if rec.get("interrupted") else
               "[green]passed[/]" if passed(reward) else "[red]failed[/]" if reward is not None else "no reward")
    console.print(f"[bold]{escape(rec['rollout_id'])}[/] · task {escape(str(rec.get('task_id')))} · reward "
                  f"{_fmt(reward)} · {verdict}")
    if rec.get("scores"):
        console.print("scores: " + ", ".join(f"{escape(str(k))} {_fmt(v)}" for k, v in rec["scores"].items()))
    timing = " · ".join(f"{p} {seconds(v)}" for p, v in t["timings"])
    usage = rec.get("usage") or {}
    console.print(
        f"stop {escape(str(rec.get('stop_reason')))} · turns {rec.get('turns')} · tool errors {rec.get('n_tool_errors', 0)} · "
        f"tokens {usage.get('total_tokens', '-')} · {seconds(rec.get('duration', 0) or 0)}" + (f" ({timing})" if timing else ""),
        style="dim",
    )
    for label, text, tb in t["errors"]:
        console.print(f"[bold red]{escape(label)}:[/] {escape(text)}")
        if tb:
            console.print(Text(clean(str(tb)), style="red"))
    if t["messages"] is None:
        console.print(f"[yellow]{escape(t['missing'] or 'no trajectory')}")
        return
    printer = TranscriptPrinter(console, full=full)
    for m in t["messages"]:
        printer.show(m)
