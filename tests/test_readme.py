"""The README's examples are real: they are these files, and they run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hermes_core import ConfigError, Runtime

from .test_plugins import make_dist, site  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_shows_the_examples_verbatim():
    for name in ("reward_unittest.py", "nice_backend.py"):
        assert (ROOT / "examples" / name).read_text().strip() in README, f"README is out of date with examples/{name}"


def test_reward_example_scores_one():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "reward_unittest.py")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reward: 1.0"


async def test_backend_example_installs_as_a_plugin(site):  # noqa: F811
    make_dist(site, "my-backend", {"nice": "my_backend"}, {"my_backend": (ROOT / "examples" / "nice_backend.py").read_text()})
    rt = Runtime()
    assert {p.name: p for p in rt.plugins}["nice"].distribution == "my-backend"
    async with rt.rollout(backend="nice", options={"niceness": 7}) as ctx:
        assert (await ctx.terminal("nice"))["output"].strip() == "7"
    try:
        rt.create_sandbox("nice", {"niceness": "very"})
    except ConfigError as e:
        assert "niceness" in str(e)
    else:
        raise AssertionError("invalid option accepted")
