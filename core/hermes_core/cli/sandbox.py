"""``hermes sandbox sweep``: remove what killed drivers left behind."""

from __future__ import annotations

import argparse
import asyncio

from ._common import CliError, parse_duration, runtime_from_args


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="manage sandboxes")
    sp = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sw = sp.add_parser("sweep", help="remove sandboxes left behind by a killed driver (found by their labels)")
    sw.add_argument("--backend", action="append", metavar="NAME",
                    help="backend to sweep (repeatable; default: every backend that supports it)")
    sw.add_argument("--older-than", default="1h", metavar="DURATION",
                    help="only sandboxes created longer ago than this (e.g. 30s, 10m, 2h, 1d; default 1h, "
                         "so running evaluations are not touched)")
    sw.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    rt = runtime_from_args(args)
    older = parse_duration(args.older_than)
    if args.backend:
        specs = [rt.backends.get(n) for n in args.backend]
        for spec in specs:
            if spec.sweep is None:
                raise CliError(f"backend {spec.name!r} does not support sweeping")
    else:
        specs = [s for s in rt.backends.values() if s.sweep is not None]

    async def run() -> int:
        total = 0
        for spec in specs:
            removed = await spec.sweep(older)
            for name in removed:
                print(f"{spec.name}: removed {name}")
            total += len(removed)
        print(f"swept {total} sandbox(es) older than {args.older_than}")
        return 0

    return asyncio.run(run())
