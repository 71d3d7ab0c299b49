"""End to end through the ``hermes`` CLI, a soak with faults injected, and the opt-in live test."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LIVE, TEST_IMAGE

from hermes_core import Runtime

OPTS = {"image": TEST_IMAGE, "creates_per_second": 50, "retry_backoff": 0.05}
#: The soak injects 20 faults; one unlucky create can meet several 429s and then a 500 while it
#: waits for the start, more than the default 5 retries (which one depends on timing: it failed
#: once in CI). What the soak checks is cleanup under faults, so its calls may outlast them all.
SOAK_OPTS = {**OPTS, "retries": 25}


@pytest.mark.docker
def test_cli_eval_terminal_test_oracle_scores_one(fake, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hermes_core.cli", "eval", "terminal-test", "--agent", "oracle",
           "--backend", "daytona", "-o", f"image={TEST_IMAGE}", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["backend"] == "daytona"
    assert summary["rollouts"] == summary["planned"] >= 10
    assert summary["mean_reward"] == 1.0 and summary["pass_rate"] == 1.0
    rewards = [json.loads(line)["reward"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rewards) == summary["rollouts"] and all(x == 1.0 for x in rewards)


@pytest.mark.docker
@pytest.mark.soak
async def test_soak_with_faults_leaves_nothing(fake):
    """N rollouts (HERMES_DAYTONA_SOAK_N, default 40) with 429s, 500s, slow creates and sandboxes that
    vanish mid-rollout: every rollout ends, and nothing remains in the service or on the engine."""
    from hermes_backend_daytona import SandboxGoneError

    n = int(os.environ.get("HERMES_DAYTONA_SOAK_N", "40"))
    rng = random.Random(13)
    fake.inject(429, method="POST", path=r"^/api/sandbox$", count=max(1, n // 5), retry_after="0")
    fake.inject(500, method="GET", path=r"^/api/sandbox/", count=max(1, n // 10))
    fake.inject(500, method="DELETE", path=r"^/api/sandbox/", count=max(1, n // 10))
    fake.inject(503, method="POST", path=r"/files/bulk-upload$", count=max(1, n // 10))
    fake.slow_create = 0.2
    rt = Runtime()
    sem = asyncio.Semaphore(10)
    outcome: dict[str, int] = {"ok": 0, "gone": 0}

    async def one(i: int) -> None:
        async with sem:
            async with rt.rollout(backend="daytona", options=SOAK_OPTS) as ctx:
                sb = ctx.sandbox
                if i % 7 == 3:
                    fake.vanish(sb.daytona_id)
                    with pytest.raises(SandboxGoneError):
                        await sb.exec("true")
                    outcome["gone"] += 1
                    return
                await sb.write_bytes("in.txt", f"rollout {i}\n".encode())
                r = await sb.shell("cat in.txt; sleep 0.%d" % rng.randrange(1, 5), timeout=30)
                assert r.output == f"rollout {i}\n"
                proc = await sb.spawn("sleep 300")  # left running: cleanup must end it
                assert proc.returncode is None
                outcome["ok"] += 1

    try:
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    finally:
        await rt.aclose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert outcome["ok"] + outcome["gone"] == n and outcome["gone"] >= 1
    for _ in range(600):  # the fake removes containers in the background: a loaded engine is slow at it
        if fake.sandbox_count() == 0 and not fake.container_ids():
            break
        await asyncio.sleep(0.1)
    assert fake.sandbox_count() == 0, [b.name for b in fake.boxes.values()]
    assert fake.container_ids() == []


@pytest.mark.daytona_live
@pytest.mark.skipif(not LIVE, reason="live Daytona test: set DAYTONA_API_KEY (and optionally DAYTONA_API_URL) to run")
async def test_live_daytona_round_trip(tmp_path):
    """Opt-in: a real sandbox on the user's Daytona account, created, used and deleted."""
    opts = {"api_key_env": "HERMES_LIVE_DAYTONA_API_KEY", "api_url": LIVE["url"], "auto_stop_minutes": 5,
            "max_lifetime": 1800}
    rt = Runtime()
    try:
        async with rt.rollout(backend="daytona", options=opts) as ctx:
            sb = ctx.sandbox
            assert (await sb.exec("echo live")).output == "live\n"
            r = await sb.exec("sleep 20", timeout=2)
            assert r.exit_code == 124 and r.timed_out
            assert (await sb.exec("echo still")).output == "still\n"
            await sb.write_bytes("x.bin", bytes(range(256)))
            assert await sb.read_bytes("x.bin") == bytes(range(256))
            assert (await sb.shell("cd /tmp && export A=1")).exit_code == 0
            assert (await sb.shell('pwd; echo "$A"')).output == "/tmp\n1\n"
            src = tmp_path / "t"
            src.mkdir()
            (src / "f").write_text("f")
            await sb.put_dir(src, "t")
            assert await sb.get_dir("t", tmp_path / "back") == ["f"]
            assert Path(tmp_path / "back" / "f").read_text() == "f"
    finally:
        await rt.aclose()
