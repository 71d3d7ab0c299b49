"""``hermes view``: read runs in a browser (a local server or a static HTML report) or a terminal.

Public pieces: :mod:`.stats` (pass@k and per-task aggregates), :mod:`.loader` (lazy run
directories), :mod:`.transcript` (decoded messages), :func:`.cli.main` (the command).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``hermes view`` as a function (see :func:`hermes_core.view.cli.main`)."""
    from .cli import main as _main

    return _main(argv)
