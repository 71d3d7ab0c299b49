"""The backend author's package: everything a sandbox backend needs, in one public place.

A backend subclasses :class:`Sandbox` and implements ``_start``, ``_close``, ``exec`` and
``spawn``; the stateful shell (:class:`ShellSession`) and the file channel (streamed through one
command's stdin/stdout, sha256-checked) work on top of those, and a backend overrides the file
methods with its native channel where it has one. Backends that run a local subprocess (a
launcher such as ``nsenter``, ``chroot``, ``ssh`` or a container CLI) get ready :class:`Process`
implementations: :class:`PipeProcess` and :class:`PtyProcess`, both signalling the whole process
group, so a signal reaches the command behind the launcher. See ``docs/backends.md``.
"""

from ._blocking import run_blocking, run_teardown
from ._cloned import CloneRefused, clone_into_cgroup
from ._coalesce import Coalescer
from ._contract import Sandbox
from ._oneshot import run_subprocess
from ._output import DEFAULT_OUTPUT_LIMIT, OutputBuffer, omitted_note
from ._owner import owner_alive, owner_record
from ._shell import ShellSession, fresh_shell_child, job_report, simple_command
from ._subprocess import (
    HIGH_WATER,
    PipeProcess,
    PtyProcess,
    exit_code,
    killpg,
    spawn_subprocess,
)
from ._transfer import extract_tar, skip_reason, tar_dir, write_sparse
from ._types import (
    TIMEOUT_EXIT_CODE,
    Capabilities,
    Command,
    ExecResult,
    FileInfo,
    Process,
    Spawner,
    timeout_note,
)

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "HIGH_WATER",
    "TIMEOUT_EXIT_CODE",
    "Capabilities",
    "CloneRefused",
    "Coalescer",
    "Command",
    "ExecResult",
    "FileInfo",
    "OutputBuffer",
    "PipeProcess",
    "Process",
    "PtyProcess",
    "Sandbox",
    "ShellSession",
    "Spawner",
    "clone_into_cgroup",
    "exit_code",
    "extract_tar",
    "fresh_shell_child",
    "job_report",
    "killpg",
    "omitted_note",
    "owner_alive",
    "owner_record",
    "run_blocking",
    "run_subprocess",
    "run_teardown",
    "simple_command",
    "skip_reason",
    "spawn_subprocess",
    "tar_dir",
    "timeout_note",
    "write_sparse",
]
