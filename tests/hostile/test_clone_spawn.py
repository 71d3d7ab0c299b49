"""Commands started directly inside their sandbox's cgroup (``clone3(CLONE_INTO_CGROUP)``, the
compiled ``hermes_core.sandbox._clone``) instead of behind a launcher that joins and execs.

The child must look exactly like one the launcher path starts — same signal dispositions and
mask, only fds 0-2, its own session, the sandbox's cwd and environment, the same exit codes for
a missing or unrunnable command — and be inside the cgroup before its first instruction. Where
the kernel refuses clone3 the command still runs (through the launcher) and later ones go that
way too. ``HERMES_REQUIRE_CLONE3=1`` (the test command sets it) makes a missing helper a failure
instead of a skip."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import threading

import pytest
from hermes_core import Runtime
from hermes_core.sandbox import _cloned
from hermes_plugins import _local_cgroup as cgroups

_root = cgroups.find_root()
_v2 = _root is not None and _root.kind == "v2"
if os.environ.get("HERMES_REQUIRE_CLONE3") == "1":
    assert _cloned._clone is not None, "hermes_core.sandbox._clone was not built (is a C compiler installed?)"
    assert _v2, "no writable cgroup v2 hierarchy here"
pytestmark = pytest.mark.skipif(_cloned._clone is None or not _v2,
                                reason="needs the compiled _clone helper and a writable cgroup v2 hierarchy")

PROBE = ("grep -E '^(SigBlk|SigIgn|SigCgt)' /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; "
         "read -r _ _ _ ppid pgrp sid _ < /proc/self/stat; [ $pgrp = $$ ] && [ $sid = $$ ] && echo own-session; "
         "pwd; umask; env | grep -v '^_=' | sort")


@pytest.fixture
async def sandbox(tmp_path):
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "cgroup"}).start()
    yield sb
    await sb.close()
    await rt.aclose()


@pytest.fixture
def spawns(monkeypatch):
    """Counts the commands the helper started."""
    calls = []
    real = _cloned._clone.spawn

    def counting(*args):
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(_cloned._clone, "spawn", counting)
    return calls


def launcher_only(monkeypatch):
    monkeypatch.setattr(_cloned, "_clone_ok", False)


async def test_a_command_starts_inside_the_cgroup_from_its_first_instruction(sandbox, spawns):
    assert _cloned.clone_into_cgroup()
    res = await sandbox.exec(["cat", "/proc/self/cgroup"])
    assert res.exit_code == 0, res.output
    assert spawns == [[b"cat", b"/proc/self/cgroup"]]  # started by the helper, no launcher argv
    v2_line = next(line for line in res.output.splitlines() if line.startswith("0::"))
    assert v2_line.endswith("/" + sandbox._cgroup.path.name), res.output
    # a shell string too (no in-bash join either)
    res = await sandbox.exec("cat /proc/self/cgroup; sleep 300 & echo $!")
    bg = int(res.output.split()[-1])
    assert bg in sandbox.host_pids()
    assert spawns[-1][:2] == [b"bash", b"-c"] and b"cgroup.procs" not in b" ".join(spawns[-1])


async def test_the_child_is_the_same_as_the_launchers(sandbox, spawns, monkeypatch):
    direct = await sandbox.exec(["sh", "-c", PROBE])
    assert len(spawns) == 1
    launcher_only(monkeypatch)
    through_launcher = await sandbox.exec(["sh", "-c", PROBE])
    assert len(spawns) == 1  # the second one did not use the helper
    assert direct.exit_code == through_launcher.exit_code == 0, (direct.output, through_launcher.output)
    assert direct.output == through_launcher.output
    lines = direct.output.splitlines()
    # Python ignores SIGPIPE and SIGXFSZ; a command gets them back at their defaults, nothing is
    # blocked (SigCgt: grep's own handlers, the same both ways).
    assert lines[:2] == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]
    assert lines[3].split() == ["0", "1", "2", "3"]  # 3: the directory ls is reading
    assert lines[4] == "own-session"
    assert lines[5] == sandbox.workdir
    env = dict(line.split("=", 1) for line in lines[7:])
    assert env["HERMES_SANDBOX_ID"] == sandbox.sandbox_id and env["HOME"].endswith("/home")


@pytest.mark.parametrize("path", ["helper", "launcher"])
async def test_failures_to_start_get_the_same_exit_codes(sandbox, tmp_path, monkeypatch, path):
    if path == "launcher":
        launcher_only(monkeypatch)
    (tmp_path / "plain.txt").write_text("not a program\n")
    missing = await sandbox.exec(["no-such-command-anywhere"])
    assert missing.exit_code == 127, missing.output
    unrunnable = await sandbox.exec([str(tmp_path / "plain.txt")])
    assert unrunnable.exit_code == 126, unrunnable.output
    no_cwd = await sandbox.exec(["true"], cwd="no/such/dir")
    assert no_cwd.exit_code in (126, 127) and no_cwd.exit_code != 0, no_cwd.output
    fine = await sandbox.exec(["sh", "-c", "exit 3"])
    assert fine.exit_code == 3
    killed = await sandbox.exec(["sh", "-c", "kill -TERM $$"])
    assert killed.exit_code == 128 + signal.SIGTERM


async def test_stdin_timeout_and_the_process_group(sandbox, spawns):
    data = os.urandom(48_000).hex().encode()  # 96 KB: more than a pipe holds
    res = await sandbox.exec(["cat"], stdin=data)
    assert res.exit_code == 0 and res.output.encode() == data
    res = await sandbox.exec(["sh", "-c", "sleep 30 & sleep 30; echo never"], timeout=0.3)
    assert res.timed_out and "never" not in res.output
    await asyncio.sleep(0.05)
    assert sandbox.host_pids() == []  # the timeout killed the command's whole group
    assert len(spawns) == 2


async def test_the_drivers_signal_mask_and_threads_are_untouched(sandbox):
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    stop = threading.Event()
    errors: list[BaseException] = []

    def popen_loop() -> None:  # another thread forking at the same time
        try:
            while not stop.is_set():
                subprocess.run(["true"], check=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=popen_loop)
    t.start()
    try:
        results = await asyncio.gather(*(sandbox.exec(["sh", "-c", f"echo {i}"]) for i in range(40)))
    finally:
        stop.set()
        t.join(10)
    assert [r.output for r in results] == [f"{i}\n" for i in range(40)]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert not errors


async def test_a_refused_clone3_falls_back_to_the_launcher(sandbox, monkeypatch):
    def refuse(*args):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(_cloned._clone, "spawn", refuse)
    monkeypatch.setattr(_cloned, "_clone_ok", True)
    res = await sandbox.exec(["cat", "/proc/self/cgroup"])
    assert res.exit_code == 0, res.output
    assert sandbox._cgroup.path.name in res.output  # joined all the same, through the launcher
    assert not _cloned.clone_into_cgroup()
    res = await sandbox.exec(["echo", "later"])  # later commands go the launcher's way directly
    assert res.output == "later\n"


def test_bad_arguments_are_refused_before_anything_starts():
    with pytest.raises(ValueError):
        _cloned._clone.spawn([b"/bin/true"], [b"tr\0ue"], [], None, -1, -1, -1, -1)
    with pytest.raises(ValueError):
        _cloned._clone.spawn([], [b"true"], [], None, -1, -1, -1, -1)
    with pytest.raises(TypeError):
        _cloned._clone.spawn([b"/bin/true"], ["true"], [], None, -1, -1, -1, -1)
    pid, pidfd, step, err = _cloned._clone.spawn([b"/bin/true"], [b"true"], [], None, -1, -1, -1, -1)
    try:
        assert step == 0 and err == 0 and pid > 0
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(pidfd)


def test_the_portable_build_without_a_shared_address_space(tmp_path):
    """Elsewhere than x86-64 the helper clones without CLONE_VM (the child goes on in a copy of
    the driver's memory): built here that way, it must behave the same."""
    import shutil
    import sysconfig

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = os.path.join(os.path.dirname(_cloned.__file__), "_clone.c")
    out = tmp_path / ("_clone" + sysconfig.get_config_var("EXT_SUFFIX"))
    build = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-DHERMES_CLONE_NO_VM", f"-I{sysconfig.get_paths()['include']}",
                            src, "-o", str(out)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    code = f"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("hermes_core.sandbox._clone", {str(out)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
cg = {str(_root.path)!r} + "/portable-" + str(os.getpid())
os.mkdir(cg)
try:
    fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    r, w = os.pipe()
    pid, pidfd, step, err = m.spawn([b"/nonexistent/sh", b"/bin/sh"], [b"sh", b"-c", b"cat /proc/self/cgroup; ls /proc/self/fd | tr '\\\\n' ' '"],
                                    [b"PATH=/usr/bin:/bin"], b"/", fd, -1, w, w)
    os.close(w)
    assert step == 0 and pid > 0, (step, err)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    assert os.waitpid(pid, 0)[1] == 0
    print(out.decode())
    print(m.spawn([b"/nonexistent"], [b"x"], [], None, fd, -1, -1, -1)[2:])
    print(m.spawn([b"/bin/true"], [b"true"], [], b"/nonexistent", fd, -1, -1, -1)[2:])
finally:
    os.rmdir(cg)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("0::") and "/portable-" in line for line in lines), res.stdout
    assert "0 1 2 3 " in res.stdout  # nothing of the driver's beyond 0-2 (3: ls reading /proc/self/fd)
    assert lines[-2:] == [f"(3, {errno.ENOENT})", f"(2, {errno.ENOENT})"]
