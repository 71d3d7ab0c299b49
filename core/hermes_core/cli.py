"""The ``hermes`` command line. Subcommands live in their own modules and import lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that each define ``register(subparsers)``; their handlers import heavy things lazily.
COMMAND_MODULES = (
    "hermes_core._cli_basic",
    "hermes_core._cli_eval",
)


from .errors import HermesError


class CliError(HermesError):
    """A user-facing error: printed without a traceback, exit code 2."""


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
