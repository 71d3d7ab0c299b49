"""Fixtures for the Modal backend's tests: the REAL modal SDK against a local gRPC fake.

The fake (``tests/fake``) runs in its own process on 127.0.0.1 and makes every sandbox a real
container on the Docker engine at ``$DOCKER_HOST`` (image ``hermes-test/debian:bookworm``; build
it with ``scripts/docker-env.sh image``). The SDK is pointed at it through ``MODAL_SERVER_URL``
and ``MODAL_TOKEN_ID``/``MODAL_TOKEN_SECRET``, and never at the real service.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from fake import LABEL, RunningFake, start_fake

pytest_plugins = ["hermes_core.testing"]

TEST_IMAGE = os.environ.get("HERMES_MODAL_TEST_IMAGE", "hermes-test/debian:bookworm")


def _docker_problem() -> str | None:
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set (the Modal fake runs sandboxes as containers: scripts/docker-env.sh start)"
    try:
        r = subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker CLI unusable: {e}"
    if r.returncode != 0:
        return f"test image {TEST_IMAGE} is missing (scripts/docker-env.sh image): {r.stderr.decode()[-200:]}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config._hermes_modal_problem = _docker_problem()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config._hermes_modal_problem  # type: ignore[attr-defined]
    if problem is None:
        return
    if os.environ.get("HERMES_REQUIRE_DOCKER") == "1" and any("modal_fake" in i.keywords for i in items):
        raise pytest.UsageError(f"HERMES_REQUIRE_DOCKER=1 but {problem}")
    skip = pytest.mark.skip(reason=f"Modal fake tests skipped: {problem}")
    for item in items:
        if "modal_fake" in item.keywords:
            item.add_marker(skip)


def fake_containers(instance: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL}={instance}", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    return out.split()


@pytest.fixture(scope="session")
def modal_fake(pytestconfig: pytest.Config):
    """The running fake, with the SDK's environment pointed at it for the whole session."""
    problem = pytestconfig._hermes_modal_problem  # type: ignore[attr-defined]
    if problem is not None:
        pytest.skip(problem)
    fake = start_fake()
    saved = {k: os.environ.get(k) for k in fake.env()}
    os.environ.update(fake.env())
    try:
        yield fake
        # Nothing the tests made may outlive them: every sandbox terminated, every container gone.
        deadline = time.monotonic() + 15
        while (left := fake_containers(fake.instance)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"containers of the Modal fake left behind by the tests: {left}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        log = fake.stop()
        if "UNIMPLEMENTED" in log:
            print("\n" + "\n".join(line for line in log.splitlines() if "UNIMPLEMENTED" in line))


@pytest.fixture
def faults(modal_fake: RunningFake):
    """Set faults on the fake for one test (``faults(unavailable_every=3)``); cleared afterwards."""
    yield modal_fake.set_faults
    modal_fake.set_faults()


@pytest.fixture
def fake_state(modal_fake: RunningFake):
    """Which of this fake's containers exist now (a callable)."""
    return lambda: fake_containers(modal_fake.instance)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)
