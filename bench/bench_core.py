"""Foundation benchmark: plugin load, one-shot exec, stateful shell, file round trips.

Every number is printed next to a baseline measured in the same run, as a ratio.
Run: python bench/bench_core.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def timed_runs(argv: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def bench_import(n: int) -> tuple[float, float]:
    py = sys.executable
    bare = timed_runs([py, "-c", "pass"], n)
    full = timed_runs([py, "-c", "import hermes_core; hermes_core.Runtime()"], n)
    return p50(full) - p50(bare), p50(bare)


async def bench_exec(n: int, root: str) -> dict[str, float]:
    """Bare subprocess, one-shot exec and the stateful shell, interleaved so drift hits all three."""
    from hermes_core import Runtime

    bare, one_shot, shell = [], [], []
    rt = Runtime()
    async with rt.rollout(options={"root": root}) as ctx:
        await ctx.sandbox.shell("true")
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(["bash", "-c", "echo hi"], capture_output=True)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = await ctx.terminal("echo hi")
            one_shot.append(time.perf_counter() - t)
            assert r["output"] == "hi\n"
            t = time.perf_counter()
            sr = await ctx.sandbox.shell("echo hi")
            shell.append(time.perf_counter() - t)
            assert sr.output == "hi\n"
    return {"bare": p50(bare), "exec": p50(one_shot), "shell": p50(shell)}


async def bench_transfer(size: int, reps: int, root: str) -> tuple[float, float]:
    """Upload + download through ToolContext against copying the file there and back."""
    from hermes_core import Runtime

    work = Path(tempfile.mkdtemp(dir=root))
    src = work / "src.bin"
    with open(src, "wb") as f:
        block = os.urandom(min(size, 1 << 20))
        for _ in range(max(1, size // len(block))):
            f.write(block)
    base, ours = [], []
    rt = Runtime()
    async with rt.rollout(options={"root": root}) as ctx:
        for i in range(reps):
            t = time.perf_counter()
            shutil.copyfile(src, work / "there.bin")
            shutil.copyfile(work / "there.bin", work / "back.bin")
            base.append(time.perf_counter() - t)
            os.unlink(work / "there.bin")
            os.unlink(work / "back.bin")
            t = time.perf_counter()
            up = await ctx.upload_file(src, f"f{i}.bin")
            down = await ctx.download_file(f"f{i}.bin", work / "back.bin")
            ours.append(time.perf_counter() - t)
            assert up["exit_code"] == 0 and down["success"] and down["bytes"] == src.stat().st_size
            os.unlink(work / "back.bin")
            await ctx.sandbox.exec(["rm", "-f", f"f{i}.bin"])
    shutil.rmtree(work)
    return p50(ours), p50(base)


def row(name: str, ours: float, base: float, target: str) -> None:
    print(f"{name:<34} {ours * 1000:9.2f} ms   baseline {base * 1000:9.2f} ms   ratio {ours / base:5.2f}x   target {target}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, skip 100 MB")
    args = ap.parse_args()
    n = 30 if args.quick else 200
    root = tempfile.mkdtemp(prefix="hermes-bench-")
    try:
        load, bare_py = bench_import(5 if args.quick else 15)
        print(f"{'import hermes_core + all plugins':<34} {load * 1000:9.2f} ms   (python start {bare_py * 1000:.1f} ms subtracted)   target <= 150 ms")
        e = asyncio.run(bench_exec(n, root))
        row("ToolContext.terminal('echo hi')", e["exec"], e["bare"], "<= 1.10x subprocess.run")
        row("stateful shell 'echo hi'", e["shell"], e["bare"], "<= 0.50x subprocess.run")
        o, b = asyncio.run(bench_transfer(1 << 20, 10 if args.quick else 30, root))
        row("upload+download 1 MB", o, b, "none (fixed costs dominate; reported)")
        if not args.quick:
            o, b = asyncio.run(bench_transfer(100 << 20, 5, root))
            row("upload+download 100 MB", o, b, "<= 1.50x file copy there and back")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
