"""The shipped conformance suite, through the CLI-faithful apptainer shim (and, opt-in, a real binary)."""

from __future__ import annotations

import os

import pytest
from conftest import REAL_IMAGE, SHIM, TEST_IMAGE, real_binary, shim_instances

from hermes_core.testing import SandboxContract


async def _leftovers(sandbox, listed) -> list[str]:
    found = []
    if sandbox.instance_name in listed():
        found.append(f"instance {sandbox.instance_name}")
    if os.path.exists(sandbox.host_dir):
        found.append(f"host directory {sandbox.host_dir}")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if sandbox.instance_name.encode() in cmd:
            text = cmd.replace(b"\0", b" ")[:200].decode(errors="replace")
            found.append(f"process {entry.name}: {text}")
    return found


@pytest.mark.shim
class TestSingularityContractOverlay(SandboxContract):
    """The default isolation: --containall --no-home --overlay <per-sandbox dir> --net --network none."""

    backend = "singularity"

    @pytest.fixture
    def backend_options(self):
        return {"binary": SHIM, "image": f"docker://{TEST_IMAGE}"}

    async def leftovers(self, sandbox) -> list[str]:
        return await _leftovers(sandbox, shim_instances)


def _real_instances() -> list[str]:
    import json
    import subprocess

    r = subprocess.run([real_binary(), "instance", "list", "--json"], capture_output=True, timeout=120)
    return [i["instance"] for i in json.loads(r.stdout or b'{"instances": []}').get("instances", [])]


@pytest.mark.apptainer_real
class TestSingularityContractReal(SandboxContract):
    """The same suite against a real apptainer/singularity on PATH (skipped when there is none).

    Image: $HERMES_APPTAINER_REAL_IMAGE (default docker://debian:bookworm-slim, which needs a registry).
    """

    backend = "singularity"

    @pytest.fixture
    def backend_options(self):
        return {"binary": real_binary(), "image": REAL_IMAGE}

    async def leftovers(self, sandbox) -> list[str]:
        return await _leftovers(sandbox, _real_instances)
