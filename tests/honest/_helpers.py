"""Shared pieces of the issue-10 tests: the ``hermes`` CLI in a subprocess, and an
OpenAI-compatible server on 127.0.0.1 that answers only under ``/v1`` (as real servers do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERMES = [sys.executable, "-c", "import sys; from hermes_core.cli import main; sys.exit(main())"]


def hermes(*argv: str, timeout: float = 120, cwd: str | Path | None = None, env: dict[str, str] | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``hermes ARGV...`` in a subprocess; bytes out."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*HERMES, *argv], capture_output=True, timeout=timeout, cwd=cwd, env=full_env,
                          input=input if input is not None else b"", check=False)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The stderr of a failed command, checked to be one line and no traceback."""
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class V1Server:
    """Chat completions under ``/v1`` only (``/v1/models``, ``/v1/chat/completions``); any other
    path is a 404, like vLLM or llama-cpp-python. ``script`` steps are assistant messages
    (``{"message": {...}, "delay": s}``) or ``{"status": N, "error": "text"}``; when the script
    runs out, ``default`` is used (a final answer unless given)."""

    def __init__(self, script: list[dict[str, Any]] | None = None, default: dict[str, Any] | None = None,
                 models_status: int = 200):
        self.script = list(script or [])
        self.default = default or {"message": {"content": "done"}}
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.stopping = threading.Event()
        self.models_status = models_status
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                if self.path.rstrip("/") == "/v1/models" and server.models_status != 200:
                    return self._send(server.models_status, {"error": {"message": "no models here", "type": "t"}})
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}]})
                self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                server.paths.append(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"detail": "Not Found"})
                server.requests.append(body)
                step = server.script.pop(0) if server.script else server.default
                if step.get("delay"):
                    server.stopping.wait(step["delay"])
                if "status" in step:
                    return self._send(step["status"], {"error": {"message": step.get("error", "boom"), "type": "test"}})
                msg = {"role": "assistant", "content": None, **step["message"]}
                self._send(200, {
                    "id": f"c{len(server.requests)}", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": msg,
                                 "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def __enter__(self) -> V1Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def tool_call(name: str, args: dict[str, Any], id: str) -> dict[str, Any]:
    return {"message": {"content": None, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}}


def interrupt_once_seen(proc: subprocess.Popen, marker: bytes, timeout: float = 60) -> tuple[bytes, bytes]:
    """Read ``proc``'s stdout until ``marker`` shows (or ``timeout`` passes, or it exits), then
    send it SIGINT (Ctrl-C) and collect the rest; returns (all stdout, stderr)."""
    import os
    import signal
    import time

    seen = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while marker not in seen and time.monotonic() < deadline and proc.poll() is None:
        chunk = proc.stdout.read()
        if chunk:
            seen += chunk
        else:
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=timeout)
    return seen + (rest or b""), err
