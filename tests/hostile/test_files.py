"""Issue: hostile files. A FIFO cannot hang the driver; a sparse terabyte cannot fill the host
disk; nothing a sandbox holds makes a download write, link or chmod outside its destination; a
symlink the model planted does not leak a host file out, nor let an upload write into the host."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from hermes_core import Runtime


@pytest.fixture
async def rt():
    r = Runtime()
    yield r
    await r.aclose()


@pytest.fixture
async def ctx(rt, tmp_path):
    async with rt.rollout(options={"root": str(tmp_path / "sandboxes")}) as c:
        yield c


async def test_fifo_never_blocks_tools_or_verifier(ctx, tmp_path):
    await ctx.terminal("mkfifo p")
    async with asyncio.timeout(30):
        # 12 at once: more than the default executor ever had free, so a blocking open would starve it.
        results = await asyncio.gather(*(ctx.call_tool("read_file", {"path": "p"}) for _ in range(12)))
        for text in results:
            assert json.loads(text)["error"]["type"] == "not_regular"
        r = await ctx.read_file("p")
        assert "not a regular file" in r["error"]
        d = await ctx.download_file("p", tmp_path / "out")
        assert d["success"] is False and "not a regular file" in d["error"]
        assert not (tmp_path / "out").exists()
        with pytest.raises(Exception, match="not a regular file"):
            await ctx.sandbox.read_bytes("p")
        listed = await ctx.download_dir(".", tmp_path / "tree")
        assert {"skipped": "FIFO, socket or device node"}.items() <= next(e for e in listed if e["path"].endswith("/p")).items()
        assert not (tmp_path / "tree" / "p").exists()
        # ordinary tools still work
        out = json.loads(await ctx.call_tool("terminal", {"command": "echo alive"}))
        assert out["output"] == "alive\n"


async def test_generic_channel_refuses_fifos_too(rt, tmp_path):
    from hermes_core.sandbox import Sandbox

    sb = rt.create_sandbox("local", {"root": str(tmp_path)})
    await sb.start()
    await sb.exec("mkfifo q")
    async with asyncio.timeout(30):
        with pytest.raises(Exception, match="not a regular file"):
            await Sandbox.read_bytes(sb, "q")  # the exec-only channel, as a third-party backend gets it
        with pytest.raises(Exception, match="not a regular file"):
            await Sandbox.get_file(sb, "q", tmp_path / "q.out")
    await sb.close()


async def test_read_file_reads_only_the_lines_it_returns(ctx):
    # A 2 GB sparse file (text first, then a hole): reading it whole cost gigabytes of driver
    # memory (4 GB raised MemoryError); line 1 comes back without that.
    await ctx.terminal("printf 'first line\\n' > big.txt && seq 1 3000 >> big.txt && truncate -s 2G big.txt")
    body = json.loads(await ctx.call_tool("read_file", {"path": "big.txt", "limit": 1}))
    assert body["content"] == "     1|first line"
    assert body["next_offset"] == 2 and body["total_lines"] == 3002
    r = await ctx.read_file("big.txt")
    assert "more than the cap" in r["error"] and "download_file" in r["error"]


async def test_sparse_terabyte_download_keeps_its_holes(ctx, tmp_path):
    await ctx.terminal("printf head > sparse && truncate -s 1T sparse && printf tail >> sparse")
    out = tmp_path / "sparse.out"
    r = await ctx.download_file("sparse", out)
    assert r == {"success": True, "bytes": (1 << 40) + 4}
    st = out.stat()
    assert st.st_size == (1 << 40) + 4
    assert st.st_blocks * 512 < 64 * 1024 * 1024, "the holes were written out as zeros"
    with open(out, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(-4, os.SEEK_END)
        assert f.read() == b"tail"
    out.unlink()


async def test_download_stops_at_the_cap(ctx, tmp_path):
    ctx.sandbox.max_download_bytes = 1 << 20
    await ctx.terminal("head -c 3000000 /dev/urandom > dense && mkdir d && cp dense d/")
    r = await ctx.download_file("dense", tmp_path / "dense")
    assert r["success"] is False and "max_download_bytes" in r["error"]
    assert not (tmp_path / "dense").exists()
    listed = await ctx.download_dir("d", tmp_path / "d")
    assert listed[0]["success"] is False and "max_download_bytes" in listed[0]["error"]
    # the generic channel stops too
    from hermes_core.sandbox import Sandbox

    with pytest.raises(Exception, match="max_download_bytes|more than the cap"):
        await Sandbox.get_file(ctx.sandbox, "dense", tmp_path / "g")
    with pytest.raises(Exception, match="max_download_bytes"):
        await Sandbox.get_dir(ctx.sandbox, "d", tmp_path / "gd")


async def test_download_file_does_not_follow_a_link_out_of_the_sandbox(ctx, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("driver secret")
    await ctx.terminal(f"ln -s {secret} leak && ln -s ../work/real inside && echo ok > real")
    r = await ctx.download_file("leak", tmp_path / "got")
    assert r["success"] is False and "outside the sandbox" in r["error"]
    assert not (tmp_path / "got").exists()
    assert "outside the sandbox" in (await ctx.read_file("leak"))["error"]
    ok = await ctx.download_file("inside", tmp_path / "in")  # a link that stays inside is followed
    assert ok["success"] and (tmp_path / "in").read_text() == "ok\n"


async def test_download_dir_recreates_no_outside_link_fifo_or_device(ctx, tmp_path):
    await ctx.terminal("mkdir t && cd t && echo x > f && ln -s /etc/passwd abs && ln -s ../../.. up "
                       "&& ln -s f rel && mkfifo pipe && mknod null c 1 3 2>/dev/null; ls")
    listed = await ctx.download_dir("t", tmp_path / "t")
    got = {os.path.basename(e["path"]): e for e in listed}
    assert got["f"]["success"] and got["rel"]["success"]
    assert os.readlink(tmp_path / "t" / "rel") == "f"
    for name in ("abs", "up", "pipe"):
        assert got[name]["success"] is False and got[name]["skipped"], name
        assert not os.path.lexists(tmp_path / "t" / name), name
    if "null" in got:
        assert not os.path.lexists(tmp_path / "t" / "null")
    kept = await ctx.download_dir("t", tmp_path / "t2", keep_special=True)
    assert os.path.islink(tmp_path / "t2" / "abs") and stat.S_ISFIFO(os.lstat(tmp_path / "t2" / "pipe").st_mode)
    assert all(e["success"] for e in kept)


async def test_upload_does_not_write_through_a_planted_link(ctx, tmp_path):
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "victim").write_text("host data")
    await ctx.terminal(f"ln -s {host_dir} tests")
    src = tmp_path / "src"
    src.mkdir()
    (src / "victim").write_text("PWNED")
    r = await ctx.upload_file(src / "victim", "tests/victim")
    assert r["exit_code"] != 0 and "outside the sandbox" in r["output"]
    listed = await ctx.upload_dir(src, "tests")
    assert listed[0]["exit_code"] != 0
    w = await ctx.write_file("tests/victim", "PWNED")
    assert w["success"] is False
    assert (host_dir / "victim").read_text() == "host data"
    # a link at the destination itself is replaced, never written through
    await ctx.terminal(f"ln -s {host_dir}/victim direct")
    assert (await ctx.write_file("direct", "mine"))["success"]
    assert (host_dir / "victim").read_text() == "host data"
    assert (await ctx.read_file("direct"))["content"] == "mine"


def test_hard_link_through_a_planted_symlink_is_refused(tmp_path):
    """top/s -> /host/dir, then a hard link top/h -> top/s/victim: the target resolves outside."""
    import io
    import tarfile

    from hermes_core.errors import TransferError
    from hermes_core.sandbox import extract_tar

    host = tmp_path / "host"
    host.mkdir()
    (host / "victim").write_text("host data")
    (host / "victim").chmod(0o600)
    for keep in (False, True):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            d = tarfile.TarInfo("top")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            t.addfile(d)
            s = tarfile.TarInfo("top/s")
            s.type, s.linkname = tarfile.SYMTYPE, str(host)
            t.addfile(s)
            h = tarfile.TarInfo("top/h")
            h.type, h.linkname, h.mode = tarfile.LNKTYPE, "top/s/victim", 0o777
            t.addfile(h)
        buf.seek(0)
        dest = tmp_path / f"dest-{keep}"
        if keep:  # the outside symlink is recreated: the hard link through it is refused
            with pytest.raises((TransferError, tarfile.FilterError)):
                extract_tar(buf, dest, keep_special=keep)
        else:  # the outside symlink is not recreated: the hard link has no target, and is skipped
            skipped: list[str] = []
            assert extract_tar(buf, dest, skipped=skipped) == []
            assert len(skipped) == 2
        assert stat.S_IMODE((host / "victim").stat().st_mode) == 0o600
        assert (host / "victim").read_text() == "host data"
        assert not (dest / "top" / "h").exists()


async def test_verifier_shell_is_fresh_unless_asked(ctx):
    await ctx.call_tool("terminal", {"command": "mkdir -p sub && cd sub && export FOO=bar && "
                                                "pytest() { echo 'all tests passed'; } && alias ls='echo forged'"})
    fresh = await ctx.terminal("echo \"[$FOO]\"; pwd; type pytest 2>&1 | head -1")
    assert fresh["output"].splitlines()[0] == "[]"
    assert fresh["output"].splitlines()[1] == ctx.sandbox.workdir
    assert "all tests passed" not in fresh["output"] and "function" not in fresh["output"]
    model = await ctx.terminal("echo \"[$FOO]\"; pwd; type pytest 2>&1 | head -1", in_model_context=True)
    lines = model["output"].splitlines()
    assert lines[0] == "[bar]" and lines[1] == ctx.sandbox.path("sub")
    assert "function" not in model["output"]  # variables and directory only, never functions


async def test_overwriting_a_file_is_atomic_for_a_reader_in_the_sandbox(rt, tmp_path):
    """A process in the sandbox reading the file while the driver rewrites it again and again sees
    the old content or the new, whole — never no file and never half of one (the rename-exchange
    path, and the plain rename when nothing is there yet)."""
    old, new = b"a" * 300_000, b"b" * 200_000
    async with rt.rollout(options={"root": str(tmp_path / "sandboxes")}) as ctx:
        sb = ctx.sandbox
        await sb.write_bytes("f.bin", old)
        reader = await sb.spawn(
            ["python3", "-c",
             "import os, sys, time\n"
             "seen = set(); end = time.time() + 1.5\n"
             "while time.time() < end:\n"
             "    try:\n"
             "        with open('f.bin', 'rb') as f: b = f.read()\n"
             "    except FileNotFoundError: seen.add('missing'); continue\n"
             "    seen.add('old' if b == b'a' * 300000 else 'new' if b == b'b' * 200000 else 'torn:%d' % len(b))\n"
             "print(sorted(seen), flush=True)\n"])
        i, code = 0, None
        async with asyncio.timeout(60):
            while code is None:  # rewrite for as long as the reader reads
                await sb.write_bytes("f.bin", new if i % 2 == 0 else old)
                i += 1
                code = await reader.wait(timeout=0)
            seen = (await reader.read()).decode()
        assert code == 0 and i > 10, (code, i)
        assert "'old'" in seen and "'new'" in seen, seen  # the reader did watch both versions
        assert "missing" not in seen and "torn" not in seen, seen
        assert await sb.read_bytes("f.bin") in (old, new)
        leftovers = [n for n in os.listdir(sb.workdir) if n != "f.bin"]
        assert leftovers == []


async def test_writing_over_a_directory_or_through_a_link_keeps_both_intact(ctx, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("host")
    await ctx.terminal(f"mkdir d && echo keep > d/x && ln -s {outside} link")
    sb = ctx.sandbox
    with pytest.raises(OSError):
        await sb.write_bytes("d", b"not a dir")
    assert (await ctx.terminal("cat d/x"))["output"].strip() == "keep"
    await sb.write_bytes("link", b"new")  # the link itself is replaced, its target untouched
    assert outside.read_text() == "host"
    assert (await sb.stat("link", follow_symlinks=False)).kind == "file"
    assert await sb.read_bytes("link") == b"new"
