"""Benchmark: the ``modal`` backend against bare ``modal`` SDK calls, on the same local gRPC fake.

Both sides run the real modal SDK against one fake of Modal's API (hermes_backend_modal/tests/
fake; sandboxes are containers on $DOCKER_HOST), interleaved in the same run, so the fake's own
cost (docker run / docker exec) is in both and the ratio is hermes' overhead:

* start: ``ModalSandbox.start()`` vs ``Sandbox.create.aio(...)``   (target <= 1.1x)
* exec p50: ``sandbox.exec("true")`` vs ``exec.aio("true")`` + read stdout + wait   (<= 1.2x)
* 10 MB round trip: ``write_bytes`` + ``read_bytes`` (hermes' sha256-checked exec channel) vs
  the same bytes through bare ``exec.aio`` stdin/stdout (``cat > f``, ``cat f``), unchecked
  (<= 1.5x). The SDK's own ``filesystem`` API execs a helper binary that only Modal's workers
  have, so it cannot be the baseline here.
* N rollouts (start + exec + close) under a create limit of R/s: wall vs the limiter's floor
  N/R (target within 10%), and what is left on the fake afterwards (target 0).

    python bench/bench_modal.py [--quick] [--iters N] [--rollouts N] [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hermes_backend_modal" / "tests"))

IMAGE = os.environ.get("HERMES_MODAL_TEST_IMAGE", "hermes-test/debian:bookworm")
APP = "hermes-bench"


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


async def bench_pairs(iters: int, mb: int) -> dict[str, tuple[float, float]]:
    import modal

    from hermes_core import Runtime

    rt = Runtime()
    client = await modal.Client.from_credentials.aio(os.environ["MODAL_TOKEN_ID"], os.environ["MODAL_TOKEN_SECRET"])
    app = await modal.App.lookup.aio(APP, create_if_missing=True, client=client)
    image = modal.Image.from_registry(IMAGE)
    opts = {"image": IMAGE, "app_name": APP, "create_rate": 1000}
    times: dict[str, dict[str, list[float]]] = {k: {"hermes": [], "bare": []} for k in ("start", "exec", "roundtrip")}
    data = os.urandom(mb << 20)

    async def bare_create():
        return await modal.Sandbox.create.aio("sleep", "infinity", app=app, image=image, timeout=600,
                                              block_network=True, workdir="/workspace", client=client)

    async def bare_exec(sb, *argv: str, stdin: bytes | None = None) -> bytes:
        p = await sb.exec.aio(*argv, text=False)
        if stdin is not None:
            for i in range(0, len(stdin), 1 << 20):
                p.stdin.write(stdin[i : i + (1 << 20)])
                await p.stdin.drain.aio()
            p.stdin.write_eof()
            await p.stdin.drain.aio()
        out = await p.stdout.read.aio()
        await p.wait.aio()
        return out

    # warm up both paths (image build, app, connections)
    w = await rt.create_sandbox("modal", opts).start()
    await w.exec("true")
    await w.close()
    wb = await bare_create()
    await bare_exec(wb, "true")
    await wb.terminate.aio()

    for i in range(iters):
        order = ("hermes", "bare") if i % 2 == 0 else ("bare", "hermes")
        for side in order:
            t = time.perf_counter()
            if side == "hermes":
                sb = await rt.create_sandbox("modal", opts).start()
            else:
                sb = await bare_create()
            times["start"][side].append(time.perf_counter() - t)
            for _ in range(5):
                t = time.perf_counter()
                if side == "hermes":
                    await sb.exec("true")
                else:
                    await bare_exec(sb, "true")
                times["exec"][side].append(time.perf_counter() - t)
            t = time.perf_counter()
            if side == "hermes":
                await sb.write_bytes("rt.bin", data)
                back = await sb.read_bytes("rt.bin")
            else:
                await bare_exec(sb, "sh", "-c", "cat > /workspace/rt.bin", stdin=data)
                back = await bare_exec(sb, "cat", "/workspace/rt.bin")
            times["roundtrip"][side].append(time.perf_counter() - t)
            assert back == data, f"{side}: round trip corrupted"
            if side == "hermes":
                await sb.close()
            else:
                await sb.terminate.aio()
    await rt.aclose()
    await client.close.aio()
    return {k: (p50(v["hermes"]), p50(v["bare"])) for k, v in times.items()}


async def bench_rollouts(n: int, rate: float, fake) -> tuple[float, float, int, int]:
    from hermes_core import Runtime

    rt = Runtime()
    opts = {"image": IMAGE, "app_name": APP + "-rollouts", "create_rate": rate, "max_concurrent_creates": 64}
    warm = await rt.create_sandbox("modal", opts).start()  # connect + image outside the timed part
    await warm.close()
    await asyncio.sleep(1.0 / rate)  # the warm-up create used the first slot
    gate = asyncio.Semaphore(64)
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        async with gate:
            try:
                async with rt.rollout(backend="modal", options=opts) as ctx:
                    r = await ctx.sandbox.exec(f"echo {i}")
                    assert r.output == f"{i}\n", r.output
            except Exception as e:  # noqa: BLE001 - counted and reported
                failures += 1
                print(f"rollout {i} failed: {e}", file=sys.stderr)

    t = time.perf_counter()
    await one(-1)  # one rollout alone: its latency is the tail the last rollout adds to the floor
    single = time.perf_counter() - t
    await asyncio.sleep(1.0 / rate)
    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t
    await rt.aclose()
    # The first create starts at once, the others 1/rate apart; the last one then runs its rollout.
    floor = (n - 1) / rate + single
    return wall, floor, failures, single


async def bare_ceiling(n: int) -> float:
    """Rollouts per second the fake + engine sustain for bare SDK calls with no limiter at all:
    when this is below the create limit, no client can reach the limiter's floor."""
    import modal

    client = await modal.Client.from_credentials.aio(os.environ["MODAL_TOKEN_ID"], os.environ["MODAL_TOKEN_SECRET"])
    app = await modal.App.lookup.aio(APP + "-ceiling", create_if_missing=True, client=client)
    image = modal.Image.from_registry(IMAGE)
    gate = asyncio.Semaphore(64)

    async def one() -> None:
        async with gate:
            sb = await modal.Sandbox.create.aio("sleep", "infinity", app=app, image=image, timeout=600,
                                                block_network=True, client=client)
            p = await sb.exec.aio("echo", "x", text=False)
            await p.stdout.read.aio()
            await p.wait.aio()
            await sb.terminate.aio()

    await one()  # warm: image resolved, connection open
    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    rate = n / (time.perf_counter() - t)
    await client.close.aio()
    return rate


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--rollouts", type=int, default=None)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--mb", type=int, default=10)
    a = ap.parse_args()
    iters = a.iters or (2 if a.quick else 8)
    rollouts = a.rollouts if a.rollouts is not None else (15 if a.quick else 1000)

    from fake import start_fake

    fake = start_fake()
    os.environ.update(fake.env())
    try:
        pairs = await bench_pairs(iters, a.mb)
        print(f"modal backend vs bare modal SDK, same local gRPC fake, {iters} interleaved iterations (p50)")
        targets = {"start": 1.1, "exec": 1.2, "roundtrip": 1.5}
        names = {"start": "sandbox start", "exec": "exec p50", "roundtrip": f"{a.mb} MB round trip"}
        for k, (h, b) in pairs.items():
            print(f"  {names[k]:<18} hermes {h * 1000:8.1f} ms   bare {b * 1000:8.1f} ms   ratio {h / b:5.2f}x"
                  f"   (target <= {targets[k]}x)")
        if not rollouts:
            return
        ceiling = await bare_ceiling(max(10, rollouts // 5))
        print(f"  engine ceiling: bare SDK rollouts with no limiter sustain {ceiling:.2f}/s on this machine now")
        fake.set_faults(create_rate=a.rate * 1.2)  # the service's own limit, a little above ours
        wall, floor, failures, single = await bench_rollouts(rollouts, a.rate, fake)
        fake.set_faults()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (fake.stats()["running"] or fake_containers(fake.instance)):
            await asyncio.sleep(0.5)
        stats = fake.stats()
        left_containers = len(fake_containers(fake.instance))
        print(f"  {rollouts} rollouts at create limit {a.rate:g}/s: wall {wall:.1f} s, floor {floor:.1f} s "
              f"((N-1)/rate + one rollout alone, {single:.2f} s), "
              f"ratio {wall / floor if floor else float('nan'):.3f}x (target <= 1.10x); failures {failures}; "
              f"left: {stats['running']} sandboxes, {left_containers} containers; "
              f"service rate-limit rejections {stats['calls'].get('SandboxCreateV2.rate_limited', 0)}")
        best = max(floor, rollouts / ceiling)
        print(f"  vs the reachable floor max(limiter floor, N / engine ceiling) = {best:.1f} s: ratio {wall / best:.3f}x")
    finally:
        fake.stop()


def fake_containers(instance: str) -> list[str]:
    import subprocess

    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=hermes.fake-modal={instance}"],
                         capture_output=True, text=True, timeout=30).stdout
    return out.split()


if __name__ == "__main__":
    asyncio.run(main())
