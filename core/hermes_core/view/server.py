"""The local server of ``hermes view``: HTML pages and JSON endpoints over a stdlib HTTP server.

Pages: ``/`` (runs), ``/run/<i>`` (tasks + a page of rollouts; ``?failed=1&infra=1&task=T&min=R&max=R&page=P``),
``/run/<i>/rollout/<n>`` (one transcript), ``/compare``, ``/run/<i>/file/<path>`` (a file of the run).
``&sort=KEY`` (``-KEY`` descending) sorts the rollout list: rollout, task, group, reward, stop, turns,
tool_errors, tokens, time.
JSON: ``/api/runs``, ``/api/run/<i>``, ``/api/run/<i>/rollouts`` (same filters and sort, ``offset``, ``limit``),
``/api/run/<i>/rollout/<n>`` (record + trajectory).

It binds ``127.0.0.1`` by default, and when bound to loopback it answers only requests whose
``Host`` names loopback (a web page elsewhere cannot read it through DNS rebinding).
"""

from __future__ import annotations

import json
import mimetypes
import re
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .html import PAGE_SIZE, environment, render_page, sort_rollouts
from .loader import Filter, Run

__all__ = ["ViewServer", "is_loopback"]

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_NAMES or host.startswith("127.")


class ViewServer(ThreadingHTTPServer):
    """Serves ``runs``. ``serve_forever()`` in the caller's thread, or :meth:`start` in a thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, runs: Sequence[Run], host: str = "127.0.0.1", port: int = 0):
        self.runs = list(runs)
        self.env = environment()
        self.loopback = is_loopback(host)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="hermes-view", daemon=True)
        t.start()
        return t


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if k != "_n"}
    out["n"] = rec.get("_n")
    return out


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per error only
        pass

    # ------------------------------------------------------------------ responses

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, text: str, status: int = 200) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

    def _json(self, value: Any, status: int = 200) -> None:
        body = json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str, api: bool) -> None:
        if api:
            self._json({"error": message}, status)
        else:
            self._html(f"<!doctype html><meta charset=utf-8><title>{status}</title><p>{_esc(message)}</p>"
                       f"<p><a href='/'>runs</a></p>", status)

    # ------------------------------------------------------------------ routing

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        api = path.startswith("/api/")
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0] if not (self.headers.get("Host") or "").startswith("[") \
            else (self.headers.get("Host") or "").split("]")[0] + "]"
        if self.server.loopback and host and not is_loopback(host):
            return self._error(HTTPStatus.FORBIDDEN, f"host {host!r} is not loopback", api)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            self._route(path, query, api)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bad line in a run must not take the server down
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}", api)

    def _run(self, i: str) -> Run | None:
        n = int(i)
        return self.server.runs[n] if n < len(self.server.runs) else None

    def _route(self, path: str, query: dict[str, str], api: bool) -> None:
        runs, env = self.server.runs, self.server.env
        loop = self.server.loopback
        if path in ("/", "/index.html", "/compare", "/api/runs"):
            for r in runs:
                r.refresh()  # a run still in progress: show what it wrote since
        if path in ("/", "/index.html"):
            return self._html(render_page(env, runs, "runs", host_is_loopback=loop))
        if path == "/compare":
            return self._html(render_page(env, runs, "compare", host_is_loopback=loop))
        if path == "/api/runs":
            return self._json([_run_json(r) for r in runs])
        m = re.fullmatch(r"(/api)?/run/(\d+)(/.*)?", path)
        run = self._run(m.group(2)) if m else None
        if m is None or run is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no page {path}", api)
        rest = m.group(3) or ""
        run.refresh()
        if rest == "" and not api:
            return self._html(render_page(env, runs, "run", run=run, flt=Filter.from_query(query),
                                          page=_int(query.get("page"), 0), sort=query.get("sort"),
                                          all_tasks=query.get("tasks") == "all", host_is_loopback=loop))
        if rest == "" and api:
            return self._json({**_run_json(run), "tasks": {k: t.to_dict() for k, t in run.stats.tasks.items()}})
        if rest == "/rollouts" and api:
            rows = sort_rollouts(run.rollouts(Filter.from_query(query)), query.get("sort"))
            offset = max(0, _int(query.get("offset"), 0))
            limit = min(1000, max(1, _int(query.get("limit"), PAGE_SIZE)))
            return self._json({"total": len(rows), "offset": offset,
                               "rollouts": [_clean(r) for r in rows[offset:offset + limit]]})
        mr = re.fullmatch(r"/rollout/(\d+)", rest)
        if mr:
            n = int(mr.group(1))
            if run.record(n) is None:
                return self._error(HTTPStatus.NOT_FOUND, f"run {run.index} has no rollout {n}", api)
            if api:
                return self._json({"record": _clean(run.records[n]), "trajectory": run.trajectory(n)})
            return self._html(render_page(env, runs, "rollout", run=run, n=n, host_is_loopback=loop))
        mf = re.fullmatch(r"/file/(.+)", rest)
        if mf and not api:
            return self._file(run, unquote(mf.group(1)))
        return self._error(HTTPStatus.NOT_FOUND, f"no page {path}", api)

    def _file(self, run: Run, rel: str) -> None:
        p = run.safe_path(rel)
        if p is None or not p.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"no file {rel!r} in {run.name}", False)
        ctype = mimetypes.guess_type(p.name)[0] or "text/plain"
        if p.suffix in (".jsonl", ".log", ".txt", ".py", ".sh", ".yaml", ".yml", ".md", ".json"):
            ctype = ("application/json" if p.suffix == ".json" else "text/plain") + "; charset=utf-8"
        size = p.stat().st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "sandbox")
        self.end_headers()
        if self.command == "HEAD":
            return
        with p.open("rb") as f:
            while chunk := f.read(1 << 16):
                self.wfile.write(chunk)


def _int(v: str | None, default: int) -> int:
    try:
        return int(v) if v not in (None, "") else default
    except ValueError:
        return default


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "index": run.index, "name": run.name, "path": str(run.path), "title": run.title, "run": run.info,
        "status": run.summary.get("status"), "ks": run.stats.ks, "overall": run.stats.overall.to_dict(),
        "bad_lines": run.bad_lines,
    }
