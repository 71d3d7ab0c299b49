"""The stateful shell behind the ``terminal`` tool, generic over ``Sandbox.spawn``.

One long-lived ``bash`` per sandbox, fed commands on stdin. Each command is evaluated *in* the
shell (so ``cd``/``export`` persist) with job control on (so every pipeline gets its own process
group), stdin from ``/dev/null``, and is followed by a sentinel line carrying its exit status.
On timeout the foreground job's process groups are killed and the shell lives on; a command that
never yields (a builtin loop) costs the shell, which is restarted on the next call.

Until a command needs it, no shell runs: while none has started, a command that is one external
program with literal arguments (``pytest -q tests``, ``sleep 0.5``; no quotes, expansions,
operators, builtins) cannot change a shell's state, so a backend that can tell exactly what a
fresh shell would run (``Sandbox._exec_in_fresh_shell``: the program bash finds on ``PATH`` and
the environment bash gives it) runs it directly, with the same output, exit status, limits and
timeout. That saves the shell's start (~2.5 ms of CPU) for rollouts whose commands are simple.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import signal
from collections.abc import Mapping

from ..errors import SandboxError
from ._output import DEFAULT_OUTPUT_LIMIT, omitted_note
from ._types import TIMEOUT_EXIT_CODE, ExecResult, Process, Spawner, timeout_note

__all__ = ["ShellSession", "fresh_shell_child", "job_report", "simple_command"]

#: Exported by the session shell for every command: no pager waits on a pipe, no colours.
SHELL_EXPORTS = {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb"}

#: Words bash does not look up on PATH in command position (bash 5.2 `compgen -b`, `compgen -k`).
_NOT_ON_PATH = frozenset(
    ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs "
    "disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill let local "
    "logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt source suspend "
    "test times trap true type typeset ulimit umask unalias unset wait "
    "if then else elif fi case esac for select while until do done in function time { } ! [[ ]] coproc".split()
)
#: A word bash takes literally: no quoting, expansion, glob, operator, comment or history character.
_LITERAL = re.compile(r"[A-Za-z0-9_./,:+@=%-]+")
#: Variables whose presence can make a fresh bash run a command differently (startup files,
#: options, ignored executables, imported functions) or export something of its own.
_SHELL_VARS = frozenset({"ENV", "SHELLOPTS", "EXECIGNORE", "POSIXLY_CORRECT", "IFS", "PWD", "OLDPWD", "CDPATH"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def simple_command(command: str) -> list[str] | None:
    """``command``'s words if it is one external program with literal arguments (what bash would
    run without doing anything else), else ``None``."""
    text = command.strip(" \t\n")
    if not text or "\n" in text:
        return None
    words = re.split(r"[ \t]+", text)
    if not all(_LITERAL.fullmatch(w) for w in words):
        return None
    first = words[0]
    if first in _NOT_ON_PATH or "=" in first or first.startswith("%"):  # builtin, keyword, assignment, job
        return None
    return words


def fresh_shell_child(words: list[str], env: Mapping[str, str], cwd: str) -> tuple[str, dict[str, str]] | None:
    """For a backend whose sandbox paths are host paths: the program and the environment that a
    new session shell, started with ``env`` in ``cwd``, would run ``words`` with (bash's PATH
    search, ``SHLVL``, ``PWD``, ``_`` and :data:`SHELL_EXPORTS`), or ``None`` wherever bash could
    do anything else (the command not found or not runnable, a script without ``#!``, a variable
    that changes bash's startup, a relative PATH entry)."""
    for k in env:
        if k in _SHELL_VARS or k.startswith("BASH") or not _NAME.fullmatch(k):
            return None
    level = env.get("SHLVL", "0")
    if not (level.isascii() and level.isdigit() and len(level) <= 3 and int(level) < 998):
        return None
    name = words[0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(cwd, name)]
    else:
        dirs = env.get("PATH")
        if dirs is None:
            return None
        candidates = []
        for d in dirs.split(":"):
            if not d.startswith("/"):
                return None  # "" and relative entries: bash's rules for these are not ours to copy
            candidates.append(d + name if d.endswith("/") else f"{d}/{name}")
    for path in candidates:
        if _runnable(path):
            break
    else:
        return None  # not found (or not runnable): bash's own message and status
    if "/" in name:
        path = name  # exec'd as typed, in ``cwd``: what a script's interpreter gets as its $0
    child = dict(env)
    child.update(SHELL_EXPORTS)
    child["SHLVL"] = str(int(level) + 1)
    child["PWD"] = os.path.realpath(cwd)
    child["_"] = path
    return path, child


def job_report(pid: int, signum: int, words: list[str]) -> str:
    """The line bash prints when a foreground job of the session dies by a signal (none for
    SIGINT and SIGPIPE; the short form for SIGTERM); its line number is the session's first."""
    if signum in (signal.SIGINT, signal.SIGPIPE):
        return ""
    name = signal.strsignal(signum) or f"Signal {signum}"
    if signum == signal.SIGTERM:
        return f"{name}\n"
    return f"bash: line 1: {pid:5d} {name:<24}{' '.join(words)}\n"


def _runnable(path: str, interpreter: bool = False) -> bool:
    """A regular executable file the kernel execs itself: ELF, or ``#!`` naming such a file
    (bash runs a file without either as a script of its own)."""
    try:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return False
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    if head.startswith(b"\x7fELF"):
        return True
    if interpreter or not head.startswith(b"#!"):
        return False
    line = head[2:].split(b"\n", 1)[0].strip().split()
    return bool(line) and line[0].startswith(b"/") and _runnable(os.fsdecode(line[0]), interpreter=True)

#: A command's end (session nonce, sequence number, exit status) and the shell's first line
#: (nonce, pid, jobs file); compiled once per process.
_DONE = re.compile(rb"\n__HERMES_([0-9a-f]{16})_(\d+)_RC_(\d+)__\n")
_READY = re.compile(rb"__HERMES_([0-9a-f]{16})_PID_(\d+)__(.*)\n")

#: Kill the shell's children that were not background jobs before the command started.
_KILL_FOREGROUND = r"""
keep=" $(cat "$2" 2>/dev/null | tr '\n' ' ') "
for c in $(cat /proc/$1/task/*/children 2>/dev/null); do
  case "$keep" in *" $c "*) continue;; esac
  kill -KILL -- "-$c" 2>/dev/null || kill -KILL "$c" 2>/dev/null
done
exit 0
"""


def _read_exactly(script: bytes) -> bytes:
    """A line that makes bash read ``script`` (which follows it) in one go and run it: bash
    reads commands from a pipe one byte per syscall, ``read -N`` reads a known count in bulk."""
    return f"LC_ALL=C read -r -N {len(script)} __hermes_s;eval \"$__hermes_s\"\n".encode()


class ShellSession:
    """A persistent ``bash`` inside one sandbox (see module docstring)."""

    #: The shell a session spawns (pipes, no terminal): it reads its commands from stdin, so a
    #: backend may put a first line of its own before them (the local backend joins its cgroup).
    ARGV = ("bash", "--noprofile", "--norc")
    #: Seconds a new shell has to print its first line (a backend may raise it).
    start_timeout: float = 60.0

    def __init__(self, sandbox: Spawner, *, kill_grace: float = 2.0):
        self.sandbox = sandbox
        self.kill_grace = kill_grace
        self.proc: Process | None = None
        self.pid: int | None = None
        self._jobs_file = ""
        self._pending = bytearray()
        self._lock = asyncio.Lock()
        self._note = ""
        self._started_once = False
        self._reapers: set[asyncio.Future[None]] = set()
        self._begin_capture(DEFAULT_OUTPUT_LIMIT)
        # The patterns are compiled once per process (_DONE, _READY); a match counts only with
        # this session's secret nonce (anything else is the command's own output) and, for the
        # end of a command, its sequence number.
        self._session = secrets.token_hex(8)
        self._done = _DONE
        self._seq = 0
        self._want: bytes | None = None

    async def _ensure(self, first: bytes = b"") -> bool:
        """Start the shell unless it runs; ``first`` (a command's script) is sent with the
        shell's own setup, in one write, when a shell is started. Whether it was sent."""
        if self.proc is not None and self.proc.returncode is None:
            return False
        if self.proc is not None:
            await self._discard()
        nonce = secrets.token_hex(8)
        self._pending = bytearray()
        self.proc = await self.sandbox.spawn(list(self.ARGV), pty=False)
        ready = f"__HERMES_{nonce}_PID_"
        init = (
            f"set -m +o history\nexport {' '.join(f'{k}={v}' for k, v in SHELL_EXPORTS.items())}\n"
            f"__hermes_jobs=\"${{TMPDIR:-/tmp}}/.hermes-jobs-{nonce}\"\n"
            # Before each command: read its text (a byte count, then the bytes), note the jobs
            # already running (what a timeout must spare; no file at all while there are none:
            # making one costs an inode per rollout); after it: its sentinel.
            "__hermes_pre() { LC_ALL=C read -r -N \"$1\" __hermes_cmd; if jobs %% >/dev/null 2>&1; "
            "then jobs -p > \"$__hermes_jobs\"; elif [[ -e $__hermes_jobs ]]; then : > \"$__hermes_jobs\"; fi; }\n"
            f"__hermes_post() {{ printf '\\n__HERMES_{self._session}_%s_RC_%s__\\n' \"$1\" \"$2\"; }}\n"
            f"printf '{ready}%s__%s\\n' $$ \"$__hermes_jobs\"\n"
        ).encode()
        await self.proc.write(_read_exactly(init) + init + first)
        try:
            async with asyncio.timeout(self.start_timeout):
                out = await self._read_until(_READY, nonce.encode())
        except TimeoutError:
            await self._discard()
            raise SandboxError(
                f"the shell in sandbox {self.sandbox.sandbox_id} did not answer within {self.start_timeout:g}s "
                "(an overloaded host or engine?)"
            ) from None
        if out is None:
            raise SandboxError(f"could not start a shell in sandbox {self.sandbox.sandbox_id}")
        self._jobs_file = out[1][1].decode()
        self.pid = int(out[1][0])
        if self._started_once:
            self._note = (
                "[hermes: the previous shell ended; this command runs in a new shell "
                "(working directory and exported variables were reset)]\n"
            )
        self._started_once = True
        return bool(first)

    #: Unscanned-tail room kept beyond the limit, so a sentinel is never split by a drop.
    _WINDOW = 4096

    def _begin_capture(self, limit: int) -> None:
        """Start one command's output: at most ``limit`` bytes kept (head + tail)."""
        self._half = max(1, limit // 2)
        self._head = bytearray()
        self._dropped = 0

    def _captured(self, before: bytes) -> str:
        """Head, a note of what was dropped, and the tail that ends at the sentinel: at most the
        limit, cut where a one-shot command's output is cut (half head, half tail)."""
        head, half = bytes(self._head), self._half
        if self._dropped or len(head) + len(before) > 2 * half:
            both = head + before  # the head is short only while nothing was dropped
            keep = both[-half:] if len(both) - half > half else both[half:]
            dropped = self._dropped + len(both) - half - len(keep)
            data = both[:half] + omitted_note(dropped) + keep
        else:
            data = head + before
        self._head, self._dropped = bytearray(), 0
        return data.decode("utf-8", "replace")

    async def _read_until(self, pattern: re.Pattern[bytes], nonce: bytes | None = None) -> tuple[bytes, tuple[bytes, ...]] | None:
        """Read until ``pattern`` matches with ``nonce`` (default: this session's) as its first
        group; returns (bytes before it, its other groups), or None at EOF.

        Memory stays bounded whatever the command prints: past the first half of the limit,
        only the last half (plus a small window) is kept while scanning; the rest is counted
        in ``self._dropped``. Cancellation-safe: bytes read so far stay in ``self._head`` and
        ``self._pending``.
        """
        assert self.proc is not None
        nonce = nonce or self._session.encode()
        scanned = 0
        pos = 0
        while True:
            m = pattern.search(self._pending, pos)
            if m and m.group(1) != nonce:  # looks like a sentinel, but is the command's output
                pos = m.start() + 1
                continue
            if m and pattern is _DONE and m.group(2) != self._want:
                del self._pending[: m.end()]  # an earlier command's sentinel: not ours
                scanned = pos = 0
                continue
            if m:
                before, groups = bytes(self._pending[: m.start()]), m.groups()[1:]
                del self._pending[: m.end()]  # the match object must not be used after this
                return before, groups
            scanned = len(self._pending)
            chunk = await self.proc.read(1 << 16)
            if not chunk:
                return None
            self._pending += chunk
            over = len(self._pending) - self._half - self._WINDOW
            if over > 0:
                # Everything before the last `_half + _WINDOW` bytes was scanned already (a
                # sentinel is far shorter than the window): keep it as head or drop it.
                move = min(over, max(0, self._half - len(self._head)))
                if move:
                    self._head += self._pending[:move]
                self._dropped += over - move
                del self._pending[:over]
                scanned = max(0, scanned - over)
            pos = max(0, scanned - 128)

    async def run(self, command: str, *, timeout: float | None = None, max_output: int | None = None) -> ExecResult:
        """Run ``command`` in the shell; at most ``max_output`` bytes of its output are kept
        (default: the sandbox's ``output_limit``), head and tail, with a note of the cut."""
        async with self._lock:
            limit = max_output or getattr(self.sandbox, "output_limit", None) or DEFAULT_OUTPUT_LIMIT
            if self.proc is None and (words := simple_command(command)) is not None:
                fresh = getattr(self.sandbox, "_exec_in_fresh_shell", None)
                result = await fresh(words, timeout=timeout, max_output=limit) if fresh else None
                if result is not None:
                    note, self._note = self._note, ""
                    return dataclasses.replace(result, output=note + result.output) if note else result
            self._seq += 1
            done = self._done
            self._want = str(self._seq).encode()
            text = f"{command}\n".encode()
            # One short line (bash reads a pipe a byte at a time: ~60 reads), then the command's
            # bytes, which `read -N` takes in bulk whatever they hold (no delimiter to forge).
            script = (f"__hermes_pre {len(text)};eval \"$__hermes_cmd\" </dev/null 2>&1;"
                      f"__hermes_post {self._seq} $?\n").encode() + text
            # A new shell gets the command with its setup (one write, no round trip between).
            sent = await self._ensure(script)
            self._begin_capture(limit)
            assert self.proc is not None
            note, self._note = self._note, ""
            try:
                if not sent:
                    await self.proc.write(script)
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(timeout):
                    found = await self._read_until(done)
            except TimeoutError:
                return await self._timed_out(done, timeout, note)
            except asyncio.CancelledError:
                # The caller gave up (a rollout deadline): the command must not keep running, and
                # its late output must not leak into the next caller's (e.g. the verifier's).
                self._abandon()
                raise
            if found is None:  # the shell itself ended (exit, exec, killed)
                code = await self.proc.wait(5.0)
                text = note + self._captured(self._take_pending_bytes())
                self._note = ""
                await self._discard()
                return ExecResult(code if code is not None else 1, text)
            before, m = found
            return ExecResult(int(m[1]), note + self._captured(before))

    def _take_pending_bytes(self) -> bytes:
        data = bytes(self._pending)
        self._pending = bytearray()
        return data

    async def _timed_out(self, done: re.Pattern[bytes], timeout: float | None, note: str) -> ExecResult:
        await self.kill_foreground()
        try:
            async with asyncio.timeout(self.kill_grace):
                found = await self._read_until(done)
        except TimeoutError:
            found = None
        if found is not None:
            text = self._captured(found[0])
            tail = timeout_note(timeout)
        else:  # the shell itself was busy (a builtin loop): it has to go
            text = self._captured(self._take_pending_bytes())
            await self._discard()
            tail = (
                f"\n[hermes: command timed out after {timeout:g}s; the shell was restarted "
                "(working directory and exported variables were reset)]"
            )
        return ExecResult(TIMEOUT_EXIT_CODE, note + text + tail, timed_out=True)

    async def kill_foreground(self, pid: int | None = None, jobs_file: str | None = None) -> None:
        """Kill the process groups of the running command (not earlier background jobs)."""
        pid = self.pid if pid is None else pid
        if pid is None:
            return
        jobs = self._jobs_file if jobs_file is None else jobs_file
        await self.sandbox.exec(["sh", "-c", _KILL_FOREGROUND, "sh", str(pid), jobs], timeout=10)

    def _abandon(self) -> None:
        """Drop the shell at once (no await: we are being cancelled); kill it in the background."""
        proc, pid, jobs = self.proc, self.pid, self._jobs_file
        self.proc, self.pid, self._pending = None, None, bytearray()
        self._note = (
            "[hermes: the previous command was interrupted; this command runs in a new shell "
            "(working directory and exported variables were reset)]\n"
        )
        self._started_once = False  # the note above already says it

        async def reap() -> None:
            try:
                if not self.sandbox.closed:
                    await self.kill_foreground(pid, jobs)
            except Exception:
                pass  # the sandbox's close sweeps whatever is left
            if proc is not None and proc.returncode is None:
                try:
                    await proc.kill(grace=0.2)
                except Exception:
                    pass

        task = asyncio.ensure_future(reap())
        self._reapers.add(task)
        task.add_done_callback(self._reapers.discard)

    async def _discard(self) -> None:
        proc, self.proc, self.pid = self.proc, None, None
        if proc is not None and proc.returncode is None:
            try:
                await proc.kill(grace=0.2)
            except Exception:  # the sandbox may already be gone; close() sweeps the rest
                pass

    async def close(self) -> None:
        """Stop the shell; the sandbox's own close reaps whatever its jobs left running."""
        await self._discard()
