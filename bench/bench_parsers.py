"""Tool-call parser throughput (MB/s of model output) per format.

Baseline, measured in the same run and interleaved: ``json.loads`` of just the arguments of the
same calls (the decoding any parser must do anyway). The ratio is parser time / baseline time.

    python bench/bench_parsers.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from hermes_plugins.parsers import PARSER_REFS, get_parser

TOOLS = [{"type": "function", "function": {"name": "terminal", "parameters": {"type": "object", "properties": {
    "command": {"type": "string"}, "timeout": {"type": "integer"}, "background": {"type": "boolean"}}}}}]


def corpus(n: int, seed: int = 1) -> list[list[tuple[str, dict]]]:
    rnd = random.Random(seed)
    words = ["ls", "-la", "cat", "grep", "-r", "TODO", "python3", "-m", "pytest", "|", "wc", "-l", "&&", "echo", "done"]
    out = []
    for _ in range(n):
        calls = []
        for _ in range(rnd.randint(1, 3)):
            cmd = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 60)))
            calls.append(("terminal", {"command": cmd, "timeout": rnd.randint(1, 600), "background": rnd.random() < 0.2}))
        out.append(calls)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few iterations (CI smoke)")
    args = ap.parse_args()
    n, rounds = (200, 2) if args.quick else (2000, 5)
    samples = corpus(n)
    print(f"{n} completions x {rounds} rounds, 1-3 terminal calls each; baseline = json.loads of the arguments only")
    print(f"{'format':14} {'MB/s':>8} {'us/text':>9} {'x json.loads':>13}")
    for name in sorted(PARSER_REFS):
        parser = get_parser(name)
        texts = [parser.render([{"function": {"name": fn, "arguments": json.dumps(a)}} for fn, a in calls],
                               content="Let me check that.") for calls in samples]
        blobs = [json.dumps(a) for calls in samples for _, a in calls]
        size = sum(len(t.encode()) for t in texts)
        for t in texts[:20]:  # correctness before speed
            assert len(parser.parse(t, TOOLS)[1]) >= 1
        t_parse = t_base = 0.0
        for _ in range(rounds):  # interleaved
            t0 = time.perf_counter()
            for b in blobs:
                json.loads(b)
            t1 = time.perf_counter()
            for t in texts:
                parser.parse(t, TOOLS)
            t2 = time.perf_counter()
            t_base += t1 - t0
            t_parse += t2 - t1
        mbps = size * rounds / t_parse / 1e6
        print(f"{name:14} {mbps:8.1f} {t_parse / (n * rounds) * 1e6:9.1f} {t_parse / t_base:13.2f}")


if __name__ == "__main__":
    main()
