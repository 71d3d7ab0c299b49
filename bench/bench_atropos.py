"""Atropos path overhead: rollouts/s of ``HermesAtroposEnv.collect_trajectories`` against the plain
hermes Runner doing the same rollouts (same agent, same scripted completions server on loopback,
same local sandboxes, same terminal-test task), interleaved round by round.

    python bench/bench_atropos.py [--quick]

Needs hermes-atropos (and so atroposlib) installed. The tokenizer is trained locally (no download).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "hermes_atropos" / "tests"))
os.environ.setdefault("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")


async def main(quick: bool) -> None:
    from atroposlib.envs.server_handling.server_baseline import APIServerConfig
    from helpers import TerminalTestPolicy, build_tokenizer
    from transformers import AutoTokenizer

    from hermes_atropos import HermesAtroposConfig, HermesAtroposEnv
    from hermes_plugins.parsers.testing import ScriptedCompletionsServer

    rounds, group = (3, 4) if quick else (20, 8)
    tok_dir = build_tokenizer(Path(tempfile.mkdtemp()) / "tok")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    with ScriptedCompletionsServer(tokenizer, TerminalTestPolicy()) as srv:
        cfg = HermesAtroposConfig(tokenizer_name=str(tok_dir), group_size=group, use_wandb=False,
                                  environment_config={"tasks": ["hello-file"]}, ensure_scores_are_not_same=False,
                                  max_token_length=16384)
        env = HermesAtroposEnv(cfg, [APIServerConfig(base_url=srv.base_url, model_name="s", api_key="x", health_check=False)])
        await env.setup()
        runner = env.runners[0]
        item = env.items[0]
        plain: list[float] = []
        atropos: list[float] = []
        try:
            await env.collect_trajectories(item)  # warm up both paths
            for r in range(rounds):
                for which in ((0, 1) if r % 2 == 0 else (1, 0)):  # interleaved, alternating order
                    t0 = time.perf_counter()
                    if which == 0:
                        rollouts = await asyncio.gather(*(runner.run_one(item, 10_000 + r * group + g) for g in range(group)))
                        assert all(x.record["turns"] == 2 and x.record["reward"] is not None for x in rollouts)
                        plain.append(time.perf_counter() - t0)
                    else:
                        scored, _ = await env.collect_trajectories(item)
                        assert scored is not None and len(scored["tokens"]) == group
                        assert all(len(m) == 5 for m in scored["messages"])  # system, user, call, result, answer
                        atropos.append(time.perf_counter() - t0)
        finally:
            await env.aclose()
    print(f"{rounds} rounds, groups of {group} rollouts (terminal-test hello-file, local backend, scripted server)")
    # The machine is shared: the minimum is the least disturbed round of each path; the median is shown too.
    for label, pick in (("min", min), ("median", statistics.median)):
        p, a = pick(plain), pick(atropos)
        print(f"[{label:6}] plain Runner {group / p:6.1f} rollouts/s ({p / group * 1000:6.1f} ms/rollout)   "
              f"Atropos env {group / a:6.1f} rollouts/s ({a / group * 1000:6.1f} ms/rollout)   "
              f"overhead {a / p:.3f}x ({(a - p) / group * 1000:+.2f} ms/rollout; target <= 1.1x)")

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few rounds (CI smoke)")
    asyncio.run(main(ap.parse_args().quick))
