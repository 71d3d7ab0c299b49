"""Driver memory whatever a sandbox prints or holds: RSS growth of this process while a
foreground command prints N bytes through the terminal tool and through ``ctx.terminal``, and
while ``read_file`` reads one line of an N-byte file. Target: <= 20 MB growth per path.

    python bench/bench_memory.py [--quick] [--backend local|docker] [--bytes N]

Each path runs in a fresh child process (so one path's peak does not hide another's); the
baseline is the same child's RSS right before the call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys

CHILD = r"""
import asyncio, json, os, sys, gc
from hermes_core import Runtime

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

async def main(path, backend, n, opts):
    rt = Runtime()
    async with rt.rollout(backend=backend, options=opts) as ctx:
        if path == "read_file":
            await ctx.terminal(f"head -c {n} /dev/zero | tr '\\0' 'x' > big; echo >> big")
        await ctx.call_tool("terminal", {"command": "echo warm"})
        await ctx.terminal("echo warm")
        gc.collect(); reset_peak(); before = rss()
        if path == "terminal tool":
            await ctx.call_tool("terminal", {"command": f"head -c {n} /dev/zero | tr '\\0' 'y'", "timeout": 600})
        elif path == "ctx.terminal":
            await ctx.terminal(f"head -c {n} /dev/zero | tr '\\0' 'y'", timeout=600)
        else:
            await ctx.call_tool("read_file", {"path": "big", "limit": 1})
        after = rss()
    await rt.aclose()
    print(json.dumps({"before": before, "peak": after}))

path, backend, n, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
asyncio.run(main(path, backend, n, opts))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 MB instead of 1 GB")
    ap.add_argument("--backend", action="append", help="local and/or docker (default: local, docker if DOCKER_HOST)")
    ap.add_argument("--bytes", type=int)
    args = ap.parse_args()
    n = args.bytes or (100_000_000 if args.quick else 1_000_000_000)
    backends = args.backend or (["local", "docker"] if os.environ.get("DOCKER_HOST") else ["local"])
    opts = {"local": {}, "docker": {"image": "hermes-test/debian:bookworm", "pull": "never"}}
    print(f"driver peak RSS growth while a sandbox produces {n / 1e6:.0f} MB (target <= 20 MB)")
    print(f"{'backend':8} {'path':14} {'before MB':>10} {'peak MB':>9} {'growth MB':>10}  ok")
    worst = 0.0
    for backend in backends:
        for path in ("terminal tool", "ctx.terminal", "read_file"):
            out = subprocess.run([sys.executable, "-c", CHILD, path, backend, str(n), json.dumps(opts[backend])],
                                 capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                print(f"{backend:8} {path:14} failed: {out.stderr.strip().splitlines()[-1:]}")
                worst = float("inf")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            growth = r["peak"] - r["before"]
            worst = max(worst, growth)
            print(f"{backend:8} {path:14} {r['before']:10.1f} {r['peak']:9.1f} {growth:10.1f}  {'yes' if growth <= 20 else 'NO'}")
    return 0 if worst <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
