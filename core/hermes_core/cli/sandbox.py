"""``hermes sandbox sweep``: remove what killed drivers left behind — and nothing else."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from typing import Any

from ._common import CliError, parse_duration, runtime_from_args


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="manage sandboxes")
    sp = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sw = sp.add_parser(
        "sweep", help="remove sandboxes whose driver is gone (found by their labels and owner records)",
        description="Each sandbox records its owner (pid, start time, boot id, host). A sweep removes the "
        "sandboxes whose owner is gone, or that passed their configured max_lifetime; a live driver's "
        "sandboxes are never touched unless --force. Without --backend every backend that can sweep is "
        "tried; one that cannot be reached is reported and the others are still swept.",
    )
    sw.add_argument("--backend", action="append", metavar="NAME",
                    help="backend to sweep (repeatable; default: every backend that supports it)")
    sw.add_argument("--older-than", default=None, metavar="DURATION",
                    help="only sandboxes created longer ago than this (e.g. 30s, 10m, 2h, 1d)")
    sw.add_argument("--force", action="store_true",
                    help="also remove sandboxes whose driver is still running (stops live runs!)")
    sw.set_defaults(func=cmd_sweep)


def _call(spec: Any, older: float | None, force: bool, options: dict[str, Any]) -> Any:
    params = inspect.signature(spec.sweep).parameters
    kw: dict[str, Any] = {}
    if "force" in params:
        kw["force"] = force
    elif force:
        raise CliError(f"backend {spec.name!r} cannot --force a sweep (its sweep has no such option)")
    if "options" in params and options:
        kw["options"] = options
    return spec.sweep(older, **kw)


def cmd_sweep(args: argparse.Namespace) -> int:
    rt = runtime_from_args(args)
    older = parse_duration(args.older_than) if args.older_than else None
    if args.backend:
        specs = [rt.backends.get(n) for n in args.backend]
        for spec in specs:
            if spec.sweep is None:
                raise CliError(f"backend {spec.name!r} does not support sweeping")
    else:
        specs = [s for s in rt.backends.values() if s.sweep is not None]

    async def run() -> int:
        total, failed = 0, []
        for spec in specs:
            options = dict(rt.config.backend_options) if spec.name == rt.config.backend else {}
            try:
                removed = await _call(spec, older, args.force, options)
            except CliError:
                raise
            except Exception as e:  # one unreachable backend must not stop the others
                failed.append(spec.name)
                print(f"{spec.name}: not swept: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            for name in removed:
                print(f"{spec.name}: removed {name}")
            total += len(removed)
        scope = f" older than {args.older_than}" if args.older_than else ""
        print(f"swept {total} sandbox(es){scope} from {len(specs) - len(failed)} backend(s)"
              + (f"; unreachable: {', '.join(failed)}" if failed else ""))
        return 1 if failed and args.backend else 0

    return asyncio.run(run())
