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

__version__ = "0.1.0"

# Everything that needs pydantic or asyncio loads on first use, so `import hermes_core` and
# loading every plugin stays light (`hermes plugins`, `hermes --help`).
_LAZY = {
    "ToolError": "_tools", "ToolFailure": "_tools",
    "HermesConfig": "config", "load_config": "config",
    "SyncToolContext": "context", "ToolContext": "context",
    "Capabilities": "sandbox", "ExecResult": "sandbox", "Process": "sandbox", "Sandbox": "sandbox",
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
