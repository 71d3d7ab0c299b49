"""The ``singularity`` backend: one apptainer instance per sandbox, driven through the CLI."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hermes_core.errors import SandboxError
from hermes_core.sandbox import (
    TIMEOUT_EXIT_CODE,
    Capabilities,
    Command,
    ExecResult,
    Process,
    Sandbox,
    killpg,
    run_subprocess,
    spawn_subprocess,
)

from ._cli import (
    EXEC_MARKER,
    BinaryNotFoundError,
    cli_env,
    encode_env,
    exec_argv,
    find_binary,
    list_argv,
    parse_list,
    start_argv,
    stop_argv,
)
from ._options import SingularityOptions
from ._owner import instance_name, owner_is_gone, parse_name

__all__ = ["InstanceGoneError", "SingularitySandbox", "default_overlay_root", "sweep"]

#: The CLI's own failure (before the command ran) is a ``FATAL:`` line and exit status 255.
_NOT_FOUND = re.compile(r"\AFATAL:[^\n]*(executable file not found in \$PATH|no such file or directory)", re.I)
_NO_PERMISSION = re.compile(r"\AFATAL:[^\n]*permission denied", re.I)
_GONE = re.compile(r"\AFATAL:[^\n]*no instance found", re.I)

#: SIGKILL every process of the instance that carries one command's marker (a timed-out exec).
_KILL_MARKED = (
    'for p in /proc/[0-9]*; do case "$(tr "\\0" "\\n" < "$p/environ" 2>/dev/null)" in '
    f'*"{EXEC_MARKER}=$1"*) kill -KILL "${{p#/proc/}}" 2>/dev/null;; esac; done; exit 0'
)


class InstanceGoneError(SandboxError):
    """The sandbox's instance no longer exists (stopped outside hermes)."""


def default_overlay_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"hermes-apptainer-{os.getuid()}")


def _tail(data: bytes | str, n: int = 2000) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


class SingularitySandbox(Sandbox):
    """A sandbox that is one apptainer (or singularity) instance (see :class:`SingularityOptions`).

    Isolation is fixed at ``instance start`` (``--containall --no-home``, a per-sandbox overlay
    directory or ``--writable-tmpfs``, ``--net --network none``); commands and processes are
    ``exec instance://NAME`` with ``--cleanenv``. Files use the generic exec channel (streamed
    through one command's stdin/stdout, sha256-checked): writing into a mounted overlay's upper
    directory from the host is undefined behaviour for overlayfs, so there is no native channel.
    """

    backend_name = "singularity"
    capabilities = Capabilities(
        pty=True, native_files=False, network_policy=True, isolated_filesystem=True, isolated_processes=True
    )

    def __init__(
        self, options: SingularityOptions | None = None, *, sandbox_id: str, labels: Mapping[str, str] | None = None
    ):
        super().__init__(options or SingularityOptions(), sandbox_id=sandbox_id, labels=labels)
        #: Known before ``instance start`` runs, so a start interrupted by cancellation is still found.
        self.instance_name = instance_name(self.opts.name_prefix)
        root = self.opts.overlay_root or default_overlay_root()
        #: Host directory of this sandbox: its overlay (``overlay/``) and env files (``env/``).
        self.host_dir = os.path.join(root, self.instance_name)
        self.binary: str | None = None
        self._env = cli_env()
        self._base_env: dict[str, str] = {}
        self._pgids: set[int] = set()
        self._procs: list[Process] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        #: never → interrupted (``instance start`` ran but did not report back) → done.
        self._start_state = "never"
        self._starting: asyncio.Future[tuple[int, bytes, bool]] | None = None

    @property
    def opts(self) -> SingularityOptions:
        return self.options

    @property
    def workdir(self) -> str:
        return self.opts.workdir

    # ------------------------------------------------------------------ lifecycle

    async def _start(self) -> None:
        o = self.opts
        self.binary = find_binary(o.binary)
        image = o.image
        if "://" not in image:
            path = Path(image).expanduser()
            if not path.exists():
                raise SandboxError(
                    f"image {image!r} does not exist on this host; give a .sif file, a sandbox directory or a "
                    "docker://REF (build a .sif with: apptainer pull IMAGE.sif docker://REF)"
                )
            image = str(path.resolve())
        base = {k: os.environ[k] for k in o.pass_env if k in os.environ}
        base.update(o.env)
        self._base_env = base
        overlay = None
        await asyncio.to_thread(os.makedirs, self.host_dir, 0o700, True)
        if o.writable == "overlay":
            overlay = os.path.join(self.host_dir, "overlay")
            await asyncio.to_thread(os.makedirs, overlay, 0o700, True)
        self._start_state = "interrupted"
        argv = start_argv(self.binary, o, image, self.instance_name, overlay)
        # Shielded: a cancelled start lets `instance start` finish (within start_timeout), and
        # close() waits for it, so an instance registered at the last moment is stopped too.
        self._starting = asyncio.ensure_future(
            run_subprocess(argv, cwd="/", env=self._env, stdin=None, timeout=o.start_timeout)
        )
        try:
            code, out, timed_out = await asyncio.shield(self._starting)
        except OSError as e:
            raise BinaryNotFoundError(f"cannot run {self.binary}: {e}") from None
        if timed_out:
            raise SandboxError(
                f"`{' '.join(argv[:3])}` for sandbox {self.sandbox_id} took longer than start_timeout="
                f"{o.start_timeout:g}s (a docker:// image is converted on first use; pre-build a .sif with "
                "`apptainer pull` or raise start_timeout)"
            )
        if code != 0:
            raise SandboxError(
                f"{os.path.basename(self.binary)} instance start failed for image {o.image!r} (exit {code}): "
                f"{_tail(out)}"
            )
        r = await self._run(["mkdir", "-p", "--", o.workdir], cwd="/")
        if r.exit_code != 0:
            raise SandboxError(f"cannot create the working directory {o.workdir!r} in the instance: {_tail(r.output)}")

    async def _close(self) -> None:
        if self._starting is not None:
            await asyncio.wait({self._starting})  # bounded by start_timeout
            done = self._starting
            if not done.cancelled() and (done.exception() is not None or not done.result()[2]):
                self._start_state = "done"  # the CLI reported back (or never ran)
        if self._tasks:  # marker kills of cancelled commands: stopping the instance kills all anyway
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._kill_launchers()
        if self._start_state != "never" and self.binary is not None:
            # A start killed at its timeout may still be registering the instance: try again
            # for a moment before concluding it never existed.
            for _ in range(5 if self._start_state == "interrupted" else 1):
                code, _out, _ = await self._cli(stop_argv(self.binary, self.instance_name))
                if code == 0:
                    break
                await asyncio.sleep(0.2)
        self._kill_launchers()
        await asyncio.to_thread(shutil.rmtree, self.host_dir, True)

    def _kill_launchers(self) -> None:
        for pgid in list(self._pgids):
            killpg(pgid, signal.SIGKILL)
        for proc in self._procs:
            if proc.returncode is None and proc.pid:
                killpg(proc.pid, signal.SIGKILL)

    async def _cli(self, argv: list[str]) -> tuple[int, str, bool]:
        try:
            code, out, timed_out = await run_subprocess(
                argv, cwd="/", env=self._env, stdin=None, timeout=self.opts.command_timeout
            )
        except OSError as e:
            return 127, str(e), False
        return code, out.decode("utf-8", "replace"), timed_out

    async def _listed(self) -> bool:
        assert self.binary is not None
        code, out, _ = await self._cli(list_argv(self.binary, self.instance_name))
        try:
            return any(i["instance"] == self.instance_name for i in parse_list(out)) if code == 0 else False
        except SandboxError:
            return False

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(instance=self.instance_name, image=self.opts.image, binary=self.binary, host_dir=self.host_dir)
        return info

    # ------------------------------------------------------------------ commands

    def _argv(self, command: Command, cwd: str, env: Mapping[str, str] | None, marker: str | None) -> tuple[list[str], str | None]:
        """The exec command line, and the env file it reads (the caller removes it), if any."""
        merged = dict(self._base_env)
        if env:
            merged.update(env)
        if marker is not None:
            merged[EXEC_MARKER] = marker
        flags, text = encode_env(merged)
        env_file = None
        if text:
            d = os.path.join(self.host_dir, "env")
            os.makedirs(d, 0o700, exist_ok=True)
            env_file = os.path.join(d, f"{secrets.token_hex(8)}.env")
            fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        assert self.binary is not None
        return exec_argv(self.binary, self.instance_name, self.argv(command), cwd=cwd, env_flags=flags,
                         env_file=env_file), env_file

    def _cwd(self, cwd: str | None) -> str:
        return self.path(cwd) if cwd else self.workdir

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
        return await self._run(command, cwd=self._cwd(cwd), env=env, stdin=stdin, timeout=timeout)

    async def _run(
        self,
        command: Command,
        *,
        cwd: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        marker = secrets.token_hex(8)
        argv, env_file = self._argv(command, cwd, env, marker)
        try:
            code, data, timed_out = await run_subprocess(
                argv, cwd="/", env=self._env, stdin=stdin, timeout=timeout, track=self._pgids
            )
        except OSError as e:
            raise SandboxError(f"cannot run {self.binary}: {e}") from None
        except asyncio.CancelledError:
            # The caller gave up: run_subprocess killed the process group; what left it must
            # not run on unobserved either.
            if not self.closed:
                self._background(self._kill_marked(marker))
            raise
        finally:
            if env_file is not None:
                _unlink(env_file)
        output = data.decode("utf-8", "replace")
        if timed_out:
            # The launcher's process group is dead; whatever left it is found by its marker.
            await self._kill_marked(marker)
            output += f"\n[hermes: command timed out after {timeout:g}s and was killed]"
            return ExecResult(TIMEOUT_EXIT_CODE, output, timed_out=True)
        if code == 255 and output.startswith("FATAL:"):
            if _GONE.match(output):
                raise InstanceGoneError(
                    f"the instance {self.instance_name} of sandbox {self.sandbox_id} no longer exists "
                    f"(stopped outside hermes?): {_tail(output, 300)}"
                )
            if _NOT_FOUND.match(output):
                code = 127  # what a shell reports for a missing command (and the local backend does)
            elif _NO_PERMISSION.match(output):
                code = 126
        return ExecResult(code, output)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _kill_marked(self, marker: str) -> None:
        try:
            argv, _ = self._argv(["sh", "-c", _KILL_MARKED, "sh", marker], "/", None, None)
            await run_subprocess(argv, cwd="/", env=self._env, stdin=None, timeout=10, track=self._pgids)
        except Exception:  # noqa: BLE001 - the instance may be gone: nothing left to kill then
            pass

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self._check_open()
        # An env file (if any) stays until close: the CLI reads it at some point after the start.
        argv, _ = self._argv(command, self._cwd(cwd), env, secrets.token_hex(8))
        try:
            proc = await spawn_subprocess(argv, pty=pty, cwd="/", env=self._env)
        except OSError as e:
            raise SandboxError(f"cannot run {self.binary}: {e}") from None
        self._procs = [p for p in self._procs if p.returncode is None]
        self._procs.append(proc)
        return proc


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------- sweep


async def sweep(
    older_than: float | None = None,
    *,
    binary: str | None = None,
    prefix: str = "hermes",
    overlay_root: str | None = None,
) -> list[str]:
    """Stop instances (and remove their host directories) whose owning driver has exited.

    Only instances whose name has ``prefix`` and encodes an owner (see ``_owner``) are
    considered, and only those whose owner is gone: a live run's sandboxes are never touched.

    Args:
        older_than: only instances created at least this many seconds ago; ``None`` for all.
        binary: the CLI (default: apptainer, else singularity; none on PATH means nothing to sweep).
        prefix: the ``name_prefix`` the sandboxes were made with.
        overlay_root: the ``overlay_root`` they were made with (default: the default one).

    Returns:
        One line per removed instance or directory.
    """
    try:
        exe = find_binary(binary)
    except BinaryNotFoundError:
        if binary:
            raise
        return []
    env = cli_env()
    root = overlay_root or default_overlay_root()
    now = time.time()

    def eligible(name: str) -> bool:
        owner = parse_name(prefix, name)
        if owner is None or not owner_is_gone(owner):
            return False
        return older_than is None or now - owner.created >= older_than

    code, out, _ = await run_subprocess(list_argv(exe, f"{prefix}-*"), cwd="/", env=env, stdin=None, timeout=120)
    text = out.decode("utf-8", "replace")
    if code != 0:
        raise SandboxError(f"`{exe} instance list --json` failed (exit {code}): {_tail(text, 500)}")
    listed = {i["instance"] for i in parse_list(text)}
    removed = []
    for name in sorted(n for n in listed if eligible(n)):
        code, out, _ = await run_subprocess(stop_argv(exe, name), cwd="/", env=env, stdin=None, timeout=120)
        if code != 0:
            continue
        await asyncio.to_thread(shutil.rmtree, os.path.join(root, name), True)
        owner = parse_name(prefix, name)
        assert owner is not None
        removed.append(f"instance {name} (owner pid {owner.pid} gone, age {now - owner.created:.0f}s)")
    try:
        leftovers = os.listdir(root)
    except FileNotFoundError:
        leftovers = []
    for name in sorted(leftovers):
        if name not in listed and eligible(name):
            await asyncio.to_thread(shutil.rmtree, os.path.join(root, name), True)
            removed.append(f"directory {os.path.join(root, name)} (owner gone, no instance)")
    return removed


def _factory(options: SingularityOptions, *, sandbox_id: str, labels: Mapping[str, str]) -> SingularitySandbox:
    return SingularitySandbox(options, sandbox_id=sandbox_id, labels=labels)
