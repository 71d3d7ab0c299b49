"""The fake's side of the Docker engine: containers for sandboxes, one-shot and attached execs.

Everything here is blocking (the ``docker`` SDK); the server calls it on its own thread pool.
Every container carries :data:`FAKE_LABEL` and the server's id, so the fake only ever touches
containers it made.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors

FAKE_LABEL = "hermes-daytona-fake"
#: A shell picker like the daemon's: the first of zsh, bash, sh runs the command string.
PICK_SHELL = 'for s in zsh bash sh; do command -v "$s" >/dev/null 2>&1 && exec "$s" -c "$0"; done; exit 127'


def connect(docker_host: str | None = None) -> docker.APIClient:
    return docker.APIClient(
        base_url=docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
        version="auto",
        timeout=120,
        max_pool_size=64,
    )


def image_exists(api: docker.APIClient, image: str) -> bool:
    try:
        api.inspect_image(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code in (400, 404):
            return False
        raise


def create_container(
    api: docker.APIClient,
    *,
    image: str,
    name: str,
    labels: dict[str, str],
    env: dict[str, str],
    user: str | None,
    workdir: str,
    cpu: float | None,
    memory_gib: float | None,
) -> str:
    host_config = api.create_host_config(
        network_mode="none",  # the fake never gives sandboxes a network
        init=True,
        nano_cpus=int(cpu * 1e9) if cpu else None,
        mem_limit=int(memory_gib * (1 << 30)) if memory_gib else None,
    )
    created = api.create_container(
        image,
        entrypoint=["sleep"],
        command=["2147483647"],
        name=name,
        labels=labels,
        environment=env,
        user=user or "",
        working_dir=workdir,
        host_config=host_config,
        detach=True,
    )
    api.start(created["Id"])
    return created["Id"]


def remove_container(api: docker.APIClient, cid: str) -> None:
    try:
        api.remove_container(cid, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:  # already being removed
            raise


def stop_container(api: docker.APIClient, cid: str) -> None:
    try:
        api.stop(cid, timeout=1)
    except docker.errors.NotFound:
        pass


def start_container(api: docker.APIClient, cid: str) -> None:
    api.start(cid)


def stat(api: docker.APIClient, cid: str, path: str) -> dict[str, Any] | None:
    """The engine's stat of ``path`` in the container (HEAD archive), or None when it does not exist."""
    import base64
    import json

    res = api.head(api._url("/containers/{0}/archive", cid), params={"path": path})  # noqa: SLF001
    if res.status_code == 404:
        return None
    res.raise_for_status()
    return json.loads(base64.b64decode(res.headers["X-Docker-Container-Path-Stat"]))


def our_containers(api: docker.APIClient, server_id: str | None = None) -> list[str]:
    flt = [FAKE_LABEL] if server_id is None else [f"{FAKE_LABEL}.server={server_id}"]
    return [c["Id"] for c in api.containers(all=True, filters={"label": flt})]


def run(api: docker.APIClient, cid: str, argv: list[str], *, user: str = "") -> tuple[int, bytes]:
    """Run ``argv`` in the container and return (exit code, combined output)."""
    ex = api.exec_create(cid, argv, user=user)
    out = api.exec_start(ex["Id"])
    code = api.exec_inspect(ex["Id"]).get("ExitCode")
    return (code if code is not None else 255), out


class Attached:
    """A started exec with its stdin held open and its output read frame by frame.

    ``on_output(kind, data)`` is called from a reader thread (kind 1 = stdout, 2 = stderr);
    ``on_exit(code)`` once the process has ended.
    """

    def __init__(
        self,
        api: docker.APIClient,
        cid: str,
        argv: list[str],
        *,
        workdir: str | None,
        env: dict[str, str] | None,
        on_output: Callable[[int, bytes], None],
        on_exit: Callable[[int], None],
        stdin: bool = True,
        exit_on_main: bool = False,
    ):
        """``exit_on_main``: the command has ended when its main process has (as the daemon tracks a
        session command), even if a background child still holds its output open; otherwise it
        ends when its output closes (as the daemon's one-shot execute waits)."""
        self.api = api
        ex = api.exec_create(
            cid, argv, stdin=stdin, stdout=True, stderr=True, tty=False, workdir=workdir, environment=env
        )
        self.exec_id = ex["Id"]
        res = api._post_json(  # noqa: SLF001 - the hijacked stream, with the bytes already buffered
            api._url("/exec/{0}/start", self.exec_id),  # noqa: SLF001
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": False, "Detach": False},
            stream=True,
        )
        api._raise_for_status(res)  # noqa: SLF001
        self._res = res
        self._fp = res.raw._fp.fp  # noqa: SLF001
        sock = api._get_raw_response_socket(res)  # noqa: SLF001
        self._sock = getattr(sock, "_sock", sock)
        if hasattr(self._sock, "settimeout"):
            self._sock.settimeout(None)
        self._lock = threading.Lock()
        self._on_output, self._on_exit = on_output, on_exit
        self.exit_code: int | None = None
        self.host_pid: int | None = None
        self._ended = threading.Event()
        self._reported = threading.Lock()
        self._thread = threading.Thread(target=self._pump, daemon=True, name=f"fake-exec-{self.exec_id[:8]}")
        self._thread.start()
        if exit_on_main:
            threading.Thread(target=self._watch, daemon=True, name=f"fake-watch-{self.exec_id[:8]}").start()

    def _watch(self) -> None:
        while not self._ended.wait(0.05):
            try:
                info = self.api.exec_inspect(self.exec_id)
            except docker.errors.APIError:
                break
            if not info.get("Running"):
                if self._ended.wait(0.2):  # let the output that is in flight arrive first
                    return
                self._report(info.get("ExitCode"))
                return

    def _frames(self) -> Iterator[tuple[int, bytes]]:
        buf = bytearray()
        while True:
            try:
                data = self._fp.read1(65536)
            except (OSError, ValueError, AttributeError):
                data = b""
            if not data:
                return
            buf += data
            while len(buf) >= 8:
                n = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + n:
                    break
                kind, payload = buf[0], bytes(buf[8 : 8 + n])
                del buf[: 8 + n]
                if payload:
                    yield kind, payload

    def _pump(self) -> None:
        try:
            for kind, data in self._frames():
                if self.exit_code is not None:
                    break
                self._on_output(kind, data)
        finally:
            self._ended.set()
            code = None
            for _ in range(200):  # the engine records the exit a moment after the stream ends
                try:
                    info = self.api.exec_inspect(self.exec_id)
                except docker.errors.APIError:
                    break
                if not info.get("Running"):
                    code = info.get("ExitCode")
                    break
                time.sleep(0.01)
            self._report(code)

    def _report(self, code: int | None) -> None:
        with self._reported:
            if self.exit_code is not None:
                return
            self.exit_code = 255 if code is None else code
        self.close()
        self._on_exit(self.exit_code)

    def pid(self) -> int | None:
        if self.host_pid is None:
            try:
                self.host_pid = self.api.exec_inspect(self.exec_id).get("Pid") or None
            except docker.errors.APIError:
                return None
        return self.host_pid

    def write(self, data: bytes) -> None:
        with self._lock:
            self._sock.sendall(data)

    def kill(self) -> None:
        """SIGKILL the exec's main process (only it, as the daemon does)."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for fn in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close, self._res.close):
            try:
                fn()
            except Exception:  # noqa: BLE001
                pass


def make_tar(name: str, src: Any, size: int, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> io.BufferedRandom:
    """A one-member tar (spooled to a temp file) holding ``size`` bytes read from ``src``."""
    import tempfile

    out = tempfile.TemporaryFile()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = size, mode, uid, gid, int(time.time())
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, src)
    out.seek(0)
    return out
