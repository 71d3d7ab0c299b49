"""A rollout's transcript in the terminal (``hermes view RUN_DIR --rollout ID --text``), with rich."""

from __future__ import annotations

from typing import IO, Any

from .html import transcript_context
from .loader import Run
from .stats import passed
from .transcript import Block, clean, human_size

__all__ = ["print_rollout"]

#: Lines of a folded block shown in the terminal (head and tail).
FOLD_SHOW = 12


def _fmt(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.3f}"


def print_rollout(run: Run, n: int, *, file: IO[str] | None = None, width: int | None = None, full: bool = False) -> None:
    """Print rollout ``n`` of ``run``: header (reward, scores, errors, timings), then each message.

    Reasoning is labelled and dimmed; tool results are decoded (text as text, JSON pretty);
    long blocks are folded to their head and tail with their size unless ``full``.
    """
    from rich.console import Console
    from rich.markup import escape as _escape
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    def escape(text: str) -> str:  # markup-escaped, control characters neutralised (hostile output)
        return _escape(clean(text))

    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    t = transcript_context(run, n)
    rec = t["record"]
    reward = rec.get("reward")
    verdict = ("[yellow]infra error[/]" if rec.get("infra_error") else
               "[green]passed[/]" if passed(reward) else "[red]failed[/]" if reward is not None else "no reward")
    console.print(f"[bold]{escape(rec['rollout_id'])}[/] · task {escape(str(rec.get('task_id')))} · reward "
                  f"{_fmt(reward)} · {verdict}")
    if rec.get("scores"):
        console.print("scores: " + ", ".join(f"{escape(str(k))} {_fmt(v)}" for k, v in rec["scores"].items()))
    timing = " · ".join(f"{p} {v:.2f}s" for p, v in t["timings"])
    usage = rec.get("usage") or {}
    console.print(
        f"stop {escape(str(rec.get('stop_reason')))} · turns {rec.get('turns')} · tool errors {rec.get('n_tool_errors', 0)} · "
        f"tokens {usage.get('total_tokens', '-')} · {rec.get('duration', 0) or 0:.2f}s" + (f" ({timing})" if timing else ""),
        style="dim",
    )
    for label, text, tb in t["errors"]:
        console.print(f"[bold red]{escape(label)}:[/] {escape(text)}")
        if tb:
            console.print(Text(clean(str(tb)), style="red"))
    if t["messages"] is None:
        console.print(f"[yellow]{escape(t['missing'] or 'no trajectory')}")
        return

    def block(b: Block, indent: str = "") -> None:
        if b.kind == "image":
            console.print(f"{indent}[cyan][image {escape(b.label or '')} · {human_size(b.size)}][/]")
            return
        if b.kind == "error":
            console.print(Text(f"{indent}✗ {b.text}", style="bold red"))
            return
        text = b.text
        if b.folded and not full:
            lines = text.splitlines()
            if len(lines) > 2 * FOLD_SHOW:
                text = "\n".join(lines[:FOLD_SHOW] + [f"… [{len(lines) - 2 * FOLD_SHOW} more lines; {b.summary}] …"]
                                 + lines[-FOLD_SHOW:])
            elif len(text) > 4000:
                text = f"{text[:2000]}\n… [{b.summary}] …\n{text[-1500:]}"
        if b.label:
            console.print(f"{indent}[dim]{escape(b.label)}:[/]")
        if b.kind == "json":
            console.print(Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True))
        else:
            console.print(Text(text), soft_wrap=True)

    role_style = {"system": "dim", "user": "bold cyan", "assistant": "bold green", "tool": "yellow"}
    for m in t["messages"]:
        head = f"── {m.role}"
        if m.role == "tool":
            head += f" · {clean(m.name or '?')}"
            if m.exit_code is not None:
                head += f" · exit {m.exit_code}"
            if m.is_error:
                head += " · TOOL ERROR"
        console.print(Text(head, style="bold red" if m.is_error else role_style.get(m.role, "bold")))
        if m.reasoning is not None:
            r = m.reasoning
            body = r.text if full or len(r.text) <= 3000 else f"{r.text[:3000]}… [{human_size(r.size, 'chars')} of reasoning]"
            console.print(Panel(Text(body, style="italic"), title=f"reasoning · {human_size(r.size, 'chars')}",
                                title_align="left", border_style="magenta", expand=True))
        for b in m.blocks:
            block(b)
        for c in m.tool_calls:
            console.print(Text(f"→ {clean(c.name)}", style="bold magenta"))
            for b in c.arguments:
                block(b, "  ")
