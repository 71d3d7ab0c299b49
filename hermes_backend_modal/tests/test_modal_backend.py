"""The modal backend beyond the conformance suite: tags, lifetime, faults, limits, sweep, images,
errors. Everything runs the real modal SDK against the local gRPC fake."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from conftest import TEST_IMAGE

from hermes_core import Runtime
from hermes_core.errors import ConfigError, SandboxError

pytestmark = pytest.mark.modal_fake

OPTS = {"image": TEST_IMAGE, "app_name": "hermes-backend-tests"}


@pytest.fixture
async def runtime(modal_fake):
    rt = Runtime()
    yield rt
    await rt.aclose()


async def _modal_sandbox(modal_id: str):
    import modal

    return await modal.Sandbox.from_id.aio(modal_id)


async def test_tags_record_rollout_and_owner(runtime):
    sb = await runtime.create_sandbox("modal", {**OPTS, "tags": {"team": "rl"}}, task_id="rollout-7").start()
    try:
        tags = await (await _modal_sandbox(sb.modal_id)).get_tags.aio()
        assert tags["hermes.rollout"] == "rollout-7"
        assert tags["hermes.runtime"] == runtime.id
        assert tags["hermes.backend"] == "modal" and tags["team"] == "rl"
        assert tags["hermes.owner.pid"] == str(os.getpid())
        assert tags["hermes.owner.host"] == socket.gethostname()
        with open("/proc/sys/kernel/random/boot_id") as f:
            assert tags["hermes.owner.boot"] == f.read().strip()
        assert tags["hermes.owner.start"].isdigit()
    finally:
        await sb.close()


async def test_timeout_returns_output_so_far_and_sandbox_stays_usable(runtime):
    async with runtime.rollout(backend="modal", options=OPTS) as ctx:
        r = await ctx.sandbox.exec("echo before; sleep 30; echo after", timeout=1.5)
        assert r.exit_code == 124 and r.timed_out
        assert r.output.startswith("before\n") and "\nafter\n" not in r.output
        r = await ctx.sandbox.exec("echo again")
        assert (r.exit_code, r.output) == (0, "again\n")


async def test_lifetime_timeout_ends_an_abandoned_sandbox(runtime, fake_state):
    import modal

    sb = await runtime.create_sandbox("modal", {**OPTS, "timeout": 2}).start()
    handle = await _modal_sandbox(sb.modal_id)
    with pytest.raises(modal.exception.SandboxTimeoutError):
        async with asyncio.timeout(30):
            await handle.wait.aio()
    assert await handle.poll.aio() == 124  # Modal's code for a sandbox that hit its timeout
    from hermes_backend_modal import SandboxGoneError

    with pytest.raises(SandboxGoneError):
        await sb.exec("true")
    await sb.close()  # still fine


async def test_sandbox_killed_from_outside_reads_as_gone(runtime, faults):
    from hermes_backend_modal import SandboxGoneError

    faults(exit_every=1, exit_after_s=0.3)
    sb = await runtime.create_sandbox("modal", OPTS).start()
    faults()
    handle = await _modal_sandbox(sb.modal_id)
    async with asyncio.timeout(30):
        await handle.wait.aio(raise_on_termination=False)
    with pytest.raises(SandboxGoneError, match="has ended"):
        await sb.exec("true")
    await sb.close()


async def test_transient_create_errors_are_retried(runtime, faults, modal_fake):
    faults(unavailable_every=2)  # every other create fails; the SDK and the backend retry
    boxes = await asyncio.gather(*(runtime.create_sandbox("modal", OPTS).start() for _ in range(3)))
    faults()
    try:
        outs = [(await b.exec("echo ok")).output for b in boxes]
        assert outs == ["ok\n"] * 3
    finally:
        await asyncio.gather(*(b.close() for b in boxes))


async def test_lost_create_answer_leaks_nothing(runtime, faults, modal_fake):
    """The service made the sandbox but the answer was lost: the retry must not leave it running."""
    import modal

    faults(lost_create_every=1)
    sb = runtime.create_sandbox("modal", {**OPTS, "create_retries": 1})
    with pytest.raises(SandboxError, match="retries exhausted"):
        await sb.start()
    faults()
    app = await modal.App.lookup.aio(OPTS["app_name"])
    left = [s async for s in modal.Sandbox.list.aio(app_id=app.app_id, tags={"hermes.sandbox": sb.sandbox_id})]
    assert left == [], "a create whose answer was lost left its sandbox running"
    assert modal_fake.stats()["calls"].get("SandboxCreateV2.lost", 0) >= 2


async def test_permanent_create_failure_says_so(runtime, faults):
    faults(unavailable_every=1)
    sb = runtime.create_sandbox("modal", {**OPTS, "create_retries": 1})
    with pytest.raises(SandboxError, match=r"after 2 attempt\(s\) \(transient error, retries exhausted\)"):
        await sb.start()


async def test_rate_limited_creates_wait_and_succeed(runtime, faults, modal_fake):
    before = modal_fake.stats()["calls"].get("SandboxCreateV2.rate_limited", 0)
    faults(create_rate=3)
    opts = {**OPTS, "create_rate": 100}  # our limiter off: the service's limit is what bites
    boxes = await asyncio.gather(*(runtime.create_sandbox("modal", opts).start() for _ in range(4)))
    faults()
    await asyncio.gather(*(b.close() for b in boxes))
    assert modal_fake.stats()["calls"].get("SandboxCreateV2.rate_limited", 0) > before


async def test_create_limiter_keeps_under_the_service_limit(runtime, faults, modal_fake):
    before = modal_fake.stats()["calls"].get("SandboxCreateV2.rate_limited", 0)
    faults(create_rate=4)
    opts = {**OPTS, "create_rate": 3, "app_name": "hermes-limiter-test"}
    boxes = await asyncio.gather(*(runtime.create_sandbox("modal", opts).start() for _ in range(5)))
    faults()
    await asyncio.gather(*(b.close() for b in boxes))
    assert modal_fake.stats()["calls"].get("SandboxCreateV2.rate_limited", 0) == before


async def test_network_blocked_by_default(runtime):
    async with runtime.rollout(backend="modal", options=OPTS) as ctx:
        assert (await ctx.sandbox.exec("ls /sys/class/net")).output.split() == ["lo"]
    async with runtime.rollout(backend="modal", options={**OPTS, "block_network": False}) as ctx:
        assert len((await ctx.sandbox.exec("ls /sys/class/net")).output.split()) > 1


async def test_host_secrets_stay_on_the_host_unless_named(runtime, monkeypatch):
    monkeypatch.setenv("HERMES_TEST_API_KEY", "sk-secret")
    async with runtime.rollout(backend="modal", options={**OPTS, "env": {"PLAIN": "1"}}) as ctx:
        out = (await ctx.sandbox.exec("env")).output
        assert "sk-secret" not in out and "PLAIN=1" in out
        assert "MODAL_TOKEN" not in out
    async with runtime.rollout(backend="modal", options={**OPTS, "pass_env": ["HERMES_TEST_API_KEY"]}) as ctx:
        assert (await ctx.sandbox.exec('echo "$HERMES_TEST_API_KEY"')).output == "sk-secret\n"


async def test_named_secret_is_injected(runtime):
    async with runtime.rollout(backend="modal", options={**OPTS, "secrets": ["hermes-test-secret"]}) as ctx:
        assert (await ctx.sandbox.exec('echo "$FROM_SECRET"')).output == "s3cr3t\n"
    with pytest.raises(SandboxError, match="not found"):
        await runtime.create_sandbox("modal", {**OPTS, "secrets": ["no-such-secret"]}).start()


async def test_failed_image_build_says_why(runtime, tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text(f"FROM {TEST_IMAGE}\nRUN echo build-step-broke && exit 3\n")
    with pytest.raises(SandboxError, match="failed to build(.|\n)*build-step-broke"):
        await runtime.create_sandbox("modal", {"dockerfile": str(df), "app_name": OPTS["app_name"]}).start()


async def test_dockerfile_image_is_built(runtime, tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text(f"FROM {TEST_IMAGE}\nRUN echo built-by-dockerfile > /built.txt\n")
    async with runtime.rollout(backend="modal", options={"dockerfile": str(df), "app_name": OPTS["app_name"]}) as ctx:
        assert (await ctx.sandbox.exec("cat /built.txt")).output == "built-by-dockerfile\n"


async def test_snapshot_then_new_sandbox_from_it(runtime):
    async with runtime.rollout(backend="modal", options=OPTS) as ctx:
        await ctx.sandbox.write_bytes("state.bin", b"\x00snap\xff")
        image_id = await ctx.sandbox.snapshot()
    assert image_id.startswith("im-")
    async with runtime.rollout(backend="modal", options={"image_id": image_id, "app_name": OPTS["app_name"]}) as ctx:
        assert await ctx.sandbox.read_bytes("state.bin") == b"\x00snap\xff"


async def test_output_is_bounded_whatever_a_command_prints(runtime):
    async with runtime.rollout(backend="modal", options=OPTS) as ctx:
        r = await ctx.sandbox.exec("head -c 40000000 /dev/zero | tr '\\0' x; echo END", timeout=120)
        assert r.exit_code == 0
        assert 30_000_000 < len(r.output) < 34_000_000
        assert "bytes of output omitted" in r.output and r.output.endswith("END\n")


async def test_sweep_removes_only_sandboxes_whose_owner_is_gone(modal_fake, monkeypatch):
    import modal

    from hermes_backend_modal import sweep
    from hermes_backend_modal._owner import owner_tags

    app_name = "hermes-sweep-test"
    monkeypatch.setenv("HERMES_MODAL_APP", app_name)
    app = await modal.App.lookup.aio(app_name, create_if_missing=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = owner_tags()
    base = {"hermes.backend": "modal", "hermes.created": "0"}
    cases = {
        "dead": {**base, **mine, "hermes.owner.pid": str(dead.pid), "hermes.rollout": "dead"},
        "reused": {**base, **mine, "hermes.owner.start": "1", "hermes.rollout": "reused"},
        "alive": {**base, **mine, "hermes.rollout": "alive"},
        "elsewhere": {**base, **mine, "hermes.owner.host": "another-host", "hermes.owner.pid": str(dead.pid),
                      "hermes.rollout": "elsewhere"},
    }
    image = modal.Image.from_registry(TEST_IMAGE)
    made = {k: await modal.Sandbox.create.aio("sleep", "infinity", app=app, image=image, tags=t, timeout=120)
            for k, t in cases.items()}
    try:
        removed = await sweep(None)
        assert sorted(line.split()[0] for line in removed) == sorted([made["dead"].object_id, made["reused"].object_id])
        assert await made["dead"].poll.aio() is not None and await made["reused"].poll.aio() is not None
        assert await made["alive"].poll.aio() is None and await made["elsewhere"].poll.aio() is None
    finally:
        await asyncio.gather(*(s.terminate.aio() for s in made.values()))


async def test_offline_fails_fast_with_an_actionable_message(monkeypatch):
    from hermes_backend_modal import ModalUnavailableError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{port}")
    rt = Runtime()
    try:
        async with asyncio.timeout(20):  # the SDK on its own retries for about a minute
            with pytest.raises(ModalUnavailableError, match="MODAL_SERVER_URL"):
                await rt.create_sandbox("modal", OPTS).start()
    finally:
        await rt.aclose()


async def test_unresponsive_api_fails_within_connect_timeout(monkeypatch):
    from hermes_backend_modal import ModalUnavailableError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)  # accepts TCP, never speaks HTTP/2
    monkeypatch.setenv("MODAL_SERVER_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
    rt = Runtime()
    try:
        async with asyncio.timeout(20):
            with pytest.raises(ModalUnavailableError, match="did not answer within 1s"):
                await rt.create_sandbox("modal", {**OPTS, "connect_timeout": 1}).start()
    finally:
        s.close()
        await rt.aclose()


@pytest.mark.parametrize("env", [{"MODAL_TOKEN_SECRET": "as-wrong"}, {"MODAL_TOKEN_ID": None, "MODAL_TOKEN_SECRET": None}])
async def test_bad_or_missing_credentials_say_how_to_fix(modal_fake, monkeypatch, env):
    from hermes_backend_modal import ModalAuthError

    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    rt = Runtime()
    try:
        async with asyncio.timeout(20):
            with pytest.raises(ModalAuthError, match=r"MODAL_TOKEN_ID and MODAL_TOKEN_SECRET \(or run `modal token new`\)"):
                await rt.create_sandbox("modal", OPTS).start()
    finally:
        await rt.aclose()


@pytest.mark.parametrize("bad", [{"workdir": "relative"}, {"tags": {"hermes.rollout": "x"}}, {"nope": 1},
                                 {"env": {"1BAD": "x"}}])
def test_options_are_validated(bad):
    with pytest.raises(ConfigError):
        Runtime().create_sandbox("modal", {**OPTS, **bad})


def test_registration_imports_no_sdk():
    code = ("import sys, hermes_core; rt = hermes_core.Runtime(); rt.backends.get('modal'); "
            "assert 'modal' not in sys.modules and 'hermes_backend_modal._backend' not in sys.modules, sorted(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
