"""The ``modal`` backend: one ``modal.Sandbox`` per sandbox, driven through the real Modal SDK.

Created with the SDK's async API in the app named by the options, with hermes tags (rollout,
runtime, creation time, owner pid / start time / boot id / host) and a lifetime ``timeout`` so
an abandoned sandbox ends by itself. Creates go through a per-account limiter (rate and
concurrency) and are retried on transient errors; a create whose answer was lost is found again
by its one-off ``hermes.create`` tag and terminated, so a retry never leaks a sandbox. Commands
are ``Sandbox.exec`` calls (see :mod:`._process`); files use the generic exec channel of
``hermes_core.sandbox`` (bytes streamed through one exec's stdin/stdout, sha256-checked): the
SDK's own file API execs a Modal-runtime helper binary that exists only on Modal's workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import time
import weakref
from collections.abc import Mapping
from typing import Any

from hermes_core.errors import SandboxClosedError, SandboxError
from hermes_core.sandbox import TIMEOUT_EXIT_CODE, Capabilities, Command, ExecResult, OutputBuffer, Process, Sandbox

from ._account import Account, ModalAuthError, ModalUnavailableError, account, is_transient
from ._options import ModalOptions
from ._owner import owner_gone, owner_tags
from ._process import SIGNAL_MARKED, ModalProcess, exec_env, new_marker, wrap

__all__ = ["ModalSandbox", "SandboxGoneError", "sweep"]

#: Tag every hermes sandbox carries; ``sweep`` finds candidates by it.
BACKEND_TAG = "hermes.backend"
#: One-off tag of one create call: finds the sandbox of a create whose answer was lost.
CREATE_TAG = "hermes.create"
#: Environment variable naming the app ``sweep`` looks in (default: the options' default).
SWEEP_APP_ENV = "HERMES_MODAL_APP"
#: Output a one-shot exec keeps (head + tail) whatever the command prints.
OUTPUT_LIMIT = 32 << 20


class SandboxGoneError(SandboxClosedError):
    """The Modal sandbox ended outside hermes (terminated, timed out, or its main process exited)."""


def _modal_error(exc: BaseException, what: str) -> SandboxError:
    if isinstance(exc, SandboxError):
        return exc
    return SandboxError(f"{what} failed: {exc.__class__.__name__}: {exc}")


class ModalSandbox(Sandbox):
    """A sandbox that is one Modal sandbox (see :class:`ModalOptions`)."""

    backend_name = "modal"
    capabilities = Capabilities(
        pty=False, native_files=False, snapshots=True, network_policy=True,
        isolated_filesystem=True, isolated_processes=True,
    )

    def __init__(self, options: ModalOptions | None = None, *, sandbox_id: str, labels: Mapping[str, str] | None = None):
        super().__init__(options or ModalOptions(), sandbox_id=sandbox_id, labels=labels)
        self._acc: Account | None = None
        self._sb: Any = None
        self._create_token = ""
        self._procs: weakref.WeakSet[ModalProcess] = weakref.WeakSet()
        self._reapers: set[asyncio.Future[Any]] = set()
        #: The Modal sandbox id (``sb-...``) once started.
        self.modal_id: str | None = None

    @property
    def opts(self) -> ModalOptions:
        return self.options  # type: ignore[no-any-return]

    @property
    def workdir(self) -> str:
        return self.opts.workdir

    # ------------------------------------------------------------------ lifecycle

    def tags(self) -> dict[str, str]:
        """The tags this sandbox is created with."""
        return {
            **self.opts.tags,
            **{k: v for k, v in self.labels.items() if k.startswith("hermes.")},
            BACKEND_TAG: "modal",
            "hermes.sandbox": self.sandbox_id,
            **owner_tags(),
            CREATE_TAG: self._create_token,
        }

    def _image(self, modal: Any, acc: Account) -> Any:
        """The image object for these options, shared per account: once the first create has
        resolved it (hydrated it with its image id), later creates skip the image RPCs."""
        o = self.opts
        if o.image_id:
            key: tuple[Any, ...] = ("id", o.image_id)
        elif o.image:
            key = ("registry", o.image)
        elif o.dockerfile:
            try:
                st = os.stat(o.dockerfile)
            except OSError as e:
                raise SandboxError(f"dockerfile {o.dockerfile!r} cannot be read: {e}") from None
            key = ("dockerfile", o.dockerfile, st.st_mtime_ns, st.st_size)
        else:
            key = ("debian_slim",)
        images: dict[tuple[Any, ...], Any] = acc.extra.setdefault("images", {})
        image = images.get(key)
        if image is None:
            if key[0] == "id":
                image = modal.Image.from_id(o.image_id)
            elif key[0] == "registry":
                image = modal.Image.from_registry(o.image)
            elif key[0] == "dockerfile":
                image = modal.Image.from_dockerfile(o.dockerfile)
            else:
                image = modal.Image.debian_slim()
            images[key] = image
        return image

    def _env(self) -> dict[str, str]:
        missing = [k for k in self.opts.pass_env if k not in os.environ]
        if missing:
            raise SandboxError(f"pass_env names host variables that are not set: {missing}")
        return {**{k: os.environ[k] for k in self.opts.pass_env}, **self.opts.env}

    async def _start(self) -> None:
        import modal

        o = self.opts
        acc = self._acc = await account(o)
        assert acc.limiter is not None
        env = self._env()
        kwargs: dict[str, Any] = dict(
            app=acc.app, image=self._image(modal, acc), env=env or None,
            secrets=[modal.Secret.from_name(n) for n in o.secrets] or None,
            timeout=o.timeout, idle_timeout=o.idle_timeout, workdir=o.workdir, cpu=o.cpu, memory=o.memory,
            block_network=o.block_network, client=acc.client,
        )
        delay = 0.5
        for attempt in range(o.create_retries + 1):
            self._create_token = secrets.token_hex(8)
            try:
                async with acc.limiter, asyncio.timeout(o.create_timeout):
                    self._sb = await modal.Sandbox.create.aio(*o.keepalive, tags=self.tags(), **kwargs)
                break
            except Exception as e:  # noqa: BLE001 - sorted below
                transient = is_transient(e)
                if transient:
                    await self._reap_lost_create()
                if not transient or attempt == o.create_retries:
                    if isinstance(e, modal.exception.ImageBuildError):
                        log = str(e)
                        log = log if len(log) < 2000 else "...\n" + log[-2000:]
                        raise SandboxError(f"the Modal image for sandbox {self.sandbox_id} failed to build: {log}") from None
                    if isinstance(e, (modal.exception.AuthError, modal.exception.PermissionDeniedError)):
                        raise ModalAuthError(f"Modal refused to create sandbox {self.sandbox_id} ({e}): set "
                                             "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `modal token new`)") from None
                    what = "transient error, retries exhausted" if transient else "error"
                    raise SandboxError(f"creating Modal sandbox {self.sandbox_id} failed after {attempt + 1} "
                                       f"attempt(s) ({what}): {e.__class__.__name__}: {e}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
        self.modal_id = self._sb.object_id
        if self.closed:  # closed while the create was in flight: that close could not see it
            sb, self._sb = self._sb, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.opts.rpc_timeout):
                    await sb.terminate.aio()
            raise SandboxClosedError(f"sandbox {self.sandbox_id} was closed while it was being created")

    async def _reap_lost_create(self) -> None:
        """Terminate any sandbox made by a create whose answer never arrived."""
        import modal

        acc = self._acc
        if acc is None or not self._create_token:
            return
        try:
            async with asyncio.timeout(self.opts.rpc_timeout):
                async for sb in modal.Sandbox.list.aio(
                    app_id=acc.app.app_id, tags={CREATE_TAG: self._create_token}, client=acc.client
                ):
                    await sb.terminate.aio()
        except Exception:  # noqa: BLE001 - best effort; the lifetime timeout is the backstop
            pass

    async def _close(self) -> None:
        for proc in list(self._procs):
            proc.abandon()
        sb, self._sb = self._sb, None
        if sb is None:
            if self._acc is not None:
                await self._reap_lost_create()
            return
        last: BaseException | None = None
        for attempt in range(4):
            try:
                async with asyncio.timeout(self.opts.rpc_timeout):
                    await sb.terminate.aio()
                last = None
                break
            except Exception as e:  # noqa: BLE001
                import modal.exception as me

                if isinstance(e, me.NotFoundError):
                    last = None
                    break
                last = e
                if not is_transient(e):
                    break
                await asyncio.sleep(0.5 * 2**attempt)
        with contextlib.suppress(Exception):
            await sb.detach.aio()
        if last is not None:
            raise SandboxError(
                f"terminating Modal sandbox {self.modal_id} failed ({last.__class__.__name__}: {last}); it ends by "
                f"itself after its lifetime timeout ({self.opts.timeout}s) or with `hermes sandbox sweep --backend modal`"
            )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "modal_id": self.modal_id, "app": self.opts.app_name}

    # ------------------------------------------------------------------ commands

    def _cwd(self, cwd: str | None) -> str:
        return self.path(cwd) if cwd else self.workdir

    async def _exec(self, argv: list[str], *, env: Mapping[str, str] | None, cwd: str | None,
                    timeout: int | None = None) -> Any:
        from modal.stream_type import StreamType

        self._check_open()
        try:
            return await self._sb.exec.aio(
                *argv, workdir=cwd or self.workdir, env=dict(env) if env else None, timeout=timeout,
                text=False, stderr=StreamType.DEVNULL,
            )
        except Exception as e:  # noqa: BLE001
            raise await self._gone_or(e, "exec") from None

    async def _ended(self) -> int | None:
        """The sandbox's exit code if Modal says it has ended, else ``None``."""
        if self._sb is None:
            return None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                return await self._sb.poll.aio()  # type: ignore[no-any-return]
        return None

    def _gone_message(self, code: int | None) -> str:
        return (f"Modal sandbox {self.modal_id} of {self.sandbox_id} has ended (exit {code}): terminated, timed "
                "out, or its main process exited")

    async def _gone_or(self, exc: BaseException, what: str) -> SandboxError:
        """A SandboxGoneError when the sandbox has ended, else the translated error."""
        code = await self._ended()
        if code is not None:
            return SandboxGoneError(self._gone_message(code))
        return _modal_error(exc, f"{what} in Modal sandbox {self.modal_id}")

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
        marker = new_marker()
        argv = wrap(self.argv(command), stdin=stdin is not None)
        # Modal's own exec timeout is the backstop if this driver dies; the precise one is ours.
        backstop = math.ceil(timeout) + 2 if timeout else None
        t0 = time.monotonic()
        p = await self._exec(argv, env=exec_env(env, marker), cwd=self._cwd(cwd), timeout=backstop)
        buf = OutputBuffer(OUTPUT_LIMIT)
        reader = asyncio.ensure_future(_read_into(p, buf))
        feeder = asyncio.ensure_future(_feed(p, stdin)) if stdin is not None else None
        code: int | None = None
        try:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - t0))
            async with asyncio.timeout(left):
                await asyncio.shield(reader)
                code = await p.wait.aio()
        except TimeoutError:
            code = None
        except asyncio.CancelledError:
            self._kill_later(marker)
            raise
        except Exception as e:  # noqa: BLE001
            raise await self._gone_or(e, "exec") from None
        finally:
            if feeder is not None and not feeder.done():
                feeder.cancel()
        if code is not None and code != -1:  # -1: Modal's exec timeout expired
            if code > 128 and await self._ended():
                raise SandboxGoneError(self._gone_message(await self._ended()))
            return ExecResult(code, buf.getvalue().decode("utf-8", "replace"))
        await self._signal_marked(9, marker)
        with contextlib.suppress(TimeoutError, Exception):
            async with asyncio.timeout(1.0):
                await asyncio.shield(reader)
        reader.cancel()
        note = f"\n[hermes: command timed out after {timeout:g}s and was killed]"
        return ExecResult(TIMEOUT_EXIT_CODE, buf.getvalue().decode("utf-8", "replace") + note, timed_out=True)

    def _kill_later(self, marker: str) -> None:
        async def reap() -> None:
            with contextlib.suppress(Exception):
                if not self.closed:
                    await self._signal_marked(9, marker)

        task = asyncio.ensure_future(reap())
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)

    async def _signal_marked(self, sig: int, marker: str) -> None:
        if self._sb is None:
            return
        p = await self._exec(["sh", "-c", SIGNAL_MARKED, "sh", str(sig), marker], env=None, cwd="/")
        async with asyncio.timeout(self.opts.rpc_timeout):
            await p.wait.aio()

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        if pty:
            raise SandboxError("the modal backend does not offer PTY processes (capability 'pty' is off)")
        self._check_open()
        marker = new_marker()
        p = await self._exec(wrap(self.argv(command), stdin=True), env=exec_env(env, marker), cwd=self._cwd(cwd))
        proc = ModalProcess(self, p, marker)
        self._procs.add(proc)
        return proc

    # ------------------------------------------------------------------ snapshots

    async def snapshot(self) -> str:
        """Snapshot the sandbox's filesystem; returns a Modal image id (use it as ``image_id``)."""
        self._check_open()
        try:
            async with asyncio.timeout(self.opts.rpc_timeout):
                image = await self._sb.snapshot_filesystem.aio()
        except Exception as e:  # noqa: BLE001
            raise await self._gone_or(e, "snapshot") from None
        return str(image.object_id)


async def _read_into(p: Any, buf: OutputBuffer) -> None:
    async for chunk in p.stdout:
        buf.append(chunk if isinstance(chunk, bytes) else chunk.encode())


async def _feed(p: Any, data: bytes) -> None:
    with contextlib.suppress(Exception):  # the command may exit without reading its input
        for i in range(0, len(data), 1 << 20):
            p.stdin.write(data[i : i + (1 << 20)])
            await p.stdin.drain.aio()
        p.stdin.write_eof()
        await p.stdin.drain.aio()


async def sweep(older_than: float | None = None) -> list[str]:
    """Terminate hermes sandboxes whose owner process is gone (see :mod:`._owner`).

    Looks in the app ``$HERMES_MODAL_APP`` (default ``hermes-sandboxes``). A sandbox whose owner
    is alive, or ran on another host, is never touched.

    Args:
        older_than: only sandboxes created at least this many seconds ago; ``None`` for all.

    Returns:
        One line per terminated sandbox: its Modal id, rollout id, age and why it was removed.
    """
    import modal

    opts = ModalOptions(app_name=os.environ.get(SWEEP_APP_ENV) or ModalOptions().app_name)
    acc = await account(opts)
    now = time.time()
    removed = []
    async with asyncio.timeout(max(opts.rpc_timeout, 300)):
        found = [sb async for sb in modal.Sandbox.list.aio(app_id=acc.app.app_id, tags={BACKEND_TAG: "modal"},
                                                           client=acc.client)]
        for sb in found:
            tags = await sb.get_tags.aio()
            try:
                age = now - float(tags.get("hermes.created", now))
            except ValueError:
                age = 0.0
            if older_than is not None and age < older_than:
                continue
            gone, why = owner_gone(tags)
            if not gone:
                continue
            await sb.terminate.aio()
            removed.append(f"{sb.object_id} (rollout {tags.get('hermes.rollout', '?')}, age {age:.0f}s, {why})")
    return removed


def _factory(options: ModalOptions, *, sandbox_id: str, labels: Mapping[str, str]) -> ModalSandbox:
    return ModalSandbox(options, sandbox_id=sandbox_id, labels=labels)


_ = (ModalUnavailableError,)
