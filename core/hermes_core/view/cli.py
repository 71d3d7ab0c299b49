"""``hermes view RUN_DIR [RUN_DIR...]``: serve runs on 127.0.0.1, write a static report, or print one rollout.

Wiring into the ``hermes`` dispatcher: this module has ``register(subparsers)`` like every
command module, and :func:`main` runs it standalone (``python -m hermes_core.view``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from .loader import ViewError

__all__ = ["add_arguments", "main", "register", "run"]

DEFAULT_PORT = 8765
DESCRIPTION = (
    "Look at runs written by `hermes eval --out DIR`: a local web view (run list, per-task table with "
    "pass@k, transcripts, filters, runs side by side), a self-contained static report (--out), or one "
    "rollout's transcript in the terminal (--rollout ID --text)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (several: compared side by side)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; another address exposes your runs)")
    p.add_argument("--out", metavar="FILE", help="write a self-contained HTML report to FILE instead of serving")
    p.add_argument("--embed-limit", type=float, default=200.0, metavar="MB",
                   help="transcript HTML embedded in --out at most (default 200 MB); the rest is left out with a note")
    p.add_argument("--atif", metavar="DIR", help="export every rollout to DIR as ATIF (Harbor's trajectory format), one JSON file each")
    p.add_argument("--rollout", metavar="ID", help="one rollout (its rollout_id, e.g. hello-file#0, or its row number)")
    p.add_argument("--text", action="store_true", help="print the --rollout transcript in the terminal")
    p.add_argument("--full", action="store_true", help="with --text: do not fold long output")


def register(sub: Any) -> None:
    """Add ``view`` to the ``hermes`` subcommands (``sub`` is argparse's subparsers action)."""
    p = sub.add_parser("view", help="look at runs: local web view, static HTML report, or a transcript",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ViewError(f"{message} (see hermes view --help)")


def main(argv: list[str] | None = None) -> int:
    """Run ``hermes view``; returns the exit code (2 with one line on stderr for bad input)."""
    parser = _Parser(prog="hermes view", description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        return run(args)
    except ViewError as e:
        print(f"hermes view: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    """The command's body (the ``func`` of the ``view`` subparser).

    Raises:
        ViewError: bad input (not a run directory, unknown rollout, conflicting options).
    """
    from .loader import open_runs

    if args.text and not args.rollout:
        raise ViewError("--text prints one rollout: add --rollout ID (a rollout_id from results.jsonl)")
    modes = [flag for flag, on in (("--out", args.out), ("--atif", args.atif), ("--rollout", args.rollout)) if on]
    if len(modes) > 1:
        raise ViewError(f"{' and '.join(modes)} do different things (report, export, one transcript): use one")
    if not 0 <= args.port <= 65535:
        raise ViewError(f"--port {args.port} is not a TCP port (0-65535)")
    if args.embed_limit < 0:
        raise ViewError("--embed-limit must be at least 0 (MB)")
    t0 = time.perf_counter()
    runs = open_runs(args.runs)
    opened = time.perf_counter() - t0
    if args.rollout:
        return _text(runs, args.rollout, full=args.full)
    if args.atif:
        return _atif(runs, Path(args.atif))
    if args.out:
        from .html import write_report

        counts = write_report(runs, args.out, embed_limit=int(args.embed_limit * 1_000_000))
        note = f", {counts['omitted']} transcripts left out (over --embed-limit)" if counts["omitted"] else ""
        print(f"wrote {args.out} ({counts['bytes'] / 1e6:.1f} MB: {counts['rollouts']} rollouts, "
              f"{counts['embedded']} transcripts{note})", file=sys.stderr)
        return 0
    return _serve(runs, args.host, args.port, opened)


def _atif(runs: list[Any], out: Path) -> int:
    from .atif import export_run

    if out.exists() and not out.is_dir():
        raise ViewError(f"--atif {str(out)!r} exists and is not a directory")
    for run in runs:
        target = out if len(runs) == 1 else out / run.name
        counts = export_run(run, target)
        note = f" ({counts['skipped']} without a trajectory skipped)" if counts["skipped"] else ""
        print(f"wrote {counts['written']} ATIF trajectories of {run.name} to {target}{note}", file=sys.stderr)
    return 0


def _text(runs: list[Any], rollout: str, *, full: bool) -> int:
    from .text import print_rollout

    hits = [(run, rec["_n"]) for run in runs for rec in run.records if rec["rollout_id"] == rollout]
    if not hits and rollout.isdigit() and len(runs) == 1 and runs[0].record(int(rollout)) is not None:
        hits = [(runs[0], int(rollout))]
    if not hits:
        some = ", ".join(r["rollout_id"] for r in runs[0].records[:3])
        where = runs[0].name if len(runs) == 1 else f"{len(runs)} runs"
        raise ViewError(f"no rollout {rollout!r} in {where}" + (f" (e.g. {some})" if some else " (it has no rollouts)"))
    if len({id(r) for r, _ in hits}) > 1:
        raise ViewError(f"rollout {rollout!r} is in several of the runs given; give only the RUN_DIR you mean")
    run, n = hits[-1]  # `hermes run --out` appends the same id: the newest is the last
    print_rollout(run, n, full=full)
    return 0


def _serve(runs: list[Any], host: str, port: int, opened: float) -> int:
    from .server import ViewServer, is_loopback

    try:
        server = ViewServer(runs, host, port)
    except OSError as e:
        hint = "; pass --port 0 for any free port" if getattr(e, "errno", None) == 98 else ""
        raise ViewError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    if not is_loopback(host):
        print(f"hermes view: warning: bound to {host}, not loopback: anyone who can reach it can read these runs",
              file=sys.stderr)
    total = sum(len(r.records) for r in runs)
    print(f"hermes view: {len(runs)} run(s), {total} rollouts (opened in {opened:.2f}s) at {server.url}  (Ctrl-C to stop)",
          flush=True)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return 0
