"""The shipped conformance suite, through the real modal SDK against the local gRPC fake."""

from __future__ import annotations

import pytest
from conftest import TEST_IMAGE, fake_containers

from hermes_core.testing import SandboxContract

pytestmark = pytest.mark.modal_fake


class TestModalContract(SandboxContract):
    backend = "modal"

    @pytest.fixture
    def backend_options(self, modal_fake):
        return {"image": TEST_IMAGE, "app_name": "hermes-contract"}

    async def leftovers(self, sandbox) -> list[str]:
        # The sandbox's container holds every process and file: gone means clean. Ask Modal (the
        # fake) too: the sandbox must be reported finished.
        import modal

        found = []
        if sandbox.modal_id:
            sb = await modal.Sandbox.from_id.aio(sandbox.modal_id)
            if await sb.poll.aio() is None:
                found.append(f"Modal sandbox {sandbox.modal_id} still running")
            import subprocess

            out = subprocess.run(
                ["docker", "ps", "-a", "--filter", f"label=hermes.fake-modal.sandbox={sandbox.modal_id}",
                 "--format", "{{.Names}} {{.Status}}"], capture_output=True, text=True, timeout=30,
            ).stdout.strip()
            if out:
                found.append(f"container {out}")
        return found


_ = fake_containers
