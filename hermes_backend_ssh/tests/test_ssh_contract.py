"""The shipped conformance suite, against two real sshds on 127.0.0.1 (a pool of two hosts)."""

from __future__ import annotations

import pytest
from conftest import base_options, remote_leftovers

from hermes_core.testing import SandboxContract

pytestmark = pytest.mark.ssh


class TestSSHContract(SandboxContract):
    backend = "ssh"

    @pytest.fixture
    def backend_options(self):
        return base_options()

    async def leftovers(self, sandbox) -> list[str]:
        # Everything of a sandbox lives in its remote directory or carries its marker.
        assert sandbox.remote_dir, "the sandbox never got a remote directory"
        return await remote_leftovers(sandbox.remote_dir)
