"""Rollouts: isolation, secrets, the sync facade, and no leaks across hundreds of rollouts."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from hermes_core import Runtime

from .test_local_contract import marked_pids


async def test_host_secrets_stay_out_unless_passed(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-host-secret")
    monkeypatch.setenv("HARMLESS_SETTING", "x")
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as ctx:
        env = (await ctx.terminal("env"))["output"]
        assert "host-secret" not in env and "HARMLESS_SETTING" not in env
        shell_env = await ctx.sandbox.shell("env")
        assert "host-secret" not in shell_env.output
    async with rt.rollout(options={"root": str(tmp_path), "pass_env": ["OPENAI_API_KEY"], "env": {"MINE": "1"}}) as ctx:
        env = (await ctx.terminal("env"))["output"]
        assert "OPENAI_API_KEY=sk-host-secret" in env and "MINE=1" in env and "ghp-host-secret" not in env


async def test_concurrent_rollouts_cannot_see_each_other(tmp_path):
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as a, rt.rollout(options={"root": str(tmp_path)}) as b:
        assert a.task_id != b.task_id and a.sandbox.workdir != b.sandbox.workdir
        await a.write_file("secret.txt", "a only")
        await a.call_tool("terminal", {"command": "export A_VAR=1"})
        assert (await b.read_file("secret.txt"))["error"]
        assert (await b.sandbox.shell('echo "[$A_VAR]"')).output == "[]\n"
        assert "secret.txt" not in (await b.terminal("ls -a"))["output"]
        await a.sandbox.spawn("exec -a hermes-a-proc sleep 60")
    # leaving the block cleaned both up
    assert marked_pids(a.task_id) == [] and marked_pids(b.task_id) == []


async def test_sync_facade_from_a_worker_thread(tmp_path):
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as ctx:
        sync = ctx.sync()

        def sync_verifier() -> float:
            sync.write_file("answer.txt", "42\n")
            r = sync.terminal("cat answer.txt")
            return 1.0 if r["output"].strip() == "42" else 0.0

        assert await asyncio.to_thread(sync_verifier) == 1.0
        with pytest.raises(RuntimeError, match="deadlock"):
            sync.terminal("true")


async def test_two_hundred_rollouts_leave_nothing_behind(tmp_path):
    """Some raise, some are cancelled, some time out, some leave daemons: nothing survives."""
    root = tmp_path / "sb"
    rt = Runtime()
    rng = random.Random(7)

    async def one(i: int, kind: str) -> str:
        async with rt.rollout(options={"root": str(root)}) as ctx:
            await ctx.sandbox.spawn("sleep 300")
            if kind == "daemon":
                await ctx.terminal("setsid sh -c 'sleep 300' >/dev/null 2>&1 < /dev/null & nohup sleep 300 >/dev/null 2>&1 &")
            elif kind == "timeout":
                r = await ctx.terminal("sleep 300", timeout=0.2)
                assert r["exit_code"] == 124
            elif kind == "raise":
                raise ValueError(f"verifier {i} failed")
            elif kind == "cancel":
                await ctx.call_tool("terminal", {"command": "sleep 300 & sleep 300"})
            return kind

    sem = asyncio.Semaphore(25)

    async def guarded(i: int, kind: str):
        async with sem:
            task = asyncio.ensure_future(one(i, kind))
            if kind == "cancel":
                await asyncio.sleep(rng.choice([0.0, 0.01, 0.05, 0.1]))  # at varying stages
                task.cancel()
            try:
                return await task
            except (ValueError, asyncio.CancelledError) as e:
                return type(e).__name__

    kinds = [rng.choice(["ok", "raise", "cancel", "timeout", "daemon"]) for _ in range(200)]
    results = await asyncio.gather(*(guarded(i, k) for i, k in enumerate(kinds)))
    assert len(results) == 200
    assert set(results) == {"ok", "timeout", "daemon", "ValueError", "CancelledError"}
    await asyncio.sleep(0.1)
    assert marked_pids(f"{rt.id}-", prefix=True) == [], "processes survived their rollouts"
    left = [d for d in root.iterdir()] if root.exists() else []
    # what may wait for the next sandbox: emptied skeletons (spares), nothing of a sandbox in them
    assert all(d.name.startswith("hermes-spare-") for d in left), "sandbox directories survived"
    assert all(sorted(os.listdir(d)) == ["home", "tmp", "work"] and not any(os.listdir(d / s) for s in ("home", "tmp", "work"))
               for d in left)
    assert rt._sandboxes == set()
    await rt.aclose()
    assert not root.exists() or list(root.iterdir()) == [], "spares survived the runtime"


async def test_cancelled_shell_command_does_not_leak_into_the_next(tmp_path):
    """An agent cut off by its deadline: its command dies, and its late output never shows up in
    the next command's output (often the verifier's)."""
    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as ctx:
        task = asyncio.ensure_future(ctx.sandbox.shell("echo agent-start; sleep 1; echo agent-late"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await ctx.sandbox.shell("echo verifier")
        assert r.exit_code == 0
        assert r.output.endswith("verifier\n")
        assert "agent-late" not in r.output and "__HERMES" not in r.output
        assert "interrupted" in r.output
        await asyncio.sleep(1.2)
        assert "agent-late" not in (await ctx.sandbox.shell("true")).output


async def test_many_sync_verifiers_at_once_do_not_deadlock(tmp_path):
    """Sync verifiers block on ToolContext calls that need worker threads themselves; a dozen
    at once must not starve asyncio's small default pool."""
    from hermes_core.rollout._environment import TaskItem, run_verifier

    rt = Runtime()

    def verifier(item, result, sync_ctx) -> float:
        sync_ctx.write_file("v.txt", item.id)
        return 1.0 if sync_ctx.read_file("v.txt")["content"] == item.id else 0.0

    async def one(i: int):
        async with rt.rollout(options={"root": str(tmp_path)}) as ctx:
            return await run_verifier(verifier, TaskItem(id=f"t{i}", prompt="p"), None, ctx, timeout=60)

    async with asyncio.timeout(60):
        outcomes = await asyncio.gather(*(one(i) for i in range(12)))
    assert [o.reward for o in outcomes] == [1.0] * 12, [o.error for o in outcomes]


async def test_a_verifiers_own_timeout_error_is_not_called_a_deadline(tmp_path):
    from hermes_core.rollout._environment import TaskItem, run_verifier

    async def verifier(item, result, ctx):
        raise TimeoutError("socket read timed out")

    rt = Runtime()
    async with rt.rollout(options={"root": str(tmp_path)}) as ctx:
        out = await run_verifier(verifier, TaskItem(id="t", prompt="p"), None, ctx, timeout=None)
        assert out.reward == 0.0 and out.error == "verifier raised TimeoutError: socket read timed out"
        out = await run_verifier(verifier, TaskItem(id="t", prompt="p"), None, ctx, timeout=30)
        assert "timed out after" not in out.error
