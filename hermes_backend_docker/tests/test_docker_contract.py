"""The shipped conformance suite, against a real Docker engine."""

from __future__ import annotations

import pytest
from conftest import TEST_IMAGE

from hermes_core.testing import SandboxContract

pytestmark = pytest.mark.docker


async def _container_leftovers(sandbox) -> list[str]:
    import docker.errors

    from hermes_backend_docker._engine import connect

    api = connect()
    try:
        found = []
        for ref in {sandbox.container_id, sandbox.container_name} - {None}:
            try:
                info = api.inspect_container(ref)
            except docker.errors.NotFound:
                continue
            found.append(f"container {info['Name'].lstrip('/')} ({info['State']['Status']})")
        return found
    finally:
        api.close()


class TestDockerContract(SandboxContract):
    backend = "docker"

    @pytest.fixture
    def backend_options(self):
        return {"image": TEST_IMAGE, "pull": "never"}

    async def leftovers(self, sandbox) -> list[str]:
        # The container holds every process and file of the sandbox: gone means clean.
        return await _container_leftovers(sandbox)
