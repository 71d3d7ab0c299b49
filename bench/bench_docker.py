"""Docker backend benchmark: hermes against the bare ``docker`` SDK, in the same run.

Measures sandbox start, one-shot exec p50 and a 10 MB round trip (write + read back), each
next to the equivalent bare low-level SDK calls, interleaved so both see the same engine state.
Targets (issue 5): start <= 1.1x, exec <= 1.2x, transfer <= 1.5x of the bare SDK.

Needs an engine at $DOCKER_HOST and the test image:
    scripts/docker-env.sh start && scripts/docker-env.sh image
    DOCKER_HOST=unix:///tmp/hermes-dockerd.sock python bench/bench_docker.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tarfile
import time

IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
LABELS = {"hermes.backend": "docker", "hermes.rollout": "bench"}


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def row(name: str, ours: list[float], bare: list[float], target: float) -> None:
    a, b = p50(ours), p50(bare)
    ratio = a / b
    flag = "ok" if ratio <= target else "OVER"
    print(
        f"{name:<28} hermes {a * 1000:8.1f} ms   bare SDK {b * 1000:8.1f} ms   ratio {ratio:5.2f}x  (target <= {target}x, {flag})"
    )


def bare_start(api) -> str:
    host_config = api.create_host_config(network_mode="none", init=True, auto_remove=True)
    c = api.create_container(
        IMAGE,
        command=["3600"],
        entrypoint=["sleep"],
        labels=LABELS,
        working_dir="/workspace",
        host_config=host_config,
        detach=True,
    )
    api.start(c["Id"])
    return c["Id"]


def bare_exec(api, cid: str) -> int:
    e = api.exec_create(cid, ["true"])
    api.exec_start(e["Id"])
    return api.exec_inspect(e["Id"])["ExitCode"]


def bare_round_trip(api, cid: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    api.put_archive(cid, "/workspace", buf.getvalue())
    chunks, _ = api.get_archive(cid, "/workspace/blob.bin")
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        return tar.extractfile(member).read()


async def main(quick: bool) -> None:
    from hermes_backend_docker import DockerOptions, DockerSandbox
    from hermes_backend_docker._engine import connect

    n_start, n_exec, n_xfer = (5, 30, 5) if quick else (15, 200, 15)
    opts = DockerOptions(image=IMAGE, pull="never")
    api = connect()
    print(f"engine {api.version()['Version']} (API {api.api_version}), image {IMAGE}, 10 MB = 10 MiB random bytes")

    # --- start (container create + start; removal not timed) ---------------------------------
    ours, bare = [], []
    for i in range(n_start):
        t = time.perf_counter()
        sb = DockerSandbox(opts, sandbox_id=f"bench-{i}", labels=LABELS)
        await sb.start()
        ours.append(time.perf_counter() - t)
        await sb.close()
        t = time.perf_counter()
        cid = await asyncio.to_thread(bare_start, api)
        bare.append(time.perf_counter() - t)
        await asyncio.to_thread(api.remove_container, cid, force=True)
    row("sandbox start", ours, bare, 1.1)

    sb = await DockerSandbox(opts, sandbox_id="bench-exec", labels=LABELS).start()
    cid = await asyncio.to_thread(bare_start, api)
    try:
        # --- exec ----------------------------------------------------------------------------
        for _ in range(5):  # warm both paths (connection pools, page cache)
            await sb.exec(["true"])
            await asyncio.to_thread(bare_exec, api, cid)
        ours, bare, ours_t, shell = [], [], [], []
        for _ in range(n_exec):
            t = time.perf_counter()
            r = await sb.exec(["true"])
            ours.append(time.perf_counter() - t)
            assert r.exit_code == 0
            t = time.perf_counter()
            await sb.exec(["true"], timeout=30)
            ours_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            await asyncio.to_thread(bare_exec, api, cid)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            await sb.shell("true")
            shell.append(time.perf_counter() - t)
        row("exec p50 (argv)", ours, bare, 1.2)
        row("exec p50 (with timeout)", ours_t, bare, 1.2)
        row("stateful shell command p50", shell, bare, 1.2)

        # --- 10 MB round trip ----------------------------------------------------------------
        data = os.urandom(10 << 20)
        ours, bare = [], []
        for _ in range(n_xfer):
            t = time.perf_counter()
            await sb.write_bytes("blob.bin", data)
            back = await sb.read_bytes("blob.bin")
            ours.append(time.perf_counter() - t)
            assert back == data
            t = time.perf_counter()
            back = await asyncio.to_thread(bare_round_trip, api, cid, data)
            bare.append(time.perf_counter() - t)
            assert back == data
        row("10 MB round trip", ours, bare, 1.5)
    finally:
        await sb.close()
        await asyncio.to_thread(api.remove_container, cid, force=True)
        api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    asyncio.run(main(parser.parse_args().quick))
