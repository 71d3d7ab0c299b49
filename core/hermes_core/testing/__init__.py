"""The backend conformance suite, a pytest plugin that backend authors opt into.

In your backend's ``tests/conftest.py``::

    pytest_plugins = ["hermes_core.testing"]

and in a test module::

    from . import SandboxContract

    class TestMyBackend(SandboxContract):
        backend = "mybackend"

        @pytest.fixture
        def backend_options(self):
            return {"image": "..."}

        async def leftovers(self, sandbox):
            return []  # what still exists of a closed sandbox; [] means clean

Capability flags on the sandbox class skip whole groups; a known deviation is marked with
``pytest.mark.xfail(reason=...)`` by overriding the test in the subclass.
"""

from ._contract import HOSTILE_NAMES, SandboxContract
from ._process_contract import ProcessContract, count_processes_script

__all__ = ["HOSTILE_NAMES", "ProcessContract", "SandboxContract", "count_processes_script"]


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "hermes_contract: a test of the hermes backend conformance suite")
