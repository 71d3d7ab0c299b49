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

    def make_runtime(self):
        from hermes_core import Runtime

        return Runtime(plugins=[_ExecOnlyPlugin()])

    async def leftovers(self, sandbox):
        return await local_leftovers(sandbox)


def test_hostile_archive_from_a_sandbox_cannot_write_outside(tmp_path):
    """A sandbox controls the tar stream its get_dir sends back (it can replace `tar`): a hard
    link to a host file followed by a file of that name must not write into the host file."""
    import io
    import tarfile

    import pytest

    from hermes_core.sandbox import extract_tar

    victim = tmp_path / "victim.txt"
    victim.write_text("host data")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("h")
        link.type, link.linkname = tarfile.LNKTYPE, str(victim)
        tar.addfile(link)
        body = b"PWNED"
        f = tarfile.TarInfo("h")
        f.size = len(body)
        tar.addfile(f, io.BytesIO(body))
    buf.seek(0)
    from hermes_core.errors import TransferError

    with pytest.raises((tarfile.FilterError, TransferError)):
        extract_tar(buf, tmp_path / "dest")
    assert victim.read_text() == "host data"

    # A symlink out of the destination is not recreated, so nothing can be written through it
    # (the file lands inside the destination, under a real directory).
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        s = tarfile.TarInfo("s")
        s.type, s.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(s)
        f = tarfile.TarInfo("s/victim.txt")
        f.size = 5
        tar.addfile(f, io.BytesIO(b"PWNED"))
    buf.seek(0)
    skipped: list[str] = []
    assert extract_tar(buf, tmp_path / "dest2", skipped=skipped) == ["s/victim.txt"]
    assert victim.read_text() == "host data"
    assert (tmp_path / "dest2" / "s" / "victim.txt").read_bytes() == b"PWNED"
    assert not (tmp_path / "dest2" / "s").is_symlink()
    assert skipped and "outside the destination" in skipped[0]


async def test_generic_upload_reports_the_remote_failure(tmp_path):
    """When the sandbox side fails mid-stream, the error says why (not 'stdin closed')."""
    from hermes_core import Runtime, TransferError

    rt = Runtime(plugins=[_ExecOnlyPlugin()])
    sb = await rt.create_sandbox("local-exec-only", {"root": str(tmp_path / "sb")}).start()
    try:
        await sb.exec("mkdir ro && chmod 500 ro")
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(8 << 20))
        import pytest

        if os.geteuid() == 0:
            # root ignores directory permissions: make the parent a file instead
            await sb.exec("rm -rf ro && echo x > ro")
        with pytest.raises(TransferError, match=r"exit 2"):
            await sb.put_file(big, "ro/sub/big.bin")
    finally:
        await sb.close()
        await rt.aclose()


async def test_close_finds_processes_caught_mid_exec(tmp_path):
    """/proc shows an empty environment while a process is inside execve; a close that sweeps at
    that moment must look again rather than miss an escaped process."""
    from hermes_core import Runtime

    from hermes_plugins.local import kill_marked

    rt = Runtime()
    ids: set[str] = set()
    try:
        for _ in range(30):
            sb = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
            ids.add(sb.sandbox_id)
            # setsid: out of every tracked group, so only the marker sweep can find it; it
            # execs repeatedly so closes often land mid-exec.
            await sb.exec("setsid sh -c 'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); /bin/true; done; exec sleep 300' >/dev/null 2>&1 < /dev/null &")
            await sb.close()
            assert await local_leftovers(sb) == []
    finally:
        for _ in range(5):  # a failed run must not leave its sleepers behind
            kill_marked(ids)
        await rt.aclose()
