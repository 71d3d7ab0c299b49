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

__all__ = [
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
