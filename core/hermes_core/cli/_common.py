"""What every subcommand shares: the user-error type, the Runtime from ``--config``, and
parsers for ``KEY=VALUE`` options and durations."""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import NoReturn

from ..errors import HermesError

__all__ = [
    "CliError",
    "HermesArgumentParser",
    "check_out_dir",
    "check_path_options",
    "nonnegative_float",
    "nonnegative_int",
    "parse_duration",
    "parse_options",
    "positive_float",
    "positive_int",
    "runtime_from_args",
]


class CliError(HermesError):
    """A user-facing error: printed without a traceback, exit code 2."""


class HermesArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that suggest the closest option or command."""

    def error(self, message: str) -> NoReturn:
        hint = self._suggest(message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")

    def _suggest(self, message: str) -> str:
        if message.startswith("unrecognized arguments:"):
            known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            for word in message.split(":", 1)[1].split():
                if word.startswith("-"):
                    close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
                    if close:
                        return f"; did you mean {close[0]}?"
        if "invalid choice:" in message:
            import re

            m = re.search(r"invalid choice: '([^']*)'", message)
            choices = [c for a in self._actions if a.choices for c in a.choices]
            if m:
                close = difflib.get_close_matches(m.group(1), [str(c) for c in choices], n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]!r}?"
        return ""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """Refuse an output directory that cannot be created or written, before anything runs.

    Raises:
        CliError: names the path and the reason.
    """
    import os
    import tempfile

    if path.exists() and not path.is_dir():
        raise CliError(f"{flag} {str(path)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hermes-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CliError(f"{flag} {str(path)!r} cannot be written: {e.strerror or e}") from None


#: Backend options that name a host directory the backend would create when missing.
_HOST_DIR_OPTIONS = ("root",)


def check_path_options(backend: str, options: dict, source: str = "-o") -> None:
    """Refuse a host-directory option (the local backend's ``root``) whose parent directory
    does not exist: the backend creates the directory itself, but a typo must not silently
    create a tree of folders (e.g. ``root=/new/path`` making ``/new``).

    Raises:
        CliError: names the option and the missing parent.
    """
    if backend != "local":
        return
    for key in _HOST_DIR_OPTIONS:
        value = options.get(key)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            raise CliError(f"{source} {key}={value}: exists and is not a directory")
        if not path.exists() and not path.absolute().parent.is_dir():
            raise CliError(
                f"{source} {key}={value}: its parent {str(path.absolute().parent)!r} does not exist; "
                "create it first (hermes creates only the last folder)"
            )


def runtime_from_args(args: argparse.Namespace):
    """A Runtime configured from ``--config`` (shared by every subcommand); the config's
    backend options are checked here, so an error names the file.

    Raises:
        ConfigError: the file or its backend options are invalid (the message names the file).
    """
    from .. import Runtime
    from ..config import load_config

    path = getattr(args, "config", None)
    config = load_config(path) if path else None
    rt = Runtime(config)
    if path:
        check_config_backend(rt, path)
    return rt


def check_config_backend(rt, path: str) -> None:
    """Validate the config file's ``backend`` and ``backend_options`` now, naming the file."""
    from ..errors import ConfigError, UnknownNameError

    cfg = rt.config
    if not cfg.backend_options and "backend" not in cfg.model_fields_set:
        return
    try:
        rt.backend_options(cfg.backend, dict(cfg.backend_options))
    except (ConfigError, UnknownNameError) as e:
        raise ConfigError(f"{path}: backend {cfg.backend!r}: {e}") from None
    check_path_options(cfg.backend, dict(cfg.backend_options), f"{path}: backend_options:")


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
