"""hermes-core: a plugin framework for tool-using LLM agents and the RL / evaluation
environments that train and score them."""

from ._registry import (
    AgentRegistry,
    BackendRegistry,
    EnvironmentRegistry,
    ToolCallParserRegistry,
    ToolRegistry,
    ToolsetRegistry,
    VerifierRegistry,
)
from ._runtime import Runtime
from ._tools import ToolError, ToolFailure
from .config import HermesConfig, load_config
from .context import SyncToolContext, ToolContext
from .errors import (
    ConfigError,
    DuplicateNameError,
    HermesError,
    PluginError,
    ProcessError,
    SandboxClosedError,
    SandboxError,
    ToolsetError,
    TransferError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .sandbox import Capabilities, ExecResult, Process, Sandbox

__version__ = "0.1.0"

# The agent loop, environments and runner load on first use, so `import hermes_core` (and every
# plugin import) stays light.
_LAZY = {
    "Agent": "agent", "AgentResult": "agent", "OpenAIAgent": "agent", "to_sharegpt": "agent",
    "Environment": "environment", "EnvironmentConfig": "environment", "TaskItem": "environment",
    "SetupError": "environment", "VerifierOutcome": "environment", "normalize_score": "environment",
    "run_verifier": "environment",
    "Runner": "runner", "RunReport": "runner", "Rollout": "runner",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'hermes_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Agent",
    "AgentResult",
    "Environment",
    "EnvironmentConfig",
    "OpenAIAgent",
    "RunReport",
    "Rollout",
    "Runner",
    "SetupError",
    "TaskItem",
    "VerifierOutcome",
    "normalize_score",
    "run_verifier",
    "to_sharegpt",
    "AgentRegistry",
    "BackendRegistry",
    "Capabilities",
    "ConfigError",
    "DuplicateNameError",
    "EnvironmentRegistry",
    "ExecResult",
    "HermesConfig",
    "HermesError",
    "PluginError",
    "Process",
    "ProcessError",
    "Runtime",
    "Sandbox",
    "SandboxClosedError",
    "SandboxError",
    "SyncToolContext",
    "ToolCallParserRegistry",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolRegistry",
    "ToolsetError",
    "ToolsetRegistry",
    "TransferError",
    "UnknownNameError",
    "VerifierRegistry",
    "hookimpl",
    "load_config",
]
