"""The SSH backend beyond the conformance suite: connections, host keys, auth, errors, the
scrubbed environment, the host pool, and sweep — all against real sshds on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from conftest import (
    SESSION_ROOT,
    base_options,
    env,
    free_port,
    host_pubkey,
    ports,
    remote,
    remote_leftovers,
)

from hermes_core import Runtime
from hermes_core.errors import ConfigError, SandboxError

pytestmark = pytest.mark.ssh


@pytest.fixture
async def runtime():
    rt = Runtime()
    yield rt
    await rt.aclose()


@pytest.fixture
async def make(runtime):
    made = []

    async def make_sandbox(**options):
        sb = runtime.create_sandbox("ssh", base_options(**options))
        made.append(sb)
        return await sb.start()

    yield make_sandbox
    await asyncio.gather(*(s.close() for s in made), return_exceptions=True)


def opts_for(*port_list: int, **extra) -> dict:
    return base_options(*port_list, **extra)


# ---------------------------------------------------------------------- connections

async def test_each_sandbox_has_its_own_connection(make):
    a, b = await make(hosts=opts_for(ports()[0])["hosts"]), await make(hosts=opts_for(ports()[0])["hosts"])
    # The parent of a remote command is the sshd process serving that one connection.
    sa = {(await a.exec("ps -o ppid= -p $$")).output.strip() for _ in range(3)}
    sb_ = {(await b.exec("ps -o ppid= -p $$")).output.strip() for _ in range(3)}
    assert len(sa) == 1 and len(sb_) == 1, "one sandbox must keep one connection"
    assert sa != sb_, "two sandboxes must never share a connection"


async def test_remote_environment_is_scrubbed(make, monkeypatch):
    monkeypatch.setenv("HERMES_TEST_SECRET_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("HERMES_TEST_FORWARDED", "forwarded-value")
    sb = await make(pass_env=["HERMES_TEST_FORWARDED"], env={"MINE": "x y"})
    out = (await sb.exec("env")).output
    names = {line.split("=", 1)[0] for line in out.splitlines() if "=" in line}
    assert "sk-do-not-leak" not in out
    assert not names & {"SSH_CONNECTION", "SSH_CLIENT", "MAIL", "HERMES_TEST_SECRET_API_KEY"}
    assert "HERMES_TEST_FORWARDED=forwarded-value" in out.splitlines()
    assert "MINE=x y" in out.splitlines()
    assert f"HOME={sb.remote_dir}/home" in out.splitlines()
    r = await sb.exec("echo $X", env={"X": "per call"})
    assert r.output == "per call\n"


async def test_workdir_is_under_the_configured_root(make):
    sb = await make()
    home = (await remote("echo $HOME")).strip()
    assert sb.remote_dir.startswith(SESSION_ROOT.replace("~", home) + "/hermes-")
    assert (await sb.exec("pwd")).output.strip() == sb.workdir
    owner = json.loads(await remote(f"cat {sb.remote_dir}/owner.json"))
    assert owner["driver_pid"] == os.getpid() and owner["sandbox_id"] == sb.sandbox_id


# ---------------------------------------------------------------------- host keys and auth

async def test_unknown_host_key_is_refused_and_says_how_to_add_it(runtime, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    sb = runtime.create_sandbox("ssh", opts_for(ports()[0], known_hosts=str(empty)))
    from hermes_backend_ssh import HostKeyError

    with pytest.raises(HostKeyError, match="ssh-keyscan -p") as e:
        await sb.start()
    assert str(empty) in str(e.value) and "host_key" in str(e.value)


async def test_missing_known_hosts_file_trusts_nothing(runtime, tmp_path):
    sb = runtime.create_sandbox("ssh", opts_for(ports()[0], known_hosts=str(tmp_path / "absent")))
    from hermes_backend_ssh import HostKeyError

    with pytest.raises(HostKeyError, match="does not exist"):
        await sb.start()


async def test_pinned_host_key_accepted_and_wrong_pin_refused(runtime, tmp_path):
    user = env("HERMES_SSH_TEST_USER")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    pinned = opts_for(known_hosts=str(empty))
    pinned["hosts"] = [{"host": "127.0.0.1", "port": ports()[0], "user": user, "host_key": host_pubkey()}]
    sb = await runtime.create_sandbox("ssh", pinned).start()
    assert (await sb.exec("echo pinned")).output == "pinned\n"
    await sb.close()

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    wrong = dict(pinned)
    wrong["hosts"] = [{**pinned["hosts"][0], "host_key": (tmp_path / "other.pub").read_text().strip()}]
    from hermes_backend_ssh import HostKeyError

    with pytest.raises(HostKeyError, match="pinned host_key"):
        await runtime.create_sandbox("ssh", wrong).start()


async def test_auth_refused_names_the_fix(runtime, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    sb = runtime.create_sandbox("ssh", opts_for(ports()[0], client_keys=[str(tmp_path / "stranger")]))
    from hermes_backend_ssh import AuthenticationError

    with pytest.raises(AuthenticationError, match="authorized_keys") as e:
        await sb.start()
    assert env("HERMES_SSH_TEST_USER") in str(e.value)


async def test_unreachable_host(runtime):
    port = free_port()
    sb = runtime.create_sandbox("ssh", opts_for(port))
    from hermes_backend_ssh import HostUnreachableError

    with pytest.raises(HostUnreachableError, match=f"connection refused by 127.0.0.1:{port}.*sshd running"):
        await sb.start()


async def test_bad_options_are_config_errors(runtime):
    with pytest.raises(ConfigError, match="hosts"):
        runtime.create_sandbox("ssh", {"hosts": []})
    with pytest.raises(ConfigError, match="host"):
        runtime.create_sandbox("ssh", {"hosts": ["a@b@c:x"]})


# ---------------------------------------------------------------------- remote problems

async def test_remote_bash_missing(runtime):
    from hermes_backend_ssh import RemoteSetupError

    sb = runtime.create_sandbox("ssh", opts_for(ports()[0], path="/nonexistent-bin"))
    with pytest.raises(RemoteSetupError, match="has no bash.*install it"):
        await sb.start()
    out = await remote(f"ls -A $HOME/{SESSION_ROOT[2:]} 2>/dev/null | grep -c {sb.dir_name}; true")
    assert out.strip() in ("", "0"), "a failed start must leave no directory"


async def test_remote_disk_full_at_start(runtime):
    from hermes_backend_ssh import RemoteDiskFullError

    sb = runtime.create_sandbox("ssh", opts_for(ports()[0], min_free_bytes=1 << 60))
    with pytest.raises(RemoteDiskFullError, match="disk of SSH host .* is full"):
        await sb.start()


async def test_remote_disk_full_during_write(make):
    small = os.environ.get("HERMES_SSH_TEST_SMALL_FS")
    if not small:
        pytest.skip("HERMES_SSH_TEST_SMALL_FS (a small tmpfs the suite mounts) is not set")
    from hermes_backend_ssh import RemoteDiskFullError

    sb = await make(root=small, min_free_bytes=0)
    await sb.write_bytes("fits.bin", b"x" * 1000)
    with pytest.raises(RemoteDiskFullError, match="disk is full"):
        await sb.write_bytes("too-big.bin", os.urandom(8 << 20))
    assert (await sb.exec("ls -A; ls -A ../.parts")).output == "fits.bin\n", "no partial file may remain"
    assert await sb.read_bytes("fits.bin") == b"x" * 1000


async def test_exec_timeout_keeps_output_so_far_and_sandbox(make):
    sb = await make()
    r = await sb.exec("for i in 1 2 3; do echo line$i; done; sleep 30", timeout=1)
    assert r.exit_code == 124 and r.timed_out
    assert r.output.startswith("line1\nline2\nline3\n")
    assert (await sb.exec("echo ok")).output == "ok\n"


async def test_reading_a_fifo_is_refused_not_blocking(make):
    sb = await make()
    await sb.exec("mkfifo pipe")
    with pytest.raises(SandboxError, match="not a regular file"):
        await asyncio.wait_for(sb.read_bytes("pipe"), 10)


# ---------------------------------------------------------------------- the pool

def _host_of(sb) -> int:
    return sb.host.port


async def test_pool_places_on_the_least_loaded_host(make):
    a, b = ports()
    boxes = [await make(capacity=2) for _ in range(4)]
    assert sorted(_host_of(x) for x in boxes) == sorted([a, a, b, b])
    from hermes_core.errors import SandboxError as SE

    with pytest.raises(SE, match="no SSH host had a free slot"):
        await make(capacity=2, placement_timeout=0.3)
    freed = boxes[1].host.port
    await boxes[1].close()
    again = await make(capacity=2)
    assert _host_of(again) == freed


async def test_pool_waits_for_a_free_slot(make):
    first = await make(hosts=opts_for(ports()[0])["hosts"], capacity=1)
    later = asyncio.ensure_future(make(hosts=opts_for(ports()[0])["hosts"], capacity=1, placement_timeout=20))
    await asyncio.sleep(0.5)
    assert not later.done(), "the host is full: the second sandbox must wait"
    await first.close()
    sb = await asyncio.wait_for(later, 20)
    assert (await sb.exec("echo placed")).output == "placed\n"


async def test_unreachable_host_is_skipped_and_marked_down(make):
    dead = free_port()
    sb = await make(hosts=opts_for(dead, ports()[0])["hosts"])
    assert _host_of(sb) == ports()[0]
    sb2 = await make(hosts=opts_for(dead, ports()[0])["hosts"])
    assert _host_of(sb2) == ports()[0]
    down = sb._pool.down([(h.host, h.port, env("HERMES_SSH_TEST_USER")) for h in sb.opts.hosts])
    assert list(down) == [("127.0.0.1", dead, env("HERMES_SSH_TEST_USER"))]
    assert "refused" in next(iter(down.values()))


async def test_every_host_down_is_a_clear_error(runtime):
    from hermes_backend_ssh import HostUnreachableError

    p1, p2 = free_port(), free_port()
    sb = runtime.create_sandbox("ssh", opts_for(p1, p2))
    with pytest.raises(HostUnreachableError, match="every SSH host of the pool is down"):
        await sb.start()


# ---------------------------------------------------------------------- faults

async def test_killed_sshd_mid_rollout_fails_clearly_and_new_rollouts_go_elsewhere(make, private_sshd):
    from hermes_backend_ssh import HostDownError
    from conftest import remote_force_remove

    victim = private_sshd()
    user = env("HERMES_SSH_TEST_USER")
    hosts = [f"{user}@127.0.0.1:{victim.port}", f"{user}@127.0.0.1:{ports()[0]}"]
    known = _known_hosts_with(victim.port)
    doomed = await make(hosts=hosts, known_hosts=known)
    other = await make(hosts=hosts, known_hosts=known)
    assert _host_of(doomed) == victim.port and _host_of(other) == ports()[0]
    await doomed.shell("cd /tmp")
    running = asyncio.ensure_future(doomed.exec("sleep 30"))
    await asyncio.sleep(0.5)
    victim.kill()
    try:
        with pytest.raises(HostDownError, match=f"127.0.0.1:{victim.port} stopped answering.*infrastructure"):
            await asyncio.wait_for(running, 20)
        with pytest.raises(HostDownError, match="infrastructure failure"):
            await doomed.exec("echo next call")
        with pytest.raises(HostDownError):
            await doomed.shell("pwd")
        with pytest.raises(HostDownError):
            await doomed.write_bytes("f", b"x")
        await asyncio.wait_for(doomed.close(), 20)  # cleanup still returns
        assert (await other.exec("echo unaffected")).output == "unaffected\n"
        fresh = await make(hosts=hosts, known_hosts=known)
        assert _host_of(fresh) == ports()[0], "new rollouts must go to the hosts that answer"
    finally:
        await remote_force_remove(doomed.remote_dir)


async def test_host_that_stops_answering_is_detected_by_keepalive(make, proxy):
    from hermes_backend_ssh import HostDownError

    sb = await make(hosts=_pinned_hosts(proxy.port), keepalive_interval=0.5, down_for=60)
    running = asyncio.ensure_future(sb.exec("sleep 30"))
    await asyncio.sleep(0.3)
    proxy.freeze()  # packets stop; no RST, no FIN: only keepalives can tell
    with pytest.raises(HostDownError, match="stopped answering"):
        await asyncio.wait_for(running, 20)
    down = sb._pool.down([sb._key])
    assert sb._key in down
    proxy.frozen = False
    await asyncio.wait_for(sb.close(), 20)
    assert await remote_leftovers(sb.remote_dir) == []


async def test_dropped_connection_mid_upload_reports_failure_and_leaves_no_file(make, proxy, tmp_path):
    sb = await make(hosts=_pinned_hosts(proxy.port))
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(16 << 20))
    proxy.cut_after(4 << 20)
    with pytest.raises(SandboxError, match="connection to SSH host .* was lost"):
        await sb.put_file(src, "dest/big.bin")
    assert proxy.tripped.is_set()
    listing = await remote(f"ls -A {sb.workdir}/dest {sb.remote_dir}/.parts 2>&1; true")
    assert "big.bin" not in listing, f"a partial destination file remains: {listing}"
    proxy.budget = None
    await sb.close()  # reconnects (the proxy accepts new connections) and removes the directory
    assert await remote_leftovers(sb.remote_dir) == []


async def test_dropped_connection_mid_download_reports_failure_and_leaves_no_file(make, proxy, tmp_path):
    sb = await make(hosts=_pinned_hosts(proxy.port))
    await sb.exec("head -c 16000000 /dev/urandom > big.bin")
    proxy.cut_after(4 << 20)
    dest = tmp_path / "out" / "big.bin"
    with pytest.raises(SandboxError, match="lost"):
        await sb.get_file("big.bin", dest)
    assert not dest.exists()
    assert list((tmp_path / "out").iterdir()) == [], "no partial local file may remain"
    proxy.budget = None
    await sb.close()
    assert await remote_leftovers(sb.remote_dir) == []


def _pinned_hosts(port: int) -> list[dict]:
    return [{"host": "127.0.0.1", "port": port, "user": env("HERMES_SSH_TEST_USER"), "host_key": host_pubkey()}]


def _known_hosts_with(port: int) -> str:
    path = env("HERMES_SSH_TEST_KNOWN_HOSTS") + f".{port}"
    with open(env("HERMES_SSH_TEST_KNOWN_HOSTS")) as f:
        base = f.read()
    with open(path, "w") as f:
        f.write(base + f"[127.0.0.1]:{port} {host_pubkey()}\n")
    return path


# ---------------------------------------------------------------------- sweep

async def test_sweep_removes_only_dead_owners_leftovers(make):
    from hermes_backend_ssh import sweep

    live = await make(hosts=opts_for(ports()[0])["hosts"])
    dead = await make(hosts=opts_for(ports()[0])["hosts"])
    m = "hermes-ssh-sweep-sleeper"
    await live.spawn(f"exec -a {m}-live sleep 300")
    await dead.exec(f"setsid bash -c 'exec -a {m}-dead sleep 300' >/dev/null 2>&1 < /dev/null &")
    # Make `dead` look like a killed driver's sandbox: its owner is a process that has exited.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = json.loads(await dead.read_bytes(f"{dead.remote_dir}/owner.json"))
    owner.update(driver_pid=gone.pid, driver_start_ticks=1)
    await dead.write_bytes(f"{dead.remote_dir}/owner.json", json.dumps(owner).encode())

    removed = await sweep(options=opts_for(ports()[0]))
    assert any(dead.remote_dir in line for line in removed), removed
    assert not any(live.remote_dir in line for line in removed), "a live driver's sandbox was swept"
    assert await remote_leftovers(dead.remote_dir) == []
    left = await remote_leftovers(live.remote_dir)
    assert f"remote directory {live.remote_dir}" in left, "the live sandbox's directory was removed"
    assert any("process" in x for x in left), "the live sandbox's process was killed"
    assert (await live.exec("echo alive")).output == "alive\n"


async def test_sweep_respects_older_than_and_uses_recorded_hosts(make):
    from hermes_backend_ssh import sweep

    sb = await make(hosts=opts_for(ports()[0])["hosts"])
    owner = json.loads(await sb.read_bytes(f"{sb.remote_dir}/owner.json"))
    owner.update(driver_pid=2**22 + 7, driver_start_ticks=1)
    await sb.write_bytes(f"{sb.remote_dir}/owner.json", json.dumps(owner).encode())
    # No options: the hosts this machine used are recorded (XDG_DATA_HOME is the test's).
    assert not any(sb.remote_dir in x for x in await sweep(older_than=3600))
    assert any(sb.remote_dir in x for x in await sweep(older_than=0)), "recorded hosts were not swept"


async def test_sweep_kills_marked_processes_whose_directory_is_gone(make):
    from hermes_backend_ssh import sweep

    sb = await make(hosts=opts_for(ports()[0])["hosts"])
    m = "hermes-ssh-orphan-sleeper"
    await sb.exec(f"setsid bash -c 'exec -a {m} sleep 300' >/dev/null 2>&1 < /dev/null &")
    await remote(f"rm -rf {sb.remote_dir}")
    assert any("process" in x for x in await remote_leftovers(sb.remote_dir))
    removed = await sweep(options=opts_for(ports()[0]))
    assert any("killed processes" in x and sb.remote_dir in x for x in removed), removed
    assert await remote_leftovers(sb.remote_dir) == []


# ---------------------------------------------------------------------- registration

def test_registration_imports_nothing_heavy():
    code = (
        "import sys, hermes_backend_ssh; from hermes_core import Runtime; Runtime().backends.get('ssh'); "
        "print('asyncssh' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_close_kills_processes_that_left_the_group(runtime):
    """setsid daemons and double forks escape the process group; the marker still finds them."""
    from conftest import marked_processes_script

    sb = await runtime.create_sandbox("ssh", base_options(ports()[0])).start()
    m = "hermes-ssh-escapee"
    await sb.exec(f"setsid bash -c 'exec -a {m}-1 sleep 300' >/dev/null 2>&1 < /dev/null &")
    await sb.exec(f"( ( exec -a {m}-2 sleep 300 ) & ) >/dev/null 2>&1")
    await sb.shell(f"nohup setsid bash -c 'exec -a {m}-3 sleep 300' >/dev/null 2>&1 &")
    await asyncio.sleep(0.3)
    running = (await remote(marked_processes_script(sb.remote_dir))).split()
    assert len(running) >= 3, f"the escapees did not start: {running}"
    await sb.close()
    assert await remote_leftovers(sb.remote_dir) == []


async def test_cancelled_exec_kills_the_remote_command(make):
    from hermes_core.testing import count_processes_script

    sb = await make()
    m = "hermes-ssh-cancelled"
    task = asyncio.ensure_future(sb.exec(f"(exec -a {m} sleep 60) & exec -a {m} sleep 60"))
    for _ in range(100):
        if (await sb.exec(count_processes_script(m))).output.strip() == "2":
            break
        await asyncio.sleep(0.05)
    assert (await sb.exec(count_processes_script(m))).output.strip() == "2"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        left = (await sb.exec(count_processes_script(m))).output.strip()
        if left == "0":
            break
        await asyncio.sleep(0.05)
    assert left == "0", "a cancelled command kept running on the host"


async def test_exec_returns_when_a_background_child_keeps_output_open(make):
    sb = await make()
    # The child holds the channel's stdout open; the command itself is done.
    r = await asyncio.wait_for(sb.exec("(sleep 30) & echo done"), 15)
    assert r.exit_code == 0 and r.output == "done\n"


async def test_a_host_that_comes_back_is_used_again(make, private_sshd):
    from hermes_backend_ssh import HostUnreachableError

    first = private_sshd()
    port = first.port
    hosts = [f"{env('HERMES_SSH_TEST_USER')}@127.0.0.1:{port}"]
    known = _known_hosts_with(port)
    first.kill()
    with pytest.raises(HostUnreachableError):
        await make(hosts=hosts, known_hosts=known, down_for=600)
    private_sshd(port)  # the host is back; it is still marked down for 600 s
    sb = await make(hosts=hosts, known_hosts=known, down_for=600)
    assert (await sb.exec("echo back")).output == "back\n"
    await sb.close()  # before the private sshd goes (fixtures end in reverse order)
    assert await remote_leftovers(sb.remote_dir) == []


async def test_upload_through_a_symlink_to_another_filesystem(make):
    small = os.environ.get("HERMES_SSH_TEST_SMALL_FS")
    if not small:
        pytest.skip("HERMES_SSH_TEST_SMALL_FS (a small tmpfs the suite mounts) is not set")
    sb = await make()
    target = f"{small}/{sb.dir_name}-elsewhere"
    await sb.exec(["mkdir", "-p", target])
    await sb.exec(["ln", "-s", target, "elsewhere"])
    try:
        await sb.write_bytes("elsewhere/f.bin", b"across filesystems")
        assert await sb.read_bytes("elsewhere/f.bin") == b"across filesystems"
        assert (await sb.exec(["ls", "-A", target])).output == "f.bin\n", "a temporary upload file remains"
    finally:
        await sb.exec(["rm", "-rf", target])
