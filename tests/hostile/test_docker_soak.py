"""Docker at scale, in one driver process: N concurrent rollouts through the Runner all get a
reward, and N hostile rollouts (floods, a sparse terabyte, SIGTERM-ignoring sleepers, setsid
double-forked daemons, a link to / where the verifier downloads, never-ending commands,
cancellation, a raising verifier) all finish under explicit timeouts. Afterwards the engine holds
no container, volume or network of the run, no host process belongs to one of its containers,
and the driver's RSS, fds and threads stayed within stated bounds.

CI runs reduced counts; the full ones by hand (engine from scripts/docker-env.sh):
    HERMES_SOAK_DOCKER=256 python -m pytest tests/hostile/test_docker_soak.py -m soak -k concurrent -s
    HERMES_SOAK_DOCKER_HOSTILE=200 python -m pytest tests/hostile/test_docker_soak.py -m soak -k leaves_nothing -s
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time

import pytest
from hermes_core import Environment, Runner, Runtime, TaskItem, hookimpl

from tests.hostile._soak import (
    HOSTILE,
    Peak,
    hostile_rollout,
    open_fds,
    procs_of_containers,
    procs_tagged,
    rss_mb,
    wait_until,
)

pytestmark = [pytest.mark.soak, pytest.mark.docker]

IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
OPTIONS = {"image": IMAGE, "pull": "never"}
SCALE = int(os.environ.get("HERMES_SOAK_DOCKER", "24"))
HOSTILE_COUNT = int(os.environ.get("HERMES_SOAK_DOCKER_HOSTILE", "26"))
#: Hostile rollouts at once (floods and terabyte files on 64 containers at once already keep a
#: 2-core engine saturated).
HOSTILE_AT_ONCE = int(os.environ.get("HERMES_SOAK_DOCKER_HOSTILE_AT_ONCE", "32"))

# Bounds on the driver, per concurrent rollout on top of a fixed allowance. Measured at 256 on
# 2 cores: peak RSS +65 MiB, ~8.5 fds and ~2.3 threads per rollout.
RSS_MB_PER_ROLLOUT, RSS_MB_FIXED = 1.0, 96
FDS_PER_ROLLOUT, FDS_FIXED = 16, 64
THREADS_PER_ROLLOUT, THREADS_FIXED = 4, 32

DOCKER_KINDS = ["ok", "raise", "cancel", "timeout", "flood", "huge_file", "sigterm_sleepers", "double_fork",
                "env_i_setsid", "symlink_root", "background_job", "fifo", "daemon"]


@pytest.fixture
def engine():
    """A low-level client of the engine at $DOCKER_HOST; skips without one (fails instead with
    HERMES_REQUIRE_DOCKER=1, as the docker suite does: a broken engine must not turn CI green)."""
    pytest.importorskip("hermes_backend_docker")
    import docker

    problem = None
    if not os.environ.get("DOCKER_HOST"):
        problem = "DOCKER_HOST is not set (start an engine: scripts/docker-env.sh start)"
    else:
        try:
            api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)
            api.inspect_image(IMAGE)
        except Exception as e:  # noqa: BLE001 - reported as the reason
            problem = f"no engine with {IMAGE} at DOCKER_HOST={os.environ['DOCKER_HOST']}: {e}"
    if problem:
        if os.environ.get("HERMES_REQUIRE_DOCKER") == "1":
            pytest.fail(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    yield api
    api.close()


def _engine_state(api) -> tuple[set[str], set[str]]:
    return ({v["Name"] for v in api.volumes().get("Volumes") or []}, {n["Id"] for n in api.networks()})


async def _assert_nothing_left(api, rt: Runtime, containers: set[str], before: tuple[set[str], set[str]],
                               tag: str | None = None) -> None:
    """Nothing of ``rt``'s run remains: no container (asked by label), no new volume or
    network, no host process in or of one of its containers, no tagged process."""
    label = {"label": f"hermes.runtime={rt.id}"}
    left = await wait_until(lambda: api.containers(all=True, filters=label), 30)
    assert left == [], f"{len(left)} containers of the run remain: {[c['Names'] for c in left[:5]]}"
    volumes, networks = _engine_state(api)
    assert volumes - before[0] == set(), "volumes left by the run"
    assert networks - before[1] == set(), "networks left by the run"
    assert api.volumes(filters=label).get("Volumes") in (None, [])
    assert api.networks(filters=label) == []
    # The engine's shims exit a moment after their container is gone.
    procs = await wait_until(lambda: procs_of_containers(containers), 30)
    assert procs == {}, f"host processes of the run's containers remain: {procs}"
    if tag is not None:
        tagged = await wait_until(lambda: procs_tagged(tag), 10)
        assert tagged == [], f"{len(tagged)} tagged sandbox processes survived"


def _check_driver(peak: Peak, n: int, base_rss: float, base_fds: int, base_threads: int) -> None:
    """Both sides of each bound: the gauges saw the run (above the baseline), and stayed under
    the stated per-rollout bound."""
    assert peak.samples > 0
    rss_bound = base_rss + RSS_MB_FIXED + RSS_MB_PER_ROLLOUT * n
    assert base_rss < peak.rss <= rss_bound, f"driver peak RSS {peak.rss:.0f} MiB (bound {rss_bound:.0f})"
    fds_bound = base_fds + FDS_FIXED + FDS_PER_ROLLOUT * n
    assert base_fds + n <= peak.fds <= fds_bound, f"driver peak fds {peak.fds} (bound {fds_bound})"
    threads_bound = base_threads + THREADS_FIXED + THREADS_PER_ROLLOUT * n
    assert base_threads < peak.threads <= threads_bound, f"driver peak threads {peak.threads} (bound {threads_bound})"


def _new_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before`` that still run (idle workers of asyncio's default
    executor, which the test's own /proc scans use, are not the backend's)."""
    return [t.name for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio_")]


class _PoolWarnings(logging.Handler):
    """urllib3's "Connection pool is full" warnings: a client shared by more threads than its
    pool holds (the SDK then opens and drops a connection per call)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "pool is full" in record.getMessage().lower():
            self.seen.append(record.getMessage())


@pytest.fixture
def pool_warnings():
    handler = _PoolWarnings()
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


# --------------------------------------------------------------------------- N at once, Runner


class ScaleEnv(Environment):
    verifier = "docker-scale"

    async def load_tasks(self) -> list[TaskItem]:
        return [TaskItem(id=f"t{i}", prompt="p", solution=f"echo ok-{i} > done.txt") for i in range(self.config.limit or 1)]


def _plugin(seen: set[str]):
    async def verify(item, result, ctx) -> float:
        seen.add(ctx.sandbox.container_id)
        got = await ctx.read_file("done.txt")
        if got.get("content", "").strip().endswith(f"ok-{item.id[1:]}"):
            return 1.0
        # What it saw goes into the record (verifier_error), not just a reward of 0.
        listing = await ctx.terminal("ls -la; cat done.txt", timeout=60)
        raise AssertionError(f"read_file gave {got!r}; in the sandbox: {listing!r}")

    class Plugin:
        @staticmethod
        @hookimpl
        def hermes_register_environments(registry):
            registry.register("docker-scale", ScaleEnv)

        @staticmethod
        @hookimpl
        def hermes_register_verifiers(registry):
            registry.register("docker-scale", verify)

    return Plugin


@pytest.mark.parametrize("n", [SCALE])
async def test_n_concurrent_docker_rollouts_complete(engine, pool_warnings, n):
    before = _engine_state(engine)
    containers: set[str] = set()
    rt = Runtime(plugins=[_plugin(containers)])
    env = ScaleEnv.from_config({"limit": n, "toolsets": ["terminal"], "timeout": 600, "verifier_timeout": 300})
    items = await env.tasks()
    runner = Runner(rt, rt.agents.get("oracle").factory(), environment=env, backend="docker",
                    backend_options=OPTIONS, concurrency=n)
    gc.collect()
    base_rss, base_fds, base_threads = rss_mb(), open_fds(), threading.active_count()
    threads_before = set(threading.enumerate())
    t0 = time.perf_counter()
    try:
        with Peak() as peak:
            async with asyncio.timeout(120 + 4 * n):
                report = await runner.run(items)
    finally:
        await rt.aclose()
    wall = time.perf_counter() - t0
    print(f"\n{n} concurrent docker rollouts: wall {wall:.1f} s, driver peak RSS {peak.rss:.0f} MiB "
          f"(from {base_rss:.0f}), peak fds {peak.fds} (from {base_fds}), peak threads {peak.threads}")
    # Leftovers first: a run whose rollouts failed must not hide what it left on the engine.
    await _assert_nothing_left(engine, rt, containers, before)
    bad = [r for r in report.records if r["reward"] != 1.0 or r["error"]]
    assert len(report.records) == n and not bad, f"{len(bad)} of {n} rollouts failed, e.g. {bad[:2]}"
    assert len(containers) == n  # one container each
    _check_driver(peak, n, base_rss, base_fds, base_threads)
    assert pool_warnings.seen == []
    # The driver lets go too: reader threads end and sockets close with their sandboxes.
    assert await wait_until(lambda: _new_threads(threads_before), 15) == []
    assert open_fds() <= base_fds + 8


# --------------------------------------------------------------------------- hostile soak


@pytest.mark.parametrize("count", [HOSTILE_COUNT])
async def test_hostile_docker_soak_leaves_nothing(engine, pool_warnings, tmp_path, count):
    before = _engine_state(engine)
    rt = Runtime()
    tag = f"hermes-dsoak-{os.getpid()}"
    containers: set[str] = set()
    gate = asyncio.Semaphore(HOSTILE_AT_ONCE)
    at_once = min(count, HOSTILE_AT_ONCE)

    async def one(i: int) -> str:
        kind = DOCKER_KINDS[i % len(DOCKER_KINDS)]
        work = tmp_path / f"r{i}"
        work.mkdir()
        async with gate:
            return await hostile_rollout(rt, kind, f"{tag}-r{i}-", work, limit=300, require_started=True,
                                         on_start=lambda ctx: containers.add(ctx.sandbox.container_id),
                                         backend="docker", options=OPTIONS)

    assert set(DOCKER_KINDS) <= set(HOSTILE)
    gc.collect()
    base_rss, base_fds, base_threads = rss_mb(), open_fds(), threading.active_count()
    threads_before = set(threading.enumerate())
    t0 = time.perf_counter()
    try:
        with Peak() as peak:
            async with asyncio.timeout(300 + 6 * count):
                kinds = await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await rt.aclose()
    wall = time.perf_counter() - t0
    print(f"\n{count} hostile docker rollouts ({at_once} at once): wall {wall:.1f} s, driver peak RSS "
          f"{peak.rss:.0f} MiB (from {base_rss:.0f}), peak fds {peak.fds} (from {base_fds}), "
          f"peak threads {peak.threads}")
    await _assert_nothing_left(engine, rt, containers, before, tag=tag)
    assert sorted(set(kinds)) == sorted(set(DOCKER_KINDS[:count]))
    # (a rollout cancelled while its sandbox starts has no container to record)
    assert len(containers) >= count - (count // len(DOCKER_KINDS) + 1)
    _check_driver(peak, at_once, base_rss, base_fds, base_threads)
    assert pool_warnings.seen == []
    assert await wait_until(lambda: _new_threads(threads_before), 15) == []
