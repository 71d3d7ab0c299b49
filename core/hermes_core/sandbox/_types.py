"""The value types of the sandbox contract: what a command leaves, what a backend can do, and
the handle of a background process. Shared by the contract, the stateful shell and the generic
file channel (which import this module and never each other's sandbox class)."""

from __future__ import annotations

import abc
import signal
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..errors import SandboxError

__all__ = ["ExecResult", "Capabilities", "FileInfo", "Process", "Command", "TIMEOUT_EXIT_CODE", "Spawner", "timeout_note"]

#: Exit code reported for a command that hit its timeout (as coreutils ``timeout`` does).
TIMEOUT_EXIT_CODE = 124

def timeout_note(seconds: float) -> str:
    """The line a backend appends to a timed-out command's output (the conformance suite and
    models look for "timed out")."""
    return f"\n[hermes: command timed out after {seconds:g}s and was killed]"


#: A command: a shell string (run by the sandbox's shell) or an argv list (run directly).
Command = str | Sequence[str]


@dataclass(frozen=True)
class ExecResult:
    """What a finished command left behind.

    Attributes:
        exit_code: the process exit code; ``124`` on timeout; ``128+N`` when killed by signal N.
        output: stdout and stderr interleaved, decoded as UTF-8 (invalid bytes replaced).
        timed_out: the command was killed because it hit its timeout.
    """

    exit_code: int
    output: str
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The ``{"exit_code", "output"}`` shape of the hermes verifier API."""
        return {"exit_code": self.exit_code, "output": self.output}


@dataclass(frozen=True)
class FileInfo:
    """What a path in a sandbox is, without opening it (``Sandbox.stat``).

    Attributes:
        kind: ``file``, ``dir``, ``symlink`` (only when not following links), ``fifo``,
            ``socket``, ``char``, ``block``, ``missing`` or ``other``.
        size: bytes (apparent size) for a file, else 0.
    """

    kind: str
    size: int = 0

    @property
    def regular(self) -> bool:
        return self.kind == "file"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the conformance suite skips groups a backend does not claim.

    Attributes:
        pty: ``spawn(..., pty=True)`` works.
        native_files: files move through a native channel (not the exec fallback).
        permissions: ``put_dir``/``get_dir`` preserve file modes.
        symlinks: ``put_dir``/``get_dir`` preserve symlinks.
        snapshots: the sandbox can be snapshotted.
        network_policy: network access can be switched off per sandbox.
        persistent_shell: the stateful shell keeps ``cd``/``export`` between calls.
        isolated_filesystem: one sandbox cannot reach another's files even by absolute path.
        isolated_processes: one sandbox cannot see or signal another's processes.
        host_processes: sandbox processes are processes of this host (same pid namespace), so
            background jobs can outlive the driver and be recovered after a crash.
    """

    pty: bool = False
    native_files: bool = False
    permissions: bool = True
    symlinks: bool = True
    snapshots: bool = False
    network_policy: bool = False
    persistent_shell: bool = True
    isolated_filesystem: bool = False
    isolated_processes: bool = False
    host_processes: bool = False

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


class Process(abc.ABC):
    """A background process inside a sandbox.

    Output (stdout and stderr merged, or the PTY stream) is read incrementally with :meth:`read`.
    Signals go to the process's whole process group.
    """

    #: The process id inside the sandbox (``None`` when the backend cannot tell).
    pid: int | None = None
    #: Whether the process runs on a pseudo-terminal.
    pty: bool = False

    @abc.abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Wait for output and return up to ``max_bytes`` of it; ``b""`` means end of output."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write to the process's stdin (or PTY).

        Raises:
            ProcessError: stdin is closed or the process has ended.
        """

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """Close stdin (send EOF in PTY mode)."""

    @abc.abstractmethod
    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait for exit; return the exit code, or ``None`` if ``timeout`` passed first."""

    @property
    @abc.abstractmethod
    def returncode(self) -> int | None:
        """The exit code once the process has ended (``128+N`` for signal N), else ``None``."""

    @abc.abstractmethod
    async def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group. A no-op once the process has ended."""

    async def kill(self, grace: float = 0.5) -> int:
        """Terminate the process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Returns:
            The exit code.
        """
        if self.returncode is None:
            await self.signal(signal.SIGTERM)
            code = await self.wait(grace)
            if code is not None:
                return code
            await self.signal(signal.SIGKILL)
        code = await self.wait(5.0)
        if code is None:
            raise SandboxError(f"process {self.pid} did not die after SIGKILL")
        return code


class Spawner(Protocol):
    """The part of a sandbox that the stateful shell and the generic file channel use."""

    sandbox_id: str

    @property
    def closed(self) -> bool: ...

    async def exec(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult: ...

    async def spawn(
        self,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process: ...
