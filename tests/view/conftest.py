"""Fixtures of the viewer tests: a real `hermes eval` run (oracle, group size 3) and synthetic runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_core.view.synthetic import write_synthetic_run


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hermes eval terminal-test --agent oracle --group-size 3 --out DIR`, run for real once per session."""
    out = tmp_path_factory.mktemp("real") / "terminal-test-oracle"
    # Built-in plugins only (terminal-test is one): a half-installed third-party plugin in the
    # same environment must not fail the viewer's tests.
    env = {**os.environ, "HERMES_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "hermes_core.cli", "eval", "terminal-test", "--agent", "oracle", "--group-size", "3",
         "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(out.parent), env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.jsonl").is_file()
    return out


@pytest.fixture(scope="session")
def synth_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 tasks x 4 rollouts with failures, tool errors, infra and verifier errors, an image."""
    return write_synthetic_run(tmp_path_factory.mktemp("synth") / "synthetic-a", tasks=12, group_size=4, seed=1)


@pytest.fixture(scope="session")
def synth_run_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same tasks, another seed: the second run of a side-by-side comparison."""
    return write_synthetic_run(tmp_path_factory.mktemp("synth") / "synthetic-b", tasks=12, group_size=4, seed=2)
