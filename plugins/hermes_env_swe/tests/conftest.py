"""Fixtures: a real Docker engine at $DOCKER_HOST (or a clear skip), the test tasks, and a guard
that no sandbox container outlives the session."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

TEST_IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
#: python:3.12-slim cannot be pulled here: the samples run on the local image.
IMAGE_MAP = {"python:3.12-slim": TEST_IMAGE}
BACKEND_OPTIONS = {"image_map": IMAGE_MAP, "pull": "never"}


def _engine_problem() -> str | None:
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set (start an engine: scripts/docker-env.sh start)"
    try:
        import docker

        api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=10)
    except Exception as e:  # noqa: BLE001 - reported as the skip reason
        return f"no Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']}: {e}"
    try:
        api.inspect_image(TEST_IMAGE)
    except Exception:  # noqa: BLE001
        return f"test image {TEST_IMAGE} is missing (build it: scripts/docker-env.sh image)"
    finally:
        api.close()
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (DOCKER_HOST)")
    config._hermes_docker_problem = _engine_problem()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config._hermes_docker_problem  # type: ignore[attr-defined]
    if problem is None:
        return
    if os.environ.get("HERMES_REQUIRE_DOCKER") == "1" and any("docker" in i.keywords for i in items):
        raise pytest.UsageError(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
    skip = pytest.mark.skip(reason=f"docker tests skipped: {problem}")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_api(pytestconfig: pytest.Config):
    problem = pytestconfig._hermes_docker_problem  # type: ignore[attr-defined]
    if problem is not None:
        pytest.skip(problem)
    import docker

    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)
    yield api
    api.close()


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind(pytestconfig: pytest.Config):
    """No sandbox container of these tests may remain after the session."""
    if pytestconfig._hermes_docker_problem is not None:  # type: ignore[attr-defined]
        yield
        return
    import docker

    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)
    flt = {"label": "swe.task"}
    before = {c["Id"] for c in api.containers(all=True, filters=flt)}
    yield
    deadline = time.monotonic() + 10
    while True:
        left = [c["Names"][0] for c in api.containers(all=True, filters=flt) if c["Id"] not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    api.close()
    assert not left, f"sandbox containers left behind: {left}"
