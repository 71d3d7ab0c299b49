"""Fixtures for the Docker backend's tests: a real engine at $DOCKER_HOST, or a clear skip.

Start one with ``scripts/docker-env.sh start`` and build the test image with
``scripts/docker-env.sh image`` (both from the hermes-core checkout).
"""

from __future__ import annotations

import os
import time

import pytest

pytest_plugins = ["hermes_core.testing"]

#: The image the tests run in (built locally by scripts/docker-env.sh image; nothing is pulled).
TEST_IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")
LABEL_FILTER = {"label": "hermes.backend=docker"}


def _engine_problem() -> str | None:
    """Why docker tests cannot run here, or ``None`` when they can."""
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set (start an engine: scripts/docker-env.sh start)"
    try:
        from hermes_backend_docker._engine import connect

        api = connect(timeout=10)
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
        # CI sets this: a broken engine must fail the run, not turn it green by skipping.
        raise pytest.UsageError(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
    skip = pytest.mark.skip(reason=f"docker tests skipped: {problem}")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_api(pytestconfig: pytest.Config):
    """A low-level client for assertions about containers (not used by the backend itself)."""
    problem = pytestconfig._hermes_docker_problem  # type: ignore[attr-defined]
    if problem is not None:
        pytest.skip(problem)
    from hermes_backend_docker._engine import connect

    api = connect()
    yield api
    api.close()


def _hermes_containers(api) -> dict[str, str]:
    return {c["Id"]: (c.get("Names") or ["?"])[0] for c in api.containers(all=True, filters=LABEL_FILTER)}


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind(pytestconfig: pytest.Config):
    """After the whole session, no container the tests created may remain on the engine."""
    if pytestconfig._hermes_docker_problem is not None:  # type: ignore[attr-defined]
        yield
        return
    from hermes_backend_docker._engine import connect

    api = connect()
    before = _hermes_containers(api)
    yield
    deadline = time.monotonic() + 10
    while True:
        left = {k: v for k, v in _hermes_containers(api).items() if k not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    api.close()
    assert not left, f"hermes containers left behind by the tests: {sorted(left.values())}"
