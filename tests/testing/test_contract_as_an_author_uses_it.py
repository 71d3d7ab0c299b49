"""The conformance suite as a backend author uses it: a project of its own, pytest-asyncio in its
default (strict) mode, only ``pytest_plugins = ["hermes_core.testing"]`` configured."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _project(tmp_path, test_body: str):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # no asyncio_mode: strict, the default
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hermes_core.testing"]\n')
    (tmp_path / "test_backend.py").write_text(textwrap.dedent(test_body))
    return tmp_path


def _pytest(root, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning", *args],
        cwd=root, capture_output=True, text=True, timeout=600,
    )


def test_suite_runs_without_configuring_pytest_asyncio(tmp_path):
    root = _project(tmp_path, """
        from hermes_core.testing import SandboxContract


        class TestLocal(SandboxContract):
            backend = "local"

            async def leftovers(self, sandbox):
                import os
                return [str(sandbox.root)] if sandbox.root and os.path.exists(sandbox.root) else []
    """)
    out = _pytest(root, "-k", "exec or shell or no_overrides")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 10, summary  # async tests really ran, not skipped as "coroutine never awaited"
    assert "failed" not in summary and "error" not in summary, summary


def test_overriding_a_contract_test_without_xfail_fails_the_guard(tmp_path):
    root = _project(tmp_path, """
        import pytest
        from hermes_core.testing import SandboxContract


        class TestSneaky(SandboxContract):
            backend = "local"

            async def leftovers(self, sandbox):
                return []

            async def test_exec_timeout_kills_group_and_sandbox_stays_usable(self, sandbox):
                pass  # "passes" by doing nothing


        class TestHonest(SandboxContract):
            backend = "local"

            async def leftovers(self, sandbox):
                return []

            @pytest.mark.xfail(reason="this backend cannot kill on timeout")
            async def test_exec_timeout_kills_group_and_sandbox_stays_usable(self, sandbox):
                raise AssertionError("known deviation")
    """)
    out = _pytest(root, "-k", "no_overrides", "-rA")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "FAILED test_backend.py::TestSneaky::test_no_overrides_DO_NOT_OVERRIDE" in out.stdout
    assert "overrides contract tests without xfail" in out.stdout
    assert "PASSED test_backend.py::TestHonest::test_no_overrides_DO_NOT_OVERRIDE" in out.stdout
