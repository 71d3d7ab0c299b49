"""Benchmark of `hermes view` opening a 10,000-rollout run.

Generates a synthetic run (the runner's file format: results.jsonl, trajectories.jsonl,
summary.json) with N rollouts and measures, interleaved with the baseline in the same run:

- floor:  a bare json-lines read of results.jsonl (``[json.loads(line) for line in f]``)
- open:   ``Run.open`` (index results.jsonl) + per-task stats with pass@k + the rendered HTML of
          the run's first page (task table + first 100 rollouts) — what `hermes view` serves at /run/0
- first/last rollout page: one transcript page, trajectory read by byte offset (the last one
          scans the whole trajectories file once, as the first visit to it does)
- the static report of the whole run (--out), once (not in --quick)

Prints seconds and ratios to the floor (target: open ≤ 2 s absolute on this machine class).

    python bench/bench_view.py [--rollouts 10000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hermes_core.view.html import environment, render_page, write_report
from hermes_core.view.loader import Filter, Run
from hermes_core.view.synthetic import write_synthetic_run


def floor_read(path: Path) -> int:
    with (path / "results.jsonl").open("rb") as f:
        rows = [json.loads(line) for line in f]
    return len(rows)


def open_and_render(path: Path, env) -> int:
    run = Run.open(path)
    html = render_page(env, [run], "run", run=run, flt=Filter(), page=0)
    return len(html)


def rollout_page(path: Path, env, n: int) -> int:
    run = Run.open(path)
    return len(render_page(env, [run], "rollout", run=run, n=n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=10_000)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 iterations, no static report (CI smoke)")
    args = ap.parse_args(argv)
    iters = 3 if args.quick else args.iterations
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        t0 = time.perf_counter()
        path = write_synthetic_run(Path(tmp) / "run", tasks=args.rollouts // args.group_size,
                                   group_size=args.group_size, long_lines=40)
        gen = time.perf_counter() - t0
        size_r = (path / "results.jsonl").stat().st_size / 1e6
        size_t = (path / "trajectories.jsonl").stat().st_size / 1e6
        print(f"synthetic run: {args.rollouts} rollouts, results.jsonl {size_r:.1f} MB, "
              f"trajectories.jsonl {size_t:.1f} MB (written in {gen:.1f}s)")
        env = environment()
        open_and_render(path, env)  # warm: template compilation, page cache
        floor, opened, first, last = [], [], [], []
        for _ in range(iters):
            t = time.perf_counter(); floor_read(path); floor.append(time.perf_counter() - t)
            t = time.perf_counter(); open_and_render(path, env); opened.append(time.perf_counter() - t)
            t = time.perf_counter(); rollout_page(path, env, 0); first.append(time.perf_counter() - t)
            t = time.perf_counter(); rollout_page(path, env, args.rollouts - 1); last.append(time.perf_counter() - t)
        f = statistics.median(floor)
        rows = [
            ("bare json-lines read of results.jsonl (floor)", f),
            ("open run + stats + first page HTML", statistics.median(opened)),
            ("open run + first rollout's transcript page", statistics.median(first)),
            ("open run + last rollout's transcript page (full offset scan)", statistics.median(last)),
        ]
        print(f"median of {iters} interleaved iterations:")
        for label, v in rows:
            print(f"  {label:<64} {v * 1000:8.1f} ms  {v / f:6.2f}x floor")
        verdict = "within" if statistics.median(opened) < 2.0 else "OVER"
        print(f"opening a {args.rollouts}-rollout run: {statistics.median(opened):.3f}s ({verdict} the 2 s target)")
        if not args.quick:
            t = time.perf_counter()
            counts = write_report([Run.open(path)], Path(tmp) / "report.html")
            took = time.perf_counter() - t
            print(f"static report (--out): {took:.1f}s, {counts['bytes'] / 1e6:.1f} MB, "
                  f"{counts['embedded']} transcripts embedded, {counts['omitted']} left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
