"""Backend tests beyond the conformance suite: the exact command lines, env passing, images,
binds, network, writable modes, errors, sweep with the owner-is-gone rule, cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest
from conftest import BUSYBOX_IMAGE, SHIM, TEST_IMAGE, shim_instances

from hermes_backend_singularity._cli import cli_env, encode_env
from hermes_backend_singularity._owner import Owner, instance_name, owner_is_gone, parse_name
from hermes_core import Runtime
from hermes_core.errors import SandboxError


@pytest.fixture
async def make(shim_options):
    rt = Runtime()
    made = []

    async def make(**overrides):
        sb = rt.create_sandbox("singularity", {**shim_options, **overrides})
        made.append(sb)
        return await sb.start()

    yield make
    await asyncio.gather(*(s.close() for s in made), return_exceptions=True)
    await rt.aclose()


def _shim(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SHIM, *args], capture_output=True, timeout=120, env=env)


# ---------------------------------------------------------------------------- pure parts


def test_owner_round_trip_and_liveness():
    me = Owner.me()
    name = instance_name("hermes", me)
    assert parse_name("hermes", name) == me
    assert parse_name("other", name) is None
    assert parse_name("hermes", "hermes-manual-instance") is None
    assert not owner_is_gone(me)
    assert owner_is_gone(Owner(me.pid, me.start + 1, me.boot, me.host, me.created)), "a reused pid is another owner"
    assert owner_is_gone(Owner(me.pid, me.start, "ffffffff" if me.boot != "ffffffff" else "00000000", me.host, 0))
    assert not owner_is_gone(Owner(1 << 30, 1, me.boot, "0" * 8 if me.host != "0" * 8 else "1" * 8, 0)), (
        "an owner on another host is never judged from here"
    )


def test_cli_env_drops_injecting_variables():
    env = cli_env({"PATH": "/bin", "APPTAINERENV_X": "1", "SINGULARITYENV_Y": "2", "APPTAINER_CACHEDIR": "/c"})
    assert env == {"PATH": "/bin", "APPTAINER_CACHEDIR": "/c"}


def test_encode_env_uses_flags_only_for_values_pflag_keeps_verbatim():
    flags, text = encode_env({"A": "plain, with comma", "B": "x=y", "C": '"q"', "D": "two\nlines", "E": ""})
    assert flags == ["--env", "A=plain, with comma", "--env", "E="]
    assert text == "export B=x=y\nexport C='\"q\"'\nexport D='two\nlines'\n"


# ---------------------------------------------------------------------------- command lines


@pytest.mark.shim
async def test_exact_command_lines(make, tmp_path, monkeypatch):
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("APPTAINER_SHIM_ARGV_LOG", str(log))
    data = tmp_path / "data"
    data.mkdir()
    sb = await make(binds=[f"{data}:/data:ro"], env={"GREETING": "hi"})
    await sb.exec(["true"])
    name = sb.instance_name
    await sb.close()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    overlay = os.path.join(sb.host_dir, "overlay")
    assert lines[0] == [
        "instance", "start", "--containall", "--no-home", "--overlay", overlay, "--net", "--network", "none",
        "--bind", f"{data}:/data:ro", f"docker://{TEST_IMAGE}", name,
    ]
    mkdir, true = lines[1], lines[2]
    for argv, cwd, cmd in ((mkdir, "/", ["mkdir", "-p", "--", "/workspace"]), (true, "/workspace", ["true"])):
        assert argv[:2] == ["exec", "--cleanenv"]
        assert argv[2:4] == ["--env", "GREETING=hi"]
        assert argv[4] == "--env" and argv[5].startswith("HERMES_APPTAINER_EXEC=")
        assert argv[6:] == ["--pwd", cwd, f"instance://{name}", *cmd]
    assert lines[-1] == ["instance", "stop", "--force", name]


@pytest.mark.shim
def test_shim_rejects_what_the_backend_does_not_use():
    for args, needle in (
        (["exec", "--nv", "instance://x", "true"], "--nv"),
        (["instance", "start", "--writable", "img", "n"], "--writable"),
        (["build", "out.sif", "docker://x"], "build"),
        (["run", "img"], "run"),
        (["exec", "img.sif", "true"], "instance://"),
    ):
        r = _shim(*args)
        assert r.returncode == 255, (args, r)
        assert b"FATAL" in r.stderr and needle.encode() in r.stderr, (args, r.stderr)


# ---------------------------------------------------------------------------- environment


@pytest.mark.shim
async def test_host_secrets_stay_out_and_named_variables_come_in(make, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-host-key")
    monkeypatch.setenv("APPTAINERENV_SMUGGLED", "injected")
    monkeypatch.setenv("FORWARD_ME", "forwarded")
    sb = await make(pass_env=["FORWARD_ME"], env={"SET_HERE": "set"})
    out = (await sb.exec(["env"])).output
    assert "sk-secret-host-key" not in out and "SMUGGLED" not in out
    assert "FORWARD_ME=forwarded\n" in out and "SET_HERE=set\n" in out
    # The shim honours the flag: without --cleanenv the host environment does come in, so the
    # assertion above would catch a backend that forgot it.
    r = _shim("exec", f"instance://{sb.instance_name}", "env")
    assert r.returncode == 0 and b"sk-secret-host-key" in r.stdout


@pytest.mark.shim
async def test_hostile_env_values_round_trip(make):
    values = {
        "A": "x=y=z", "B": '"quoted"', "C": "a,b,c", "D": "multi\nline", "E": "", "F": "it's $HOME `id` $(id)",
        "G": 'mixed "q", =, and \\ backslash', "H": "ünïcødé 🙂",
    }
    sb = await make(env={"BASE": "b=1"})
    for name, value in values.items():
        r = await sb.exec(["printenv", name], env=values)
        assert r.exit_code == 0 and r.output == value + "\n", (name, r)
    r = await sb.exec(["printenv", "BASE"])
    assert r.output == "b=1\n"
    assert os.listdir(os.path.join(sb.host_dir, "env")) == [], "env files of finished commands are removed"


# ---------------------------------------------------------------------------- images, binds, network, writable


@pytest.mark.shim
async def test_local_sif_image(make, tmp_path):
    sif = tmp_path / "busybox.sif"
    r = _shim("pull", str(sif), f"docker://{BUSYBOX_IMAGE}")
    assert r.returncode == 0, r.stderr
    sb = await make(image=str(sif))
    assert (await sb.exec(["test", "-e", "/etc/debian_version"])).exit_code != 0, "not the Debian image"
    r = await sb.exec(["sh", "-c", "echo from busybox; pwd"])
    assert r.exit_code == 0 and r.output == "from busybox\n/workspace\n"


@pytest.mark.shim
async def test_per_task_image_replaces_the_default(shim_options):
    rt = Runtime()
    try:
        sb = await rt.create_sandbox("singularity", {**shim_options, "image": f"docker://{BUSYBOX_IMAGE}"}).start()
        try:
            assert (await sb.exec(["test", "-e", "/etc/debian_version"])).exit_code == 1
        finally:
            await sb.close()
        sb = await rt.create_sandbox("singularity", shim_options).start()
        try:
            assert (await sb.exec(["test", "-e", "/etc/debian_version"])).exit_code == 0
        finally:
            await sb.close()
    finally:
        await rt.aclose()


@pytest.mark.shim
async def test_bind_mounts_read_only_and_read_write(make, tmp_path):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "in.txt").write_text("from host")
    sb = await make(binds=[f"{ro}:/data:ro", f"{rw}:/out"])
    assert (await sb.exec(["cat", "/data/in.txt"])).output == "from host"
    assert (await sb.exec(["sh", "-c", "echo x > /data/new"])).exit_code != 0
    assert not (ro / "new").exists()
    assert (await sb.exec(["sh", "-c", "echo result > /out/r.txt"])).exit_code == 0
    assert (rw / "r.txt").read_text() == "result\n"


@pytest.mark.shim
async def test_network_none_leaves_only_loopback(make):
    sb = await make()
    r = await sb.exec(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"])
    assert r.output.split() == ["lo"]
    host = await make(network="host")
    r = await host.exec(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"])
    assert len(r.output.split()) > 1, "with network='host' the host's interfaces are visible"


@pytest.mark.shim
async def test_writable_tmpfs_and_read_only(make, tmp_path):
    sb = await make(writable="tmpfs")
    await sb.write_bytes("f.bin", b"\x00tmpfs")
    assert await sb.read_bytes("f.bin") == b"\x00tmpfs"
    assert not os.path.exists(os.path.join(sb.host_dir, "overlay"))
    big = await sb.exec(["sh", "-c", "head -c 100000000 /dev/zero > /big"])
    assert big.exit_code != 0, "--writable-tmpfs is small (the shim caps it at apptainer's default 64 MiB)"
    ro = await make(writable="none", workdir="/tmp")
    assert (await ro.exec(["touch", "/etc/x"])).exit_code != 0
    assert (await ro.exec(["touch", "/tmp/x"])).exit_code == 0, "--containall gives a private writable /tmp"


@pytest.mark.shim
async def test_sandboxes_do_not_share_tmp_or_home_with_each_other_or_the_host(make, tmp_path):
    a, b = await asyncio.gather(make(), make())
    await a.exec(["sh", "-c", "echo a > /tmp/from-a; echo a > ~/from-a"])
    assert "from-a" not in (await b.exec(["sh", "-c", "ls /tmp ~"])).output
    host_file = f"/tmp/hermes-host-only-{os.getpid()}"
    with open(host_file, "w") as f:
        f.write("host")
    try:
        assert (await a.exec(["test", "-e", host_file])).exit_code == 1
        assert (await a.exec(["test", "-e", os.path.expanduser("~/.cache")])).exit_code == 1
    finally:
        os.unlink(host_file)


# ---------------------------------------------------------------------------- processes and exit codes


@pytest.mark.shim
async def test_signal_exit_codes_come_back_through_the_launcher(make):
    sb = await make()
    assert (await sb.exec("kill -TERM $$")).exit_code == 128 + signal.SIGTERM
    assert (await sb.exec("kill -KILL $$")).exit_code == 128 + signal.SIGKILL
    proc = await sb.spawn("trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.05; done")
    buf = b""
    while b"ready" not in buf:
        buf += await asyncio.wait_for(proc.read(), 30)
    await proc.signal(signal.SIGUSR1)
    assert await proc.wait(30) == 3
    rest = b""
    while chunk := await asyncio.wait_for(proc.read(), 30):
        rest += chunk
    assert b"got-usr1" in buf + rest


@pytest.mark.shim
async def test_timeout_also_kills_what_left_the_process_group(make):
    sb = await make()
    count = "n=0; for p in /proc/[0-9]*; do grep -q '[h]ermes-escapee' $p/cmdline 2>/dev/null && n=$((n+1)); done; echo $n"
    r = await sb.exec(
        "m=hermes-esc; setsid bash -c \"exec -a ${m}apee sleep 60\" & "  # the marker is not in this text
        f"for i in $(seq 100); do [ $({count}) -ge 1 ] && break; sleep 0.05; done; echo running=$({count}); sleep 60",
        timeout=5,
    )
    assert r.exit_code == 124 and "timed out" in r.output
    assert "running=1" in r.output, "the escapee must have been running when the command timed out"
    for _ in range(50):
        left = (await sb.exec(["sh", "-c", count])).output.strip()
        if left == "0":
            break
        await asyncio.sleep(0.1)
    assert left == "0"
    assert (await sb.exec(["echo", "usable"])).output == "usable\n"


@pytest.mark.shim
async def test_missing_command_is_127(make):
    sb = await make()
    r = await sb.exec(["no-such-command-hermes"])
    assert r.exit_code == 127 and "executable file not found" in r.output
    r = await sb.exec(["/etc/passwd"])
    assert r.exit_code == 126


# ---------------------------------------------------------------------------- errors


@pytest.mark.shim
async def test_errors_say_what_to_do(make, tmp_path, monkeypatch):
    with pytest.raises(SandboxError, match="binary"):
        await make(binary="definitely-not-apptainer")
    with pytest.raises(SandboxError, match="does not exist on this host"):
        await make(image=str(tmp_path / "missing.sif"))
    with pytest.raises(SandboxError, match="instance start failed.*not present on the local Docker engine"):
        await make(image="docker://hermes-test/not-there:1")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxError, match="neither 'apptainer' nor 'singularity' is on PATH"):
        await make(binary=None)
    assert shim_instances() == []


@pytest.mark.shim
async def test_binary_found_on_path(make, monkeypatch):
    monkeypatch.setenv("PATH", f"{os.path.dirname(SHIM)}:{os.environ['PATH']}")
    sb = await make(binary=None)
    assert sb.binary == SHIM
    assert (await sb.exec(["echo", "ok"])).output == "ok\n"


@pytest.mark.shim
async def test_instance_stopped_outside_hermes(make):
    from hermes_backend_singularity import InstanceGoneError

    sb = await make()
    assert _shim("instance", "stop", "--force", sb.instance_name).returncode == 0
    with pytest.raises(InstanceGoneError, match="no longer exists"):
        await sb.exec(["true"])
    await sb.close()


@pytest.mark.shim
async def test_cancelled_start_leaves_nothing(shim_options):
    rt = Runtime()
    try:
        for delay in (0.05, 0.3, 0.8):
            sb = rt.create_sandbox("singularity", shim_options)
            task = asyncio.ensure_future(sb.start())
            await asyncio.sleep(delay)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await sb.close()
            assert sb.instance_name not in shim_instances()
            assert not os.path.exists(sb.host_dir)
    finally:
        await rt.aclose()


# ---------------------------------------------------------------------------- sweep


@pytest.mark.shim
async def test_sweep_removes_only_what_dead_owners_left(make, tmp_path):
    from hermes_backend_singularity import sweep
    from hermes_backend_singularity._backend import default_overlay_root

    dead = subprocess.Popen(["sleep", "0"])
    with open(f"/proc/{dead.pid}/stat", "rb") as f:
        start = int(f.read().rsplit(b")", 1)[1].split()[19])
    dead.wait()
    me = Owner.me()
    gone = Owner(dead.pid, start, me.boot, me.host, int(time.time()) - 7200)
    gone_name = instance_name("hermes", gone)
    young_gone_name = instance_name("hermes", Owner(dead.pid, start, me.boot, me.host, int(time.time())))
    manual = "hermes-manual-instance"
    live = await make()  # owned by this (live) test process
    for name in (gone_name, young_gone_name, manual):
        r = _shim("instance", "start", "--containall", "--no-home", f"docker://{BUSYBOX_IMAGE}", name)
        assert r.returncode == 0, r.stderr
    orphan_dir = os.path.join(default_overlay_root(), instance_name("hermes", gone))
    os.makedirs(orphan_dir)
    try:
        removed = await sweep(3600, binary=SHIM)
        assert len(removed) == 2 and gone_name in removed[0] and orphan_dir in removed[1], removed
        left = shim_instances()
        assert gone_name not in left
        assert {young_gone_name, manual, live.instance_name} <= set(left), "young, foreign and live instances stay"
        assert not os.path.exists(orphan_dir)
        removed = await sweep(None, binary=SHIM)
        assert [young_gone_name in line for line in removed] == [True]
        assert (await live.exec(["echo", "alive"])).output == "alive\n"
    finally:
        for name in (gone_name, young_gone_name, manual):
            _shim("instance", "stop", "--force", name)


# ---------------------------------------------------------------------------- registration


async def test_registered_as_singularity_and_apptainer():
    rt = Runtime()
    try:
        for name in ("singularity", "apptainer"):
            sb = rt.create_sandbox(name, {"binary": SHIM, "image": "docker://x"})
            assert type(sb).__name__ == "SingularitySandbox" and sb.opts.binary == SHIM
            await sb.close()  # never started: nothing to stop
        assert rt.backends.get("singularity").sweep is not None
        assert rt.backends.get("apptainer").sweep is None, "one sweep for the two names"
    finally:
        await rt.aclose()


def test_options_are_validated():
    from pydantic import ValidationError

    from hermes_backend_singularity import SingularityOptions

    for bad in ({"workdir": "rel"}, {"binds": ["/a:/b:rx"]}, {"binds": ["rel:/b"]}, {"image": "ftp://x"},
                {"pass_env": ["NOT-A-NAME"]}, {"name_prefix": "Bad-Prefix"}, {"writable": "yes"}, {"nope": 1}):
        with pytest.raises(ValidationError):
            SingularityOptions(**bad)
    assert SingularityOptions(binds=["/a", "/a:/b", "/a:/b:ro"]).binds == ["/a", "/a:/b", "/a:/b:ro"]


@pytest.mark.shim
async def test_cancelled_exec_leaves_no_process(make):
    sb = await make()
    task = asyncio.ensure_future(
        sb.exec("setsid bash -c 'exec -a hermes-cancelled sleep 60' & exec -a hermes-cancelled sleep 60")
    )
    count = "n=0; for p in /proc/[0-9]*; do grep -q '[h]ermes-cancelled' $p/cmdline 2>/dev/null && n=$((n+1)); done; echo $n"
    for _ in range(100):
        running = (await sb.exec(["sh", "-c", count])).output.strip()
        if running == "2":
            break
        await asyncio.sleep(0.1)
    assert running == "2", "the command and its setsid escapee should both be running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        left = (await sb.exec(["sh", "-c", count])).output.strip()
        if left == "0":
            break
        await asyncio.sleep(0.1)
    assert left == "0"


@pytest.mark.shim
async def test_hermes_sandbox_sweep_command(tmp_path):
    """``hermes sandbox sweep --backend singularity`` finds the CLI on PATH and applies the rule."""
    import shutil as _shutil
    import sys

    dead = subprocess.Popen(["sleep", "0"])
    with open(f"/proc/{dead.pid}/stat", "rb") as f:
        start = int(f.read().rsplit(b")", 1)[1].split()[19])
    dead.wait()
    me = Owner.me()
    name = instance_name("hermes", Owner(dead.pid, start, me.boot, me.host, int(time.time()) - 7200))
    assert _shim("instance", "start", "--containall", "--writable-tmpfs", f"docker://{BUSYBOX_IMAGE}", name).returncode == 0
    try:
        hermes = _shutil.which("hermes", path=os.path.dirname(sys.executable)) or "hermes"
        env = {**os.environ, "PATH": f"{os.path.dirname(SHIM)}:{os.environ['PATH']}"}
        r = subprocess.run([hermes, "sandbox", "sweep", "--backend", "singularity"], capture_output=True,
                           timeout=300, env=env)
        assert r.returncode == 0, r.stderr
        assert name.encode() in r.stdout, r.stdout
        assert name not in shim_instances()
    finally:
        _shim("instance", "stop", "--force", name)


@pytest.mark.shim
async def test_instance_namespaces_are_private(make):
    """The shim really isolates: own PID namespace (the host's processes are invisible), own
    mount namespace (its overlay is invisible on the host), own root."""
    from conftest import mounts_under

    sb = await make()
    r = await sb.exec(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls -d /proc/[0-9]* | wc -l"])
    first, count = r.output.splitlines()
    assert "instance start" in first, "PID 1 of the sandbox is the instance's holder"
    assert 1 < int(count) < 20, f"{count} processes visible: the host's should not be"
    r = await sb.exec(["sh", "-c", "grep ' / ' /proc/self/mountinfo"])
    assert "overlay" in r.output and sb.instance_name in r.output
    assert mounts_under(os.environ["APPTAINER_SHIM_STATE_DIR"], sb.host_dir) == []
    assert (await sb.exec(["test", "-e", os.path.abspath(__file__)])).exit_code == 1
