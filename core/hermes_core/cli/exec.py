"""``hermes exec``: one command in a fresh sandbox."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._common import CliError, parse_options, runtime_from_args


def register(sub) -> None:
    p = sub.add_parser("exec", help="run one command in a fresh sandbox and print the result")
    p.add_argument("--backend", default=None, help="backend name (default: config or 'local')")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option (value parsed as JSON when it can be)")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_exec)


def cmd_exec(args: argparse.Namespace) -> int:
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
