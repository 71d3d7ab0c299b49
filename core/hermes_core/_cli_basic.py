"""``hermes plugins``, ``hermes tools``, ``hermes exec``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def runtime_from_args(args: argparse.Namespace):
    """A Runtime configured from ``--config`` (shared by every subcommand)."""
    from . import Runtime
    from .config import load_config

    config = load_config(args.config) if getattr(args, "config", None) else None
    return Runtime(config)


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins and what each registers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("tools", help="list tools, or the tools a toolset resolves to")
    p.add_argument("--toolset", action="append", metavar="NAME", help="toolset to resolve (repeatable)")
    p.add_argument("--schema", action="store_true", help="print the OpenAI tool schemas")
    p.set_defaults(func=cmd_tools)

    p = sub.add_parser("exec", help="run one command in a fresh sandbox and print the result")
    p.add_argument("--backend", default=None, help="backend name (default: config or 'local')")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option (value parsed as JSON when it can be)")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("sandbox", help="manage sandboxes")
    sp = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sw = sp.add_parser("sweep", help="remove sandboxes left behind by a killed driver (found by their labels)")
    sw.add_argument("--backend", action="append", metavar="NAME",
                    help="backend to sweep (repeatable; default: every backend that supports it)")
    sw.add_argument("--older-than", default="1h", metavar="DURATION",
                    help="only sandboxes created longer ago than this (e.g. 30s, 10m, 2h, 1d; default 1h, "
                         "so running evaluations are not touched)")
    sw.set_defaults(func=cmd_sweep)


def parse_options(pairs: list[str], flag: str = "--option") -> dict:
    """``["k=v", ...]`` → dict; values parsed as JSON when they can be (``n=3`` is an int)."""
    from .cli import CliError

    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


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


def cmd_exec(args: argparse.Namespace) -> int:
    from .cli import CliError

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError("no command given; usage: hermes exec [--backend NAME] -- COMMAND [ARGS...]")
    rt = runtime_from_args(args)
    backend = args.backend or rt.config.backend
    options = parse_options(args.option) or None

    async def run() -> int:
        async with rt.rollout(backend=backend, options=options, toolsets=[]) as ctx:
            command = cmd[0] if len(cmd) == 1 else cmd
            result = await ctx.sandbox.exec(command, timeout=args.timeout)
        sys.stdout.write(result.output)
        if result.output and not result.output.endswith("\n"):
            sys.stdout.write("\n")
        return result.exit_code

    return asyncio.run(run())


def parse_duration(text: str) -> float:
    """``"90"``/``"90s"``/``"10m"``/``"2h"``/``"1d"`` → seconds."""
    from .cli import CliError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            value = float(t[:-1]) * units[t[-1]]
        else:
            value = float(t)
    except ValueError:
        value = -1
    if value < 0:
        raise CliError(f"invalid duration {text!r}; use e.g. 30s, 10m, 2h or 1d")
    return value


def cmd_sweep(args: argparse.Namespace) -> int:
    from .cli import CliError

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
