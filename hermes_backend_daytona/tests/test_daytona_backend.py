"""Backend behaviour beyond the conformance suite: errors, retries, limits, lifetime, labels,
sweep — all through the real daytona SDK against the fake control plane."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from conftest import TEST_IMAGE

from hermes_core import Runtime
from hermes_core.errors import SandboxError

pytestmark = pytest.mark.docker

OPTS = {"image": TEST_IMAGE, "creates_per_second": 50, "retry_backoff": 0.05}


@pytest.fixture
async def runtime():
    rt = Runtime()
    yield rt
    await rt.aclose()


async def wait_gone(fake, box_id: str) -> None:
    for _ in range(100):  # the service deletes asynchronously, as Daytona does
        if box_id not in fake.boxes:
            return
        await asyncio.sleep(0.1)


def posts(fake, path: str = "/api/sandbox") -> int:
    return sum(1 for m, p in fake.requests if m == "POST" and p == path)


async def test_registering_imports_no_sdk():
    code = (
        "import sys, hermes_backend_daytona\n"
        "from hermes_core import Runtime\n"
        "rt = Runtime(); spec = rt.backends.get('daytona'); assert spec.name == 'daytona'\n"
        "bad = [m for m in sys.modules if m == 'daytona' or m.startswith(('daytona.', 'daytona_'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


async def test_labels_lifetime_and_no_host_secrets(fake, runtime, monkeypatch):
    monkeypatch.setenv("HERMES_TEST_SECRET_API_KEY", "s3cret")
    monkeypatch.setenv("HERMES_TEST_FORWARDED", "fwd")
    opts = {**OPTS, "pass_env": ["HERMES_TEST_FORWARDED"], "env": {"MINE": "1"}, "labels": {"team": "rl"},
            "max_lifetime": 3600}
    async with runtime.rollout(backend="daytona", options=opts) as ctx:
        sb = ctx.sandbox
        box = fake.boxes[sb.daytona_id]
        assert box.labels["hermes.backend"] == "daytona"
        assert box.labels["hermes.rollout"] == sb.sandbox_id and box.labels["team"] == "rl"
        assert box.labels["hermes.owner.pid"] == str(os.getpid())
        assert box.labels["hermes.owner.boot"] and box.labels["hermes.owner.host"] and box.labels["hermes.owner.start"]
        assert box.auto_stop == 30 and box.auto_delete == 0 and box.ttl == 60
        env = (await sb.exec("env")).output
        assert "MINE=1" in env and "HERMES_TEST_FORWARDED=fwd" in env
        assert "s3cret" not in env and "DAYTONA_API_KEY" not in env


async def test_reserved_labels_rejected(fake, runtime):
    with pytest.raises(Exception, match="reserved"):
        runtime.create_sandbox("daytona", {**OPTS, "labels": {"hermes.owner.pid": "1"}})


async def test_no_api_key_is_one_clear_line(fake, runtime, monkeypatch):
    monkeypatch.delenv("DAYTONA_API_KEY")
    from hermes_backend_daytona import DaytonaAuthError

    n = posts(fake)
    sb = runtime.create_sandbox("daytona", OPTS)
    with pytest.raises(DaytonaAuthError, match="set DAYTONA_API_KEY") as e:
        await sb.start()
    assert "\n" not in str(e.value)
    assert posts(fake) == n


async def test_wrong_api_key(fake, runtime, monkeypatch):
    monkeypatch.setenv("DAYTONA_API_KEY", "not-the-key")
    from hermes_backend_daytona import DaytonaAuthError

    with pytest.raises(DaytonaAuthError, match="rejected the API key"):
        await runtime.create_sandbox("daytona", OPTS).start()


async def test_offline_fails_within_seconds(runtime, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("DAYTONA_API_KEY", "k")
    from hermes_backend_daytona import DaytonaUnreachableError

    t0 = time.monotonic()
    with pytest.raises(DaytonaUnreachableError, match="cannot reach the Daytona API"):
        await runtime.create_sandbox("daytona", {**OPTS, "api_url": f"http://127.0.0.1:{port}/api"}).start()
    assert time.monotonic() - t0 < 15, "an unreachable API must fail fast, not after long SDK retries"


async def test_wrong_api_path_says_check_the_url(fake, runtime):
    from hermes_backend_daytona import DaytonaUnreachableError

    url = fake.api_url.removesuffix("/api") + "/wrong"
    with pytest.raises(DaytonaUnreachableError, match="API URL"):
        await runtime.create_sandbox("daytona", {**OPTS, "api_url": url}).start()


async def test_unknown_image_and_snapshot(fake, runtime):
    from hermes_backend_daytona import ImageNotFoundError

    before = fake.sandbox_count()
    sb = runtime.create_sandbox("daytona", {**OPTS, "image": "hermes-test/no-such-image:1"})
    with pytest.raises(ImageNotFoundError, match="no-such-image"):
        await sb.start()
    with pytest.raises(ImageNotFoundError, match="no-such-snapshot"):
        await runtime.create_sandbox("daytona", {"snapshot": "no-such-snapshot"}).start()
    for _ in range(50):  # the failed build's record is deleted, not left behind
        if fake.sandbox_count() == before:
            break
        await asyncio.sleep(0.1)
    assert fake.sandbox_count() == before


async def test_snapshot_sandbox(fake, runtime):
    async with runtime.rollout(backend="daytona", options={"snapshot": "daytona-default"}) as ctx:
        assert (await ctx.sandbox.exec("echo ok")).output == "ok\n"


async def test_quota_exhausted_is_not_retried(fake, runtime):
    from hermes_backend_daytona import QuotaExceededError

    fake.max_sandboxes = 0
    n = posts(fake)
    with pytest.raises(QuotaExceededError, match="quota"):
        await runtime.create_sandbox("daytona", OPTS).start()
    assert posts(fake) - n == 1


async def test_429_and_500_are_retried(fake, runtime):
    fake.inject(429, method="POST", path=r"^/api/sandbox$", count=2, retry_after="0")
    fake.inject(500, method="GET", path=r"^/api/sandbox/", count=1)
    n = posts(fake)
    async with runtime.rollout(backend="daytona", options=OPTS) as ctx:
        assert (await ctx.sandbox.exec("echo ok")).output == "ok\n"
    assert posts(fake) - n == 3


async def test_persistent_429_gives_up_with_advice(fake, runtime):
    from hermes_backend_daytona import RateLimitedError

    fake.inject(429, method="POST", path=r"^/api/sandbox$", count=100)
    with pytest.raises(RateLimitedError, match="creates_per_second"):
        await runtime.create_sandbox("daytona", {**OPTS, "retries": 2}).start()


async def test_lost_create_answer_is_not_a_second_sandbox(fake, runtime):
    fake.lose_create_answers = 1
    before = fake.created_total
    async with runtime.rollout(backend="daytona", options=OPTS) as ctx:
        assert (await ctx.sandbox.exec("echo ok")).output == "ok\n"
        assert fake.created_total - before == 1, "the retried create must find the first sandbox by its name"


async def test_exec_timeout_never_stops_the_sandbox(fake, runtime):
    async with runtime.rollout(backend="daytona", options=OPTS) as ctx:
        sb = ctx.sandbox
        r = await sb.exec("echo before; sleep 30", timeout=1)
        assert r.exit_code == 124 and r.timed_out and "before" in r.output
        assert fake.boxes[sb.daytona_id].state == "started"
        assert not any(p.endswith(("/stop", "/start")) for _, p in fake.requests)
        # A command longer than the daemon's 10 s default timeout still runs to completion.
        r = await sb.exec("sleep 11; echo slept")
        assert r.exit_code == 0 and r.output == "slept\n"


async def test_exec_without_timeout_outlasts_the_request_timeout(fake, runtime):
    async with runtime.rollout(backend="daytona", options={**OPTS, "request_timeout": 2}) as ctx:
        r = await ctx.sandbox.exec("sleep 4; echo done")
        assert r.exit_code == 0 and r.output == "done\n"


async def test_output_is_bounded(fake, runtime):
    async with runtime.rollout(backend="daytona", options={**OPTS, "max_output": 4096}) as ctx:
        r = await ctx.sandbox.exec("head -c 100000 /dev/zero | tr '\\0' a; echo; echo END")
        assert r.exit_code == 0
        assert 4096 <= len(r.output) < 4096 + 200
        assert "bytes of output omitted" in r.output and r.output.endswith("END\n")


async def test_deleted_from_outside(fake, runtime):
    from hermes_backend_daytona import SandboxGoneError

    sb = await runtime.create_sandbox("daytona", OPTS).start()
    fake.vanish(sb.daytona_id)
    with pytest.raises(SandboxGoneError, match="deleted outside hermes"):
        await sb.exec("true")
    with pytest.raises(SandboxGoneError):
        await sb.write_bytes("x", b"y")
    await sb.close()  # cleanup still succeeds
    assert fake.sandbox_count() == 0 or all(b.name != sb.name for b in fake.boxes.values())


async def test_auto_stop_reaps_an_abandoned_sandbox(fake, runtime):
    """Provider-side lifetime: with no API activity the fake stops it, and auto-delete 0 removes it."""
    from hermes_backend_daytona import SandboxGoneError

    old = fake.minute
    fake.minute = 0.5
    try:
        sb = await runtime.create_sandbox("daytona", {**OPTS, "auto_stop_minutes": 2}).start()
        box_id = sb.daytona_id
        for _ in range(100):
            if box_id not in fake.boxes:
                break
            await asyncio.sleep(0.1)
        assert box_id not in fake.boxes, "the abandoned sandbox should be stopped and deleted by the service"
        with pytest.raises(SandboxGoneError):
            await sb.exec("true")
        await sb.close()
    finally:
        fake.minute = old


async def test_close_racing_a_slow_create_still_deletes(fake, runtime):
    fake.slow_create = 1.5
    sb = runtime.create_sandbox("daytona", OPTS)
    task = asyncio.ensure_future(sb.start())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sb.close()
    for _ in range(100):
        if all(b.name != sb.name for b in fake.boxes.values()):
            break
        await asyncio.sleep(0.1)
    assert all(b.name != sb.name for b in fake.boxes.values())


async def test_create_concurrency_is_bounded(fake, runtime):
    fake.slow_create = 0.5
    fake.creating_max = 0
    opts = {**OPTS, "max_concurrent_creates": 2}
    boxes = [runtime.create_sandbox("daytona", opts) for _ in range(5)]
    try:
        await asyncio.gather(*(b.start() for b in boxes))
        assert 1 <= fake.creating_max <= 2
    finally:
        await asyncio.gather(*(b.close() for b in boxes))


async def test_spawn_output_bound_and_session_cleanup(fake, runtime):
    async with runtime.rollout(backend="daytona", options=OPTS) as ctx:
        sb = ctx.sandbox
        proc = await sb.spawn("echo hi; exit 2")
        assert await proc.wait(20) == 2
        box = fake.boxes[sb.daytona_id]
        for _ in range(50):  # a finished process's session is deleted
            if not box.sessions:
                break
            await asyncio.sleep(0.1)
        assert not box.sessions
        with pytest.raises(SandboxError, match="PTY"):
            await sb.spawn("true", pty=True)


async def test_sweep_removes_only_dead_owners(fake, runtime, tmp_path):
    from daytona import AsyncDaytona, CreateSandboxFromImageParams

    from hermes_backend_daytona import sweep
    from hermes_backend_daytona._owner import owner_labels

    dead = subprocess.Popen(["true"])
    dead.wait()
    labels = {**owner_labels(), "hermes.backend": "daytona", "hermes.rollout": "dead-one",
              "hermes.owner.pid": str(dead.pid), "hermes.created": str(int(time.time()) - 7200)}
    other_host = {**labels, "hermes.rollout": "other-host", "hermes.owner.host": "some-other-host"}
    async with AsyncDaytona() as client:
        a = await client.create(CreateSandboxFromImageParams(image=TEST_IMAGE, labels=labels))
        b = await client.create(CreateSandboxFromImageParams(image=TEST_IMAGE, labels=other_host))
    live = await runtime.create_sandbox("daytona", OPTS).start()
    try:
        removed = await sweep(0)
        assert len(removed) == 1 and "dead-one" in removed[0]
        await wait_gone(fake, a.id)
        ids = set(fake.boxes)
        assert a.id not in ids and b.id in ids and live.daytona_id in ids
        assert (await live.exec("echo alive")).output == "alive\n"
        env = {**os.environ}
        r = subprocess.run([sys.executable, "-m", "hermes_core.cli", "sandbox", "sweep", "--backend", "daytona",
                            "--older-than", "0s"], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        assert "swept 0" in r.stdout and live.daytona_id in fake.boxes
    finally:
        await live.close()
        fake.vanish(b.id)
