"""The process conformance mixin against the local backend (until the lead mixes it into the
main contract class)."""

from __future__ import annotations

import pytest

from hermes_core import Runtime
from hermes_core.testing._process_contract import ProcessContract


class TestLocalProcessContract(ProcessContract):
    @pytest.fixture
    async def sandbox(self, tmp_path):
        rt = Runtime()
        sb = rt.create_sandbox("local", {"root": str(tmp_path / "sandboxes")})
        await sb.start()
        yield sb
        await rt.aclose()
