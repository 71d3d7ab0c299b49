"""Fixtures for the singularity backend's tests.

Most tests drive the CLI-faithful shim in ``tests/shim/apptainer`` (no apptainer can be installed
here): it needs root (mount and PID namespaces), a ``docker`` CLI and the local image
``hermes-test/debian:bookworm`` on the engine at ``$DOCKER_HOST`` (the shim exports it once into
``~/.cache/hermes-apptainer-shim``). Tests marked ``apptainer_real`` run against a real binary on
PATH and are skipped when there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest_plugins = ["hermes_core.testing"]

SHIM = str(Path(__file__).parent / "shim" / "apptainer")
TEST_IMAGE = os.environ.get("HERMES_APPTAINER_TEST_IMAGE", "hermes-test/debian:bookworm")
BUSYBOX_IMAGE = os.environ.get("HERMES_APPTAINER_BUSYBOX_IMAGE", "hermes-test/busybox:latest")
REAL_IMAGE = os.environ.get("HERMES_APPTAINER_REAL_IMAGE", "docker://debian:bookworm-slim")


def _shim_problem() -> str | None:
    if os.geteuid() != 0:
        return "the apptainer test shim needs root (mount and PID namespaces)"
    if not os.path.exists("/usr/bin/python3"):
        return "the apptainer test shim runs on /usr/bin/python3, which is missing"
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (the shim exports the test image from the local engine)"
    if not os.environ.get("DOCKER_HOST"):
        return "DOCKER_HOST is not set (start an engine: scripts/docker-env.sh start)"
    try:
        r = subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker image inspect failed: {e}"
    if r.returncode != 0:
        return f"test image {TEST_IMAGE} is missing (build it: scripts/docker-env.sh image)"
    return None


def real_binary() -> str | None:
    """A real apptainer/singularity on PATH (never the shim), or None."""
    for name in ("apptainer", "singularity"):
        found = shutil.which(name)
        if found and os.path.realpath(found) != os.path.realpath(SHIM):
            return found
    return None


def pytest_configure(config: pytest.Config) -> None:
    config._hermes_shim_problem = _shim_problem()  # type: ignore[attr-defined]
    # The shim's instance registry for this session only: other runs on the machine are unseen.
    # (scripts/suites/singularity.sh passes its own, and stops whatever is in it on exit.)
    state = os.environ.get("APPTAINER_SHIM_STATE_DIR") or tempfile.mkdtemp(prefix="hermes-apptainer-shim-state-")
    os.makedirs(state, exist_ok=True)
    os.environ["APPTAINER_SHIM_STATE_DIR"] = state
    config._hermes_shim_state = state  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config._hermes_shim_problem  # type: ignore[attr-defined]
    if problem is not None:
        if os.environ.get("HERMES_REQUIRE_APPTAINER_SHIM") == "1" and any("shim" in i.keywords for i in items):
            # CI sets this: a broken set-up must fail the run, not turn it green by skipping.
            raise pytest.UsageError(f"HERMES_REQUIRE_APPTAINER_SHIM=1 but {problem}")
        skip = pytest.mark.skip(reason=f"shim tests skipped: {problem}")
        for item in items:
            if "shim" in item.keywords:
                item.add_marker(skip)
    if real_binary() is None:
        skip = pytest.mark.skip(reason="no real apptainer/singularity binary on PATH")
        for item in items:
            if "apptainer_real" in item.keywords:
                item.add_marker(skip)


# ---------------------------------------------------------------------------- what exists


def shim_instances() -> list[str]:
    r = subprocess.run([SHIM, "instance", "list", "--json"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [i["instance"] for i in json.loads(r.stdout)["instances"]]


def shim_processes() -> dict[int, str]:
    """Host processes running the shim (holders and exec launchers), but not this test's own."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and any(SHIM.encode() == c for c in cmd[:3]):
            found[int(entry.name)] = b" ".join(cmd).decode(errors="replace")
    return found


def mounts_under(*roots: str) -> list[str]:
    """Host mount points under any of ``roots`` (the shim's mounts live in private namespaces)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if any(point.startswith(r) for r in roots):
                out.append(point)
    return out


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(pytestconfig: pytest.Config):
    """After the whole session: no shim instance, no shim process, no mount, no overlay dir."""
    if pytestconfig._hermes_shim_problem is not None:  # type: ignore[attr-defined]
        yield
        return
    from hermes_backend_singularity._backend import default_overlay_root

    root = default_overlay_root()
    before_dirs = set(os.listdir(root)) if os.path.isdir(root) else set()
    before_procs = set(shim_processes())
    yield
    state = pytestconfig._hermes_shim_state  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        left = {
            "instances": shim_instances(),
            "processes": sorted(v for k, v in shim_processes().items() if k not in before_procs),
            "mounts": mounts_under(state, root),
            "overlay dirs": sorted(set(os.listdir(root)) - before_dirs) if os.path.isdir(root) else [],
        }
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    shutil.rmtree(state, ignore_errors=True)
    assert not any(left.values()), f"left behind by the tests: {left}"


@pytest.fixture
def shim_options() -> dict:
    return {"binary": SHIM, "image": f"docker://{TEST_IMAGE}"}
