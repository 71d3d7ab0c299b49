"""Every path a rollout takes, as a ratio to its floor: bare Python doing the same work,
measured in the same run, interleaved (floor, hermes, hermes, floor, ...), medians.

    python bench/bench_floor.py            # medians of 30 runs per path
    python bench/bench_floor.py --quick    # 5 runs, smaller scale runs (CI smoke: no targets enforced)

Prints one table (path, hermes, floor, ratio, target, met) and the load average. Exit code 0
whatever the numbers (timings are not tests); ``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hermes_core import Runtime  # noqa: E402

Timed = Callable[[], Awaitable[float]]


async def interleaved(floor: Timed, ours: Timed, runs: int) -> tuple[float, float]:
    """Medians (ours, floor) of ``runs`` each, in the order F H H F F H ...: each side follows
    the other as often as itself (what one leaves behind, e.g. asyncio's child-watcher thread
    of the floor's subprocess still exiting, weighs on both alike)."""
    a, b = [], []
    for i in range(runs):
        if i % 2 == 0:
            a.append(await floor())
            b.append(await ours())
        else:
            b.append(await ours())
            a.append(await floor())
    return statistics.median(b), statistics.median(a)


def clock(fn: Callable[[], Awaitable[object]]) -> Timed:
    async def run() -> float:
        t0 = time.perf_counter()
        await fn()
        return time.perf_counter() - t0

    return run


async def floor_start_true_close() -> None:
    d = tempfile.mkdtemp(prefix="floor-")
    p = await asyncio.create_subprocess_exec("true", cwd=d)
    await p.wait()
    shutil.rmtree(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--big", type=int, default=None, help="rollouts in the big run (default 1000; quick 100)")
    args = ap.parse_args()
    runs = 5 if args.quick else 30
    big = args.big or (100 if args.quick else 1000)
    rows: list[tuple[str, float, float | None, float | None, str]] = []
    asyncio.run(_measure(rows, runs, big, args.quick))
    print(f"\nhermes-core floor benchmark ({'quick' if args.quick else f'medians of {runs}'}), "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print(f"{'path':44} {'hermes':>10} {'floor':>10} {'ratio':>7} {'target':>8}  met")
    missed = 0
    for name, ours, floor, target, unit in rows:
        ratio = ours / floor if floor else None
        if target is None:
            met = ""
        elif ratio is not None:
            met = "yes" if ratio <= target else "NO"
        else:
            met = "yes" if ours <= target else "NO"
        missed += met == "NO"
        fmt = (lambda v: f"{v * 1000:8.2f}ms") if unit == "s" else (lambda v: f"{v:8.1f}{unit}")
        print(f"{name:44} {fmt(ours):>10} {fmt(floor) if floor else '':>10} "
              f"{f'{ratio:.2f}x' if ratio else '':>7} {(f'{target:.2f}x' if ratio else f'{target:g}{unit}') if target is not None else '':>8}  {met}")
    return 1 if (missed and args.strict) else 0


async def _measure(rows: list, runs: int, big: int, quick: bool) -> None:
    rt = Runtime()
    tmp = Path(tempfile.mkdtemp(prefix="hermes-floor-"))
    opts = {"root": str(tmp)}

    # 1. start + true + close
    async def ours_start() -> None:
        sb = await rt.create_sandbox("local", opts).start()
        await sb.exec(["true"])
        await sb.close()

    # Right after the Runtime starts, spares are checked in full (their directories have not
    # settled yet: _local_spares.SETTLE_NS); a long-running driver is past that within 2 s.
    rows.append(("  the same, a Runtime's first 2 s (cold spares)", *await interleaved(clock(floor_start_true_close), clock(ours_start), runs), None, "s"))
    deadline = time.monotonic() + (0.5 if quick else 2.5)
    while time.monotonic() < deadline:  # warm-up, both sides
        await floor_start_true_close()
        await ours_start()
    rows.append(("local start + `true` + close", *await interleaved(clock(floor_start_true_close), clock(ours_start), runs), 1.0, "s"))

    # the same without the per-sandbox cgroup (what the cleanup guarantee of a cgroup costs)
    async def ours_start_marker() -> None:
        sb = await rt.create_sandbox("local", {**opts, "tracking": "marker"}).start()
        await sb.exec(["true"])
        await sb.close()

    rows.append(("  the same, tracking: marker (no cgroup)", *await interleaved(clock(floor_start_true_close), clock(ours_start_marker), runs), None, "s"))

    # 2. 100 concurrent create + close
    async def floor100() -> None:
        await asyncio.gather(*(floor_start_true_close() for _ in range(100)))

    async def ours100() -> None:
        await asyncio.gather(*(ours_start() for _ in range(100)))

    deadline = time.monotonic() + (0.5 if quick else 2.5)
    while time.monotonic() < deadline:  # warm-up, both sides (100 spares to settle)
        await floor100()
        await ours100()
    rows.append(("100 concurrent start + `true` + close", *await interleaved(clock(floor100), clock(ours100), max(3, runs // 5)), 1.0, "s"))

    # 3. one-shot exec and the stateful shell vs subprocess.run
    sb = await rt.create_sandbox("local", opts).start()
    await sb.shell("true")

    async def floor_exec() -> None:
        subprocess.run(["bash", "-c", "echo hi"], capture_output=True, cwd=sb.workdir)

    rows.append(("one-shot exec (`echo hi`)", *await interleaved(clock(floor_exec), clock(lambda: sb.exec("echo hi")), runs * 3), 1.0, "s"))
    rows.append(("stateful-shell command (`echo hi`)", *await interleaved(clock(floor_exec), clock(lambda: sb.shell("echo hi")), runs * 3), 0.25, "s"))

    # 4. bytes API and file to file, 10 MB
    data = os.urandom(10 * 1024 * 1024)
    plain = Path(sb.workdir) / "plain.bin"

    async def floor_bytes() -> None:
        plain.write_bytes(data)
        plain.read_bytes()

    async def ours_bytes() -> None:
        await sb.write_bytes("b.bin", data)
        await sb.read_bytes("b.bin")

    rows.append(("10 MB write_bytes + read_bytes", *await interleaved(clock(floor_bytes), clock(ours_bytes), runs), 1.15, "s"))
    src = tmp / "src.bin"
    src.write_bytes(data)

    async def floor_files() -> None:
        shutil.copyfile(src, plain)
        shutil.copyfile(plain, tmp / "back.bin")

    async def ours_files() -> None:
        await sb.put_file(src, "f.bin")
        await sb.get_file("f.bin", tmp / "back2.bin")

    rows.append(("10 MB put_file + get_file", *await interleaved(clock(floor_files), clock(ours_files), runs), 1.15, "s"))
    await sb.close()
    # The file rows leave ~1 GB of dirty pages: written back now, not during the next rows
    # (writeback took 0.3 s of a 64-rollout row's wall here).
    os.sync()
    await asyncio.sleep(1.0)

    # 5. 64 concurrent `sleep 0.5` rollouts vs 64 concurrent subprocesses
    async def floor64() -> None:
        procs = [await asyncio.create_subprocess_exec("sleep", "0.5") for _ in range(64)]
        await asyncio.gather(*(p.wait() for p in procs))

    async def one_rollout() -> None:
        async with rt.rollout(options=opts) as ctx:
            await ctx.call_tool("terminal", {"command": "sleep 0.5"})

    async def ours64() -> None:
        await asyncio.gather(*(one_rollout() for _ in range(64)))

    rows.append(("64 concurrent `sleep 0.5` rollouts", *await interleaved(clock(floor64), clock(ours64), max(3, runs // 5)), 1.05, "s"))

    # The same with a command only a shell can run: each rollout starts its bash session (a
    # simple first command like `sleep 0.5` runs without one; see sandbox._shell).
    async def one_shell_rollout() -> None:
        async with rt.rollout(options=opts) as ctx:
            await ctx.call_tool("terminal", {"command": "sleep 0.5; :"})

    async def ours64_shell() -> None:
        await asyncio.gather(*(one_shell_rollout() for _ in range(64)))

    rows.append(("  same, the shell started (`sleep 0.5; :`)", *await interleaved(clock(floor64), clock(ours64_shell), max(3, runs // 5)), None, "s"))

    # Where those rows' time goes: CPU of the children (with the shell, each rollout's bash
    # session starts and forks the command; the floor runs `sleep` alone) and of the driver.
    async def cpu(fn: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        await fn()
        s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        used = lambda a, b: (b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime) / 64  # noqa: E731
        return used(c0, c1), used(s0, s1)

    (fc, fd), (oc, od), (sc, sd) = await cpu(floor64), await cpu(ours64), await cpu(ours64_shell)
    rows.append(("  children CPU per rollout", oc, fc, None, "s"))
    rows.append(("  driver CPU per rollout", od, fd, None, "s"))
    rows.append(("  children CPU per rollout, shell started", sc, fc, None, "s"))
    rows.append(("  driver CPU per rollout, shell started", sd, fd, None, "s"))

    # 6. import + all plugins, above bare python
    def py(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - t0

    bare, imp = [], []
    for _ in range(max(5, runs // 2)):
        bare.append(py("pass"))
        imp.append(py("from hermes_core import Runtime; Runtime()"))
    above = (statistics.median(imp) - statistics.median(bare)) * 1000
    rows.append(("import hermes_core + load all plugins (above bare)", above, None, 50.0, "ms"))

    # 7. hermes eval -n 64 of 64 x sleep 0.5 (the Runner, with results written)
    import bench_eval

    rt2 = Runtime(plugins=[bench_eval.Plugin()])
    walls = []
    for _ in range(max(2, runs // 10)):
        wall, _ = await bench_eval.sleep_wall(rt2, 64)
        walls.append(wall)
    rows.append(("Runner -n 64, 64 x `sleep 0.5`, wall", statistics.median(walls), None, 0.75, "s"))
    await rt2.aclose()

    # 8. the big run: N concurrent rollouts, each with a live shell and a background process
    async def big_rollout(i: int) -> None:
        async with rt.rollout(options=opts) as ctx:
            await ctx.call_tool("terminal", {"command": "cd . && export A=1"})
            await ctx.call_tool("terminal", {"command": "sleep 2", "background": True})
            await ctx.call_tool("terminal", {"command": "sleep 1; echo $A"})

    t0 = time.perf_counter()
    await asyncio.gather(*(big_rollout(i) for i in range(big)))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append((f"{big} concurrent rollouts (shell + background job), wall", wall, None, None, "s"))
    rows.append((f"{big} concurrent rollouts, driver peak RSS", peak, None, 2048.0, "MB"))
    await rt.aclose()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
