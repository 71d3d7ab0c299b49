"""``hermes plugins``: the installed plugins and what each registers."""

from __future__ import annotations

import argparse
import json

from ._common import runtime_from_args


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins and what each registers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    rt = runtime_from_args(args)
    rows = [
        {"name": p.name, "distribution": p.distribution, "version": p.version, "module": p.module,
         "builtin": p.builtin, "registers": p.registers}
        for p in rt.plugins
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']}  ({r['distribution']} {r['version']}, {r['module']})")
        for kind, names in r["registers"].items():
            print(f"    {kind}: {', '.join(names)}")
    return 0
