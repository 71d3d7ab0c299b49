"""Fixtures: a real HTTP server on 127.0.0.1 that records every request, and a runtime with the
web tools loaded (allow-listed for that server)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import hermes_toolset_web
from hermes_core import Runtime

Reply = tuple[int, dict[str, str], "bytes | Iterable[bytes]"]


class Recorded:
    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes):
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.body = body


class Server:
    """ThreadingHTTPServer with a route table: ``server.route("/p", fn)``, ``fn(req) -> Reply``."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Callable[[Recorded], Reply]] = {}
        self.requests: list[Recorded] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                req = Recorded(self, self.rfile.read(n) if n else b"")
                outer.requests.append(req)
                fn = outer.routes.get(req.path)
                status, headers, body = fn(req) if fn else (404, {"Content-Type": "text/plain"}, b"not found")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                try:
                    if isinstance(body, bytes):
                        if "Content-Length" not in headers:
                            self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:  # streamed: no length, connection closes at the end
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for chunk in body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, path: str, fn: Callable[[Recorded], Reply] | Reply) -> str:
        self.routes[path] = fn if callable(fn) else (lambda req, r=fn: r)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def trickle(total_seconds: float, step: float = 0.2) -> Iterable[bytes]:
    """A body that arrives one small chunk every ``step`` seconds (a slow server)."""
    yield b"<html><body>"
    end = time.monotonic() + total_seconds
    while time.monotonic() < end:
        time.sleep(step)
        yield b"<p>x</p>"


@pytest.fixture(name="trickle")
def trickle_fixture():
    return trickle


@pytest.fixture
def make_server():
    """``make_server(host="127.0.0.1")``: more servers (another port = another origin)."""
    made: list[Server] = []

    def make(host: str = "127.0.0.1") -> Server:
        made.append(Server(host))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


# Built-ins plus this distribution only: other engineers' plugins installed in the same venv
# must not decide whether these tests run.
os.environ["HERMES_DISABLE_PLUGIN_AUTOLOAD"] = "1"


@pytest.fixture
async def runtime():
    rt = Runtime(plugins=[hermes_toolset_web])
    hermes_toolset_web.configure(rt, allow_hosts=["127.0.0.1"])
    async with rt:
        yield rt


@pytest.fixture
async def ctx(runtime):
    async with runtime.rollout(backend="local", toolsets=["web"]) as c:
        yield c
