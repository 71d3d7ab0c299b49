"""Fixtures: test pages served from 127.0.0.1 by a real HTTP server, and a runtime whose browser
tools drive the system Chromium (skipped with the reason if it is missing, unless
HERMES_REQUIRE_BROWSER=1, which CI sets)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import hermes_toolset_browser
from hermes_core import Runtime

# Built-ins plus this distribution only: other plugins installed in the same venv must not
# decide whether these tests run.
os.environ["HERMES_DISABLE_PLUGIN_AUTOLOAD"] = "1"

CHROMIUM = os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium")


class Server:
    """A threaded HTTP server: ``route(path, fn)`` with ``fn(query, headers) -> (status, headers, body)``."""

    def __init__(self) -> None:
        # Chromium fetches /favicon.ico on its own schedule; a 404 there would land in the console
        # log at a random moment (a test counting console messages raced it)
        self.routes: dict[str, Callable[..., tuple[int, dict[str, str], bytes]]] = {
            "/favicon.ico": lambda q, h: (204, {}, b"")}
        self.release = threading.Event()  # hanging handlers wait on this
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                fn = outer.routes.get(parts.path)
                if fn is None:
                    status, headers, body = 404, {"Content-Type": "text/html"}, b"<h1>not found</h1>"
                else:
                    status, headers, body = fn(q, {k.lower(): v for k, v in self.headers.items()})
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def page(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        body = html.encode()
        self.routes[path] = lambda q, h: (200, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}, body)
        return self.base + path

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM):
        return
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-liberation)"
    if os.environ.get("HERMES_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"HERMES_REQUIRE_BROWSER=1 but {reason}")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
async def runtime():
    rt = Runtime(plugins=[hermes_toolset_browser])
    # Generous timeouts: a loaded CI machine must not turn slowness into failures (the tests of
    # timeouts set short ones themselves).
    hermes_toolset_browser.configure(rt, executable=CHROMIUM, navigation_timeout=60, action_timeout=30, launch_timeout=120)
    try:
        yield rt
    finally:
        await hermes_toolset_browser.close_browser(rt)
        await rt.aclose()


@pytest.fixture
async def ctx(runtime):
    async with runtime.rollout(backend="local", toolsets=["browser"]) as c:
        yield c
