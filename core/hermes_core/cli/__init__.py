"""The ``hermes`` command line. Subcommands live in their own modules and import lazily."""

from __future__ import annotations

import importlib
import sys

from ..errors import HermesError
from ._common import CliError, HermesArgumentParser

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
    "hermes_core.view.cli",
)


def build_parser() -> HermesArgumentParser:
    parser = HermesArgumentParser(
        prog="hermes",
        description="hermes-core: tool-using LLM agents, sandboxes and RL / eval environments.",
    )
    parser.add_argument("--version", action="version", version=f"hermes {_version()}")
    parser.add_argument("--config", metavar="FILE", help="YAML config (toolsets, backend, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HermesArgumentParser)
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    parser.commands = sub.choices  # type: ignore[attr-defined]
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hermes-core")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the command's own parser, which knows its options
            owner = parser.commands.get(getattr(args, "command", None) or "", parser)
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    args.argv = argv  # for the resume command a run prints
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe is handled below, not at exit
        return code
    except HermesError as e:
        print(f"hermes: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hermes: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``hermes plugins --json | head``): stop quietly, like other
        # command-line tools, and keep Python from complaining again when it flushes stdout.
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
