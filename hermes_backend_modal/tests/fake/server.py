"""A local fake of Modal's gRPC API, for testing the REAL ``modal`` SDK without the service.

Two grpclib servers on 127.0.0.1, built on the servicer base classes the ``modal`` wheel ships
(``modal_proto.api_grpc.ModalClientBase`` and ``modal_proto.task_command_router_grpc
.TaskCommandRouterBase``), with the SDK's own message types:

* the control plane (``MODAL_SERVER_URL`` points here): client hello, auth token, environment,
  app lookup, image get-or-create / join / from-id, the V2 sandbox calls (create, get task id,
  command-router access, wait, terminate, list, tags, get-from-name);
* the task command router (its URL is handed out by ``SandboxGetCommandRouterAccess``): exec
  start / stdio read / stdin write / wait / poll, and filesystem snapshots.

Every sandbox is a real container on the Docker engine at ``$DOCKER_HOST``, labelled with this
fake's instance id; every exec is a real ``docker exec``. Only containers carrying this
instance's label are ever touched. Any RPC not implemented here answers ``UNIMPLEMENTED`` and is
recorded in :attr:`FakeModal.unimplemented`, so a test sees exactly what the SDK wanted.

Faults (read from a JSON file that tests may rewrite at any time, see :class:`Faults`):
unavailable creates, rate-limited creates (RESOURCE_EXHAUSTED with Modal's retry policy detail),
slow creates, and sandboxes that exit from outside shortly after they start.

Run standalone: ``python -m fake --port-file F [--faults F] [--token-id ID --token-secret S]``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpclib.const
import grpclib.server
from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal._utils.grpc_utils import custom_detail_codec  # the wire format of error details
from modal_proto import api_grpc, api_pb2
from modal_proto import task_command_router_grpc as tcr_grpc
from modal_proto import task_command_router_pb2 as sr_pb2

LABEL = "hermes.fake-modal"
CHUNK = 1 << 20
#: A CI run's id (labels every container, so the run's EXIT trap can find leftovers of a killed fake).
RUN_ENV = "HERMES_MODAL_FAKE_RUN"
#: Each exec's processes carry this variable; a timeout or terminate kills them all.
EXEC_VAR = "MODAL_FAKE_EXEC_ID"

_KILL_EXEC = r"""
for pass in 1 2 3; do
  found=
  for f in $(grep -l -a -F -e "MODAL_FAKE_EXEC_ID=$1" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; p=${p%/environ}
    [ "$p" = "$$" ] && continue
    kill -9 "$p" 2>/dev/null; found=1
  done
  [ -n "$found" ] || break
done
exit 0
"""


def _jwt(ttl: float = 3600) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none'})}.{b64({'exp': int(time.time() + ttl)})}.sig"


@dataclass
class Faults:
    """What to break. Counters are per fake instance; a missing file means no faults."""

    #: Every n-th SandboxCreateV2 answers UNAVAILABLE (0: never).
    unavailable_every: int = 0
    #: SandboxCreateV2 admitted per second, bursts of one second's worth (0: unlimited); over it:
    #: RESOURCE_EXHAUSTED with Modal's retry-policy detail.
    create_rate: float = 0.0
    #: Seconds every SandboxCreateV2 takes before answering.
    slow_create_s: float = 0.0
    #: Every n-th sandbox is killed from outside ``exit_after_s`` seconds after it starts.
    exit_every: int = 0
    exit_after_s: float = 1.0
    #: Every n-th SandboxTerminateV2 answers UNAVAILABLE first (the SDK retries it).
    terminate_unavailable_every: int = 0
    #: Every n-th SandboxCreateV2 creates the sandbox, then answers UNAVAILABLE (a lost answer).
    lost_create_every: int = 0

    @classmethod
    def load(cls, path: str | None) -> Faults:
        if not path:
            return cls()
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            return cls()
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


@dataclass
class Exec:
    exec_id: str
    proc: asyncio.subprocess.Process
    out: dict[int, bytearray] = field(default_factory=lambda: {1: bytearray(), 2: bytearray()})
    eof: dict[int, bool] = field(default_factory=lambda: {1: False, 2: False})
    stdin_written: int = 0
    stdin_closed: bool = False
    code: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stdin_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The container had stopped when ``docker exec`` ran (the task was gone): calls answer NOT_FOUND.
    gone: bool = False

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class FakeSandbox:
    sandbox_id: str
    task_id: str
    app_id: str
    name: str
    tags: dict[str, str]
    image_id: str
    created_at: float
    timeout_s: int
    container: str = ""
    running: bool = False
    result: api_pb2.GenericResult | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    execs: dict[str, Exec] = field(default_factory=dict)
    timer: asyncio.Task[None] | None = None


async def _run(*argv: str, stdin: bytes | None = None, timeout: float = 120) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, b"timed out"
    return proc.returncode or 0, out


class FakeModal:
    """The fake's state and the container engine side; the two servicers below call into it."""

    def __init__(
        self,
        *,
        docker: str | None = None,
        image_map: dict[str, str] | None = None,
        faults_path: str | None = None,
        stats_path: str | None = None,
        token: tuple[str, str] | None = None,
        named_secrets: dict[str, dict[str, str]] | None = None,
        default_image: str = "hermes-test/debian:bookworm",
    ):
        self.docker = docker or shutil.which("docker") or "docker"
        self.instance = secrets.token_hex(6)
        self.image_map = dict(image_map or {})
        self.default_image = default_image
        self.faults_path = faults_path
        self.stats_path = stats_path
        self.token = token
        self.secrets = {f"st-{n}": dict(v) for n, v in (named_secrets or {}).items()}  # named Modal Secrets
        self.apps: dict[str, str] = {}
        self.images: dict[str, str] = {}  # image id -> local docker image reference
        self.image_defs: dict[str, str] = {}  # definition hash -> image id
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.by_task: dict[str, FakeSandbox] = {}
        self.unimplemented: list[str] = []
        self.snapshot_tags: list[str] = []  # images this instance committed; removed at close
        self.calls: dict[str, int] = {}
        self.router_url = ""
        self._creates = 0
        self._terminates = 0
        self._bucket_t = time.monotonic()
        self._bucket = 1.0
        self._events: asyncio.subprocess.Process | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ helpers

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def write_stats(self) -> None:
        """Keep ``stats_path`` current (call counts, live sandboxes) for tests in another process."""
        last = None
        while self.stats_path:
            snap = json.dumps({"calls": self.calls, "running": sum(s.running for s in self.sandboxes.values()),
                               "sandboxes": len(self.sandboxes), "unimplemented": sorted(set(self.unimplemented))})
            if snap != last:
                tmp = self.stats_path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(snap)
                os.replace(tmp, self.stats_path)
                last = snap
            await asyncio.sleep(0.2)

    def faults(self) -> Faults:
        return Faults.load(self.faults_path)

    def check_auth(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        if self.token is None:
            return
        md = stream.metadata or {}
        if (md.get("x-modal-token-id"), md.get("x-modal-token-secret")) != self.token:
            raise GRPCError(Status.UNAUTHENTICATED, "Token ID or secret is invalid (fake)")

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resolve_image(self, ref: str) -> str:
        if ref in self.image_map:
            return self.image_map[ref]
        repo = ref.split(":")[0]
        return self.image_map.get(repo + ":*", self.image_map.get("*", ref))

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return sb

    def task(self, task_id: str) -> FakeSandbox:
        sb = self.by_task.get(task_id)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Task {task_id} not found")
        if not sb.running:
            raise GRPCError(Status.NOT_FOUND, f"Task {task_id} has finished")
        return sb

    # ------------------------------------------------------------------ engine

    async def start_events(self) -> None:
        """One ``docker events`` stream tells the fake when any of its containers dies."""
        self._events = await asyncio.create_subprocess_exec(
            self.docker, "events", "--filter", f"label={LABEL}={self.instance}", "--filter", "event=die",
            "--format", '{{index .Actor.Attributes "hermes.fake-modal.sandbox"}} {{.Actor.Attributes.exitCode}}',
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        self._events_task = asyncio.ensure_future(self._watch_events())

    async def _watch_events(self) -> None:
        assert self._events is not None and self._events.stdout is not None
        async for line in self._events.stdout:
            parts = line.decode().split()
            if len(parts) == 2 and parts[0] in self.sandboxes:
                code = int(parts[1]) if parts[1].lstrip("-").isdigit() else 1
                self.finish(self.sandboxes[parts[0]], api_pb2.GenericResult.GENERIC_STATUS_SUCCESS if code == 0
                            else api_pb2.GenericResult.GENERIC_STATUS_FAILURE, code, remove=True)

    def finish(self, sb: FakeSandbox, status: int, code: int, *, exception: str = "", remove: bool) -> None:
        if sb.result is None:
            sb.result = api_pb2.GenericResult(status=status, exitcode=code, exception=exception)
        sb.running = False
        sb.finished.set()
        if sb.timer is not None and sb.timer is not asyncio.current_task():
            sb.timer.cancel()
        for ex in sb.execs.values():
            if ex.code is None and ex.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    ex.proc.kill()
        if remove and sb.container:
            self.background(_run(self.docker, "rm", "-f", sb.container, timeout=60))

    async def build_image(self, image: api_pb2.Image) -> tuple[str, str]:
        """Returns (image id, error). Dockerfile commands run through ``docker build``."""
        commands = list(image.dockerfile_commands)
        base = {b.docker_tag: self.images.get(b.image_id, "") for b in image.base_images}
        key = hashlib.sha256(repr((commands, sorted(base.items()))).encode()).hexdigest()[:24]
        if key in self.image_defs:
            return self.image_defs[key], ""
        image_id = f"im-{key}"
        lines, from_ref = [], ""
        for c in commands:
            if c.strip().upper().startswith("FROM "):
                ref = c.split(None, 1)[1].strip()
                from_ref = base.get(ref) or self.resolve_image(ref)
                lines.append(f"FROM {from_ref}")
            else:
                lines.append(c)
        if not from_ref:
            return image_id, f"image has no FROM line: {commands!r}"
        if len(lines) == 1:
            code, out = await _run(self.docker, "image", "inspect", from_ref, timeout=30)
            if code != 0:
                return image_id, f"image {from_ref} is not present on the local engine (nothing is pulled)"
            self.images[image_id] = from_ref
        else:
            tag = f"hermes-fake-modal/{key}:latest"
            with tempfile.TemporaryDirectory() as ctx:
                with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                    f.write("\n".join(lines) + "\n")
                for cf in image.context_files:
                    dest = os.path.join(ctx, cf.filename.lstrip("/"))
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with open(dest, "wb") as f:
                        f.write(cf.data)
                code, out = await _run(self.docker, "build", "-q", "--label", f"{LABEL}=image", "-t", tag, ctx,
                                       timeout=600)
            if code != 0:
                return image_id, out.decode("utf-8", "replace")[-2000:]
            self.images[image_id] = tag
        self.image_defs[key] = image_id
        return image_id, ""

    async def create_sandbox(self, req: api_pb2.SandboxCreateV2Request) -> FakeSandbox:
        d = req.definition
        image_ref = self.images.get(d.image_id)
        if image_ref is None:
            raise GRPCError(Status.NOT_FOUND, f"Image {d.image_id} not found")
        sid = "sb-" + uuid.uuid4().hex  # not the V1 id shape, so the SDK treats it as V2
        sb = FakeSandbox(
            sandbox_id=sid, task_id=f"ta-{uuid.uuid4().hex[:20]}V", app_id=req.app_id, name=d.name,
            tags={t.tag_name: t.tag_value for t in req.tags}, image_id=d.image_id, created_at=time.time(),
            timeout_s=d.timeout_secs or 300,
        )
        sb.container = f"hermes-fake-modal-{self.instance}-{sid[3:15]}"
        argv = [self.docker, "run", "-d", "--name", sb.container, "--label", f"{LABEL}={self.instance}",
                "--label", f"{LABEL}.sandbox={sid}", "--label", f"{LABEL}.run={os.environ.get(RUN_ENV, '')}",
                "--init=false"]
        blocked = d.block_network or d.network_access.network_access_type == api_pb2.NetworkAccess.BLOCKED
        if blocked:
            argv += ["--network", "none"]
        if d.resources.milli_cpu:
            argv += ["--cpus", f"{(d.resources.milli_cpu_max or d.resources.milli_cpu) / 1000:g}"]
        if d.resources.memory_mb:
            argv += ["--memory", f"{d.resources.memory_mb_max or d.resources.memory_mb}m"]
        if d.workdir:
            argv += ["-w", d.workdir]
        for sid_ in [*d.secret_ids, *(src.secret_id for src in req.secret_sources if src.secret_id)]:
            for k, v in self.secrets.get(sid_, {}).items():
                argv += ["-e", f"{k}={v}"]
        for src in req.secret_sources:
            for k, v in src.env.contents.items():
                argv += ["-e", f"{k}={v}"]
        argv += [image_ref, *d.entrypoint_args]
        self.sandboxes[sid] = sb
        self.by_task[sb.task_id] = sb
        code, out = await _run(*argv, timeout=120)
        if code != 0:
            self.finish(sb, api_pb2.GenericResult.GENERIC_STATUS_FAILURE, 1,
                        exception=out.decode("utf-8", "replace")[-500:], remove=True)
            return sb
        sb.running = True
        if d.workdir:  # Modal creates the working directory
            await _run(self.docker, "exec", sb.container, "mkdir", "-p", d.workdir, timeout=30)
        sb.timer = asyncio.ensure_future(self._lifetime(sb, sb.timeout_s))
        f = self.faults()
        self._creates_started = getattr(self, "_creates_started", 0) + 1
        if f.exit_every and self._creates_started % f.exit_every == 0:
            self.background(self._kill_later(sb, f.exit_after_s))
        return sb

    async def _lifetime(self, sb: FakeSandbox, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.finish(sb, api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT, 0, remove=True)

    async def _kill_later(self, sb: FakeSandbox, after: float) -> None:
        await asyncio.sleep(after)
        if sb.running:  # "from outside": the container dies; the events stream reports it
            await _run(self.docker, "kill", sb.container, timeout=30)

    async def _container_running(self, sb: FakeSandbox) -> bool:
        code, out = await _run(self.docker, "inspect", "-f", "{{.State.Running}}", sb.container, timeout=30)
        return code == 0 and out.strip() == b"true"

    async def terminate(self, sb: FakeSandbox) -> None:
        self.finish(sb, api_pb2.GenericResult.GENERIC_STATUS_TERMINATED, 137, remove=False)
        await _run(self.docker, "rm", "-f", sb.container, timeout=60)

    def admit_create(self) -> float | None:
        """Token bucket for the create rate; returns seconds to wait when over the limit."""
        rate = self.faults().create_rate
        if rate <= 0:
            return None
        now = time.monotonic()
        # Burst capacity: one second's worth of creates (at least one).
        self._bucket = min(max(1.0, rate), self._bucket + (now - self._bucket_t) * rate)
        self._bucket_t = now
        if self._bucket >= 1.0 - 1e-9:
            self._bucket -= 1.0
            return None
        return (1.0 - self._bucket) / rate

    # ------------------------------------------------------------------ exec

    async def exec_start(self, req: sr_pb2.TaskExecStartRequest) -> None:
        sb = self.task(req.task_id)
        if req.exec_id in sb.execs:
            return  # idempotent on exec_id, like the real router
        argv = [self.docker, "exec", "-i", "-e", f"{EXEC_VAR}={req.exec_id}"]
        if req.HasField("workdir"):
            argv += ["-w", req.workdir]
        for src in req.secret_sources:
            for k, v in src.env.contents.items():
                argv += ["-e", f"{k}={v}"]
        argv += [sb.container, *req.command_args]
        devnull = asyncio.subprocess.DEVNULL
        pipe_out = req.stdout_config != sr_pb2.TaskExecStdoutConfig.TASK_EXEC_STDOUT_CONFIG_DEVNULL
        pipe_err = req.stderr_config != sr_pb2.TaskExecStderrConfig.TASK_EXEC_STDERR_CONFIG_DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE if pipe_out else devnull,
            stderr=asyncio.subprocess.PIPE if pipe_err else devnull,
        )
        ex = Exec(req.exec_id, proc)
        ex.eof[1], ex.eof[2] = not pipe_out, not pipe_err
        sb.execs[req.exec_id] = ex
        pumps = []
        if pipe_out:
            pumps.append(self._pump(ex, 1, proc.stdout))
        if pipe_err:
            pumps.append(self._pump(ex, 2, proc.stderr))
        self.background(self._reap(sb, ex, pumps, req.timeout_secs if req.HasField("timeout_secs") else 0))

    async def _pump(self, ex: Exec, fd: int, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while True:
            data = await stream.read(CHUNK)
            if not data:
                break
            ex.out[fd] += data
            ex.notify()
        ex.eof[fd] = True
        ex.notify()

    async def _reap(self, sb: FakeSandbox, ex: Exec, pumps: list[Any], timeout_s: int) -> None:
        async def wait_all() -> None:
            await asyncio.gather(*pumps)
            await ex.proc.wait()

        try:
            async with asyncio.timeout(timeout_s or None):
                await wait_all()
            ex.code = ex.proc.returncode
        except TimeoutError:
            # The exec's timeout: kill every process of this exec inside the container.
            if sb.running:
                await _run(self.docker, "exec", sb.container, "sh", "-c", _KILL_EXEC, "sh", ex.exec_id, timeout=30)
            with contextlib.suppress(ProcessLookupError):
                ex.proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await wait_all()
            ex.code = 128 + 9
        if sb.running and ex.code != 0 and not await self._container_running(sb):
            # The exec ended because the container died (docker's "die" event may still be on
            # its way): for Modal that is an exec whose task finished.
            self.finish(sb, api_pb2.GenericResult.GENERIC_STATUS_FAILURE, 137, remove=True)
        if not sb.running:  # the task died under the exec
            ex.code = 128 + 9 if ex.code is None or ex.code < 0 else ex.code
            ex.gone = True
        if ex.code is not None and ex.code < 0:
            ex.code = 128 - ex.code
        ex.eof[1] = ex.eof[2] = True
        ex.done.set()
        ex.notify()

    def get_exec(self, task_id: str, exec_id: str) -> Exec:
        sb = self.by_task.get(task_id)
        if sb is None or exec_id not in sb.execs:
            raise GRPCError(Status.NOT_FOUND, f"exec {exec_id} not found")
        ex = sb.execs[exec_id]
        if ex.gone:
            raise GRPCError(Status.NOT_FOUND, f"task {task_id} has finished")
        return ex

    async def close(self) -> None:
        """Remove every container of this instance (and stop watching the engine)."""
        for sb in list(self.sandboxes.values()):
            if sb.timer is not None:
                sb.timer.cancel()
        code, out = await _run(self.docker, "ps", "-aq", "--filter", f"label={LABEL}={self.instance}", timeout=30)
        ids = out.decode().split()
        if ids:
            await _run(self.docker, "rm", "-f", *ids, timeout=120)
        if self.snapshot_tags:
            await _run(self.docker, "rmi", "-f", *self.snapshot_tags, timeout=120)
        if self._events is not None and self._events.returncode is None:
            self._events.kill()
            await self._events.wait()
        if self._events_task is not None:
            self._events_task.cancel()


def _unimplemented_base(base: type, fake_attr: str) -> type:
    """``base`` with every abstract RPC answering UNIMPLEMENTED (and recording its name)."""

    def make(name: str) -> Any:
        async def handler(self: Any, stream: grpclib.server.Stream[Any, Any]) -> None:
            getattr(self, fake_attr).unimplemented.append(name)
            print(f"fake-modal: UNIMPLEMENTED {name}", file=sys.stderr, flush=True)
            raise GRPCError(Status.UNIMPLEMENTED, f"{name} is not implemented by the hermes Modal fake")

        handler.__name__ = name
        return handler

    ns = {n: make(n) for n in base.__abstractmethods__}
    return type(f"Unimplemented{base.__name__}", (base,), ns)


def _sandbox_info(sb: FakeSandbox) -> api_pb2.SandboxInfo:
    info = api_pb2.SandboxInfo(
        id=sb.sandbox_id, created_at=sb.created_at, app_id=sb.app_id, name=sb.name, image_id=sb.image_id,
        tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sb.tags.items()],
        timeout_secs=sb.timeout_s,
        task_info=api_pb2.TaskInfo(id=sb.task_id, started_at=sb.created_at, sandbox_id=sb.sandbox_id),
        metadata=api_pb2.SandboxHandleMetadata(app_id=sb.app_id),
    )
    if sb.result is not None:
        info.task_info.result.CopyFrom(sb.result)
    return info


class ControlServicer(_unimplemented_base(api_grpc.ModalClientBase, "fake")):  # type: ignore[misc]
    def __init__(self, fake: FakeModal):
        self.fake = fake

    async def _req(self, stream: grpclib.server.Stream[Any, Any], name: str) -> Any:
        self.fake.count(name)
        self.fake.check_auth(stream)
        return await stream.recv_message()

    async def ClientHello(self, stream):
        await self._req(stream, "ClientHello")
        await stream.send_message(api_pb2.ClientHelloResponse(image_builder_version="2025.06"))

    async def AuthTokenGet(self, stream):
        await self._req(stream, "AuthTokenGet")
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=_jwt()))

    async def EnvironmentGetOrCreate(self, stream):
        await self._req(stream, "EnvironmentGetOrCreate")
        await stream.send_message(api_pb2.EnvironmentGetOrCreateResponse(
            environment_id="en-fake",
            metadata=api_pb2.EnvironmentMetadata(
                name="main", settings=api_pb2.EnvironmentSettings(image_builder_version="2025.06")),
        ))

    async def AppGetOrCreate(self, stream):
        req = await self._req(stream, "AppGetOrCreate")
        app_id = self.fake.apps.setdefault(req.app_name, "ap-" + uuid.uuid4().hex[:22])
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app_id))

    async def SecretGetOrCreate(self, stream):
        req = await self._req(stream, "SecretGetOrCreate")
        secret_id = f"st-{req.deployment_name}"
        if req.env_dict:  # an ephemeral or created-on-the-fly secret
            self.fake.secrets[secret_id] = dict(req.env_dict)
        if secret_id not in self.fake.secrets:
            raise GRPCError(Status.NOT_FOUND, f"Secret {req.deployment_name!r} not found")
        await stream.send_message(api_pb2.SecretGetOrCreateResponse(
            secret_id=secret_id,
            metadata=api_pb2.SecretMetadata(name=req.deployment_name, keys=sorted(self.fake.secrets[secret_id]))))

    async def ImageGetOrCreate(self, stream):
        req = await self._req(stream, "ImageGetOrCreate")
        image_id, err = await self.fake.build_image(req.image)
        if err:
            result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_FAILURE, exception=err)
            self.fake.images.pop(image_id, None)
        else:
            result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
        await stream.send_message(api_pb2.ImageGetOrCreateResponse(
            image_id=image_id, result=result, metadata=api_pb2.ImageMetadata(image_builder_version="2025.06")))

    async def ImageJoinStreaming(self, stream):
        req = await self._req(stream, "ImageJoinStreaming")
        ok = req.image_id in self.fake.images
        status = api_pb2.GenericResult.GENERIC_STATUS_SUCCESS if ok else api_pb2.GenericResult.GENERIC_STATUS_FAILURE
        await stream.send_message(api_pb2.ImageJoinStreamingResponse(
            result=api_pb2.GenericResult(status=status), eof=True))

    async def ImageFromId(self, stream):
        req = await self._req(stream, "ImageFromId")
        if req.image_id not in self.fake.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {req.image_id} not found")
        await stream.send_message(api_pb2.ImageFromIdResponse(image_id=req.image_id))

    async def SandboxCreateV2(self, stream):
        req = await self._req(stream, "SandboxCreateV2")
        fake = self.fake
        f = fake.faults()
        fake._creates += 1
        if f.unavailable_every and fake._creates % f.unavailable_every == 0:
            raise GRPCError(Status.UNAVAILABLE, "fake: injected UNAVAILABLE on create")
        wait = fake.admit_create()
        if wait is not None:
            fake.count("SandboxCreateV2.rate_limited")
            raise GRPCError(Status.RESOURCE_EXHAUSTED, "fake: sandbox create rate limit exceeded",
                            [api_pb2.RPCRetryPolicy(retry_after_secs=max(wait, 0.05))])
        if f.slow_create_s:
            await asyncio.sleep(f.slow_create_s)
        sb = await fake.create_sandbox(req)
        if f.lost_create_every and fake._creates % f.lost_create_every == 0:
            fake.count("SandboxCreateV2.lost")
            raise GRPCError(Status.UNAVAILABLE, "fake: injected UNAVAILABLE after the sandbox was created")
        await stream.send_message(api_pb2.SandboxCreateV2Response(
            sandbox_id=sb.sandbox_id, task_id=sb.task_id if sb.running else "",
            metadata=api_pb2.SandboxHandleMetadata(app_id=sb.app_id),
        ))

    async def SandboxGetTaskIdV2(self, stream):
        req = await self._req(stream, "SandboxGetTaskIdV2")
        sb = self.fake.sandbox(req.sandbox_id)
        resp = api_pb2.SandboxGetTaskIdResponse()
        if sb.running:
            resp.task_id = sb.task_id
        elif sb.result is not None:
            resp.task_result.CopyFrom(sb.result)
        await stream.send_message(resp)

    async def SandboxGetCommandRouterAccess(self, stream):
        req = await self._req(stream, "SandboxGetCommandRouterAccess")
        if req.sandbox_id:
            sb = self.fake.sandbox(req.sandbox_id)
            if not sb.running:
                raise GRPCError(Status.FAILED_PRECONDITION, f"Sandbox {sb.sandbox_id} has finished")
        await stream.send_message(api_pb2.SandboxGetCommandRouterAccessResponse(jwt=_jwt(), url=self.fake.router_url))

    async def SandboxWaitV2(self, stream):
        req = await self._req(stream, "SandboxWaitV2")
        sb = self.fake.sandbox(req.sandbox_id)
        if req.timeout > 0 and sb.result is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(req.timeout):
                    await sb.finished.wait()
        resp = api_pb2.SandboxWaitResponse(metadata=api_pb2.SandboxHandleMetadata(app_id=sb.app_id))
        if sb.result is not None:
            resp.result.CopyFrom(sb.result)
        await stream.send_message(resp)

    async def SandboxTerminateV2(self, stream):
        req = await self._req(stream, "SandboxTerminateV2")
        fake = self.fake
        fake._terminates += 1
        f = fake.faults()
        if f.terminate_unavailable_every and fake._terminates % f.terminate_unavailable_every == 0:
            raise GRPCError(Status.UNAVAILABLE, "fake: injected UNAVAILABLE on terminate")
        sb = fake.sandbox(req.sandbox_id)
        existing = sb.result
        if sb.running:
            await fake.terminate(sb)
        resp = api_pb2.SandboxTerminateResponse()
        if existing is not None:
            resp.existing_result.CopyFrom(existing)
        await stream.send_message(resp)

    async def SandboxListV2(self, stream):
        req = await self._req(stream, "SandboxListV2")
        want = {t.tag_name: t.tag_value for t in req.tags}
        found = [
            sb for sb in self.fake.sandboxes.values()
            if (not req.app_id or sb.app_id == req.app_id)
            and (req.include_finished or sb.running)
            and (not req.before_timestamp or sb.created_at < req.before_timestamp)
            and all(sb.tags.get(k) == v for k, v in want.items())
        ]
        found.sort(key=lambda s: s.created_at, reverse=True)
        await stream.send_message(api_pb2.SandboxListResponse(sandboxes=[_sandbox_info(s) for s in found[:100]]))

    async def SandboxTagsGetV2(self, stream):
        req = await self._req(stream, "SandboxTagsGetV2")
        sb = self.fake.sandbox(req.sandbox_id)
        await stream.send_message(api_pb2.SandboxTagsGetResponse(
            tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sb.tags.items()]))

    async def SandboxTagsSetV2(self, stream):
        req = await self._req(stream, "SandboxTagsSetV2")
        sb = self.fake.sandbox(req.sandbox_id)
        sb.tags = {t.tag_name: t.tag_value for t in req.tags}
        await stream.send_message(empty_pb2.Empty())

    async def SandboxGetFromNameV2(self, stream):
        req = await self._req(stream, "SandboxGetFromNameV2")
        app_id = self.fake.apps.get(req.app_name)
        for sb in self.fake.sandboxes.values():
            if sb.app_id == app_id and sb.name == req.sandbox_name and (sb.running or req.include_terminated):
                await stream.send_message(api_pb2.SandboxGetFromNameResponse(
                    sandbox_id=sb.sandbox_id, metadata=api_pb2.SandboxHandleMetadata(app_id=sb.app_id)))
                return
        raise GRPCError(Status.NOT_FOUND, f"Sandbox {req.sandbox_name!r} not found in app {req.app_name!r}")


class RouterServicer(_unimplemented_base(tcr_grpc.TaskCommandRouterBase, "fake")):  # type: ignore[misc]
    def __init__(self, fake: FakeModal):
        self.fake = fake

    async def _req(self, stream: grpclib.server.Stream[Any, Any], name: str) -> Any:
        self.fake.count(name)
        md = stream.metadata or {}
        if not md.get("authorization", "").startswith("Bearer "):
            raise GRPCError(Status.UNAUTHENTICATED, "missing command router JWT")
        return await stream.recv_message()

    async def TaskExecStart(self, stream):
        req = await self._req(stream, "TaskExecStart")
        await self.fake.exec_start(req)
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    async def TaskExecStdioRead(self, stream):
        req = await self._req(stream, "TaskExecStdioRead")
        ex = self.fake.get_exec(req.task_id, req.exec_id)
        fd = 2 if req.file_descriptor == sr_pb2.TaskExecStdioFileDescriptor.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDERR else 1
        offset = req.offset
        while True:
            buf = ex.out[fd]
            if offset < len(buf):
                data = bytes(buf[offset:offset + CHUNK])
                offset += len(data)
                await stream.send_message(sr_pb2.TaskExecStdioReadResponse(data=data))
                continue
            if ex.eof[fd]:
                return
            await ex.changed.wait()

    async def TaskExecStdinWrite(self, stream):
        req = await self._req(stream, "TaskExecStdinWrite")
        ex = self.fake.get_exec(req.task_id, req.exec_id)
        async with ex.stdin_lock:
            skip = ex.stdin_written - req.offset  # retried writes: offsets make them idempotent
            data = req.data[skip:] if skip > 0 else req.data
            stdin = ex.proc.stdin
            if data and not ex.stdin_closed and stdin is not None:
                try:
                    stdin.write(data)
                    await stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    ex.stdin_closed = True
                ex.stdin_written += len(data)
            if req.eof and not ex.stdin_closed and stdin is not None:
                ex.stdin_closed = True
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    stdin.close()
        await stream.send_message(sr_pb2.TaskExecStdinWriteResponse())

    async def TaskExecStdinStatus(self, stream):
        req = await self._req(stream, "TaskExecStdinStatus")
        ex = self.fake.get_exec(req.task_id, req.exec_id)
        await stream.send_message(sr_pb2.TaskExecStdinStatusResponse(
            num_bytes_written=ex.stdin_written, closed=ex.stdin_closed))

    def _status(self, ex: Exec, resp: Any) -> Any:
        if ex.code is not None:
            resp.code = ex.code
        return resp

    async def TaskExecWait(self, stream):
        req = await self._req(stream, "TaskExecWait")
        ex = self.fake.get_exec(req.task_id, req.exec_id)
        await ex.done.wait()
        if ex.gone:
            raise GRPCError(Status.NOT_FOUND, f"task {req.task_id} has finished")
        await stream.send_message(self._status(ex, sr_pb2.TaskExecWaitResponse()))

    async def TaskExecPoll(self, stream):
        req = await self._req(stream, "TaskExecPoll")
        ex = self.fake.get_exec(req.task_id, req.exec_id)
        await stream.send_message(self._status(ex, sr_pb2.TaskExecPollResponse()))

    async def TaskSnapshotFilesystem(self, stream):
        req = await self._req(stream, "TaskSnapshotFilesystem")
        fake = self.fake
        sb = fake.task(req.task_id)
        tag = f"hermes-fake-modal/snap-{uuid.uuid4().hex[:16]}:latest"
        code, out = await _run(fake.docker, "commit", "--change", "LABEL " + f"{LABEL}=image", sb.container, tag,
                               timeout=300)
        if code != 0:
            raise GRPCError(Status.INTERNAL, f"snapshot failed: {out.decode('utf-8', 'replace')[-300:]}")
        image_id = f"im-snap-{uuid.uuid4().hex[:16]}"
        fake.images[image_id] = tag
        fake.snapshot_tags.append(tag)
        await stream.send_message(sr_pb2.TaskSnapshotFilesystemResponse(image_id=image_id))


async def serve(fake: FakeModal, *, host: str = "127.0.0.1", port: int = 0, router_port: int = 0):
    """Start both servers; returns (control server, router server, control URL)."""
    await fake.start_events()
    fake.background(fake.write_stats())
    control = grpclib.server.Server([ControlServicer(fake)], status_details_codec=custom_detail_codec)
    router = grpclib.server.Server([RouterServicer(fake)], status_details_codec=custom_detail_codec)
    await control.start(host, port)
    await router.start(host, router_port)
    cport = control._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rport = router._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.router_url = f"http://{host}:{rport}"
    return control, router, f"http://{host}:{cport}"


__all__ = ["ControlServicer", "FakeModal", "Faults", "LABEL", "RouterServicer", "serve"]
_ = grpclib.const  # the servicer bases' handler table uses it
