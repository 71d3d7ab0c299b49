"""Background-process benchmark (issue 3): spawn, poll, exit detection, kill, memory under output.

Targets on the reference machine (2 cores): spawn <= 5 ms, kill <= 100 ms, exit noticed
<= 100 ms, RSS growth <= 5 MB while a process prints 1 GB. Each number is printed with its
ratio to the target (< 1.0 is within it), and spawn also next to a bare asyncio subprocess.
Run: python bench/bench_processes.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

TARGETS = {"spawn": 0.005, "kill": 0.100, "exit": 0.100, "rss": 5 * 2**20}


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def row(name: str, value: float, target: float, unit: str = "ms", extra: str = "") -> None:
    shown = value * 1000 if unit == "ms" else value / 2**20
    tshown = target * 1000 if unit == "ms" else target / 2**20
    print(f"{name:<44} {shown:9.2f} {unit:<3} target {tshown:6.1f} {unit:<3} ratio {value / target:5.2f}  {extra}")


async def main(quick: bool) -> None:
    from hermes_core import Runtime
    from hermes_core.config import HermesConfig, ProcessConfig

    n = 10 if quick else 40
    volume = (100 if quick else 1024) * 2**20
    tmp = Path(tempfile.mkdtemp(prefix="hermes-bench-proc-"))

    def config(**kw) -> HermesConfig:
        return HermesConfig(processes=ProcessConfig(
            checkpoint_path=str(tmp / "processes.json"), log_dir=str(tmp / "logs"), **kw))

    # bare asyncio subprocess, the floor
    bare = []
    for i in range(n + 3):  # the first runs warm up the child watcher
        t = time.perf_counter()
        p = await asyncio.create_subprocess_exec(
            "bash", "-c", "sleep 60", stdin=-1, stdout=-1, stderr=-2, start_new_session=True)
        if i >= 3:
            bare.append(time.perf_counter() - t)
        p.kill()
        await p.wait()

    for log_output in (True, False):
        rt = Runtime(config(log_output=log_output))
        sb = rt.create_sandbox("local", {"root": str(tmp / "sb")})
        await sb.start()
        reg = rt.processes
        await reg.recover()
        spawn = []
        for _ in range(n):
            t = time.perf_counter()
            s = await reg.spawn(sb, "sleep 60", task_id="bench")
            spawn.append(time.perf_counter() - t)
            await reg.kill(s.id)
        label = "with crash-safe log (default)" if log_output else "log_output=false"
        row(f"spawn p50, {label}", p50(spawn), TARGETS["spawn"], extra=f"bare asyncio subprocess {p50(bare) * 1000:.2f} ms, x{p50(spawn) / p50(bare):.2f}")
        await rt.aclose()

    rt = Runtime(config())
    sb = rt.create_sandbox("local", {"root": str(tmp / "sb")})
    await sb.start()
    reg = rt.processes

    s = await reg.spawn(sb, "seq 1 100000; exec sleep 60", task_id="bench")
    await asyncio.sleep(0.2)
    polls = []
    for _ in range(n * 10):
        t = time.perf_counter()
        await reg.poll(s.id, "bench")
        polls.append(time.perf_counter() - t)
    print(f"{'poll p50 (2000-char tail of a running job)':<44} {p50(polls) * 1e6:9.1f} us")
    await reg.kill(s.id)

    # exit detection: the job prints its clock right before exiting; the event is stamped when noticed
    events = reg.events()
    lat = []
    for _ in range(n):
        await reg.spawn(sb, "sleep 0.05; date +%s.%N", task_id="bench")
        ev = await anext(events)
        while ev.kind != "exited":
            ev = await anext(events)
        lat.append(ev.time - float(ev.output.strip()))
    row("exit noticed p50", p50(lat), TARGETS["exit"], extra=f"max {max(lat) * 1000:.1f} ms")

    for label, cmd, settle in (
        ("kill p50, right after spawn", "sleep 60", 0.0),
        ("kill p50, job with a child tree", "sleep 60 & sleep 60 & (sleep 60 & sleep 60 & wait) & wait", 0.1),
    ):
        times = []
        for _ in range(n):
            s = await reg.spawn(sb, cmd, task_id="bench")
            if settle:
                await asyncio.sleep(settle)
            t = time.perf_counter()
            out = await reg.kill(s.id)
            times.append(time.perf_counter() - t)
            assert out["status"] == "killed", out
        row(label, p50(times), TARGETS["kill"], extra=f"max {max(times) * 1000:.1f} ms")

    # memory while a job prints `volume` bytes (default config: rolling buffer + on-disk log)
    for pty in (False, True):
        await asyncio.sleep(0.1)
        base = peak = rss()
        t = time.perf_counter()
        s = await reg.spawn(sb, f"head -c {volume} /dev/zero | tr '\\0' 'x'", task_id="bench", pty=pty)
        while s.running:
            peak = max(peak, rss())
            await asyncio.sleep(0.02)
        took = time.perf_counter() - t
        assert s.buffer.total >= volume, s.buffer.total
        mode = "pty" if pty else "pipe"
        row(f"RSS growth, {mode} job printing {volume >> 20} MB", peak - base, TARGETS["rss"], unit="MB",
            extra=f"{volume / took / 2**20:.0f} MB/s, buffer {len(s.buffer) >> 10} KB")
        await reg.kill_task("bench")  # forgets the sessions and deletes their logs
    await rt.aclose()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs, 100 MB instead of 1 GB")
    asyncio.run(main(ap.parse_args().quick))
