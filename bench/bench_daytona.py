"""Benchmark: the daytona backend against the bare daytona SDK, on the same fake control plane.

Both sides talk to one fake Daytona service (hermes_backend_daytona/tests/fake/, sandboxes are
containers on $DOCKER_HOST) in the same run, interleaved:

* sandbox start: ``DaytonaSandbox.start()`` vs ``AsyncDaytona.create(params)`` (same image, labels)
* exec p50: ``sandbox.exec("true")`` vs ``sandbox.process.exec("true")``
* 10 MB round trip: ``put_file`` + ``get_file`` vs ``fs.upload_file(path)`` + ``fs.download_file(path, local)``
* rollouts: N rollouts of ``sleep 0.5`` through ``Runtime.rollout`` with the create-rate limiter
  at R creates/s, against the limiter's floor N/R; then the sandboxes left in the service and the
  containers left on the engine (both must be 0).

Usage: ``DOCKER_HOST=... python bench/bench_daytona.py [--quick] [--rollouts N] [--rate R]``.
Targets (issue 13): start <= 1.1x, exec <= 1.2x, 10 MB <= 1.5x, rollouts within 10% of the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hermes_backend_daytona" / "tests"))

IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


async def bench(args: argparse.Namespace, fake) -> dict[str, float]:
    import daytona._async.daytona  # noqa: F401 - import cost is not part of either side
    from daytona import AsyncDaytona, CreateSandboxFromImageParams, DaytonaConfig

    from hermes_core import Runtime

    opts = {"image": IMAGE, "creates_per_second": 1000}
    rt = Runtime()
    bare = AsyncDaytona(DaytonaConfig(api_key=fake.api_key, api_url=fake.api_url))
    keeper = await rt.create_sandbox("daytona", opts).start()  # keeps hermes's client warm, like bare's
    results: dict[str, float] = {}
    try:
        # ------------------------------------------------------------ start
        hs, bs = [], []
        for i in range(args.starts):
            t = time.perf_counter()
            sb = await rt.create_sandbox("daytona", opts).start()
            hs.append(time.perf_counter() - t)
            await sb.close()
            t = time.perf_counter()
            b = await bare.create(CreateSandboxFromImageParams(
                image=IMAGE, labels={"hermes.backend": "bench-bare"}, auto_stop_interval=30, auto_delete_interval=0,
            ))
            bs.append(time.perf_counter() - t)
            await b.delete()
        results["start hermes p50 s"] = p50(hs)
        results["start bare p50 s"] = p50(bs)
        results["start ratio"] = p50(hs) / p50(bs)

        # ------------------------------------------------------------ exec
        b = await bare.create(CreateSandboxFromImageParams(image=IMAGE, auto_stop_interval=30, auto_delete_interval=0))
        try:
            he, be = [], []
            for _ in range(args.execs):
                t = time.perf_counter()
                r = await keeper.exec("true")
                he.append(time.perf_counter() - t)
                assert r.exit_code == 0
                t = time.perf_counter()
                rb = await b.process.exec("true")
                be.append(time.perf_counter() - t)
                assert rb.exit_code == 0
            results["exec hermes p50 ms"] = p50(he) * 1000
            results["exec bare p50 ms"] = p50(be) * 1000
            results["exec ratio"] = p50(he) / p50(be)

            # -------------------------------------------------------- 10 MB round trip
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "ten.bin"
                src.write_bytes(os.urandom(10 << 20))
                ht, bt = [], []
                for i in range(args.transfers):
                    t = time.perf_counter()
                    await keeper.put_file(src, "/tmp/ten.bin")
                    await keeper.get_file("/tmp/ten.bin", Path(tmp) / "h.out")
                    ht.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await b.fs.upload_file(str(src), "/tmp/ten.bin")
                    await b.fs.download_file("/tmp/ten.bin", str(Path(tmp) / "b.out"))
                    bt.append(time.perf_counter() - t)
                assert (Path(tmp) / "h.out").read_bytes() == src.read_bytes()
            results["10MB hermes p50 s"] = p50(ht)
            results["10MB bare p50 s"] = p50(bt)
            results["10MB ratio"] = p50(ht) / p50(bt)
        finally:
            await b.delete()
    finally:
        await keeper.close()
        await bare.close()
        await rt.aclose()

    # ---------------------------------------------------------------- rollouts under the limiter
    rt = Runtime()
    lim = {"image": IMAGE, "creates_per_second": args.rate, "max_concurrent_creates": 64}

    async def rollout() -> None:
        async with rt.rollout(backend="daytona", options=lim) as ctx:
            r = await ctx.sandbox.exec("sleep 0.5")
            assert r.exit_code == 0

    # The same rollouts through the bare SDK, its creates spaced by the same rate: what the engine
    # behind the fake can do at all (on a loaded 2-core machine it, not the limiter, is the floor).
    bare = AsyncDaytona(DaytonaConfig(api_key=fake.api_key, api_url=fake.api_url))
    slot = [0.0]

    async def bare_rollout() -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait, slot[0] = slot[0] - now, max(slot[0], now) + 1 / args.rate
        if wait > 0:
            await asyncio.sleep(wait)
        b = await bare.create(CreateSandboxFromImageParams(image=IMAGE, auto_stop_interval=30, auto_delete_interval=0))
        try:
            assert (await b.process.exec("sleep 0.5")).exit_code == 0
        finally:
            await b.delete()

    t = time.perf_counter()
    try:
        await asyncio.gather(*(bare_rollout() for _ in range(args.rollouts)))
    finally:
        await bare.close()
    bare_wall = time.perf_counter() - t

    t = time.perf_counter()
    try:
        await asyncio.gather(*(rollout() for _ in range(args.rollouts)))
    finally:
        await rt.aclose()
    wall = time.perf_counter() - t
    floor = args.rollouts / args.rate
    results[f"{args.rollouts} rollouts hermes wall s"] = wall
    results[f"{args.rollouts} rollouts bare SDK wall s"] = bare_wall
    results["rollouts floor s (N/rate)"] = floor
    results["rollouts hermes / bare"] = wall / bare_wall
    results["rollouts hermes / floor"] = wall / floor
    for _ in range(100):
        if not fake.sandbox_count() and not fake.container_ids():
            break
        await asyncio.sleep(0.2)
    results["sandboxes left in the service"] = fake.sandbox_count()
    results["containers left on the engine"] = len(fake.container_ids())
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    p.add_argument("--rollouts", type=int, default=None)
    p.add_argument("--rate", type=float, default=20.0, help="create-rate limit for the rollout phase")
    args = p.parse_args()
    args.starts, args.execs, args.transfers = (3, 10, 2) if args.quick else (10, 40, 5)
    if args.rollouts is None:
        args.rollouts = 40 if args.quick else 1000
    from fake.server import FakeDaytona

    fake = FakeDaytona().start()
    os.environ["DAYTONA_API_URL"], os.environ["DAYTONA_API_KEY"] = fake.api_url, fake.api_key
    try:
        results = asyncio.run(bench(args, fake))
    finally:
        fake.stop()
    width = max(map(len, results))
    for k, v in results.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    leaks = results["sandboxes left in the service"] + results["containers left on the engine"]
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
