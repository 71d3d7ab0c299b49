"""The sandbox contract every backend implements.

One backend instance is one sandbox is one rollout. Everything is ``async``. A backend must
implement :meth:`Sandbox._start`, :meth:`Sandbox._close`, :meth:`Sandbox.exec` and
:meth:`Sandbox.spawn`; the stateful shell and the file channel have generic implementations on
top of those (the shell over a piped ``bash``; files streamed through one command's stdin/stdout
and checked with sha256), which a backend overrides with its native channel where it has one.
"""

from __future__ import annotations

import abc
import asyncio
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import SandboxClosedError, SandboxError
from . import _transfer
from ._output import DEFAULT_OUTPUT_LIMIT
from ._shell import ShellSession
from ._types import Capabilities, Command, ExecResult, FileInfo, Process

__all__ = ["Sandbox"]

#: ``stat -c %F`` answers (GNU coreutils and busybox) -> FileInfo kinds.
_STAT_KINDS = {
    "regular file": "file", "regular empty file": "file", "directory": "dir", "symbolic link": "symlink",
    "fifo": "fifo", "socket": "socket", "character special file": "char", "block special file": "block",
}

#: ``Sandbox._closing`` once a close finished synchronously.
_CLOSED = object()


class Sandbox(abc.ABC):
    """One isolated place where a rollout's commands run.

    Subclasses set :attr:`backend_name` and :attr:`capabilities` and implement the abstract
    methods. Instances are created by the runtime through the backend's registered factory:
    ``factory(options, *, sandbox_id, labels)``.
    """

    backend_name: ClassVar[str] = "?"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The shell that runs string commands and the stateful session.
    shell_argv: ClassVar[tuple[str, ...]] = ("bash", "-c")
    #: Bytes of one command's output the driver keeps (head + tail, with a note of the cut);
    #: ``exec`` and ``shell`` must stay within it whatever the command prints. The Runtime sets
    #: it from ``HermesConfig.command_output_bytes``.
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    #: Bytes ``read_bytes`` reads into driver memory at most (larger files: ``TransferError``;
    #: use ``get_file``). From ``HermesConfig.max_read_bytes``.
    max_read_bytes: int = _transfer.MAX_READ_BYTES
    #: Bytes of file data ``get_file``/``get_dir`` write to the host at most (holes of sparse
    #: files are kept as holes and not counted by the native channels). From
    #: ``HermesConfig.max_download_bytes``.
    max_download_bytes: int = _transfer.MAX_DOWNLOAD_BYTES
    #: Seconds the stateful shell has to start (print its first line) before ``shell()`` fails
    #: with a ``SandboxError``; a backend whose engine can be slow under load raises it.
    shell_start_timeout: float = 60.0

    def __init__(self, options: Any = None, *, sandbox_id: str, labels: Mapping[str, str] | None = None):
        self.options = options
        self.sandbox_id = sandbox_id
        self.labels = dict(labels or {})
        self._state = "new"  # new → started → closed
        self._shell: Any = None  # a ShellSession, created on first use
        self._closing: asyncio.Future[None] | object | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def workdir(self) -> str:
        """Absolute path (inside the sandbox) that relative paths and commands start from."""
        return "/"

    @property
    def started(self) -> bool:
        return self._state == "started"

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    async def start(self) -> Sandbox:
        """Create the sandbox. Returns ``self``.

        Raises:
            SandboxError: the backend could not create it (the message says why).
        """
        if self._state != "new":
            raise SandboxError(f"sandbox {self.sandbox_id} was already {self._state}")
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        self._state = "started"
        return self

    async def close(self) -> None:
        """Destroy the sandbox and everything it started. Idempotent; safe under cancellation."""
        if self._closing is None:
            self._state = "closed"
            shell, self._shell = self._shell, None
            if shell is None and self._closed_now():
                # Torn down already, without awaiting anything (so nothing could interrupt it).
                self._closing = _CLOSED
                return
            # One teardown, shielded: a cancelled caller must not leave containers or processes
            # behind, and every later caller waits for the same teardown to finish.
            self._closing = asyncio.ensure_future(self._close_all(shell))
        if self._closing is not _CLOSED:
            await asyncio.shield(self._closing)

    async def _close_all(self, shell: Any) -> None:
        if shell is not None:
            await shell.close()
        await self._close()

    def host_pids(self) -> list[int] | None:
        """Host pids of every process this sandbox still runs, where the backend can list them
        exactly (the local backend's cgroup: no process can leave it); ``None`` where it cannot
        (then whoever looks for a sandbox's processes scans ``/proc``). Only meaningful with
        ``capabilities.host_processes``."""
        return None

    async def __aenter__(self) -> Sandbox:
        if self._state == "new":
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._state != "started":
            what = "not started" if self._state == "new" else "closed"
            raise SandboxClosedError(f"sandbox {self.sandbox_id} ({self.backend_name}) is {what}")

    @abc.abstractmethod
    async def _start(self) -> None:
        """Create the sandbox."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Destroy the sandbox; must succeed when half-created or already gone."""

    def _closed_now(self) -> bool:
        try:
            return self._close_now()
        except Exception:  # noqa: BLE001 - whatever failed, _close finishes the teardown
            return False  # _close finishes it

    def _close_now(self) -> bool:
        """Optional fast path of :meth:`close`: tear the sandbox down synchronously if that needs
        no waiting (no blocking call either) and return ``True``; ``False`` (the default) when
        :meth:`_close` must run. Called at most once, instead of ``_close`` when it succeeds;
        it must leave the sandbox for ``_close`` to finish when it returns ``False``."""
        return False

    # ------------------------------------------------------------------ commands

    def argv(self, command: Command) -> list[str]:
        """The argv that runs ``command``: shell strings go through :attr:`shell_argv`."""
        if isinstance(command, str):
            return [*self.shell_argv, command]
        argv = list(command)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"command must be a string or a non-empty list of strings, got {command!r}")
        return argv

    @abc.abstractmethod
    async def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run one command to completion in a fresh process.

        A timeout kills the command's whole process group and returns exit code 124 with the
        output so far; the sandbox stays usable.
        """

    @abc.abstractmethod
    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """Start a background process in its own process group, stdin kept open."""

    async def _exec_in_fresh_shell(self, words: list[str], *, timeout: float | None, max_output: int) -> ExecResult | None:
        """Optional fast path of :meth:`shell` while no shell has started: run ``words`` (one
        external program with literal arguments, see :func:`simple_command`) exactly as a new
        session shell would — the program bash finds on ``PATH``, bash's environment for it
        (:func:`fresh_shell_child` computes both where sandbox paths are host paths), the
        working directory, merged output cut at ``max_output``, a timeout's kill and note — or
        return ``None`` (the default) to let the shell run it."""
        return None

    async def shell(self, command: str, *, timeout: float | None = None, max_output: int | None = None) -> ExecResult:
        """Run ``command`` in this sandbox's long-lived shell: ``cd`` and ``export`` persist.

        A timeout kills the command (its process group) and the shell survives; if the shell
        itself died (``exit``, ``exec``), a new one is started and the output says so. At most
        ``max_output`` bytes of output are kept (default :attr:`output_limit`), head and tail.
        """
        self._check_open()
        if self._shell is None:
            self._shell = ShellSession(self)
            self._shell.start_timeout = self.shell_start_timeout
        return await self._shell.run(command, timeout=timeout, max_output=max_output)

    # ------------------------------------------------------------------ files

    def path(self, path: str | Path) -> str:
        """Resolve ``path`` (relative to :attr:`workdir`) to an absolute sandbox path."""
        p = str(path)
        if not p:
            raise ValueError("path must not be empty")
        return posixpath.normpath(posixpath.join(self.workdir, p))

    async def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` (parents created), byte-exact.

        Raises:
            TransferError: the bytes did not arrive intact.
        """
        await _transfer.write_bytes(self, self.path(path), data)

    async def read_bytes(self, path: str) -> bytes:
        """Return the exact bytes of ``path``.

        Raises:
            FileNotFoundError: no such file.
            TransferError: the bytes could not be read intact.
        """
        return await _transfer.read_bytes(self, self.path(path))

    async def put_file(self, local_path: str | Path, remote_path: str) -> int:
        """Stream a host file into the sandbox; returns the number of bytes written."""
        return await _transfer.put_file(self, Path(local_path), self.path(remote_path))

    async def get_file(self, remote_path: str, local_path: str | Path) -> int:
        """Stream a sandbox file to the host; returns the number of bytes written."""
        return await _transfer.get_file(self, self.path(remote_path), Path(local_path))

    async def put_dir(self, local_dir: str | Path, remote_dir: str) -> list[str]:
        """Copy a host directory tree into the sandbox (tar); returns the relative paths."""
        return await _transfer.put_dir(self, Path(local_dir), self.path(remote_dir))

    async def get_dir(
        self, remote_dir: str, local_dir: str | Path, *, keep_special: bool = False, skipped: list[str] | None = None
    ) -> list[str]:
        """Copy a sandbox directory tree to the host (tar); returns the relative paths.

        Nothing is written outside ``local_dir``. Symlinks that point outside it, FIFOs and
        device nodes are not recreated unless ``keep_special`` (each is appended to
        ``skipped`` with the reason); file data past :attr:`max_download_bytes` stops the copy
        with ``TransferError``.
        """
        return await _transfer.get_dir(
            self, self.path(remote_dir), Path(local_dir), keep_special=keep_special, skipped=skipped
        )

    async def stat(self, path: str, *, follow_symlinks: bool = True) -> FileInfo:
        """What ``path`` is (file, dir, FIFO, ...) and its size, without opening it. The generic
        implementation runs ``stat`` in the sandbox; backends with a native call override it."""
        argv = ["stat", *(["-L"] if follow_symlinks else []), "-c", "%F|%s", "--", self.path(path)]
        r = await self.exec(argv, timeout=30)
        if r.exit_code != 0:
            return FileInfo("missing")
        kind_text, _, size = r.output.strip().rpartition("|")
        kind = _STAT_KINDS.get(kind_text.lower(), "other")
        return FileInfo(kind, int(size) if kind == "file" and size.isdigit() else 0)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend_name,
            "sandbox_id": self.sandbox_id,
            "workdir": self.workdir,
            "labels": self.labels,
        }
