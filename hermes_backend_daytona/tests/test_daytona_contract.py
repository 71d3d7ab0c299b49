"""The shipped conformance suite, through the real daytona SDK against the fake control plane."""

from __future__ import annotations

import pytest
from conftest import TEST_IMAGE

from hermes_core.testing import SandboxContract

pytestmark = pytest.mark.docker


class TestDaytonaContract(SandboxContract):
    backend = "daytona"

    @pytest.fixture
    def backend_options(self, fake):
        return {"image": TEST_IMAGE, "creates_per_second": 50}

    async def leftovers(self, sandbox) -> list[str]:
        # The Daytona sandbox holds every process and file: gone from the service means clean.
        import asyncio

        from conftest import fake_state

        for _ in range(100):
            left = fake_state(sandbox)
            if not left:
                return []
            await asyncio.sleep(0.1)
        return left
