"""Sandbox start from a built (cached) image vs a bare ``docker run`` of that image.

What a benchmark-environment rollout pays before the agent starts: the docker backend hashes
the task's build context, finds the image already built, creates and starts the container, runs
one command and removes the container. Baselines, measured in the same run and interleaved:

- ``docker run --rm IMAGE true`` with the docker CLI (what the issue names as the floor);
- the same through the ``docker`` SDK's low-level API (create, start, exec ``true``, remove),
  i.e. the engine calls the backend makes, without hermes around them.

    DOCKER_HOST=unix:///tmp/hermes-dockerd.sock python bench/bench_benchmarks.py [--quick] [-n N]
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
import uuid
from pathlib import Path

IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")


def bare_cli(image: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    return time.perf_counter() - t0


def bare_sdk(api, image: str) -> float:
    t0 = time.perf_counter()
    c = api.create_container(image, command=["3600"], entrypoint=["sleep"], labels={"bench": "benchmarks"},
                             host_config=api.create_host_config(network_mode="none", init=True, auto_remove=True))
    api.start(c["Id"])
    e = api.exec_create(c["Id"], ["true"])
    api.exec_start(e["Id"])
    api.remove_container(c["Id"], force=True)
    return time.perf_counter() - t0


async def hermes(rt, options: dict) -> tuple[float, bool, str]:
    t0 = time.perf_counter()
    sb = rt.create_sandbox("docker", options)
    await sb.start()
    r = await sb.exec("true")
    assert r.exit_code == 0
    await sb.close()
    return time.perf_counter() - t0, sb.built_image, sb.image


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    p.add_argument("-n", type=int, default=None, help="iterations per variant (default 15, --quick 3)")
    args = p.parse_args()
    n = args.n or (3 if args.quick else 15)
    if not os.environ.get("DOCKER_HOST"):
        print("DOCKER_HOST is not set (start an engine: scripts/docker-env.sh start)", file=sys.stderr)
        return 2
    import docker

    from hermes_core import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="bench-benchmarks-"))
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=120)
    built_tag = None
    try:
        ctx = tmp / "task" / "environment"
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(f"FROM ubuntu:24.04\nLABEL bench.nonce={uuid.uuid4().hex}\nWORKDIR /app\n")
        (ctx / "data.txt").write_text("x" * 4096)
        options = {"build": {"context": str(ctx)}, "image_map": {"ubuntu:24.04": IMAGE}, "workdir": None,
                   "labels": {"bench": "benchmarks"}}
        async with Runtime() as rt:
            first, built, built_tag = await hermes(rt, options)
            print(f"first start (builds the image): {first:.2f}s built={built}; image {built_tag}")
            bare_cli(built_tag), bare_sdk(api, built_tag)  # warm-up
            t_cli, t_sdk, t_hermes, rebuilt = [], [], [], 0
            for i in range(n):
                order = ("cli", "sdk", "hermes") if i % 2 == 0 else ("hermes", "sdk", "cli")
                for what in order:
                    if what == "cli":
                        t_cli.append(bare_cli(built_tag))
                    elif what == "sdk":
                        t_sdk.append(await asyncio.to_thread(bare_sdk, api, built_tag))
                    else:
                        t, b, _ = await hermes(rt, options)
                        t_hermes.append(t)
                        rebuilt += b
        med = statistics.median
        print(f"iterations: {n} (interleaved)")
        print(f"bare `docker run --rm` (CLI)     median {med(t_cli) * 1000:7.1f} ms")
        print(f"bare SDK create+start+exec+rm    median {med(t_sdk) * 1000:7.1f} ms")
        print(f"hermes start (cached build)+exec+close  median {med(t_hermes) * 1000:7.1f} ms   rebuilt: {rebuilt}")
        print(f"ratio hermes / docker run        {med(t_hermes) / med(t_cli):.2f}x  (target <= 1.10x)")
        print(f"ratio hermes / bare SDK          {med(t_hermes) / med(t_sdk):.2f}x")
        return 1 if rebuilt else 0
    finally:
        if built_tag:
            try:
                api.remove_image(built_tag, force=True)
            except Exception:  # noqa: BLE001
                pass
        api.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
