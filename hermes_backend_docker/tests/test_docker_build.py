"""Image building (context, cache key, timeout, log tail, labels, sweep), the image map,
published ports and default limits, against a real engine."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid

import pytest
from conftest import TEST_IMAGE

from hermes_backend_docker import (
    BuildOptions,
    DockerSandbox,
    ImageBuildError,
    cache_key,
    map_from_lines,
    map_image,
    sweep_images,
)
from hermes_core import Runtime
from hermes_core.errors import ConfigError

BASE = {"image": TEST_IMAGE, "pull": "never"}


@pytest.fixture
async def runtime():
    rt = Runtime()
    yield rt
    await rt.aclose()


@pytest.fixture
def built(docker_api):
    """Tags of images a test built; removed afterwards (only those)."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        try:
            docker_api.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _context(tmp_path, dockerfile: str, files: dict[str, str] | None = None):
    ctx = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


# ---------------------------------------------------------------------- no engine needed


def test_map_image_plain_names_and_latest():
    m = {"ubuntu:24.04": "local/u:1", "python": "local/py:3"}
    assert map_image("ubuntu:24.04", m) == "local/u:1"
    assert map_image("python:latest", m) == "local/py:3"
    assert map_image("python", m) == "local/py:3"
    assert map_image("python:3.12", m) == "python:3.12"
    assert map_image("registry:5000/x", {"registry:5000/x:latest": "y"}) == "y"


def test_map_from_lines_maps_images_not_stage_names():
    df = (
        "# syntax=docker/dockerfile:1\n"
        "FROM --platform=linux/amd64 ubuntu:24.04 AS base\n"
        "RUN echo FROM ubuntu:24.04\n"
        "from base\n"
        "FROM python AS py\r\n"
        "FROM base AS final"
    )
    got = map_from_lines(df, {"ubuntu:24.04": "hermes-test/debian:bookworm", "base": "WRONG", "python": "p:1"})
    assert got.splitlines() == [
        "# syntax=docker/dockerfile:1",
        "FROM --platform=linux/amd64 hermes-test/debian:bookworm AS base",
        "RUN echo FROM ubuntu:24.04",
        "from base",
        "FROM p:1 AS py",
        "FROM base AS final",
    ]
    assert "\r\n" in got and not got.endswith("\n")
    assert map_from_lines(df, {}) == df


def test_cache_key_follows_content_mode_args_map_and_dockerignore(tmp_path):
    ctx = _context(tmp_path, "FROM ubuntu:24.04\nCOPY . /x\n", {"a.txt": "a", "junk/big.log": "x"})
    (ctx / ".dockerignore").write_text("junk\n*.tmp\n")
    b = BuildOptions(context=str(ctx))
    k0 = cache_key(b, {})
    assert k0 == cache_key(b, {}) and len(k0) == 64
    (ctx / "junk" / "big.log").write_text("changed, but ignored")
    (ctx / "scratch.tmp").write_text("ignored too")
    assert cache_key(b, {}) == k0
    (ctx / "a.txt").write_text("b")
    k1 = cache_key(b, {})
    assert k1 != k0
    (ctx / "a.txt").chmod(0o755)
    k2 = cache_key(b, {})
    assert k2 != k1
    assert cache_key(BuildOptions(context=str(ctx), args={"V": "1"}), {}) != k2
    assert cache_key(b, {"ubuntu:24.04": "local/x"}) != k2
    assert cache_key(b, {"unrelated:1": "local/x"}) == k2  # a map entry no FROM uses changes nothing


def test_options_validation_names_the_key():
    with pytest.raises(ConfigError, match="needs a network mode other than 'none'"):
        Runtime().backend_options("docker", {"ports": [8000]})
    with pytest.raises(ConfigError, match="ports"):
        Runtime().backend_options("docker", {"ports": [70000], "network": "bridge"})
    with pytest.raises(ConfigError, match="context"):
        Runtime().backend_options("docker", {"build": {"context": "relative/dir"}})
    with pytest.raises(ConfigError, match="contxt"):
        Runtime().backend_options("docker", {"build": {"contxt": "/x"}})
    opts = Runtime().backend_options("docker", {"ports": [9000, 8000, 8000], "network": "bridge"})
    assert opts.ports == [8000, 9000]


def test_image_map_from_environment(monkeypatch):
    monkeypatch.setenv("HERMES_DOCKER_IMAGE_MAP", '{"ubuntu:24.04": "local/u"}')
    assert Runtime().backend_options("docker", {}).image_map == {"ubuntu:24.04": "local/u"}
    monkeypatch.setenv("HERMES_DOCKER_IMAGE_MAP", "{not json")
    with pytest.raises(ConfigError, match="HERMES_DOCKER_IMAGE_MAP"):
        Runtime().backend_options("docker", {})


# ---------------------------------------------------------------------- real engine


@pytest.mark.docker
async def test_build_is_cached_by_context_and_labelled(runtime, docker_api, tmp_path, built):
    nonce = uuid.uuid4().hex
    ctx = _context(
        tmp_path,
        f"FROM ubuntu:24.04\nLABEL test.nonce={nonce}\nCOPY hello.txt /opt/hello.txt\nWORKDIR /app\n",
        {"hello.txt": "hi from the context\n"},
    )
    opts = {"build": {"context": str(ctx)}, "image_map": {"ubuntu:24.04": TEST_IMAGE}, "workdir": None}
    first = await runtime.create_sandbox("docker", opts).start()
    built.append(first.image)
    assert first.built_image is True
    assert first.image.startswith("hermes-build/") and first.image.split(":")[-1] == cache_key(
        BuildOptions(context=str(ctx)), {"ubuntu:24.04": TEST_IMAGE})[:20]
    assert (await first.exec("cat /opt/hello.txt; pwd")).output == "hi from the context\n/app\n"
    labels = docker_api.inspect_image(first.image)["Config"]["Labels"]
    assert labels["hermes.built"] == "docker" and labels["hermes.build.context"] == str(ctx)
    assert labels["test.nonce"] == nonce and len(labels["hermes.build.key"]) == 64
    # Same context: the image is reused, nothing is built.
    second = await runtime.create_sandbox("docker", opts).start()
    assert second.built_image is False and second.image == first.image
    # Concurrent starts of a changed context build it once.
    (ctx / "hello.txt").write_text("changed\n")
    sbs = await asyncio.gather(*(runtime.create_sandbox("docker", opts).start() for _ in range(3)))
    built.append(sbs[0].image)
    assert sum(sb.built_image for sb in sbs) == 1
    assert len({sb.image for sb in sbs}) == 1 and sbs[0].image != first.image
    assert (await sbs[2].exec("cat /opt/hello.txt")).output == "changed\n"


@pytest.mark.docker
async def test_build_failure_carries_the_log_tail(runtime, tmp_path, built):
    ctx = _context(tmp_path, f"FROM {TEST_IMAGE}\nRUN echo hermes-build-marker-{uuid.uuid4().hex[:6]} && exit 3\n")
    sb = runtime.create_sandbox("docker", {"build": {"context": str(ctx)}})
    with pytest.raises(ImageBuildError) as info:
        await sb.start()
    msg = str(info.value)
    assert "failed" in msg and "hermes-build-marker-" in msg and str(ctx) in msg
    assert "returned a non-zero code: 3" in msg
    assert sb.closed


@pytest.mark.docker
async def test_unpullable_from_suggests_the_image_map(runtime, tmp_path):
    ctx = _context(tmp_path, "FROM hermes-test/not-there:1\nRUN true\n")
    with pytest.raises(ImageBuildError, match="image_map"):
        await runtime.create_sandbox("docker", {"build": {"context": str(ctx)}}).start()


@pytest.mark.docker
async def test_build_timeout(runtime, docker_api, tmp_path):
    ctx = _context(tmp_path, f"FROM {TEST_IMAGE}\nRUN echo started-{uuid.uuid4().hex[:6]} && sleep 60\n")
    t0 = time.monotonic()
    with pytest.raises(ImageBuildError, match=r"did not finish within 3s") as info:
        await runtime.create_sandbox("docker", {"build": {"context": str(ctx), "timeout": 3}}).start()
    assert time.monotonic() - t0 < 30
    assert "started-" in str(info.value)
    # The engine cancels the build once the client hangs up: its RUN container goes away.
    for _ in range(100):
        running = [c for c in docker_api.containers() if "sleep 60" in str(c.get("Command"))]
        if not running:
            break
        await asyncio.sleep(0.2)
    assert not running


@pytest.mark.docker
async def test_image_map_applies_to_plain_images(runtime):
    sb = await runtime.create_sandbox(
        "docker", {"image": "ubuntu:24.04", "pull": "never", "image_map": {"ubuntu:24.04": TEST_IMAGE}}
    ).start()
    assert sb.image == TEST_IMAGE and sb.describe()["image"] == TEST_IMAGE
    assert (await sb.exec("python3 -c 'print(6*7)'")).output == "42\n"


@pytest.mark.docker
async def test_ports_are_published_on_loopback_only(runtime, docker_api):
    sb = await runtime.create_sandbox("docker", {**BASE, "network": "bridge", "ports": [8000]}).start()
    host, port = sb.ports[8000]
    assert host == "127.0.0.1" and 1024 <= port <= 65535
    bindings = docker_api.inspect_container(sb.container_id)["HostConfig"]["PortBindings"]
    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    await sb.exec("mkdir -p site && echo served-by-sandbox > site/index.html")
    await sb.exec("nohup python3 -m http.server 8000 --directory site >/dev/null 2>&1 &")
    body = None
    for _ in range(50):
        try:
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(sb.url(8000) + "/index.html", timeout=2).read())
            break
        except OSError:
            await asyncio.sleep(0.1)
    assert body == b"served-by-sandbox\n"
    assert sb.describe()["ports"] == {"8000": f"127.0.0.1:{port}"}
    with pytest.raises(KeyError, match="not published"):
        sb.url(9000)


@pytest.mark.docker
async def test_default_limits(runtime, docker_api):
    sb = await runtime.create_sandbox("docker", BASE).start()
    host = docker_api.inspect_container(sb.container_id)["HostConfig"]
    assert host["PidsLimit"] == 4096
    assert host["Memory"] == 8 * 1024**3
    unlimited = await runtime.create_sandbox("docker", {**BASE, "memory": None, "pids_limit": None}).start()
    host = docker_api.inspect_container(unlimited.container_id)["HostConfig"]
    assert host["Memory"] == 0 and host["PidsLimit"] in (None, 0, -1)


@pytest.mark.docker
async def test_sweep_images_removes_only_old_unused_built_images(runtime, docker_api, tmp_path, built):
    mine = {"test.sweep": uuid.uuid4().hex}
    ctx_old = _context(tmp_path, f"FROM {TEST_IMAGE}\nLABEL test.nonce={uuid.uuid4().hex}\n")
    ctx_used = _context(tmp_path, f"FROM {TEST_IMAGE}\nLABEL test.nonce={uuid.uuid4().hex}\n")
    old = await runtime.create_sandbox("docker", {"build": {"context": str(ctx_old)}, "labels": mine}).start()
    built.append(old.image)
    await old.close()
    used = await runtime.create_sandbox("docker", {"build": {"context": str(ctx_used)}, "labels": mine}).start()
    built.append(used.image)
    await asyncio.sleep(1.1)
    assert await asyncio.to_thread(sweep_images, 3600, labels=mine) == []  # too young
    removed = await asyncio.to_thread(sweep_images, 0.5, labels=mine)
    assert len(removed) == 1 and old.image in removed[0], removed  # `used` runs a container
    tags = {t for i in docker_api.images(filters={"label": "hermes.built=docker"}) for t in i.get("RepoTags") or []}
    assert old.image not in tags and used.image in tags
    assert docker_api.inspect_image(TEST_IMAGE)  # other images are never touched
    await used.close()
    removed = await asyncio.to_thread(sweep_images, 0.5, labels=mine)
    assert len(removed) == 1 and used.image in removed[0]
