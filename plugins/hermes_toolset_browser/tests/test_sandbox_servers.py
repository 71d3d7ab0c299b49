"""The sandbox's own servers: the model starts a web server inside its sandbox, the verifier
browses it through the same ToolContext and checks the page (item 7 of the issue)."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest


async def call(ctx, name, **args):
    return json.loads(await ctx.call_tool(name, args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def browse_until_up(ctx, url: str, tries: int = 100) -> dict:
    """The verifier's side: the server takes a moment to start (bounded retries)."""
    for _ in range(tries):
        nav = await ctx.browser_navigate(url)
        if "error" not in nav and nav.get("status") == 200:
            return nav
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never came up: {nav}")


PAGE = "<html><head><title>Model's app</title></head><body><h1>Todo</h1><ul><li>write tests</li></ul></body></html>"


async def test_local_backend_model_server_browsed_by_the_verifier(runtime):
    port = free_port()
    async with runtime.rollout(backend="local", toolsets=["default", "browser"]) as ctx:
        # the model's turn: write a page and start a server in the background, on loopback
        assert "error" not in await call(ctx, "write_file", path="site/index.html", content=PAGE)
        started = await call(ctx, "terminal", command=f"python3 -m http.server {port} --bind 127.0.0.1 --directory site",
                             background=True)
        assert "error" not in started, started
        # the verifier's turn, same ToolContext
        nav = await browse_until_up(ctx, f"http://127.0.0.1:{port}/index.html")
        assert nav["title"] == "Model's app"
        snap = await ctx.browser_snapshot()
        assert 'heading "Todo"' in snap["snapshot"] and "write tests" in snap["snapshot"]
    # cleanup killed the model's server with the rollout
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def _docker_problem() -> str | None:
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set"
    try:
        from hermes_backend_docker import DockerOptions
    except ImportError:
        return "hermes-backend-docker is not installed"
    if "ports" not in DockerOptions.model_fields:
        return "this hermes-backend-docker has no 'ports' option"
    return None


@pytest.mark.docker
async def test_docker_backend_published_port_browsed_by_the_verifier():
    problem = _docker_problem()
    if problem:
        if os.environ.get("HERMES_REQUIRE_DOCKER") == "1":
            pytest.fail(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    import hermes_backend_docker

    import hermes_toolset_browser
    from hermes_core import Runtime

    runtime = Runtime(plugins=[hermes_toolset_browser, hermes_backend_docker])
    hermes_toolset_browser.configure(runtime, executable=os.environ.get("HERMES_CHROMIUM", "/usr/bin/chromium"),
                                     navigation_timeout=60, action_timeout=30, launch_timeout=120)
    image = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
    options = {"image": image, "pull": "never", "network": "bridge", "ports": [8000]}
    try:
        async with runtime.rollout(backend="docker", options=options, toolsets=["default", "browser"]) as ctx:
            await _model_serves_verifier_browses(ctx)
    finally:
        await hermes_toolset_browser.close_browser(runtime)
        await runtime.aclose()


async def _model_serves_verifier_browses(ctx) -> None:
    assert "error" not in await call(ctx, "write_file", path="site/index.html", content=PAGE)
    started = await call(ctx, "terminal", command="python3 -m http.server 8000 --bind 0.0.0.0 --directory site",
                         background=True)
    assert "error" not in started, started
    url = ctx.sandbox.url(8000) + "/index.html"
    assert url.startswith("http://127.0.0.1:")  # published on the host's loopback only
    nav = await browse_until_up(ctx, url)
    assert nav["title"] == "Model's app"
    assert "write tests" in (await ctx.browser_snapshot())["snapshot"]
