"""Spare sandbox directories: a closed sandbox's emptied directory is renamed into place for the
next sandbox only if nothing of the old sandbox is left in it and nothing about it changed; the
spares go when the Runtime closes (or the driver exits), and a sweep removes a dead driver's.

Each tampering below is something a sandbox process can do to its own directories; the next
sandbox must then get a freshly made directory (another inode), never the tampered one."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from hermes_core import Runtime
from hermes_plugins import _local_backend as local


def spares(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.name.startswith("hermes-spare-"))


def assert_as_made(root: Path) -> None:
    """A sandbox directory exactly as a fresh one is made (what the next sandbox must see)."""
    umask = os.umask(0)
    os.umask(umask)
    assert sorted(os.listdir(root)) == ["home", "tmp", "work"]
    assert os.stat(root).st_mode & 0o7777 == 0o700 and os.listxattr(root) == [local.OWNER_XATTR]
    for d in ("work", "home", "tmp"):
        st = os.lstat(root / d)
        assert st.st_mode == 0o40000 | (0o777 & ~umask), (d, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()) and st.st_nlink == 2
        assert os.listdir(root / d) == [] and os.listxattr(root / d) == []
        lsattr = subprocess.run(["lsattr", "-d", str(root / d)], capture_output=True, text=True)
        assert lsattr.returncode or "a" not in lsattr.stdout.split()[0].replace("-", ""), lsattr.stdout


async def test_an_emptied_directory_is_the_next_sandbox_s_fresh_one(tmp_path):
    rt = Runtime()
    a = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    ino = os.stat(a.root).st_ino
    for d in ("work", "home", "tmp"):
        r = await a.exec(f"echo secret > ~/../{d}/left-{d}; ln -s /etc/passwd ~/../{d}/link; mkfifo ~/../{d}/fifo")
        assert r.exit_code == 0, r.output
    await a.shell("cd /; export A=1; sleep 300 &")
    await a.close()
    [spare] = spares(tmp_path)
    assert os.stat(spare).st_ino == ino and sorted(os.listdir(spare)) == ["home", "tmp", "work"]
    assert all(os.listdir(spare / d) == [] for d in ("work", "home", "tmp"))
    kept = json.loads(os.getxattr(spare, local.OWNER_XATTR))  # the last sandbox's: it cannot expire
    assert (kept["pid"], kept["sandbox_id"], kept["max_lifetime"]) == (os.getpid(), a.sandbox_id, None)

    b = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert os.stat(b.root).st_ino == ino, "the spare was not reused"
    assert b.root.name.startswith(f"hermes-{b.sandbox_id}-") and spares(tmp_path) == []
    assert json.loads(os.getxattr(b.root, local.OWNER_XATTR))["sandbox_id"] == b.sandbox_id
    assert_as_made(b.root)
    r = await b.exec("echo ${A:-unset}; pwd; find ~/.. -mindepth 2 | wc -l")
    assert r.output.split() == ["unset", str(b.root / "work"), "0"], r.output
    await b.close()
    await rt.aclose()
    assert list(tmp_path.iterdir()) == [], "the runtime left its spares"


def _chattr(path: Path, flag: str) -> None:
    if shutil.which("chattr") is None or subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode:
        pytest.skip(f"chattr {flag} is not supported here")


TAMPERINGS = {
    "mode": lambda root: os.chmod(root / "work", 0o777),
    "root mode": lambda root: os.chmod(root, 0o755),
    "owner": lambda root: os.chown(root / "home", 12345, 12345),
    "xattr": lambda root: os.setxattr(root / "tmp", "user.planted", b"1"),
    "root xattr": lambda root: os.setxattr(root, "user.planted", b"1"),
    "acl": lambda root: os.setxattr(root / "work", "system.posix_acl_default",
                                    bytes.fromhex("02000000" "01000700ffffffff" "04000500ffffffff" "20000500ffffffff")),
    "subdirectory": lambda root: (root / "work" / "sub").mkdir(),
    "many files": lambda root: [(root / "tmp" / f"f{i}").write_text("x") for i in range(40)],
    "swapped work": lambda root: (os.rename(root / "work", root / "old"), (root / "work").mkdir(), (root / "old").rmdir()),
    "symlinked home": lambda root: (shutil.rmtree(root / "home"), (root / "home").symlink_to("/tmp")),
    "extra entry": lambda root: (root / "planted").write_text("x"),
    "append-only": lambda root: _chattr(root / "work", "+a"),
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
async def test_a_changed_directory_is_never_reused(tmp_path, how):
    rt = Runtime()
    a = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    await a.exec("true")
    try:
        TAMPERINGS[how](a.root)
    except OSError as e:
        pytest.skip(f"{how}: not possible on this filesystem ({e})")
    await a.close()
    assert spares(tmp_path) == [], f"a directory changed by {how} became a spare"
    b = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert_as_made(b.root)
    await b.exec("true")
    await b.close()
    # the control: b's unchanged directory is kept, and reused
    [spare] = spares(tmp_path)
    ino = os.stat(spare).st_ino
    c = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert spares(tmp_path) == [] and os.stat(c.root).st_ino == ino
    assert_as_made(c.root)
    await c.close()
    await rt.aclose()
    left = list(tmp_path.iterdir())
    if how == "append-only":  # nobody can remove what is append-only: close leaves it as it was
        assert left == [a.root]
        subprocess.run(["chattr", "-a", str(a.root / "work")], check=True)
        shutil.rmtree(a.root)
    else:
        assert left == []


async def test_settled_spares_are_checked_by_their_change_time_and_every_change_is_seen(tmp_path, monkeypatch):
    """Once a spare's directories are settled (unchanged for SETTLE_NS), close and reuse check
    them by one stat each (ctime); each tampering still changes the ctime, so a tampered
    directory is checked in full and never reused. The control proves the fast path ran."""
    from hermes_plugins import _local_spares as spares_mod

    monkeypatch.setattr(spares_mod, "SETTLE_NS", 300_000_000)  # 0.3 s instead of 2 s: a faster test
    full_checks: list[str] = []
    real = spares_mod._empty_pristine

    def counting(dir_fd, name, *args):
        full_checks.append(os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name))
        return real(dir_fd, name, *args)

    monkeypatch.setattr(spares_mod, "_empty_pristine", counting)
    rt = Runtime()
    opts = {"root": str(tmp_path)}
    names = ["control", *sorted(TAMPERINGS)]
    # Spares whose directories then sit unchanged until settled, and are checked in full once
    # more (which records their settled ctimes).
    boxes = [await rt.create_sandbox("local", opts).start() for _ in names]
    for sb in boxes:
        await sb.close()
    await asyncio.sleep(0.4)
    boxes = [await rt.create_sandbox("local", opts).start() for _ in names]
    for sb in boxes:
        await sb.close()
    assert len(spares(tmp_path)) == len(names)
    full_checks.clear()
    boxes = dict(zip(names, [await rt.create_sandbox("local", opts).start() for _ in names]))
    assert spares(tmp_path) == []
    inodes = {}
    skipped = set()
    for how, sb in boxes.items():
        await sb.exec("true")
        inodes[how] = {os.stat(sb.root).st_ino, *(os.stat(sb.root / d).st_ino for d in ("work", "home", "tmp"))}
        if how == "control":
            continue
        try:
            TAMPERINGS[how](sb.root)
        except (OSError, pytest.skip.Exception):
            skipped.add(how)
    for how, sb in boxes.items():
        await sb.close()
    assert len(spares(tmp_path)) == 1 + len(skipped), "a tampered directory became a spare"
    # The control's directories were not opened at all (the fast path decided), a tampered one was.
    control = str(boxes["control"].root)
    assert full_checks and not [p for p in full_checks if p.startswith(control + "/")], full_checks
    if "xattr" not in skipped:
        assert os.path.join(str(boxes["xattr"].root), "tmp") in full_checks
    nxt = await rt.create_sandbox("local", opts).start()
    assert {os.stat(nxt.root).st_ino} & inodes["control"], "the control's settled spare was not reused"
    assert_as_made(nxt.root)
    for how in set(TAMPERINGS) - skipped:
        assert not ({os.stat(nxt.root).st_ino} & inodes[how]), how
    await nxt.close()
    await rt.aclose()
    left = list(tmp_path.iterdir())
    if "append-only" not in skipped and boxes["append-only"].root.exists():
        subprocess.run(["chattr", "-a", str(boxes["append-only"].root / "work")], check=True)
        shutil.rmtree(boxes["append-only"].root)
        left.remove(boxes["append-only"].root)
    assert left == []


async def test_the_control_reuses_the_directory_another_sandbox_left(tmp_path):
    rt = Runtime()
    a = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    await a.exec("true")
    ino = os.stat(a.root).st_ino
    await a.close()
    b = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert os.stat(b.root).st_ino == ino
    await rt.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_a_file_planted_in_a_spare_from_outside_is_never_seen(tmp_path):
    rt = Runtime()
    a = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    await a.close()
    [spare] = spares(tmp_path)
    (spare / "work" / "planted").write_text("from a neighbour")
    b = await rt.create_sandbox("local", {"root": str(tmp_path)}).start()
    assert os.listdir(b.workdir) == [] and not spare.exists()
    await rt.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_no_spare_where_a_survivor_could_be_left(tmp_path):
    """Marker tracking cannot prove every process is gone once one ran (a process that dropped the
    marker would find its working directory in the next sandbox): such a directory is removed.
    Sandboxes of another user (``user``) never leave spares either."""
    rt = Runtime()
    m = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "marker"}).start()
    await m.exec("true")
    await m.close()
    assert spares(tmp_path) == []
    idle = await rt.create_sandbox("local", {"root": str(tmp_path), "tracking": "marker"}).start()
    await idle.close()
    assert len(spares(tmp_path)) == 1  # nothing ran in it: nothing can be left
    await rt.aclose()
    assert list(tmp_path.iterdir()) == []
    if os.geteuid() == 0 and shutil.which("setpriv"):
        base = Path(tempfile.mkdtemp(prefix="hermes-spares-test-", dir="/tmp"))  # others may traverse it
        try:
            os.chmod(base, 0o755)
            rt = Runtime()
            u = await rt.create_sandbox("local", {"root": str(base), "user": 65534}).start()
            await u.exec("true")
            await u.close()
            assert list(base.iterdir()) == []
            await rt.aclose()
        finally:
            shutil.rmtree(base, ignore_errors=True)


async def test_spares_are_bounded(tmp_path):
    rt = Runtime()
    boxes = [await rt.create_sandbox("local", {"root": str(tmp_path)}).start() for _ in range(260)]
    for sb in boxes:
        await sb.close()
    assert len(spares(tmp_path)) == 256 and len(list(tmp_path.iterdir())) == 256
    await rt.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_a_sweep_removes_a_dead_driver_s_spares_and_keeps_a_live_one_s(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio, os
        from hermes_core import Runtime
        async def main():
            rt = Runtime()
            sb = await rt.create_sandbox("local", {{"root": {str(tmp_path)!r}}}).start()
            await sb.close()
            os._exit(0)  # killed: no close, no atexit
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    [dead] = spares(tmp_path)
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path / "live")}).start()
    await sb.close()
    [live] = spares(tmp_path / "live")
    assert await local.sweep(None, root=str(tmp_path)) == [str(dead)]
    assert await local.sweep(None, root=str(tmp_path / "live")) == [] and live.exists()
    await rt.aclose()
    assert list((tmp_path / "live").iterdir()) == []


def test_a_driver_that_exits_without_closing_leaves_no_spare(tmp_path):
    script = textwrap.dedent(f"""
        import asyncio
        from hermes_core import Runtime
        async def main():
            rt = Runtime()
            for _ in range(3):
                sb = await rt.create_sandbox("local", {{"root": {str(tmp_path)!r}}}).start()
                await sb.exec("true")
                await sb.close()
            assert len(list(__import__("pathlib").Path({str(tmp_path)!r}).iterdir())) == 1
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []


async def test_a_spare_never_carries_a_lifetime_a_sweep_could_act_on(tmp_path):
    """A sandbox with max_lifetime leaves a spare with a spare record (no lifetime): a sweep
    while its driver lives keeps it, even long past that lifetime."""
    rt = Runtime()
    sb = await rt.create_sandbox("local", {"root": str(tmp_path), "max_lifetime": 1}).start()
    await sb.close()
    [spare] = spares(tmp_path)
    record = json.loads(os.getxattr(spare, local.OWNER_XATTR))
    assert record["spare"] is True and record["max_lifetime"] is None and record["pid"] == os.getpid()
    plain = await rt.create_sandbox("local", {"root": str(tmp_path / "plain")}).start()
    await plain.close()
    [kept] = spares(tmp_path / "plain")
    for root in (tmp_path, tmp_path / "plain"):
        assert await local.sweep(None, root=str(root)) == []
    assert spare.exists() and kept.exists()
    # ... and a forced sweep takes both, named as spares whatever their record says
    assert sorted(await local.sweep(None, root=str(tmp_path / "plain"), force=True)) == [str(kept)]
    await rt.aclose()
