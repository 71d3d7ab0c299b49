"""Singularity backend benchmark: hermes against the bare CLI calls, in the same run.

Measures sandbox start + close, a one-shot exec p50, a stateful-shell command p50 and a 10 MB
round trip (write + read back), each next to the bare ``apptainer`` command lines the backend
runs (``subprocess.run`` of ``instance start``/``stop``, ``exec instance://NAME ...``, and
``exec`` with the bytes on stdin/stdout), interleaved so both see the same machine state.
Ratios only: there is no apptainer here, so this measures the backend's own overhead on top of
whatever CLI is used (by default the test shim, whose start-up dominates).

    DOCKER_HOST=unix:///tmp/hermes-dockerd.sock python bench/bench_singularity.py [--quick] [--binary apptainer]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIM = str(ROOT / "hermes_backend_singularity" / "tests" / "shim" / "apptainer")
IMAGE = "docker://" + os.environ.get("HERMES_APPTAINER_TEST_IMAGE", "hermes-test/debian:bookworm")


def row(name: str, ours: list[float], bare: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(bare)
    print(f"{name:<30} hermes {a * 1000:8.1f} ms   bare CLI {b * 1000:8.1f} ms   ratio {a / b:5.2f}x")


def bare(argv: list[str], stdin: bytes | None = None) -> bytes:
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=600, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


async def main(quick: bool, binary: str) -> None:
    from hermes_backend_singularity import SingularityOptions, SingularitySandbox
    from hermes_backend_singularity._owner import instance_name

    n_start, n_exec, n_xfer = (3, 15, 3) if quick else (10, 100, 10)
    opts = SingularityOptions(binary=binary, image=IMAGE, writable="tmpfs", workdir="/tmp")
    print(f"binary {binary}, image {IMAGE}, writable=tmpfs (bare: the same flags)")
    start_flags = ["--containall", "--no-home", "--writable-tmpfs", "--net", "--network", "none"]

    # warm-up (image conversion / unpacking happens once)
    async with SingularitySandbox(opts, sandbox_id="warm") as sb:
        await sb.exec(["true"])

    ours, base = [], []
    for i in range(n_start):
        t = time.perf_counter()
        sb = await SingularitySandbox(opts, sandbox_id=f"bench-{i}").start()
        await sb.close()
        ours.append(time.perf_counter() - t)
        name = instance_name("hermesbench")
        t = time.perf_counter()
        await asyncio.to_thread(bare, [binary, "instance", "start", *start_flags, IMAGE, name])
        await asyncio.to_thread(bare, [binary, "exec", "--cleanenv", "--pwd", "/", f"instance://{name}", "mkdir", "-p", "/tmp"])
        await asyncio.to_thread(bare, [binary, "instance", "stop", "--force", name])
        base.append(time.perf_counter() - t)
    row("start + close", ours, base)

    sb = await SingularitySandbox(opts, sandbox_id="bench").start()
    try:
        target = f"instance://{sb.instance_name}"
        ours, base, shell = [], [], []
        await sb.shell("true")
        for _ in range(n_exec):
            t = time.perf_counter()
            await sb.exec(["true"])
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            await asyncio.to_thread(bare, [binary, "exec", "--cleanenv", "--pwd", "/tmp", target, "true"])
            base.append(time.perf_counter() - t)
            t = time.perf_counter()
            await sb.shell("true")
            shell.append(time.perf_counter() - t)
        row("exec true (p50)", ours, base)
        row("stateful shell true (p50)", shell, base)

        data = os.urandom(10 << 20)
        ours, base = [], []
        for _ in range(n_xfer):
            t = time.perf_counter()
            await sb.write_bytes("blob.bin", data)
            assert await sb.read_bytes("blob.bin") == data
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            await asyncio.to_thread(bare, [binary, "exec", "--cleanenv", target, "sh", "-c", "cat > /tmp/bare.bin"], data)
            got = await asyncio.to_thread(bare, [binary, "exec", "--cleanenv", target, "cat", "/tmp/bare.bin"])
            assert got == data
            base.append(time.perf_counter() - t)
        row("10 MB write + read back", ours, base)
    finally:
        await sb.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    ap.add_argument("--binary", default=SHIM, help="the CLI (default: the test shim)")
    args = ap.parse_args()
    if args.binary == SHIM and os.geteuid() != 0:
        sys.exit("the test shim needs root")
    asyncio.run(main(args.quick, args.binary))
