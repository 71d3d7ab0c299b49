"""``hermes tools``: the registered tools, or what a toolset resolves to."""

from __future__ import annotations

import argparse
import json

from ._common import runtime_from_args


def register(sub) -> None:
    p = sub.add_parser("tools", help="list tools, or the tools a toolset resolves to")
    p.add_argument("--toolset", action="append", metavar="NAME", help="toolset to resolve (repeatable)")
    p.add_argument("--schema", action="store_true", help="print the OpenAI tool schemas")
    p.set_defaults(func=cmd_tools)


def cmd_tools(args: argparse.Namespace) -> int:
    rt = runtime_from_args(args)
    names = rt.resolve_toolsets(args.toolset) if args.toolset else rt.tools.names()
    if args.schema:
        print(json.dumps([rt.tools.get(n).schema() for n in names], indent=2))
        return 0
    if not args.toolset:
        print("toolsets:")
        for ts in rt.toolsets.values():
            parts = list(ts.tools) + [f"@{i}" for i in ts.includes]
            print(f"  {ts.name}: {' '.join(parts)}")
        print("tools:")
    for n in names:
        spec = rt.tools.get(n)
        flag = "" if spec.available() else "  (unavailable)"
        print(f"  {n}  [{spec.plugin}]{flag}  {spec.description.splitlines()[0][:90]}")
    return 0
