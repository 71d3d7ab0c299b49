"""Many rollouts through the real SDK while the fake injects faults: nothing may be left behind.

``HERMES_MODAL_SOAK`` sets the number of rollouts (default 200; CI runs fewer).
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from conftest import TEST_IMAGE, fake_containers

from hermes_core import Runtime
from hermes_core.errors import SandboxError

pytestmark = [pytest.mark.modal_fake, pytest.mark.soak]

ROLLOUTS = int(os.environ.get("HERMES_MODAL_SOAK", "200"))


async def test_soak_with_faults_leaves_nothing(modal_fake, faults):
    faults(unavailable_every=7, exit_every=11, exit_after_s=0.2, slow_create_s=0.05, create_rate=20,
           terminate_unavailable_every=5)
    rt = Runtime()
    gate = asyncio.Semaphore(16)
    outcomes: dict[str, int] = {}

    async def one(i: int) -> None:
        async with gate:
            try:
                async with rt.rollout(backend="modal", options={"image": TEST_IMAGE, "app_name": "hermes-soak"}) as ctx:
                    r = await ctx.sandbox.exec(f"echo {i}")
                    if r.output != f"{i}\n":
                        # Only acceptable when the command raced the sandbox's death from outside.
                        for _ in range(50):  # the death may take a moment to be reported
                            if await ctx.sandbox._ended() is not None:
                                break
                            await asyncio.sleep(0.2)
                        else:
                            raise AssertionError(f"wrong output from a live sandbox: {r!r}")
                        outcomes["raced-death"] = outcomes.get("raced-death", 0) + 1
                        return
                    await ctx.sandbox.write_bytes("f.bin", bytes([i % 256]) * 1000)
                    assert await ctx.sandbox.read_bytes("f.bin") == bytes([i % 256]) * 1000
                    if i % 3 == 0:
                        await ctx.sandbox.spawn("sleep 300")
                    if i % 5 == 0:
                        assert (await ctx.sandbox.exec("sleep 30", timeout=0.5)).exit_code == 124
                kind = "ok"
            except SandboxError as e:  # a sandbox killed from outside, or retries exhausted
                kind = type(e).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1

    try:
        errors = [e for e in await asyncio.gather(*(one(i) for i in range(ROLLOUTS)), return_exceptions=True) if e]
        assert not errors, errors[:3]
    finally:
        faults()
        await rt.aclose()
    print(f"soak: {ROLLOUTS} rollouts, outcomes {outcomes}")
    assert sum(outcomes.values()) == ROLLOUTS
    assert outcomes.get("ok", 0) >= ROLLOUTS // 2, outcomes
    assert outcomes.get("ok", 0) < ROLLOUTS, f"the exit-from-outside fault never bit: {outcomes}"
    deadline = time.monotonic() + 20
    while (time.monotonic() < deadline) and (modal_fake.stats()["running"] or fake_containers(modal_fake.instance)):
        await asyncio.sleep(0.5)
    assert modal_fake.stats()["running"] == 0, "sandboxes still running on the fake after the soak"
    assert fake_containers(modal_fake.instance) == [], "containers left on the engine after the soak"
