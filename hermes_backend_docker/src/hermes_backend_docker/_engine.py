"""Talking to the engine: connecting, error translation, threads, and hijacked exec streams.

The ``docker`` SDK is synchronous. Every call into it runs on a thread of its own (never on the
event loop, and never on asyncio's small default executor, which a few long-running streams
would exhaust and so stall every other rollout in the process). The SDK is imported lazily so
that loading the plugin costs nothing until a sandbox is made.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from hermes_core.errors import SandboxClosedError, SandboxError

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "ContainerGoneError",
    "EngineUnavailableError",
    "ExecStream",
    "ImageNotFoundError",
    "connect",
    "engine_url",
    "exit_code",
    "in_thread",
    "translate",
]

T = TypeVar("T")

#: Bytes asked for per read of a stream.
CHUNK = 1 << 16
#: How to start an engine, for error messages.
START_HINT = (
    "Start a Docker-API engine and point DOCKER_HOST at it, e.g. "
    "`dockerd --host unix:///tmp/dockerd.sock &` then `export DOCKER_HOST=unix:///tmp/dockerd.sock` "
    "(hermes-core's `scripts/docker-env.sh start` does exactly this), or with podman "
    "`podman system service --time=0 unix:///tmp/podman.sock &` and "
    "`export DOCKER_HOST=unix:///tmp/podman.sock`."
)


class EngineUnavailableError(SandboxError):
    """No Docker-API engine answers at the configured endpoint."""


class ImageNotFoundError(SandboxError):
    """The sandbox image is absent from the engine and the pull policy could not supply it."""


class ContainerGoneError(SandboxClosedError):
    """The sandbox's container was stopped or removed outside hermes."""


def engine_url(docker_host: str | None = None) -> str:
    """The endpoint a client will use, with where it came from (for messages)."""
    if docker_host:
        return f"{docker_host} (option docker_host)"
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
    return "the default socket unix:///var/run/docker.sock (DOCKER_HOST is not set)"


def connect(docker_host: str | None = None, *, timeout: float = 120) -> APIClient:
    """A low-level client for the engine at ``docker_host`` (default: the environment's).

    Blocking: it asks the engine for its API version.

    Raises:
        EngineUnavailableError: nothing answers there (the message says how to start one).
    """
    import docker
    from docker.utils import kwargs_from_env

    kwargs = kwargs_from_env()
    if docker_host:
        kwargs["base_url"] = docker_host
    try:
        # "auto": engines speak different API versions (Debian's 20.10 stops at 1.41).
        return docker.APIClient(version="auto", timeout=timeout, **kwargs)
    except docker.errors.DockerException as e:
        raise EngineUnavailableError(
            f"cannot reach a Docker engine at {engine_url(docker_host)}: {_reason(e)}. {START_HINT}"
        ) from None


def _reason(e: BaseException) -> str:
    text = str(e)
    for marker in ("Connection refused", "No such file or directory", "Permission denied"):
        if marker in text:
            return marker.lower()
    return text if len(text) < 300 else text[:300] + "..."


def translate(e: BaseException, *, what: str, container: str, docker_host: str | None) -> BaseException:
    """Turn an SDK error into the hermes error a user can act on (or return it unchanged)."""
    import docker.errors
    import requests.exceptions

    if isinstance(e, docker.errors.APIError):
        text = str(e.explanation or e)
        if e.status_code == 404 and "no such container" in text.lower():
            return ContainerGoneError(
                f"{what} failed: the container {container} is gone (removed outside hermes, or it "
                f"reached its max_lifetime): {text}"
            )
        if e.status_code == 409 and ("is not running" in text or "is paused" in text or "removal" in text):
            return ContainerGoneError(
                f"{what} failed: the container {container} is no longer running (stopped or killed "
                f"outside hermes, or it reached its max_lifetime): {text}"
            )
        return SandboxError(f"{what} failed in container {container}: {text}")
    if isinstance(e, requests.exceptions.ConnectionError | ConnectionError):
        return EngineUnavailableError(
            f"{what} failed: lost the Docker engine at {engine_url(docker_host)}: {_reason(e)}. {START_HINT}"
        )
    return e


def in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a blocking ``fn(*args)`` on a new daemon thread; the returned future gets its result.

    Cancelling the future does not stop the thread; callers that must know the outcome (for
    instance that a container was created) keep the future and wait for the thread's side
    effects instead.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            _call(loop, deliver, False, e)
        else:
            _call(loop, deliver, True, result)

    threading.Thread(target=target, name=f"hermes-docker-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return fut


def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop was closed while the thread ran: nobody is waiting
        pass


def exit_code(api: APIClient, exec_id: str, *, patience: float = 5.0) -> int | None:
    """The exit code of a finished exec (``None`` if the engine no longer knows it).

    The output stream can end a moment before the engine records the exit, so a still-running
    exec is asked again briefly.
    """
    import docker.errors

    deadline = time.monotonic() + patience
    delay = 0.002
    while True:
        try:
            info = api.exec_inspect(exec_id)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            return None
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def is_running(api: APIClient, exec_id: str) -> bool | None:
    """Whether the exec's main process still runs (``None``: the engine no longer knows)."""
    import docker.errors

    try:
        return bool(api.exec_inspect(exec_id).get("Running"))
    except docker.errors.APIError:
        return None


class ExecStream:
    """The hijacked connection of a started exec: its stdin, and its stdout/stderr (or PTY).

    Reads go through the HTTP response's buffered reader rather than the raw socket: the header
    parser may already have buffered the first bytes of output.
    """

    def __init__(self, api: APIClient, exec_id: str, *, tty: bool):
        self.exec_id = exec_id
        self.tty = tty
        res = api._post_json(  # noqa: SLF001 - exec_start(socket=True) would lose buffered bytes
            api._url("/exec/{0}/start", exec_id),  # noqa: SLF001
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": tty, "Detach": False},
            stream=True,
        )
        api._raise_for_status(res)  # noqa: SLF001
        self._res = res
        self._fp = res.raw._fp.fp  # noqa: SLF001 - http.client's buffered socket reader
        sock = api._get_raw_response_socket(res)  # noqa: SLF001
        self._sock = getattr(sock, "_sock", sock)  # socket.SocketIO wraps the real socket
        if hasattr(self._sock, "settimeout"):
            # The client's request timeout must not end a quiet long-running process's stream.
            self._sock.settimeout(None)
        self._write_closed = False
        self._closed = False

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(stream, data)`` until the exec's output ends; stream 1 is stdout, 2 stderr.

        With a TTY there are no frames: everything is reported as stream 1.
        """
        read = self._fp.read1
        if self.tty:
            while True:
                data = self._read(read)
                if not data:
                    return
                yield 1, data
        buf = bytearray()
        while True:
            data = self._read(read)
            if not data:
                return
            buf += data
            # Frames: 1 byte stream id, 3 zero bytes, 4 bytes big-endian length, payload.
            while len(buf) >= 8:
                length = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + length:
                    break
                kind = buf[0]
                payload = bytes(buf[8 : 8 + length])
                del buf[: 8 + length]
                if payload:
                    yield kind, payload

    def _read(self, read: Callable[[int], bytes]) -> bytes:
        try:
            return read(CHUNK)
        except (OSError, ValueError, AttributeError):  # closed under us, or reset by the engine
            return b""

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the process's stdin (blocking)."""
        self._sock.sendall(data)

    def send_nowait(self, data: bytes) -> int:
        """Write what fits without blocking (plain sockets only); return how many bytes went.

        Saves a thread round trip for the small writes of the stateful shell.
        """
        if type(self._sock) is not socket.socket or not data:
            return 0
        try:
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0

    def close_write(self) -> None:
        """Half-close: the process sees end of input; its output keeps flowing."""
        if self._write_closed:
            return
        self._write_closed = True
        try:
            if hasattr(self._sock, "shutdown_write"):  # paramiko channel (ssh:// engines)
                self._sock.shutdown_write()
            else:
                self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # shutdown (not just close) wakes a reader thread blocked on this socket.
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        for closer in (self._sock.close, self._res.close):
            try:
                closer()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
