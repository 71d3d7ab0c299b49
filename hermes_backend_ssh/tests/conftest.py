"""Fixtures for the SSH backend's tests: the real sshds started by ``scripts/suites/ssh.sh``
(ports, user and keys in ``HERMES_SSH_TEST_*``), private sshds a test may kill, a TCP proxy a
test may cut, and a session check that nothing the tests made remains on the hosts.

Run through the suite (``bash scripts/suites/ssh.sh``), which installs openssh, creates the test
user and keys and starts two sshds on 127.0.0.1. Without those variables the tests skip —
unless ``HERMES_REQUIRE_SSH=1`` (CI), which turns a missing setup into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest_plugins = ["hermes_core.testing"]

REQUIRED = ("HERMES_SSH_TEST_PORTS", "HERMES_SSH_TEST_USER", "HERMES_SSH_TEST_KEY", "HERMES_SSH_TEST_KNOWN_HOSTS")
#: One remote root per test session, so the final check sees only what these tests made.
SESSION_ROOT = f"~/.cache/hermes-ssh-tests-{secrets.token_hex(4)}"


def _problem() -> str | None:
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if missing:
        return f"{', '.join(missing)} not set (run the tests through scripts/suites/ssh.sh)"
    return None


def env(name: str) -> str:
    return os.environ[name]


def ports() -> list[int]:
    return [int(p) for p in env("HERMES_SSH_TEST_PORTS").split(",")]


def host_pubkey() -> str:
    return " ".join(Path(env("HERMES_SSH_TEST_HOST_KEY") + ".pub").read_text().split()[:2])


def base_options(*port_list: int, **extra) -> dict:
    """Backend options for the test sshds (both of the suite's by default)."""
    user = env("HERMES_SSH_TEST_USER")
    return {
        "hosts": [f"{user}@127.0.0.1:{p}" for p in (port_list or ports())],
        "client_keys": [env("HERMES_SSH_TEST_KEY")],
        "known_hosts": env("HERMES_SSH_TEST_KNOWN_HOSTS"),
        "agent": False,
        "root": SESSION_ROOT,
        "capacity": 16,
        **extra,
    }


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ssh: needs the real sshds started by scripts/suites/ssh.sh")
    config._hermes_ssh_problem = _problem()  # type: ignore[attr-defined]
    # Where the backend remembers hosts for `hermes sandbox sweep`: not the real user's file.
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="hermes-ssh-test-data-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config._hermes_ssh_problem  # type: ignore[attr-defined]
    if problem is None:
        return
    if os.environ.get("HERMES_REQUIRE_SSH") == "1":
        raise pytest.UsageError(f"HERMES_REQUIRE_SSH=1 but {problem}")
    skip = pytest.mark.skip(reason=f"ssh tests skipped: {problem}")
    for item in items:
        if "ssh" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------- remote inspection

async def bare_connection(port: int | None = None, user: str | None = None):
    """A plain asyncssh connection to a test sshd, for assertions (not the backend's code)."""
    import asyncssh

    return await asyncssh.connect(
        "127.0.0.1", port or ports()[0], username=user or env("HERMES_SSH_TEST_USER"),
        client_keys=[env("HERMES_SSH_TEST_KEY")], known_hosts=env("HERMES_SSH_TEST_KNOWN_HOSTS"),
        agent_path=None, config=None,
    )


async def remote(command: str, port: int | None = None, user: str | None = None) -> str:
    conn = await bare_connection(port, user)
    try:
        r = await conn.run(command, check=False)
        return str(r.stdout)
    finally:
        conn.close()


def marked_processes_script(prefix: str) -> str:
    """Remote sh: pids of live processes whose HERMES_SSH_SANDBOX starts with ``prefix``."""
    import shlex

    return (
        f"for f in $(grep -lzF -- {shlex.quote('HERMES_SSH_SANDBOX=' + prefix)} /proc/[0-9]*/environ 2>/dev/null); do "
        "p=${f#/proc/}; p=${p%/environ}; s=$(cut -d' ' -f3 < /proc/$p/stat 2>/dev/null); "
        "[ \"$s\" = Z ] || [ -z \"$s\" ] || echo $p; done"
    )


async def remote_leftovers(directory: str, user: str | None = None) -> list[str]:
    import shlex

    out = await remote(
        f"test -e {shlex.quote(directory)} && echo DIR; {marked_processes_script(directory)}", user=user
    )
    found = []
    for line in out.split():
        found.append(f"remote directory {directory}" if line == "DIR" else f"remote process {line} of {directory}")
    return found


async def remote_force_remove(directory: str) -> None:
    """Test teardown for sandboxes whose host was killed: remove what they left, via sshd A."""
    from hermes_backend_ssh import _remote

    await remote(_remote.internal(_remote.REMOVE, f"{_remote.MARKER}={directory}", directory))


@pytest.fixture(scope="session", autouse=True)
def nothing_left_on_the_hosts(pytestconfig: pytest.Config):
    """After the whole session, no directory or process made by these tests may remain."""
    yield
    if pytestconfig._hermes_ssh_problem is not None:  # type: ignore[attr-defined]
        return
    root = SESSION_ROOT.replace("~/", "")
    script = (
        f"r=$HOME/{root}; ls -A \"$r\" 2>/dev/null | sed 's/^/DIR /'; "
        f"for f in $(grep -lzF -- \"HERMES_SSH_SANDBOX=$r/\" /proc/[0-9]*/environ 2>/dev/null); do "
        "p=${f#/proc/}; p=${p%/environ}; s=$(cut -d' ' -f3 < /proc/$p/stat 2>/dev/null); "
        "[ \"$s\" = Z ] || [ -z \"$s\" ] || echo \"PROC $p $(tr '\\0' ' ' < /proc/$p/cmdline)\"; done"
    )
    users = [env("HERMES_SSH_TEST_USER")] + ([os.environ["HERMES_SSH_TEST_SH_USER"]] if os.environ.get("HERMES_SSH_TEST_SH_USER") else [])
    found = []
    for user in users:  # each user can only see its own processes' environments
        deadline = time.monotonic() + 10
        while True:
            out = asyncio.run(remote(script, user=user)).strip()
            if not out or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        asyncio.run(remote(f"rmdir \"$HOME/{root}\" 2>/dev/null; true", user=user))
        if out:
            found.append(f"as {user}:\n{out}")
    assert not found, "left behind on the SSH host by the tests:\n" + "\n".join(found)


# ---------------------------------------------------------------------- a killable sshd

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


class PrivateSshd:
    """An sshd of this test alone (same host key, user and authorized keys as the suite's)."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateSshd:
        conf = self.workdir / f"sshd-{self.port}.conf"
        conf.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {env('HERMES_SSH_TEST_HOST_KEY')}\n"
            f"PidFile {self.workdir}/sshd-{self.port}.pid\n"
            f"AuthorizedKeysFile {env('HERMES_SSH_TEST_AUTHORIZED_KEYS')}\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"AllowUsers {env('HERMES_SSH_TEST_USER')} {os.environ.get('HERMES_SSH_TEST_SH_USER', '')}\nMaxSessions 64\nPrintMotd no\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private sshd on port {self.port} did not start")

    def kill(self) -> None:
        """The host dies: the listener and every connection's sshd (and what runs under it)."""
        if self.proc is None:
            return
        victims = [self.proc.pid, *_descendants(self.proc.pid)]
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self.proc = None


@pytest.fixture
def private_sshd(tmp_path):
    made: list[PrivateSshd] = []

    def make(port: int | None = None) -> PrivateSshd:
        d = PrivateSshd(tmp_path, port).start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


# ---------------------------------------------------------------------- a TCP proxy to cut

class Proxy:
    """127.0.0.1:port → the suite's sshd A. ``cut()`` resets every open connection;
    ``freeze()`` stops forwarding (the host "stops answering") while keeping sockets open;
    ``cut_after(n)`` resets once n more bytes went towards the client (or from it)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.frozen = False
        self.budget: int | None = None
        self.tripped = asyncio.Event()

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        self.links.append((w, uw))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    while self.frozen:
                        await asyncio.sleep(0.05)
                    if self.budget is not None:
                        self.budget -= len(data)
                        if self.budget <= 0:
                            self.tripped.set()
                            self.cut()
                            return
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                try:
                    dst.close()
                except OSError:
                    pass

        await asyncio.gather(pump(r, uw), pump(ur, w))

    def cut(self) -> None:
        for a, b in self.links:
            for w in (a, b):
                try:
                    w.transport.abort()
                except OSError:
                    pass
        self.links.clear()

    def cut_after(self, nbytes: int) -> None:
        self.budget = nbytes

    def freeze(self) -> None:
        self.frozen = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def proxy():
    p = await Proxy(ports()[0]).start()
    yield p
    await p.close()
