"""The contract tests every sandbox backend must pass."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from typing import Any

import pytest
import pytest_asyncio

from .. import Runtime
from ..errors import SandboxClosedError
from ..sandbox import TIMEOUT_EXIT_CODE, Sandbox
from ._process_contract import ProcessContract, count_processes_script

#: File names that broke earlier tools: spaces, quotes, ``$``, newline, unicode, a leading ``-``.
HOSTILE_NAMES = [
    "plain.txt",
    "with space.txt",
    "it's \"quoted\".txt",
    "$HOME and $(rm -rf x) `x`.txt",
    "new\nline.txt",
    "ünïcødé-文件-🙂.txt",
    "-leading-dash.txt",
    "back\\slash *?[glob].txt",
    "semi;colon|pipe&amp.txt",
]

_MARK = "hermes-contract-sleeper"


def mark_async_tests(cls: type) -> type:
    """Mark the async tests defined on ``cls`` with ``pytest.mark.asyncio``, so the suite runs
    under pytest-asyncio's default (strict) mode without the author configuring it."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("test_") and asyncio.iscoroutinefunction(fn):
            marks = getattr(fn, "pytestmark", [])
            if not any(m.name == "asyncio" for m in marks):
                setattr(cls, name, pytest.mark.asyncio(fn))
    return cls


class SandboxContract(ProcessContract):
    """Subclass and set :attr:`backend`; override :meth:`backend_options` and :meth:`leftovers`.

    Includes the process tests of :class:`ProcessContract` (spawn, stdin, PTY, group kill, the
    process registry's task scoping).
    """

    #: The registered backend name under test.
    backend: str = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        mark_async_tests(cls)  # an author's async overrides too

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        return {}

    def make_runtime(self) -> Runtime:
        """The Runtime sandboxes are made with; override to register extra plugins."""
        return Runtime()

    @pytest_asyncio.fixture
    async def runtime(self):
        rt = self.make_runtime()
        yield rt
        await rt.aclose()

    @pytest_asyncio.fixture
    async def make_sandbox(self, runtime, backend_options):
        made: list[Sandbox] = []

        async def make(**overrides: Any) -> Sandbox:
            sb = runtime.create_sandbox(self.backend, {**backend_options, **overrides})
            made.append(sb)
            return await sb.start()

        yield make
        await asyncio.gather(*(s.close() for s in made), return_exceptions=True)

    @pytest_asyncio.fixture
    async def sandbox(self, make_sandbox) -> Sandbox:
        return await make_sandbox()

    def test_no_overrides_DO_NOT_OVERRIDE(self) -> None:
        """A subclass may not replace a contract test with its own version: a known deviation
        is the inherited test re-declared with ``pytest.mark.xfail(reason=...)`` (or a skip
        with a reason), so the suite keeps saying what the backend does not do."""
        bad = []
        for name in dir(SandboxContract):
            if not name.startswith("test_") or name == "test_no_overrides_DO_NOT_OVERRIDE":
                continue
            base, mine = getattr(SandboxContract, name), getattr(type(self), name)
            if mine is base:
                continue
            marks = getattr(mine, "pytestmark", [])
            if not any(m.name in ("xfail", "skip") and m.kwargs.get("reason") for m in marks):
                bad.append(name)
        assert not bad, (
            f"{type(self).__name__} overrides contract tests without xfail(reason=...): {bad}. "
            "Mark a known deviation instead: decorate the override with "
            "@pytest.mark.xfail(reason='why') and call super() in its body."
        )

    async def leftovers(self, sandbox: Sandbox) -> list[str]:
        """Describe what still exists of a *closed* sandbox (containers, dirs, processes)."""
        raise NotImplementedError(f"{type(self).__name__} must implement leftovers(sandbox)")

    def _needs(self, sandbox: Sandbox, flag: str) -> None:
        if not getattr(sandbox.capabilities, flag):
            pytest.skip(f"backend {self.backend!r} does not claim capability {flag!r}")

    # ------------------------------------------------------------------ exec

    async def test_exec_output_and_exit_code(self, sandbox):
        r = await sandbox.exec("echo out; echo err >&2; exit 7")
        assert r.exit_code == 7
        assert "out\n" in r.output and "err\n" in r.output
        assert not r.timed_out

    async def test_exec_argv_is_not_shell_text(self, sandbox):
        hostile = "$HOME; echo pwned `id` $(id) 'q' \"dq\""
        r = await sandbox.exec(["printf", "%s", hostile])
        assert r.exit_code == 0
        assert r.output == hostile

    async def test_exec_cwd_env_stdin(self, sandbox):
        await sandbox.exec("mkdir -p 'sub dir'")
        r = await sandbox.exec("pwd; echo \"$GREETING\"; cat", cwd="sub dir", env={"GREETING": "hi there"}, stdin=b"from stdin")
        lines = r.output.splitlines()
        assert lines[0] == sandbox.path("sub dir")
        assert lines[1] == "hi there"
        assert lines[2] == "from stdin"

    async def test_exec_large_and_unicode_output(self, sandbox):
        r = await sandbox.exec("head -c 3000000 /dev/zero | tr '\\0' 'a'; printf 'ünï🙂'")
        assert r.exit_code == 0
        assert len(r.output) == 3000000 + 4
        assert r.output.endswith("ünï🙂")

    async def test_exec_missing_command(self, sandbox):
        r = await sandbox.exec(["definitely-not-a-command-hermes"])
        assert r.exit_code in (126, 127)

    async def test_exec_timeout_kills_group_and_sandbox_stays_usable(self, sandbox):
        marker = f"{_MARK}-timeout"
        t0 = time.monotonic()
        r = await sandbox.exec(
            f"echo started; (exec -a {marker} sleep 60) & (exec -a {marker} sleep 60); echo never", timeout=1
        )
        assert time.monotonic() - t0 < 10
        assert r.exit_code == TIMEOUT_EXIT_CODE and r.timed_out
        assert "started" in r.output and "never" not in r.output
        assert "timed out" in r.output
        await asyncio.sleep(0.2)
        alive = await sandbox.exec(count_processes_script(marker))
        assert alive.output.strip() == "0", "the timed-out command's process group survived"
        ok = await sandbox.exec("echo still usable")
        assert ok.exit_code == 0 and ok.output == "still usable\n"

    # ------------------------------------------------------------------ stateful shell

    async def test_shell_keeps_cd_and_export(self, sandbox):
        self._needs(sandbox, "persistent_shell")
        await sandbox.exec("mkdir -p 'a b'")
        r = await sandbox.shell("cd 'a b' && export HERMES_X='v 1'")
        assert r.exit_code == 0
        r = await sandbox.shell('pwd; echo "$HERMES_X"')
        assert r.output == f"{sandbox.path('a b')}\nv 1\n"

    async def test_shell_runs_any_text_at_top_level(self, sandbox):
        """Commands reach the shell as a byte count and the bytes: multi-byte text, a here-document,
        lines that look like the session's own protocol and no trailing newline all arrive intact,
        and run at the shell's top level (``declare`` and ``set --`` persist, as typed)."""
        self._needs(sandbox, "persistent_shell")
        text = "héllo wörld ✓ 𝄞"
        r = await sandbox.shell(f"printf '%s|' '{text}'; printf '%s' '{text}' | wc -c")
        assert r.output == f"{text}|{len(text.encode())}\n", r
        r = await sandbox.shell("cat <<'EOF'\n__hermes_pre 3;eval\n__HERMES_0123456789abcdef_EOF\nEOF")
        assert r.output == "__hermes_pre 3;eval\n__HERMES_0123456789abcdef_EOF\n", r
        r = await sandbox.shell("declare HERMES_D=5; set -- a 'b c'")
        assert r.exit_code == 0, r
        r = await sandbox.shell('echo "$HERMES_D $# $2"')
        assert r.output == "5 2 b c\n", r
        r = await sandbox.shell("echo tail\\")
        assert r.output.startswith("tail"), r
        r = await sandbox.shell("echo next")
        assert r.output == "next\n", "the session must survive a command that ends in a backslash"

    async def test_shell_exit_code_and_no_stdin(self, sandbox):
        r = await sandbox.shell("cat; false")
        assert r.exit_code == 1
        r = await sandbox.shell("printf 'no newline'")
        assert r.exit_code == 0 and r.output == "no newline"

    async def test_shell_output_that_looks_like_the_end_marker_does_not_end_the_command(self, sandbox):
        """A command cannot end itself early (or fake its exit code) by printing what the shell
        session prints at a command's end: the marker carries a secret per-session nonce."""
        await sandbox.shell("true")
        fake = "".join(f"\\n__HERMES_{'0123456789abcdef'}_{n}_RC_0__\\n" for n in range(1, 6))
        r = await sandbox.shell(f"printf '{fake}'; printf '__HERMES_fedcba9876543210_PID_1__x\\n'; echo after; (exit 7)")
        assert r.exit_code == 7, r
        assert r.output.rstrip().endswith("after") and r.output.count("_RC_0__") == 5

    async def test_shell_timeout_kills_command_shell_survives(self, sandbox):
        self._needs(sandbox, "persistent_shell")
        await sandbox.shell("export KEEP=kept; cd /")
        r = await sandbox.shell(f"(exec -a {_MARK}-shell sleep 60)", timeout=1)
        assert r.exit_code == TIMEOUT_EXIT_CODE and r.timed_out
        r = await sandbox.shell('echo "$KEEP"; pwd')
        assert r.output == "kept\n/\n", "the shell should survive a command timeout"
        alive = await sandbox.exec(count_processes_script(f"{_MARK}-shell"))
        assert alive.output.strip() == "0"

    async def test_shell_background_job_survives_other_commands_timeout(self, sandbox):
        self._needs(sandbox, "persistent_shell")
        await sandbox.shell(f"(exec -a {_MARK}-bg sleep 60) &")
        r = await sandbox.shell("sleep 30", timeout=1)
        assert r.exit_code == TIMEOUT_EXIT_CODE
        alive = await sandbox.exec(count_processes_script(f"{_MARK}-bg"))
        assert alive.output.strip() == "1", "a timeout must kill only the running command"

    async def test_shell_exit_starts_new_shell_and_says_so(self, sandbox):
        await sandbox.shell("export GONE=1")
        r = await sandbox.shell("exit 5")
        assert r.exit_code == 5
        r = await sandbox.shell('echo "[$GONE]"')
        assert r.exit_code == 0
        assert "new shell" in r.output and r.output.endswith("[]\n")

    # ------------------------------------------------------------------ files

    async def test_bytes_round_trip_all_byte_values(self, sandbox):
        data = bytes(range(256)) * 1000
        await sandbox.write_bytes("deep/er/all.bin", data)
        assert await sandbox.read_bytes("deep/er/all.bin") == data
        r = await sandbox.exec(["sha256sum", sandbox.path("deep/er/all.bin")])
        assert r.output.split()[0] == hashlib.sha256(data).hexdigest()

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    async def test_hostile_file_names(self, sandbox, tmp_path, name):
        payload = f"payload for {name!r}\n".encode() + os.urandom(100)
        src = tmp_path / "src.bin"
        src.write_bytes(payload)
        up = await sandbox.put_file(src, f"dir with space/{name}")
        assert up == len(payload)
        r = await sandbox.exec(["cat", "--", sandbox.path(f"dir with space/{name}")])
        assert r.exit_code == 0
        dest = tmp_path / "out" / name
        assert await sandbox.get_file(f"dir with space/{name}", dest) == len(payload)
        assert dest.read_bytes() == payload
        assert await sandbox.read_bytes(f"dir with space/{name}") == payload

    async def test_empty_file(self, sandbox, tmp_path):
        await sandbox.write_bytes("empty", b"")
        assert await sandbox.read_bytes("empty") == b""
        assert await sandbox.get_file("empty", tmp_path / "e") == 0
        assert (tmp_path / "e").read_bytes() == b""

    async def test_large_file_round_trip(self, sandbox, tmp_path):
        src = tmp_path / "big.bin"
        chunk = os.urandom(1 << 20)
        with open(src, "wb") as f:
            for i in range(24):
                f.write(chunk[i:] + chunk[:i])
        assert await sandbox.put_file(src, "big.bin") == src.stat().st_size
        r = await sandbox.exec(["sha256sum", "big.bin"])
        want = hashlib.sha256(src.read_bytes()).hexdigest()
        assert r.output.split()[0] == want
        out = tmp_path / "big.out"
        await sandbox.get_file("big.bin", out)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want

    async def test_missing_files_raise(self, sandbox, tmp_path):
        with pytest.raises(FileNotFoundError):
            await sandbox.read_bytes("no/such/file")
        with pytest.raises(FileNotFoundError):
            await sandbox.get_file("no/such/file", tmp_path / "x")
        assert not (tmp_path / "x").exists()
        with pytest.raises(FileNotFoundError):
            await sandbox.put_file(tmp_path / "not-on-host", "x")
        with pytest.raises((FileNotFoundError, NotADirectoryError)):
            await sandbox.get_dir("no/such/dir", tmp_path / "d")

    async def test_dir_round_trip_modes_and_symlinks(self, sandbox, tmp_path):
        src = tmp_path / "tree"
        (src / "sub" / "deeper").mkdir(parents=True)
        (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
        (src / "run.sh").chmod(0o755)
        (src / "secret").write_bytes(b"\x00\x01 secret")
        (src / "secret").chmod(0o600)
        (src / "sub" / "deeper" / "it's here.txt").write_text("deep")
        links = sandbox.capabilities.symlinks
        if links:
            (src / "link").symlink_to("sub/deeper/it's here.txt")
        names = await sandbox.put_dir(src, "up/tree")
        assert "run.sh" in names and "sub/deeper/it's here.txt" in names
        r = await sandbox.exec("./run.sh", cwd="up/tree")
        assert r.output == "ran\n"
        back = tmp_path / "back"
        got = await sandbox.get_dir("up/tree", back)
        assert set(got) >= {"run.sh", "secret", "sub/deeper/it's here.txt"}
        assert (back / "sub" / "deeper" / "it's here.txt").read_text() == "deep"
        assert (back / "secret").read_bytes() == b"\x00\x01 secret"
        if sandbox.capabilities.permissions:
            assert stat.S_IMODE((back / "run.sh").stat().st_mode) & 0o111
            assert stat.S_IMODE((back / "secret").stat().st_mode) == 0o600
        if links:
            assert os.readlink(back / "link") == "sub/deeper/it's here.txt"

    def test_random_bytes_and_names_round_trip(self, backend_options, tmp_path):
        """Hypothesis: arbitrary bytes (0 B to several MiB) under arbitrary names, byte-exact."""
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        loop = asyncio.new_event_loop()
        rt = self.make_runtime()
        sb = loop.run_until_complete(rt.create_sandbox(self.backend, backend_options).start())
        names = st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=40
        ).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
        sizes = st.one_of(st.integers(0, 4096), st.integers(0, 4 << 20))

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(name=names, size=sizes, seed=st.binary(min_size=1, max_size=64))
        def check(name: str, size: int, seed: bytes) -> None:
            data = (hashlib.sha512(seed).digest() * (size // 64 + 1))[:size]
            if size > 64:
                data = data[:-64] + os.urandom(64)
            src = tmp_path / "src"
            src.write_bytes(data)
            out = tmp_path / "out"

            async def go() -> None:
                await sb.put_file(src, f"h/{name}")
                assert await sb.get_file(f"h/{name}", out) == size
                await sb.write_bytes(f"w/{name}", data)
                assert await sb.read_bytes(f"w/{name}") == data

            loop.run_until_complete(go())
            assert out.read_bytes() == data

        try:
            check()
        finally:
            loop.run_until_complete(sb.close())
            loop.run_until_complete(rt.aclose())
            loop.close()

    # ------------------------------------------------------------------ isolation

    async def test_two_sandboxes_are_isolated(self, make_sandbox):
        a, b = await asyncio.gather(make_sandbox(), make_sandbox())
        await a.write_bytes("mine.txt", b"a's")
        await a.shell("export ONLY_A=1")
        assert (await b.exec("test -e mine.txt")).exit_code != 0
        assert (await b.shell('echo "[$ONLY_A]"')).output == "[]\n"
        if a.capabilities.isolated_filesystem:
            assert (await b.exec(["test", "-e", a.path("mine.txt")])).exit_code != 0
        marker = f"{_MARK}-iso-{a.sandbox_id}"
        proc = await a.spawn(f"exec -a {marker} sleep 60")
        try:
            if a.capabilities.isolated_processes:
                assert (await b.exec(count_processes_script(marker))).output.strip() == "0"
            await b.close()
            assert (await a.exec(count_processes_script(marker))).output.strip() == "1", "closing b touched a's process"
        finally:
            await proc.kill()

    async def test_rollouts_overlap(self, make_sandbox):
        boxes = await asyncio.gather(*(make_sandbox() for _ in range(6)))
        t0 = time.monotonic()
        results = await asyncio.gather(*(b.exec("sleep 1; echo done") for b in boxes))
        elapsed = time.monotonic() - t0
        assert all(r.output == "done\n" for r in results)
        assert elapsed < 4, f"6 concurrent 1 s commands took {elapsed:.1f}s: they did not overlap"

    # ------------------------------------------------------------------ cleanup

    async def test_close_leaves_nothing_behind(self, runtime, backend_options):
        sb = await runtime.create_sandbox(self.backend, backend_options).start()
        await sb.write_bytes("f", b"x")
        await sb.spawn(f"exec -a {_MARK}-spawned sleep 300")
        await sb.shell(f"(exec -a {_MARK}-job sleep 300) &")
        await sb.exec(f"setsid bash -c 'exec -a {_MARK}-daemon sleep 300' >/dev/null 2>&1 < /dev/null &")
        await sb.close()
        await sb.close()  # idempotent
        assert await self.leftovers(sb) == []
        with pytest.raises(SandboxClosedError):
            await sb.exec("true")

    async def test_close_survives_cancellation(self, runtime, backend_options):
        sb = await runtime.create_sandbox(self.backend, backend_options).start()
        await sb.spawn(f"exec -a {_MARK}-cancel sleep 300")
        await sb.shell("true")  # a live shell: the close has something to wait for
        task = asyncio.ensure_future(sb.close())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await sb.close()  # waits for the shielded close to finish
        assert await self.leftovers(sb) == []

    async def test_rollout_cleans_up_on_exception(self, runtime, backend_options):
        holder: dict[str, Any] = {}
        with pytest.raises(RuntimeError, match="verifier blew up"):
            async with runtime.rollout(backend=self.backend, options=backend_options) as ctx:
                holder["sb"] = ctx.sandbox
                await ctx.sandbox.spawn(f"exec -a {_MARK}-raise sleep 300")
                raise RuntimeError("verifier blew up")
        assert holder["sb"].closed
        assert await self.leftovers(holder["sb"]) == []

    async def test_toolcontext_transfers_report_truthfully(self, runtime, backend_options, tmp_path):
        async with runtime.rollout(backend=self.backend, options=backend_options) as ctx:
            big = os.urandom(300_000)  # well past the ~37 KB where the predecessor corrupted files
            (tmp_path / "in.bin").write_bytes(big)
            up = await ctx.upload_file(tmp_path / "in.bin", "it's in.bin")
            assert up["exit_code"] == 0, up
            down = await ctx.download_file("it's in.bin", tmp_path / "out.bin")
            assert down == {"success": True, "bytes": len(big)}
            assert (tmp_path / "out.bin").read_bytes() == big
            bad = await ctx.upload_file(tmp_path / "missing.bin", "x")
            assert bad["exit_code"] != 0 and "missing.bin" in bad["output"]
            bad = await ctx.download_file("nope.bin", tmp_path / "nope.bin")
            assert bad["success"] is False and "nope.bin" in bad["error"]
            assert not (tmp_path / "nope.bin").exists()
            r = await ctx.terminal("sha256sum \"it's in.bin\"")
            assert r["exit_code"] == 0 and r["output"].split()[0] == hashlib.sha256(big).hexdigest()


mark_async_tests(ProcessContract)
mark_async_tests(SandboxContract)
