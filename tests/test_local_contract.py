"""The conformance suite against the built-in local backend, natively and through the generic
exec-only file channel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hermes_core import hookimpl
from hermes_core.sandbox import Sandbox
from hermes_core.testing import SandboxContract
from hermes_plugins.local import MARKER, LocalOptions, LocalSandbox


def marked_pids(sandbox_id: str, *, prefix: bool = False) -> list[int]:
    """Live processes carrying this sandbox's marker (or, with ``prefix``, any id starting so)."""
    needle = f"{MARKER}={sandbox_id}".encode() + (b"" if prefix else b"\0")
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in env and state != b"Z":
            pids.append(int(entry.name))
    return pids


async def local_leftovers(sandbox: Sandbox) -> list[str]:
    out = [f"process {pid}" for pid in marked_pids(sandbox.sandbox_id)]
    root = getattr(sandbox, "root", None)
    if root is not None and Path(root).exists():
        out.append(f"directory {root}")
    return out


class TestLocalContract(SandboxContract):
    backend = "local"

    @pytest.fixture
    def backend_options(self, tmp_path):
        return {"root": str(tmp_path / "sandboxes")}

    async def leftovers(self, sandbox):
        return await local_leftovers(sandbox)


class ExecOnlySandbox(LocalSandbox):
    """The local backend with its native file channel removed: exercises the generic
    stdin/stdout + sha256 channel that exec-only backends (SSH without SFTP, cloud shells) get."""

    backend_name = "local-exec-only"
    write_bytes = Sandbox.write_bytes
    read_bytes = Sandbox.read_bytes
    put_file = Sandbox.put_file
    get_file = Sandbox.get_file
    put_dir = Sandbox.put_dir
    get_dir = Sandbox.get_dir


class _ExecOnlyPlugin:
    @hookimpl
    def hermes_register_backends(self, registry):
        registry.register(
            "local-exec-only",
            lambda o, *, sandbox_id, labels: ExecOnlySandbox(o, sandbox_id=sandbox_id, labels=labels),
            options=LocalOptions,
        )


class TestExecOnlyFileChannel(SandboxContract):
    backend = "local-exec-only"

    @pytest.fixture
    def backend_options(self, tmp_path):
        return {"root": str(tmp_path / "sandboxes")}

    @pytest.fixture
    async def runtime(self):
        from hermes_core import Runtime

        rt = Runtime(plugins=[_ExecOnlyPlugin()])
        yield rt
        await rt.aclose()

    def test_random_bytes_and_names_round_trip(self, backend_options, tmp_path):
        pytest.skip("covered for the local backend; the exec-only channel is exercised by the other file tests")

    async def leftovers(self, sandbox):
        return await local_leftovers(sandbox)
