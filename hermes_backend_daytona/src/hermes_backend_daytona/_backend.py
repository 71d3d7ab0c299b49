"""The ``daytona`` backend: one Daytona sandbox per hermes sandbox, through the official SDK."""

from __future__ import annotations

import asyncio
import math
import os
import re
import secrets
import shlex
from collections.abc import Awaitable, Callable, Mapping
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
)

from ._client import (
    Account,
    ImageNotFoundError,
    SandboxGoneError,
    account_for,
    status_of,
    translate,
    with_retries,
)
from ._files import Files
from ._options import DaytonaOptions
from ._owner import owner_labels
from ._process import DaytonaProcess, spawn_command

if TYPE_CHECKING:
    from daytona import AsyncSandbox

__all__ = ["DaytonaSandbox"]

T = TypeVar("T")

#: Label every hermes sandbox carries; ``sweep`` finds leftovers by it.
BACKEND_LABEL = "hermes.backend"

#: $1 nonce, $2 timeout (0: none), $3 cwd, $4 max output bytes, $5 stdin file or '-', then argv.
#: Runs argv in its own process group with its output in a file; a watchdog kills the group at
#: the timeout. Prints the (bounded) output, then a trailer line "<nonce> <exit> <timed out>".
EXEC_WRAPPER = r"""
n=$1 t=$2 cwd=$3 max=$4 in=$5; shift 5
exec 2>/dev/null
o="${TMPDIR:-/tmp}/.hermes-exec-$n"
r=
if [ "$in" = - ]; then in=/dev/null; else r=$in; fi
trap 'rm -f -- "$o" "$o.t" ${r:+"$r"}' EXIT
if ! cd -- "$cwd"; then printf 'hermes: cannot change to directory %s\n%s 1 0\n' "$cwd" "$n"; exit 0; fi
set -m
"$@" <"$in" >"$o" 2>&1 &
p=$!
w=
if [ "$t" != 0 ]; then
  { sleep "$t"; : >"$o.t"; kill -TERM -- "-$p"; sleep 2; kill -KILL -- "-$p"; } >/dev/null 2>&1 </dev/null &
  w=$!
fi
set +m
wait "$p"; rc=$?
[ -n "$w" ] && kill -KILL -- "-$w"
to=0
if [ -e "$o.t" ]; then kill -KILL -- "-$p"; to=1; rc=124; fi
sz=$(wc -c <"$o")
if [ "$sz" -le "$max" ]; then cat "$o"
else h=$((max / 2)); head -c "$h" "$o"; printf '\n[hermes: %s bytes of output omitted]\n' $((sz - max)); tail -c "$h" "$o"
fi
printf '\n%s %s %s\n' "$n" "$rc" "$to"
exit 0
"""

#: Longest timeout sent to the daemon for a command without one (it defaults to 10 s otherwise).
_NO_TIMEOUT = 7 * 24 * 3600


class DaytonaSandbox(Sandbox):
    """A sandbox that is one Daytona sandbox (see :class:`DaytonaOptions`).

    Commands run through the toolbox's process API under a wrapper that enforces the timeout
    inside the sandbox (the command's process group is killed, the sandbox keeps running);
    background processes run in Daytona sessions; files move through the toolbox file API.
    """

    backend_name = "daytona"
    capabilities = Capabilities(
        pty=False,
        native_files=True,
        network_policy=True,
        isolated_filesystem=True,
        isolated_processes=True,
    )

    def __init__(
        self, options: DaytonaOptions | None = None, *, sandbox_id: str, labels: Mapping[str, str] | None = None
    ):
        super().__init__(options or DaytonaOptions(), sandbox_id=sandbox_id, labels=labels)
        safe = re.sub(r"[^A-Za-z0-9_-]", "-", sandbox_id)[:40].strip("-") or "sandbox"
        #: Known before creation, so a create that raced a close (or lost its answer) is still found.
        self.name = f"hermes-{safe}-{secrets.token_hex(4)}"
        self.daytona_id: str | None = None
        self._sb: AsyncSandbox | None = None
        self._account: Account | None = None
        self._creating: asyncio.Future[Any] | None = None
        self._workdir = self.opts.workdir or "/"
        self._processes: set[DaytonaProcess] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._files = Files(self)

    @property
    def opts(self) -> DaytonaOptions:
        return self.options

    @property
    def workdir(self) -> str:
        return self._workdir

    # ------------------------------------------------------------------ lifecycle

    async def _start(self) -> None:
        self._account = account_for(self.opts, self.labels.get("hermes.runtime", ""))
        # Shielded: a cancelled start still learns what it created, and _close deletes it.
        self._creating = asyncio.ensure_future(self._create())
        self._sb = await asyncio.shield(self._creating)
        self.daytona_id = self._sb.id
        if self.opts.workdir is None:
            user = self._sb.user or "root"
            self._workdir = "/root" if user == "root" else f"/home/{user}"
        else:
            r = await self.exec(["mkdir", "-p", "--", self.opts.workdir], timeout=60, cwd="/")
            if r.exit_code != 0:
                raise SandboxError(f"cannot create the working directory {self.opts.workdir!r}: {r.output.strip()}")

    def _params(self) -> Any:
        from daytona import CreateSandboxFromImageParams, CreateSandboxFromSnapshotParams, Resources

        o = self.opts
        labels = {
            **o.labels,
            **self.labels,
            **owner_labels(),
            BACKEND_LABEL: "daytona",
            "hermes.sandbox": self.sandbox_id,
        }
        env = {k: os.environ[k] for k in o.pass_env if k in os.environ}
        env.update(o.env)
        common: dict[str, Any] = dict(
            name=self.name,
            os_user=o.user,
            env_vars=env or None,
            labels={k: str(v) for k, v in labels.items()},
            auto_stop_interval=o.auto_stop_minutes,
            auto_delete_interval=o.auto_delete_minutes,
            ttl_minutes=None if o.max_lifetime is None else max(1, math.ceil(o.max_lifetime / 60)),
            network_block_all=o.network_block_all or None,
            network_allow_list=o.network_allow_list,
        )
        if o.image:
            res = None
            if any(x is not None for x in (o.cpu, o.memory, o.disk)):
                res = Resources(cpu=o.cpu, memory=o.memory, disk=o.disk)
            return CreateSandboxFromImageParams(image=o.image, resources=res, **common)
        return CreateSandboxFromSnapshotParams(snapshot=o.snapshot, **common)

    async def _create(self) -> AsyncSandbox:
        acct = self._account
        assert acct is not None
        params = self._params()
        what = f"creating Daytona sandbox {self.name}"
        async with acct.creates:
            await acct.limiter.acquire()

            async def once() -> AsyncSandbox:
                from daytona.common.errors import DaytonaConflictError

                try:
                    return await acct.client.create(params, timeout=self.opts.create_timeout)
                except DaytonaConflictError:
                    # An earlier attempt did create it (its answer was lost): that one is ours.
                    sb = await acct.client.get(self.name)
                    if str(sb.state.value if hasattr(sb.state, "value") else sb.state) != "started":
                        await sb.wait_for_sandbox_start(timeout=self.opts.create_timeout)
                    return sb

            try:
                return await with_retries(
                    once, opts=self.opts, api_url=acct.api_url, what=what, timeout=self.opts.create_timeout + 10
                )
            except Exception as e:
                err = translate(e, what=what, api_url=acct.api_url)
                if err is e and "error state" in str(e):
                    err = ImageNotFoundError(f"{what}: {e}")
                if err is e:
                    raise
                raise err from None

    async def _close(self) -> None:
        if self._creating is not None:
            try:
                await self._creating  # a create still in flight (start() was cancelled)
            except BaseException:  # noqa: BLE001 - whatever happened, delete what exists
                pass
        for proc in list(self._processes):
            proc.detach()
        self._processes.clear()
        if self._background:  # session deletes in flight: done before the client may close
            _, pending = await asyncio.wait(set(self._background), timeout=2)
            for task in pending:
                task.cancel()
        acct = self._account
        if acct is None:
            return
        try:
            if self._creating is not None:
                await self._delete(acct)
        finally:
            self._account = None
            await acct.release()

    async def _delete(self, acct: Account) -> None:
        from daytona.common.errors import DaytonaNotFoundError

        sb = self._sb
        what = f"deleting Daytona sandbox {self.name}"

        async def once() -> None:
            target = sb
            if target is None:  # the create's answer never came: look it up by name
                try:
                    target = await acct.client.get(self.name)
                except DaytonaNotFoundError:
                    return
            try:
                await target.delete(timeout=self.opts.request_timeout)
            except DaytonaNotFoundError:
                return  # already gone (deleted outside hermes, or by its ttl): done

        async with acct.deletes:
            await with_retries(once, opts=self.opts, api_url=acct.api_url, what=what)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(daytona_id=self.daytona_id, name=self.name, image=self.opts.image, snapshot=self.opts.snapshot)
        return info

    # ------------------------------------------------------------------ plumbing

    @property
    def _box(self) -> AsyncSandbox:
        assert self._sb is not None
        return self._sb

    async def _call(self, fn: Callable[[], Awaitable[T]], *, what: str, idempotent: bool = True,
                    timeout: float | None = None) -> T:
        acct = self._account
        assert acct is not None
        try:
            return await with_retries(
                fn, opts=self.opts, api_url=acct.api_url, what=what, idempotent=idempotent, timeout=timeout
            )
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as e:
            await self._raise_if_gone(e, what)
            raise

    async def _raise_if_gone(self, cause: BaseException, what: str) -> None:
        """Raise :class:`SandboxGoneError` when the sandbox no longer runs (deleted or stopped outside)."""
        from daytona.common.errors import DaytonaNotFoundError

        status = status_of(cause)
        if status is not None and status < 400:
            return
        try:
            async with asyncio.timeout(self.opts.request_timeout):
                await self._box.refresh_data()
        except DaytonaNotFoundError:
            raise SandboxGoneError(
                f"{what}: Daytona sandbox {self.name} ({self.daytona_id}) no longer exists: it was deleted outside "
                "hermes (dashboard, another client, a sweep, or its max_lifetime)"
            ) from None
        except Exception:  # noqa: BLE001 - cannot tell; the original error stands
            return
        state = str(getattr(self._box.state, "value", self._box.state))
        if state != "started":
            raise SandboxGoneError(
                f"{what}: Daytona sandbox {self.name} is {state!r}, not running: it was stopped outside hermes, or "
                f"by Daytona's auto-stop after {self.opts.auto_stop_minutes} min without API activity "
                "(raise auto_stop_minutes for long silent commands)"
            ) from None

    # ------------------------------------------------------------------ commands

    def _wrapped(self, argv: list[str], env: Mapping[str, str] | None) -> list[str]:
        if env:
            return ["env", "--", *(f"{k}={v}" for k, v in env.items()), *argv]
        return argv

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
        argv = self._wrapped(self.argv(command), env)
        nonce = f"__HERMES_EXEC_{secrets.token_hex(12)}__"
        stdin_path = "-"
        if stdin is not None:
            stdin_path = f"/tmp/.hermes-stdin-{secrets.token_hex(8)}"
            await self._files.upload_bytes(stdin, stdin_path, what="sending stdin")
        t = 0 if timeout is None else max(1, math.ceil(timeout))
        t_arg = "0" if timeout is None else f"{max(timeout, 0.001):g}"
        script = shlex.join([
            "bash", "-c", EXEC_WRAPPER, "hermes-exec", nonce, t_arg, self.path(cwd) if cwd else self.workdir,
            str(self.opts.max_output), stdin_path, *argv,
        ])
        daemon_timeout = _NO_TIMEOUT if timeout is None else t + 30

        async def once() -> Any:
            return await self._box.process.exec(script, timeout=daemon_timeout)

        res = await self._call(
            once, what="running a command", idempotent=False,
            timeout=0 if timeout is None else t + 60,
        )
        out = res.result or ""
        mark = out.rfind(f"\n{nonce} ")
        if mark < 0:
            await self._raise_if_gone(SandboxError("no trailer"), "running a command")
            code = res.exit_code if res.exit_code is not None else 255
            raise SandboxError(
                f"the command wrapper in Daytona sandbox {self.name} did not finish (exit {code}); "
                f"is bash in the image? Output: {out[-500:]!r}"
            )
        fields = out[mark + len(nonce) + 2 :].split()
        body = out[:mark]
        code, timed_out = int(fields[0]), fields[1] == "1"
        if timed_out:
            body += f"\n[hermes: command timed out after {timeout:g}s and was killed]"
            return ExecResult(TIMEOUT_EXIT_CODE, body, timed_out=True)
        return ExecResult(code, body)

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self._check_open()
        if pty:
            raise SandboxError("the daytona backend has no PTY for background processes (capability pty=False)")
        from daytona import SessionExecuteRequest

        argv = self._wrapped(self.argv(command), env)
        nonce = secrets.token_hex(8)
        session_id = f"hermes-{nonce}"
        cmd = spawn_command(nonce, self.path(cwd) if cwd else self.workdir, argv)
        box = self._box

        async def create() -> None:
            await box.process.create_session(session_id)

        async def start() -> Any:
            return await box.process.execute_session_command(
                session_id, SessionExecuteRequest(command=cmd, run_async=True)
            )

        await self._call(create, what="starting a process", idempotent=False)
        started = await self._call(start, what="starting a process", idempotent=False)
        proc = DaytonaProcess(
            box, session_id, started.cmd_id, nonce,
            run=self._small, on_end=self._ended, closing=lambda: self.closed,
            request_timeout=self.opts.request_timeout,
        )
        self._processes.add(proc)
        return proc

    async def _small(self, argv: list[str]) -> None:
        """The backend's own small commands (signals, stdin close); tolerated after close starts."""
        if self._sb is None or self._account is None:
            return
        if self.closed:
            return
        await self.exec(argv, timeout=30)

    def _ended(self, proc: DaytonaProcess) -> None:
        self._processes.discard(proc)
        if self.closed or self._account is None:
            return
        box = self._box

        async def forget() -> None:
            try:
                async with asyncio.timeout(self.opts.request_timeout):
                    await box.process.delete_session(proc.session_id)
            except BaseException:  # noqa: BLE001 - best effort: the sandbox's delete frees it anyway
                pass

        task = asyncio.ensure_future(forget())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ files (see _files.py)

    async def write_bytes(self, path: str, data: bytes) -> None:
        self._check_open()
        await self._files.write_bytes(path, data)

    async def read_bytes(self, path: str) -> bytes:
        self._check_open()
        return await self._files.read_bytes(path)

    async def put_file(self, local_path: str | Path, remote_path: str) -> int:
        self._check_open()
        return await self._files.put_file(local_path, remote_path)

    async def get_file(self, remote_path: str, local_path: str | Path) -> int:
        self._check_open()
        return await self._files.get_file(remote_path, local_path)

    async def put_dir(self, local_dir: str | Path, remote_dir: str) -> list[str]:
        self._check_open()
        return await self._files.put_dir(local_dir, remote_dir)

    async def get_dir(self, remote_dir: str, local_dir: str | Path) -> list[str]:
        self._check_open()
        return await self._files.get_dir(remote_dir, local_dir)


def _factory(options: DaytonaOptions, *, sandbox_id: str, labels: Mapping[str, str]) -> DaytonaSandbox:
    return DaytonaSandbox(options, sandbox_id=sandbox_id, labels=labels)
