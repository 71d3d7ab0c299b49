"""Crash recovery: a driver process is killed with SIGKILL while 10 jobs run; a new runtime
pointed at the same checkpoint recovers them (status, output written since, kill)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
import time

import psutil
import pytest

from hermes_core import Runtime
from hermes_core.processes._state import kill_pids, stragglers
from hermes_core.config import HermesConfig, ProcessConfig

DRIVER = textwrap.dedent(
    """
    import asyncio, json, sys
    from hermes_core import Runtime
    from hermes_core.config import HermesConfig, ProcessConfig

    async def main(state, root):
        cfg = HermesConfig(processes=ProcessConfig(
            checkpoint_path=f"{state}/processes.json", log_dir=f"{state}/logs"))
        rt = Runtime(cfg)
        sb = rt.create_sandbox("local", {"root": root}, task_id="crashy-rollout")
        await sb.start()
        out = []
        for i in range(10):
            # counts forever, with a child of its own
            s = await rt.processes.spawn(
                sb, f"sleep 600 & i=0; while :; do echo job{i} tick $i; i=$((i+1)); sleep 0.05; done",
                task_id="crashy-rollout")
            out.append({"id": s.id, "pid": s.pid})
        s = await rt.processes.spawn(sb, "sleep 1; echo short done; exit 4", task_id="crashy-rollout")
        out.append({"id": s.id, "pid": s.pid, "short": True})
        await asyncio.sleep(0.3)
        await rt.processes.flush()
        print(json.dumps(out), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def crashed_driver(tmp_path):
    """Run the driver, let it start its jobs, SIGKILL it. Yields the jobs it reported."""
    state, root = tmp_path / "state", tmp_path / "sandboxes"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = psutil.Popen([sys.executable, str(script), str(state), str(root)], stdout=-1, stderr=-1, text=True)
    jobs = []
    try:
        line = proc.stdout.readline()
        assert line, f"driver failed: {proc.stderr.read()}"
        jobs = json.loads(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        yield state, jobs
    finally:
        if proc.poll() is None:
            proc.kill()
        for job in jobs:  # if the test failed before killing them
            kill_pids(stragglers(job["pid"], job["id"], strict=True))


async def test_new_runtime_recovers_all_ten_after_sigkill(crashed_driver):
    state, jobs = crashed_driver
    long_jobs = [j for j in jobs if not j.get("short")]
    short = next(j for j in jobs if j.get("short"))
    assert len(long_jobs) == 10 and all(alive(j["pid"]) for j in long_jobs), "jobs must outlive their driver"

    cfg = HermesConfig(processes=ProcessConfig(checkpoint_path=f"{state}/processes.json", log_dir=f"{state}/logs"))
    runtime = Runtime(cfg)
    events = runtime.processes.events()
    recovered = await runtime.processes.recover()
    assert {s.id for s in recovered} == {j["id"] for j in jobs}
    by_id = {s.id: s for s in recovered}
    for j in long_jobs:
        s = by_id[j["id"]]
        assert s.recovered and s.status == "running" and s.pid == j["pid"] and s.task_id == "crashy-rollout"

    # Output written since the crash is read from the log, incrementally.
    first = {j["id"]: (await runtime.processes.poll(j["id"]))["output_bytes"] for j in long_jobs}
    await asyncio.sleep(0.4)
    for j in long_jobs:
        p = await runtime.processes.poll(j["id"])
        assert p["output_bytes"] > first[j["id"]], "no new output after the crash"
        assert p["output"].rstrip().split("\n")[-1].startswith(f"job{long_jobs.index(j)} tick")

    # The short job ends by itself after the crash: its exit code comes from the wrapper.
    out = await runtime.processes.wait(short["id"], 10)
    assert out["status"] == "exited" and out["exit_code"] == 4
    assert "short done" in out["output"]

    # The rollout (same task id) sees them through the process tool; another one does not.
    async with runtime.rollout("other-rollout") as other:
        listed = json.loads(await other.call_tool("process", {"action": "list"}))
        assert listed["processes"] == []
        refused = json.loads(await other.call_tool("process", {"action": "kill", "session_id": long_jobs[0]["id"]}))
        assert refused["error"]["type"] == "forbidden"

    # Kill: the group (the job's own `sleep 600` child too) is gone, quickly.
    trees = {j["id"]: stragglers(j["pid"], j["id"], strict=True) for j in long_jobs}
    assert all(len(t) >= 3 for t in trees.values()), trees  # bash, tee, sleep 600 (+ sleep 0.05)
    t0 = time.monotonic()
    results = await asyncio.gather(*(runtime.processes.kill(j["id"]) for j in long_jobs))
    assert time.monotonic() - t0 < 1.0
    for r in results:
        assert r["status"] == "killed"
        # the signal, not the status of the last command the job finished (was 0)
        assert r["exit_code"] in (143, 137), r
    await asyncio.sleep(0.05)
    left = [p for t in trees.values() for p in t if alive(p)]
    assert left == [], f"recovered processes survived the kill: {left}"

    kinds = []
    while True:
        try:
            kinds.append((await asyncio.wait_for(events.__anext__(), 0.1)).kind)
        except TimeoutError:
            break
    assert kinds.count("recovered") == 11 and kinds.count("killed") == 10 and kinds.count("exited") == 1
    await runtime.aclose()
    ck = json.loads((state / "processes.json").read_text())
    assert ck["owners"] == {}


async def test_recovered_sessions_that_died_are_reported_ended(crashed_driver):
    state, jobs = crashed_driver
    for _ in range(3):  # everything dies while no driver runs (a loop may be forking: repeat)
        for j in jobs:
            kill_pids(stragglers(j["pid"], j["id"], strict=True))
        await asyncio.sleep(0.05)
    cfg = HermesConfig(processes=ProcessConfig(checkpoint_path=f"{state}/processes.json", log_dir=f"{state}/logs"))
    runtime = Runtime(cfg)
    recovered = await runtime.processes.recover()
    assert len(recovered) == 11
    for s in recovered:
        assert s.status == "exited", "a dead process must not be reported running"
        assert "ended" in (s.note or "")
        out = await runtime.processes.read_log(s.id, offset=0, limit=200)
        assert "tick 0" in out["output"] or "short" in s.command or out["output"] == ""
    await runtime.aclose()
