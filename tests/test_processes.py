"""Background processes on the local backend: real processes, no mocks."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from hermes_core import Runtime
from hermes_core.processes._state import MARKER, RingBuffer, stragglers
from hermes_core.config import HermesConfig, ProcessConfig


def make_config(tmp_path: Path, **overrides) -> HermesConfig:
    opts = dict(checkpoint_path=str(tmp_path / "state" / "processes.json"), log_dir=str(tmp_path / "logs"))
    opts.update(overrides)
    return HermesConfig(
        processes=ProcessConfig(**opts),
        backend_options={"root": str(tmp_path / "sandboxes")},
        toolsets=["terminal"],
    )


@pytest.fixture
async def rt(tmp_path):
    runtime = Runtime(make_config(tmp_path))
    yield runtime
    await runtime.aclose()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        return f"{p.cmdline()} status={p.status()} ppid={p.ppid()} pgid={os.getpgid(pid)}"
    except (psutil.NoSuchProcess, ProcessLookupError):
        return "gone"


def tree(pid: int) -> list[int]:
    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


async def call(ctx, tool: str, **args) -> dict:
    return json.loads(await ctx.call_tool(tool, args))


async def bg(ctx, command: str, **kw) -> str:
    out = await call(ctx, "terminal", command=command, background=True, **kw)
    assert "session_id" in out, out
    return out["session_id"]


async def output_contains(ctx, sid: str, text: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (await call(ctx, "process", action="poll", session_id=sid))["output_preview"]:
            return True
        await asyncio.sleep(0.02)
    return False


# ---------------------------------------------------------------------- basics


async def test_background_returns_at_once_and_exit_is_noticed_fast(rt):
    async with rt.rollout() as ctx:
        events = rt.processes.events()
        t0 = time.monotonic()
        sid = await bg(ctx, "python3 -c 'import time; time.sleep(0.3); print(repr(time.time()), flush=True)'; exit 6")
        assert time.monotonic() - t0 < 0.5, "background must not wait for the command"
        ev = await asyncio.wait_for(events.__anext__(), 10)
        assert ev.kind == "exited" and ev.session_id == sid and ev.exit_code == 6
        printed = float(ev.output.strip())
        # The process printed its clock just before exiting; the event is stamped when noticed.
        assert ev.time - printed < 0.1, f"exit noticed {ev.time - printed:.3f}s after it happened"
        poll = await call(ctx, "process", action="poll", session_id=sid)
        assert poll["status"] == "exited" and poll["exit_code"] == 6


async def test_background_starts_in_shell_cwd_and_workdir(rt):
    async with rt.rollout() as ctx:
        await call(ctx, "terminal", command="mkdir -p 'a dir/sub' && cd 'a dir'")
        sid = await bg(ctx, "pwd")
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=10)
        assert out["output"].strip().endswith("/work/a dir")
        sid = await bg(ctx, "pwd", workdir="sub")
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=10)
        assert out["output"].strip().endswith("/work/a dir/sub")


async def test_stdin_pipe_write_submit_close(rt):
    async with rt.rollout() as ctx:
        sid = await bg(ctx, "while read -r l; do echo \"got:$l\"; done; echo eof; exit 2")
        w = await call(ctx, "process", action="write", session_id=sid, data="par")
        assert w["bytes_written"] == 3
        await call(ctx, "process", action="submit", session_id=sid, data="tial")
        await call(ctx, "process", action="submit", session_id=sid, data="ünï 🙂")
        await call(ctx, "process", action="close", session_id=sid)
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=10)
        assert out["output"] == "got:partial\ngot:ünï 🙂\neof\n"
        assert out["exit_code"] == 2


async def test_pty_interactive_python(rt):
    async with rt.rollout() as ctx:
        sid = await bg(ctx, "python3 -q -i", pty=True)
        await call(ctx, "process", action="submit", session_id=sid, data="import sys; print(sys.stdin.isatty(), 6*7)")
        assert await output_contains(ctx, sid, "True 42")
        await call(ctx, "process", action="submit", session_id=sid, data="exit(9)")
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=10)
        assert out["status"] == "exited" and out["exit_code"] == 9


async def test_foreground_pty(rt):
    async with rt.rollout() as ctx:
        out = await call(ctx, "terminal", command="[ -t 1 ] && echo on-a-tty; exit 3", pty=True)
        assert out["exit_code"] == 3 and "on-a-tty" in out["output"]
        out = await call(ctx, "terminal", command="sleep 30", pty=True, timeout=1)
        assert out["exit_code"] == 124 and out["error"] == "timeout"


async def test_log_offsets(rt):
    async with rt.rollout() as ctx:
        sid = await bg(ctx, "seq 1 1000")
        await call(ctx, "process", action="wait", session_id=sid, timeout=10)
        full = "".join(f"{i}\n" for i in range(1, 1001))
        out = await call(ctx, "process", action="log", session_id=sid, offset=0, limit=10)
        assert out["output"] == full[:10] and out["next_offset"] == 10 and out["total_bytes"] == len(full)
        out = await call(ctx, "process", action="log", session_id=sid, offset=-5)
        assert out["output"] == full[-5:]
        out = await call(ctx, "process", action="log", session_id=sid)
        assert out["output"] == full[-10000:]


# ---------------------------------------------------------------------- scoping and cleanup


async def test_twenty_processes_four_rollouts_each_sees_only_its_own(rt):
    gate = asyncio.Event()
    ids: dict[str, list[str]] = {}
    cids: dict[str, str] = {}

    async def rollout(n: int) -> dict:
        async with rt.rollout() as ctx:
            mine = [await bg(ctx, f"echo r{n}-p{i}; exec sleep 120") for i in range(5)]
            ids[ctx.task_id] = mine
            cids[ctx.task_id] = ctx.task_id
            if len(ids) == 4:
                gate.set()
            await asyncio.wait_for(gate.wait(), 30)
            listed = await call(ctx, "process", action="list")
            seen = {s["session_id"] for s in listed["processes"]}
            others = [sid for t, sids in ids.items() if t != ctx.task_id for sid in sids]
            refusals = []
            for sid in others:
                for action in ("poll", "kill", "log", "close"):
                    refusals.append(await call(ctx, "process", action=action, session_id=sid))
                refusals.append(await call(ctx, "process", action="submit", session_id=sid, data="x"))
                refusals.append(await call(ctx, "process", action="wait", session_id=sid, timeout=0))
            for i, sid in enumerate(mine):
                assert await output_contains(ctx, sid, f"r{n}-p{i}\n")
            # Acting on its own: kill two; the others' processes must all still run.
            for sid in mine[:2]:
                assert (await call(ctx, "process", action="kill", session_id=sid))["status"] == "killed"
            return {"seen": seen, "mine": set(mine), "refusals": refusals}

    results = await asyncio.gather(*(rollout(n) for n in range(4)))
    for r in results:
        assert r["seen"] == r["mine"] and len(r["mine"]) == 5
        assert len(r["refusals"]) == 15 * 6
        for ref in r["refusals"]:
            assert ref["error"]["type"] == "forbidden", ref
            assert "another rollout" in ref["error"]["message"]
    assert rt.processes.sessions() == [], "rollout cleanup must forget its sessions"


async def test_cleanup_kills_only_its_rollout_even_when_verifier_raises(rt):
    async with rt.rollout() as keep:
        keep_sid = await bg(keep, "exec sleep 120")
        keep_pid = rt.processes.get(keep_sid).pid
        with pytest.raises(RuntimeError, match="verifier exploded"):
            async with rt.rollout() as doomed:
                sid = await bg(doomed, "sleep 120 & sleep 120 & wait")
                await asyncio.sleep(0.2)
                pids = tree(rt.processes.get(sid).pid)
                assert len(pids) >= 3  # bash, two sleeps (and the log tee)
                raise RuntimeError("verifier exploded")
        await asyncio.sleep(0.05)
        assert not [p for p in pids if alive(p)]
        assert alive(keep_pid)
        assert (await call(keep, "process", action="poll", session_id=keep_sid))["status"] == "running"
    assert not alive(keep_pid)


async def test_sandbox_close_ends_sessions(rt):
    sb = rt.create_sandbox("local")
    await sb.start()
    s = await rt.processes.spawn(sb, "exec sleep 120", task_id="t")
    await sb.close()
    out = await rt.processes.wait(s.id, 5)
    assert out["status"] == "exited" and out["exit_code"] == 128 + signal.SIGKILL


async def test_runtime_shutdown_kills_all(tmp_path):
    runtime = Runtime(make_config(tmp_path))
    sb = runtime.create_sandbox("local")
    await sb.start()
    pids = [(await runtime.processes.spawn(sb, "exec sleep 120", task_id=f"t{i}")).pid for i in range(3)]
    await runtime.aclose()
    assert not [p for p in pids if alive(p)]
    ck = json.loads((tmp_path / "state" / "processes.json").read_text())
    assert ck["owners"] == {}, "a clean shutdown leaves nothing to recover"


# ---------------------------------------------------------------------- kill


@pytest.mark.parametrize("tracking", ["auto", "marker"])
async def test_kill_tree_leaves_no_descendant(tmp_path, tracking):
    """With a cgroup the registry looks only among the sandbox's processes; with the marker it
    scans /proc: either way every descendant goes, the one that left the group included."""
    config = make_config(tmp_path).model_copy(
        update={"backend_options": {"root": str(tmp_path / "sandboxes"), "tracking": tracking}}
    )
    rt = Runtime(config)
    async with rt.rollout() as ctx:
        # the sandbox lists its own processes exactly when a cgroup tracks them
        assert (ctx.sandbox.host_pids() is None) == (ctx.sandbox.tracking == "marker")
        assert tracking != "marker" or ctx.sandbox.tracking == "marker"
        sid = await bg(
            ctx,
            "sleep 120 & (sleep 120 & sleep 120 & wait) & "
            "bash -c 'trap \"\" TERM; while :; do sleep 0.05; done' & "  # ignores SIGTERM
            "setsid sleep 120 & "  # leaves the process group
            "echo ready; wait",
        )
        assert await output_contains(ctx, sid, "ready")
        await asyncio.sleep(0.2)
        s = rt.processes.get(sid)
        before = set(tree(s.pid)) | set(stragglers(s.pid, sid))
        assert len(before) >= 8, before
        await call(ctx, "process", action="kill", session_id=sid)
        survivors = [p for p in before if alive(p)]
        assert survivors == [], f"descendants survived the kill: {[(p, describe(p)) for p in survivors]}"
        assert stragglers(None, sid) == []
    await rt.aclose()


async def test_straggler_lookups_of_many_sessions_share_one_pass(monkeypatch):
    """40 sessions ending together cost one or two scans of /proc, not 40, and each gets its own
    processes: by group, by marker, never a look-alike variable's or a stranger's."""
    from hermes_core.processes import _state

    passes = []
    real = _state.find_stragglers

    def counted(queries, **kw):
        if kw.get("among") is None:  # a pass over all of /proc
            passes.append(len(queries))
        return real(queries, **kw)

    monkeypatch.setattr(_state, "find_stragglers", counted)
    procs = []
    for i in range(40):
        env = {**os.environ, MARKER: f"proc_many{i}"}
        procs.append(subprocess.Popen(["sleep", "60"], env=env, start_new_session=True))
    lookalike = subprocess.Popen(["sleep", "60"], env={**os.environ, "X" + MARKER: "proc_many0"}, start_new_session=True)
    try:
        scanner = _state.StragglerScanner()
        # by marker (no group given) for even sessions, by group for odd ones
        found = await asyncio.gather(*(
            scanner.find(p.pid if i % 2 else None, f"proc_many{i}", strict=False) for i, p in enumerate(procs)
        ))
        assert found == [[p.pid] for p in procs]
        assert 1 <= len(passes) <= 2, passes
        assert sum(passes) == 40
        assert await scanner.find(None, "proc_nobody", strict=False) == []
        # a sandbox that lists its processes answers without any pass
        before = len(passes)
        assert await scanner.find(None, "proc_many3", strict=False, among=lambda: [procs[3].pid, os.getpid()]) == [procs[3].pid]
        assert await scanner.find(None, "proc_many3", strict=False, among=list) == []
        assert len(passes) == before
    finally:
        for p in [*procs, lookalike]:
            p.kill()
            p.wait()


@pytest.mark.parametrize("when", ["right after spawn", "after start-up"])
async def test_kill_returns_within_100ms(rt, when):
    async with rt.rollout() as ctx:
        times = []
        for _ in range(5):
            s = await rt.processes.spawn(ctx.sandbox, "sleep 120 & sleep 120 & wait", task_id=ctx.task_id)
            if when != "right after spawn":
                await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            out = await rt.processes.kill(s.id, ctx.task_id)
            times.append(time.perf_counter() - t0)
            # SIGTERM; or SIGPIPE when the job's shell reports "Terminated" after the log tee died
            assert out["status"] == "killed" and out["exit_code"] in (128 + signal.SIGTERM, 128 + signal.SIGPIPE)
        assert sorted(times)[len(times) // 2] < 0.1, times
        assert max(times) < 0.3, times


async def test_kill_escalates_to_sigkill(rt):
    async with rt.rollout() as ctx:
        sid = await bg(ctx, "trap '' TERM; echo armed; while :; do sleep 0.05; done")
        assert await output_contains(ctx, sid, "armed")
        t0 = time.monotonic()
        out = await call(ctx, "process", action="kill", session_id=sid)
        assert out["exit_code"] == 128 + signal.SIGKILL
        assert time.monotonic() - t0 < 0.5 + 0.4  # kill_grace_seconds + slack
        again = await call(ctx, "process", action="kill", session_id=sid)
        assert again["note"] == "the process had already ended"


# ---------------------------------------------------------------------- memory bounds


def test_ring_buffer_bounds_and_offsets():
    rb = RingBuffer(100)
    data = bytes(range(256)) * 10
    for i in range(0, len(data), 37):
        rb.append(data[i : i + 37])
        assert len(rb) <= 100
    assert rb.total == len(data) and rb.start == len(data) - 100
    assert rb.tail(1000) == data[-100:]
    assert rb.read(0, 10) == (len(data) - 100, data[-100:-90])
    rb.append(b"x" * 500)
    assert rb.tail(100) == b"x" * 100 and len(rb) == 100
    rb.skip_to(10_000)
    assert rb.total == 10_000 and len(rb) == 0


async def test_output_buffer_bounded_whatever_the_volume(tmp_path):
    runtime = Runtime(make_config(tmp_path, buffer_bytes=64 * 1024))
    async with runtime.rollout() as ctx:
        for pty in (False, True):
            s = await runtime.processes.spawn(
                ctx.sandbox, "head -c 30000000 /dev/zero | tr '\\0' x; echo; echo THE-END", task_id=ctx.task_id, pty=pty
            )
            out = await runtime.processes.wait(s.id, 60, ctx.task_id)
            assert out["status"] == "exited" and out["exit_code"] == 0
            assert len(s.buffer) <= 64 * 1024
            assert s.buffer.total >= 30_000_000
            assert "THE-END" in out["output"]
            assert len(out["output"]) <= 2000
            log = await runtime.processes.read_log(s.id, ctx.task_id, offset=0, limit=100)
            if pty:  # no disk log: the head is gone, and the result says so
                assert log["offset"] > 0 and "no longer kept" in log["note"]
            else:  # the full log on disk still has it
                assert log["offset"] == 0 and log["output"] == "x" * 100
    await runtime.aclose()


# ---------------------------------------------------------------------- bad input


async def test_bad_inputs_are_structured_errors(rt):
    async with rt.rollout() as ctx:
        done = await bg(ctx, "true")
        await call(ctx, "process", action="wait", session_id=done, timeout=10)
        running = await bg(ctx, "exec sleep 60")
        cases = [
            ({"action": "poll", "session_id": "proc_nope"}, "not_found"),
            ({"action": "poll"}, "invalid_arguments"),
            ({"action": "explode", "session_id": running}, "invalid_arguments"),
            ({"action": "write", "session_id": done, "data": "x"}, "process_ended"),
            ({"action": "submit", "session_id": done, "data": "x"}, "process_ended"),
            ({"action": "close", "session_id": done}, "process_ended"),
            ({"action": "write", "session_id": running}, "invalid_arguments"),
            ({"action": "write", "session_id": running, "data": 5}, "invalid_arguments"),
            ({"action": "write", "session_id": running, "data": ["a"]}, "invalid_arguments"),
            ({"action": "write", "session_id": running, "data": None}, "invalid_arguments"),
            ({"action": "wait", "session_id": running, "timeout": -1}, "invalid_arguments"),
            ({"action": "wait", "session_id": running, "timeout": math.nan}, "invalid_arguments"),
            ({"action": "wait", "session_id": running, "timeout": math.inf}, "invalid_arguments"),
            ({"action": "wait", "session_id": running, "timeout": 1e300}, "invalid_arguments"),
            ({"action": "wait", "session_id": running, "timeout": "soon"}, "invalid_arguments"),
            ({"action": "poll", "session_id": 12}, "invalid_arguments"),
            ({"action": "log", "session_id": running, "limit": -3}, "invalid_arguments"),
            ({"action": "log", "session_id": running, "limit": 10**9}, "invalid_arguments"),
            ({"action": "poll", "session_id": running, "bogus": 1}, "invalid_arguments"),
        ]
        for args, kind in cases:
            text = await ctx.call_tool("process", args)
            out = json.loads(text)
            assert "error" in out, (args, out)
            assert out["error"]["type"] == kind, (args, out)
            assert out["error"]["message"]
        assert (await ctx.call_tool("process", "not json"))
        out = await call(ctx, "terminal", command="echo", check_interval=5)
        assert out["error"]["type"] == "invalid_arguments"
        out = await call(ctx, "terminal", command="   ", background=True)
        assert out["error"]["type"] == "process_error"
        out = await call(ctx, "terminal", command="true", background=True, workdir="no/such/dir")
        assert out["error"]["type"] == "process_error"
        # after all that, the running process is fine
        assert (await call(ctx, "process", action="poll", session_id=running))["status"] == "running"


async def test_wait_is_clamped_and_says_so(tmp_path):
    runtime = Runtime(make_config(tmp_path, max_wait_seconds=0.3))
    async with runtime.rollout() as ctx:
        sid = await bg(ctx, "exec sleep 60")
        t0 = time.monotonic()
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=600)
        assert 0.25 < time.monotonic() - t0 < 2
        assert out["timeout_clamped"] is True and out["timeout_used"] == 0.3 and out["timed_out"] is True
        assert "clamped" in out["note"]
        out = await call(ctx, "process", action="wait", session_id=sid, timeout=0.05)
        assert "timeout_clamped" not in out
    await runtime.aclose()


async def test_per_task_limit(tmp_path):
    runtime = Runtime(make_config(tmp_path, max_per_task=2))
    async with runtime.rollout() as ctx:
        await bg(ctx, "exec sleep 60")
        await bg(ctx, "exec sleep 60")
        out = await call(ctx, "terminal", command="sleep 60", background=True)
        assert out["error"]["type"] == "process_error" and "limit" in out["error"]["message"]
    await runtime.aclose()


async def test_per_task_limit_holds_for_parallel_tool_calls(tmp_path):
    """The tool calls of one turn run concurrently: they must not all slip past the limit."""
    runtime = Runtime(make_config(tmp_path, max_per_task=2))
    async with runtime.rollout() as ctx:
        outs = await asyncio.gather(*(call(ctx, "terminal", command="exec sleep 60", background=True) for _ in range(6)))
        started = [o for o in outs if "session_id" in o]
        refused = [o for o in outs if "error" in o]
        assert len(started) == 2 and len(refused) == 4
        assert len(runtime.processes.list(task_id=ctx.task_id)) == 2
    await runtime.aclose()


# ---------------------------------------------------------------------- notifications


async def test_check_interval_progress_and_completion_events(rt):
    got: list = []
    unsubscribe = rt.processes.subscribe(got.append)
    async_got: list = []

    async def async_cb(ev):
        async_got.append(ev)

    rt.on_process_event(async_cb)  # the Runtime-level shorthands
    async with rt.rollout() as ctx:
        stream = rt.process_events(ctx.task_id)
        sid = await bg(ctx, "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.25; done; exit 1", check_interval=1)
        kinds = []
        async for ev in stream:
            assert ev.session_id == sid
            kinds.append(ev.kind)
            if ev.kind == "progress":
                assert ev.new_bytes > 0 and "tick" in ev.output
            if ev.kind == "exited":
                assert ev.exit_code == 1 and "tick 8" in ev.output
                break
        assert kinds.count("progress") >= 1 and kinds[-1] == "exited"
    await asyncio.sleep(0)
    assert [e.kind for e in got if e.kind == "exited"] == ["exited"]
    assert [e.kind for e in async_got if e.kind == "exited"] == ["exited"]
    unsubscribe()


async def test_event_stream_ends_at_shutdown(tmp_path):
    runtime = Runtime(make_config(tmp_path))
    stream = runtime.processes.events()
    sb = runtime.create_sandbox("local")
    await sb.start()
    await runtime.processes.spawn(sb, "exec sleep 60", task_id="t")
    await runtime.aclose()
    kinds = [ev.kind async for ev in stream]
    assert kinds == ["killed"]


# ---------------------------------------------------------------------- checkpoint


async def test_checkpoint_is_shared_by_concurrent_runtimes(tmp_path):
    a, b = Runtime(make_config(tmp_path)), Runtime(make_config(tmp_path))
    sa, sb = a.create_sandbox("local"), b.create_sandbox("local")
    await sa.start()
    await sb.start()
    x = await a.processes.spawn(sa, "exec sleep 60", task_id="ta")
    y = await b.processes.spawn(sb, "exec sleep 60", task_id="tb")
    await a.processes.flush()
    await b.processes.flush()
    ck = json.loads((tmp_path / "state" / "processes.json").read_text())
    ids = {s["id"] for o in ck["owners"].values() for s in o["sessions"]}
    assert ids == {x.id, y.id}
    # A third runtime adopts nothing: both drivers are alive.
    c = Runtime(make_config(tmp_path))
    assert await c.processes.recover() == []
    await a.aclose()
    await b.aclose()
    await c.aclose()


async def test_recovery_never_signals_a_recycled_pid(tmp_path):
    """A checkpoint from a dead driver names a pid that now belongs to a stranger."""
    stranger = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        ck = tmp_path / "state" / "processes.json"
        ck.parent.mkdir(parents=True)
        st = Path(f"/proc/{stranger.pid}/stat").read_text().rsplit(")", 1)[1].split()
        session = {
            "id": "proc_0123456789ab", "command": "sleep 60", "task_id": "old", "pid": stranger.pid,
            "pty": False, "backend": "local", "sandbox_id": "old", "cwd": None, "started_at": time.time() - 5,
            "start_ticks": int(st[19]) - 1,  # another start time: the pid was recycled
            "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
            "host": True, "status": "running", "exit_code": None, "ended_at": None,
            "log_path": None, "rc_path": None,
        }
        dead_driver = {"runtime_id": "dead", "driver_pid": 2**22 + 7, "driver_start_ticks": 1, "boot_id": None}
        ck.write_text(json.dumps({"version": 1, "owners": {"dead": {**dead_driver, "sessions": [session]}}}))
        runtime = Runtime(make_config(tmp_path))
        rec = await runtime.processes.recover()
        assert [s.id for s in rec] == ["proc_0123456789ab"]
        assert rec[0].status == "exited" and rec[0].recovered
        await runtime.processes.kill("proc_0123456789ab")
        await runtime.aclose()
        assert stranger.returncode is None and alive(stranger.pid), "a stranger was signalled"
    finally:
        stranger.kill()
        await stranger.wait()


async def test_corrupt_checkpoint_does_not_stop_a_runtime(tmp_path):
    ck = tmp_path / "state" / "processes.json"
    ck.parent.mkdir(parents=True)
    ck.write_text("{not json")
    runtime = Runtime(make_config(tmp_path))
    assert await runtime.processes.recover() == []
    assert (tmp_path / "state" / "processes.json.corrupt").exists()
    await runtime.aclose()


def test_marker_env_reaches_the_process(tmp_path):
    async def main():
        runtime = Runtime(make_config(tmp_path))
        async with runtime.rollout() as ctx:
            sid = await bg(ctx, f"echo ${MARKER}")
            out = await call(ctx, "process", action="wait", session_id=sid, timeout=10)
            assert out["output"].strip() == sid
        await runtime.aclose()

    asyncio.run(main())


def test_default_paths_honour_xdg(monkeypatch, tmp_path):
    from hermes_core.processes._registry import ProcessRegistry

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    reg = ProcessRegistry(config=ProcessConfig())
    assert reg.checkpoint_path == tmp_path / "xdg" / "hermes" / "processes.json"
    assert reg.log_dir == tmp_path / "xdg" / "hermes" / "process-logs"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert ProcessRegistry(config=ProcessConfig()).checkpoint_path == Path.home() / ".local/share/hermes/processes.json"
    assert os.path.isabs(str(reg.checkpoint_path))


async def test_coalesced_passes_answer_every_waiter_once_and_fail_them_all_together():
    """The shared-pass helper behind the /proc scans: lookups made while a pass runs share the
    next one; a pass takes one key per subject when asked to; a failing pass fails each of its
    waiters (none is left waiting) and the next pass still runs."""
    from hermes_core.sandbox import Coalescer

    passes: list[list[tuple[str, int]]] = []
    fail = {"now": False}

    async def run(keys):
        passes.append(list(keys))
        await asyncio.sleep(0.01)
        if fail["now"]:
            raise OSError("scan failed")
        return {k: f"{k[0]}:{k[1]}" for k in keys}

    c = Coalescer(run, lambda key, chosen: all(key[0] != k[0] for k in chosen))
    keys = [(f"s{i % 5}", i) for i in range(20)]
    got = await asyncio.gather(*(c.ask(k) for k in keys), c.ask(("s0", 0)))
    assert got == [f"{s}:{i}" for s, i in keys] + ["s0:0"]
    assert len(passes) == 4 and all(len({s for s, _ in p}) == len(p) == 5 for p in passes)
    fail["now"] = True
    results = await asyncio.gather(*(c.ask(("x", i)) for i in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [OSError] * 3
    fail["now"] = False
    assert await asyncio.wait_for(c.ask(("y", 1)), 5) == "y:1"
