"""Spare cgroups: a sandbox starts in an empty cgroup made while an earlier sandbox's command ran.
A spare is never one a sandbox used, a sandbox's processes are killed in it as in a cgroup made
for it, the spares go when the Runtime closes, and a sweep removes only a dead driver's."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hermes_core import Runtime
from hermes_plugins import _local_backend as local
from hermes_plugins import _local_cgroup as cgroups

pytestmark = pytest.mark.skipif(cgroups.find_root() is None, reason="no writable cgroup hierarchy here")


def spare_cgroups(pid: int | None = None) -> list[Path]:
    root = cgroups.find_root()
    prefix = f"{cgroups.SPARE_PREFIX}{pid}-" if pid is not None else cgroups.SPARE_PREFIX
    return sorted(p for p in root.path.iterdir() if p.name.startswith(prefix))


def members(cg: Path) -> list[int]:
    return [int(x) for x in (cg / "cgroup.procs").read_text().split()]


async def test_a_sandbox_starts_in_a_spare_no_process_ever_entered_and_its_processes_die_with_it(tmp_path):
    rt = Runtime()
    a = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert spare_cgroups(os.getpid()) == []  # none before a command ran
    assert (await a.exec(["true"])).exit_code == 0
    [spare] = spare_cgroups(os.getpid())
    assert members(spare) == [] and [p for p in spare.iterdir() if p.is_dir()] == []
    b = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert b._cgroup.path == spare and a._cgroup.path != spare
    r = await b.exec("cat /proc/self/cgroup")
    assert f"/hermes/{spare.name}" in r.output, r.output
    tag = f"hermes-spare-cg-escape-{os.getpid()}"
    await b.exec(f"(setsid bash -c 'exec -a {tag} sleep 300' &) ; true")
    for _ in range(300):
        if members(spare):
            break
        await asyncio.sleep(0.01)
    [escaped] = members(spare)
    await b.close()
    try:
        os.kill(escaped, 0)
        alive = Path(f"/proc/{escaped}/cmdline").read_bytes().startswith(tag.encode())
    except ProcessLookupError:
        alive = False
    if alive:
        os.kill(escaped, signal.SIGKILL)
    assert not alive and not spare.exists()
    await a.close()
    await rt.aclose()


async def test_a_used_cgroup_is_never_a_spare(tmp_path):
    rt = Runtime()
    used = []
    for _ in range(6):
        sb = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
        await sb.exec(["true"])
        used.append(sb._cgroup.path)
        await sb.close()
    assert len(set(used)) == 6 and not any(p.exists() for p in used)
    pool = spare_cgroups(os.getpid())
    assert len(pool) == 1 and members(pool[0]) == [] and pool[0] not in used
    await rt.aclose()
    assert spare_cgroups(os.getpid()) == []


async def test_every_live_sandbox_has_a_cgroup_of_its_own(tmp_path):
    rt = Runtime()
    first = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    for _ in range(4):
        await first.exec(["true"])
    assert len(spare_cgroups(os.getpid())) == 4
    boxes = await asyncio.gather(*(rt.create_sandbox("local", {"root": str(tmp_path)}).start() for _ in range(6)))
    paths = [sb._cgroup.path for sb in (first, *boxes)]
    assert len(set(paths)) == 7 and sum(p.name.startswith(cgroups.SPARE_PREFIX) for p in paths) == 4
    assert spare_cgroups(os.getpid()) == sorted(p for p in paths if p.name.startswith(cgroups.SPARE_PREFIX))
    await rt.aclose()
    assert not any(p.exists() for p in paths) and spare_cgroups(os.getpid()) == []


async def test_spares_are_bounded_and_removed_with_the_runtime(tmp_path):
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    most = sb._spare_cgroups.most
    for _ in range(most + 8):
        await sb.exec(["true"])
    assert len(spare_cgroups(os.getpid())) == most  # filled to the bound, not past it
    await sb.close()
    await rt.aclose()
    assert spare_cgroups(os.getpid()) == []


def test_a_driver_that_exits_without_closing_leaves_no_spare_cgroup(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio, os
        from hermes_core import Runtime
        async def main():
            rt = Runtime()
            sb = await rt.create_sandbox("local", {{"root": {str(tmp_path)!r}}}).start()
            for _ in range(3):
                await sb.exec(["true"])
            print(os.getpid())
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, timeout=60, capture_output=True, text=True)
    assert spare_cgroups(int(out.stdout)) == []


async def test_a_sweep_removes_a_dead_driver_s_spare_cgroups_and_keeps_a_live_one_s(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio, os
        from hermes_core import Runtime
        async def main():
            rt = Runtime()
            sb = await rt.create_sandbox("local", {{"root": {str(tmp_path)!r}}}).start()
            await sb.exec(["true"])
            print(os.getpid(), flush=True)
            os._exit(0)  # killed: no close, no atexit
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, timeout=60, capture_output=True, text=True)
    dead = spare_cgroups(int(out.stdout))
    assert len(dead) == 1
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path / "live")}).start()
    await sb.exec(["true"])
    live = spare_cgroups(os.getpid())
    assert len(live) == 1
    assert await local.sweep(None, root=str(tmp_path / "live")) == []  # no sandbox there: cgroups are not listed
    assert not dead[0].exists() and live[0].exists()
    await sb.close()
    await rt.aclose()


def test_a_forked_child_never_takes_its_parent_s_spares():
    spares = cgroups.SpareCgroups()
    root = cgroups.find_root()
    spares.make_one()
    [mine] = spare_cgroups(os.getpid())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only syscalls, then _exit
        try:
            taken = spares.take(root)
            spares.make_one()
            own = spare_cgroups(os.getpid())
            ok = taken is None and len(own) == 1 and spares.drain() == 1 and spare_cgroups(os.getpid()) == []
            os.write(w, b"ok" if ok else repr((taken, own)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read()
    os.waitpid(pid, 0)
    assert said == b"ok" and mine.exists()  # the parent's spare is still there, still its own
    assert spares.take(root).path == mine
    os.rmdir(mine)
