"""Docker at scale: N concurrent rollouts in one driver process against a floor of N concurrent
bare ``docker`` SDK sandboxes, measured in the same run.

hermes: the Runner with the oracle agent and a one-step task on the docker backend, all N at
once (container create + start, the stateful shell's one terminal command, a verifier that
reads the file back through the archive API, shielded teardown).
floor: the same work with the bare low-level SDK, N threads at once, one client each (what the
backend does per sandbox): create + start, one exec, one archive read, force-remove and wait
until the engine has removed it.

Printed: the wall time of each, the per-rollout overhead ((hermes - floor) / N, the engine's
work is shared by both), the ratio, and the driver's peak RSS, open fds and threads for each.
Numbers are printed, never asserted (the engine is the bottleneck and the machine is shared).

Needs an engine at $DOCKER_HOST and the test image (scripts/docker-env.sh start && image):
    DOCKER_HOST=unix:///tmp/hermes-dockerd.sock python bench/bench_docker_scale.py [--quick] [-n 256]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Self

IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
LABELS = {"hermes.backend": "docker", "hermes.rollout": "bench-scale"}


class Peak:
    """The driver's peak RSS (MiB), open fds and threads, sampled every 20 ms on a thread (an
    event-loop sampler would miss the peaks of a loop that is busy)."""

    def __init__(self) -> None:
        self.rss = self.fds = self.threads = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while True:
            with open("/proc/self/statm") as f:
                self.rss = max(self.rss, int(f.read().split()[1]) * page / 2**20)
            self.fds = max(self.fds, len(os.listdir("/proc/self/fd")))
            self.threads = max(self.threads, threading.active_count())
            if self._stop.wait(0.02):
                return

    def __str__(self) -> str:
        return f"peak RSS {self.rss:.0f} MiB, fds {self.fds:.0f}, threads {self.threads:.0f}"


def bare_one(i: int) -> bytes:
    """One floor sandbox: what a rollout asks of the engine, with the bare SDK."""
    from hermes_backend_docker._engine import connect

    api = connect()
    try:
        host_config = api.create_host_config(network_mode="none", init=True, auto_remove=True, mem_limit="8g",
                                             pids_limit=4096)
        c = api.create_container(IMAGE, command=["2147483647"], entrypoint=["sleep"], labels=LABELS,
                                 working_dir="/workspace", host_config=host_config, detach=True,
                                 name=f"bench-scale-floor-{os.getpid()}-{i}")
        try:
            api.start(c["Id"])
            e = api.exec_create(c["Id"], ["sh", "-c", "echo ok > done.txt"])
            api.exec_start(e["Id"])
            assert api.exec_inspect(e["Id"])["ExitCode"] == 0
            chunks, _ = api.get_archive(c["Id"], "/workspace/done.txt")
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                data = tar.extractfile(tar.next()).read()
        finally:
            import docker.errors

            try:
                api.remove_container(c["Id"], force=True, v=True)
            except docker.errors.APIError as err:
                if err.status_code not in (404, 409):
                    raise
            try:
                api.wait(c["Id"], condition="removed", timeout=300)
            except docker.errors.NotFound:
                pass
        return data
    finally:
        api.close()


def floor(n: int) -> tuple[float, Peak]:
    with Peak() as peak, ThreadPoolExecutor(n) as pool:
        t0 = time.perf_counter()
        out = list(pool.map(bare_one, range(n)))
        wall = time.perf_counter() - t0
    assert out == [b"ok\n"] * n, out[:3]
    return wall, peak


async def hermes(n: int) -> tuple[float, Peak]:
    from hermes_core import Environment, Runner, Runtime, TaskItem, hookimpl

    class ScaleEnv(Environment):
        verifier = "bench-scale"

        async def load_tasks(self) -> list[TaskItem]:
            return [TaskItem(id=f"t{i}", prompt="p", solution="echo ok > done.txt") for i in range(self.config.limit or 1)]

    async def verify(item, result, ctx) -> float:
        return 1.0 if (await ctx.read_file("done.txt")).get("content", "").strip().endswith("ok") else 0.0

    class Plugin:
        @staticmethod
        @hookimpl
        def hermes_register_environments(registry):
            registry.register("bench-scale", ScaleEnv)

        @staticmethod
        @hookimpl
        def hermes_register_verifiers(registry):
            registry.register("bench-scale", verify)

    async with Runtime(plugins=[Plugin]) as rt:
        env = ScaleEnv.from_config({"limit": n, "toolsets": ["terminal"], "timeout": 900})
        items = await env.tasks()
        runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, backend="docker",
                        backend_options={"image": IMAGE, "pull": "never"}, concurrency=n)
        with Peak() as peak:
            t0 = time.perf_counter()
            report = await runner.run(items)
            wall = time.perf_counter() - t0
    bad = [r for r in report.records if r["reward"] != 1.0]
    assert not bad, f"{len(bad)} of {n} rollouts without reward 1.0, e.g. {bad[0]}"
    return wall, peak


async def main(n: int, rounds: int) -> None:
    from hermes_backend_docker._engine import connect

    api = connect()
    print(f"engine {api.version()['Version']} (API {api.api_version}), image {IMAGE}, "
          f"{n} concurrent, {rounds} round(s), {os.cpu_count()} cores")
    api.close()
    await asyncio.to_thread(floor, min(n, 8))  # warm the engine and the page cache
    ours, bare = [], []
    for r in range(rounds):  # interleaved: both see the same engine state
        wall, peak = await asyncio.to_thread(floor, n)
        bare.append(wall)
        print(f"  round {r + 1}: floor  {wall:7.2f} s  ({peak})", flush=True)
        wall, peak = await hermes(n)
        ours.append(wall)
        print(f"  round {r + 1}: hermes {wall:7.2f} s  ({peak})", flush=True)
    a, b = min(ours), min(bare)
    print(f"{n} concurrent docker rollouts: hermes {a:.2f} s, bare SDK floor {b:.2f} s, ratio {a / b:.2f}x, "
          f"per-rollout overhead {(a - b) / n * 1000:+.1f} ms (best of {rounds})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 concurrent, one round (CI)")
    parser.add_argument("-n", type=int, default=None, help="rollouts at once (default 256; 32 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2; 1 with --quick)")
    args = parser.parse_args()
    n = args.n or (32 if args.quick else 256)
    asyncio.run(main(n, args.rounds or (1 if args.quick else 2)))
