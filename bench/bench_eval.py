"""Rollout runner benchmark on the local backend.

1. 64 rollouts that each run ``sleep 0.5`` via the oracle agent with ``-n 64``: wall time
   (target <= 1.0 s: the rollouts must truly overlap).
2. Per-rollout overhead of the runner for a trivial task (sandbox + ToolContext + oracle's one
   terminal call + verifier + cleanup), one at a time: p50 (target <= 20 ms).

Run: ``python bench/bench_eval.py``
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from hermes_core import Runtime, hookimpl
from hermes_core import Environment, TaskItem
from hermes_core import Runner

WALL_TARGET = 1.0
OVERHEAD_TARGET_MS = 20.0


class BenchEnv(Environment):
    verifier = "bench"

    async def load_tasks(self) -> list[TaskItem]:
        solution = self.config.system_prompt or "true"  # the command to run, smuggled in a config key
        return [TaskItem(id=f"t{i}", prompt="p", solution=solution) for i in range(self.config.limit or 1)]


async def verify(item, result, ctx) -> float:
    return 1.0 if (await ctx.read_file(".")).get("error") else 0.0  # a real round-trip to the sandbox


class Plugin:
    @staticmethod
    @hookimpl
    def hermes_register_environments(registry):
        registry.register("bench", BenchEnv)

    @staticmethod
    @hookimpl
    def hermes_register_verifiers(registry):
        registry.register("bench", verify)


async def sleep_wall(rt: Runtime, n: int = 64) -> tuple[float, float]:
    env = BenchEnv.from_config({"limit": n, "system_prompt": "sleep 0.5", "toolsets": ["terminal"]})
    items = await env.tasks()
    t0 = time.perf_counter()
    report = await Runner(rt, rt.agents.get("oracle").factory(), environment=env, concurrency=n).run(items)
    wall = time.perf_counter() - t0
    assert report.summary["mean_reward"] == 1.0, report.records[0]
    return wall, report.summary["mean_reward"]


async def overhead(rt: Runtime, n: int = 60) -> list[float]:
    env = BenchEnv.from_config({"limit": 1, "system_prompt": "true", "toolsets": ["terminal"]})
    item = (await env.tasks())[0]
    runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, concurrency=1)
    times = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        rollout = await runner.run_one(item, i)
        elapsed = time.perf_counter() - t0
        assert rollout.record["reward"] == 1.0, rollout.record
        if i >= 5:  # warm-up
            times.append(elapsed * 1000)
    return times


async def main() -> int:
    async with Runtime(plugins=[Plugin]) as rt:
        await sleep_wall(rt, 8)  # warm-up
        walls = [(await sleep_wall(rt))[0] for _ in range(3)]
        times = await overhead(rt)
    wall = min(walls)
    p50 = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9)]
    print(f"64 x `sleep 0.5`, oracle, local, -n 64: wall {wall:.3f} s (runs: {', '.join(f'{w:.3f}' for w in walls)}); "
          f"target <= {WALL_TARGET} s -> ratio {wall / WALL_TARGET:.2f}; serial would be 32 s "
          f"(speed-up x{32 / wall:.0f})")
    print(f"per-rollout runner overhead (trivial task, sequential, {len(times)} rollouts): "
          f"p50 {p50:.1f} ms, p90 {p90:.1f} ms; target p50 <= {OVERHEAD_TARGET_MS} ms -> ratio {p50 / OVERHEAD_TARGET_MS:.2f}")
    ok = wall <= WALL_TARGET and p50 <= OVERHEAD_TARGET_MS
    print("PASS" if ok else "OVER TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
