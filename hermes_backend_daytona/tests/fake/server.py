"""A local stand-in for the Daytona control plane and its in-sandbox toolbox daemon.

It speaks the HTTP API that the real ``daytona`` SDK (0.226.x) calls — the same paths, JSON
field names, status codes and error bodies (NestJS-style ``{"statusCode", "message", "error"}``
from the API; ``{"statusCode", "message", "code", "source", "path", "timestamp"}`` from the
daemon) — and runs every sandbox as a real container on a Docker engine (``$DOCKER_HOST``).

Endpoints (``/api`` is the control plane, ``/toolbox/{id}`` the per-sandbox daemon)::

    POST/GET /api/sandbox, GET/DELETE /api/sandbox/{idOrName}, POST .../stop|start,
    PUT .../labels, POST .../autostop|autoarchive|autodelete/{m}, POST .../ttl/{m},
    GET /api/sandbox/{id}/toolbox-proxy-url
    POST /toolbox/{id}/process/execute, /process/session[/{sid}[/exec]],
    GET .../command/{cid}[/logs[?follow=true → websocket]], POST .../input, DELETE session,
    POST /files/bulk-upload (multipart), POST /files/bulk-download (multipart response),
    GET /files, GET /files/info, POST /files/folder, DELETE /files, POST /files/permissions

What it deliberately does like the real service: the exec ``timeout`` defaults to 10 s when not
given (the ExecuteRequest model's documented default) and kills only the command's main process;
auto-stop counts API inactivity, auto-delete 0 removes a sandbox as soon as it stops, ``ttl``
is a hard lifetime (the fake's minute is :attr:`FakeDaytona.minute` seconds). Known deviations:
sessions are not one stateful shell (each session command is its own process), there is no
Socket.IO event channel (``/api/socket.io`` answers 404, so the SDK polls), containers have no
network, and the image is whatever ``FROM`` names (no build steps).

Faults: :meth:`FakeDaytona.inject` makes the next N matching requests fail with a status;
:attr:`FakeDaytona.slow_create` delays container creation; :meth:`FakeDaytona.vanish` deletes a
sandbox behind the client's back; :attr:`FakeDaytona.max_sandboxes` is an account quota.

Run standalone: ``python server.py [--port N]`` prints ``DAYTONA_API_URL=...`` and serves until
killed (SIGTERM removes its containers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

try:  # imported as a package (tests) or run as a script
    from . import _docker as dk
    from ._files import Files
    from ._http import _now_iso, api_error, daemon_error
except ImportError:  # pragma: no cover
    import _docker as dk  # type: ignore[no-redef]
    from _files import Files  # type: ignore[no-redef]
    from _http import _now_iso, api_error, daemon_error  # type: ignore[no-redef]

STDOUT_PREFIX = b"\x01\x01\x01"
STDERR_PREFIX = b"\x02\x02\x02"
DEFAULT_IMAGE = "hermes-test/debian:bookworm"
@dataclass
class Fault:
    method: str | None
    path: re.Pattern[str]
    status: int
    count: int
    retry_after: str | None = None


@dataclass
class Cmd:
    id: str
    command: str
    log: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    attached: Any = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class Box:
    id: str
    name: str
    image: str
    snapshot: str | None
    labels: dict[str, str]
    env: dict[str, str]
    user: str
    cpu: float
    memory: float
    disk: float
    public: bool
    network_block_all: bool
    network_allow_list: str | None
    target: str
    auto_stop: int
    auto_archive: int
    auto_delete: int
    ttl: int
    state: str = "creating"
    error_reason: str | None = None
    container: str | None = None
    created_at: str = field(default_factory=_now_iso)
    updated_at: str = field(default_factory=_now_iso)
    created_mono: float = field(default_factory=time.monotonic)
    activity_mono: float = field(default_factory=time.monotonic)
    stopped_mono: float | None = None
    sessions: dict[str, dict[str, Cmd]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def workdir(self) -> str:
        return "/root" if self.user in ("root", "") else f"/home/{self.user}"

    def to_json(self, proxy_url: str, *, list_item: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "organizationId": "fake-org", "name": self.name, "snapshot": self.snapshot,
            "user": self.user, "labels": self.labels, "public": self.public,
            "networkBlockAll": self.network_block_all, "networkAllowList": self.network_allow_list,
            "target": self.target, "cpu": self.cpu, "gpu": 0, "memory": self.memory, "disk": self.disk,
            "state": self.state, "desiredState": "destroyed" if self.state == "destroying" else self.state,
            "errorReason": self.error_reason, "autoStopInterval": self.auto_stop,
            "autoArchiveInterval": self.auto_archive, "autoDeleteInterval": self.auto_delete,
            "createdAt": self.created_at, "updatedAt": self.updated_at, "toolboxProxyUrl": proxy_url,
            "daemonVersion": "fake-0.1",
        }
        if not list_item:
            d.update(env=self.env, kvm=False)
        return d


class FakeDaytona:
    """The fake service. ``start()`` serves it on 127.0.0.1 from a thread of its own."""

    def __init__(
        self,
        *,
        api_key: str = "fake-daytona-key",
        docker_host: str | None = None,
        snapshots: dict[str, str] | None = None,
        minute: float = 60.0,
    ):
        self.api_key = api_key
        self.docker_host = docker_host
        self.server_id = secrets.token_hex(4)
        self.snapshots = {"daytona-default": DEFAULT_IMAGE, **(snapshots or {})}
        #: Seconds per fake minute (auto-stop, auto-delete, ttl intervals are in minutes).
        self.minute = minute
        self.slow_create = 0.0
        self.max_sandboxes: int | None = None
        #: Creates that succeed but whose answer is "lost" (a 500 after the sandbox was made).
        self.lose_create_answers = 0
        self.creating_now = 0
        self.creating_max = 0
        self.boxes: dict[str, Box] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests
        self.created_total = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=96, thread_name_prefix="fake-daytona")
        self._docker = dk.connect(docker_host)
        self._bg: set[asyncio.Task[Any]] = set()
        self.files = Files(self)

    # ------------------------------------------------------------------ control (any thread)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def toolbox_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/toolbox"

    def start(self, port: int = 0) -> FakeDaytona:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(port, ready), daemon=True, name="fake-daytona")
        self._thread.start()
        if not ready.wait(30) or not self.port:
            raise RuntimeError("the fake Daytona server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)
        self._loop = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def call(self, coro: Any, timeout: float = 60) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def inject(self, status: int, *, path: str = r".*", method: str | None = None, count: int = 1,
               retry_after: str | None = None) -> None:
        """Make the next ``count`` requests matching ``method``/``path`` (a regex) fail."""
        self.faults.append(Fault(method, re.compile(path), status, count, retry_after))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.slow_create = 0.0
        self.max_sandboxes = None
        self.lose_create_answers = 0
        self.creating_max = self.creating_now

    def vanish(self, id_or_name: str) -> None:
        """Delete a sandbox from outside (as the dashboard or another client would)."""
        async def go() -> None:
            box = self._find(id_or_name)
            if box is not None:
                await self._destroy(box)
        self.call(go())

    def sandbox_count(self) -> int:
        return len(self.boxes)

    def container_ids(self) -> list[str]:
        return dk.our_containers(self._docker, self.server_id)

    # ------------------------------------------------------------------ server

    def _serve(self, port: int, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.set_default_executor(self._pool)

        async def boot() -> None:
            app = web.Application(middlewares=[self._middleware], client_max_size=1 << 34)
            self._routes(app)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
            self._reaper_task = asyncio.ensure_future(self._reaper())

        try:
            loop.run_until_complete(boot())
        finally:
            ready.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        self._reaper_task.cancel()
        await asyncio.gather(*list(self._bg), return_exceptions=True)  # deletes in flight finish
        await asyncio.gather(*(self._destroy(b) for b in list(self.boxes.values())), return_exceptions=True)
        for _ in range(100):
            left = await self._run(dk.our_containers, self._docker, self.server_id)
            if not left:
                break
            for cid in left:
                await self._run(dk.remove_container, self._docker, cid)
            await asyncio.sleep(0.1)
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))

    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/api/sandbox", self.create)
        r.add_get("/api/sandbox", self.list)
        r.add_get("/api/sandbox/{id}", self.get)
        r.add_delete("/api/sandbox/{id}", self.delete)
        r.add_post("/api/sandbox/{id}/stop", self.stop_box)
        r.add_post("/api/sandbox/{id}/start", self.start_box)
        r.add_put("/api/sandbox/{id}/labels", self.set_labels)
        r.add_post("/api/sandbox/{id}/{what:autostop|autoarchive|autodelete|ttl}/{minutes}", self.set_interval)
        r.add_get("/api/sandbox/{id}/toolbox-proxy-url", self.proxy_url)
        t = "/toolbox/{sid}"
        r.add_post(t + "/process/execute", self.execute)
        r.add_post(t + "/process/session", self.create_session)
        r.add_get(t + "/process/session", self.list_sessions)
        r.add_get(t + "/process/session/{session}", self.get_session)
        r.add_delete(t + "/process/session/{session}", self.delete_session)
        r.add_post(t + "/process/session/{session}/exec", self.session_exec)
        r.add_get(t + "/process/session/{session}/command/{cmd}", self.get_command)
        r.add_get(t + "/process/session/{session}/command/{cmd}/logs", self.command_logs)
        r.add_post(t + "/process/session/{session}/command/{cmd}/input", self.command_input)
        r.add_post(t + "/files/bulk-upload", self.files.bulk_upload)
        r.add_post(t + "/files/bulk-download", self.files.bulk_download)
        r.add_get(t + "/files", self.files.list_files)
        r.add_get(t + "/files/info", self.files.file_info)
        r.add_post(t + "/files/folder", self.files.create_folder)
        r.add_delete(t + "/files", self.files.delete_file)
        r.add_post(t + "/files/permissions", self.files.set_permissions)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return api_error(401, "Invalid credentials")
        for f in self.faults:
            if f.count > 0 and (f.method is None or f.method == request.method) and f.path.search(request.path):
                f.count -= 1
                hdrs = {"Retry-After": f.retry_after} if f.retry_after else None
                msg = "ThrottlerException: Too Many Requests" if f.status == 429 else "Injected fault"
                return api_error(f.status, msg, hdrs)
        self.faults = [f for f in self.faults if f.count > 0]
        sid = request.match_info.get("sid")
        if sid is not None:
            box = self.boxes.get(sid)
            if box is None:
                return api_error(404, f"Sandbox with ID {sid} not found")
            if box.state != "started":
                return api_error(400, f"Sandbox {sid} is not started (state: {box.state})")
            box.activity_mono = time.monotonic()
        return await handler(request)

    def _find(self, id_or_name: str) -> Box | None:
        box = self.boxes.get(id_or_name)
        if box is None:
            box = next((b for b in self.boxes.values() if b.name == id_or_name), None)
        return box

    def _box_or_404(self, request: web.Request) -> Box | web.Response:
        key = request.match_info["id"]
        box = self._find(key)
        if box is None:
            return api_error(404, f"Sandbox with ID or name {key} not found")
        box.activity_mono = time.monotonic()
        return box

    # ------------------------------------------------------------------ control plane

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return api_error(400, "Invalid JSON body")
        name = body.get("name")
        if name and self._find(name) is not None:
            return api_error(409, f"Sandbox with name {name} already exists")
        snapshot = body.get("snapshot")
        build = (body.get("buildInfo") or {}).get("dockerfileContent")
        if snapshot:
            image = self.snapshots.get(snapshot)
            if image is None:
                return api_error(404, f"Snapshot {snapshot} not found. Did you add it through the Daytona Dashboard?")
        elif build:
            m = re.match(r"\s*FROM\s+(\S+)", build)
            if not m:
                return api_error(400, "Invalid dockerfile: no FROM instruction")
            image = m.group(1)
        else:
            snapshot, image = "daytona-default", self.snapshots["daytona-default"]
        if self.max_sandboxes is not None and len(self.boxes) >= self.max_sandboxes:
            return api_error(
                403, f"Total CPU quota exceeded. Maximum allowed: {self.max_sandboxes}. "
                "To increase concurrency limits, upgrade your organization's Tier."
            )
        for key in ("autoStopInterval", "autoArchiveInterval", "ttlMinutes"):
            if body.get(key) is not None and body[key] < 0:
                return api_error(400, f"{key} must be a non-negative integer")
        sid = str(uuid.uuid4())
        box = Box(
            id=sid, name=name or sid, image=image, snapshot=snapshot, labels=dict(body.get("labels") or {}),
            env=dict(body.get("env") or {}), user=body.get("user") or "root", cpu=body.get("cpu") or 1,
            memory=body.get("memory") or 1, disk=body.get("disk") or 3, public=bool(body.get("public")),
            network_block_all=bool(body.get("networkBlockAll")), network_allow_list=body.get("networkAllowList"),
            target=body.get("target") or "us",
            auto_stop=15 if body.get("autoStopInterval") is None else body["autoStopInterval"],
            auto_archive=body.get("autoArchiveInterval") or 10080,
            auto_delete=-1 if body.get("autoDeleteInterval") is None else body["autoDeleteInterval"],
            ttl=body.get("ttlMinutes") or 0,
        )
        self.boxes[sid] = box
        self.created_total += 1
        if not await self._run(dk.image_exists, self._docker, image):
            box.state = "build_failed"
            box.error_reason = f"Failed to pull image {image}: manifest unknown (image not found)"
            return web.json_response(box.to_json(self.toolbox_url), status=200)
        if self.slow_create > 0:
            self._spawn(self._make_container(box, self.slow_create))
            return web.json_response(box.to_json(self.toolbox_url), status=200)
        await self._make_container(box, 0)
        if self.lose_create_answers > 0:
            self.lose_create_answers -= 1
            return api_error(500, "Internal server error")
        return web.json_response(box.to_json(self.toolbox_url), status=200)

    async def _make_container(self, box: Box, delay: float) -> None:
        self.creating_now += 1
        self.creating_max = max(self.creating_max, self.creating_now)
        try:
            if delay:
                await asyncio.sleep(delay)
            await self._make_container_now(box)
        finally:
            self.creating_now -= 1

    async def _make_container_now(self, box: Box) -> None:
        async with box.lock:
            if box.state != "creating":
                return  # deleted while it was being created
            labels = {dk.FAKE_LABEL: "1", f"{dk.FAKE_LABEL}.server": self.server_id, "daytona.sandbox": box.id}
            try:
                box.container = await self._run(lambda: dk.create_container(
                    self._docker, image=box.image, name=f"fake-daytona-{box.id}", labels=labels, env=box.env,
                    user=box.user, workdir=box.workdir, cpu=box.cpu, memory_gib=box.memory,
                ))
            except Exception as e:  # noqa: BLE001 - reported as the sandbox's error state
                box.state, box.error_reason = "error", f"Failed to create sandbox container: {e}"
                return
            box.state, box.updated_at = "started", _now_iso()
            box.activity_mono = time.monotonic()

    async def get(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        return web.json_response(box.to_json(self.toolbox_url))

    async def list(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            want = json.loads(q["labels"]) if q.get("labels") else {}
        except ValueError:
            return api_error(400, "labels must be a JSON object")
        limit = int(q.get("limit") or 100)
        start = int(q.get("cursor") or 0)
        states = set(q.getall("states", []))
        boxes = [b for b in self.boxes.values()
                 if all(b.labels.get(k) == v for k, v in want.items()) and (not states or b.state in states)]
        page = boxes[start : start + limit]
        nxt = str(start + limit) if start + limit < len(boxes) else None
        return web.json_response({"items": [b.to_json(self.toolbox_url, list_item=True) for b in page],
                                  "nextCursor": nxt})

    async def delete(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        box.state = "destroying"
        out = box.to_json(self.toolbox_url)
        self._spawn(self._destroy(box))
        return web.json_response(out)

    async def _destroy(self, box: Box) -> None:
        box.state = "destroying"
        async with box.lock:
            for cmds in box.sessions.values():
                for c in cmds.values():
                    if c.attached is not None:
                        await self._run(c.attached.close)
            if box.container:
                await self._run(dk.remove_container, self._docker, box.container)
            box.state = "destroyed"
            self.boxes.pop(box.id, None)

    async def stop_box(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        await self._stop(box)
        return web.json_response(box.to_json(self.toolbox_url))

    async def _stop(self, box: Box) -> None:
        if box.state != "started":
            return
        box.state = "stopping"
        if box.container:
            await self._run(dk.stop_container, self._docker, box.container)
        box.state, box.stopped_mono, box.updated_at = "stopped", time.monotonic(), _now_iso()
        if box.auto_delete == 0:
            await self._destroy(box)

    async def start_box(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        if box.state == "stopped" and box.container:
            await self._run(dk.start_container, self._docker, box.container)
            box.state, box.stopped_mono = "started", None
        return web.json_response(box.to_json(self.toolbox_url))

    async def set_labels(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        box.labels = dict((await request.json()).get("labels") or {})
        return web.json_response({"labels": box.labels})

    async def set_interval(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        minutes = int(request.match_info["minutes"])
        setattr(box, {"autostop": "auto_stop", "autoarchive": "auto_archive", "autodelete": "auto_delete",
                      "ttl": "ttl"}[request.match_info["what"]], minutes)
        return web.Response(status=200)

    async def proxy_url(self, request: web.Request) -> web.Response:
        box = self._box_or_404(request)
        if isinstance(box, web.Response):
            return box
        return web.json_response({"url": self.toolbox_url})

    async def _reaper(self) -> None:
        """Auto-stop on API inactivity, auto-delete after stop, ttl: what keeps abandoned boxes finite."""
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for box in list(self.boxes.values()):
                m = self.minute
                if box.ttl > 0 and now - box.created_mono > box.ttl * m:
                    self._spawn(self._destroy(box))
                elif box.state == "started" and box.auto_stop > 0 and now - box.activity_mono > box.auto_stop * m:
                    self._spawn(self._stop(box))
                elif (box.state == "stopped" and box.auto_delete > 0 and box.stopped_mono is not None
                      and now - box.stopped_mono > box.auto_delete * m):
                    self._spawn(self._destroy(box))

    # ------------------------------------------------------------------ toolbox: processes

    async def execute(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        body = await request.json()
        command = body.get("command")
        if not command:
            return daemon_error(request, 400, "command is required")
        timeout = body.get("timeout") or 10  # the ExecuteRequest model: "defaults to 10 seconds"
        out = bytearray()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_output(kind: int, data: bytes) -> None:
            out.extend(data)

        def on_exit(code: int) -> None:
            loop.call_soon_threadsafe(done.set)

        try:
            att = await self._run(lambda: dk.Attached(
                self._docker, box.container, ["sh", "-c", dk.PICK_SHELL, command],
                workdir=body.get("cwd") or box.workdir, env=body.get("envs") or None,
                on_output=on_output, on_exit=on_exit, stdin=False,
            ))
        except Exception as e:  # noqa: BLE001 - e.g. a cwd that does not exist
            return daemon_error(request, 400, f"failed to execute command: {e}")
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            await self._run(att.kill)
            return daemon_error(request, 408, "command execution timeout", "PROCESS_EXECUTION_TIMEOUT")
        return web.json_response({"exitCode": att.exit_code, "result": out.decode("utf-8", "replace")})

    async def create_session(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        sid = (await request.json()).get("sessionId")
        if not sid:
            return daemon_error(request, 400, "sessionId is required")
        if sid in box.sessions:
            return daemon_error(request, 409, f"session {sid} already exists")
        box.sessions[sid] = {}
        return web.Response(status=201)

    def _session_json(self, sid: str, cmds: dict[str, Cmd]) -> dict[str, Any]:
        return {"sessionId": sid, "commands": [
            {"id": c.id, "command": c.command, "exitCode": c.exit_code} for c in cmds.values()]}

    async def list_sessions(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        return web.json_response([self._session_json(s, c) for s, c in box.sessions.items()])

    async def get_session(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        s = request.match_info["session"]
        if s not in box.sessions:
            return daemon_error(request, 404, f"session {s} not found")
        return web.json_response(self._session_json(s, box.sessions[s]))

    async def delete_session(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        cmds = box.sessions.pop(request.match_info["session"], None)
        if cmds is None:
            return daemon_error(request, 404, "session not found")
        for c in cmds.values():
            if c.attached is not None and c.exit_code is None:
                await self._run(c.attached.kill)
        return web.Response(status=204)

    async def session_exec(self, request: web.Request) -> web.Response:
        box = self.boxes[request.match_info["sid"]]
        cmds = box.sessions.get(request.match_info["session"])
        if cmds is None:
            return daemon_error(request, 404, "session not found")
        body = await request.json()
        command = body.get("command")
        if not command:
            return daemon_error(request, 400, "command is required")
        run_async = bool(body.get("runAsync") or body.get("async"))
        cmd = Cmd(str(uuid.uuid4()), command)
        cmds[cmd.id] = cmd
        loop = asyncio.get_running_loop()

        def on_output(kind: int, data: bytes) -> None:
            def add() -> None:
                cmd.log.extend(STDERR_PREFIX if kind == 2 else STDOUT_PREFIX)
                cmd.log.extend(data)
                cmd.notify()
            loop.call_soon_threadsafe(add)

        def on_exit(code: int) -> None:
            def end() -> None:
                cmd.exit_code = code
                cmd.notify()
            loop.call_soon_threadsafe(end)

        try:
            cmd.attached = await self._run(lambda: dk.Attached(
                self._docker, box.container, ["sh", "-c", dk.PICK_SHELL, command], workdir=box.workdir,
                env=None, on_output=on_output, on_exit=on_exit, stdin=True, exit_on_main=True,
            ))
        except Exception as e:  # noqa: BLE001
            cmds.pop(cmd.id, None)
            return daemon_error(request, 500, f"failed to execute command: {e}")
        if run_async:
            return web.json_response({"cmdId": cmd.id}, status=202)
        while cmd.exit_code is None:
            await cmd.changed.wait()
        stdout, stderr = _demux(bytes(cmd.log))
        return web.json_response({"cmdId": cmd.id, "exitCode": cmd.exit_code, "output": stdout + stderr,
                                  "stdout": stdout, "stderr": stderr})

    def _cmd(self, request: web.Request) -> Cmd | web.Response:
        box = self.boxes[request.match_info["sid"]]
        cmds = box.sessions.get(request.match_info["session"])
        if cmds is None:
            return daemon_error(request, 404, "session not found")
        cmd = cmds.get(request.match_info["cmd"])
        if cmd is None:
            return daemon_error(request, 404, "command not found", "PROCESS_NOT_FOUND")
        return cmd

    async def get_command(self, request: web.Request) -> web.Response:
        cmd = self._cmd(request)
        if isinstance(cmd, web.Response):
            return cmd
        return web.json_response({"id": cmd.id, "command": cmd.command, "exitCode": cmd.exit_code})

    async def command_logs(self, request: web.Request) -> web.StreamResponse:
        cmd = self._cmd(request)
        if isinstance(cmd, web.Response):
            return cmd
        if request.query.get("follow") != "true":
            stdout, stderr = _demux(bytes(cmd.log))
            return web.json_response({"output": stdout + stderr, "stdout": stdout, "stderr": stderr})
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        sent = 0
        try:
            while True:
                changed = cmd.changed
                if sent < len(cmd.log):
                    chunk = bytes(cmd.log[sent : sent + (1 << 20)])
                    sent += len(chunk)
                    await ws.send_bytes(chunk)  # awaits the client: its read pace is the backpressure
                    continue
                if cmd.exit_code is not None:
                    break
                if ws.closed:
                    return ws
                await changed.wait()
        except (ConnectionResetError, RuntimeError):
            return ws
        await ws.close(code=WSCloseCode.OK)
        return ws

    async def command_input(self, request: web.Request) -> web.Response:
        cmd = self._cmd(request)
        if isinstance(cmd, web.Response):
            return cmd
        data = (await request.json()).get("data")
        if data is None:
            return daemon_error(request, 400, "data is required")
        if cmd.exit_code is not None:
            return daemon_error(request, 410, "command has already completed", "COMMAND_ALREADY_COMPLETED")
        try:
            await self._run(cmd.attached.write, data.encode())
        except OSError as e:
            return daemon_error(request, 410, f"command input is closed: {e}", "COMMAND_ALREADY_COMPLETED")
        return web.Response(status=204)


def _demux(log: bytes) -> tuple[str, str]:
    """Split a session command's framed log into (stdout, stderr)."""
    out, err = bytearray(), bytearray()
    cur, i = out, 0
    while i < len(log):
        if log.startswith(STDOUT_PREFIX, i):
            cur, i = out, i + 3
            continue
        if log.startswith(STDERR_PREFIX, i):
            cur, i = err, i + 3
            continue
        nxt = [k for k in (log.find(STDOUT_PREFIX, i), log.find(STDERR_PREFIX, i)) if k >= 0]
        j = min(nxt) if nxt else len(log)
        cur.extend(log[i:j])
        i = j
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def main() -> None:  # pragma: no cover - used by the benchmark and by hand
    import argparse
    import signal as _signal

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", default="fake-daytona-key")
    p.add_argument("--minute", type=float, default=60.0)
    a = p.parse_args()
    fake = FakeDaytona(api_key=a.api_key, minute=a.minute).start(a.port)
    print(f"DAYTONA_API_URL={fake.api_url}", flush=True)
    stop = threading.Event()
    _signal.signal(_signal.SIGTERM, lambda *_: stop.set())
    _signal.signal(_signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
