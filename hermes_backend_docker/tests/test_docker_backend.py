"""The Docker backend's own behaviour, beyond the shared contract: options, engine and image
errors, labels, limits, users, lifetime, outside interference, sweep."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from conftest import TEST_IMAGE

from hermes_backend_docker import (
    ContainerGoneError,
    DockerOptions,
    DockerSandbox,
    EngineUnavailableError,
    ImageNotFoundError,
    sweep,
)
from hermes_core import Runtime
from hermes_core.errors import ConfigError, SandboxError

BASE = {"image": TEST_IMAGE, "pull": "never"}


@pytest.fixture
async def runtime():
    rt = Runtime()
    yield rt
    await rt.aclose()


async def _start(runtime: Runtime, **options) -> DockerSandbox:
    sb = runtime.create_sandbox("docker", {**BASE, **options})
    return await sb.start()


# ---------------------------------------------------------------------- no engine needed


def test_registered_through_entry_point_with_sweep():
    spec = Runtime().backends.get("docker")
    assert spec.options_model is DockerOptions
    assert spec.sweep is sweep
    assert "hermes-backend-docker" in spec.plugin or spec.plugin == "docker"


def test_import_does_not_load_the_docker_sdk():
    code = "import hermes_backend_docker, sys; print('docker' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"pull": "sometimes"}, "pull"),
        ({"memory": "lots"}, "memory"),
        ({"cpus": 0}, "cpus"),
        ({"workdir": "relative"}, "workdir"),
        ({"volumes": ["/a"]}, "volumes"),
        ({"labels": {"hermes.rollout": "x"}}, "labels"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"imagee": "typo"}, "imagee"),
    ],
)
def test_invalid_options_name_the_option(options, names):
    with pytest.raises(ConfigError, match=names):
        Runtime().backend_options("docker", options)


async def test_engine_unreachable_names_docker_host_and_how_to_start(tmp_path):
    sb = DockerSandbox(DockerOptions(docker_host=f"unix://{tmp_path}/no.sock"), sandbox_id="nope")
    with pytest.raises(EngineUnavailableError) as info:
        await sb.start()
    msg = str(info.value)
    assert "DOCKER_HOST" in msg and f"{tmp_path}/no.sock" in msg and "dockerd" in msg
    assert sb.closed
    await sb.close()


async def test_engine_unreachable_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/gone.sock")
    with pytest.raises(EngineUnavailableError, match=r"DOCKER_HOST=unix://.*gone\.sock"):
        await sweep(None)


# ---------------------------------------------------------------------- real engine


@pytest.mark.docker
async def test_missing_image_is_named(runtime):
    with pytest.raises(ImageNotFoundError, match=r"'hermes-test/absent:1'.*pull policy is 'never'"):
        await _start(runtime, image="hermes-test/absent:1")
    # "missing" tries to pull; nothing is pullable here (no registry), and the error says which image.
    with pytest.raises(ImageNotFoundError, match=r"'hermes-test/absent:1'.*could not be pulled"):
        await _start(runtime, image="hermes-test/absent:1", pull="missing")


@pytest.mark.docker
async def test_container_labels_env_limits_network(runtime, docker_api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("HERMES_FORWARD_ME", "forwarded")
    sb = await _start(
        runtime,
        labels={"team": "rl"},
        env={"MODE": "test"},
        pass_env=["HERMES_FORWARD_ME"],
        cpus=0.5,
        memory="256m",
        pids_limit=128,
    )
    info = docker_api.inspect_container(sb.container_id)
    labels = info["Config"]["Labels"]
    assert labels["hermes.rollout"] == sb.sandbox_id
    assert labels["hermes.runtime"] == runtime.id
    assert abs(int(labels["hermes.created"]) - time.time()) < 60
    assert labels["hermes.backend"] == "docker" and labels["team"] == "rl"
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["PidsLimit"] == 128
    assert host["NetworkMode"] == "none"
    env = (await sb.exec("env")).output
    assert "sk-host-secret" not in env and "OPENAI_API_KEY" not in env
    assert "HERMES_FORWARD_ME=forwarded" in env and "MODE=test" in env
    nets = (await sb.exec("ls /sys/class/net")).output.split()
    assert nets == ["lo"]
    assert sb.describe()["container"] == sb.container_name


@pytest.mark.docker
async def test_user_and_workdir(runtime, tmp_path):
    sb = await _start(runtime, user="nobody", workdir="/home/work space")
    assert (await sb.exec("id -u; pwd")).output == "65534\n/home/work space\n"
    assert (await sb.exec("touch made-by-command")).exit_code == 0
    await sb.write_bytes("sub/uploaded", b"x")
    owners = (await sb.exec("stat -c '%u %n' sub/uploaded sub made-by-command")).output.split("\n")
    assert all(line.startswith("65534 ") for line in owners if line), owners
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_text("f")
    await sb.put_dir(tmp_path / "t", "tree")
    assert (await sb.exec("stat -c %u tree/f")).output == "65534\n"


@pytest.mark.docker
async def test_volumes(runtime, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "seen.txt").write_text("from host")
    sb = await _start(runtime, volumes=[f"{tmp_path / 'ro'}:/data:ro"])
    assert (await sb.exec("cat /data/seen.txt")).output == "from host"
    assert (await sb.exec("touch /data/nope")).exit_code != 0


@pytest.mark.docker
async def test_files_native_semantics(runtime, tmp_path):
    sb = await _start(runtime)
    assert (await sb.read_bytes("/etc/os-release")).startswith(b"PRETTY_NAME")  # a symlink, followed
    await sb.exec("mkdir -p d && ln -s /etc abs && ln -s d rel")
    with pytest.raises(IsADirectoryError):
        await sb.write_bytes("d", b"would replace the directory")
    assert (await sb.exec("test -d d")).exit_code == 0
    with pytest.raises(IsADirectoryError):
        await sb.read_bytes("d")
    with pytest.raises(NotADirectoryError):
        await sb.write_bytes("/etc/passwd/x", b"")
    skipped: list[str] = []
    got = await sb.get_dir(".", tmp_path / "all", skipped=skipped)
    # A link out of the destination is not recreated on the host by default (not followed either)
    assert not os.path.lexists(tmp_path / "all" / "abs")
    assert any(s.startswith("abs: symlink") for s in skipped), skipped
    assert "rel" in got and os.readlink(tmp_path / "all" / "rel") == "d"
    await sb.get_dir(".", tmp_path / "kept", keep_special=True)
    assert os.readlink(tmp_path / "kept" / "abs") == "/etc"  # kept as a link when asked
    with pytest.raises(NotADirectoryError):
        await sb.get_dir("/etc/hostname", tmp_path / "x")


@pytest.mark.docker
async def test_spawn_pty_has_a_size_and_pid(runtime):
    sb = await _start(runtime)
    proc = await sb.spawn("stty size; echo pid=$$", pty=True)
    out = b""
    while chunk := await proc.read():
        out += chunk
    assert b"40 200" in out and f"pid={proc.pid}".encode() in out
    assert await proc.wait(5) == 0


@pytest.mark.docker
async def test_exec_returns_promptly_when_a_child_keeps_output_open(runtime):
    sb = await _start(runtime)
    t0 = time.monotonic()
    r = await sb.exec("sleep 30 & echo parent done")
    assert r.exit_code == 0 and r.output == "parent done\n"
    assert time.monotonic() - t0 < 1.5


@pytest.mark.docker
async def test_exec_cancellation_kills_the_command(runtime):
    sb = await _start(runtime)
    task = asyncio.ensure_future(sb.exec("exec -a hermes-cancelled-cmd sleep 60"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if (await sb.exec("pgrep -f hermes-[c]ancelled-cmd")).exit_code != 0:
            break
        await asyncio.sleep(0.1)
    assert (await sb.exec("pgrep -f hermes-[c]ancelled-cmd")).exit_code != 0


@pytest.mark.docker
async def test_many_open_streams_do_not_starve_other_calls(runtime):
    sb = await _start(runtime)
    # More long-lived streams than asyncio's default executor has threads.
    procs = [await sb.spawn("sleep 60") for _ in range(12)]
    t0 = time.monotonic()
    results = await asyncio.gather(*(sb.exec("sleep 1; echo ok") for _ in range(12)))
    assert all(r.output == "ok\n" for r in results)
    assert time.monotonic() - t0 < 5
    for p in procs:
        await p.kill()


@pytest.mark.docker
async def test_container_killed_from_outside(runtime, docker_api):
    sb = await _start(runtime)
    proc = await sb.spawn("sleep 60")
    docker_api.kill(sb.container_id)
    assert await proc.wait(10) is not None
    with pytest.raises(ContainerGoneError, match="gone|no longer running|not running"):
        await sb.exec("true")
    with pytest.raises(ContainerGoneError):
        await sb.read_bytes("/etc/hostname")
    with pytest.raises(ContainerGoneError):
        await sb.write_bytes("x", b"x")
    with pytest.raises(SandboxError):
        await sb.spawn("true")
    await sb.close()
    await sb.close()


@pytest.mark.docker
async def test_max_lifetime_removes_an_abandoned_container(runtime, docker_api):
    import docker.errors

    sb = await _start(runtime, max_lifetime=1)
    cid = sb.container_id
    for _ in range(100):
        try:
            docker_api.inspect_container(cid)
        except docker.errors.NotFound:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the container outlived its max_lifetime")
    with pytest.raises(ContainerGoneError):
        await sb.exec("true")
    await sb.close()


@pytest.mark.docker
async def test_cancelled_start_leaves_no_container(docker_api):
    for delay in (0.0, 0.05, 0.15, 0.3):
        sb = DockerSandbox(DockerOptions(**BASE), sandbox_id=f"cancel-{delay}", labels={})
        task = asyncio.ensure_future(sb.start())
        await asyncio.sleep(delay)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await sb.close()
        names = [c["Names"][0] for c in docker_api.containers(all=True, filters={"name": sb.container_name})]
        assert names == [], f"cancelled at {delay}s left {names}"


@pytest.mark.docker
async def test_sweep_removes_only_what_a_dead_driver_left(runtime, docker_api):
    # A container of a driver that is gone (a pid that cannot exist), and one of this live run.
    dead = DockerSandbox(
        DockerOptions(**BASE),
        sandbox_id="sweep-dead",
        labels={"hermes.rollout": "sweep-dead", "hermes.owner.pid": str(2**22 + 11), "hermes.owner.start": "1"},
    )
    await dead.start()
    live = await _start(runtime)
    old = time.time() - 7200
    assert docker_api.inspect_container(live.container_id)["Config"]["Labels"]["hermes.owner.pid"] == str(os.getpid())
    removed = await sweep(None)
    assert any(dead.container_name in line and "sweep-dead" in line for line in removed), removed
    assert not any(live.container_name in line for line in removed)
    assert [c["Id"] for c in docker_api.containers(filters={"id": live.container_id})]
    assert old  # age alone no longer condemns a container
    forced = await sweep(None, force=True)
    assert any(live.container_name in line for line in forced)
    await dead.close()  # already gone: still fine
    await live.close()


@pytest.mark.docker
async def test_tiny_timeout_still_kills_the_command(runtime):
    sb = await _start(runtime)
    r = await sb.exec("exec -a hermes-tiny-timeout sleep 60", timeout=0.001)
    assert r.exit_code == 124 and r.timed_out
    assert (await sb.exec("pgrep -f hermes-[t]iny-timeout")).exit_code != 0
