"""hermes-core: a plugin framework for tool-using LLM agents and the RL / evaluation
environments that train and score them.

The rooms: :mod:`hermes_core.plugin` (entry points, registrars), :mod:`hermes_core.sandbox`
(the backend author's package), :mod:`hermes_core.processes`, :mod:`hermes_core.tools`
(dispatch, ToolContext), :mod:`hermes_core.rollout` (tasks, agents, environments, runner),
:mod:`hermes_core.cli`, :mod:`hermes_core.testing` (the conformance suite).
"""

from typing import TYPE_CHECKING

from .errors import (
    ConfigError,
    DuplicateNameError,
    HermesError,
    PluginError,
    ProcessError,
    SandboxClosedError,
    SandboxError,
    SetupError,
    ToolFailure,
    ToolsetError,
    TransferError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .plugin import (
    AgentRegistry,
    BackendRegistry,
    EnvironmentRegistry,
    ToolCallParserRegistry,
    ToolRegistry,
    ToolsetRegistry,
    VerifierRegistry,
    lazy_exports,
)
from .runtime import Runtime

__version__ = "0.1.0"

# What needs pydantic or asyncio loads on first use, so `import hermes_core` and loading every
# plugin stays light (`hermes plugins`, `hermes --help`). Type checkers see the real imports.
if TYPE_CHECKING:
    from .config import HermesConfig, load_config
    from .rollout import (
        Agent,
        AgentResult,
        Environment,
        EnvironmentConfig,
        OpenAIAgent,
        Rollout,
        Runner,
        RunReport,
        TaskItem,
        VerifierOutcome,
        normalize_score,
        run_verifier,
        to_sharegpt,
    )
    from .sandbox import Capabilities, ExecResult, Process, Sandbox
    from .tools import SyncToolContext, ToolContext, ToolError

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "HermesConfig": ".config", "load_config": ".config",
        "ToolContext": ".tools", "SyncToolContext": ".tools", "ToolError": ".tools",
        "Capabilities": ".sandbox", "ExecResult": ".sandbox", "Process": ".sandbox", "Sandbox": ".sandbox",
        **{name: ".rollout" for name in (
            "Agent", "AgentResult", "OpenAIAgent", "to_sharegpt", "Environment", "EnvironmentConfig",
            "TaskItem", "VerifierOutcome", "normalize_score", "run_verifier", "Runner", "RunReport", "Rollout",
        )},
    },
    globals(),
)

__all__ = [
    "Agent",
    "AgentRegistry",
    "AgentResult",
    "BackendRegistry",
    "Capabilities",
    "ConfigError",
    "DuplicateNameError",
    "Environment",
    "EnvironmentConfig",
    "EnvironmentRegistry",
    "ExecResult",
    "HermesConfig",
    "HermesError",
    "OpenAIAgent",
    "PluginError",
    "Process",
    "ProcessError",
    "Rollout",
    "RunReport",
    "Runner",
    "Runtime",
    "Sandbox",
    "SandboxClosedError",
    "SandboxError",
    "SetupError",
    "SyncToolContext",
    "TaskItem",
    "ToolCallParserRegistry",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolRegistry",
    "ToolsetError",
    "ToolsetRegistry",
    "TransferError",
    "UnknownNameError",
    "VerifierOutcome",
    "VerifierRegistry",
    "hookimpl",
    "lazy_exports",
    "load_config",
    "normalize_score",
    "run_verifier",
    "to_sharegpt",
]
