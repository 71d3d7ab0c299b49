"""Fixtures: the fake Daytona control plane (tests/fake/) on 127.0.0.1, its sandboxes real containers
on the Docker engine at $DOCKER_HOST; the real ``daytona`` SDK is pointed at it through
DAYTONA_API_URL / DAYTONA_API_KEY, exactly as a user points it at app.daytona.io."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["hermes_core.testing"]

#: A real account, read before the fake's fixture points DAYTONA_API_* at the fake (opt-in live test).
LIVE: dict[str, str | None] = {}
if os.environ.get("DAYTONA_API_KEY"):
    os.environ["HERMES_LIVE_DAYTONA_API_KEY"] = os.environ["DAYTONA_API_KEY"]
    LIVE = {"url": os.environ.get("DAYTONA_API_URL") or "https://app.daytona.io/api"}

#: The image the fake's sandboxes run (built locally by scripts/docker-env.sh image; nothing is pulled).
TEST_IMAGE = os.environ.get("HERMES_DOCKER_TEST_IMAGE", "hermes-test/debian:bookworm")


def _engine_problem() -> str | None:
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set (the fake Daytona runs its sandboxes as containers)"
    try:
        from fake import _docker

        api = _docker.connect()
        try:
            api.inspect_image(TEST_IMAGE)
        finally:
            api.close()
    except Exception as e:  # noqa: BLE001 - reported as the skip reason
        return f"no Docker engine with {TEST_IMAGE} at DOCKER_HOST={os.environ['DOCKER_HOST']}: {e}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config._hermes_daytona_problem = _engine_problem()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config._hermes_daytona_problem  # type: ignore[attr-defined]
    if problem is None:
        return
    if os.environ.get("HERMES_REQUIRE_DOCKER") == "1" and any("docker" in i.keywords for i in items):
        raise pytest.UsageError(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
    skip = pytest.mark.skip(reason=f"skipped: {problem}")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fake(pytestconfig: pytest.Config):
    """The fake Daytona service, with the SDK's environment pointing at it."""
    problem = pytestconfig._hermes_daytona_problem  # type: ignore[attr-defined]
    if problem is not None:
        pytest.skip(problem)
    from fake.server import FakeDaytona

    srv = FakeDaytona().start()
    saved = {k: os.environ.get(k) for k in ("DAYTONA_API_URL", "DAYTONA_API_KEY", "DAYTONA_TARGET")}
    os.environ["DAYTONA_API_URL"] = srv.api_url
    os.environ["DAYTONA_API_KEY"] = srv.api_key
    os.environ.pop("DAYTONA_TARGET", None)
    yield srv
    try:
        deadline = time.monotonic() + 20
        while (srv.sandbox_count() or srv.container_ids()) and time.monotonic() < deadline:
            time.sleep(0.2)
        left_boxes = [f"{b.name} ({b.state})" for b in list(srv.boxes.values())]
        left_containers = srv.container_ids()
    finally:
        srv.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not left_boxes, f"sandboxes left in the fake Daytona after the tests: {left_boxes}"
    assert not left_containers, f"containers left on the engine after the tests: {left_containers}"


@pytest.fixture(autouse=True)
def _fresh_faults(request: pytest.FixtureRequest):
    yield
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").clear_faults()


_FAKE: list = []


@pytest.fixture(scope="session", autouse=True)
def _remember_fake(request: pytest.FixtureRequest):
    if request.config._hermes_daytona_problem is None:  # type: ignore[attr-defined]
        _FAKE.append(request.getfixturevalue("fake"))
    yield


def fake_state(sandbox) -> list[str]:
    """What the fake still holds of a closed sandbox: its record and its container."""
    srv = _FAKE[0]
    found = [f"sandbox {b.name} ({b.state})" for b in list(srv.boxes.values()) if b.name == sandbox.name]
    if sandbox.daytona_id:
        found += [f"container {c[:12]}" for c in srv.container_ids()
                  if c in {b.container for b in srv.boxes.values() if b.id == sandbox.daytona_id}]
        import docker.errors

        from fake import _docker

        api = _docker.connect()
        try:
            api.inspect_container(f"fake-daytona-{sandbox.daytona_id}")
            found.append(f"container fake-daytona-{sandbox.daytona_id}")
        except docker.errors.NotFound:
            pass
        finally:
            api.close()
    return found
