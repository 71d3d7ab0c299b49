"""The ``hermes`` command line. Subcommands live in their own modules and import lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import HermesError
from ._common import CliError

__all__ = ["COMMAND_MODULES", "CliError", "build_parser", "main"]

#: One module per command, each defining ``register(subparsers)``; handlers import heavy things
#: lazily, so ``hermes --help`` stays fast.
COMMAND_MODULES = (
    "hermes_core.cli.plugins",
    "hermes_core.cli.tools",
    "hermes_core.cli.exec",
    "hermes_core.cli.sandbox",
    "hermes_core.cli.eval",
    "hermes_core.cli.run",
    "hermes_core.cli.batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermes",
        description="hermes-core: tool-using LLM agents, sandboxes and RL / eval environments.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (toolsets, backend, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except HermesError as e:
        print(f"hermes: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hermes: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
