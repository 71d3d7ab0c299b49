"""Issue: cleanup that cannot be dodged, and sweeps that remove only what is dead.

Processes that drop the sandbox marker (``env -i``) or overwrite it, leave their process group
(``setsid``) and double-fork are still found at close (a cgroup per sandbox); a sandbox whose
driver was SIGKILLed is swept, a live one is not; a driver that exits without closing
(``sys.exit``, an unhandled exception) leaves nothing behind (the atexit backstop)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hermes_core import Runtime
from hermes_plugins import _local_cgroup as cgroups

EVASIONS = [
    "env -i setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &",
    "HERMES_SANDBOX_ID=not-me setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &",
    "(env -i setsid bash -c '(exec -a {tag} sleep 300 &) ; exit' &) >/dev/null 2>&1",
    "env -u HERMES_SANDBOX_ID nohup setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &",
]


def procs_named(tag: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0] == tag.encode():
                    out.append(int(pid))
        except OSError:
            pass
    return out


needs_cgroup = pytest.mark.skipif(cgroups.find_root() is None, reason="no writable cgroup hierarchy here")


def _hierarchies() -> list[str]:
    """The kinds of cgroup hierarchy sandboxes can use on this host (each is tested)."""
    kinds = []
    for where, fstype, opts in cgroups._mounts():
        kind = "v2" if fstype == "cgroup2" else "v1-freezer" if fstype == "cgroup" and "freezer" in opts.split(",") else None
        if kind and kind not in kinds and cgroups._usable(Path(where), kind)[0] is not None:
            kinds.append(kind)
    return kinds or ["none"]


def test_cgroup_v2_with_cgroup_kill_is_preferred_where_it_is_writable():
    root = cgroups.find_root()
    if root is None:
        pytest.skip("no writable cgroup hierarchy here")
    has_v2_kill = any(
        fstype == "cgroup2" and (Path(where) / "hermes" / "cgroup.kill").exists() for where, fstype, _ in cgroups._mounts()
    )
    assert root.kind == ("v2" if has_v2_kill else "v1-freezer")
    assert root.path.name == "hermes" and root.path.is_dir()


@needs_cgroup
@pytest.mark.parametrize("hierarchy", _hierarchies())
@pytest.mark.parametrize("via", ["exec", "shell", "spawn"])
async def test_marker_dropping_escapes_are_killed_at_close(tmp_path, via, hierarchy, monkeypatch):
    for where, fstype, opts in cgroups._mounts():
        kind = "v2" if fstype == "cgroup2" else "v1-freezer" if "freezer" in opts.split(",") else None
        if kind == hierarchy:
            forced = cgroups.CgroupRoot(Path(where) / "hermes", kind)
            monkeypatch.setattr(cgroups, "find_root", lambda: forced)
            break
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "cgroup"}).start()
    assert sb.tracking.startswith(f"cgroup {hierarchy}")
    tags = [f"hermes-escape-{via}-{i}-{os.getpid()}" for i in range(len(EVASIONS))]
    for tag, trick in zip(tags, EVASIONS):
        cmd = trick.format(tag=tag)
        if via == "exec":
            await sb.exec(cmd)
        elif via == "shell":
            await sb.shell(cmd)
        else:
            p = await sb.spawn(cmd)
            await p.wait(10)
    for _ in range(300):
        if all(procs_named(t) for t in tags):
            break
        await asyncio.sleep(0.01)
    assert all(procs_named(t) for t in tags), "the evasions did not start"
    await sb.close()
    survivors = {t: procs_named(t) for t in tags if procs_named(t)}
    for pids in survivors.values():  # clean up before failing
        for p in pids:
            os.kill(p, signal.SIGKILL)
    assert survivors == {}
    assert not Path(sb._cgroup.path).exists()
    await rt.aclose()


@needs_cgroup
async def test_a_sandbox_lists_exactly_its_host_processes(tmp_path):
    """``host_pids()`` (what the process registry looks among instead of scanning ``/proc``)
    holds a process that dropped the marker and left its group, and nothing of the host's."""
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "cgroup"}).start()
    other = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "cgroup"}).start()
    tag = f"hermes-listed-{os.getpid()}"
    await sb.shell(f"env -i setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &")
    neighbour = await other.spawn("sleep 300")
    for _ in range(300):  # the neighbour joins its cgroup a moment after it starts
        if procs_named(tag) and neighbour.pid in other.host_pids():
            break
        await asyncio.sleep(0.01)
    (escaped,) = procs_named(tag)
    listed = sb.host_pids()
    assert escaped in listed and sb._shell.pid in listed
    assert os.getpid() not in listed and neighbour.pid not in listed
    assert neighbour.pid in other.host_pids()
    await sb.close()
    assert sb.host_pids() == [] and not procs_named(tag)
    await other.close()
    await rt.aclose()


@needs_cgroup
async def test_bash_c_with_arguments_joins_the_cgroup_in_the_same_bash(tmp_path):
    """``bash -c SCRIPT NAME ARGS...`` (the background-job wrapper's shape) keeps its $0 and
    arguments, runs inside the sandbox's cgroup, and costs no launcher exec."""
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "cgroup"}).start()
    assert sb._launch(["bash", "-c", "x", "n", "a"])[0][0] == "bash"
    res = await sb.exec(["bash", "-c", 'printf "%s|" "$0" "$#" "$@"; cat /proc/self/cgroup', "the-name", "a b", "$c", ""])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("the-name|3|a b|$c||"), res.output
    assert f"/{sb.sandbox_id}" in res.output.split("|")[-1]
    other = await sb.exec(["bash", "-c", "exit 7", "name"])
    assert other.exit_code == 7
    await sb.close()
    await rt.aclose()


async def test_marker_only_tracking_is_what_the_option_says(tmp_path):
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "marker"}).start()
    assert sb.tracking == "marker"
    await sb.close()
    await rt.aclose()


DRIVER = """
import asyncio, os, sys
from hermes_core import Runtime

async def main():
    rt = Runtime()
    sb = await rt.create_sandbox("local", {{"root": {root!r}}}).start()
    await sb.shell("env -i setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &")
    await sb.spawn("exec -a {tag}-plain sleep 300")
    print(sb.root, flush=True)
    {ending}

asyncio.run(main())
"""


def _driver(tmp_path, tag, ending):
    code = textwrap.dedent(DRIVER).format(root=str(tmp_path), tag=tag, ending=ending)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@needs_cgroup
async def test_sweep_removes_what_a_sigkilled_driver_left_and_nothing_live(tmp_path):
    from hermes_plugins._local_backend import sweep

    tag = f"hermes-orphan-{os.getpid()}"
    drv = _driver(tmp_path, tag, "await asyncio.sleep(600)")
    root = Path(drv.stdout.readline().strip())
    for _ in range(300):
        if procs_named(tag) and procs_named(f"{tag}-plain"):
            break
        await asyncio.sleep(0.01)
    # A live run's sandbox next to it, in this process.
    rt = Runtime()
    live = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert await sweep(None, root=str(tmp_path)) == []  # the driver lives: nothing is removed
    drv.send_signal(signal.SIGKILL)
    drv.wait(10)
    assert procs_named(tag), "the sandbox's processes outlive their killed driver"
    removed = await sweep(None, root=str(tmp_path))
    assert removed == [str(root)]
    assert not root.exists() and procs_named(tag) == [] and procs_named(f"{tag}-plain") == []
    assert live.root.exists()
    await rt.aclose()


@pytest.mark.parametrize("ending", ["sys.exit(3)", "raise RuntimeError('driver bug')"])
async def test_atexit_backstop_closes_what_a_dying_driver_holds(tmp_path, ending):
    tag = f"hermes-atexit-{os.getpid()}-{abs(hash(ending)) % 1000}"
    drv = _driver(tmp_path, tag, ending)
    root = Path(drv.stdout.readline().strip())
    drv.wait(60)
    assert drv.returncode != 0
    assert not root.exists(), "the sandbox directory outlived its driver"
    time.sleep(0.1)
    left = procs_named(tag) + procs_named(f"{tag}-plain")
    for p in left:
        os.kill(p, signal.SIGKILL)
    if cgroups.find_root() is not None:
        assert left == []
    else:  # marker tracking cannot see the env -i escape; the plain one must be gone
        assert procs_named(f"{tag}-plain") == []


@pytest.mark.parametrize("record", ["xattr", "file"])
async def test_owner_record_as_xattr_or_file_and_sweep_reads_either(tmp_path, monkeypatch, record):
    """The owner record is an xattr of the sandbox directory (no inode to make and delete), or
    ``owner.json`` where the filesystem has no xattrs; sweep judges by either, and removes only
    the sandbox whose driver is gone."""
    from hermes_plugins import _local_backend as local

    if record == "file":
        def no_xattrs(*a, **k):
            raise OSError(95, "Operation not supported")

        monkeypatch.setattr(os, "setxattr", no_xattrs)
    rt = Runtime()
    live = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    dead = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    for sb in (live, dead):
        has_file = (sb.root / local.OWNER_FILE).exists()
        assert has_file == (record == "file")
        if record == "xattr":
            assert json.loads(os.getxattr(sb.root, local.OWNER_XATTR))["sandbox_id"] == sb.sandbox_id
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner = local._read_owner(dead.root)
    assert owner["pid"] == os.getpid()
    owner["pid"] = gone.pid
    if record == "xattr":
        os.setxattr(dead.root, local.OWNER_XATTR, json.dumps(owner).encode())
    else:
        (dead.root / local.OWNER_FILE).write_text(json.dumps(owner))
    assert await local.sweep(None, root=str(tmp_path)) == [str(dead.root)]
    assert live.root.exists() and not dead.root.exists()
    await live.close()
    await dead.close()
    # the live one's emptied directory is kept for the next sandbox, the swept one's is not
    assert [d.name.startswith("hermes-spare-") for d in tmp_path.iterdir()] == ([True] if record == "xattr" else [])
    await rt.aclose()
    assert list(tmp_path.iterdir()) == []


def test_plain_sweep_reports_an_unreachable_backend_and_sweeps_the_rest(monkeypatch, capsys, tmp_path):
    import argparse

    from hermes_core import hookimpl
    from hermes_core.cli import sandbox as cli_sandbox

    swept: list[tuple] = []

    async def broken(older_than, **kw):
        raise ConnectionError("engine at unix:///nowhere is not answering")

    async def fine(older_than, *, force=False):
        swept.append((older_than, force))
        return ["box-1"]

    class Plugin:
        @hookimpl
        def hermes_register_backends(self, registry):
            registry.register("broken", lambda *a, **k: None, sweep=broken)
            registry.register("fine", lambda *a, **k: None, sweep=fine)

    monkeypatch.setattr(cli_sandbox, "runtime_from_args",
                        lambda args: Runtime(plugins=[Plugin()], load_installed=False))
    args = argparse.Namespace(backend=None, older_than=None, force=False, config=None)
    assert cli_sandbox.cmd_sweep(args) == 0
    out = capsys.readouterr()
    assert "broken: not swept: ConnectionError: engine at unix:///nowhere" in out.err
    assert "fine: removed box-1" in out.out and "unreachable: broken" in out.out
    assert swept == [(None, False)]
    args = argparse.Namespace(backend=["broken"], older_than=None, force=False, config=None)
    assert cli_sandbox.cmd_sweep(args) == 1  # the one backend asked for could not be swept


async def test_run_as_user_hides_host_secrets_and_neighbours(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("running sandboxes as another uid needs root")
    monkeypatch.setenv("HERMES_TEST_DRIVER_SECRET", "s3cret-of-the-driver")
    rt = Runtime()
    with pytest.raises(Exception, match="cannot reach the sandbox through"):  # pytest's tmp is 0700
        await rt.create_sandbox("local", {"root": str(tmp_path), "user": 23999}).start()
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="hermes-uid-test-", dir="/tmp")
    os.chmod(base, 0o755)
    request_cleanup = lambda: shutil.rmtree(base, ignore_errors=True)  # noqa: E731
    opts = {"root": base, "uid_range": "23000-23999"}
    async with rt.rollout(options=opts) as a, rt.rollout(options=opts) as b:
        assert a.sandbox._uid != b.sandbox._uid
        await b.write_file("private.txt", "b's data")
        me = await a.terminal("id -u; cat /proc/$PPID/environ 2>&1 | head -c 300; echo; "
                              f"cat {b.sandbox.path('private.txt')} 2>&1")
        lines = me["output"].splitlines()
        assert lines[0] == str(a.sandbox._uid)
        assert "s3cret-of-the-driver" not in me["output"] and "Permission denied" in me["output"]
        assert "b's data" not in me["output"]
        # its own files, including what the verifier uploaded, are its own to change
        await a.write_file("mine.txt", "x")
        ok = await a.terminal("echo more >> mine.txt && cat mine.txt && touch new && ls -n new | awk '{print $3}'")
        assert ok["exit_code"] == 0 and ok["output"].splitlines()[-1] == str(a.sandbox._uid)
        shell = json.loads(await a.call_tool("terminal", {"command": "id -u"}))
        assert shell["output"].strip() == str(a.sandbox._uid)
    # without the option, a sandbox command can read the driver's environment (why it exists)
    async with rt.rollout(options={"root": str(tmp_path)}) as c:
        plain = await c.terminal("cat /proc/$PPID/environ | tr '\\0' '\\n' | grep -c '^PATH='")
        assert plain["output"].strip() == "1"  # the driver's environment is readable
    await rt.aclose()
    assert os.listdir(base) == []
    request_cleanup()
