# my_backend.py -- pyproject.toml:  [project.entry-points.hermes]  nice = "my_backend"
from pydantic import ConfigDict
from hermes_core import BackendRegistry, hookimpl
from hermes_plugins.local import LocalOptions, LocalSandbox

class NiceOptions(LocalOptions):
    model_config = ConfigDict(extra="forbid", frozen=True)
    niceness: int = 10                       # validated by the backend's own model

class NiceSandbox(LocalSandbox):
    """The local backend, but every command runs at a lower CPU priority."""
    backend_name = "nice"

    def argv(self, command):
        return ["nice", "-n", str(self.options.niceness), *super().argv(command)]

@hookimpl
def hermes_register_backends(registry: BackendRegistry):
    registry.register("nice", lambda opts, *, sandbox_id, labels: NiceSandbox(opts, sandbox_id=sandbox_id, labels=labels),
                      options=NiceOptions, description="local sandboxes at low CPU priority")
