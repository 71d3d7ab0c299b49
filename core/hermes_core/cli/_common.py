"""What every subcommand shares: the user-error type, the Runtime from ``--config``, and
parsers for ``KEY=VALUE`` options and durations."""

from __future__ import annotations

import argparse
import json

from ..errors import HermesError

__all__ = ["CliError", "parse_duration", "parse_options", "runtime_from_args"]


class CliError(HermesError):
    """A user-facing error: printed without a traceback, exit code 2."""


def runtime_from_args(args: argparse.Namespace):
    """A Runtime configured from ``--config`` (shared by every subcommand)."""
    from .. import Runtime
    from ..config import load_config

    config = load_config(args.config) if getattr(args, "config", None) else None
    return Runtime(config)


def parse_options(pairs: list[str], flag: str = "--option") -> dict:
    """``["k=v", ...]`` → dict; values parsed as JSON when they can be (``n=3`` is an int)."""
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


def parse_duration(text: str) -> float:
    """``"90"``/``"90s"``/``"10m"``/``"2h"``/``"1d"`` → seconds."""
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
