"""HTML of ``hermes view``: jinja2 templates shared by the served pages and the static report."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup

from .loader import Filter, Run, record_tokens
from .stats import PHASES, RunStats, passed
from .transcript import decode_messages, human_size, seconds

__all__ = ["PAGE_SIZE", "SORT_KEYS", "ServerLinks", "sort_rollouts", "StaticLinks", "environment", "render_page", "transcript_context", "write_report"]

PAGE_SIZE = 100
#: Task rows on a served run page (``?tasks=all`` shows every one; the static report shows all).
TASK_ROWS = 200
#: Transcript HTML embedded in a static report, at most (bytes); the rest is left out with a note.
DEFAULT_EMBED_LIMIT = 200 * 1000 * 1000
_SCRIPT_END = re.compile(r"</(script)", re.I)


# --------------------------------------------------------------------------- templates


def _load(name: str) -> str:
    # importlib.resources works from a checkout (editable install) and from a wheel alike.
    return resources.files("hermes_core.view").joinpath("templates", name).read_text(encoding="utf-8")


def _r3(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) else f"{v:.3f}"


def _pct(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.0%}"


def _secs(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    return seconds(v)


def _num(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    return f"{v:,.0f}"


def _signed(v: Any) -> str:
    return "" if not isinstance(v, (int, float)) else f"{v:+.3f}"


def _rclass(v: Any) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return ""
    return "pass" if passed(float(v)) else ("fail" if v <= 0 else "warn")


def _phases(stats: RunStats) -> list[str]:
    return [p for p in PHASES if any(t.time.get(p) is not None for t in stats.tasks.values())]


def _all_tasks(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        for t in run.stats.tasks:
            seen.setdefault(t, None)
    return list(seen)


def _pretty(v: Any) -> str:
    return json.dumps(v, indent=2, ensure_ascii=False, default=str)


def environment() -> jinja2.Environment:
    """The jinja2 environment of the viewer (autoescaped HTML, the viewer's filters)."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters.update(
        r3=_r3, pct=_pct, secs=_secs, num=_num, signed=_signed, rclass=_rclass, phases=_phases,
        all_tasks=_all_tasks, pretty=_pretty, size=human_size, passed=passed, rtokens=record_tokens,
    )
    return env


# --------------------------------------------------------------------------- sorting

#: Rollout list columns the server sorts by (``?sort=reward``; ``-reward`` descending).
SORT_KEYS: dict[str, Any] = {
    "rollout": lambda r: str(r.get("rollout_id")),
    "task": lambda r: str(r.get("task_id")),
    "group": lambda r: r.get("group_index"),
    "reward": lambda r: r.get("reward"),
    "stop": lambda r: str(r.get("stop_reason") or ""),
    "turns": lambda r: r.get("turns"),
    "tool_errors": lambda r: r.get("n_tool_errors"),
    "tokens": lambda r: record_tokens(r) if r.get("usage") else None,
    "time": lambda r: r.get("duration"),
}


def sort_rollouts(rows: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    """Rows sorted by a :data:`SORT_KEYS` column (``-key``: descending); missing values last."""
    key = (sort or "").lstrip("-")
    if key not in SORT_KEYS:
        return rows
    get = SORT_KEYS[key]
    present = [r for r in rows if _sortable(get(r))]
    missing = [r for r in rows if not _sortable(get(r))]
    present.sort(key=get, reverse=(sort or "").startswith("-"))
    return present + missing


def _sortable(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


# --------------------------------------------------------------------------- links


class ServerLinks:
    """URLs of the served view."""

    def home(self) -> str:
        return "/"

    def compare(self) -> str:
        return "/compare"

    def run(self, run: Run, **query: Any) -> str:
        q = {k: v for k, v in query.items() if v not in (None, "", False)}
        return f"/run/{run.index}" + (f"?{urlencode(q)}" if q else "")

    def rollout(self, run: Run, n: int) -> str:
        return f"/run/{run.index}/rollout/{n}"

    def file(self, run: Run, rel: str) -> str:
        return f"/run/{run.index}/file/{quote(rel)}"


class StaticLinks:
    """URLs inside the static report (hash routes) and relative links to the run's files."""

    def __init__(self, report_dir: Path):
        self.report_dir = report_dir

    def home(self) -> str:
        return "#runs"

    def compare(self) -> str:
        return "#compare"

    def run(self, run: Run, **query: Any) -> str:
        q = {k: v for k, v in query.items() if v not in (None, "", False)}
        return f"#run-{run.index}" + (f"?{urlencode(q)}" if q else "")

    def rollout(self, run: Run, n: int) -> str:
        return f"#r-{run.index}-{n}"

    def file(self, run: Run, rel: str) -> str:
        target = run.path / rel
        try:
            return quote(Path(os.path.relpath(target, self.report_dir)).as_posix())
        except ValueError:  # another drive (Windows)
            return target.as_uri()


# --------------------------------------------------------------------------- contexts


def transcript_context(run: Run, n: int) -> dict[str, Any]:
    """Everything the transcript template shows about rollout ``n`` of ``run``."""
    rec = run.records[n]
    traj = run.trajectory(n)
    messages = None
    missing = None
    if traj is None:
        missing = "No trajectory for this rollout in trajectories.jsonl."
    elif isinstance(traj.get("messages"), list):
        messages = decode_messages(traj["messages"])
    else:
        missing = "The trajectory of this rollout holds no `messages` list."
    traj = traj or {}
    timings = rec.get("timings") if isinstance(rec.get("timings"), Mapping) else {}
    errors = []
    for key, label, tb_key in (
        ("verifier_error", "verifier error", "verifier_traceback"),
        ("agent_error", "agent error", "agent_traceback"),
    ):
        if rec.get(key):
            errors.append((label, str(rec[key]), rec.get(tb_key)))
    shown = {e[1] for e in errors}
    if rec.get("error") and str(rec["error"]) not in shown:
        label = "infra error" if rec.get("infra_error") else "error"
        errors.append((label, str(rec["error"]), rec.get("traceback")))
    tools = []
    for spec in traj.get("tools") or []:
        if isinstance(spec, Mapping):
            fn = spec.get("function") if isinstance(spec.get("function"), Mapping) else spec
            tools.append({"name": str(fn.get("name") or "?"), "schema": spec})
    sampling = traj.get("sampling") or (run.info.get("sampling") if isinstance(run.info.get("sampling"), Mapping) else None)
    return {
        "run": run,
        "record": rec,
        "messages": messages,
        "missing": missing,
        "timings": [(p, timings.get(p)) for p in PHASES if isinstance(timings.get(p), (int, float))],
        "errors": errors,
        "tools": tools,
        "sampling": sampling,
        "artifacts": run.artifacts(rec),
        "prev": n - 1 if n > 0 else None,
        "next": n + 1 if n + 1 < len(run.records) else None,
    }


def _common(runs: Sequence[Run], links: Any, mode: str, host_is_loopback: bool = True) -> dict[str, Any]:
    return {
        "runs": runs, "links": links, "mode": mode, "host_is_loopback": host_is_loopback,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def render_page(
    env: jinja2.Environment,
    runs: Sequence[Run],
    view: str,
    *,
    run: Run | None = None,
    flt: Filter | None = None,
    page: int = 0,
    n: int | None = None,
    sort: str | None = None,
    all_tasks: bool = False,
    host_is_loopback: bool = True,
) -> str:
    """One served page: ``runs``, ``run`` (tasks + a page of rollouts), ``rollout``, ``compare``."""
    links = ServerLinks()
    ctx = _common(runs, links, "server", host_is_loopback)
    ctx["view"] = view
    if view == "runs":
        ctx["page_title"] = "runs"
    elif view == "compare":
        ctx["page_title"] = "compare runs"
    elif view == "run" and run is not None:
        flt = flt or Filter()
        rows = sort_rollouts(run.rollouts(flt), sort)
        pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        start = page * PAGE_SIZE
        query = {"failed": flt.failed and 1, "infra": flt.infra and 1, "task": flt.task,
                 "min": flt.min_reward, "max": flt.max_reward, "tasks": "all" if all_tasks else None}
        current = sort if (sort or "").lstrip("-") in SORT_KEYS else None
        sort_links = {key: links.run(run, **query, sort=f"-{key}" if current == key else key) for key in SORT_KEYS}
        query["sort"] = current
        ctx["task_limit"] = None if all_tasks else TASK_ROWS
        ctx["all_tasks_link"] = links.run(run, **{**query, "tasks": "all"})
        ctx.update(
            run=run, flt=flt, rows=rows[start:start + PAGE_SIZE], page_title=run.title, sort_links=sort_links, sort=current,
            pager={
                "start": start, "end": min(len(rows), start + PAGE_SIZE), "total": len(rows), "all": len(run.records),
                "prev": links.run(run, **query, page=page - 1) if page > 0 else None,
                "next": links.run(run, **query, page=page + 1) if page < pages - 1 else None,
            },
        )
    elif view == "rollout" and run is not None and n is not None:
        ctx["t"] = transcript_context(run, n)
        ctx["page_title"] = run.records[n]["rollout_id"]
    else:
        raise ValueError(f"unknown view {view!r}")
    return env.get_template("page.html").render(ctx)


def write_report(
    runs: Sequence[Run], out: str | Path, *, embed_limit: int = DEFAULT_EMBED_LIMIT
) -> dict[str, int]:
    """Write the self-contained static report (inline CSS and JS, no network, opens from disk).

    Every rollout row is in the file; each transcript is pre-rendered into an inert
    ``<script type="text/html">`` block that the page turns into DOM only when it is opened,
    so a large run stays responsive. Transcripts past ``embed_limit`` bytes are left out (the
    page says so and points to ``hermes view RUN_DIR``).

    Returns:
        ``{"rollouts": ..., "embedded": ..., "omitted": ..., "bytes": ...}``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = environment()
    links = StaticLinks(out.resolve().parent)
    macros = env.get_template("macros.html").make_module(_common(runs, links, "static"))
    counts = {"rollouts": sum(len(r.records) for r in runs), "embedded": 0, "omitted": 0, "bytes": 0}
    omitted = {run.index: 0 for run in runs}
    budget = [embed_limit]

    def transcripts() -> Iterator[tuple[str, Markup]]:
        for run in runs:
            for n in range(len(run.records)):
                if budget[0] <= 0:
                    omitted[run.index] += 1
                    counts["omitted"] += 1
                    continue
                html = str(macros.transcript(transcript_context(run, n)))
                html = _SCRIPT_END.sub(r"<\\/\1", html)
                budget[0] -= len(html)
                counts["embedded"] += 1
                yield f"{run.index}-{n}", Markup(html)

    ctx = _common(runs, links, "static")
    ctx.update(page_title=runs[0].title if len(runs) == 1 else f"{len(runs)} runs", no_filter=Filter(),
               omitted=omitted, transcripts=transcripts())
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        _dump(env.get_template("report.html").generate(ctx), f)
    os.replace(tmp, out)
    counts["bytes"] = out.stat().st_size
    return counts


def _dump(chunks: Iterator[str], f: IO[str]) -> None:
    buf: list[str] = []
    size = 0
    for chunk in chunks:
        buf.append(chunk)
        size += len(chunk)
        if size > 1 << 20:
            f.write("".join(buf))
            buf, size = [], 0
    f.write("".join(buf))
