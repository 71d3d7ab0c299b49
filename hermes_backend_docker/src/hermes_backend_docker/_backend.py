"""The ``docker`` backend: one container per sandbox, driven through the Docker API."""

from __future__ import annotations

import asyncio
import functools
import math
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hermes_core.errors import SandboxError
from hermes_core.sandbox import (
    TIMEOUT_EXIT_CODE,
    Capabilities,
    Command,
    ExecResult,
    Process,
    Sandbox,
    owner_alive,
    owner_record,
    timeout_note,
)

from ._build import build_image, map_image
from ._engine import (
    ContainerGoneError,
    ImageNotFoundError,
    connect,
    engine_url,
    exit_code,
    in_thread,
    is_running,
    translate,
)
from ._files import Archive
from ._options import DockerOptions
from ._process import KILL_MARKED, SIGNAL_GROUP, DockerProcess, ExecJob, open_process

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["DockerSandbox", "sweep"]

T = TypeVar("T")

#: Label every hermes container carries; ``sweep`` finds leftovers by it.
BACKEND_LABEL = "hermes.backend"
#: The longest ``sleep`` argument every ``sleep`` accepts (busybox parses a C int).
_FOREVER = 2_147_483_647
_NOT_FOUND = re.compile(rb"executable file not found|exec: \S+: no such file or directory")
#: Once the engine says a one-shot command exited, how long its output may still trickle in.
_DRAIN = 0.25


class DockerSandbox(Sandbox):
    """A sandbox that is one container (see :class:`DockerOptions`).

    The container's main process is ``sleep <max_lifetime>`` under an init, so a container
    whose driver died stops (and, being ``auto_remove``, disappears) by itself.
    """

    backend_name = "docker"
    capabilities = Capabilities(
        pty=True, native_files=True, network_policy=True, isolated_filesystem=True, isolated_processes=True
    )
    #: An engine starting hundreds of execs at once can take minutes (measured at 256 rollouts).
    shell_start_timeout = 180.0

    def __init__(
        self, options: DockerOptions | None = None, *, sandbox_id: str, labels: Mapping[str, str] | None = None
    ):
        super().__init__(options or DockerOptions(), sandbox_id=sandbox_id, labels=labels)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", sandbox_id)[:48].strip("-.") or "sandbox"
        #: Known before creation, so a creation interrupted by cancellation can still be found.
        self.container_name = f"hermes-{safe}-{secrets.token_hex(3)}"
        self.container_id: str | None = None
        self._api: APIClient | None = None
        self._archive: Archive | None = None
        self._creating: asyncio.Future[None] | None = None
        self._processes: set[DockerProcess] = set()
        self._background: set[asyncio.Future[Any]] = set()
        #: The image the container runs: ``image`` after the image map, or the built image.
        self.image: str = map_image(self.opts.image, self.opts.image_map)
        #: Whether starting this sandbox built its image (False: it existed, or was not built).
        self.built_image = False
        #: Published ports: container port -> ``(host ip, host port)`` (option ``ports``).
        self.ports: dict[int, tuple[str, int]] = {}
        self._workdir = self.opts.workdir or "/"

    @property
    def opts(self) -> DockerOptions:
        return self.options

    @property
    def workdir(self) -> str:
        return self._workdir

    def url(self, port: int, scheme: str = "http") -> str:
        """``http://127.0.0.1:<host port>`` of a published container port (option ``ports``).

        Raises:
            KeyError: ``port`` was not published.
        """
        if port not in self.ports:
            raise KeyError(f"container port {port} is not published; published: {sorted(self.ports) or 'none'} (option ports)")
        host, host_port = self.ports[port]
        return f"{scheme}://{host}:{host_port}"

    # ------------------------------------------------------------------ lifecycle

    async def _start(self) -> None:
        self._api = await in_thread(connect, self.opts.docker_host)
        if self.opts.build is not None:
            self.image, self.built_image = await self._call_future(
                in_thread(partial(
                    build_image, self._api, self.opts.build, self.opts.image_map,
                    labels=dict(self.opts.labels), docker_host=self.opts.docker_host,
                )),
                what="building the image",
            )
        else:
            await self._call(self._ensure_image, what="preparing the image")
        if self.opts.workdir is None:
            self._workdir = await self._call(self._image_workdir, what="inspecting the image")
        # Shielded: if start() is cancelled the thread still finishes, and _close waits for it
        # so that a container created at the last moment is removed too.
        self._creating = in_thread(self._create)
        await self._call_future(asyncio.shield(self._creating), what="creating the container")
        if self.opts.user is not None:
            await self._call(self._prepare_user, what="preparing the user")
        else:
            self._archive = Archive(self._api, self._cid, (0, 0), self._mkdir)

    def _ensure_image(self) -> None:
        import docker.errors
        from docker.utils import parse_repository_tag

        api, image, policy = self._api, self.image, self.opts.pull
        assert api is not None
        if policy != "always":
            try:
                api.inspect_image(image)
                return
            except docker.errors.NotFound:
                pass
            if policy == "never":
                raise ImageNotFoundError(
                    f"image {image!r} is not present on the engine at {engine_url(self.opts.docker_host)} "
                    "and the pull policy is 'never'. Build or load it there (docker build / docker load / "
                    "docker import), or set the option pull='missing'."
                )
        repo, tag = parse_repository_tag(image)
        try:
            for event in api.pull(repo, tag=tag or "latest", stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise docker.errors.APIError(event["error"])
        except docker.errors.APIError as e:
            raise ImageNotFoundError(
                f"image {image!r} is not present on the engine at {engine_url(self.opts.docker_host)} "
                f"and could not be pulled (pull policy {policy!r}): {e.explanation or e}. Build or load "
                "it locally (docker build / docker load / docker import) or check the image name."
            ) from None

    def _image_workdir(self) -> str:
        assert self._api is not None
        return (self._api.inspect_image(self.image).get("Config") or {}).get("WorkingDir") or "/"

    def _create(self) -> None:
        api, o = self._api, self.opts
        assert api is not None
        labels = {
            **o.labels,
            **self.labels,
            BACKEND_LABEL: "docker",
            "hermes.sandbox": self.sandbox_id,
        }
        labels.setdefault("hermes.created", str(int(time.time())))
        # The owner (this driver), so a sweep removes only what a dead driver left.
        owner = owner_record(self.opts.max_lifetime)
        for key, value in (("hermes.owner.pid", owner["pid"]), ("hermes.owner.start", owner["start_ticks"]),
                           ("hermes.owner.boot", owner["boot_id"] or ""), ("hermes.owner.host", owner["host"])):
            labels.setdefault(key, str(value))
        if self.opts.max_lifetime is not None:
            labels["hermes.max_lifetime"] = str(self.opts.max_lifetime)
        # Only what the user asked for crosses over: the host environment (API keys) does not.
        env = {k: os.environ[k] for k in o.pass_env if k in os.environ}
        env.update(o.env)
        host_config = api.create_host_config(
            network_mode=o.network,
            init=o.init,
            auto_remove=True,
            mem_limit=o.memory,
            nano_cpus=int(o.cpus * 1e9) if o.cpus else None,
            pids_limit=o.pids_limit,
            binds=list(o.volumes) or None,
            storage_opt={"size": o.storage} if o.storage else None,
            # Loopback only, host port picked by the engine: nothing is reachable from outside.
            port_bindings={p: ("127.0.0.1",) for p in o.ports} or None,
        )
        lifetime = str(_FOREVER if o.max_lifetime is None else max(1, math.ceil(o.max_lifetime)))
        created = api.create_container(
            self.image,
            command=[lifetime],
            entrypoint=["sleep"],  # the image's own entrypoint would get "sleep"'s argument
            name=self.container_name,
            labels=labels,
            environment=env,
            working_dir=self._workdir,
            user=o.user,
            host_config=host_config,
            ports=list(o.ports) or None,
            detach=True,
        )
        self.container_id = created["Id"]
        api.start(self.container_id)
        if o.ports:
            self.ports = _published(api.inspect_container(self.container_id), o.ports)

    def _prepare_user(self) -> None:
        """Give the working directory to the sandbox's user and learn its uid/gid for uploads."""
        api = self._api
        assert api is not None and self.opts.user is not None
        run = _run_blocking(api, self._cid)
        run(["chown", self.opts.user, self._workdir], "root")
        ids = run(["sh", "-c", "id -u; id -g"], None).split()
        owner = (int(ids[0]), int(ids[1])) if len(ids) == 2 and all(i.isdigit() for i in ids) else (0, 0)
        self._archive = Archive(api, self._cid, owner, self._mkdir)

    @property
    def _cid(self) -> str:
        assert self.container_id is not None
        return self.container_id

    async def _close(self) -> None:
        if self._creating is not None:
            try:
                # Waits for a creation still running on its thread (start() was cancelled).
                await self._creating
            except BaseException:  # noqa: BLE001 - whatever happened, clean up what exists
                pass
        api = self._api
        if api is None:
            return
        target = self.container_id or self.container_name
        try:
            await in_thread(_remove, api, target)
        finally:
            for proc in list(self._processes):
                proc.detach()
            self._processes.clear()
            api.close()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            container=self.container_name, container_id=self.container_id, image=self.image,
            built_image=self.built_image, ports={str(k): f"{h}:{p}" for k, (h, p) in self.ports.items()},
        )
        return info

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        return await self._call_future(in_thread(fn, *args), what=what)

    async def _call_future(self, fut: Awaitable[T], *, what: str) -> T:
        try:
            return await fut
        except Exception as e:  # noqa: BLE001 - translated, or re-raised as it was
            err = translate(e, what=what, container=self.container_name, docker_host=self.opts.docker_host)
            if err is e:
                raise
            raise err from None

    def _mkdir(self, path: str) -> None:
        """Blocking ``mkdir -p`` as the sandbox's user (uploads into new directories)."""
        out = _run_blocking(self._api, self._cid)(["mkdir", "-p", "--", path], None, check=False)
        if out is not None:
            raise NotADirectoryError(f"cannot create directory {path!r} in sandbox: {out.strip()}")

    def _exec_path(self, cwd: str | None) -> str:
        return self.path(cwd) if cwd else self.workdir

    # ------------------------------------------------------------------ commands

    async def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        self._check_open()
        job = ExecJob(self._api, self._cid, self.argv(command), env=env, workdir=self._exec_path(cwd), stdin=stdin,
                      max_output=self.output_limit)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        fut = in_thread(job.run)
        try:
            code = await self._finish(job, fut, deadline)
        except TimeoutError:
            await self._reap(job, fut)
            job.abandon()
            output = job.output().decode("utf-8", "replace")
            output += timeout_note(timeout)
            return ExecResult(TIMEOUT_EXIT_CODE, output, timed_out=True)
        except asyncio.CancelledError:
            # The caller gave up: the command must not run on unobserved.
            self._spawn_background(self._reap(job, fut))
            raise
        if code is None:
            await self._call(self._inspect_container, what="running a command")
            code = 255
        output = job.output()
        if code == 126 and output.startswith(b"OCI runtime exec failed") and _NOT_FOUND.search(output):
            code = 127  # what a shell reports for a missing command, and what the local backend does
        return ExecResult(code, output.decode("utf-8", "replace"))

    async def _finish(self, job: ExecJob, fut: asyncio.Future[int | None], deadline: float | None) -> int | None:
        """Wait for the command; return its exit code. Raises TimeoutError at the deadline.

        The engine keeps an exec's stream open for up to 2 s after the command exits when
        descendants outlive it, so after a moment the engine is also asked about the exit.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            now = loop.time()
            step = 0.5 if now - started >= 0.5 else 0.5 - (now - started)
            if deadline is not None:
                if now >= deadline:
                    raise TimeoutError
                step = min(step, deadline - now)
            await asyncio.wait({fut}, timeout=step)
            if fut.done():
                return await self._call_future(fut, what="running a command")
            if job.exec_id is None or loop.time() - started < 0.5:
                continue
            if await in_thread(is_running, self._api, job.exec_id) is False:
                await asyncio.wait({fut}, timeout=_DRAIN)
                if fut.done():
                    return await self._call_future(fut, what="running a command")
                job.abandon()
                return await in_thread(exit_code, self._api, job.exec_id)

    async def _reap(self, job: ExecJob, fut: asyncio.Future[int | None]) -> None:
        """Kill a one-shot command that is still running, and wait until its stream ends."""
        # A command whose exec is still being created cannot be found yet: let it appear first.
        for _ in range(500):
            if job.stream is not None or fut.done():
                break
            await asyncio.sleep(0.01)
        for grace in (1.0, 2.0):  # a second pass catches a process that started during the first
            if fut.done():
                return
            await self._kill_marked(job.marker)
            await asyncio.wait({fut}, timeout=grace)  # the engine ends the stream once all are dead

    async def _kill_marked(self, marker: str) -> None:
        """SIGKILL every process (and its group) of one one-shot exec."""
        if self.container_id is None or self._api is None:
            return
        try:
            await in_thread(_run_blocking(self._api, self._cid), ["sh", "-c", KILL_MARKED, "sh", marker], None)
        except Exception:  # noqa: BLE001 - the container may be gone; nothing left to kill then
            pass

    def _inspect_container(self) -> None:
        assert self._api is not None
        state = self._api.inspect_container(self._cid).get("State", {})
        if not state.get("Running"):
            raise ContainerGoneError(
                f"the container {self.container_name} of sandbox {self.sandbox_id} is not running "
                f"(status {state.get('Status')!r}): it was stopped outside hermes or reached its max_lifetime"
            )

    def _spawn_background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self._check_open()
        start = partial(
            open_process, self._api, self._cid, self.argv(command), pty=pty, env=env, workdir=self._exec_path(cwd)
        )
        exec_id, stream, chunks, pid, early, ended = await self._call(start, what="starting a process")
        proc = DockerProcess(
            self._api,
            exec_id,
            stream,
            chunks,
            pid=pid,
            pty=pty,
            early=early,
            ended=ended,
            signaller=self._signal_group,
            closing=lambda: self.closed,
        )
        self._processes.add(proc)
        return proc

    async def _signal_group(self, sig: int, pid: int) -> None:
        # Deliberately not _check_open(): close() stops the shell before removing the container.
        if self.container_id is None or self._api is None:
            return
        await self._call(
            _run_blocking(self._api, self._cid),
            ["sh", "-c", SIGNAL_GROUP, "sh", str(sig), str(pid)],
            None,
            what="signalling a process",
        )

    # ------------------------------------------------------------------ files (archive API)

    async def write_bytes(self, path: str, data: bytes) -> None:
        self._check_open()
        await self._call(self._archive.write, self.path(path), data, what=f"writing {path!r}")

    async def read_bytes(self, path: str) -> bytes:
        self._check_open()
        return await self._call(self._archive.read, self.path(path), self.max_read_bytes, what=f"reading {path!r}")

    async def put_file(self, local_path: str | Path, remote_path: str) -> int:
        self._check_open()
        return await self._call(
            self._archive.put_file, Path(local_path), self.path(remote_path), what=f"uploading to {remote_path!r}"
        )

    async def get_file(self, remote_path: str, local_path: str | Path) -> int:
        self._check_open()
        return await self._call(
            self._archive.get_file, self.path(remote_path), Path(local_path), self.max_download_bytes,
            what=f"downloading {remote_path!r}",
        )

    async def put_dir(self, local_dir: str | Path, remote_dir: str) -> list[str]:
        self._check_open()
        return await self._call(
            self._archive.put_dir, Path(local_dir), self.path(remote_dir), what=f"uploading to {remote_dir!r}"
        )

    async def get_dir(
        self, remote_dir: str, local_dir: str | Path, *, keep_special: bool = False, skipped: list[str] | None = None
    ) -> list[str]:
        self._check_open()
        return await self._call(
            functools.partial(self._archive.get_dir, keep_special=keep_special, skipped=skipped,
                              max_bytes=self.max_download_bytes),
            self.path(remote_dir), Path(local_dir), what=f"downloading {remote_dir!r}",
        )


def _published(info: Mapping[str, Any], ports: list[int]) -> dict[int, tuple[str, int]]:
    bound = (info.get("NetworkSettings") or {}).get("Ports") or {}
    out: dict[int, tuple[str, int]] = {}
    for port in ports:
        for b in bound.get(f"{port}/tcp") or []:
            if b.get("HostIp") == "127.0.0.1" and b.get("HostPort"):
                out[port] = ("127.0.0.1", int(b["HostPort"]))
                break
        else:
            raise SandboxError(f"the engine did not publish container port {port} on 127.0.0.1: {bound.get(f'{port}/tcp')!r}")
    return out


def _run_blocking(api: Any, container: str) -> Callable[..., Any]:
    """A blocking helper ``run(argv, user, check=True)`` for the backend's own small commands.

    With ``check`` it returns the output and raises on failure; without, it returns ``None``
    on success and the output on failure.
    """
    from ._engine import ExecStream

    def run(argv: list[str], user: str | None, check: bool = True) -> str | None:
        created = api.exec_create(container, argv, user=user or "")
        stream = ExecStream(api, created["Id"], tty=False)
        try:
            out = b"".join(data for _, data in stream.chunks()).decode("utf-8", "replace")
        finally:
            stream.close()
        code = exit_code(api, created["Id"])
        if check:
            if code != 0:
                raise SandboxError(f"{argv[0]} failed in the container (exit {code}): {out.strip()}")
            return out
        return None if code == 0 else out

    return run


#: How long close waits for the engine to remove a container. Under load the engine takes more
#: than 10 s just to kill a container (measured: 256 sandboxes closing at once on 2 cores).
REMOVE_PATIENCE = 120.0


def _remove(api: Any, container: str, *, patience: float = REMOVE_PATIENCE) -> None:
    """Force-remove a container and wait until the engine no longer has it.

    Already gone counts as done; already being removed (``auto_remove``) is waited for. An
    engine under load sometimes gives a removal up half-way ("unable to remove filesystem ...:
    directory not empty") and leaves the container dead, listed as "Removal In Progress" for
    good; a dead container is asked to be removed again, which then succeeds.

    Raises:
        SandboxError: the container was still there after ``patience`` seconds.
    """
    import docker.errors

    deadline = time.monotonic() + patience
    delay = 0.02
    ask, asked, last = True, 0.0, ""
    while True:
        if ask:
            asked = time.monotonic()
            try:
                api.remove_container(container, force=True, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as e:
                # 409: the engine is already removing it; 5xx: it failed half-way (asked again
                # below once it is dead). Anything else is a real error.
                if e.status_code != 409 and (e.status_code or 0) < 500:
                    raise
                last = str(e.explanation or e)
        try:
            state = api.inspect_container(container).get("State") or {}
        except docker.errors.NotFound:
            return
        # Dead: being removed right now, or left behind by a removal that failed (then with the
        # engine's error, or still dead a while later): ask again.
        ask = bool(state.get("Dead")) and (bool(state.get("Error")) or time.monotonic() - asked > 5)
        last = state.get("Error") or last
        if time.monotonic() > deadline:
            raise SandboxError(f"container {container} was still present {patience:g} s after removal was "
                               f"requested{f' (engine: {last})' if last else ''}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


async def sweep(older_than: float | None = None, *, force: bool = False) -> list[str]:
    """Remove hermes containers on the engine at ``$DOCKER_HOST`` whose driver is gone (their
    owner labels: pid, start time, boot id, host), or that passed their ``max_lifetime``; a
    live driver's containers only with ``force``.

    Args:
        older_than: only containers created at least this many seconds ago; ``None`` for all.
        force: remove live drivers' containers too.

    Returns:
        One line per removed container: its name, rollout id and age.

    Raises:
        EngineUnavailableError: no engine answers at ``$DOCKER_HOST``.
    """
    return await in_thread(_sweep, older_than, force)


def _owner_of(labels: Mapping[str, str], created: float) -> dict[str, Any] | None:
    if "hermes.owner.pid" not in labels:
        return None
    try:
        start = labels.get("hermes.owner.start")
        lifetime = labels.get("hermes.max_lifetime")
        return {"pid": int(labels["hermes.owner.pid"]), "start_ticks": int(start) if start and start != "None" else None,
                "boot_id": labels.get("hermes.owner.boot") or None, "host": labels.get("hermes.owner.host"),
                "created": created, "max_lifetime": float(lifetime) if lifetime else None}
    except ValueError:
        return None


def _sweep(older_than: float | None, force: bool = False) -> list[str]:
    import docker.errors

    api = connect()
    try:
        now = time.time()
        removed = []
        for c in api.containers(all=True, filters={"label": f"{BACKEND_LABEL}=docker"}):
            labels = c.get("Labels") or {}
            try:
                created = float(labels.get("hermes.created") or c.get("Created") or now)
            except ValueError:
                created = float(c.get("Created") or now)
            age = now - created
            if older_than is not None and age < older_than:
                continue
            owner = _owner_of(labels, created)
            if not force and (owner is None or owner_alive(owner, now=now)):
                continue  # a live run's container, or one with no owner record: not ours to judge
            name = (c.get("Names") or [c["Id"][:12]])[0].lstrip("/")
            try:
                _remove(api, c["Id"])
            except docker.errors.APIError:
                continue
            removed.append(f"{name} (rollout {labels.get('hermes.rollout', '?')}, age {age:.0f}s)")
        return removed
    finally:
        api.close()


def _factory(options: DockerOptions, *, sandbox_id: str, labels: Mapping[str, str]) -> DockerSandbox:
    return DockerSandbox(options, sandbox_id=sandbox_id, labels=labels)

