"""The ``ssh`` backend: a sandbox is one SSH connection (its own, never shared) and one remote
directory, on the least-loaded host of a pool."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncssh

from hermes_core.errors import SandboxError
from hermes_core.sandbox import TIMEOUT_EXIT_CODE, Capabilities, Command, ExecResult, OutputBuffer, Process, Sandbox

from . import _remote
from ._channel import ChannelSession, SSHProcess, open_channel
from ._connect import (
    HostDownError,
    HostUnreachableError,
    RemoteDiskFullError,
    RemoteSetupError,
    connect,
    user_of,
)
from ._files import SFTPFiles
from ._options import HostSpec, SSHOptions
from ._owner import dumps, owner_record
from ._pool import HostKey, HostPool
from ._record import record_host

__all__ = ["SSHSandbox"]

log = logging.getLogger("hermes_backend_ssh")

#: Once a one-shot command has exited, how long its output may still trickle in (a daemonised
#: grandchild holding the channel open is not waited for).
_DRAIN = 0.25


class SSHSandbox(Sandbox):
    """A sandbox on a remote host over SSH (see :class:`SSHOptions`).

    Isolation between sandboxes on one host is by directory, environment and process group
    (like the ``local`` backend), not a security boundary: sandboxes on a host share its user.
    """

    backend_name = "ssh"
    capabilities = Capabilities(pty=True, native_files=True)

    def __init__(
        self,
        options: SSHOptions,
        *,
        sandbox_id: str,
        labels: Mapping[str, str] | None = None,
        pool: HostPool | None = None,
    ) -> None:
        super().__init__(options, sandbox_id=sandbox_id, labels=labels)
        self._pool = pool if pool is not None else HostPool()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", sandbox_id)[:48].strip("-.") or "sandbox"
        self.dir_name = f"hermes-{safe}-{secrets.token_hex(4)}"
        self.host: HostSpec | None = None
        self.remote_dir: str | None = None
        self._key: HostKey | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._files: SFTPFiles | None = None
        self._files_lock = asyncio.Lock()
        self._lost: str | None = None
        self._closing_conn = False
        self._login_bash = True
        self._unset: tuple[str, ...] = _remote.ALWAYS_UNSET
        self._env: dict[str, str] = {}
        self._procs: set[SSHProcess] = set()
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def opts(self) -> SSHOptions:
        return self.options

    @property
    def workdir(self) -> str:
        if self.remote_dir is None:
            raise SandboxError(f"sandbox {self.sandbox_id} is not started")
        return f"{self.remote_dir}/work"

    @property
    def address(self) -> str:
        return self.host.address if self.host else "?"

    def describe(self) -> dict[str, Any]:
        info = super().describe() if self.remote_dir else {"backend": self.backend_name, "sandbox_id": self.sandbox_id}
        info.update(host=self.address, remote_dir=self.remote_dir)
        return info

    # ------------------------------------------------------------------ placement + start

    def _hosts(self) -> list[tuple[HostKey, int, HostSpec]]:
        o = self.opts
        return [((h.host, h.port, user_of(o, h)), h.capacity or o.capacity, h) for h in o.hosts]

    async def _start(self) -> None:
        hosts = self._hosts()
        by_key = {k: h for k, _, h in hosts}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.placement_timeout
        failures: dict[HostKey, str] = {}
        retried_down = False
        while True:
            order = self._pool.candidates([(k, c) for k, c, _ in hosts])
            if not order and not retried_down and len(self._pool.down([k for k, _, _ in hosts])) == len(hosts):
                # Every host is marked down: try each once more (one may be back) before failing.
                retried_down = True
                order = [k for k, c, _ in hosts if self._pool.state(k).active < c]
            for key in order:
                self._pool.reserve(key)
                self._key, self.host = key, by_key[key]
                try:
                    await self._open(by_key[key])
                    return
                except (HostUnreachableError, HostDownError) as e:
                    failures[key] = str(e)
                    self._pool.mark_down(key, str(e), self.opts.down_for)
                    await self._drop_connection()
                    self._release()
                    continue
                except BaseException:
                    await self._drop_connection()
                    self._release()
                    raise
            down = self._pool.down([k for k, _, _ in hosts])
            if len(down) == len(hosts):
                why = "; ".join(f"{by_key[k].address}: {failures.get(k) or r}" for k, r in down.items())
                if len(hosts) == 1:
                    raise HostUnreachableError(failures.get(hosts[0][0]) or why)
                raise HostUnreachableError(f"every SSH host of the pool is down: {why}")
            if loop.time() >= deadline:
                load = ", ".join(f"{h.address} {self._pool.state(k).active}/{c}" for k, c, h in hosts)
                raise SandboxError(
                    f"no SSH host had a free slot within {self.opts.placement_timeout:g}s (load: {load}); "
                    "raise capacity, add hosts or run fewer rollouts at once"
                )
            await asyncio.sleep(0.05)

    def _release(self) -> None:
        if self._key is not None:
            self._pool.release(self._key)
        self._key = None

    async def _open(self, host: HostSpec) -> None:
        self._lost = None
        self._closing_conn = False
        self._conn = await connect(self.opts, host, on_lost=self._on_lost)
        root = host.root or self.opts.root
        owner = owner_record(self.sandbox_id, self.dir_name)
        line = _remote.internal(
            _remote.SETUP, root, self.dir_name, dumps(owner), str(self.opts.min_free_bytes // 1024), self.opts.path,
            login_probe=True,
        )
        code, out = await self._internal_line(line, timeout=self.opts.connect_timeout + 15)
        text = out.decode("utf-8", "replace")
        m = re.search(r"^HOK:(\d+):([01]):(/.*)$", text, re.M)
        if not m:
            self._setup_failed(host, root, code, text)
        self._login_bash = m[2] == "1"
        names = re.search(r"^HENV:(.*)$", text, re.M)
        self._unset = _remote.scrub_names(names[1] if names else "")
        self.remote_dir = m[3]
        await asyncio.to_thread(record_host, self.opts, host)
        user = user_of(self.opts, host)
        env = {
            "PATH": self.opts.path,
            "HOME": f"{self.remote_dir}/home",
            "TMPDIR": f"{self.remote_dir}/tmp",
            # No LANG unless asked (env): exporting one makes bash load the locale on every
            # command (~0.3 ms), and the Docker backend sets none either.
            "USER": user,
            "LOGNAME": user,
        }
        env.update({k: os.environ[k] for k in self.opts.pass_env if k in os.environ})
        env.update(self.opts.env)
        env[_remote.MARKER] = self.remote_dir
        self._env = env

    def _setup_failed(self, host: HostSpec, root: str, code: int | None, text: str) -> None:
        m = re.search(r"^HERR:(\w+):(.*)$", text, re.M)
        kind, msg = (m[1], m[2]) if m else ("", text.strip()[-500:] or f"exit {code}")
        where = f"SSH host {host.address}"
        if kind == "nobash":
            raise RemoteSetupError(
                f"{where} has no bash ({msg}): install it there (e.g. apt-get install bash) or fix the option path"
            )
        if kind == "noproc":
            raise RemoteSetupError(f"{where} has no readable /proc: the ssh backend needs a Linux host (cleanup scans /proc)")
        if kind == "disk" or "No space left" in msg:
            raise RemoteDiskFullError(
                f"the remote disk of {where} is full ({msg}; at least {self.opts.min_free_bytes} bytes wanted): "
                "free space there, choose another root, or lower min_free_bytes"
            )
        raise RemoteSetupError(f"cannot create the sandbox directory under {root!r} on {where}: {msg}")

    def _on_lost(self, exc: Exception | None) -> None:
        if self._closing_conn:
            return
        reason = str(exc) if exc else "the connection was closed by the remote side"
        self._lost = reason
        if self._key is not None:
            self._pool.mark_down(self._key, f"stopped answering: {reason}", self.opts.down_for)
        log.warning("ssh host %s stopped answering (%s); sandbox %s is lost", self.address, reason, self.sandbox_id)

    def _host_down(self) -> HostDownError:
        return HostDownError(
            f"SSH host {self.address} stopped answering ({self._lost}): sandbox {self.sandbox_id} is lost. "
            "This is an infrastructure failure, not the agent's; new sandboxes go to the other hosts"
        )

    def _check(self) -> asyncssh.SSHClientConnection:
        self._check_open()
        if self._lost is not None or self._conn is None:
            raise self._host_down()
        return self._conn

    async def _channel(
        self, line: str, *, pty: bool = False, sink: OutputBuffer | None = None,
        conn: asyncssh.SSHClientConnection | None = None,
    ) -> ChannelSession:
        if conn is None:
            conn = self._conn
            if conn is None or self._lost is not None:
                raise self._host_down()
        try:
            _, session = await open_channel(conn, line, pty=pty, sink=sink)
        except asyncssh.ChannelOpenError as e:
            if self._lost is not None:
                raise self._host_down() from None
            raise SandboxError(
                f"SSH host {self.address} refused a new channel ({e.reason}): too many commands at once "
                "for its sshd's MaxSessions (default 10 per connection); raise MaxSessions there"
            ) from None
        except (asyncssh.Error, OSError) as e:
            if self._lost is None:
                self._on_lost(e)
            raise self._host_down() from None
        return session

    async def _internal_line(
        self, line: str, *, timeout: float = 30, conn: asyncssh.SSHClientConnection | None = None
    ) -> tuple[int | None, bytes]:
        """Run one of the backend's own commands; return (exit code, output)."""
        s = await self._channel(line, conn=conn)
        try:
            assert s.chan is not None
            s.chan.write_eof()
            try:
                async with asyncio.timeout(timeout):
                    code = await asyncio.shield(s.exited)
                    await s.wait_eof()
            except TimeoutError:
                code = None
            if s.lost is not None and (self._lost is not None or conn is None):
                raise self._host_down()
            return code, bytes(s.buf)
        finally:
            s.close()

    async def _internal(self, script: str, *args: str, timeout: float = 30) -> tuple[int | None, bytes]:
        return await self._internal_line(_remote.internal(script, *args), timeout=timeout)

    # ------------------------------------------------------------------ commands

    def _line(self, command: Command, cwd: str | None, env: Mapping[str, str] | None, nonce: str) -> str:
        merged = dict(self._env)
        if env:
            merged.update(env)
        merged[_remote.MARKER] = self._env[_remote.MARKER]
        merged[_remote.EXEC_MARKER] = nonce
        where = self.path(cwd) if cwd else self.workdir
        if isinstance(command, str):
            return _remote.command_line(env=merged, cwd=where, script=command, login_bash=self._login_bash, unset=self._unset)
        return _remote.command_line(env=merged, cwd=where, argv=self.argv(command), login_bash=self._login_bash, unset=self._unset)

    async def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        self._check()
        nonce = secrets.token_hex(8)
        sink = OutputBuffer()
        s = await self._channel(self._line(command, cwd, env, nonce), sink=sink)
        pid: int | None = None
        timed_out = False
        try:
            if stdin:
                self._track(asyncio.ensure_future(self._feed(s, stdin)))
            elif s.chan is not None:
                s.chan.write_eof()  # no stdin: the command reads end of file, as from /dev/null
            try:
                async with asyncio.timeout(timeout):
                    pid = await s.read_header()
                    if pid is None:  # ended before the prefix ran: the login shell failed
                        sink.append(bytes(s.buf))
                    await asyncio.shield(s.exited)
            except TimeoutError:
                timed_out = True
        except asyncio.CancelledError:
            # The caller gave up: the command must not run on unobserved.
            self._track(asyncio.ensure_future(self._reap(s, pid, nonce)))
            raise
        if timed_out:
            await self._reap(s, pid, nonce)
            out = sink.getvalue().decode("utf-8", "replace")
            out += f"\n[hermes: command timed out after {timeout:g}s and was killed]"
            return ExecResult(TIMEOUT_EXIT_CODE, out, timed_out=True)
        if not s.eof:
            try:
                async with asyncio.timeout(_DRAIN):
                    await s.wait_eof()
            except TimeoutError:
                pass
        s.close()
        if s.lost is not None and self._lost is not None:
            raise self._host_down()
        return ExecResult(s.status if s.status is not None else 255, sink.getvalue().decode("utf-8", "replace"))

    async def _feed(self, s: ChannelSession, stdin: bytes | None) -> None:
        try:
            if stdin:
                view = memoryview(stdin)
                for i in range(0, len(view), 1 << 18):
                    await s.write(bytes(view[i : i + (1 << 18)]))
            if s.chan is not None and not s.closed:
                s.chan.write_eof()
        except (asyncssh.Error, OSError, Exception):  # noqa: BLE001 - the command stopped reading
            pass

    async def _reap(self, s: ChannelSession, pid: int | None, nonce: str) -> None:
        """Kill a one-shot command (its process group, or everything carrying its nonce)."""
        try:
            if self._lost is None and self._conn is not None:
                if pid is not None:
                    await self._internal(_remote.SIGNAL_GROUP, "9", str(pid), timeout=10)
                    await asyncio.wait([s.exited], timeout=1)
                if not s.exited.done():  # no header yet, or the group did not die: by nonce
                    await self._internal(_remote.KILL_MARKED, f"{_remote.EXEC_MARKER}={nonce}", timeout=15)
                    await asyncio.wait([s.exited], timeout=2)
        except (SandboxError, asyncssh.Error, OSError):
            pass
        finally:
            s.close()

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._background.add(fut)
        fut.add_done_callback(self._background.discard)

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        self._check()
        nonce = secrets.token_hex(8)
        s = await self._channel(self._line(command, cwd, env, nonce), pty=pty)
        try:
            async with asyncio.timeout(self.opts.connect_timeout + 15):
                pid = await s.read_header()
        except TimeoutError:
            pid = None
        except BaseException:
            self._track(asyncio.ensure_future(self._reap(s, None, nonce)))
            raise
        if pid is None:
            if self._lost is not None:
                raise self._host_down()
            out = bytes(s.buf).decode("utf-8", "replace").strip()
            await self._reap(s, None, nonce)
            raise SandboxError(f"could not start a process on {self.address}: {out or 'no output'} (exit {s.status})")
        proc = SSHProcess(s, pid, pty=pty, signaller=self._signal_group)
        self._procs.add(proc)
        s.exited.add_done_callback(lambda _f: self._procs.discard(proc))
        return proc

    async def _signal_group(self, sig: int, pid: int) -> None:
        # Deliberately not _check_open(): close() stops the shell before removing the directory.
        if self._conn is None or self._lost is not None:
            return
        try:
            await self._internal(_remote.SIGNAL_GROUP, str(sig), str(pid), timeout=10)
        except HostDownError:
            return

    # ------------------------------------------------------------------ files (SFTP)

    async def _sftp(self) -> SFTPFiles:
        conn = self._check()
        async with self._files_lock:
            if self._files is None:
                try:
                    sftp = await conn.start_sftp_client()
                except (asyncssh.Error, OSError) as e:
                    if self._lost is not None:
                        raise self._host_down() from None
                    raise SandboxError(f"SSH host {self.address} refused SFTP ({e}): enable the sftp subsystem in its sshd_config") from None
                assert self.remote_dir is not None
                self._files = SFTPFiles(
                    sftp, sandbox_dir=self.remote_dir, describe=lambda: f"SSH host {self.address}", lost=lambda: self._lost
                )
        return self._files

    async def write_bytes(self, path: str, data: bytes) -> None:
        await (await self._sftp()).write_bytes(self.path(path), data)

    async def read_bytes(self, path: str) -> bytes:
        return await (await self._sftp()).read_bytes(self.path(path))

    async def put_file(self, local_path: str | Path, remote_path: str) -> int:
        return await (await self._sftp()).put_file(Path(local_path), self.path(remote_path))

    async def get_file(self, remote_path: str, local_path: str | Path) -> int:
        return await (await self._sftp()).get_file(self.path(remote_path), Path(local_path))

    # put_dir / get_dir: the generic tar stream over one channel (Sandbox's implementation).

    # ------------------------------------------------------------------ close

    async def _close(self) -> None:
        try:
            for fut in list(self._background):
                fut.cancel()
            if self.remote_dir is not None:
                await self._remove_remote()
        finally:
            for proc in list(self._procs):
                proc.detach()
            self._procs.clear()
            await self._drop_connection()
            self._release()

    async def _remove_remote(self) -> None:
        assert self.remote_dir is not None and self.host is not None
        conn = self._conn
        fresh = None
        try:
            if conn is None or self._lost is not None:
                # The sandbox's connection is gone: one short try on a new one, so a host that
                # only dropped this connection is still cleaned; a dead host is left to sweep.
                fresh = await connect(self.opts, self.host, timeout=min(5.0, self.opts.connect_timeout))
                conn = fresh
            line = _remote.internal(_remote.REMOVE, f"{_remote.MARKER}={self.remote_dir}", self.remote_dir)
            code, out = await self._internal_line(line, timeout=60, conn=conn)
            parts = sorted(self._files.pending) if self._files is not None else []
            if parts:  # uploads cut short outside the sandbox directory
                await self._internal_line(_remote.internal('rm -f -- "$@"', *parts), timeout=30, conn=conn)
            if b"HREMOVED" not in out:
                log.warning("ssh sandbox %s: removing %s on %s failed: %s", self.sandbox_id, self.remote_dir,
                            self.address, out.decode("utf-8", "replace").strip() or f"exit {code}")
        except (SandboxError, asyncssh.Error, OSError) as e:
            log.warning(
                "ssh sandbox %s: could not clean %s on %s (%s); `hermes sandbox sweep` removes it once the host is back",
                self.sandbox_id, self.remote_dir, self.address, e,
            )
        finally:
            if fresh is not None:
                fresh.close()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._closing_conn = True
        files, self._files = self._files, None
        if files is not None:
            files.sftp.exit()
        if conn is not None:
            conn.close()
            try:
                async with asyncio.timeout(5):
                    await conn.wait_closed()
            except (TimeoutError, asyncssh.Error, OSError):
                pass


def _factory(options: SSHOptions, *, sandbox_id: str, labels: Mapping[str, str], pool: HostPool | None = None) -> SSHSandbox:
    return SSHSandbox(options, sandbox_id=sandbox_id, labels=labels, pool=pool)
