"""``hermes eval terminal-test --agent oracle --backend modal``, as a user runs it: the ``hermes``
CLI in a subprocess, the real modal SDK inside it, pointed at the fake through the environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_IMAGE, fake_containers

pytestmark = pytest.mark.modal_fake


def _hermes() -> list[str]:
    exe = Path(sys.executable).with_name("hermes")
    return [str(exe)] if exe.exists() else [shutil.which("hermes") or "hermes"]


def test_terminal_test_oracle_scores_one(modal_fake, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, **modal_fake.env()}
    r = subprocess.run(
        [*_hermes(), "eval", "terminal-test", "--agent", "oracle", "--backend", "modal",
         "-o", f"image={TEST_IMAGE}", "-o", "app_name=hermes-eval", "--out", str(out), "--json", "--quiet"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["backend"] == "modal"
    assert summary["rollouts"] == summary["planned"] >= 5
    assert summary["errors"] == 0 and summary["mean_reward"] == 1.0, summary
    assert fake_containers(modal_fake.instance) == []


def test_sweep_cli_leaves_live_sandboxes(modal_fake, tmp_path):
    """`hermes sandbox sweep --backend modal` runs in its own process: it must not touch a sandbox
    whose owner (this test process) is alive."""
    import asyncio

    from hermes_core import Runtime

    async def go() -> None:
        rt = Runtime()
        try:
            sb = await rt.create_sandbox("modal", {"image": TEST_IMAGE}).start()
            env = {**os.environ, **modal_fake.env()}
            r = subprocess.run([*_hermes(), "sandbox", "sweep", "--backend", "modal"], env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr[-2000:]
            assert "swept 0 sandbox(es)" in r.stdout, r.stdout
            assert (await sb.exec("echo alive")).output == "alive\n"
        finally:
            await rt.aclose()

    asyncio.run(go())
