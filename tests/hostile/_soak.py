"""Shared by the soak tests (local and docker): the hostile things a rollout does, the driver's
resource gauges, and the host-side leftover checks. Every sandbox call is under an explicit
timeout, so a hang fails the soak instead of stalling it."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

T = TypeVar("T")

#: Seconds any one sandbox call of a soak may take (generous: a loaded 2-core engine is slow).
CALL_TIMEOUT = 120.0


async def within(aw: Awaitable[T], seconds: float = CALL_TIMEOUT) -> T:
    """``await aw``, failing the test with a TimeoutError if it takes longer than ``seconds``."""
    async with asyncio.timeout(seconds):
        return await aw


# --------------------------------------------------------------------------- driver gauges


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Peak:
    """The driver's peak RSS (MiB), open fds and threads while the block runs, sampled every
    20 ms on a thread (a sampler on the event loop would miss a busy loop's peaks)."""

    def __init__(self) -> None:
        self.rss = 0.0
        self.fds = 0
        self.threads = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-gauge", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.rss = max(self.rss, rss_mb())
            self.fds = max(self.fds, open_fds())
            self.threads = max(self.threads, threading.active_count())
            self.samples += 1
            if self._stop.wait(0.02):
                return


# --------------------------------------------------------------------------- host processes


def procs_tagged(tag: str) -> list[int]:
    """Host processes whose argv[0] starts with ``tag`` (set with ``exec -a``); a container's
    processes are host processes too."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().startswith(tag.encode()):
                        out.append(int(pid))
            except OSError:
                pass
    return out


def procs_of_containers(ids: set[str]) -> dict[int, str]:
    """Host processes that belong to one of these containers: in its cgroup, or naming it on
    their command line (the engine's per-container shim)."""
    found: dict[int, str] = {}
    if not ids:
        return found
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text() + Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace").replace("\0", " ")
        except OSError:
            continue
        for cid in ids:
            if cid in text:
                found[int(pid)] = cid[:12]
                break
    return found


async def wait_until(check: Callable[[], Any], seconds: float, step: float = 0.2) -> Any:
    """Poll ``check`` (run on a thread: /proc scans are slow) until it returns something falsy
    or ``seconds`` pass; return its last value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        value = await asyncio.to_thread(check)
        if not value or loop.time() > end:
            return value
        await asyncio.sleep(step)


# --------------------------------------------------------------------------- the hostile things

# Each takes the rollout's ToolContext, a tag for the processes it leaves (their argv[0]) and a
# host directory for downloads. They only act; the soaks check the aftermath.


async def _flood(ctx, tag, tmp):
    text = await within(ctx.call_tool("terminal", {"command": "head -c 20000000 /dev/zero | tr '\\0' 'f'"}))
    assert len(text) <= ctx.max_output_chars


async def _fifo(ctx, tag, tmp):
    await within(ctx.terminal("mkfifo p"))
    assert "not a regular file" in (await within(ctx.read_file("p")))["error"]


async def _cancel(ctx, tag, tmp):
    await within(ctx.call_tool("terminal", {"command": f"exec -a {tag} sleep 300"}))


async def _timeout(ctx, tag, tmp):
    out = await within(ctx.call_tool("terminal", {"command": f"(exec -a {tag} sleep 300)", "timeout": 0.5}))
    assert "timed out" in out.lower() or "timeout" in out.lower(), out[:300]
    # and the sandbox stays usable
    assert (await within(ctx.terminal("echo alive")))["output"].strip() == "alive"


async def _daemon(ctx, tag, tmp):
    await within(ctx.terminal(f"nohup bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &"))


async def _env_i_setsid(ctx, tag, tmp):
    await within(ctx.terminal(f"env -i setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &"))


async def _overwrite_marker(ctx, tag, tmp):
    await within(ctx.call_tool(
        "terminal", {"command": f"HERMES_SANDBOX_ID=x setsid bash -c 'exec -a {tag} sleep 300' >/dev/null 2>&1 &"}))


async def _double_fork(ctx, tag, tmp):
    await within(ctx.terminal(f"(env -i setsid bash -c '(exec -a {tag} sleep 300 &); exit' &) >/dev/null 2>&1"))


async def _background_job(ctx, tag, tmp):
    await within(ctx.call_tool("terminal", {"command": f"exec -a {tag} sleep 300", "background": True}))


async def _sigterm_sleepers(ctx, tag, tmp):
    # Background sleepers that ignore SIGTERM and SIGHUP (an ignored signal stays ignored
    # across exec): only a SIGKILL, or the sandbox going away, ends them.
    await within(ctx.terminal(
        f"for i in 1 2 3; do nohup bash -c \"trap '' TERM HUP; exec -a {tag} sleep 300\" >/dev/null 2>&1 & done"))


async def _huge_file(ctx, tag, tmp):
    # A sparse terabyte with a first line: reading returns what it returns, and a download
    # stops at the cap instead of filling the host disk or driver memory.
    await within(ctx.terminal("printf 'first line\\n' > huge && truncate -s 1T huge"))
    got = await within(ctx.read_file("huge"))
    assert len(str(got)) <= 4 * ctx.max_output_chars + 4096
    ctx.sandbox.max_download_bytes = 8 << 20
    r = await within(ctx.download_file("huge", tmp / "huge"))
    assert r["success"] is False and "max_download_bytes" in r["error"], r
    assert not (tmp / "huge").exists()


async def _symlink_root(ctx, tag, tmp):
    # A path the verifier downloads is a link to /: nothing outside the destination is written,
    # no link to / is recreated on the host, and the size cap holds.
    await within(ctx.terminal("ln -s / result && mkdir out && ln -s / out/root && echo x > out/f"))
    ctx.sandbox.max_download_bytes = 8 << 20
    await within(ctx.download_file("result", tmp / "result"))
    assert not os.path.islink(tmp / "result")
    await within(ctx.download_dir("out", tmp / "out"))
    await within(ctx.download_dir("result", tmp / "r"))
    for p in tmp.rglob("*"):
        assert not (p.is_symlink() and os.path.realpath(p) == "/"), p


HOSTILE: dict[str, Callable[..., Awaitable[None]]] = {
    "ok": lambda ctx, tag, tmp: within(ctx.terminal("true")),
    "raise": lambda ctx, tag, tmp: within(ctx.terminal("true")),
    "cancel": _cancel,
    "timeout": _timeout,
    "daemon": _daemon,
    "env_i_setsid": _env_i_setsid,
    "overwrite_marker": _overwrite_marker,
    "double_fork": _double_fork,
    "flood": _flood,
    "fifo": _fifo,
    "background_job": _background_job,
    "sigterm_sleepers": _sigterm_sleepers,
    "huge_file": _huge_file,
    "symlink_root": _symlink_root,
}

#: The kinds that leave a tagged process running in the sandbox until close.
LEAVES_PROCESSES = {"cancel", "daemon", "env_i_setsid", "overwrite_marker", "double_fork", "background_job",
                    "sigterm_sleepers"}


async def hostile_rollout(rt, kind: str, tag: str, tmp: Path, *, limit: float, require_started: bool = False,
                          on_start: Callable[[Any], None] | None = None, **rollout: Any) -> str:
    """One rollout of ``rt`` doing ``kind``: ``raise`` raises out of the rollout, ``cancel``
    is cancelled mid-command; both are what a buggy or interrupted verifier does. The whole
    rollout, close included, must finish within ``limit`` seconds. With ``require_started``,
    a kind that leaves processes must show them on the host before the rollout closes (so the
    soak cannot pass because the hostile part silently did nothing). ``on_start(ctx)`` is called
    once the sandbox has started. Returns ``kind``."""

    async def body() -> None:
        async with rt.rollout(**rollout) as ctx:
            if on_start is not None:
                on_start(ctx)
            await HOSTILE[kind](ctx, tag, tmp)
            if require_started and kind in LEAVES_PROCESSES and kind != "cancel":
                missing = await wait_until(lambda: not procs_tagged(tag), 30)
                assert not missing, f"the {kind!r} processes ({tag}) never appeared on the host"
            if kind == "raise":
                raise RuntimeError("verifier bug")

    task = asyncio.ensure_future(body())
    try:
        async with asyncio.timeout(limit):
            if kind == "cancel":
                await asyncio.sleep(0.3)
                task.cancel()
            await asyncio.shield(task)
    except RuntimeError as e:
        if kind != "raise" or str(e) != "verifier bug":
            raise
    except asyncio.CancelledError:
        if kind != "cancel" or not task.cancelled():
            raise
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pytest.fail(f"a {kind!r} rollout did not finish (close included) within {limit:g} s")
    return kind
